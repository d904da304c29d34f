from __future__ import annotations

import json
import logging
from pathlib import Path
from urllib.error import URLError
from urllib.parse import urlparse

import pytest
import torch
import torchvision.models as tvm

from cnnlab.errors import CnnlabError
from cnnlab.models import (MODELS, create_model, get_head, hub_checkpoint_path, imagenet_weights, load_pretrained,
                           load_state_dict_file)


@pytest.fixture
def hub_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An empty torch hub cache; any download attempt fails as it would offline."""
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    assert Path(torch.hub.get_dir()) == tmp_path / "hub"

    def offline(url: str, dst: str, *args: object, **kwargs: object) -> None:
        raise URLError("[Errno -3] Temporary failure in name resolution")

    monkeypatch.setattr(torch.hub, "download_url_to_file", offline)
    return tmp_path / "hub" / "checkpoints"


def _imagenet_file(name: str, state_dict: dict[str, torch.Tensor]) -> Path:
    """Save `state_dict` where the hub cache expects `name`'s ImageNet weights file."""
    path = hub_checkpoint_path(tvm.get_weight(MODELS[name].tv_weights).url)
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save(state_dict, path)
    return path


def test_reads_a_copied_file_from_the_hub_cache(hub_dir: Path) -> None:
    saved = create_model("mobilenet_v3_small", 1000, 224).state_dict()
    path = _imagenet_file("mobilenet_v3_small", saved)
    assert path == hub_dir / "mobilenet_v3_small-047dcff4.pth"
    weights = imagenet_weights("mobilenet_v3_small")
    assert weights.source == path
    assert weights.spec.size == 224 and weights.spec.mean == pytest.approx((0.485, 0.456, 0.406))
    assert weights.resize_size == 256 and weights.interpolation == "bilinear"
    assert len(weights.classes) == 1000 and weights.classes[0] == "tench"
    assert weights.arch_kwargs == {}

    model = create_model("mobilenet_v3_small", 7, 32)
    fresh_head = get_head(model, "mobilenet_v3_small").weight.clone()
    load_pretrained(model, "mobilenet_v3_small", weights)
    loaded = model.state_dict()
    for key, tensor in saved.items():
        if not key.startswith("classifier.3."):
            assert torch.equal(loaded[key], tensor), key
    assert torch.equal(get_head(model, "mobilenet_v3_small").weight, fresh_head)  # 7 ≠ 1000 classes: kept fresh


def test_same_class_count_loads_the_head_too(hub_dir: Path) -> None:
    saved = create_model("resnet18", 1000, 224).state_dict()
    _imagenet_file("resnet18", saved)
    model = create_model("resnet18", 1000, 32)
    load_pretrained(model, "resnet18", imagenet_weights("resnet18"))
    assert torch.equal(model.fc.weight, saved["fc.weight"])


def test_downloads_into_the_hub_cache_when_missing(hub_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    state_dict = create_model("resnet18", 1000, 32).state_dict()
    calls: list[tuple[str, str, object]] = []

    def fake_download(url: str, dst: str, hash_prefix: str | None = None, progress: bool = True) -> None:
        calls.append((url, dst, hash_prefix))
        torch.save(state_dict, dst)

    monkeypatch.setattr(torch.hub, "download_url_to_file", fake_download)
    weights = imagenet_weights("resnet18")
    assert calls == [("https://download.pytorch.org/models/resnet18-f37072fd.pth",
                      str(hub_dir / "resnet18-f37072fd.pth"), "f37072fd")]
    assert torch.equal(weights.state_dict["conv1.weight"], state_dict["conv1.weight"])


def test_offline_and_missing_names_file_folder_and_alternatives(hub_dir: Path) -> None:
    with pytest.raises(CnnlabError) as caught:
        imagenet_weights("resnet18")
    text = str(caught.value)
    assert "resnet18-f37072fd.pth" in text and str(hub_dir) in text
    assert "https://download.pytorch.org/models/resnet18-f37072fd.pth" in text
    assert "model.weights=none" in text and "model.weights=/path/to/file.pth" in text
    assert "model.weights=latest:pretrain" in text


def test_corrupt_cached_file_says_to_replace_it(hub_dir: Path) -> None:
    hub_dir.mkdir(parents=True)
    (hub_dir / "resnet18-f37072fd.pth").write_bytes(b"\x00not a zip archive")
    with pytest.raises(CnnlabError, match="delete .*resnet18-f37072fd.pth"):
        imagenet_weights("resnet18")


def test_lenet5_has_no_imagenet_weights() -> None:
    with pytest.raises(CnnlabError, match="no ImageNet weights") as caught:
        imagenet_weights("lenet5")
    assert "model.weights=none" in str(caught.value)


def test_googlenet_drops_aux_classifiers_and_asks_for_transform_input(hub_dir: Path) -> None:
    stock = tvm.googlenet(weights=None, aux_logits=True, init_weights=False)  # torchvision's file has aux1/aux2
    _imagenet_file("googlenet", stock.state_dict())
    weights = imagenet_weights("googlenet")
    assert weights.arch_kwargs == {"transform_input": True}
    model = create_model("googlenet", 7, 32, **weights.arch_kwargs)
    load_pretrained(model, "googlenet", weights)
    assert torch.equal(model.inception5b.branch1.conv.weight, stock.inception5b.branch1.conv.weight)


def test_adapted_alexnet_loads_stock_weights() -> None:
    stock = tvm.alexnet(weights=None).state_dict()
    model = create_model("alexnet", 7, 32)  # stem stride 1
    load_pretrained(model, "alexnet", stock)
    assert torch.equal(model.features[0].weight, stock["features.0.weight"])
    assert model.features[0].stride == (1, 1)


def test_backbone_mismatch_names_the_key() -> None:
    model = create_model("resnet18", 7, 16)
    state_dict = create_model("resnet18", 1000, 16).state_dict()
    state_dict["layer2.0.conv1.weight"] = torch.zeros(1, 1, 3, 3)
    with pytest.raises(CnnlabError, match="'layer2.0.conv1.weight' has shape"):
        load_pretrained(model, "resnet18", state_dict)
    del state_dict["layer2.0.conv1.weight"]
    with pytest.raises(CnnlabError, match="'layer2.0.conv1.weight' is missing"):
        load_pretrained(model, "resnet18", state_dict)

    load_pretrained(model, "resnet18", state_dict, strict_backbone=False)  # loads everything else
    assert torch.equal(model.layer4[1].conv2.weight, state_dict["layer4.1.conv2.weight"])


def test_unexpected_keys_are_refused() -> None:
    state_dict = create_model("resnet18", 7, 16).state_dict()
    state_dict["extra.weight"] = torch.zeros(1)
    with pytest.raises(CnnlabError, match="'extra.weight' is not in the model"):
        load_pretrained(create_model("resnet18", 7, 16), "resnet18", state_dict)


def test_load_state_dict_file_unwraps_checkpoints(tmp_path: Path) -> None:
    state_dict = {"w": torch.ones(2)}
    for wrapper in ("state_dict", "model"):
        torch.save({wrapper: state_dict, "epoch": 3}, tmp_path / "ckpt.pt")
        assert torch.equal(load_state_dict_file(tmp_path / "ckpt.pt")["w"], state_dict["w"])


@pytest.mark.parametrize("content", [b"\x89PNG\r\n garbage", b""])
def test_load_state_dict_file_rejects_corrupt_files(tmp_path: Path, content: bytes) -> None:
    path = tmp_path / "weights.pth"
    path.write_bytes(content)
    with pytest.raises(CnnlabError, match="cannot read"):
        load_state_dict_file(path)


def test_load_state_dict_file_rejects_other_content(tmp_path: Path) -> None:
    torch.save([torch.ones(1)], tmp_path / "list.pth")
    with pytest.raises(CnnlabError, match="does not hold a state dict"):
        load_state_dict_file(tmp_path / "list.pth")
    with pytest.raises(CnnlabError, match="does not exist"):
        load_state_dict_file(tmp_path / "absent.pth")


def test_load_state_dict_file_refuses_arbitrary_pickles(tmp_path: Path) -> None:
    torch.save({"w": Path("x")}, tmp_path / "pickle.pth")  # not allowed under weights_only=True
    with pytest.raises(CnnlabError, match="cannot read"):
        load_state_dict_file(tmp_path / "pickle.pth")


@pytest.mark.parametrize("role", ["model", "student", "teacher"])
def test_every_role_is_told_a_fix_it_can_use(hub_dir: Path, role: str) -> None:
    """`teacher.weights=imagenet` for a network without ImageNet weights said "use teacher.weights=none to train it
    from scratch", which distill then refused (a random teacher teaches nothing): a teacher is told to train one."""
    fixes = []
    with pytest.raises(CnnlabError) as no_imagenet:
        imagenet_weights("lenet5", role=role)
    fixes.append(no_imagenet.value.fix or "")
    with pytest.raises(CnnlabError) as offline:  # the download fails (hub_dir)
        imagenet_weights("resnet18", role=role)
    fixes.append(offline.value.fix or "")
    for state_dict in ({**create_model("resnet18", 7, 16).state_dict(), "extra.weight": torch.zeros(1)},
                       {key: value for key, value in create_model("resnet18", 7, 16).state_dict().items()
                        if key != "layer2.0.conv1.weight"}):
        with pytest.raises(CnnlabError) as mismatch:
            load_pretrained(create_model("resnet18", 7, 16), "resnet18", state_dict, role=role)
        fixes.append(mismatch.value.fix or "")
    for fix in fixes:
        if role == "teacher":
            assert "weights=none" not in fix and "teacher.weights=latest:" in fix, fix
        else:
            assert f"{role}.weights=none" in fix, fix
    if role == "teacher":
        assert "`cnnlab pretrain model=lenet5`" in fixes[0] and "teacher.weights=latest:pretrain" in fixes[0]


@pytest.mark.parametrize("wrapper", [None, "state_dict", "model", "model_state_dict"])
def test_a_state_dict_saved_from_data_parallel_loses_its_module_prefix(tmp_path: Path, wrapper: str | None,
                                                                         caplog: pytest.LogCaptureFixture) -> None:
    """A state dict of a DataParallel / DistributedDataParallel model (every key `module.`-prefixed) as
    model.weights=FILE.pth said "'conv1.weight' is missing": the prefix is removed (as timm's clean_state_dict
    does) and the log says so; the usual checkpoint wrappers around it are unwrapped too."""
    saved = create_model("resnet18", 7, 16).state_dict()
    prefixed = {f"module.{key}": value for key, value in saved.items()}
    torch.save(prefixed if wrapper is None else {wrapper: prefixed, "epoch": 3}, tmp_path / "ddp.pth")
    with caplog.at_level("INFO", logger="cnnlab.models.weights"):
        state_dict = load_state_dict_file(tmp_path / "ddp.pth")
    assert set(state_dict) == set(saved)
    assert any("'module.'" in record.getMessage() and "DistributedDataParallel" in record.getMessage()
               and "ddp.pth" in record.getMessage() for record in caplog.records)
    model = create_model("resnet18", 7, 16)
    load_pretrained(model, "resnet18", state_dict)
    assert torch.equal(model.layer4[1].conv2.weight, saved["layer4.1.conv2.weight"])


def test_a_module_prefix_on_only_some_keys_is_kept(tmp_path: Path) -> None:
    torch.save({"module.w": torch.ones(1), "b": torch.ones(1)}, tmp_path / "mixed.pth")
    assert set(load_state_dict_file(tmp_path / "mixed.pth")) == {"module.w", "b"}


def _data(classes: int = 7, size: int = 32) -> object:
    """What cnnlab.weights.initial_model reads of a DataBundle."""
    from types import SimpleNamespace

    return SimpleNamespace(name="tiny", classes=[str(i) for i in range(classes)],
                           spec=SimpleNamespace(size=size, channels=3))


def test_wrong_weights_in_the_hub_cache_name_the_file_and_deleting_it_works(hub_dir: Path,
                                                                              monkeypatch: pytest.MonkeyPatch) -> None:
    """resnet18's weights saved under the name torchvision gives mobilenet_v2's file: model.weights=imagenet said
    "do not fit mobilenet_v2 … or model.weights=none" without naming the cached file. The error names it and says
    to delete or replace it; deleting it makes the next run download the real file, which loads."""
    from cnnlab.weights import initial_model, resolve_weights

    cached = _imagenet_file("mobilenet_v2", create_model("resnet18", 1000, 16).state_dict())
    assert cached == hub_dir / "mobilenet_v2-7ebf99e0.pth"
    weights = resolve_weights("imagenet", "mobilenet_v2", hub_dir, role="model")
    with pytest.raises(CnnlabError) as caught:
        initial_model("mobilenet_v2", weights, _data(), new_head=None)
    assert str(cached) in caught.value.message and "mobilenet_v2" in caught.value.message
    fix = caught.value.fix or ""
    assert f"delete {cached}" in fix and "https://download.pytorch.org/models/mobilenet_v2-7ebf99e0.pth" in fix
    assert "model.weights=none" in fix
    with pytest.raises(CnnlabError, match="delete .*mobilenet_v2-7ebf99e0.pth") as teacher:  # the same for a teacher
        load_pretrained(create_model("mobilenet_v2", 7, 32), "mobilenet_v2", imagenet_weights("mobilenet_v2"),
                        role="teacher")
    assert "weights=none" not in (teacher.value.fix or "")

    cached.unlink()  # the fix: the next run downloads torchvision's file again
    real = create_model("mobilenet_v2", 1000, 32).state_dict()
    monkeypatch.setattr(torch.hub, "download_url_to_file", lambda url, dst, **kwargs: torch.save(real, dst))
    model = initial_model("mobilenet_v2", resolve_weights("imagenet", "mobilenet_v2", hub_dir), _data(),
                          new_head=None)
    assert torch.equal(model.state_dict()["features.18.0.weight"], real["features.18.0.weight"])


def test_a_state_dict_file_that_does_not_fit_is_named(tmp_path: Path) -> None:
    """model.weights=FILE.pth of another network: the error names the file; nothing in it says to delete it."""
    from cnnlab.weights import initial_model, resolve_weights

    path = tmp_path / "other.pth"
    torch.save(create_model("lenet5", 7, 32).state_dict(), path)
    with pytest.raises(CnnlabError) as caught:
        initial_model("resnet18", resolve_weights(str(path), "resnet18", tmp_path), _data(), new_head=None)
    assert str(path) in caught.value.message and "delete" not in (caught.value.fix or "")


@pytest.mark.parametrize("role", ["model", "teacher", "student"])
def test_a_whole_pickled_model_as_weights_is_told_to_save_its_state_dict_for_that_setting(tmp_path: Path,
                                                                                         role: str) -> None:
    """`{role}.weights=` loads a plain state dict, so the advice for a whole pickled model (torch.save(model)) is
    the state dict passed to that same setting, not a `source=` route."""
    from cnnlab.weights import resolve_weights

    path = tmp_path / "whole.pth"
    torch.save(create_model("lenet5", 7, 16), path)
    with pytest.raises(CnnlabError, match="pickled objects") as caught:
        resolve_weights(str(path), "lenet5", tmp_path, role=role)
    fix = caught.value.fix or ""
    assert "torch.save(model.state_dict(), 'weights.pth')" in fix and f"{role}.weights=weights.pth" in fix, fix
    assert "source=" not in fix


def test_weights_for_as_many_classes_with_other_names_say_the_names_differ() -> None:
    """finetune.new_head=false on other classes said "the model's weights know 3 classes but dataset x has 3"."""
    from types import SimpleNamespace

    from cnnlab.data.spec import InputSpec
    from cnnlab.weights import InitialWeights, initial_model

    model = create_model("lenet5", 3, 16)
    weights = InitialWeights("run", "a run", state_dict=model.state_dict(), classes=["a", "b", "z"])
    data = SimpleNamespace(name="x", classes=["a", "b", "c"], spec=InputSpec(16))
    with pytest.raises(CnnlabError, match="the model and dataset x both have 3 classes, but the names differ: "
                                          "only the model's: z; only the data's: c"):
        initial_model("lenet5", weights, data, new_head=False)  # type: ignore[arg-type]


@pytest.mark.parametrize("model_classes, data_classes", [
    (["T-shirt/top", "Trouser", "Bag"], ["Bag", "T-shirt_top", "Trouser"]),
    (["T-shirt_top", "Trouser", "Bag"], ["Bag", "T-shirt/top", "Trouser"]),
])
def test_a_class_folders_name_keeps_the_head_of_its_class(model_classes: list[str], data_classes: list[str]) -> None:
    """Probe 174: a fine-tune of a Fashion-MNIST model on a folder export (`T-shirt_top/`, the folder rule for
    `T-shirt/top`) — or the other way round — replaced the trained head with a random one, exit 0, where `cnnlab
    evaluate` scores it by the rule."""
    from types import SimpleNamespace

    from cnnlab.data.spec import InputSpec
    from cnnlab.weights import InitialWeights, initial_model

    trained = create_model("lenet5", 3, 16)
    weights = InitialWeights("run", "a run", state_dict=trained.state_dict(), classes=model_classes)
    data = SimpleNamespace(name="x", classes=data_classes, spec=InputSpec(16))
    model = initial_model("lenet5", weights, data, new_head=False)  # type: ignore[arg-type]
    head, kept = model.classifier[4].weight, trained.classifier[4].weight
    assert torch.equal(head, kept[[2, 0, 1]])  # Bag, T-shirt, Trouser: the trained rows, in the data's order


def _reads_as_published(monkeypatch: pytest.MonkeyPatch, published: Path) -> None:
    """The file at `published` reads as torchvision's bytes: its SHA-256 starts with the hash prefix of the published
    file's name (no test can hold the real file)."""
    import cnnlab.models.weights as hub_weights

    real = hub_weights.file_sha256
    name = Path(urlparse(tvm.get_weight(MODELS["googlenet"].tv_weights).url).path).name
    prefix = torch.hub.HASH_REGEX.search(name).group(1)
    monkeypatch.setattr(hub_weights, "file_sha256", lambda path: prefix + "0" * 56 if Path(path) == published
                        else real(path))


def test_torchvisions_googlenet_file_given_by_path_brings_its_transform_input(
        tmp_path: Path, hub_dir: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture) -> None:
    """Probe 76: the same GoogLeNet file built transform_input=True from the hub cache (model.weights=imagenet) and
    False given by path: torchvision's published weights fed input they were not trained for, without a word."""
    from cnnlab.weights import resolve_weights

    stock = tvm.googlenet(weights=None, aux_logits=True, init_weights=False).state_dict()
    copied = tmp_path / "googlenet.pth"
    torch.save(stock, copied)
    _reads_as_published(monkeypatch, copied)
    weights = resolve_weights(str(copied), "googlenet", tmp_path)
    assert weights.kind == "imagenet" and weights.arch_kwargs == {"transform_input": True}
    assert weights.description == f"torchvision ImageNet weights ({copied})" and len(weights.classes or ()) == 1000

    other = tmp_path / "mine.pth"  # weights of one's own in torchvision's key names: built as they were trained
    torch.save(stock, other)
    with caplog.at_level(logging.WARNING, logger="cnnlab"):
        mine = resolve_weights(str(other), "googlenet", tmp_path)
    assert mine.kind == "file" and mine.arch_kwargs == {}
    assert "not torchvision's published googlenet file" in caplog.text and "transform_input=True" in caplog.text


def test_a_file_in_the_hub_cache_that_is_not_torchvisions_is_not_recorded_as_its_weights(
        hub_dir: Path, caplog: pytest.LogCaptureFixture) -> None:
    """Probe 76: random weights saved as resnet18-f37072fd.pth were recorded as "torchvision ImageNet weights"."""
    from cnnlab.weights import resolve_weights

    cached = _imagenet_file("resnet18", create_model("resnet18", 1000, 32).state_dict())
    with caplog.at_level(logging.WARNING, logger="cnnlab"):
        weights = resolve_weights("imagenet", "resnet18", hub_dir)
    assert not weights.description.startswith("torchvision ImageNet weights")
    assert "not its bytes (SHA-256 differs)" in weights.description and str(cached) in weights.description
    assert "is not torchvision's published file" in caplog.text


def test_a_state_dict_with_new_head_false_says_it_records_no_class_names(tmp_path: Path,
                                                                        caplog: pytest.LogCaptureFixture) -> None:
    """Probe 76: `finetune.new_head=false` with a plain state dict said "the model knows 0 classes" and asked for
    weights "trained on this dataset", which no state dict can be; with new_head=auto the log said "head loaded" of
    the head that was then replaced."""
    from cnnlab.weights import initial_model, resolve_weights

    path = tmp_path / "r18.pth"
    torch.save(create_model("resnet18", 7, 32).state_dict(), path)
    weights = resolve_weights(str(path), "resnet18", tmp_path)
    with pytest.raises(CnnlabError) as caught:
        initial_model("resnet18", weights, _data(7), new_head=False)  # type: ignore[arg-type]
    assert "is a state dict, which records no class names" in caught.value.message
    assert "0 classes" not in caught.value.message and "a cnnlab run trained on this dataset" in caught.value.fix
    with caplog.at_level(logging.INFO, logger="cnnlab"):
        initial_model("resnet18", weights, _data(7), new_head=None)  # type: ignore[arg-type]
    assert "a new head for the 7 classes of tiny (random init)" in caplog.text


def test_a_runs_training_state_given_as_weights_or_source_names_the_run_folder(tmp_path: Path) -> None:
    """Probe 83: model.weights=RUN/last.pt (an SSL run's: encoder and projector) was read as a plain state dict —
    the fine-tune went to the default data, then stopped with "'conv1.weight' is missing … or model.weights=none"."""
    from cnnlab.engine.checkpoint import TRAIN_STATE_FORMAT, read_checkpoint
    from cnnlab.weights import resolve_weights

    run = tmp_path / "run"
    run.mkdir()
    torch.save({"format": TRAIN_STATE_FORMAT, "epoch": 1, "model": {"encoder.conv1.weight": torch.zeros(1)}},
               run / "last.pt")
    with pytest.raises(CnnlabError) as caught:
        resolve_weights(str(run / "last.pt"), "resnet18", tmp_path)
    assert "training state" in caught.value.message and "outside its run folder" in caught.value.fix
    (run / "run.json").write_text("{}")
    with pytest.raises(CnnlabError) as caught:
        resolve_weights(str(run / "last.pt"), "resnet18", tmp_path)
    assert "finish it with resume=" in caught.value.fix and "model.weights=latest:<command>" in caught.value.fix
    assert "wait for it to end if it is still running" in caught.value.fix  # probe 191: resume= offered a live run
    for status in ("interrupted", "failed"):  # probe 193: a stopped run was told to wait if it was still running
        (run / "run.json").write_text(json.dumps({"status": status}))
        with pytest.raises(CnnlabError) as caught:
            resolve_weights(str(run / "last.pt"), "resnet18", tmp_path)
        assert caught.value.fix.startswith(f"its run stopped ({status}) before it wrote model.pt: finish it with "
                                           f"resume={run}") and "wait" not in caught.value.fix
    (run / "run.json").write_text('{"status": ["not", "a", "status"]}')  # untrusted: the hint for any run
    with pytest.raises(CnnlabError) as caught:
        resolve_weights(str(run / "last.pt"), "resnet18", tmp_path)
    assert "wait for it to end if it is still running" in caught.value.fix
    (run / "model.pt").write_bytes(b"")
    for load, key in ((lambda: resolve_weights(str(run / "last.pt"), "resnet18", tmp_path), "model.weights"),
                      (lambda: read_checkpoint(run / "last.pt"), "source")):
        with pytest.raises(CnnlabError) as caught:
            load()
        assert caught.value.fix == f"give its run folder ({key}={run})"
    # probe 223: outside a run folder, the model.pt beside it; a model.pt that is itself a training state, none
    copied = tmp_path / "copied"
    copied.mkdir()
    for name in ("last.pt", "model.pt"):
        (copied / name).write_bytes((run / "last.pt").read_bytes())
    with pytest.raises(CnnlabError) as caught:
        resolve_weights(str(copied / "last.pt"), "resnet18", tmp_path)
    assert caught.value.fix == f"give the model.pt beside it (model.weights={copied / 'model.pt'})"
    with pytest.raises(CnnlabError) as caught:
        read_checkpoint(copied / "model.pt")
    assert "outside its run folder is no model" in caught.value.fix
