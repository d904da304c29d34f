#!/usr/bin/env bash
# Short checks on a lent GPU machine, in one call (docs/benchmarks.md): the GPU's own training-step ceiling, the
# cached-feature probe's loader (paired), one real linear probe on Fashion-MNIST, and the CUDA tests.
# Same setup as benchmarks/device_ssl.sh (carry .whl and .fmnist).    run: bash benchmarks/device_checks.sh
set -u
OUT=${OUT:-/tmp/device_out}
mkdir -p "$OUT"
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --target /tmp/site .whl/*.whl || exit 1
export PYTHONPATH=/tmp/site:$PWD PYTHONUNBUFFERED=1
mkdir -p /usr/share/datasets/fashion-mnist && cp .fmnist/*.gz /usr/share/datasets/fashion-mnist/ || exit 1
cd benchmarks
python3 gpu_step.py --batch 1024 2>&1 | tee "$OUT/checks.log"
python3 gpu_step.py --batch 512 2>&1 | tee -a "$OUT/checks.log"
python3 probe_loader.py --device cuda --epochs 2 --rounds 2 2>&1 | tail -4 | tee -a "$OUT/checks.log"
cd ..
probe=$(mktemp -d)
started=$(date +%s)
CNNLAB_OUTPUTS=$probe/outputs python3 -m cnnlab finetune model=resnet18 model.stem=cifar model.weights=none \
    finetune.mode=linear finetune.new_head=true dataset=fashion_mnist dataset.image_size=32 trainer.epochs=20 seed=0 \
    >"$OUT/probe.log" 2>&1
echo "linear probe (random-init ResNet-18, CIFAR stem, 54,000 images, 20 epochs): exit $?, $(( $(date +%s) - started )) s" \
    "in all; $(grep -E 'cached|epoch 20/20' "$OUT/probe.log" | tr -s ' ' | cut -c1-160 | tr '\n' ' ')" | tee -a "$OUT/checks.log"
timeout 150 python3 -m pytest -q -n 8 tests/deploy/test_bench.py tests/pipelines/test_bench.py \
    tests/engine/test_runtime.py tests/deploy/test_infer.py tests/data/test_loaders.py tests/pipelines/test_pretrain.py \
    2>&1 | tee "$OUT/cuda_tests.log" | tail -25
