#!/usr/bin/env bash
# Short checks on a lent GPU machine, in one call (docs/benchmarks.md): pretraining's images/s with the augmentation
# in the DataLoader workers vs on the GPU, in the product (paired, interleaved: benchmarks/augment_on.py), the step's
# parts apart (benchmarks/ssl_step_parts.py), and the CUDA tests of the files whose behaviour depends on a GPU.
# Setup: benchmarks/device_setup.sh (carry .whl and .fmnist).    run: bash benchmarks/device_checks.sh
set -u
. benchmarks/device_setup.sh
"$PYTHON" benchmarks/augment_on.py --steps 60 --rounds 2 --batch-size 512 --workers 14 --device cuda \
    --json "$OUT/augment_on.json" 2>&1 | tee "$OUT/checks.log"
"$PYTHON" benchmarks/ssl_step_parts.py --batch 512 --workers 14 --batches 30 2>&1 | tee -a "$OUT/checks.log"
timeout 150 "$PYTHON" -m pytest -q -n 8 tests/deploy/test_bench.py tests/pipelines/test_bench.py \
    tests/engine/test_runtime.py tests/deploy/test_infer.py tests/data/test_loaders.py tests/data/test_batch_augment.py \
    tests/steps/test_augment_on.py tests/pipelines/test_pretrain.py 2>&1 | tee "$OUT/cuda_tests.log" | tail -25
