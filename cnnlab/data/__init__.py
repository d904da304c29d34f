"""Datasets, transforms and loaders: `build_datasets(cfg.dataset, spec)` -> DataBundle, `make_loader(...)`.

The names below are imported on first use (PEP 562): a torch-free module of this package (`cnnlab.data.archives`,
which `cnnlab list datasets` reads) must not pull in torch and torchvision through this file.
"""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from cnnlab.data.bundle import DataBundle
    from cnnlab.data.loaders import make_loader
    from cnnlab.data.registry import DATASETS, build_datasets, check_dataset, resolve_input_spec

_WHERE = {"DataBundle": "bundle", "make_loader": "loaders", "DATASETS": "registry", "build_datasets": "registry",
          "check_dataset": "registry", "resolve_input_spec": "registry"}
__all__ = ["DATASETS", "DataBundle", "build_datasets", "check_dataset", "make_loader", "resolve_input_spec"]


def __getattr__(name: str) -> Any:
    if name in _WHERE:
        return getattr(import_module(f"cnnlab.data.{_WHERE[name]}"), name)
    try:  # a submodule not imported yet (`cnnlab.data.registry` after `import cnnlab.data`)
        return import_module(f"cnnlab.data.{name}")
    except ModuleNotFoundError:
        raise AttributeError(f"module 'cnnlab.data' has no attribute {name!r}") from None
