#!/usr/bin/env bash
# Issue 17's self-supervised benchmark on a lent GPU machine, in one call with a hard deadline (docs/benchmarks.md).
#
# The machine is readied by benchmarks/device_setup.sh (carry .whl and .fmnist).
#
#   1. the CUDA tests of the batched augmentation (data/batch_augment.py) and of pretraining on the GPU;
#   2. benchmarks/augment_on.py: SimCLR's images/s with the augmentation in 14 DataLoader workers vs on the GPU,
#      paired and interleaved — the device rate also sets the epochs below;
#   3. benchmarks/ssl_fashion_mnist.py with as many epochs as fit the time left (all 54,000 training images,
#      ResNet-18 with the CIFAR stem at 32 px, batch 512, trainer.augment_on=auto: on the GPU), the supervised
#      reference of the same images x epochs and the three standardised linear probes, scored on the 10,000 test
#      images (the label-efficiency fine-tunes are left out: the CPU runs measured them).
# Everything it prints lands in $OUT (log, JSON, kNN plot).
#
#   run: DEADLINE_S=570 bash benchmarks/device_ssl.sh      (carry .whl and .fmnist)
#   dry run here (CPU, the venv's python, tiny): QUICK=1 PYTHON=.venv/bin/python OUT=/tmp/out bash benchmarks/device_ssl.sh
set -u
DEADLINE_S=${DEADLINE_S:-570}
. benchmarks/device_setup.sh

if [ -n "${QUICK:-}" ]; then
    MODEL=(--model lenet5); SSL_ARGS=(--quick); AUG_ARGS=(--quick --device cpu); IMAGES=256; WORKERS=1
else
    MODEL=(--stem cifar); IMAGES=54000; WORKERS=14
    SSL_ARGS=(--train-images 54000 --fractions --knn-bank 10000 --batch-size 512)
    AUG_ARGS=(--steps 40 --rounds 2 --batch-size 512 --workers $WORKERS --device cuda)
fi

# 1. the CUDA tests of what this call relies on
if [ -z "${QUICK:-}" ]; then
    timeout 60 "$PYTHON" -m pytest -q -p no:cacheprovider tests/data/test_batch_augment.py tests/steps/test_augment_on.py \
        tests/pipelines/test_pretrain.py -k "cuda" 2>&1 | tee "$OUT/cuda_tests.log" | tail -8
    say "CUDA tests done"
fi

# 2. augmentation in the workers vs on the GPU, paired; the GPU's rate sets the epochs
"$PYTHON" benchmarks/augment_on.py "${AUG_ARGS[@]}" --json "$OUT/augment_on.json" 2>&1 | tee "$OUT/augment_on.log"
ips=$("$PYTHON" -c "import json, statistics, sys; print(round(statistics.median(json.load(open(sys.argv[1]))
['images_per_s']['device'])))" "$OUT/augment_on.json" 2>>"$OUT/steps.log")
[ -z "$ips" ] && ips=2000
# time left after the supervised run (~half of SimCLR's) and three probes with their test scores (~80 s each)
pretrain_s=$(( ($(left) - 280) * 2 / 3 ))
# an epoch: its images at the measured rate, plus ~3 s of kNN monitor, precise BN and checkpoint
epochs=$(( pretrain_s * ips / (IMAGES + 3 * ips) ))
[ "$epochs" -lt 3 ] && epochs=3
[ "$epochs" -gt 200 ] && epochs=200
[ -n "${QUICK:-}" ] && epochs=1
say "SimCLR on the GPU at $ips images/s: $epochs epochs of $IMAGES images in ~$pretrain_s s"

# 3. the benchmark, cut at the deadline less 15 s for the files' return
timeout $(( $(left) - 15 )) "$PYTHON" benchmarks/ssl_fashion_mnist.py "${MODEL[@]}" "${SSL_ARGS[@]}" \
    --epochs "$epochs" --methods simclr --probes standardised --seeds 0 --threads 16 \
    --pretrain-override trainer.workers=$WORKERS --pretrain-override optim.lr=0.1 \
    --json "$OUT/ssl.json" --plot "$OUT/ssl_knn.png" 2>&1 | tee "$OUT/ssl.log"
say "benchmark done (exit ${PIPESTATUS[0]})"
