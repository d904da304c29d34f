"""Deployment: plain functions on models and ONNX files, used by export, bench, inspect, prune and quantize.

export.py        export_onnx (dynamic batch, self-describing metadata), read_onnx_metadata, verify_onnx
simplify.py      simplify_onnx (onnxslim)
ort.py           onnx_session (onnxruntime on CPU / CUDA / TensorRT; OpenVINO), evaluate_onnx (accuracy of the file
                 itself), installed_cpu_runtimes
onnx_check.py    check_onnx_file: a file from disk against its metadata; what its output holds (output_kind)
onnx_elementwise.py  unit_squash: a sigmoid written out in elementwise nodes, found by evaluating them
openvino_runtime.py  OpenVinoSession: the openvino package behind onnxruntime's session API, FP32 pinned to f32
bench.py         LatencyStats, time_onnx, time_torch (warm-up, min count and time, CUDA events)
paired.py        time_paired: several files timed in one session (same threads, interleaved rounds), for bench,
                 prune and quantize
subject.py       TimedModel: what bench times (a model file and how to load it), chain_checkpoint
bench_settings.py  BenchSettings (the bench: section, typed once), the backends, bench_device
backends.py      plan_backends: the backends that can run here, and SkippedBackend (what did not, and why)
bench_session.py time_backends / time_paired_backends: one model on every backend, or several paired → BenchTimings
hardware.py      bench.json's hardware section
peak.py          the device's FP32 peak FLOP/s, for the achieved fraction
bench_report.py  bench.json and the terminal table
layers.py        layer_table: the rows of `cnnlab inspect`
receptive_field.py  FieldTracer: receptive fields through a real forward pass
"""
