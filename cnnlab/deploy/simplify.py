"""Optional graph simplification of an exported file with onnxslim (constant folding, dead-node removal,
operator fusion), in place and atomically. The caller verifies the result like any export."""

from __future__ import annotations

import contextlib
import io
from importlib import metadata
from pathlib import Path
from typing import Any

from cnnlab.deploy.export import load_onnx, strip_default_attributes
from cnnlab.errors import CnnlabError
from cnnlab.fileio import atomic_path


def simplify_onnx(path: Path) -> dict[str, Any]:
    """Rewrite `path` simplified; metadata_props are kept. Returns the tool and node counts before/after."""
    try:
        import onnxslim
    except ImportError as exc:
        raise CnnlabError("export.simplify=true needs onnxslim", fix="pip install onnxslim") from exc
    original = load_onnx(path)
    before = len(original.graph.node)
    try:
        with contextlib.redirect_stdout(io.StringIO()):  # stdout is for results; onnxslim may print a summary
            simplified = onnxslim.slim(original)
    except Exception as exc:  # noqa: BLE001 - onnxslim raises whatever its passes raise
        raise CnnlabError(f"onnxslim could not simplify {path}: {exc}", fix="use export.simplify=false") from exc
    strip_default_attributes(simplified.graph)
    with atomic_path(path) as tmp:
        tmp.write_bytes(simplified.SerializeToString())
    return {"tool": f"onnxslim {metadata.version('onnxslim')}", "nodes_before": before,
            "nodes_after": len(simplified.graph.node)}
