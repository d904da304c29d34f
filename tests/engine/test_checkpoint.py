"""model.pt: weights_only loading, rebuilt architecture, clear errors for bad files."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from cnnlab.data.spec import InputSpec
from cnnlab.engine.checkpoint import load_model, load_tensors, read_checkpoint, save_model
from cnnlab.errors import CnnlabError
from cnnlab.models import create_model

SPEC = InputSpec(size=32, mean=(0.1, 0.2, 0.3), std=(0.4, 0.5, 0.6))


def save_resnet(path: Path) -> torch.nn.Module:
    model = create_model("resnet18", num_classes=3, image_size=32).eval()
    save_model(path, model, arch={"name": "resnet18", "num_classes": 3, "image_size": 32}, classes=["a", "b", "c"],
               spec=SPEC, extra={"note": "x"})
    return model


def test_roundtrip_rebuilds_the_same_network(tmp_path: Path) -> None:
    original = save_resnet(tmp_path / "model.pt")
    payload = torch.load(tmp_path / "model.pt", weights_only=True)  # the security contract itself
    assert payload["format"].startswith("cnnlab.checkpoint")
    model, ckpt = load_model(tmp_path / "model.pt")
    assert ckpt.classes == ["a", "b", "c"] and ckpt.spec == SPEC and ckpt.extra == {"note": "x"}
    x = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        assert torch.allclose(model.eval()(x), original(x))
    assert not list(tmp_path.glob(".model.pt*"))  # atomic write left no temp file


def test_a_checkpoint_loads_without_drawing_random_initial_weights(tmp_path: Path) -> None:
    """Every tensor is read from the file: the network is built on the meta device and given empty storage, so torch's
    random initialisation (1.3 s of VGG-16's build) is skipped, and loading no longer moves the global random stream
    (a teacher loaded before the student is initialised changed the student's starting weights)."""
    original = create_model("resnet18", num_classes=3, image_size=32).eval()
    original.fc = torch.nn.Linear(512, 3)  # a head of its own values
    save_model(tmp_path / "model.pt", original, arch={"name": "resnet18", "num_classes": 3, "image_size": 32},
               classes=["a", "b", "c"], spec=SPEC)
    torch.manual_seed(7)
    model, _ = load_model(tmp_path / "model.pt")
    after_loading = torch.rand(3)
    torch.manual_seed(7)
    assert torch.equal(after_loading, torch.rand(3))
    assert all(t.device.type == "cpu" for t in [*model.parameters(), *model.buffers()])
    for name, tensor in original.state_dict().items():
        assert torch.equal(model.state_dict()[name], tensor), name


def test_a_network_with_a_buffer_no_state_dict_holds_is_built_as_usual() -> None:
    """A non-persistent buffer is never loaded: given empty storage it would hold whatever memory held."""
    from cnnlab.engine.checkpoint import built_for_loading

    class Scaled(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.linear = torch.nn.Linear(2, 2)
            self.register_buffer("scale", torch.arange(2.0), persistent=False)

    assert torch.equal(built_for_loading(Scaled).scale, torch.arange(2.0))
    plain = built_for_loading(lambda: torch.nn.Linear(2, 2))
    assert plain.weight.device.type == "cpu" and not plain.weight.is_meta


def test_pruned_shapes_are_rebuilt(tmp_path: Path) -> None:
    import torch_pruning as tp

    model = create_model("resnet18", num_classes=3, image_size=32).eval()
    example = torch.randn(1, 3, 32, 32)
    pruner = tp.pruner.MagnitudePruner(model, example, importance=tp.importance.MagnitudeImportance(p=1),
                                       pruning_ratio=0.5, ignored_layers=[model.fc])
    pruner.step()
    save_model(tmp_path / "pruned.pt", model, arch={"name": "resnet18", "num_classes": 3, "image_size": 32},
               classes=["a", "b", "c"], spec=SPEC)
    rebuilt, _ = load_model(tmp_path / "pruned.pt")
    assert sum(p.numel() for p in rebuilt.parameters()) == sum(p.numel() for p in model.parameters())
    with torch.no_grad():
        assert torch.allclose(rebuilt.eval()(example), model(example), atol=1e-5)


def test_corrupt_truncated_and_foreign_files_are_refused(tmp_path: Path) -> None:
    good = tmp_path / "model.pt"
    save_resnet(good)
    truncated = tmp_path / "truncated.pt"
    truncated.write_bytes(good.read_bytes()[:5000])
    with pytest.raises(CnnlabError, match="cannot be read safely"):
        read_checkpoint(truncated)
    pickled_module = tmp_path / "module.pt"
    torch.save(torch.nn.Linear(2, 2), pickled_module)  # a whole pickled module: never unpickled
    with pytest.raises(CnnlabError, match="cannot be read safely"):
        read_checkpoint(pickled_module)
    plain = tmp_path / "plain.pt"
    torch.save({"weight": torch.zeros(2)}, plain)
    with pytest.raises(CnnlabError, match="not a cnnlab model checkpoint"):
        read_checkpoint(plain)
    with pytest.raises(CnnlabError, match="does not exist"):
        read_checkpoint(tmp_path / "missing.pt")


@pytest.mark.parametrize("zipped", [True, False])
def test_records_only_reads_the_records_of_either_format_and_refuses_a_truncated_file(tmp_path: Path,
                                                                                     zipped: bool) -> None:
    """records_only maps torch.save's zip format (its tensors are not read) and reads the legacy format whole."""
    path = tmp_path / "last.pt"
    torch.save({"history": [{"val_acc": 0.5}], "extra": {"run_id": "x"}, "model": {"w": torch.arange(4.0)}}, path,
               _use_new_zipfile_serialization=zipped)
    payload = load_tensors(path, "training state", records_only=True)
    assert payload["history"] == [{"val_acc": 0.5}] and payload["extra"] == {"run_id": "x"}
    assert payload["model"]["w"].tolist() == [0.0, 1.0, 2.0, 3.0]  # mapped tensors still read true when touched
    path.write_bytes(path.read_bytes()[:200])
    with pytest.raises(CnnlabError, match="corrupt, truncated or not a PyTorch file"):
        load_tensors(path, "training state", records_only=True)


def test_mismatched_weights_are_a_clear_error(tmp_path: Path) -> None:
    path = tmp_path / "model.pt"
    save_resnet(path)
    payload = torch.load(path, weights_only=True)
    payload["arch"]["name"] = "resnet34"  # the recorded architecture no longer fits the weights
    torch.save(payload, path)
    with pytest.raises(CnnlabError, match="do not fit a resnet34") as raised:
        load_model(path)
    assert str(path) in raised.value.message  # the error names the file


def test_a_structure_of_another_model_names_the_file(tmp_path: Path) -> None:
    """arch.name changed on a pruned checkpoint: the recorded shapes fail before the weights do."""
    path = tmp_path / "model.pt"
    save_resnet(path)
    payload = torch.load(path, weights_only=True)
    payload["arch"]["name"] = "vgg11"
    payload["structure"] = {"conv1": {"in_channels": 3, "out_channels": 64, "groups": 1}}
    torch.save(payload, path)
    with pytest.raises(CnnlabError) as raised:
        load_model(path)
    assert raised.value.message.startswith(f"checkpoint {path}: ")


@pytest.mark.parametrize("content", [b"hello, I am text\n", bytes(range(256)) * 40, b"\x80\x02}q\x00."],
                         ids=["text", "random-bytes", "pickle-fragment"])
def test_text_and_random_bytes_are_one_clear_error(tmp_path: Path, content: bytes) -> None:
    path = tmp_path / "model.pt"
    path.write_bytes(content)
    with pytest.raises(CnnlabError, match="cannot be read safely"):
        read_checkpoint(path)
    assert path.read_bytes() == content  # never rewritten


def _edit(payload: dict, change: str) -> None:
    if change == "num_classes":
        payload["arch"]["num_classes"] = "abc"
    elif change == "input_size":
        payload["input"]["size"] = -32
    elif change == "channels":
        payload["structure"]["conv1"]["out_channels"] = 2 ** 20
    elif change == "classes":
        payload["classes"] = [1, 2, 3]
    elif change == "state_dict":
        payload["state_dict"]["fc.weight"] = [[0.0] * 512] * 3
    elif change == "structure_vs_weights":
        payload["structure"]["fc"]["in_features"] = 1024
    elif change == "class_count":
        payload["classes"] = ["a", "b"]
    elif change == "std":
        payload["input"]["std"] = [0.0, 1.0, 1.0]
    elif change == "nan_weights":  # what a run whose loss diverged leaves behind
        payload["state_dict"]["fc.weight"] = payload["state_dict"]["fc.weight"] * float("nan")
    elif change == "duplicate_classes":
        payload["classes"] = ["a", "a", "b"]


@pytest.mark.parametrize("change, message", [
    ("num_classes", "arch.num_classes is 'abc'"),
    ("input_size", "input.size is -32"),
    ("channels", "structure['conv1'].out_channels is 1048576"),
    ("classes", "classes is a list holding something else than class names"),
    ("state_dict", "state_dict['fc.weight'] is a list, not a tensor"),
    ("structure_vs_weights", "structure['fc'] records"),
    ("class_count", "classes has 2 names but arch.num_classes is 3"),
    ("std", "input.std"),
    ("nan_weights", "state_dict['fc.weight'] holds NaN or infinite values"),
    ("duplicate_classes", "classes names ['a'] more than once"),
])
def test_nonsense_that_loads_safely_is_refused_before_building(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                               change: str, message: str) -> None:
    import cnnlab.models

    path = tmp_path / "model.pt"
    save_resnet(path)
    payload = torch.load(path, weights_only=True)
    _edit(payload, change)
    torch.save(payload, path)
    built = []
    monkeypatch.setattr(cnnlab.models, "create_model", lambda *a, **k: built.append(a))  # nothing may be built
    with pytest.raises(CnnlabError, match="is invalid") as info:
        load_model(path)
    assert message in str(info.value) and not built


def test_load_model_returns_the_network_in_eval_mode(tmp_path: Path) -> None:
    save_resnet(tmp_path / "model.pt")
    model, ckpt = load_model(tmp_path / "model.pt")
    assert not model.training and not any(m.training for m in model.modules())
    assert ckpt.num_classes == 3 and ckpt.image_size == 32 and ckpt.name == "resnet18"


def test_weights_holding_nan_are_not_written_and_the_file_there_is_kept(tmp_path: Path) -> None:
    """A run saved a model.pt that read_checkpoint refuses: what cnnlab writes must pass its own validation."""
    path = tmp_path / "model.pt"
    model = create_model("lenet5", num_classes=3, image_size=32)
    arch = {"name": "lenet5", "num_classes": 3, "image_size": 32}
    save_model(path, model, arch=arch, classes=["a", "b", "c"], spec=InputSpec(size=32))
    before = path.read_bytes()
    with torch.no_grad():
        model.features[0].weight[0, 0, 0, 0] = float("nan")
    with pytest.raises(CnnlabError, match=r"was not written: state_dict\['features.0.weight'\] holds NaN") as info:
        save_model(path, model, arch=arch, classes=["a", "b", "c"], spec=InputSpec(size=32))
    assert "trainer.amp=none" in info.value.fix and path.read_bytes() == before


def test_an_untrained_head_in_onnx_metadata_with_a_malformed_source_is_still_one_line() -> None:
    """ONNX metadata is untrusted: `source` as a string raised AttributeError (a 'bug in cnnlab' traceback)."""
    from types import SimpleNamespace

    from cnnlab.engine.checkpoint import require_trained_onnx_head

    for source in ("a string", ["a", "list"], None, {"run": "/runs/pretrain/1"}):
        identity = SimpleNamespace(untrained_head="simclr", source=source)
        with pytest.raises(CnnlabError, match="classifier head was never trained"):
            require_trained_onnx_head({"identity": identity}, "model.onnx", "its scores")
    require_trained_onnx_head({"identity": SimpleNamespace(untrained_head=None, source="x")}, "model.onnx", "x")
    require_trained_onnx_head({}, "foreign.onnx", "its scores")  # no cnnlab metadata: nothing to say


def test_a_plain_state_dict_or_a_whole_pickled_model_as_source_is_told_how_to_make_a_model_pt(tmp_path: Path) -> None:
    """`source=` needs a cnnlab model.pt. A whole pickled model was told "save weights with
    torch.save(model.state_dict())", and the state dict so saved was then refused as "not a cnnlab model
    checkpoint" with no way forward: both now say how finetune turns weights into a model.pt for source=."""
    plain = tmp_path / "weights.pth"
    torch.save(create_model("lenet5", 4, 16).state_dict(), plain)
    with pytest.raises(CnnlabError, match="plain state dict") as caught:
        read_checkpoint(plain)
    fix = caught.value.fix or ""
    assert f"`cnnlab finetune model=NAME model.weights={plain}" in fix and "source=latest:finetune" in fix, fix
    whole = tmp_path / "whole.pth"
    torch.save(create_model("lenet5", 4, 16), whole)
    with pytest.raises(CnnlabError, match="pickled objects") as caught:
        load_model(whole)
    fix = caught.value.fix or ""
    assert "torch.save(model.state_dict(), 'weights.pth')" in fix and "model.weights=weights.pth" in fix, fix
    assert "source=latest:finetune" in fix, fix
    other = tmp_path / "other.pt"
    torch.save({"epoch": 3, "note": "no tensors"}, other)  # not weights at all: no finetune route offered
    with pytest.raises(CnnlabError, match="not a cnnlab model checkpoint") as caught:
        read_checkpoint(other)
    assert "finetune" not in (caught.value.fix or "")


def test_the_fix_for_a_state_dict_given_as_source_works_when_followed(cli, outputs: Path, tmp_path: Path) -> None:
    """The end to end path: a DistributedDataParallel state dict (`module.` keys) given to `evaluate source=` gets
    the finetune fix; following it (model.weights= strips the prefix) gives a model.pt that source=latest:finetune
    evaluates."""
    from helpers import TINY

    saved = tmp_path / "ddp.pth"
    torch.save({f"module.{key}": value for key, value in create_model("lenet5", 4, 16).state_dict().items()}, saved)
    refused = cli("evaluate", f"source={saved}", "split=val")
    assert refused.code == 2 and "Traceback" not in refused.output
    assert f"cnnlab finetune model=NAME model.weights={saved}" in refused.stderr
    trained = cli("finetune", *TINY, f"model.weights={saved}")  # TINY: model=lenet5, its dataset
    assert trained.code == 0, trained.output
    evaluated = cli("evaluate", "source=latest:finetune", "split=val")
    assert evaluated.code == 0, evaluated.output


def test_a_disk_full_while_a_checkpoint_is_written_is_the_one_line_and_keeps_the_file_there(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Probe 112: torch's writer reported ENOSPC as `RuntimeError: [enforce fail at inline_container.cc:672]
    unexpected pos 19712 vs 19600` — "this is a bug in cnnlab" with a traceback — and held the temporary file open,
    so the run could not record itself as failed. The bytes are now written by Python, whose ENOSPC is the one line."""
    import errno

    from cnnlab.engine.checkpoint import save_tensors

    target = tmp_path / "last.pt"
    save_tensors(target, {"w": torch.ones(3)})
    before = target.read_bytes()

    def full(self: Path, data: bytes) -> int:
        raise OSError(errno.ENOSPC, "No space left on device", str(self))

    monkeypatch.setattr(Path, "write_bytes", full)
    with pytest.raises(CnnlabError, match="disk full while writing .*last.pt"):
        save_tensors(target, {"w": torch.zeros(1000)})
    assert target.read_bytes() == before and [p.name for p in tmp_path.iterdir()] == ["last.pt"]


class _RunsCode:
    """Pickles as a call of os.system: what a tampered file holds (never run: weights_only refuses it)."""

    def __reduce__(self):  # type: ignore[no-untyped-def]
        import os

        return os.system, ("touch /nonexistent/cnnlab-pwned",)


def test_a_file_holding_code_of_a_blocked_module_is_named_as_pickled_with_the_fix_given(tmp_path: Path) -> None:
    """Probe 139: torch 2.14 says "unsupported GLOBAL posix.system whose module posix is blocked", which the
    case-sensitive "Unsupported global" test missed: a last.pt holding code read as "corrupt, truncated", and every
    unreadable last.pt got "pick another file", which resume= cannot."""
    from cnnlab.engine.checkpoint import STATE_FIX, load_tensors

    evil = tmp_path / "last.pt"
    torch.save({"format": "x", "payload": _RunsCode()}, evil)
    with pytest.raises(CnnlabError) as caught:
        load_tensors(evil, "training state", unreadable_fix=STATE_FIX)
    assert "holds pickled objects" in caught.value.message and caught.value.fix == STATE_FIX
    evil.write_bytes(b"\x00" * 64)
    with pytest.raises(CnnlabError) as caught:
        load_tensors(evil, "training state", unreadable_fix=STATE_FIX)
    assert "corrupt, truncated" in caught.value.message and caught.value.fix == STATE_FIX


def test_a_plain_pickle_and_a_newer_checkpoint_format_are_named_as_what_they_are(tmp_path: Path) -> None:
    """Probe 209: a pickle.dump file printed torch's "Detected pickle protocol 4 … please file an issue" warning and
    was called "corrupt, truncated or not a PyTorch file"; a checkpoint of format cnnlab.checkpoint/99, holding its
    network, classes and input, was "a plain state dict … no network, classes or input recorded"."""
    import pickle
    import warnings

    plain = tmp_path / "plain.pt"
    plain.write_bytes(pickle.dumps(_RunsCode(), protocol=4))
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no warning of torch's reaches the user
        with pytest.raises(CnnlabError, match=r"written by pickle.dump, not torch.save, and may hold pickled objects"):
            load_tensors(plain)
    model = create_model("lenet5", num_classes=4, image_size=16)
    save_model(tmp_path / "model.pt", model, arch={"name": "lenet5", "num_classes": 4, "image_size": 16},
               classes=list("abcd"), spec=InputSpec(size=16))
    payload = torch.load(tmp_path / "model.pt", weights_only=True)
    torch.save(payload | {"format": "cnnlab.checkpoint/99"}, tmp_path / "newer.pt")
    with pytest.raises(CnnlabError, match=r"is a cnnlab model checkpoint of format 'cnnlab.checkpoint/99', which this "
                                          r"cnnlab does not read \(it reads 'cnnlab.checkpoint/1'\)"):
        read_checkpoint(tmp_path / "newer.pt")
