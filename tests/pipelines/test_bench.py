"""`cnnlab bench`: bench.json and run.json records per backend and batch size, skips with reasons, bad input."""

from __future__ import annotations

import sys

import json
import re
import shutil
from dataclasses import replace
from pathlib import Path

import onnx
import onnxruntime as ort
import pytest
import torch

from cnnlab.data.spec import InputSpec
from cnnlab.deploy.export import export_onnx, read_onnx_metadata, set_metadata
from cnnlab.engine.checkpoint import load_model
from cnnlab.models import count_params, create_model
from helpers import HAS_OPENVINO, QUANTIZE_QUICK_TIMING, only_run, read_run, run_dirs

QUICK = ["bench.warmup=1", "bench.min_iters=3", "bench.min_seconds=0", "bench.threads=1"]


def bench_json(outputs: Path) -> dict:
    return json.loads((run_dirs(outputs, "bench")[0] / "bench.json").read_text())


def test_bench_of_an_export_times_the_onnx_file_and_its_pytorch_model(cli, outputs: Path, tiny_run: Path) -> None:
    assert cli("export", "source=latest:pretrain", "export.evaluate=false").code == 0
    result = cli("bench", "source=latest:export", "bench.batch_sizes=[1,4]", *QUICK)
    assert result.code == 0, result.output
    assert "on cpu, 1 thread: " in result.output  # not "1 threads" (probe 187)
    document, record = bench_json(outputs), only_run(outputs, "bench")
    export_dir, pretrain_dir = run_dirs(outputs, "export")[0], run_dirs(outputs, "pretrain")[0]
    assert document["schema"] == "cnnlab.bench/1" and document["skipped"] == []
    assert [(r["backend"], r["batch_size"]) for r in document["records"]] == \
        [("torch", 1), ("torch", 4), ("onnxruntime", 1), ("onnxruntime", 4)]
    for r in document["records"]:
        assert r["device"] == "cpu" and r["threads"] == 1 and r["iterations"] >= 3
        assert 0 < r["p50_ms"] <= r["p99_ms"] and r["throughput"] > 0 and r["gflops_per_s"] > 0
    files = {r["backend"]: r["file"] for r in document["records"]}
    assert files == {"torch": str(pretrain_dir / "model.pt"), "onnxruntime": str(export_dir / "model.onnx")}
    model = document["model"]
    assert model["onnx_bytes"] == (export_dir / "model.onnx").stat().st_size and model["onnx_origin"] == "source"
    assert model["pt_bytes"] == (pretrain_dir / "model.pt").stat().st_size and model["params"] > 0
    assert model["flops"] > 0 and model["image_size"] == 16
    assert document["hardware"]["peak"]["basis"] and document["environment"]["packages"]["onnxruntime"]
    assert document["settings"]["threads"] == 1 and document["source"]["command"] == "export"
    assert record["artifacts"]["bench"] == "bench.json" and len(record["metrics"]["latency"]) == 4
    # the timed runs behind each p50 reach run.json, which the report reads (probe 134: a 1-run p50 unsaid)
    assert [r["iterations"] for r in record["metrics"]["latency"]] == [r["iterations"] for r in document["records"]]
    assert record["model"]["onnx_bytes"] == model["onnx_bytes"] and record["dataset"]["name"] == "synthetic"
    assert "onnxruntime" in result.stdout and "p50 ms" in result.stdout


def test_bench_of_a_zoo_model_exports_a_temporary_onnx(cli, outputs: Path) -> None:
    result = cli("bench", "model=lenet5", "dataset.image_size=24", "bench.num_classes=7", "bench.batch_sizes=[2]",
                 *QUICK)
    assert result.code == 0, result.output
    document = bench_json(outputs)
    assert [r["backend"] for r in document["records"]] == ["torch", "onnxruntime"]
    model = document["model"]
    assert (model["name"], model["image_size"], model["num_classes"]) == ("lenet5", 24, 7)
    assert model["onnx_origin"] == "exported for this benchmark" and model["onnx_file"] is None
    assert model["onnx_bytes"] > 0 and document["source"] is None
    assert not list(run_dirs(outputs, "bench")[0].glob("*.onnx"))


def test_an_onnx_file_without_a_pytorch_model_skips_torch_with_the_reason(cli, outputs: Path, tmp_path: Path) -> None:
    path = export_onnx(create_model("lenet5", 3, 16), tmp_path / "alone.onnx", spec=InputSpec(16),
                       classes=["a", "b", "c"])
    result = cli("bench", f"source={path}", "bench.batch_sizes=[1]", *QUICK)
    assert result.code == 0, result.output
    document = bench_json(outputs)
    assert [r["backend"] for r in document["records"]] == ["onnxruntime"]
    assert document["skipped"] == [{"backend": "torch", "batch_size": None,
                                    "reason": "the source chain holds no model.pt"}]
    assert "skipped torch" in result.stdout


ZOO = ["model=lenet5", "dataset.image_size=16"]


@pytest.mark.parametrize("args, message", [
    ([*ZOO, "bench.batch_sizes=[1,0]"], "bench.batch_sizes=[1,0] is not allowed"),
    ([*ZOO, "bench.backends=[torch,jax]"], "unknown backend jax"),
    ([*ZOO, "bench.backends=[tensorrt]"], "runs on CUDA only"),
    ([*ZOO, "bench.threads=0"], "bench.threads=0"),
    (["source=latest:export"], "matches no completed `cnnlab export` run"),
    ([*ZOO, "source=latest:export"], "would be ignored — drop model=lenet5 (or drop source= to use model=)"),
    # probe 170: refused in one line, but after its run folder was made, which it left `failed`
    (["model=alexnet", "bench.image_size=31"], "alexnet needs images of at least 32 px, got bench.image_size=31"),
])
def test_bad_input_is_one_line(cli, outputs: Path, args: list[str], message: str) -> None:
    result = cli("bench", *QUICK, *args)
    assert result.code == 2 and message in result.stderr, result.output
    assert "Traceback" not in result.stderr and result.stderr.count("error:") == 1
    assert not run_dirs(outputs, "bench")  # refused before any work: no `failed` run left


def _one_error_line(result) -> str:
    """The error of a command refused before anything ran: exit 2, one `error:` line, no traceback."""
    assert result.code == 2 and "Traceback" not in result.output, result.output
    [line] = [ln for ln in result.stderr.splitlines() if ln.startswith("error")]
    return line


def _timed(outputs: Path) -> dict:
    """bench.json of the one bench run that timed (the refused ones before it wrote none)."""
    [timed] = [d for d in run_dirs(outputs, "bench") if (d / "bench.json").exists()]
    return json.loads((timed / "bench.json").read_text())


def test_a_batch_size_listed_twice_is_refused_with_the_list_that_times_it_once(cli, outputs: Path) -> None:
    """bench.batch_sizes=[1,1] timed batch 1 twice and wrote two batch-1 records with different numbers."""
    line = _one_error_line(cli("bench", *QUICK, *ZOO, "bench.batch_sizes=[8,1,8,1,32]"))
    assert "bench.batch_sizes=[8,1,8,1,32] lists batch size 8, 1 more than once" in line
    assert "use bench.batch_sizes=[8,1,32]" in line
    line = _one_error_line(cli("bench", *QUICK, *ZOO, "bench.batch_sizes=[1,1]"))
    assert "bench.batch_sizes=[1,1] lists batch size 1 more than once" in line
    fixed = re.search(r"bench\.batch_sizes=\[[0-9,]+\]$", line).group(0)
    result = cli("bench", *QUICK, *ZOO, "bench.backends=[torch]", fixed)
    assert result.code == 0, result.output
    assert [r["batch_size"] for r in _timed(outputs)["records"]] == [1]


def test_an_empty_backend_list_is_its_own_line_with_a_fix_that_works(cli, outputs: Path) -> None:
    """bench.backends=[] said "unknown backend (none) in bench.backends"."""
    line = _one_error_line(cli("bench", *QUICK, *ZOO, "bench.backends=[]", "bench.batch_sizes=[1]"))
    assert "bench.backends is empty" in line and "unknown backend" not in line and "(none)" not in line
    fix = re.search(r"bench\.backends=\[\w+\]", line).group(0)
    assert fix == "bench.backends=[onnxruntime]" and "bench.backends=auto" in line
    result = cli("bench", *QUICK, *ZOO, fix, "bench.batch_sizes=[1]")
    assert result.code == 0, result.output
    assert [r["backend"] for r in _timed(outputs)["records"]] == ["onnxruntime"]
    # a backend named twice was timed twice, into two records with different numbers (as a batch size was)
    line = _one_error_line(cli("bench", *QUICK, *ZOO, "bench.backends=[onnxruntime,onnxruntime]"))
    assert "bench.backends=[onnxruntime,onnxruntime] lists backend onnxruntime more than once" in line
    assert "use bench.backends=[onnxruntime]" in line


def test_an_onnx_file_that_does_not_load_is_one_line(cli, tmp_path: Path) -> None:
    bad = tmp_path / "broken.onnx"
    bad.write_bytes(b"definitely not protobuf" * 5)
    result = cli("bench", f"source={bad}", *QUICK)
    assert result.code == 2 and "not a readable ONNX model" in result.stderr and "Traceback" not in result.stderr


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has a GPU")
def test_device_cuda_without_a_gpu_is_a_clear_error(cli) -> None:
    result = cli("bench", "--device", "cuda", "model=lenet5", "dataset.image_size=16", *QUICK)
    assert result.code == 2 and "no CUDA GPU is visible" in result.stderr and "Traceback" not in result.stderr


@pytest.mark.cuda
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_device_cuda_times_pytorch_on_the_gpu(cli, outputs: Path) -> None:
    result = cli("bench", "--device", "cuda", "model=resnet18", "dataset.image_size=64", "bench.backends=[torch]",
                 "bench.batch_sizes=[1,8]", *QUICK)
    assert result.code == 0, result.output
    document = bench_json(outputs)
    assert [r["device"] for r in document["records"]] == ["cuda:0", "cuda:0"]
    assert document["hardware"]["gpus"] and document["hardware"]["peak"]["gflops"]


@pytest.mark.cuda
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_device_cuda_with_onnxruntime(cli, outputs: Path) -> None:
    result = cli("bench", "--device", "cuda", "model=lenet5", "dataset.image_size=16", "bench.batch_sizes=[2]",
                 *QUICK)
    if "CUDAExecutionProvider" not in ort.get_available_providers():
        # The default backends: PyTorch is timed on the GPU and onnxruntime is skipped with the reason, never
        # silently run on the CPU; asked for by name, it is a clear one-line error.
        assert result.code == 0, result.output
        document = bench_json(outputs)
        assert {r["backend"] for r in document["records"]} == {"torch"}
        assert any(s["backend"] == "onnxruntime" and "onnxruntime-gpu" in s["reason"] for s in document["skipped"])
        named = cli("bench", "--device", "cuda", "model=lenet5", "dataset.image_size=16", "bench.backends=[onnxruntime]",
                    *QUICK)
        assert named.code == 2 and "onnxruntime-gpu" in named.stderr and "Traceback" not in named.stderr
        return
    assert result.code == 0, result.output
    document = bench_json(outputs)
    assert {r["backend"] for r in document["records"]} >= {"torch", "onnxruntime"}
    assert all(r["device"] == "cuda:0" for r in document["records"])
    assert {s["backend"] for s in document["skipped"]} <= {"tensorrt"}


def test_bench_auto_device_is_the_cpu_even_beside_a_gpu(monkeypatch: pytest.MonkeyPatch) -> None:
    from cnnlab.deploy.bench_settings import bench_device

    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)  # as on a machine that trains on a GPU
    assert bench_device("auto") == torch.device("cpu") and bench_device(None) == torch.device("cpu")
    assert bench_device("cpu") == torch.device("cpu")


def test_openvino_on_cuda_is_refused_before_anything_runs() -> None:
    from omegaconf import OmegaConf

    from cnnlab.errors import CnnlabError
    from cnnlab.deploy.backends import plan_backends
    from cnnlab.deploy.bench_settings import BenchSettings

    section = OmegaConf.create({"backends": ["torch", "openvino"], "batch_sizes": [1], "threads": 1, "warmup": 1,
                                "min_iters": 1, "min_seconds": 0})
    with pytest.raises(CnnlabError, match="openvino runs on the CPU only"):
        plan_backends(BenchSettings.from_config(section), "cuda")


def test_openvino_without_its_package_is_skipped_with_the_extra_to_install(cli, outputs: Path,
                                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "openvino", None)  # `import openvino` raises ImportError: not installed
    zoo = ["model=lenet5", "dataset.image_size=16", "bench.batch_sizes=[1]", *QUICK]
    result = cli("bench", *zoo, "bench.backends=[onnxruntime,openvino]")
    assert result.code == 0, result.output
    document = bench_json(outputs)
    assert [r["backend"] for r in document["records"]] == ["onnxruntime"]
    [skipped] = document["skipped"]
    assert skipped["backend"] == "openvino" and 'pip install "cnnlab[openvino]"' in skipped["reason"]
    alone = cli("bench", *zoo, "bench.backends=[openvino]")
    assert alone.code == 2 and "cnnlab[openvino]" in alone.stderr and "Traceback" not in alone.output


@pytest.mark.skipif(not HAS_OPENVINO, reason='needs pip install "cnnlab[openvino]"')
def test_openvino_times_the_same_file_beside_onnxruntime(cli, outputs: Path) -> None:
    result = cli("bench", "model=lenet5", "dataset.image_size=16", "bench.batch_sizes=[1,4]",
                 "bench.backends=[onnxruntime,openvino]", *QUICK)
    assert result.code == 0, result.output
    document = bench_json(outputs)
    assert [(r["backend"], r["batch_size"]) for r in document["records"]] == \
        [("onnxruntime", 1), ("onnxruntime", 4), ("openvino", 1), ("openvino", 4)]
    assert document["skipped"] == []
    assert all(r["p50_ms"] > 0 and r["threads"] == 1 for r in document["records"])


def test_several_sources_are_timed_interleaved_in_one_paired_session(cli, outputs: Path, tiny_run: Path) -> None:
    assert cli("export", "source=latest:pretrain", "export.evaluate=false").code == 0
    pretrain_dir, export_dir = run_dirs(outputs, "pretrain")[0], run_dirs(outputs, "export")[0]
    result = cli("bench", f"source=[{pretrain_dir},{export_dir}]", "bench.rounds=2", "bench.batch_sizes=[1]", *QUICK)
    assert result.code == 0, result.output
    document, record = bench_json(outputs), only_run(outputs, "bench")
    assert [s["model"]["name"] for s in document["subjects"]] == ["lenet5", "lenet5"]
    assert document["model"] is None and document["settings"]["rounds"] == 2
    assert [(r["backend"], r["subject"]) for r in document["records"]] == [("onnxruntime", 0), ("onnxruntime", 1)]
    assert all(len(r["p50_ms_per_round"]) == 2 and r["iterations"] >= 3 for r in document["records"])
    assert document["skipped"] == [{"backend": "torch", "batch_size": None,
                                    "reason": "a paired session times ONNX files only"}]
    assert [s["run"] for s in record["paired"]["subjects"]] == [str(pretrain_dir), str(export_dir)]
    assert [r["subject"] for r in record["metrics"]["latency"]] == [0, 1]
    assert "interleaved rounds" in result.stdout and "vs the first" in result.stdout

    alone = cli("bench", f"source=[{export_dir}]", *QUICK)
    assert alone.code == 2 and "a paired session times two or more" in alone.stderr


@pytest.mark.parametrize("size_args, key", [(["dataset.image_size=16"], "dataset.image_size"),
                                            (["bench.image_size=16"], "bench.image_size")])
def test_a_size_too_small_for_the_model_names_the_key_that_set_it(cli, size_args: list[str], key: str) -> None:
    """AlexNet at 16 px said "set image_size to 32": no such key; the fix must be one the user can type."""
    result = cli("bench", "model=alexnet", "bench.backends=[torch]", "bench.batch_sizes=[1]", *QUICK, *size_args)
    assert result.code == 2 and "Traceback" not in result.output, result.output
    assert f"got {key}=16" in result.stderr and f"set {key}=32 or more" in result.stderr
    fixed = [f"{key}=32" if arg.startswith(key) else arg for arg in size_args]
    assert cli("bench", "model=alexnet", "bench.backends=[torch]", "bench.batch_sizes=[1]", *QUICK, *fixed).code == 0


def test_an_fp16_file_is_timed_itself_not_only_its_fp32_model_pt(cli, outputs: Path, tiny_export: Path,
                                                               tmp_path: Path) -> None:
    """bench of an FP16 file exited 0 with onnxruntime skipped (float32 fed to a float16 input) and only the FP32
    model.pt named in its metadata timed."""
    from onnx_variants import to_float16

    half = to_float16(tiny_export, tmp_path / "fp16.onnx")
    result = cli("bench", f"source={half}", "bench.batch_sizes=[1,2]", *QUICK)
    assert result.code == 0, result.output
    document = bench_json(outputs)
    assert [(r["backend"], r["batch_size"], r["file"]) for r in document["records"]] == \
        [("onnxruntime", 1, str(half)), ("onnxruntime", 2, str(half))]
    assert document["model"]["precision"] == "fp16"
    reason = "an FP16 file has no PyTorch twin (its model.pt chain is the FP32 model)"
    assert document["skipped"] == [{"backend": "torch", "batch_size": None, "reason": reason}]


def test_a_source_file_no_onnx_backend_could_time_fails_the_run(cli, outputs: Path, tiny_export: Path,
                                                               monkeypatch: pytest.MonkeyPatch) -> None:
    """Timing only the model.pt behind an ONNX source, with the file itself skipped, is no answer: exit 2."""
    from cnnlab.deploy import bench_session
    from cnnlab.errors import CnnlabError

    def cannot_run(path, batch, **_):
        raise CnnlabError(f"onnxruntime cannot run {path} at batch {batch}: some reason")

    monkeypatch.setattr(bench_session, "time_onnx", cannot_run)
    result = cli("bench", f"source={tiny_export}", "bench.batch_sizes=[1]", *QUICK)
    assert result.code == 2 and f"{tiny_export} itself was not timed" in result.stderr, result.output
    assert "some reason" in result.stderr and "Traceback" not in result.stderr
    assert cli("bench", f"source={tiny_export}", "bench.batch_sizes=[1]", "bench.backends=[torch]",
               *QUICK).code == 0  # the PyTorch model alone, asked for by name


def test_a_fixed_batch_file_is_refused_before_timing_with_the_batch_sizes_that_fit(cli, outputs: Path,
                                                                                  tiny_export: Path,
                                                                                  tmp_path: Path) -> None:
    """A file with a fixed batch of 3 failed with onnxruntime's cut-off "Got invalid dimensions for input: input
    for the following indices"."""
    from onnx_variants import with_fixed_batch

    fixed = with_fixed_batch(tiny_export, tmp_path / "fixed_batch3.onnx", 3)
    result = cli("bench", f"source={fixed}", *QUICK)
    said = " ".join(result.stderr.split())
    assert result.code == 2 and "fixed batch dimension of 3" in said and "batch 1, 8, 32" in said, result.output
    assert "bench.batch_sizes=[3]" in said and "dynamic batch" in said and "cnnlab export" in said
    assert "invalid dimensions" not in result.output and "Traceback" not in result.output
    assert not any((d / "bench.json").exists() for d in run_dirs(outputs, "bench"))  # nothing was timed
    result = cli("bench", f"source={fixed}", "bench.batch_sizes=[3]", *QUICK)
    assert result.code == 0, result.output
    [timed] = [d for d in run_dirs(outputs, "bench") if (d / "bench.json").exists()]
    assert {(r["backend"], r["batch_size"]) for r in json.loads((timed / "bench.json").read_text())["records"]} == \
        {("torch", 3), ("onnxruntime", 3)}
    paired = cli("bench", f"source=[{tiny_export},{fixed}]", "bench.batch_sizes=[1]", *QUICK)
    assert paired.code == 2 and "fixed batch dimension of 3" in paired.stderr, paired.output


def test_a_peak_given_is_the_basis_of_every_percent_of_peak_paired_or_not(cli, outputs: Path,
                                                                           tiny_export: Path) -> None:
    """Probe 177: `bench source=[A,B] bench.peak_gflops=100` recorded 100 as the peak and divided every GFLOP/s by
    the estimate (78.3): 36.42 GFLOP/s read 46.5 % of peak, not 36.4 %. A single source was right."""
    for source in (f"source={tiny_export}", f"source=[{tiny_export},{tiny_export}]"):
        result = cli("bench", source, "bench.batch_sizes=[1]", "bench.backends=[onnxruntime]",
                     "bench.peak_gflops=1000", *QUICK)
        assert result.code == 0, result.output
        document = json.loads((run_dirs(outputs, "bench")[-1] / "bench.json").read_text())
        assert document["hardware"]["peak"]["gflops"] == 1000
        records = document["records"]
        assert records and all(r["peak_fraction"] == pytest.approx(r["gflops_per_s"] / 1000) for r in records)
    # above 100 % in a paired session: said, with the model, as a single source's is (it was not)
    assert cli("bench", source, "bench.batch_sizes=[1]", "bench.backends=[onnxruntime]", "bench.peak_gflops=0.000001",
               *QUICK).code == 0
    warnings = read_run(run_dirs(outputs, "bench")[-1])["warnings"]
    said = "% peak above 100 % (lenet5 (model 1) onnxruntime at batch 1: "
    assert any(w.startswith(said) for w in warnings), warnings


def test_a_batch_whose_input_alone_exceeds_the_memory_is_refused_before_any_work(cli, outputs: Path, tiny_export: Path,
                                                                                 monkeypatch) -> None:
    """bench.batch_sizes=[10000000] of a 16-px model: 30.7 GB of float32 input; the timing would allocate it and the
    kernel's out-of-memory kill would leave no message and a run recorded `running`. Here 1 MB is available."""
    from cnnlab.deploy import subject

    monkeypatch.setattr(subject, "available_memory", lambda: 1_000_000)
    for source in (f"source={tiny_export}", f"source=[{tiny_export},{tiny_export}]"):
        result = cli("bench", source, "bench.batch_sizes=[1,1000]", *QUICK)
        said = " ".join(result.stderr.split())
        assert result.code == 2 and "bench.batch_sizes: one batch of 1,000 images holds 3.07 MB of float32 input " \
            "alone (3.1 kB an image), more than the 1.00 MB of memory available here" in said, result.output
        assert "use batch sizes well under 325" in said and run_dirs(outputs, "bench") == [], result.output
    assert cli("bench", f"source={tiny_export}", "bench.batch_sizes=[1,8]", *QUICK).code == 0  # what fits


def test_another_networks_file_under_an_exports_metadata_is_not_timed_or_trained_as_its_twin(
        cli, outputs: Path, tiny_export: Path, tmp_path: Path) -> None:
    """Probe 219: the metadata of an export copied into another network's ONNX file of the same architecture (what a
    foreign file needs to be benched): the file was timed beside the export's model.pt — a trained network's PyTorch
    latency under a random one's name — its class count, size and parameter count all agreeing. The two are run on
    one batch now: other outputs, no twin."""
    proto = onnx.load(tiny_export)
    weight = next(t for t in proto.graph.initializer if len(t.dims) == 2)  # another network: one layer's weights
    values = onnx.numpy_helper.to_array(weight) + 0.5
    weight.CopyFrom(onnx.numpy_helper.from_array(values, weight.name))
    foreign = tmp_path / "foreign.onnx"
    onnx.save(proto, foreign)
    assert read_onnx_metadata(foreign)["params"] == read_onnx_metadata(tiny_export)["params"]

    result = cli("bench", f"source={foreign}", "bench.batch_sizes=[1]", *QUICK)
    assert result.code == 0, result.output
    document = bench_json(outputs)
    assert [r["backend"] for r in document["records"]] == ["onnxruntime"]  # the file itself is still timed
    assert "which the ONNX file's metadata names, computes other outputs than the file (max |logit difference|" in \
        document["skipped"][0]["reason"], document["skipped"]
    qat = cli("quantize", f"source={foreign}", "quantize.mode=qat", "trainer.epochs=1", *QUANTIZE_QUICK_TIMING)
    said = " ".join(qat.stderr.split())
    assert qat.code == 2 and "computes other outputs than the file" in said, said
    # another architecture under the copied metadata contradicts it: refused whole, the fix covering such a file too
    # (probe 226: "re-export it from its run" would export the run's LeNet-5, not the file's network)
    graph = onnx.helper.make_graph(
        [onnx.helper.make_node("Flatten", ["input"], ["flat"]),
         onnx.helper.make_node("MatMul", ["flat", "w"], ["logits"])],
        "other", [onnx.helper.make_tensor_value_info("input", onnx.TensorProto.FLOAT, ["N", 3, 16, 16])],
        [onnx.helper.make_tensor_value_info("logits", onnx.TensorProto.FLOAT, ["N", 4])],
        [onnx.numpy_helper.from_array(torch.zeros(768, 4).numpy(), "w")])
    other = onnx.helper.make_model(graph, opset_imports=[onnx.helper.make_opsetid("", 18)])
    other.metadata_props.extend(proto.metadata_props)
    onnx.save(other, tmp_path / "other.onnx")
    refused = cli("bench", f"source={tmp_path / 'other.onnx'}", "bench.batch_sizes=[1]", *QUICK)
    said = " ".join(refused.stderr.split())
    assert refused.code == 2 and "does not match its own metadata" in said, said
    assert "metadata copied from an export needs the metadata of its own network" in said, said
    assert cli("bench", f"source={tiny_export}", "bench.batch_sizes=[1]", *QUICK).code == 0  # its own export: a twin
    assert {r["backend"] for r in json.loads((run_dirs(outputs, "bench")[-1] / "bench.json").read_text())["records"]} \
        == {"onnxruntime", "torch"}


def test_a_model_pt_replaced_where_an_onnx_file_names_it_is_not_timed_or_trained_as_its_twin(
        cli, outputs: Path, tiny_run: Path, tmp_path: Path) -> None:
    """A pruned model.pt exported from deploy/model.pt, then the dense model.pt copied to that path: bench timed the
    dense network's PyTorch latency under the pruned file's parameters and FLOPs, and QAT trained the dense network
    and recorded an INT8 gain no model had, exit 0 (probe 69). The export records the model.pt's SHA-256 now, and
    files exported before it are checked by their parameter count."""
    dense = run_dirs(outputs, "pretrain")[0] / "model.pt"
    pruned = cli("prune", f"source={dense.parent}", "prune.ratio=0.5", "trainer.epochs=1", "prune.measure=false")
    assert pruned.code == 0, pruned.output
    deploy = tmp_path / "deploy" / "model.pt"
    deploy.parent.mkdir()
    shutil.copy(run_dirs(outputs, "prune")[0] / "model.pt", deploy)
    assert cli("export", f"source={deploy}", "export.evaluate=false").code == 0
    exported = run_dirs(outputs, "export")[0] / "model.onnx"
    shutil.copy(dense, deploy)  # the dense network where the pruned one was

    result = cli("bench", f"source={exported}", "bench.batch_sizes=[1]", *QUICK)
    assert result.code == 0, result.output
    document = bench_json(outputs)
    assert [r["backend"] for r in document["records"]] == ["onnxruntime"]  # the ONNX file itself is still timed
    assert f"{deploy}, the model.pt model.onnx was exported from, has changed since" in \
        document["skipped"][0]["reason"]
    qat = cli("quantize", f"source={exported}", "quantize.mode=qat", "trainer.epochs=1", *QUANTIZE_QUICK_TIMING)
    said = " ".join(qat.stderr.split())
    assert qat.code == 2 and "has changed since" in said and f"name it instead (source={deploy})" in said, said
    assert not (outputs / "quantize").exists()  # probe 71: refused before any work, no `failed` run left
    assert cli("quantize", f"source={deploy}", "quantize.mode=qat", "trainer.epochs=1",
               *QUANTIZE_QUICK_TIMING).code == 0  # the fix, followed

    meta = read_onnx_metadata(exported)  # a file exported before the metadata kept the model.pt's SHA-256:
    proto = onnx.load(exported)
    identity = meta["identity"]
    set_metadata(proto, replace(identity, source={k: v for k, v in identity.source.items() if k != "sha256"}),
                 params=meta["params"], flops=meta["flops"])
    older = tmp_path / "older.onnx"
    onnx.save(proto, older)
    assert cli("bench", f"source={older}", "bench.batch_sizes=[1]", *QUICK).code == 0
    reason = json.loads((run_dirs(outputs, "bench")[-1] / "bench.json").read_text())["skipped"][0]["reason"]
    dense_params = count_params(load_model(dense)[0])
    assert f"{deploy} has {dense_params:,} parameters and the ONNX file's network {meta['params']:,}" in reason


def test_more_threads_than_cores_is_said_and_recorded(cli, outputs: Path) -> None:
    """Probe 69: bench.threads=8 on 2 cores ran without a word, its p99 60 times its p50."""
    from cnnlab.environment import cpu_info

    cores = int(cpu_info()["usable_cores"] or 1)
    result = cli("bench", *ZOO, "bench.batch_sizes=[1]", *QUICK[:-1], f"bench.threads={cores + 2}")
    assert result.code == 0, result.output
    warning = f"bench.threads={cores + 2} is more than the {cores} cores this process may use"
    assert warning in " ".join(result.stderr.split())
    assert any(warning in w for w in only_run(outputs, "bench")["warnings"])
    assert cli("bench", *ZOO, "bench.batch_sizes=[1]", *QUICK[:-1], f"bench.threads={cores}").code == 0
    # (a loaded machine may add a line of its own: a row whose p90 is far past its p50)
    assert not any("bench.threads" in w for w in read_run(run_dirs(outputs, "bench")[-1]).get("warnings") or [])


def test_bench_under_torchrun_is_refused_before_any_timing(monkeypatch: pytest.MonkeyPatch) -> None:
    """Probe 122: under torchrun every rank ran the whole benchmark at once; rank 0's latencies were recorded under
    the other's load."""
    from omegaconf import OmegaConf

    from cnnlab.errors import CnnlabError
    from cnnlab.pipelines.bench import check

    monkeypatch.setenv("WORLD_SIZE", "2")
    with pytest.raises(CnnlabError, match="under torchrun") as refused:
        check(OmegaConf.create({"bench": {}}))
    assert "without torchrun" in refused.value.one_line()
