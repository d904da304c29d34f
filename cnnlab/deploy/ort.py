"""Sessions that run an ONNX file — onnxruntime's (its own kernels on the CPU or a CUDA GPU, TensorRT) or
OpenVINO's native runtime on the CPU (the `openvino` package, cnnlab.deploy.openvino_runtime) behind the same
API — which runtimes can run here, and the accuracy of an ONNX file on a data loader.

Every run of a session on images goes through `run_images` (float32 in, cast to the dtype the graph declares —
float16 for an FP16 file —, float32 out, a fixed batch fed in chunks) and `as_logits` (a file whose output is
a Softmax's probabilities scored from their log): evaluate, predict, export's and quantize's accuracy, and
bench's feed (`example_feed`) all read ONNX files this way."""

from __future__ import annotations

import functools
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Union

import numpy as np
import onnxruntime as ort
import torch
from torch.nn import functional as F
from torch.utils.data import DataLoader

from cnnlab.deploy.names import ONNX_RUNTIMES, RUNTIME_DEVICES
from cnnlab.deploy.onnx_check import (FROM_PROBABILITIES, LOG_PROBABILITIES, LOGITS, PROBABILITIES,
                                     SIGMOID_PROBABILITIES, UnreadableOutput, batch_dependent, integer_output,
                                     output_kind)
from cnnlab.deploy.openvino_runtime import (OUT_OF_MEMORY_FIX, PRECISIONS, OpenVinoSession, load_openvino,
                                            ran_out_of_memory)
from cnnlab.engine.metrics import ClassificationMeter
from cnnlab.environment import job_threads
from cnnlab.engine.progress import make_progress
from cnnlab.errors import CnnlabError, ModelLoadError, found_before_work
from cnnlab.fileio import why_not_a_file

log = logging.getLogger("cnnlab")

CPU, CUDA, TENSORRT = "CPUExecutionProvider", "CUDAExecutionProvider", "TensorrtExecutionProvider"
_INSTALL = {
    CUDA: "install onnxruntime-gpu in place of onnxruntime",
    TENSORRT: "install TensorRT and onnxruntime-gpu in place of onnxruntime",
}
# What onnx_session returns: an onnxruntime session, or OpenVINO's behind the same API.
OnnxSession = Union[ort.InferenceSession, OpenVinoSession]
_ERRORS_ONLY = 3  # onnxruntime's log severity: keep its warnings (e.g. unused initializers) off the terminal
# The float tensor types an image input may be declared in (onnxruntime's names), as numpy dtypes.
FLOAT_INPUTS = {"tensor(float)": np.float32, "tensor(float16)": np.float16, "tensor(double)": np.float64}
# The smallest normal float32: a probability of 0 scores as log(TINY) ~ -87, a finite logit.
_TINY = float(np.finfo(np.float32).tiny)


def available_providers() -> list[str]:
    return list(ort.get_available_providers())


def parse_device(device: str) -> tuple[str, int]:
    """'cpu' → ('cpu', 0); 'cuda' / 'cuda:1' → ('cuda', index)."""
    kind, _, index = str(device).lower().partition(":")
    if kind not in ("cpu", "cuda") or (index and not index.isdigit()):
        raise CnnlabError(f"unknown device '{device}'", fix="use cpu, cuda or cuda:N")
    return kind, int(index or 0)


@dataclass(frozen=True)
class RuntimeKeys:
    """How the running command names its settings, for the fixes the errors below give: `device` is followed by
    the value (`--device cuda`, `search.latency.device=cuda`); `alternative` is the other way out when a provider
    is missing."""

    device: str = "--device "
    alternative: str = "leave onnxruntime out of bench.backends"


BENCH_KEYS = RuntimeKeys()


@found_before_work()
def check_runtime_device(runtime: str, device: str, keys: RuntimeKeys = BENCH_KEYS) -> None:
    """A CnnlabError when `runtime` (onnxruntime | tensorrt | openvino) does not run on `device` here."""
    if runtime not in RUNTIME_DEVICES:
        raise CnnlabError(f"unknown ONNX runtime '{runtime}'", fix=f"use one of {', '.join(ONNX_RUNTIMES)}")
    kind, _ = parse_device(device)
    if kind not in RUNTIME_DEVICES[runtime]:
        if runtime == "tensorrt":
            raise CnnlabError("tensorrt runs on CUDA only", fix=f"use {keys.device}cuda")
        raise CnnlabError("openvino runs on the CPU only (cnnlab does not drive Intel GPUs or NPUs)",
                          fix=f"use {keys.device}cpu")


def execution_providers(device: str = "cpu", *, runtime: str = "onnxruntime", threads: int | None = None,
                        keys: RuntimeKeys = BENCH_KEYS) -> list[Any]:
    """onnxruntime's provider chain for `runtime` (onnxruntime | tensorrt) on `device`, or a CnnlabError naming
    what this onnxruntime build lacks and how to get it. runtime=openvino is not an onnxruntime provider: it is
    checked the same way (CPU only, the openvino package importable, else a CnnlabError naming
    `cnnlab[openvino]`) and gets no providers ([]). `threads` is not used (kept for callers that pass it)."""
    require_runtime(runtime, device, keys)
    kind, index = parse_device(device)
    if runtime == "openvino":
        return []
    if runtime == "onnxruntime" and kind == "cpu":
        return [CPU]
    wanted = {"onnxruntime": [CUDA], "tensorrt": [TENSORRT, CUDA]}[runtime]
    return [(name, {"device_id": index}) for name in wanted] + [CPU]


def gpu_visible() -> bool:
    """Whether this machine shows an NVIDIA GPU: to PyTorch, or through the NVIDIA driver (a CPU build of torch)."""
    return torch.cuda.is_available() or Path("/proc/driver/nvidia").exists()


def require_runtime(runtime: str, device: str = "cpu", keys: RuntimeKeys = BENCH_KEYS) -> None:
    """Nothing when `runtime` (onnxruntime | tensorrt | openvino) can run on `device` (cpu | cuda[:N]) here; else a
    CnnlabError with what is missing and how to get it (a wrong device; the openvino package not installed; an
    onnxruntime build without the CUDA or TensorRT provider)."""
    check_runtime_device(runtime, device, keys)
    kind, _ = parse_device(device)
    if runtime == "openvino":
        load_openvino()
        return
    if runtime == "onnxruntime" and kind == "cpu":
        return
    wanted = {"onnxruntime": [CUDA], "tensorrt": [TENSORRT, CUDA]}[runtime]
    installed = available_providers()
    missing = [name for name in wanted if name not in installed]
    if missing and not gpu_visible():
        # probe 155: "install onnxruntime-gpu" on a machine without any GPU, a fix that cannot work
        raise CnnlabError(f"{keys.device}{device} but no CUDA GPU is visible on this machine",
                          fix=f"use {keys.device}cpu" if runtime == "onnxruntime" else "run it on a machine with "
                          f"an NVIDIA GPU, or use {keys.device}cpu with onnxruntime")
    if missing:
        raise CnnlabError(f"onnxruntime {ort.__version__} has no {' or '.join(missing)} "
                          f"(it offers {', '.join(installed)})",
                          fix=_INSTALL[missing[0]] + (f", or {keys.alternative}" if runtime == "onnxruntime" else ""))


def runtime_missing(runtime: str, device: str = "cpu") -> str | None:
    """One line saying why `runtime` cannot run on `device` here (with the fix), or None when it can."""
    try:
        require_runtime(runtime, device)
    except CnnlabError as err:
        return err.one_line()
    return None


def installed_cpu_runtimes() -> tuple[str, ...]:
    """The runtimes that run ONNX files on this machine's CPU: ("onnxruntime",), plus "openvino" when the
    openvino package imports (`pip install "cnnlab[openvino]"`)."""
    return tuple(r for r in ONNX_RUNTIMES if "cpu" in RUNTIME_DEVICES[r] and runtime_missing(r, "cpu") is None)


def onnx_session(path: Path, *, threads: int | None = None, device: str = "cpu", runtime: str = "onnxruntime",
                 precision: str = "f32") -> OnnxSession:
    """A session running the ONNX file `path` on `device` through `runtime`: onnxruntime's own kernels or
    TensorRT (an InferenceSession with all graph optimisations, `threads` intra-op threads and one inter-op thread),
    or OpenVINO on the CPU (an OpenVinoSession with `threads` inference threads, the same
    run/get_inputs/get_outputs/get_providers API). `threads` None: the job's own count where it has one — the user's
    CNNLAB_THREADS or OMP_NUM_THREADS, or its share of the cores while jobs run side by side
    (environment.job_threads), as torch's threads are — else the runtime's default, one per core. `precision`:
    "f32", or "bf16" (openvino only, on a CPU with bf16). Refuses to fall back silently: if the requested provider did
    not start, that is an error rather than a plain CPU session. Raises CnnlabError for threads < 1, a missing
    file, a runtime not installed here, or a precision the runtime cannot honour; ModelLoadError (a CnnlabError)
    for a file the runtime cannot load."""
    if threads is not None and threads < 1:
        raise CnnlabError(f"threads={threads} must be at least 1")
    if threads is None:  # two sweep jobs side by side each took every core for inference (evaluate, verification)
        threads = job_threads()[0]
    if precision not in PRECISIONS:
        raise CnnlabError(f"unknown inference precision {precision!r}", fix=f"use one of {', '.join(PRECISIONS)}")
    if precision != "f32" and runtime != "openvino":
        why = f"onnxruntime's CPU kernels have no {precision} convolutions" if runtime == "onnxruntime" else \
            f"cnnlab runs {precision} through OpenVINO only"
        raise CnnlabError(f"{runtime} cannot run an ONNX file in {precision}: {why}",
                          fix='use the openvino runtime (pip install "cnnlab[openvino]")')
    providers = execution_providers(device, runtime=runtime, threads=threads)
    if runtime == "openvino":
        return OpenVinoSession(path, threads=threads, precision=precision)
    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    options.log_severity_level = _ERRORS_ONLY
    if threads is not None:
        options.intra_op_num_threads = int(threads)
        options.inter_op_num_threads = 1
    path = Path(path)
    if not path.is_file():
        raise CnnlabError(f"ONNX file {path} {why_not_a_file(path)}")
    try:
        session = ort.InferenceSession(str(path), sess_options=options, providers=providers)
    except Exception as exc:  # noqa: BLE001 - onnxruntime's Fail / InvalidGraph / InvalidProtobuf / ...
        first = next((ln.strip() for ln in str(exc).splitlines() if ln.strip()), type(exc).__name__)
        raise ModelLoadError(f"onnxruntime cannot load {path}: {first}", fix=_load_fix(path, first)) from exc
    wanted = providers[0][0] if isinstance(providers[0], tuple) else providers[0]
    if session.get_providers()[0] != wanted:
        raise CnnlabError(f"onnxruntime could not start {wanted} (it fell back to {session.get_providers()[0]})",
                          fix="check the CUDA/cuDNN (and TensorRT) libraries onnxruntime-gpu needs")
    return session


def _load_fix(path: Path, reason: str) -> str:
    """The fix for a file onnxruntime refused to load. A file saved with every tensor outside it (onnx.save's
    size_threshold=0) keeps the small tensors shape inference must read — a Reshape's target shape — in its .data
    file too, which onnxruntime refuses (probe 94); saving it again at onnx's default threshold keeps them inside."""
    if ran_out_of_memory(reason):
        return OUT_OF_MEMORY_FIX
    if "external" in reason.lower():
        name = path.stem + "-inline"
        return (f"save it again with its small tensors inside (onnx's default size_threshold=1024): python -c \"import "
                f"onnx; onnx.save(onnx.load({str(path)!r}), {str(path.with_name(name + '.onnx'))!r}, "
                f"save_as_external_data=True, location='{name}.onnx.data')\", then use {name}.onnx")
    return "point to a valid .onnx file (re-export it with `cnnlab export`)"


def session_io(session: OnnxSession) -> tuple[str, str]:
    """Names of the (single) input and the first output."""
    return session.get_inputs()[0].name, session.get_outputs()[0].name


def input_dtype(session: OnnxSession) -> type[np.floating]:
    """The numpy dtype the session's (single) input is declared in: float32; float16 for an FP16 file converted
    without keep_io_types; float64. CnnlabError (one line) for an input that is not a float tensor."""
    declared = str(getattr(session.get_inputs()[0], "type", "tensor(float)"))
    if declared not in FLOAT_INPUTS:
        raise CnnlabError(f"the model's input is a {declared}, not a float image batch",
                          fix="export the model with `cnnlab export` (a float32 image input)")
    return FLOAT_INPUTS[declared]  # type: ignore[return-value]


def run_images(session: OnnxSession, images: np.ndarray | torch.Tensor) -> np.ndarray:
    """The first output of `session` for a batch of float32 images [N, C, H, W], as float32 [N, ...].

    The images are cast to the dtype the graph's input declares (`input_dtype`: float16 for an FP16 file), the
    output read back as float32. A file with a fixed batch of B (onnxsim --overwrite-input-shape 1,...) takes B
    images at a time: fed in chunks, the last one padded with zeros whose outputs are dropped. A file whose output for
    an image depends on its batch (onnx_check.batch_dependent: dynamic INT8) takes one image at a time, so its
    scores do not change with the batch size a command reads at."""
    if isinstance(images, torch.Tensor):
        images = images.detach().cpu().numpy()
    input_name, output_name = session_io(session)
    dtype = input_dtype(session)
    batch = session.get_inputs()[0].shape[0]
    fixed = isinstance(batch, int) and batch > 0
    if not fixed and _scored_per_image(session):
        batch, fixed = 1, True
    if not fixed or batch == len(images):
        return _float_scores(session.run([output_name], {input_name: images.astype(dtype, copy=False)})[0])
    outputs = []
    for start in range(0, len(images), batch):
        chunk = images[start:start + batch]
        padded = np.concatenate([chunk, np.zeros((batch - len(chunk), *chunk.shape[1:]), dtype=chunk.dtype)])
        outputs.append(_float_scores(session.run([output_name], {input_name: padded.astype(dtype, copy=False)})[0])
                       [:len(chunk)])
    return np.concatenate(outputs)


def _scored_per_image(session: OnnxSession) -> bool:
    """Whether the session's file is batch_dependent (read once per file version; False for a session of bytes)."""
    file = session_file(session)
    if file is None or not file.is_file():
        return False
    stat = file.stat()
    return _batch_dependent_file(str(file.resolve()), stat.st_mtime_ns, stat.st_size)


@functools.lru_cache(maxsize=64)
def _batch_dependent_file(path: str, mtime_ns: int, size: int) -> bool:
    return batch_dependent(Path(path))


def _float_scores(output: Any) -> np.ndarray:
    """A run's first output as float32; UnreadableOutput for integer or bool values (a QuantizeLinear or Cast ends
    a graph that does not declare its output type: 0–255 read as scores would be wrong)."""
    array = np.asarray(output)
    if array.dtype.kind in "biu":
        raise integer_output(str(array.dtype))
    return array.astype(np.float32, copy=False)


_SUMS_TO_ONE = 2e-3  # how far a row of probabilities may sum from 1: float16 outputs round each value to ~5e-4
_OUTSIDE = 1e-3      # how far a probability may lie outside [0, 1] (rounding; a clamp to [1e-6, 1 - 1e-6] is inside)


def sensed_output_kind(outputs: torch.Tensor, kind: str, source: Any = "the ONNX file") -> str:
    """`kind` (from the graph: onnx_check.output_kind), or PROBABILITIES where every row of `outputs`
    [N, classes] is a probability vector — every value in [0, 1], every row summing to 1 within _SUMS_TO_ONE —
    and the graph said LOGITS (a softmax the graph walk cannot see: written out as Exp / ReduceSum / Div, in a
    custom operator) or FROM_PROBABILITIES (an ensemble's mean of softmaxes). A trained model's logits never all
    lie so; softmaxed again, its loss, ECE and probabilities would be wrong.

    Errors: UnreadableOutput naming `source` when the graph said PROBABILITIES or SIGMOID_PROBABILITIES and a value
    lies outside [0, 1] (a misreading of the graph: no score is made from it); when every row (two or more) sums to
    the same constant other than 1
    with no negative value — probabilities scaled (percent, a sum of softmaxes) by arithmetic the graph walk did not
    see — or when the graph said FROM_PROBABILITIES and the rows are not probability vectors."""
    known = outputs[~torch.isnan(outputs)]  # NaN outputs are named by the broken-weights check, with its fix
    if kind in (PROBABILITIES, SIGMOID_PROBABILITIES) and known.numel() and \
            not bool(((known >= -_OUTSIDE) & (known <= 1 + _OUTSIDE)).all()):
        # the graph said probabilities, the numbers say otherwise: a misreading must not become a score
        ending = "a Softmax" if kind == PROBABILITIES else "a sigmoid"
        raise UnreadableOutput(
            f"{source}: its graph was read as ending in {ending}, but its outputs hold values outside [0, 1] "
            f"({float(known.min()):.4g} to {float(known.max()):.4g}) — cnnlab cannot tell what they are",
            fix="export the model with the logits (or the Softmax / Sigmoid itself) as its output, without the "
                "arithmetic after it")
    if kind not in (LOGITS, FROM_PROBABILITIES):
        return kind
    rows = outputs.ndim == 2 and outputs.shape[1] >= 2 and outputs.numel() > 0
    values = outputs.float()
    if rows and values.min() >= 0 and values.max() <= 1 and bool(((values.sum(dim=1) - 1).abs() <= _SUMS_TO_ONE).all()):
        return PROBABILITIES
    if rows and outputs.shape[0] >= 2 and values.min() >= 0:
        sums = values.sum(dim=1)
        scale = float(sums.mean())
        if scale > 0 and bool(((sums - scale).abs() <= _SUMS_TO_ONE * max(1.0, scale)).all()):
            raise UnreadableOutput(  # no logits of a trained model sum alike over a batch: scaled probabilities
                f"{source}: every output row sums to {scale:.4g} with no value below 0 — probabilities scaled by "
                f"{scale:.4g} (percent, or a sum of softmaxes), neither logits nor probabilities, so the model's "
                "probabilities (its loss, calibration) cannot be read from it",
                fix="export the model with the logits (or the Softmax itself) as its output, without the arithmetic "
                    "after it")
    if kind == FROM_PROBABILITIES:
        sums = values.sum(dim=-1) if values.numel() else values
        raise UnreadableOutput(
            f"{source}: its output is computed from a Softmax by arithmetic on several values, and its rows "
            f"are not probability vectors (they sum to {float(sums.min()):.4g}–{float(sums.max()):.4g}) — neither "
            "logits nor probabilities, so the model's probabilities (its loss, calibration) cannot be read from it",
            fix="export the model with the logits (or the probabilities themselves) as its output")
    return kind


def sensed_note(path: Any, kind: str = LOGITS) -> str:
    """The warning when sensed_output_kind overrides the graph's `kind`: what was seen and what is done about it."""
    graph = ("its graph computes it from a Softmax by arithmetic on several values (an ensemble's mean)"
             if kind == FROM_PROBABILITIES else "its graph does not end in a Softmax cnnlab recognises")
    return (f"{path}: every output row is a probability vector (values in [0, 1], each row summing to 1) and {graph}: "
            "scored from their log, not softmaxed again")


def as_logits(outputs: torch.Tensor, kind: str = LOGITS) -> torch.Tensor:
    """Scores whose softmax is the model's probabilities, from a file's outputs of `kind` (onnx_check.output_kind):
    LOGITS and LOG_PROBABILITIES as they are; PROBABILITIES (a graph ending in Softmax) → their log, clamped at the
    smallest normal float32 so that a probability of 0 stays a finite score — softmax(log p) = p, so top-1, the
    cross-entropy loss, ECE and predicted probabilities are those of the model, not of a second softmax.
    SIGMOID_PROBABILITIES (one-vs-rest) → their log too: softmax gives them normalised to sum to 1 (their ranking
    kept); `class_probabilities` gives them as they are."""
    if kind in (PROBABILITIES, SIGMOID_PROBABILITIES):
        return outputs.float().clamp_min(_TINY).log()
    if kind not in (LOGITS, LOG_PROBABILITIES):
        raise ValueError(f"unknown output kind {kind!r}")
    return outputs


def class_probabilities(outputs: torch.Tensor, kind: str = LOGITS) -> torch.Tensor:
    """float32 [N, classes]: the probability the model gives each class, from a file's outputs of `kind` —
    softmax(as_logits(...)), except for SIGMOID_PROBABILITIES: each class's own sigmoid, as the model states it
    (a softmax over them would show 41 % for a class the model gives 97 %). What predict shows and the confidence
    evaluate's ECE bins."""
    if kind == SIGMOID_PROBABILITIES:
        return outputs.float().clamp(0.0, 1.0)
    return as_logits(outputs, kind).float().softmax(dim=-1)


def session_file(session: OnnxSession) -> Path | None:
    """The file a session was opened on (an OpenVinoSession's path; an onnxruntime session's model path), or None
    for one made from bytes."""
    path = getattr(session, "path", None) or getattr(session, "_model_path", None)
    return Path(path) if isinstance(path, (str, Path)) else None


def run_on_zeros(session: OnnxSession) -> None:
    """One run of the session on zeros: at its file's fixed batch (probe 94: a file fixed to batch 4 runs at 4), else
    at batch 1. Raises whatever the runtime raises for a file it cannot run."""
    batch = session.get_inputs()[0].shape[0]
    session.run([session_io(session)[1]], example_feed(session, batch if isinstance(batch, int) and batch > 0 else 1))


def example_feed(session: OnnxSession, batch_size: int, *, seed: int | None = None) -> dict[str, np.ndarray]:
    """The feed of one run: {the session's (single) input name: an array of shape [batch_size, *the input's other
    dims]} in the dtype the input declares (`input_dtype`: float32, float16 for an FP16 file) — zeros, or with
    `seed` standard-normal values drawn from it. The first (batch) axis is `batch_size` whatever the file declares
    (dynamic: a name or None; a fixed size that differs fails when run); every other axis must be a fixed positive
    size, else CnnlabError("symbolic image shape [...]")."""
    shape = [int(batch_size), *session.get_inputs()[0].shape[1:]]
    symbolic = [i for i, d in enumerate(shape) if not (isinstance(d, int) and d > 0)]
    recorded = _recorded_image(session) if symbolic and len(shape) == 4 else None
    if recorded is None and symbolic:
        raise CnnlabError(f"symbolic image shape {shape[1:]}")
    for i in symbolic:  # dynamic H and W: the size its metadata says it runs at (probe 90)
        shape[i] = recorded[i - 1]
    images = np.zeros(shape, dtype=np.float32) if seed is None else \
        np.random.default_rng(seed).standard_normal(shape, dtype=np.float32)
    return {session_io(session)[0]: images.astype(input_dtype(session), copy=False)}


def _recorded_image(session: OnnxSession) -> tuple[int, int, int] | None:
    """(channels, size, size) of the input spec the session's file records in its cnnlab metadata, or None."""
    from cnnlab.deploy.export import read_onnx_metadata  # torch-heavy; only for a file of symbolic image dims

    path = session_file(session)
    try:
        spec = read_onnx_metadata(path)["spec"] if path is not None else None
    except (CnnlabError, ValueError, TypeError, KeyError):
        return None
    return (spec.channels, spec.size, spec.size) if spec is not None else None


def evaluate_onnx(path_or_session: Path | str | OnnxSession, loader: DataLoader, *,
                  desc: str = "onnx eval", runtime: str = "onnxruntime", outputs: str | None = None) -> dict[str, Any]:
    """acc, top5, loss (cross-entropy) and n of the ONNX model itself over `loader` (batches of float32
    [N, C, H, W] images and int64 [N] labels) on `runtime` (CPU) — the exported artifact's own accuracy as that
    runtime computes it, not the PyTorch model's. A session (onnxruntime's or an OpenVinoSession) is used as is;
    `runtime` applies to a path only. The images go in through `run_images` (an FP16 file takes float16);
    `outputs` (LOGITS | PROBABILITIES | LOG_PROBABILITIES | SIGMOID_PROBABILITIES) says what the file's output
    holds, None: read from its graph (`output_kind`; logits when the session's file is unknown), and `as_logits`
    scores it.

    Errors: UnreadableOutput (a CnnlabError naming the file) when the graph computes its output from its
    probabilities by further arithmetic (`output_kind`)."""
    if isinstance(path_or_session, (str, Path)):
        session = onnx_session(Path(path_or_session), runtime=runtime)
        file: Path | None = Path(path_or_session)
    else:
        session = path_or_session
        file = session_file(session)
    try:
        kind = outputs or (output_kind(file) if file is not None and file.is_file() else LOGITS)
    except UnreadableOutput as exc:
        raise UnreadableOutput(f"{file}: {exc.message}", fix=exc.fix) from None
    meter = ClassificationMeter(torch.device("cpu"))
    with make_progress() as progress:
        task = progress.add_task(desc, total=len(loader), status="")
        for batch, (images, targets, *_) in enumerate(loader):
            outputs = torch.from_numpy(run_images(session, images))
            if batch == 0 and (sensed := sensed_output_kind(outputs, kind, file or "the ONNX session")) != kind:
                log.warning("%s", sensed_note(file or "the ONNX session", kind))
                kind = sensed
            logits = as_logits(outputs, kind)
            meter.update(F.cross_entropy(logits, targets), logits, targets)
            progress.advance(task)
    return meter.compute()
