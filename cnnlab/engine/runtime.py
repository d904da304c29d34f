"""Where and how the engine computes: device, mixed precision, memory format, DDP ranks.

`Runtime.from_config(cfg)` is the one place that turns `device=`, `trainer.amp=` and
`trainer.channels_last=` into concrete choices, and joins the torchrun process group when
launched under torchrun (gloo on CPU, nccl on CUDA). `Runtime.out_of_memory_as_error` turns running
out of memory (CUDA or CPU) into one CnnlabError naming the setting to lower.
"""

from __future__ import annotations

import contextlib
import datetime as _dt
import logging
import re
from dataclasses import astuple, dataclass, replace
from typing import Any, Callable, Iterator, Mapping, TypeVar

import torch
import torch.distributed as dist

from cnnlab.environment import has_cpu_flag, launched_ranks
from cnnlab.errors import CnnlabError, found_before_work
from cnnlab.errors_view import is_out_of_memory

log = logging.getLogger("cnnlab")

T = TypeVar("T")

# Where any convolution of a dense network runs on a map smaller than this (px side), bf16 autocast trained it slower
# than float32 on the CPU. benchmarks/cpu_amp.py on a Sapphire Rapids Xeon, bf16 / float32 per step: ResNet-18, -34
# and -50 at 28-32 px (last stage on 1x1 maps) 0.67-0.97x, at batch 64 and 256 alike; ResNet-18 at 48-64 px,
# ResNet-50 and GoogLeNet at 64 px, LeNet-5, ResNet-18 with model.stem=cifar at 28 px (2x2 maps or more)
# 1.09-1.81x at batch 64; ResNet-18 at 64 px and batch 16 and VGG-11 at 32 px near even (1.03x, 0.84-1.01x).
# The batch did not move the line; the smallest map did.
BF16_MIN_MAP = 2

_AMP_DTYPES = {"bf16": torch.bfloat16, "bfloat16": torch.bfloat16, "fp16": torch.float16, "float16": torch.float16}


@found_before_work()  # a device typo or a missing GPU: refused, no `failed` run left behind (probe 93)
def device_spec(spec: str | None) -> str:
    """`device=` lower-cased: auto, cpu, cuda or cuda:N; CnnlabError naming those for anything else."""
    spec = str(spec or "auto").lower()
    if not re.fullmatch(r"auto|cpu|cuda(:\d+)?", spec):
        raise CnnlabError(f"unknown device '{spec}'", fix="use device=auto, cpu, cuda or cuda:N (N a GPU index)")
    return spec


@found_before_work()
def resolve_device(spec: str | None, local_rank: int = 0) -> torch.device:
    """auto → the local CUDA device when present, else CPU; an explicit cuda without CUDA is an error."""
    spec = device_spec(spec)
    if spec == "auto":
        return torch.device("cuda", local_rank) if torch.cuda.is_available() else torch.device("cpu")
    if spec.startswith("cuda"):
        if not torch.cuda.is_available():
            built = f"built with CUDA {torch.version.cuda}" if torch.version.cuda else "a CPU-only build"
            raise CnnlabError(f"device={spec} but no CUDA GPU is visible (torch {torch.__version__}, {built})",
                              fix="use device=cpu or device=auto")
        device = torch.device(spec)
        if device.index is None:
            device = torch.device("cuda", local_rank)
        if device.index >= torch.cuda.device_count():
            raise CnnlabError(f"device={spec} but only {torch.cuda.device_count()} CUDA device(s) exist",
                              fix="use device=cuda:0 or device=auto")
        return device
    return torch.device("cpu")


def cpu_has_fast_bf16() -> bool:
    """AMX or AVX512-BF16 make bf16 convolutions faster than fp32 (measured 1.4x on ResNet-18 training at 64 px
    here); without them bf16 autocast on CPU is emulated and slower. Depthwise convolutions and convolutions on
    1x1 maps are the exceptions (cpu_float32_reason)."""
    return has_cpu_flag("amx_bf16") or has_cpu_flag("avx512_bf16")


def has_grouped_convs(model: torch.nn.Module) -> bool:
    """Whether `model` has a depthwise or grouped Conv2d (groups > 1): what Runtime.for_network keeps out of bf16."""
    return any(isinstance(m, torch.nn.Conv2d) and m.groups > 1 for m in model.modules())


def cpu_float32_reason(model: torch.nn.Module, input_size: int | None) -> str | None:
    """Why trainer.amp=auto trains `model` in float32 rather than bf16 on a bf16-capable CPU, or None (bf16 pays).
    input_size: the side of its input in px (None: unknown, so only the depthwise rule applies; so does a model
    without convolutions). Raises what the model's forward pass raises on one zero image of that size."""
    if has_grouped_convs(model):
        return "this network has depthwise convolutions, which oneDNN trains 2-3x slower in bf16 on the CPU"
    if input_size is None or not has_convs(model):
        return None  # unknown, or not an image network (a linear probe's head on cached features)
    from cnnlab.models.measure import smallest_conv_input  # not at import: cnnlab.models imports torchvision (~2 s)

    smallest = smallest_conv_input(model, input_size)
    if smallest is None or smallest >= BF16_MIN_MAP:
        return None
    return (f"at {input_size} px its deepest convolutions run on {smallest}x{smallest} maps, where oneDNN trains "
            f"up to 1.5x slower in bf16 on the CPU (bf16 paid from {BF16_MIN_MAP}x{BF16_MIN_MAP} maps)")


def has_convs(model: torch.nn.Module) -> bool:
    return any(isinstance(m, torch.nn.Conv2d) for m in model.modules())


@found_before_work()
def resolve_amp(spec: str | None, device: torch.device) -> torch.dtype | None:
    spec = str(spec or "auto").lower()
    if spec in ("none", "false", "off", "fp32", "no"):
        return None
    if spec == "auto":
        if device.type == "cuda":
            return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
        return torch.bfloat16 if cpu_has_fast_bf16() else None
    if spec not in _AMP_DTYPES:
        raise CnnlabError(f"unknown trainer.amp '{spec}'", fix="use auto, bf16, fp16 or none")
    dtype = _AMP_DTYPES[spec]
    if device.type == "cpu" and dtype == torch.float16:
        raise CnnlabError("trainer.amp=fp16 is not supported on the CPU", fix="use trainer.amp=bf16 or none")
    return dtype


@dataclass(frozen=True)
class Runtime:
    device: torch.device
    amp_dtype: torch.dtype | None
    channels_last: bool
    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    amp_auto: bool = False  # amp_dtype is trainer.amp=auto's choice (for_network may revise it), not the user's
    input_size: int | None = None  # px side of the images this runtime computes on (for_input), when known
    float32_reason: str | None = None  # why for_network revised trainer.amp=auto's bf16 to float32

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        return self.world_size > 1

    @property
    def needs_grad_scaler(self) -> bool:
        return self.amp_dtype == torch.float16

    def for_input(self, size: int) -> "Runtime":
        """This runtime for `size` px inputs, so that for_network can see the maps a network's convolutions run on."""
        return replace(self, input_size=int(size))

    def for_network(self, model: torch.nn.Module) -> "Runtime":
        """This runtime for training or running `model`. Where trainer.amp=auto chose bf16 on the CPU, float32
        instead for a network with depthwise or grouped convolutions (MobileNet, EfficientNet, searched networks:
        oneDNN trains them 2-3x slower in bf16) or one with a convolution on a map smaller than BF16_MIN_MAP at
        `input_size` (ResNet-18 at 28 px: 1.3-1.5x slower in bf16); benchmarks/cpu_amp.py, docs/benchmarks.md. The
        reason is kept in `float32_reason`. An explicit trainer.amp=bf16 is kept."""
        if not (self.amp_auto and self.device.type == "cpu" and self.amp_dtype == torch.bfloat16):
            return self
        reason = cpu_float32_reason(model, self.input_size)
        return self if reason is None else replace(self, amp_dtype=None, float32_reason=reason)

    def autocast(self) -> contextlib.AbstractContextManager[Any]:
        if self.amp_dtype is None:
            return contextlib.nullcontext()
        return torch.autocast(device_type=self.device.type, dtype=self.amp_dtype)

    def own_precision(self) -> contextlib.AbstractContextManager[Any]:
        """This runtime's precision even inside another's autocast: a teacher that runs in float32 inside the
        student's bf16 step (autocast disabled there), or in bf16 inside a float32 one."""
        if self.amp_dtype is None:
            return torch.autocast(device_type=self.device.type, enabled=False)
        return self.autocast()

    def to_device(self, tensor: torch.Tensor) -> torch.Tensor:
        tensor = tensor.to(self.device, non_blocking=True)
        if self.channels_last and tensor.dim() == 4:
            tensor = tensor.contiguous(memory_format=torch.channels_last)
        return tensor

    def prepare_model(self, model: torch.nn.Module) -> torch.nn.Module:
        model = model.to(self.device)
        if self.channels_last:
            model = model.to(memory_format=torch.channels_last)  # type: ignore[call-overload]
        return model

    @contextlib.contextmanager
    def out_of_memory_as_error(self, key: str, value: int) -> Iterator[None]:
        """Within this block, running out of memory raises a CnnlabError naming `key` (e.g. trainer.batch_size,
        whose current value is `value`) and a smaller value to try; other exceptions pass unchanged."""
        try:
            yield
        except BaseException as exc:
            if not is_out_of_memory(exc):
                raise
            raise out_of_memory_error(self, key, value) from exc

    def precision_reason(self) -> str | None:
        """Why trainer.amp=auto trains in what it does (None for a precision the user set): `float32_reason` (small
        maps, depthwise convolutions), the device's bf16 support, or its absence on this CPU."""
        if not self.amp_auto:
            return None
        if self.float32_reason is not None:
            return self.float32_reason
        if self.amp_dtype is not None:
            return "a GPU" if self.device.type == "cuda" else "this CPU has bf16 instructions (AMX or AVX512-BF16)"
        return ("this CPU has no bf16 instructions (AMX or AVX512-BF16), where bf16 autocast is emulated and slower"
                if self.device.type == "cpu" else None)

    def describe(self) -> dict[str, Any]:
        return {"device": str(self.device), "amp": str(self.amp_dtype).replace("torch.", "") if self.amp_dtype else "none",
                "channels_last": self.channels_last, "world_size": self.world_size,
                "threads": torch.get_num_threads()}

    @classmethod
    def from_config(cls, cfg: Mapping[str, Any]) -> "Runtime":
        rank, world_size, local_rank = astuple(launched_ranks())
        device = resolve_device(cfg.get("device"), local_rank)
        trainer = cfg.get("trainer") or {}
        amp = resolve_amp(trainer.get("amp"), device)
        channels_last = trainer.get("channels_last", "auto")
        channels_last = True if str(channels_last).lower() == "auto" else bool(channels_last)
        if world_size > 1:
            _join_process_group(device, rank, world_size)
        return cls(device=device, amp_dtype=amp, channels_last=channels_last, rank=rank,
                   world_size=world_size, local_rank=local_rank,
                   amp_auto=str(trainer.get("amp") or "auto").lower() == "auto")


def out_of_memory_error(runtime: Runtime, key: str, value: int) -> CnnlabError:
    """The one-line error for an allocation that failed at `key`=`value`: where (with the GPU's free memory),
    and half the value as the next size to try (a multiple of the DDP world size)."""
    where = str(runtime.device)
    if runtime.device.type == "cuda":
        with contextlib.suppress(Exception):  # the numbers are a courtesy; never fail the error itself
            free, total = torch.cuda.mem_get_info(runtime.device)
            where += f" ({free / 2**30:.1f} of {total / 2**30:.1f} GiB free)"
    step = runtime.world_size
    smaller = (value // 2) // step * step
    if smaller >= step:
        fix = f"use {key}={smaller} (if that fails too, halve it again)"
    else:
        fix = "it does not fit even at the smallest size: lower dataset.image_size or choose a smaller model="
    return CnnlabError(f"out of memory on {where} at {key}={value}", fix=fix)


def _join_process_group(device: torch.device, rank: int, world_size: int) -> None:
    if dist.is_initialized():
        return
    backend = "nccl" if device.type == "cuda" else "gloo"
    if device.type == "cuda":
        torch.cuda.set_device(device)
    dist.init_process_group(backend=backend, rank=rank, world_size=world_size,
                            timeout=_dt.timedelta(minutes=30))
    log.info("joined DDP group: rank %d of %d (%s)", rank, world_size, backend)


def leave_process_group() -> None:
    if dist.is_initialized():
        dist.destroy_process_group()


def all_reduce_sum(values: torch.Tensor) -> torch.Tensor:
    """Sum a tensor over ranks (no-op in a single process)."""
    if dist.is_initialized() and dist.get_world_size() > 1:
        values = values.clone()
        dist.all_reduce(values, op=dist.ReduceOp.SUM)
    return values


def from_rank_zero(runtime: Runtime, compute: Callable[[], T]) -> T:
    """`compute()` run on rank 0 alone, its result handed to every rank (torch.distributed.broadcast_object_list:
    it must pickle); in a single process, simply `compute()`. For what one rank must measure or decide for all —
    a latency that each rank would time differently. A CnnlabError on rank 0 is raised on every rank, and any
    other exception there ends the other ranks with a CnnlabError naming it, so none waits for a result that
    never comes."""
    if not runtime.distributed:
        return compute()
    message: list[Any] = [None]
    failure: BaseException | None = None
    if runtime.is_main:
        try:
            message = [("ok", compute())]
        except CnnlabError as exc:
            failure, message = exc, [("error", exc.message, exc.fix)]
        except BaseException as exc:  # Ctrl-C included: the other ranks must not wait on
            failure, message = exc, [("error", f"rank 0 failed: {type(exc).__name__}: {exc}", None)]
    dist.broadcast_object_list(message, src=0)
    if failure is not None:
        raise failure
    kind, *rest = message[0]
    if kind == "error":
        raise CnnlabError(rest[0], fix=rest[1])
    return rest[0]


@contextlib.contextmanager
def main_process_first(runtime: Runtime) -> Iterator[None]:
    """Rank 0 does the work first (downloads, caches); the others wait, then reuse it."""
    if runtime.distributed and not runtime.is_main:
        dist.barrier()
    yield
    if runtime.distributed and runtime.is_main:
        dist.barrier()
