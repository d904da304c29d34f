from __future__ import annotations

import pytest
import torch

from cnnlab.data import DATASETS, DataBundle, build_datasets, check_dataset, make_loader, resolve_input_spec
from cnnlab.data.spec import IMAGENET_MEAN, InputSpec
from cnnlab.errors import CnnlabError

SYNTHETIC = {"name": "synthetic", "image_size": 16, "native_size": 64, "num_classes": 4, "train_size": 24,
             "val_size": 8, "seed": 0, "mean": [0.5, 0.5, 0.5], "std": [0.25, 0.25, 0.25],
             "augment": {"hflip": True, "random_crop": True, "crop_scale": [0.6, 1.0]}}
WEIGHTS = InputSpec(224, mean=IMAGENET_MEAN)


def test_dataset_names() -> None:
    assert DATASETS == ("synthetic", "digits", "imagefolder", "flowers", "cifar10", "cifar100", "mnist",
                        "fashion_mnist", "kmnist", "svhn", "stl10")


def test_size_from_config_then_weights_then_native() -> None:
    assert resolve_input_spec(SYNTHETIC, WEIGHTS).size == 16
    assert resolve_input_spec({**SYNTHETIC, "image_size": None}, WEIGHTS).size == 224
    assert resolve_input_spec({**SYNTHETIC, "image_size": None}, None).size == 64


def test_normalisation_from_weights_else_config() -> None:
    assert resolve_input_spec(SYNTHETIC, WEIGHTS).mean == IMAGENET_MEAN
    spec = resolve_input_spec(SYNTHETIC, None)
    assert spec.mean == (0.5, 0.5, 0.5) and spec.std == (0.25, 0.25, 0.25)


def test_no_size_anywhere_is_a_user_error() -> None:
    with pytest.raises(CnnlabError, match="image size"):
        resolve_input_spec({"name": "x", "image_size": None}, None)


def test_bad_mean_is_a_user_error() -> None:
    with pytest.raises(CnnlabError, match="a list of 3 numbers"):
        resolve_input_spec({**SYNTHETIC, "mean": [0.5, 0.5]}, None)


def test_one_mean_and_std_are_the_one_channels_where_the_model_reads_one() -> None:
    """Probe: `dataset.mean=[0.3] dataset.std=[0.35]` of Fashion-MNIST for a LeNet-5 (1 channel) was refused ("takes
    a list of 3 numbers", CIFAR's R, G, B mean offered): one value is that channel's, held as three equal values are
    (to_dict keeps it once). Where the model reads 3 channels it is still refused, with a list of 3 as the fix."""
    grey = {**SYNTHETIC, "channels": 1, "mean": [0.3], "std": [0.35]}
    spec = resolve_input_spec(grey, None, any_channels=True)
    assert spec.channels == 1 and spec.mean == (0.3,) * 3 and spec.std == (0.35,) * 3
    assert spec == resolve_input_spec({**grey, "mean": [0.3] * 3, "std": [0.35] * 3}, None, any_channels=True)
    assert spec.to_dict()["mean"] == [0.3] and spec.to_dict()["std"] == [0.35]
    for three in ({**grey, "channels": None}, grey):  # an RGB set; a grey one for a model of 3 channels (ResNet)
        with pytest.raises(CnnlabError) as info:
            resolve_input_spec(three, None, any_channels=three["channels"] is None)
        assert "dataset.mean=[0.3] is not allowed: dataset.mean takes a list of 3 numbers" in info.value.message
        assert info.value.fix == "set e.g. 'dataset.mean=[0.3,0.3,0.3]' (the one value for each channel)"
        assert info.value.before_work  # refused before the run does any work: no run folder left


def test_bundle_items_are_normalised_float_tensors() -> None:
    bundle = build_datasets(SYNTHETIC, resolve_input_spec(SYNTHETIC, None))
    assert isinstance(bundle, DataBundle) and bundle.name == "synthetic"
    assert bundle.random_train_transform and bundle.in_memory and bundle.test is None
    assert len(bundle.classes) == 4 and len(bundle.train) == 24 and len(bundle.val) == 8
    image, label = bundle.val[0]
    assert type(image) is torch.Tensor and image.dtype == torch.float32 and image.shape == (3, 16, 16)
    assert isinstance(label, int) and 0 <= label < 4
    assert -2.0 - 1e-6 <= float(image.min()) and float(image.max()) <= 2.0 + 1e-6  # (x - 0.5) / 0.25, x in [0,1]
    batch, labels = next(iter(make_loader(bundle.train, 8, shuffle=True, seed=0)))
    assert batch.shape == (8, 3, 16, 16) and labels.dtype == torch.int64


def test_train_augment_false_is_deterministic_and_equals_eval() -> None:
    spec = resolve_input_spec(SYNTHETIC, None)
    bundle = build_datasets(SYNTHETIC, spec, train_augment=False)
    assert not bundle.random_train_transform
    torch.manual_seed(0)
    first = bundle.train[3][0]
    torch.manual_seed(1)
    assert torch.equal(first, bundle.train[3][0])
    raw_pixels = bundle.train.base[3][0].float() / 255
    assert torch.allclose(first, (raw_pixels - 0.5) / 0.25, atol=1e-6)


def test_augmented_train_items_vary() -> None:
    bundle = build_datasets(SYNTHETIC, resolve_input_spec(SYNTHETIC, None))
    torch.manual_seed(0)
    draws = [bundle.train[3][0] for _ in range(4)]
    assert not all(torch.equal(draws[0], d) for d in draws[1:])


def test_no_random_ops_means_no_random_train_transform() -> None:
    cfg = {**SYNTHETIC, "augment": {"hflip": False, "random_crop": False}}
    assert not build_datasets(cfg, resolve_input_spec(cfg, None)).random_train_transform


def test_digits_bundle_at_the_weights_size() -> None:
    cfg = {"name": "digits", "image_size": None, "native_size": 32, "val_fraction": 0.2, "seed": 0,
           "mean": [0.25] * 3, "std": [0.35] * 3, "augment": {"random_crop": True, "crop_scale": [0.75, 1.0]}}
    bundle = build_datasets(cfg, resolve_input_spec(cfg, InputSpec(20)))
    assert bundle.classes == [str(d) for d in range(10)] and bundle.in_memory
    assert bundle.train[0][0].shape == (3, 20, 20) and bundle.val[0][0].shape == (3, 20, 20)


def test_unknown_dataset_is_a_user_error() -> None:
    with pytest.raises(CnnlabError, match="unknown dataset 'emnist'") as err:
        build_datasets({"name": "emnist"}, InputSpec(16))
    assert "synthetic" in str(err.value)


@pytest.mark.parametrize(("cfg", "message"), [
    ({"name": "imagenet21k"}, "unknown dataset 'imagenet21k'"),
    ({"name": "imagefolder", "root": None}, "imagefolder needs dataset.root=DIR"),
    ({"name": "imagefolder", "root": "{tmp}/nope"}, "does not exist"),
    ({"name": "flowers", "root": None}, "Flowers-102 needs dataset.root=DIR"),
    ({"name": "cifar10", "root": "{tmp}", "download": False}, "CIFAR-10 is not in .* and dataset.download=false"),
])
def test_check_dataset_fails_before_any_image_is_read(tmp_path, cfg: dict, message: str) -> None:
    cfg = {key: value.format(tmp=tmp_path) if isinstance(value, str) else value for key, value in cfg.items()}
    with pytest.raises(CnnlabError, match=message):
        check_dataset(cfg)


def test_check_dataset_passes_what_can_still_be_fetched_or_built(tmp_path) -> None:
    check_dataset(SYNTHETIC)
    check_dataset({"name": "cifar100", "root": str(tmp_path), "download": "auto"})  # missing, but may download
    (tmp_path / "train").mkdir()
    check_dataset({"name": "imagefolder", "root": str(tmp_path)})


def _small_picture_folder(root) -> None:
    from PIL import Image
    for name in ("a", "b"):
        (root / name).mkdir(parents=True)
        for i in range(5):
            Image.new("RGB", (40 + i, 28 + i), (30 * i, ord(name), 0)).save(root / name / f"{i}.png")


@pytest.mark.parametrize("image_size, size, warned", [(None, 224, True), (None, 64, True), (None, 56, False),
                                                      (224, 224, False)])
def test_pictures_read_at_many_times_their_own_size_are_named(tmp_path, caplog, image_size, size, warned) -> None:
    """imagefolder's default 224 px on 28-px pictures trained every step at 64× the arithmetic, unsaid."""
    _small_picture_folder(tmp_path)
    cfg = {"name": "imagefolder", "root": str(tmp_path), "image_size": image_size, "native_size": size}
    with caplog.at_level("WARNING", logger="cnnlab"):
        build_datasets(cfg, resolve_input_spec(cfg, None))
    lines = [r.getMessage() for r in caplog.records if "shorter side" in r.getMessage()]
    assert bool(lines) == warned
    if warned:  # the median shorter side of 28..32 px, and a size near it that the fix sets
        assert f"shorter side is 30 px (median), and they are read at {size} px" in lines[0]
        assert "dataset.image_size=32 for that" in lines[0]
