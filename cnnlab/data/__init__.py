"""Datasets, transforms and loaders: `build_datasets(cfg.dataset, spec)` -> DataBundle, `make_loader(...)`."""

from __future__ import annotations

from cnnlab.data.bundle import DataBundle
from cnnlab.data.loaders import make_loader
from cnnlab.data.registry import DATASETS, build_datasets, check_dataset, resolve_input_spec

__all__ = ["DATASETS", "DataBundle", "build_datasets", "check_dataset", "make_loader", "resolve_input_spec"]
