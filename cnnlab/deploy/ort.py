"""onnxruntime sessions (its own kernels on the CPU or a CUDA GPU, TensorRT, OpenVINO on the CPU), and the
accuracy of an ONNX file on a data loader."""

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
OPENVINO = "OpenVINOExecutionProvider"
# The onnxruntime-based runtimes cnnlab times and evaluates on, and the devices each runs on here.
RUNTIME_DEVICES = {"onnxruntime": ("cpu", "cuda"), "tensorrt": ("cuda",), "openvino": ("cpu",)}
ONNX_RUNTIMES = tuple(RUNTIME_DEVICES)
_INSTALL = {
    CUDA: "install onnxruntime-gpu in place of onnxruntime",
    TENSORRT: "install TensorRT and onnxruntime-gpu in place of onnxruntime",
    # One `onnxruntime` module per environment: the OpenVINO build replaces the plain wheel, not beside it.
    OPENVINO: "pip uninstall -y onnxruntime && pip install onnxruntime-openvino (it replaces the plain wheel)",
}
_ERRORS_ONLY = 3  # onnxruntime's log severity: keep its warnings (e.g. unused initializers) off the terminal


def available_providers() -> list[str]:
    return list(ort.get_available_providers())


def parse_device(device: str) -> tuple[str, int]:
    """'cpu' → ('cpu', 0); 'cuda' / 'cuda:1' → ('cuda', index)."""
    kind, _, index = str(device).lower().partition(":")
    if kind not in ("cpu", "cuda") or (index and not index.isdigit()):
        raise CnnlabError(f"unknown device '{device}'", fix="use cpu, cuda or cuda:N")
    return kind, int(index or 0)


def check_runtime_device(runtime: str, device: str) -> None:
    """A CnnlabError when `runtime` (onnxruntime | tensorrt | openvino) does not run on `device` here."""
    if runtime not in RUNTIME_DEVICES:
        raise CnnlabError(f"unknown onnxruntime runtime '{runtime}'", fix=f"use one of {', '.join(ONNX_RUNTIMES)}")
    kind, _ = parse_device(device)
    if kind not in RUNTIME_DEVICES[runtime]:
        if runtime == "tensorrt":
            raise CnnlabError("tensorrt runs on CUDA only", fix="use --device cuda")
        raise CnnlabError("openvino runs on the CPU only (cnnlab does not drive Intel GPUs or NPUs)",
                          fix="use --device cpu")


def execution_providers(device: str = "cpu", *, runtime: str = "onnxruntime",
                        threads: int | None = None) -> list[Any]:
    """The provider chain of `runtime` on `device`, or a CnnlabError naming what this onnxruntime build lacks
    and how to get it. `threads` reaches OpenVINO, which keeps its own thread pool."""
    check_runtime_device(runtime, device)
    kind, index = parse_device(device)
    if runtime == "onnxruntime" and kind == "cpu":
        return [CPU]
    wanted = {"onnxruntime": [CUDA], "tensorrt": [TENSORRT, CUDA], "openvino": [OPENVINO]}[runtime]
    installed = available_providers()
    missing = [name for name in wanted if name not in installed]
    if missing:
        raise CnnlabError(f"onnxruntime {ort.__version__} has no {' or '.join(missing)} "
                          f"(it offers {', '.join(installed)})",
                          fix=_INSTALL[missing[0]] + (", or leave onnxruntime out of bench.backends"
                                                      if runtime == "onnxruntime" else ""))
    if runtime == "openvino":
        options = {"device_type": "CPU", **({"num_of_threads": str(threads)} if threads is not None else {})}
        return [(OPENVINO, options), CPU]  # the CPU provider runs any node OpenVINO does not take
    return [(name, {"device_id": index}) for name in wanted] + [CPU]


def onnx_session(path: Path, *, threads: int | None = None, device: str = "cpu",
                 runtime: str = "onnxruntime") -> ort.InferenceSession:
    """An InferenceSession with all graph optimisations, `threads` intra-op threads (None: onnxruntime's
    default, one per physical core) and one inter-op thread, on `device` through `runtime` (onnxruntime's
    own kernels, TensorRT or OpenVINO). Refuses to fall back silently: if the requested provider did not
    start, that is an error rather than a plain CPU session."""
    if threads is not None and threads < 1:
        raise CnnlabError(f"threads={threads} must be at least 1")
    providers = execution_providers(device, runtime=runtime, threads=threads)
    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    options.log_severity_level = _ERRORS_ONLY
    if threads is not None:
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
                          fix="check the CUDA/cuDNN (and TensorRT) libraries onnxruntime-gpu needs"
                          if runtime != "openvino" else "check the OpenVINO libraries onnxruntime-openvino ships")
    return session


def session_io(session: ort.InferenceSession) -> tuple[str, str]:
    """Names of the (single) input and the first output."""
    return session.get_inputs()[0].name, session.get_outputs()[0].name


def evaluate_onnx(path_or_session: Path | str | ort.InferenceSession, loader: DataLoader, *,
                  desc: str = "onnx eval", runtime: str = "onnxruntime") -> dict[str, Any]:
    """acc, top5, loss (cross-entropy) and n of the ONNX model itself over `loader` on `runtime` (CPU) — the
    exported artifact's own accuracy as that runtime computes it, not the PyTorch model's."""
    if isinstance(path_or_session, ort.InferenceSession):
        session = path_or_session
    else:
        session = onnx_session(Path(path_or_session), runtime=runtime)
    input_name, output_name = session_io(session)
    meter = ClassificationMeter(torch.device("cpu"))
    with make_progress() as progress:
        task = progress.add_task(desc, total=len(loader), status="")
        for images, targets, *_ in loader:
            logits = torch.from_numpy(session.run([output_name], {input_name: images.numpy()})[0]).float()
            meter.update(F.cross_entropy(logits, targets), logits, targets)
            progress.advance(task)
    return meter.compute()
