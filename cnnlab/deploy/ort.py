"""onnxruntime sessions on the CPU or a CUDA GPU, and the accuracy of an ONNX file on a data loader."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import onnxruntime as ort
import torch
from torch.nn import functional as F
from torch.utils.data import DataLoader

from cnnlab.engine.metrics import ClassificationMeter
from cnnlab.engine.progress import make_progress
from cnnlab.errors import CnnlabError

CPU, CUDA, TENSORRT = "CPUExecutionProvider", "CUDAExecutionProvider", "TensorrtExecutionProvider"
_ERRORS_ONLY = 3  # onnxruntime's log severity: keep its warnings (e.g. unused initializers) off the terminal


def available_providers() -> list[str]:
    return list(ort.get_available_providers())


def parse_device(device: str) -> tuple[str, int]:
    """'cpu' → ('cpu', 0); 'cuda' / 'cuda:1' → ('cuda', index)."""
    kind, _, index = str(device).lower().partition(":")
    if kind not in ("cpu", "cuda") or (index and not index.isdigit()):
        raise CnnlabError(f"unknown device '{device}'", fix="use cpu, cuda or cuda:N")
    return kind, int(index or 0)


def execution_providers(device: str = "cpu", *, tensorrt: bool = False) -> list[Any]:
    """The provider chain for `device`, or a CnnlabError naming what this onnxruntime build lacks."""
    kind, index = parse_device(device)
    if kind == "cpu":
        if tensorrt:
            raise CnnlabError("TensorRT runs on CUDA devices only", fix="use --device cuda")
        return [CPU]
    installed = available_providers()
    wanted = [TENSORRT, CUDA] if tensorrt else [CUDA]
    missing = [name for name in wanted if name not in installed]
    if missing:
        raise CnnlabError(f"onnxruntime {ort.__version__} has no {' or '.join(missing)} "
                          f"(it offers {', '.join(installed)})",
                          fix="install onnxruntime-gpu in place of onnxruntime (TensorRT: and TensorRT itself), "
                              "or leave onnxruntime out of bench.backends")
    return [(name, {"device_id": index}) for name in wanted] + [CPU]


def onnx_session(path: Path, *, threads: int | None = None, device: str = "cpu",
                 tensorrt: bool = False) -> ort.InferenceSession:
    """An InferenceSession with all graph optimisations, `threads` intra-op threads (None: onnxruntime's
    default, one per physical core) and one inter-op thread, on `device`. Refuses to fall back silently:
    if the requested GPU provider did not start, that is an error rather than a CPU session."""
    providers = execution_providers(device, tensorrt=tensorrt)
    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    options.log_severity_level = _ERRORS_ONLY
    if threads is not None:
        if threads < 1:
            raise CnnlabError(f"threads={threads} must be at least 1")
        options.intra_op_num_threads = int(threads)
        options.inter_op_num_threads = 1
    path = Path(path)
    if not path.is_file():
        raise CnnlabError(f"ONNX file {path} does not exist")
    try:
        session = ort.InferenceSession(str(path), sess_options=options, providers=providers)
    except Exception as exc:  # noqa: BLE001 - onnxruntime's Fail / InvalidGraph / InvalidProtobuf / ...
        first = next((ln.strip() for ln in str(exc).splitlines() if ln.strip()), type(exc).__name__)
        raise CnnlabError(f"onnxruntime cannot load {path}: {first}",
                          fix="point to a valid .onnx file (re-export it with `cnnlab export`)") from exc
    wanted = providers[0][0] if isinstance(providers[0], tuple) else providers[0]
    if session.get_providers()[0] != wanted:
        raise CnnlabError(f"onnxruntime could not start {wanted} (it fell back to {session.get_providers()[0]})",
                          fix="check the CUDA/cuDNN (and TensorRT) libraries onnxruntime-gpu needs")
    return session


def session_io(session: ort.InferenceSession) -> tuple[str, str]:
    """Names of the (single) input and the first output."""
    return session.get_inputs()[0].name, session.get_outputs()[0].name


def evaluate_onnx(path_or_session: Path | str | ort.InferenceSession, loader: DataLoader, *,
                  desc: str = "onnx eval") -> dict[str, Any]:
    """acc, top5, loss (cross-entropy) and n of the ONNX model itself over `loader` — the exported
    artifact's own accuracy, not the PyTorch model's."""
    if isinstance(path_or_session, ort.InferenceSession):
        session = path_or_session
    else:
        session = onnx_session(Path(path_or_session))
    input_name, output_name = session_io(session)
    meter = ClassificationMeter(torch.device("cpu"))
    with make_progress() as progress:
        task = progress.add_task(desc, total=len(loader), status="")
        for images, targets, *_ in loader:
            logits = torch.from_numpy(session.run([output_name], {input_name: images.numpy()})[0]).float()
            meter.update(F.cross_entropy(logits, targets), logits, targets)
            progress.advance(task)
    return meter.compute()
