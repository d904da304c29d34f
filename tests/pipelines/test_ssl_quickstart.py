"""`cnnlab pipeline experiment=ssl_quickstart`, end to end at test size: SimCLR pretrain → fine-tune from its
backbone → prune → INT8 → the paired bench → the report.

The experiment's own plan runs — its stages, `@stage` links and settings as the YAML declares them — with a few
overrides appended to each stage (a later `key=value` wins), so the chain takes seconds instead of minutes:
LeNet-5 in place of ResNet-18, a 72-image SimCLR pass of two steps, two fine-tuning steps, one quantization
format and a short bench.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from omegaconf import OmegaConf

from cnnlab.runs import RunInfo, iter_runs
from cnnlab.steps.plan import build_plan

EXPERIMENT = Path(__file__).resolve().parents[2] / "cnnlab" / "conf" / "experiment" / "ssl_quickstart.yaml"

# Appended to each stage's own overrides.
TEST_SIZE = {
    "pretrain": ["model=lenet5", "dataset.label_fraction=0.05", "trainer.epochs=1", "trainer.max_steps_per_epoch=2",
                 "trainer.batch_size=32", "method.knn.bank_size=64", "trainer.amp=none"],
    "finetune": ["trainer.epochs=1", "trainer.max_steps_per_epoch=2", "trainer.amp=none"],
    "prune": ["trainer.epochs=1", "trainer.max_steps_per_epoch=2", "prune.measure=false", "trainer.amp=none"],
    "quantize": ["quantize.format=qdq_u8s8", "quantize.calib_batches=1", "quantize.calib_batch_size=16",
                 "quantize.bench_rounds=1", "quantize.bench_warmup=1", "quantize.bench_min_iters=2",
                 "quantize.bench_min_seconds=0", "quantize.bench_threads=1"],
}
BENCH = ["pipeline.bench.threads=1", "pipeline.bench.min_seconds=0.02", "pipeline.bench.rounds=2"]


def shrunk_plan() -> list[str]:
    """`pipeline.plan.<stage>.overrides=[...]`: each stage's declared overrides, then TEST_SIZE's."""
    plan = OmegaConf.to_container(OmegaConf.load(EXPERIMENT).pipeline.plan)
    assert set(plan) == set(TEST_SIZE), "a stage was added or renamed: give it test-size overrides here"
    lines = []
    for name, stage in plan.items():
        quoted = ",".join(f"'{o}'" for o in [*stage["overrides"], *TEST_SIZE[name]])
        lines.append(f"pipeline.plan.{name}.overrides=[{quoted}]")
    return lines


def test_the_ssl_quickstart_plan_chains_simclr_to_int8() -> None:
    """The experiment as declared (fast: no stage runs; the end-to-end test below is marked slow): SimCLR on the
    images, a fine-tune from its backbone on 10 % of the labels, prune and INT8 from the fine-tune, one bench."""
    plan = OmegaConf.to_container(OmegaConf.load(EXPERIMENT).pipeline.plan)
    stages = {s.name: s for s in build_plan(plan, export=True, bench={"backends": ["onnxruntime"], "batch_sizes": [1],
                                                                      "min_seconds": 0.1})}
    assert list(stages) == ["pretrain", "pretrain.export", "finetune", "finetune.export", "prune", "quantize", "bench"]
    assert "method=simclr" in stages["pretrain"].overrides and stages["pretrain"].command == "pretrain"
    assert "model.weights=@pretrain" in stages["finetune"].overrides and stages["finetune"].inputs == ["pretrain"]
    assert "dataset.label_fraction=0.1" in stages["finetune"].overrides
    assert stages["prune"].inputs == stages["quantize"].inputs == ["finetune"]


@pytest.mark.slow  # seven cnnlab processes: ~2 min on an idle 2-core machine, more under load
def test_ssl_quickstart_runs_simclr_to_int8_and_reports(cli, outputs: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OMP_NUM_THREADS", "1")  # every stage is a child process
    result = cli("pipeline", "experiment=ssl_quickstart", *shrunk_plan(), *BENCH)
    assert result.code == 0, result.output
    workspace = outputs / "pipeline" / "ssl_quickstart"
    runs = {r.data["pipeline"]["stage"]: r for r in iter_runs(workspace / "runs")}
    assert set(runs) == {"pretrain", "pretrain.export", "finetune", "finetune.export", "prune", "quantize", "bench"}
    assert all(r.status == "completed" for r in runs.values()), {k: r.status for k, r in runs.items()}
    (record,) = [r.data for r in iter_runs(workspace) if r.command == "pipeline"]
    assert record["status"] == "completed" and {s["how"] for s in record["pipeline"]["stages"].values()} == {"ran"}

    pretrain = runs["pretrain"].data
    assert pretrain["pretrain"]["method"] == "simclr" and "knn_acc" in pretrain["metrics"]
    assert pretrain["pretrain"]["views"]["hflip"] is False and pretrain["pretrain"]["views"]["crop_scale"] == [0.2, 1.0]
    finetune = runs["finetune"]
    assert finetune.data["dataset"]["name"] == "digits" and finetune.data["dataset"]["label_fraction"] == 0.1
    assert str(runs["pretrain"].path) in json.dumps(finetune.data["model"])  # started from the SimCLR backbone
    assert RunInfo.read(runs["prune"].path).data["source"]["run"] == str(finetune.path)

    report = json.loads((workspace / "report.json").read_text())
    commands = {row["command"] for row in report["rows"]}
    assert {"finetune", "prune", "quantize"} <= commands, commands
    assert (workspace / "report.md").is_file() and (workspace / "report.png").is_file()
