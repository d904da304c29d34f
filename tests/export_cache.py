"""The ONNX graphs torch exports, kept per test process and handed out again for the same network.

torch's dynamo exporter takes ~1 s for a LeNet-5 (torch.export, its decompositions, onnxscript's optimiser), and the
tests export the same tiny networks again and again: a seeded training of TINY gives bit-identical weights in every
test that trains it, and every quantize, prune, bench and evaluate test exports one. A graph is handed out again only
for a network whose class, structure (its repr), every state-dict tensor (bytes, dtype, shape), input spec and opset
are the same as when it was exported — everything `cnnlab.deploy.export._export_proto` reads — and as a fresh copy
(callers write metadata into it). cnnlab's own check still runs on every export: the file's outputs are compared with
PyTorch's, so a graph handed to the wrong network fails the test that got it instead of passing silently. The first
export of each network in a process runs torch's exporter as usual, and a test that replaces torch's exporter (to make
it fail) gets the real call.
"""

from __future__ import annotations

import hashlib
import os
from typing import Any, Callable

import onnx
import torch

_MAX_BYTES = 64 * 1024 * 1024  # graphs kept per process (the tests' networks are tiny; a ResNet-18 is 45 MB)
_graphs: dict[str, bytes] = {}


def _network_key(model: torch.nn.Module, spec: Any, opset: int) -> str | None:
    """A digest of everything the exporter reads of `model`, `spec` and `opset`; None where a tensor cannot be read
    as bytes (the graph is then exported, never reused)."""
    digest = hashlib.sha256()
    for part in (type(model).__module__, type(model).__qualname__, repr(model), repr(spec), str(opset)):
        digest.update(part.encode() + b"\0")
    try:
        for name, tensor in model.state_dict().items():
            data = tensor.detach().cpu().contiguous()  # its layout (channels_last) goes into the key beside it
            digest.update(f"{name}|{data.dtype}|{tuple(data.shape)}|{tensor.stride()}|{tensor.device}\0".encode())
            digest.update(data.reshape(-1).view(torch.uint8).numpy().tobytes())
    except (RuntimeError, TypeError, ValueError):  # quantized or otherwise unviewable tensors: export it
        return None
    return digest.hexdigest()


def install() -> None:
    """Wrap cnnlab.deploy.export._export_proto with the per-process cache (once; a test's own monkeypatch of it
    replaces the wrapper for that test). CNNLAB_TEST_EXPORT_CACHE=0 leaves every export to torch (to rule the cache
    out, or to time the suite without it)."""
    from cnnlab.deploy import export

    if os.environ.get("CNNLAB_TEST_EXPORT_CACHE", "1") == "0" or getattr(export._export_proto, "cached_for_tests",
                                                                        False):
        return
    real: Callable[..., onnx.ModelProto] = export._export_proto
    exporter = torch.onnx.export

    def cached(model: torch.nn.Module, spec: Any, opset: int) -> onnx.ModelProto:
        key = _network_key(model, spec, opset) if torch.onnx.export is exporter else None
        if key is not None and key in _graphs:
            return onnx.ModelProto.FromString(_graphs[key])
        proto = real(model, spec, opset)
        if key is not None:
            data = proto.SerializeToString()
            if sum(map(len, _graphs.values())) + len(data) <= _MAX_BYTES:
                _graphs[key] = data
        return proto

    cached.cached_for_tests = True  # type: ignore[attr-defined]
    export._export_proto = cached
