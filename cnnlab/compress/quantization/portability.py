"""Whether an INT8 file loads and runs on each runtime it may be deployed on (`quantize.deploy_runtimes`).

A file chosen for being fastest on onnxruntime is no use to a user who deploys on OpenVINO if OpenVINO cannot read
it (QOperator's QLinearConv has no conversion there). So every candidate is opened on each deployment runtime and
run once on a batch of zeros before it may be chosen; what was checked is recorded.
"""

from __future__ import annotations

from pathlib import Path
from typing import Mapping, Sequence

from cnnlab.errors import CnnlabError

LOADS = "loads"  # the recorded verdict of a runtime that opened and ran the file


def check_runtimes(path: Path, runtimes: Sequence[str]) -> dict[str, str]:
    """runtime → "loads", or the one-line reason it cannot open or run `path` (one image of zeros, batch 1)."""
    from cnnlab.deploy.openvino_runtime import first_reason
    from cnnlab.deploy.ort import example_feed, onnx_session, session_io

    verdicts = {}
    for runtime in runtimes:
        try:
            session = onnx_session(path, threads=1, runtime=runtime)
            batch = session.get_inputs()[0].shape[0]  # a file fixed to batch 4 runs at 4 (probe 94), else at 1
            session.run([session_io(session)[1]], example_feed(session, batch if isinstance(batch, int) and batch > 0
                                                                else 1))
            verdicts[runtime] = LOADS
        except CnnlabError as err:
            verdicts[runtime] = err.message
        except Exception as exc:  # noqa: BLE001 - a runtime's own error types when the file loads but cannot run
            verdicts[runtime] = first_reason(exc)  # past OpenVINO's "Exception from src/..." (probe 90: all it said)
    return verdicts


def unreadable(verdicts: Mapping[str, str]) -> list[str]:
    """The runtimes of `verdicts` that could not open or run the file."""
    return [runtime for runtime, verdict in verdicts.items() if verdict != LOADS]
