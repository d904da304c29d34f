"""DDP under torchrun: 2 CPU ranks (gloo) give the result of one process, in one run folder."""

from __future__ import annotations

import csv
import os
import subprocess
import sys
from pathlib import Path

import torch

from helpers import read_run, run_dirs

# No randomness in the data (no crops/flips) and no BatchNorm/dropout in LeNet-5: the only difference
# between 1 process and 2 ranks is the order of floating-point sums in the gradient all-reduce.
# 195 training images: the last global batch (3) splits 2 + 1 over the ranks. DistributedSampler padded it with a
# repeated image (probe 89: 199 images trained and counted as 200); then a rank's single image sat out (probe 92:
# counted over 192), though LeNet-5 has no BatchNorm to starve: 2 ranks were not one process.
# SGD, not Adam: Adam divides by sqrt(v), so where a gradient is near zero the sums' order alone moved a weight
# by up to lr per step (2e-5 on an AVX2-only EPYC, with every loss equal to 1e-5).
COMMON = ["pretrain", "model=lenet5", "dataset=synthetic", "dataset.image_size=16", "dataset.train_size=195",
          "dataset.val_size=64", "dataset.augment.random_crop=false", "dataset.augment.hflip=false",
          "trainer.epochs=2", "trainer.batch_size=64", "trainer.amp=none", "optim=sgd", "optim.lr=0.05",
          "device=cpu"]


def test_two_gloo_ranks_match_a_single_process(cli, outputs: Path, tmp_path: Path) -> None:
    single_out, ddp_out = outputs, tmp_path / "ddp"
    single = cli(*COMMON)  # in this process (one thread, as each rank has): only the ranks need processes
    assert single.code == 0, single.output
    env = {**os.environ, "CNNLAB_OUTPUTS": str(ddp_out), "OMP_NUM_THREADS": "1"}
    proc = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2",
                           "-m", "cnnlab", *COMMON], capture_output=True, text=True, env=env, cwd=tmp_path,
                          timeout=600)
    assert proc.returncode == 0, proc.stdout + proc.stderr

    ddp_dirs = run_dirs(ddp_out, "pretrain")
    assert len(ddp_dirs) == 1, ddp_dirs  # rank 1 wrote no run folder of its own
    log = (ddp_dirs[0] / "run.log").read_text()
    assert "rank 0 of 2 (gloo)" in log
    assert log.count("epoch 2/2") == 1  # one log, written by rank 0
    # probe 56: the epoch line multiplied the job's rate (every rank's images) by the world size again: 2x
    logged = [int(line.split(" img/s")[0].split()[-1]) for line in log.splitlines() if " img/s" in line]
    recorded = [float(row["images_per_s"]) for row in csv.DictReader((ddp_dirs[0] / "metrics.csv").open())]
    assert len(logged) == 2 and all(abs(a - b) <= 1 for a, b in zip(logged, recorded)), (logged, recorded)
    one, two = read_run(run_dirs(single_out, "pretrain")[0]), read_run(ddp_dirs[0])
    assert two["status"] == "completed" and two["environment"]["torch_threads"] >= 1
    assert two["environment"]["world_size"] == 2 and one["environment"]["world_size"] == 1
    for key in ("val_loss", "train_loss"):
        assert abs(one["metrics"][key] - two["metrics"][key]) < 1e-5, (key, one["metrics"], two["metrics"])
    assert abs(one["metrics"]["val_acc"] - two["metrics"]["val_acc"]) <= 1 / 64 + 1e-9
    a = torch.load(run_dirs(single_out, "pretrain")[0] / "model.pt", weights_only=True)["state_dict"]
    b = torch.load(ddp_dirs[0] / "model.pt", weights_only=True)["state_dict"]
    for name in a:
        # float32: the sums' order alone (2.2e-8 after 16 SGD steps, probe 74's check); bf16 autocast would differ
        # by its rounding, which depends on how the batch is split (docs/training.md)
        assert torch.allclose(a[name], b[name], atol=1e-5), name
