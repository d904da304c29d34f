"""The names of what cnnlab times models on — PyTorch backends and ONNX runtimes — without importing any of them,
so that code that only reads records (cnnlab report) can check a name without loading torch or onnxruntime."""

from __future__ import annotations

# The runtimes cnnlab times and evaluates ONNX files on, and the devices each runs on here.
RUNTIME_DEVICES = {"onnxruntime": ("cpu", "cuda"), "tensorrt": ("cuda",), "openvino": ("cpu",)}
ONNX_RUNTIMES = tuple(RUNTIME_DEVICES)
TORCH_BACKENDS = ("torch", "torch_compile")
ONNX_BACKENDS = ONNX_RUNTIMES  # onnxruntime, tensorrt (onnxruntime sessions), openvino (its native runtime)
BACKENDS = TORCH_BACKENDS + ONNX_BACKENDS  # what bench.backends and `cnnlab report --backend` accept

# A bench's record of the ONNX file it timed for a model.pt (run.json `model.onnx_origin`): exported for the timing,
# then deleted — the report shows that file's size beside its latency (report/rows.py)
EXPORTED_FOR_BENCH = "exported for this benchmark"
