#!/usr/bin/env bash
# Issue 16's Fashion-MNIST rows that the 2-core CPU cannot train in a session, on a lent GPU machine, in one call with
# a hard deadline (docs/benchmarks.md, "ResNet-18 with the CIFAR stem"). Setup: benchmarks/device_setup.sh.
#
# Per seed, in the order 1, 2, 0 (seed 0 was trained on the CPU: rerun last, for a set from one machine), as long as
# the time left allows another whole seed: benchmarks/fashion_mnist.py with the CPU row's recipe — `cnnlab pretrain
# model=resnet18 model.stem=cifar dataset=fashion_mnist trainer.epochs=15` (SGD 0.05 Nesterov, cosine, batch 64,
# flip + random crop), the augmentation kept in 14 DataLoader workers (trainer.augment_on=workers: the CPU row's
# per-image path, so only the device differs) — then export → evaluate split=test, quantize (PTQ, chosen by
# measurement on this host's CPU) → evaluate, prune 0.5 with --recovery-epochs → evaluate. Each seed writes its own
# JSON and log into $OUT, so a seed cut by the deadline costs only itself.
#
#   run: DEADLINE_S=570 bash benchmarks/device_fmnist.sh      (carry .whl and .fmnist)
#   dry run here (CPU, the venv's python, tiny): QUICK=1 PYTHON=.venv/bin/python OUT=/tmp/out bash benchmarks/device_fmnist.sh
set -u
DEADLINE_S=${DEADLINE_S:-570}
. benchmarks/device_setup.sh

RECOVERY=${RECOVERY:-3}
if [ -n "${QUICK:-}" ]; then
    ARGS=(--quick --model lenet5 --threads 2); SEED_S=60
else
    ARGS=(--model resnet18 --epochs 15 --threads 16 --recovery-epochs "$RECOVERY"
          --train-override model.stem=cifar --train-override trainer.workers=14
          --train-override trainer.augment_on=workers)
    SEED_S=${SEED_S:-240}  # a first guess of one seed's time; the first seed's own time replaces it
fi

for seed in 1 2 0; do
    if [ "$(left)" -lt $(( SEED_S + 15 )) ]; then
        say "seed $seed left out: $(left) s left, a seed takes ~$SEED_S s"
        continue
    fi
    began=$(elapsed)
    say "seed $seed"
    timeout $(( $(left) - 15 )) "$PYTHON" benchmarks/fashion_mnist.py "${ARGS[@]}" --seeds "$seed" \
        --json "$OUT/fmnist_resnet18_seed$seed.json" > "$OUT/fmnist_seed$seed.log" 2>&1
    code=$?
    tail -12 "$OUT/fmnist_seed$seed.log"
    SEED_S=$(( $(elapsed) - began ))
    say "seed $seed done (exit $code, $SEED_S s)"
done
