#!/usr/bin/env bash
# Issue 17's self-supervised benchmark on a lent GPU machine, in one call with a hard deadline (docs/benchmarks.md).
#
# The machine is bare and offline: cnnlab runs from this checkout (PYTHONPATH) under the machine's own torch, its
# pure-Python dependencies come as wheels in .whl/ (hydra-core, omegaconf, antlr4, torch-pruning, optuna, ...), and
# the Debian package's four Fashion-MNIST files come in .fmnist/ and go where cnnlab finds them offline.
#
#   1. calibrate: SimCLR steps on the GPU at the benchmark's settings give images/s;
#   2. benchmarks/ssl_fashion_mnist.py with as many epochs as fit PRETRAIN_S seconds of SimCLR (all 54,000 training
#      images, ResNet-18 with the CIFAR stem at 32 px, batch 512), the supervised reference of the same budget, the
#      standardised linear probes and the 1 % label-efficiency fine-tunes, everything scored on the 10,000 test images;
#   3. the CUDA tests, if time is left.
# Everything it prints lands in $OUT (log, JSON, kNN plot).
#
#   run: DEADLINE_S=560 PRETRAIN_S=200 bash benchmarks/device_ssl.sh      (carry .whl and .fmnist)
#   dry run here (CPU, the venv's python, tiny): QUICK=1 PYTHON=.venv/bin/python OUT=/tmp/out bash benchmarks/device_ssl.sh
set -u
start=$(date +%s)
DEADLINE_S=${DEADLINE_S:-560}
PRETRAIN_S=${PRETRAIN_S:-200}
PYTHON=${PYTHON:-python3}
OUT=${OUT:-/tmp/device_out}
mkdir -p "$OUT"
elapsed() { echo $(( $(date +%s) - start )); }
left() { echo $(( DEADLINE_S - $(elapsed) )); }
say() { echo "[$(elapsed) s] $*" | tee -a "$OUT/steps.log"; }

if [ -z "${QUICK:-}" ]; then
    "$PYTHON" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --target /tmp/site .whl/*.whl || exit 1
    export PYTHONPATH=/tmp/site:$PWD
    mkdir -p /usr/share/datasets/fashion-mnist && cp .fmnist/*.gz /usr/share/datasets/fashion-mnist/ || exit 1
    nvidia-smi --query-gpu=name,memory.total,driver_version,clocks.max.sm --format=csv | tee "$OUT/gpu.txt"
fi
export PYTHONUNBUFFERED=1
"$PYTHON" -c "import torch, torchvision, cnnlab; print('torch', torch.__version__, 'torchvision', torchvision.__version__,
      'cuda', torch.cuda.is_available(), torch.cuda.get_device_name(0) if torch.cuda.is_available() else '')" \
    | tee -a "$OUT/steps.log"
say "setup done"

if [ -n "${QUICK:-}" ]; then
    MODEL=(--model lenet5); DATA=(dataset=synthetic dataset.image_size=32 dataset.train_size=256 dataset.num_classes=4)
    SSL_ARGS=(--quick); BATCH=32; WORKERS=1; IMAGES=256
else
    MODEL=(--stem cifar); DATA=(dataset=fashion_mnist dataset.image_size=32); BATCH=512; WORKERS=14; IMAGES=54000
    SSL_ARGS=(--train-images 54000 --fractions 0.01 --backbone-lr-scale 0.1 --knn-bank 10000)
fi
PRETRAIN=(trainer.workers=$WORKERS optim.lr=0.1)   # lr: the default 0.05 at batch 256, scaled linearly to 512

# 1. calibration: 30 SimCLR steps (the first ones, so a slight underestimate) → epochs that fit PRETRAIN_S
calib=$(mktemp -d)
model_args=(model=resnet18 model.stem=cifar)
[ -n "${QUICK:-}" ] && model_args=(model=lenet5)
CNNLAB_OUTPUTS=$calib/outputs "$PYTHON" -m cnnlab pretrain method=simclr "${model_args[@]}" "${DATA[@]}" \
    trainer.batch_size=$BATCH trainer.epochs=1 trainer.max_steps_per_epoch=30 "${PRETRAIN[@]}" \
    >"$OUT/calibration.log" 2>&1
ips=$("$PYTHON" -c "import json, pathlib, sys; r = next(pathlib.Path(sys.argv[1]).rglob('run.json'));
print(round(json.loads(r.read_text())['metrics']['train_images_per_s']))" "$calib/outputs" 2>>"$OUT/calibration.log")
rm -rf "$calib"
if [ -z "$ips" ]; then say "calibration failed: see calibration.log"; tail -20 "$OUT/calibration.log"; ips=0; fi
epochs=$(( PRETRAIN_S * ips * 85 / 100 / IMAGES ))   # 85 %: the kNN monitor, precise BN and checkpoints each epoch
[ "$epochs" -lt 5 ] && epochs=5
[ "$epochs" -gt 200 ] && epochs=200
[ -n "${QUICK:-}" ] && epochs=1
say "calibration: SimCLR at $ips images/s → $epochs epochs of $IMAGES images"

# 2. the benchmark, cut at the deadline less 40 s for the tests' start and the files' return
overrides=()
for o in "${PRETRAIN[@]}"; do overrides+=(--pretrain-override "$o"); done
[ "$ips" -gt 0 ] && timeout $(( $(left) - 40 )) "$PYTHON" benchmarks/ssl_fashion_mnist.py "${MODEL[@]}" "${SSL_ARGS[@]}" \
    --epochs "$epochs" --batch-size $BATCH --methods simclr --probes standardised --seeds 0 --threads 16 \
    "${overrides[@]}" --json "$OUT/ssl.json" --plot "$OUT/ssl_knn.png" 2>&1 | tee "$OUT/ssl.log"
say "benchmark done (exit ${PIPESTATUS[0]})"

# 3. the CUDA tests and the files whose behaviour depends on a GPU, while time is left
if [ -z "${QUICK:-}" ] && [ "$(left)" -gt 45 ]; then
    timeout $(( $(left) - 15 )) "$PYTHON" -m pytest -q -n 8 \
        tests/deploy/test_bench.py tests/pipelines/test_bench.py tests/engine/test_runtime.py \
        tests/deploy/test_infer.py tests/data/test_loaders.py tests/pipelines/test_pretrain.py 2>&1 \
        | tee "$OUT/cuda_tests.log" | tail -40
fi
say "end"
