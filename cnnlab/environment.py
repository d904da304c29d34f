"""The hardware/software fingerprint recorded with every run and benchmark, and the one rule for how many
threads a job may use when several jobs share this machine (`core_share`, `apply_job_threads`)."""

from __future__ import annotations

import os
import platform
import socket
import subprocess
import traceback
from dataclasses import dataclass
from functools import lru_cache
from importlib import metadata
from pathlib import Path
from typing import Any

_PACKAGES = ("cnnlab", "torch", "torchvision", "onnx", "onnxruntime", "hydra-core", "torch-pruning", "numpy",
             "openvino", "nncf")
# The `cnnlab[openvino]` extra: read from the distribution's metadata (importing openvino takes ~0.7 s); when it is
# not installed, None at once — no scan for a distribution standing in for it (that scan takes ~0.5 s).
_OPTIONAL_PACKAGES = ("openvino", "nncf")
# CPU flags that decide which kernels (and which INT8 formats) are fast.
_INTERESTING_FLAGS = ("avx2", "fma", "avx512f", "avx512bw", "avx512_vnni", "avx_vnni", "avx512_bf16",
                      "amx_bf16", "amx_int8", "amx_tile", "neon", "asimd")


@lru_cache(maxsize=1)
def cpu_info() -> dict[str, Any]:
    """CPU model, core counts and SIMD flags from /proc/cpuinfo (Linux); best effort elsewhere. x86's vendor and
    `cpu family`/`model` numbers too: a VM may name its CPU only "AMD EPYC", and the family tells a Zen 4 (25) from a
    Zen 5 (26), whose AVX-512 units differ (deploy/peak.py) — figures from the two are not comparable."""
    model, flags = platform.processor() or platform.machine(), set()
    numbers: dict[str, Any] = {"vendor": None, "family": None, "model_number": None}
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.exists():
        for line in cpuinfo.read_text(errors="ignore").splitlines():
            key, _, value = line.partition(":")
            key, value = key.strip(), value.strip()
            if key == "model name" and value:
                model = value
            elif key in ("flags", "Features") and not flags:
                flags = set(value.split())
            elif key == "vendor_id" and numbers["vendor"] is None:
                numbers["vendor"] = value
            elif key in ("cpu family", "model") and value.isdigit():
                name = "family" if key == "cpu family" else "model_number"
                if numbers[name] is None:
                    numbers[name] = int(value)
    try:
        affinity = len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        affinity = os.cpu_count() or 1
    return {
        "model": model,
        "arch": platform.machine(),
        "logical_cores": os.cpu_count(),
        "usable_cores": affinity,
        "flags": sorted(f for f in _INTERESTING_FLAGS if f in flags),
        "vendor": numbers["vendor"], "family": numbers["family"], "model_number": numbers["model_number"],
    }


# Set per job by cnnlab.app from the launcher (joblib's n_jobs, submitit_local's sweep size) and inherited by
# child processes (a pipeline's stages); torchrun's LOCAL_WORLD_SIZE multiplies it.
PARALLEL_JOBS_ENV = "CNNLAB_PARALLEL_JOBS"
# The user's explicit intra-op thread count for every job (the launching shell's OMP_NUM_THREADS counts too).
THREADS_ENV = "CNNLAB_THREADS"


def _positive_env(name: str) -> int | None:
    try:
        value = int(os.environ.get(name, ""))
    except ValueError:
        return None
    return value if value >= 1 else None


@dataclass(frozen=True)
class Ranks:
    """This process's place among the processes of one DDP run (torchrun's RANK, WORLD_SIZE, LOCAL_RANK)."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0


def launched_ranks() -> Ranks:
    """What torchrun (or srun with the environment torchrun would give) says this process is; Ranks() — rank 0
    of 1 — outside it. The one reader of those variables: the app (whose rank writes the run folder) and the
    runtime (which joins the process group) must not disagree."""
    values = {}
    for name, default in (("RANK", 0), ("WORLD_SIZE", 1), ("LOCAL_RANK", 0)):
        try:
            values[name] = int(os.environ.get(name) or default)
        except ValueError:
            values[name] = default
    return Ranks(rank=values["RANK"], world_size=max(1, values["WORLD_SIZE"]), local_rank=values["LOCAL_RANK"])


# what a collective says when the rank at the other end is gone (killed, out of memory, its machine lost): gloo's
# TCP transport, NCCL's watchdog
_PEER_GONE = ("connection reset by peer", "connection closed by peer", "broken pipe", "remote process exited",
              "communicator was aborted")


def lost_peer(exc: BaseException) -> str | None:
    """The first line of a collective's failure when another rank of a torchrun job has gone (torch.distributed's
    DistNetworkError or DistBackendError, or a RuntimeError of gloo or NCCL naming a lost connection), else None.
    A rank cannot go on without its peers; what it met is the other rank's end, not a bug of its own."""
    chain = [exc, *(e for e in (exc.__cause__, exc.__context__) if e is not None)]
    for error in chain:
        text = str(error)
        if type(error).__name__ in ("DistNetworkError", "DistBackendError") or (
                isinstance(error, RuntimeError) and ("gloo" in text or "NCCL" in text)
                and any(phrase in text.lower() for phrase in _PEER_GONE)):
            return text.strip().splitlines()[0][:200] if text.strip() else type(error).__name__
    return None


# what torch's DataLoader says when a worker process is gone (killed by the OOM killer or a signal, a bus error
# for a container's too-small /dev/shm) or a batch's file descriptors could not be passed; and the modules that pass
# them, where an OSError (too many open files, the socket under /tmp removed by a clean-up) is the passing's
_WORKERS_GONE = ("dataloader worker", "received 0 items of ancdata")
_SHARING_FILES = ("multiprocessing/resource_sharer.py", "torch/multiprocessing/reductions.py")


def lost_workers(exc: BaseException) -> str | None:
    """The first line of a DataLoader failure that no image caused: a worker process gone ("DataLoader worker (pid
    123) is killed by signal: Killed.", "... exited unexpectedly", a timeout), or a batch that could not travel
    from a worker (torch shares its tensors through file descriptors and a socket under /tmp); None for anything
    else, including an exception a worker's dataset raised, which torch re-raises as "Caught X in DataLoader worker
    process N" and which is the data's own error."""
    for error in (exc, *(e for e in (exc.__cause__, exc.__context__) if e is not None)):
        text = str(error).strip()
        first = text.splitlines()[0][:200] if text else type(error).__name__
        if "caught " in text.lower()[:80]:
            continue
        if isinstance(error, (RuntimeError, OSError)) and any(phrase in text.lower() for phrase in _WORKERS_GONE):
            return first
        frames = traceback.extract_tb(error.__traceback__)
        # EOFError: the worker died between offering a batch and answering for it (a suite run under load, 2026-12-06)
        if isinstance(error, (OSError, EOFError)) and any(frame.filename.endswith(_SHARING_FILES) for frame in frames):
            return f"{type(error).__name__}: {first if text else 'the connection closed'}, passing a batch from a " \
                   "worker"
    return None


def shut_down_loaders() -> None:
    """Shut down every DataLoader iterator of this process that lost a worker. While the failure's traceback keeps
    one alive (a frame's loop over it), its dead worker's pid stays registered with torch's SIGCHLD handler, and any
    later child's exit in this process raised "DataLoader worker (pid N) is killed" for it again — in the next job of
    a sweep, or the next run in one process (probe 172). Uses torch's own `_shutdown_workers`, what the iterator's
    `__del__` would call; found among the live objects, as a frame's loop iterator is in no frame's locals."""
    import gc

    try:
        from torch.utils.data.dataloader import _MultiProcessingDataLoaderIter
    except ImportError:
        return
    for value in gc.get_objects():
        if issubclass(type(value), _MultiProcessingDataLoaderIter) and not all(  # type(): no proxy is asked
                worker.is_alive() for worker in getattr(value, "_workers", [])):
            try:
                value._shutdown_workers()
            except Exception:  # noqa: BLE001 - a half-dead loader: what could be shut down, was
                pass


def jobs_in_parallel() -> int:
    """How many cnnlab processes run at once on this machine's cores: the launcher's parallel jobs
    (CNNLAB_PARALLEL_JOBS) times the DDP ranks torchrun started on this node (LOCAL_WORLD_SIZE)."""
    return (_positive_env(PARALLEL_JOBS_ENV) or 1) * (_positive_env("LOCAL_WORLD_SIZE") or 1)


def core_share(cores: int | None = None) -> int:
    """This job's share of `cores` (default: the usable cores): max(1, cores ÷ jobs running at once). Every
    default thread count derived from the machine's cores (torch intra-op threads of a parallel job,
    onnxruntime and bench timings) goes through here, so k jobs side by side never ask for k × the cores."""
    cores = cpu_info()["usable_cores"] if cores is None else cores
    return max(1, int(cores or 1) // jobs_in_parallel())


def job_threads() -> tuple[int | None, str]:
    """(torch intra-op threads for this job, why): CNNLAB_THREADS when set (`explicit`); this job's
    `core_share()` when jobs run in parallel, or when a launcher (not the user: cnnlab.app moves the user's
    OMP_NUM_THREADS into CNNLAB_THREADS) has set OMP_NUM_THREADS — joblib's loky workers get 1 on 2 cores even for a
    sweep of one job (`share`); else (None, `default`): torch's own default stays."""
    explicit = _positive_env(THREADS_ENV)
    if explicit is not None:
        return explicit, "explicit"
    if jobs_in_parallel() > 1 or _positive_env("OMP_NUM_THREADS") is not None:
        return core_share(), "share"
    return None, "default"


def apply_job_threads() -> dict[str, Any]:
    """Set torch's intra-op threads by `job_threads()` (torch.set_num_threads also sizes MKL and OpenMP
    at run time: nothing has to be set before torch is imported); what run.json records of it."""
    import torch

    threads, source = job_threads()
    if threads is not None and torch.get_num_threads() != threads:
        torch.set_num_threads(threads)
    return {"torch": torch.get_num_threads(), "source": source, "jobs_in_parallel": jobs_in_parallel(),
            "usable_cores": cpu_info()["usable_cores"]}


def available_memory() -> int | None:
    """Bytes of memory a new allocation can have now without swapping (Linux's MemAvailable, /proc/meminfo); None
    where the system does not say."""
    try:
        with open("/proc/meminfo", encoding="ascii") as meminfo:
            for line in meminfo:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    return None


def has_cpu_flag(flag: str) -> bool:
    return flag in cpu_info()["flags"]


def package_versions() -> dict[str, str | None]:
    """{distribution: version} of the packages a run's numbers depend on (None: not installed), the optional
    `openvino` and `nncf` among them (read from their metadata, never imported)."""
    versions: dict[str, str | None] = {}
    for name in _PACKAGES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = None if name in _OPTIONAL_PACKAGES else _replacement_version(name)
    return versions


@lru_cache(maxsize=1)
def _versions_at_start() -> tuple[tuple[str, str | None], ...]:
    """package_versions(), read once a process: the packages it has imported cannot change while it runs, and reading
    every distribution's metadata took ~6 ms of each command (a test process runs thousands)."""
    return tuple(package_versions().items())


def _replacement_version(name: str) -> str | None:
    """'1.24.1 (onnxruntime-gpu)' when another distribution provides the module `name` (onnxruntime-gpu, or
    the older onnxruntime-openvino, install in place of onnxruntime), else None."""
    others = [d for d in metadata.packages_distributions().get(name, []) if d != name]
    return f"{metadata.version(others[0])} ({others[0]})" if others else None


def git_revision(path: Path | None = None) -> str | None:
    try:
        result = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=path or Path.cwd(),
                                capture_output=True, text=True, timeout=5)
    except (OSError, subprocess.SubprocessError):
        return None
    return result.stdout.strip() or None if result.returncode == 0 else None


def gpu_info() -> list[dict[str, Any]]:
    """CUDA devices, if torch is already imported and CUDA is present (never initialises CUDA needlessly)."""
    import sys

    torch = sys.modules.get("torch")
    if torch is None or not torch.cuda.is_available():
        return []
    return [{"name": torch.cuda.get_device_name(i),
             "memory_gb": round(torch.cuda.get_device_properties(i).total_memory / 2**30, 1),
             "capability": ".".join(map(str, torch.cuda.get_device_capability(i)))}
            for i in range(torch.cuda.device_count())]


def fingerprint() -> dict[str, Any]:
    import sys

    torch = sys.modules.get("torch")
    return {
        "host": socket.gethostname(),
        "platform": platform.platform(),
        "python": platform.python_version(),
        "packages": dict(_versions_at_start()),
        "cpu": cpu_info(),
        "gpus": gpu_info(),
        "torch_threads": torch.get_num_threads() if torch is not None else None,
        "world_size": launched_ranks().world_size,  # DDP processes (torchrun); a rate or batch is over all of them
        "threads": {"source": job_threads()[1], "jobs_in_parallel": jobs_in_parallel(),
                    "usable_cores": cpu_info()["usable_cores"]},
        "cuda": getattr(getattr(torch, "version", None), "cuda", None) if torch is not None else None,
        "git_rev": git_revision(),
    }
