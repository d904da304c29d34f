from __future__ import annotations

import os
import pickle
import shutil
import tarfile
import urllib.error
import urllib.request
from pathlib import Path

import gzip
import logging
import struct
from collections import Counter

import numpy as np
import pytest
import torch
import torchvision.datasets.cifar
import torchvision.datasets.flowers102
import torchvision.datasets.stl10
import torchvision.datasets.svhn
import torchvision.datasets.utils
from PIL import Image
from scipy.io import savemat

from cnnlab.data import archives
from cnnlab.data.registry import build_datasets, check_dataset, resolve_input_spec
from cnnlab.data.spec import InputSpec
from cnnlab.data.splits import label_subset, labels_of
from cnnlab.data.torchvision_sets import (build_cifar10, build_cifar100, build_fashion_mnist, build_flowers,
                                          build_kmnist, build_mnist, build_stl10, build_svhn, download_mode)
from cnnlab.errors import CnnlabError

SPEC = InputSpec(16)


def exists_only(path: str, md5: str | None = None) -> bool:
    """Stands in for torchvision's md5 check: our fake files cannot match the real checksums."""
    return os.path.isfile(path)


@pytest.fixture
def fake_checksums(monkeypatch: pytest.MonkeyPatch) -> None:
    for module in (torchvision.datasets.flowers102, torchvision.datasets.cifar, torchvision.datasets.utils,
                   torchvision.datasets.svhn, torchvision.datasets.stl10):
        monkeypatch.setattr(module, "check_integrity", exists_only)


@pytest.fixture
def offline(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Every URL torchvision tries is recorded and refused."""
    tried: list[str] = []

    def refuse(request: urllib.request.Request, *args: object, **kwargs: object) -> None:
        tried.append(request.full_url)
        raise urllib.error.URLError("network is unreachable")

    monkeypatch.setattr(urllib.request, "urlopen", refuse)
    return tried


def write_flowers(root: Path) -> None:
    """8 images: ids 1-3 train, 4-5 val, 6-8 test, in torchvision's layout."""
    base = root / "flowers-102"
    (base / "jpg").mkdir(parents=True)
    for image_id in range(1, 9):
        Image.new("RGB", (20, 12), (image_id * 30, 0, 0)).save(base / "jpg" / f"image_{image_id:05d}.jpg")
    savemat(base / "imagelabels.mat", {"labels": np.array([[1, 2, 102, 1, 2, 5, 6, 7]])})
    savemat(base / "setid.mat", {"trnid": np.array([[1, 2, 3]]), "valid": np.array([[4, 5]]),
                                 "tstid": np.array([[6, 7, 8]])})


def write_cifar(root: Path, folder: str, batches: dict[str, int], label_key: str, meta: tuple[str, str],
                names: list[str]) -> None:
    directory = root / folder
    directory.mkdir(parents=True)
    rng = np.random.default_rng(0)
    for batch, count in batches.items():
        entry = {"data": rng.integers(0, 255, (count, 3072), dtype=np.uint8),
                 label_key: [i % len(names) for i in range(count)]}
        (directory / batch).write_bytes(pickle.dumps(entry))
    (directory / meta[0]).write_bytes(pickle.dumps({meta[1]: names}))


def write_cifar10(root: Path) -> None:
    batches = {f"data_batch_{i}": 2 for i in range(1, 6)} | {"test_batch": 3}
    write_cifar(root, "cifar-10-batches-py", batches, "labels", ("batches.meta", "label_names"),
                ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"])


def test_flowers_official_splits_and_names(tmp_path: Path, fake_checksums: None, offline: list[str]) -> None:
    write_flowers(tmp_path)
    raw = build_flowers({"root": str(tmp_path), "download": "auto"}, SPEC)
    assert (len(raw.train), len(raw.val), len(raw.test)) == (3, 2, 3)
    assert len(raw.classes) == 102 and raw.classes[0] == "pink primrose"
    image, label = raw.train[2]
    assert image.mode == "RGB" and label == 101
    assert raw.stored_size is None and not offline


def test_flowers_missing_with_download_false_names_every_file(tmp_path: Path, offline: list[str]) -> None:
    with pytest.raises(CnnlabError, match="dataset.download=false") as err:
        build_flowers({"root": str(tmp_path), "download": False}, SPEC)
    message = str(err.value)
    for part in ("flowers-102/jpg/", "flowers-102/imagelabels.mat", "flowers-102/setid.mat",
                 "https://www.robots.ox.ac.uk/~vgg/data/flowers/102/", str(tmp_path)):
        assert part in message
    assert not offline  # false means no attempt at all


def test_flowers_offline_download_fails_with_one_clean_message(tmp_path: Path, offline: list[str]) -> None:
    with pytest.raises(CnnlabError, match="could not be downloaded") as err:
        build_flowers({"root": str(tmp_path), "download": "auto"}, SPEC)
    assert offline  # it did try
    assert "URLError" in str(err.value) and "flowers-102/setid.mat" in str(err.value)
    assert "Traceback" not in str(err.value)
    assert list(tmp_path.iterdir()) == []  # probe 66: the failed download left an empty flowers-102/ behind


def test_a_failed_download_removes_only_the_empty_folders_it_made(tmp_path: Path, offline: list[str]) -> None:
    (tmp_path / "mine").mkdir()
    (tmp_path / "MNIST" / "raw").mkdir(parents=True)  # the user's, kept even though empty
    with pytest.raises(CnnlabError, match="could not be downloaded"):
        build_mnist({"root": str(tmp_path / "data" / "mnist"), "download": "auto"}, SPEC)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["MNIST", "mine"] and offline  # data/ went with data/mnist/
    with pytest.raises(CnnlabError, match="could not be downloaded"):
        build_mnist({"root": str(tmp_path), "download": "auto"}, SPEC)
    assert (tmp_path / "MNIST" / "raw").is_dir() and (tmp_path / "mine").is_dir()


def test_flowers_with_wrong_checksums_is_reported_as_corrupted(tmp_path: Path, offline: list[str]) -> None:
    write_flowers(tmp_path)  # real md5 check: our fake .mat files fail it
    with pytest.raises(CnnlabError, match="incomplete or corrupted"):
        build_flowers({"root": str(tmp_path), "download": "auto"}, SPEC)
    assert not offline


def test_a_corrupted_cifar_folder_names_cnnlab_fixes_not_torchvision_keywords(tmp_path: Path,
                                                                                 offline: list[str]) -> None:
    """Probe 55: the message carried torchvision's "You can use download=True to download it" (not a setting)."""
    (tmp_path / "cifar-10-batches-py").mkdir()
    (tmp_path / "cifar-10-batches-py" / "data_batch_1").write_text("x")
    with pytest.raises(CnnlabError, match="incomplete or corrupted") as err:
        build_cifar10({"root": str(tmp_path), "download": "auto", "val_fraction": 0.2, "seed": 0}, SPEC)
    assert "download=True" not in err.value.one_line() and "cifar-10-python.tar.gz" in err.value.one_line()
    # probe 66: an archive placed beside the folder is never extracted, so the fix deletes the folder first
    assert err.value.fix.startswith(f"delete {tmp_path / 'cifar-10-batches-py'} and put the official files there")
    # and the message names the files at fault, not torchvision's "Dataset not found or corrupted"
    assert f"{tmp_path / 'cifar-10-batches-py' / 'data_batch_2'} is missing" in err.value.message


def test_cifar10_val_is_carved_from_train_and_test_is_the_official_batch(tmp_path: Path, fake_checksums: None,
                                                                          offline: list[str]) -> None:
    write_cifar10(tmp_path)
    raw = build_cifar10({"root": str(tmp_path), "download": "auto", "val_fraction": 0.2, "seed": 0}, SPEC)
    assert (len(raw.train), len(raw.val), len(raw.test)) == (8, 2, 3)
    assert raw.classes[:2] == ["airplane", "automobile"] and raw.stored_size == 32
    assert sorted(labels_of(raw.val)) == [0, 1]  # stratified: one of each class
    assert not set(raw.train.indices) & set(raw.val.indices)  # disjoint parts of the training batches
    image, label = raw.test[1]
    assert image.size == (32, 32) and label == 1 and not offline
    again = build_cifar10({"root": str(tmp_path), "val_fraction": 0.2, "seed": 0}, SPEC)
    assert again.val.indices == raw.val.indices  # seeded


def test_cifar10_archive_is_extracted_offline(tmp_path: Path, fake_checksums: None, offline: list[str]) -> None:
    source = tmp_path / "source"
    write_cifar10(source)
    with tarfile.open(tmp_path / "cifar-10-python.tar.gz", "w:gz") as archive:
        archive.add(source / "cifar-10-batches-py", arcname="cifar-10-batches-py")
    raw = build_cifar10({"root": str(tmp_path), "download": False, "val_fraction": 0.2}, SPEC)
    assert len(raw.train) + len(raw.val) == 10 and (tmp_path / "cifar-10-batches-py" / "test_batch").is_file()
    assert not offline


def test_a_foreign_cifar_archive_is_named_with_the_folder_it_was_extracted_into(tmp_path: Path,
                                                                                 offline: list[str]) -> None:
    """A valid archive of other files than the official ones beside its extracted folder: the fix named the folder
    alone, and deleting it extracted the same files again (probe 67). The archive the files came from is named too;
    an official archive beside a foreign folder is not (deleting the folder is the whole fix)."""
    source = tmp_path / "src"
    write_cifar10(source)
    archive = tmp_path / "cifar-10-python.tar.gz"
    with tarfile.open(archive, "w:gz") as packed:
        packed.add(source / "cifar-10-batches-py", arcname="cifar-10-batches-py")
    folder = tmp_path / "cifar-10-batches-py"
    settings = {"root": str(tmp_path), "download": False, "val_fraction": 0.2}
    for _ in range(2):  # the first build extracts it; the second finds the folder there
        with pytest.raises(CnnlabError, match="its MD5 sum differs") as err:
            build_cifar10(settings, SPEC)
        assert err.value.fix.startswith(f"delete {folder}, {archive} and put the official files there"), err.value.fix
    (folder / "data_batch_1").write_bytes(b"other bytes")  # the folder no longer what the archive holds
    with pytest.raises(CnnlabError, match="its MD5 sum differs") as err:
        build_cifar10(settings, SPEC)
    assert err.value.fix.startswith(f"delete {folder} and put the official files there"), err.value.fix


def test_cifar100_fine_labels(tmp_path: Path, fake_checksums: None) -> None:
    names = [f"class{i}" for i in range(100)]
    write_cifar(tmp_path, "cifar-100-python", {"train": 400, "test": 2}, "fine_labels", ("meta", "fine_label_names"),
                names)
    raw = build_cifar100({"root": str(tmp_path), "download": "auto", "val_fraction": 0.25}, SPEC)
    assert (len(raw.train), len(raw.val), len(raw.test)) == (300, 100, 2) and raw.classes == names


@pytest.mark.parametrize("build, expected", [
    (build_cifar10, ["cifar-10-batches-py/", "cifar-10-python.tar.gz", "https://www.cs.toronto.edu/~kriz/"]),
    (build_cifar100, ["cifar-100-python/", "cifar-100-python.tar.gz"]),
])
def test_cifar_offline_message_names_folder_and_archive(tmp_path: Path, offline: list[str], build, expected) -> None:
    with pytest.raises(CnnlabError, match="could not be downloaded") as err:
        build({"root": str(tmp_path), "download": True}, SPEC)
    assert all(part in str(err.value) for part in expected)


def test_download_setting_values() -> None:
    assert [download_mode(v) for v in ("auto", True, False, "true", "False")] == [None, True, False, True, False]
    with pytest.raises(CnnlabError, match="auto, true or false"):
        download_mode("sometimes")


def test_missing_root_setting_is_a_user_error() -> None:
    with pytest.raises(CnnlabError, match="CIFAR-10 needs dataset.root=DIR"):
        build_cifar10({"root": None}, SPEC)


# ------------------------------------------------------------------------------------- MNIST-style idx files
def write_idx(folder: Path, prefix: str, labels: list[int], *, gz: bool = True) -> None:
    """An idx image file (N x 28 x 28, uint8; image i is filled with 10 * label + i) and its label file."""
    folder.mkdir(parents=True, exist_ok=True)
    count = len(labels)
    images = np.stack([np.full((28, 28), 10 * label + i, np.uint8) for i, label in enumerate(labels)])
    files = {f"{prefix}-images-idx3-ubyte": struct.pack(">IIII", 2051, count, 28, 28) + images.tobytes(),
             f"{prefix}-labels-idx1-ubyte": struct.pack(">II", 2049, count) + bytes(labels)}
    for name, data in files.items():
        if gz:
            (folder / f"{name}.gz").write_bytes(gzip.compress(data))
        else:
            (folder / name).write_bytes(data)


def write_mnist_style(folder: Path, *, gz: bool = True, train: int = 20, test: int = 6) -> None:
    write_idx(folder, "train", [i % 2 for i in range(train)], gz=gz)
    write_idx(folder, "t10k", [i % 2 for i in range(test)], gz=gz)


def test_a_class_of_one_training_image_in_idx_files_is_named_with_a_fix_that_can_be_followed(
        tmp_path: Path, offline: list[str], caplog: pytest.LogCaptureFixture) -> None:
    """Probe 127: "classes 3, 7 have a single image … add at least one more image to each of classes 3, 7" — classes
    by number, and no image can be added to an idx file by hand; a class with no training image trained unsaid."""
    raw = tmp_path / "FashionMNIST" / "raw"
    write_idx(raw, "train", [0, 0, 1, 1, 2, 2, 3, 7, 0, 1], gz=False)
    write_idx(raw, "t10k", [0, 1, 2], gz=False)
    with caplog.at_level(logging.WARNING), pytest.raises(CnnlabError) as info:
        build_fashion_mnist({"root": str(tmp_path), "download": False}, SPEC)
    assert "classes Dress, Sneaker have a single image" in info.value.message
    # probe 132: "put the official files there" alone looped: the files there are read before any archive
    assert (info.value.fix or "").startswith(f"delete {raw / 'train-images-idx3-ubyte'}, ")
    assert "no image of Coat (4), Sandal (5), Shirt (6), Bag (8), Ankle boot (9)" in caplog.text
    caplog.clear()
    write_idx(raw, "train", [c for c in range(9) for _ in range(2)], gz=False)  # every class twice, but Ankle boot
    raw_splits = build_fashion_mnist({"root": str(tmp_path), "download": False, "val_fraction": 0.5}, SPEC)
    assert len(raw_splits.train) == 9 and "no image of Ankle boot (9)" in caplog.text


@pytest.mark.parametrize("build, folder, first_class", [
    (build_mnist, "MNIST", "0 - zero"), (build_fashion_mnist, "FashionMNIST", "T-shirt/top"),
    (build_kmnist, "KMNIST", "o"),
])
def test_mnist_style_sets_read_gz_idx_files_offline(tmp_path: Path, offline: list[str], build, folder: str,
                                                    first_class: str) -> None:
    write_mnist_style(tmp_path / folder / "raw")
    raw = build({"root": str(tmp_path), "download": "auto", "val_fraction": 0.2}, SPEC)
    assert (len(raw.train), len(raw.val), len(raw.test)) == (16, 4, 6) and raw.stored_size == 28
    assert raw.classes[0] == first_class and len(raw.classes) == 10 and not offline
    image, label = raw.test[3]
    assert image.mode == "L" and image.size == (28, 28) and label == 1 and image.getpixel((0, 0)) == 13


def test_fashion_mnist_is_found_in_the_debian_folder_without_configuration(tmp_path: Path, offline: list[str],
                                                                           monkeypatch: pytest.MonkeyPatch) -> None:
    system = tmp_path / "usr_share_datasets_fashion-mnist"
    write_mnist_style(system)
    monkeypatch.setitem(archives.SYSTEM_COPIES, "Fashion-MNIST", system)
    before = sorted(p.name for p in system.iterdir())
    raw = build_fashion_mnist({"root": str(tmp_path / "data"), "download": False, "val_fraction": 0.2}, SPEC)
    assert (len(raw.train) + len(raw.val), len(raw.test)) == (20, 6) and not offline
    assert sorted(p.name for p in system.iterdir()) == before  # read-only: nothing written there
    assert (tmp_path / "data" / "FashionMNIST" / "raw" / "t10k-images-idx3-ubyte").is_file()
    # probe 127: dataset.root set to the system copy itself decompressed 55 MB into the package's folder
    with pytest.raises(CnnlabError, match="is the system copy of Fashion-MNIST .*, which cnnlab only reads") as info:
        build_fashion_mnist({"root": str(system), "download": "auto"}, SPEC)
    assert "drop dataset.root=" in (info.value.fix or "")
    with pytest.raises(CnnlabError, match="is a system folder above the system copy"):  # probe 132: above it
        build_fashion_mnist({"root": str(system.parent), "download": "auto"}, SPEC)
    assert sorted(p.name for p in system.iterdir()) == before and not (tmp_path / "FashionMNIST").exists()


def test_fashion_mnist_missing_everywhere_names_the_files_and_the_debian_package(
        tmp_path: Path, offline: list[str], monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(archives.SYSTEM_COPIES, "Fashion-MNIST", tmp_path / "nowhere")
    with pytest.raises(CnnlabError, match="dataset.download=false") as err:
        check_dataset({"name": "fashion_mnist", "root": str(tmp_path), "download": False})
    message = str(err.value)
    for part in ("FashionMNIST/raw/train-images-idx3-ubyte", "t10k-labels-idx1-ubyte.gz",
                 "apt-get install dataset-fashion-mnist", "fashion-mnist.s3-website"):
        assert part in message
    assert "\n" not in message and not offline


def test_mnist_offline_download_fails_with_one_clean_message(tmp_path: Path, offline: list[str]) -> None:
    """Probe 66: the cause read `(RuntimeError: Error downloading train-images-idx3-ubyte.gz:)` and stopped."""
    with pytest.raises(CnnlabError, match="could not be downloaded") as err:
        build_mnist({"root": str(tmp_path), "download": "auto"}, SPEC)
    assert offline and "MNIST/raw/train-labels-idx1-ubyte" in str(err.value)
    message = err.value.message
    assert "could not be downloaded (Tried https://ossci-datasets.s3.amazonaws.com/mnist/, got: <urlopen error " \
           "network is unreachable>" in message and "\n" not in message
    assert err.value.fix.startswith(f"place {tmp_path / 'MNIST/raw/train-images-idx3-ubyte'} (or the archive")


def test_a_set_missing_one_file_names_that_file_alone(tmp_path: Path, offline: list[str]) -> None:
    """Probe 234: with only t10k-labels missing, the cause read "Error downloading train-images-idx3-ubyte.gz" —
    torchvision's download fetches every file in order, the present ones too — beside the one file named missing."""
    write_mnist_style(tmp_path / "MNIST" / "raw", gz=False)
    (tmp_path / "MNIST" / "raw" / "t10k-labels-idx1-ubyte").unlink()
    with pytest.raises(CnnlabError, match="could not be downloaded") as err:
        build_mnist({"root": str(tmp_path), "download": "auto"}, SPEC)
    said = f"{err.value.message} {err.value.fix}"
    assert offline and "t10k-labels-idx1-ubyte" in said
    assert not any(name in said for name in ("train-images", "train-labels", "t10k-images")), said


def test_svhn_official_splits(tmp_path: Path, fake_checksums: None, offline: list[str]) -> None:
    rng = np.random.default_rng(0)
    for split, count in (("train", 20), ("test", 4)):
        savemat(tmp_path / f"{split}_32x32.mat", {"X": rng.integers(0, 255, (32, 32, 3, count), dtype=np.uint8),
                                                  "y": np.array([[10 if i % 2 else 3] for i in range(count)])})
    raw = build_svhn({"root": str(tmp_path), "download": False, "val_fraction": 0.2}, SPEC)
    assert (len(raw.train), len(raw.val), len(raw.test)) == (16, 4, 4) and raw.classes[0] == "0"
    assert sorted(set(labels_of(raw.test))) == [0, 3] and raw.test[0][0].size == (32, 32) and not offline


def write_stl10(root: Path) -> None:
    folder = root / "stl10_binary"
    folder.mkdir(parents=True)
    rng = np.random.default_rng(0)
    for name, count in (("train", 20), ("test", 4), ("unlabeled", 3)):
        (folder / f"{name}_X.bin").write_bytes(rng.integers(0, 255, count * 3 * 96 * 96, dtype=np.uint8).tobytes())
        if name != "unlabeled":
            (folder / f"{name}_y.bin").write_bytes(bytes(1 + i % 2 for i in range(count)))  # 1-based on disk
    (folder / "class_names.txt").write_text("\n".join(["airplane", "bird", "car", "cat", "deer", "dog", "horse",
                                                         "monkey", "ship", "truck"]))


def test_stl10_splits_and_lazy_unlabeled_images(tmp_path: Path, fake_checksums: None, offline: list[str],
                                                monkeypatch: pytest.MonkeyPatch) -> None:
    write_stl10(tmp_path)
    opened: list[str] = []
    original = torchvision.datasets.STL10.__init__

    def counting(self, root, split="train", *args, **kwargs):
        opened.append(split)
        original(self, root, split, *args, **kwargs)

    monkeypatch.setattr(torchvision.datasets.STL10, "__init__", counting)
    raw = build_stl10({"root": str(tmp_path), "download": False, "val_fraction": 0.2}, SPEC)
    assert (len(raw.train), len(raw.val), len(raw.test)) == (16, 4, 4) and raw.stored_size == 96
    assert raw.classes[1] == "bird" and sorted(set(labels_of(raw.test))) == [0, 1]
    assert "unlabeled" not in opened  # 2.8 GB for the real set: loaded only when used
    assert len(raw.unlabeled) == 3 and raw.unlabeled[0][1] == -1 and opened.count("unlabeled") == 1


# ------------------------------------------------------------------------------ through the registry
def test_grayscale_set_feeds_rgb_models_and_one_channel_lenet(tmp_path: Path, offline: list[str]) -> None:
    write_mnist_style(tmp_path / "MNIST" / "raw")
    cfg = {"name": "mnist", "root": str(tmp_path), "download": False, "val_fraction": 0.2, "native_size": 28,
           "channels": 1, "mean": [0.5] * 3, "std": [0.5] * 3, "image_size": 16}
    rgb = build_datasets(cfg, resolve_input_spec(cfg, None), train_augment=False)
    gray = build_datasets(cfg, resolve_input_spec(cfg, None, any_channels=True), train_augment=False)
    assert rgb.spec.channels == 3 and gray.spec.channels == 1
    image_rgb, label = rgb.test[3]
    image_gray, _ = gray.test[3]
    assert image_rgb.shape == (3, 16, 16) and image_gray.shape == (1, 16, 16) and label == 1
    assert torch.equal(image_rgb[0], image_rgb[2]) and torch.allclose(image_rgb[0], image_gray[0])
    assert rgb.spec.resize == "square" and rgb.spec.crop is None  # stored-size set: plain resize, recorded
    assert len(rgb.test) == 6 and len(rgb.train) + len(rgb.val) == 20  # test kept apart from train and val


def test_label_fraction_is_class_balanced_seeded_and_leaves_val_alone(tmp_path: Path, offline: list[str]) -> None:
    write_idx(tmp_path / "MNIST" / "raw", "train", [i % 4 for i in range(200)])
    write_idx(tmp_path / "MNIST" / "raw", "t10k", [i % 4 for i in range(8)])
    cfg = {"name": "mnist", "root": str(tmp_path), "download": False, "val_fraction": 0.2, "native_size": 28,
           "image_size": 16}
    spec = resolve_input_spec(cfg, None)
    full = build_datasets(cfg, spec)
    tenth = build_datasets({**cfg, "label_fraction": 0.1}, spec)
    assert len(full.train) == 160 and len(tenth.train) == 16 and tenth.label_fraction == 0.1
    assert Counter(labels_of(tenth.train.base)) == {0: 4, 1: 4, 2: 4, 3: 4}  # every class, in proportion
    assert labels_of(tenth.val.base) == labels_of(full.val.base) and len(tenth.test) == len(full.test)
    assert build_datasets({**cfg, "label_fraction": 0.1}, spec).train.base.indices == tenth.train.base.indices
    assert build_datasets({**cfg, "label_fraction": 0.1, "seed": 1}, spec).train.base.indices != \
        tenth.train.base.indices
    with pytest.raises(CnnlabError, match="label_fraction must be in"):
        build_datasets({**cfg, "label_fraction": 0}, spec)


def test_label_subset_keeps_at_least_one_per_class() -> None:
    labels = [0] * 50 + [1] * 5
    kept = label_subset(labels, 0.05, seed=0, what="test")
    assert Counter(labels[i] for i in kept) == {0: 2, 1: 1} and kept == sorted(kept)
    assert label_subset(labels, 1.0, seed=0, what="test") == list(range(55))


def test_an_interrupted_extraction_leaves_nothing_that_looks_ready(tmp_path: Path, offline: list[str],
                                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    """The jobs of a parallel sweep open the set at once: a half-written idx file must never stand at its
    final path, where another job would take it as ready and fail on it."""
    system = tmp_path / "system"
    write_mnist_style(system)
    monkeypatch.setitem(archives.SYSTEM_COPIES, "Fashion-MNIST", system)
    root = tmp_path / "data"

    def cut_short(source: str, folder: str) -> None:
        name = Path(source).name.removesuffix(".gz")
        (Path(folder) / name).write_bytes(gzip.open(source).read()[:20])  # part of the file, then the crash
        raise OSError("interrupted")

    whole = archives.extract_archive
    monkeypatch.setattr(archives, "extract_archive", cut_short)
    with pytest.raises(CnnlabError, match="cannot decompress"):
        build_fashion_mnist({"root": str(root), "download": False, "val_fraction": 0.2}, SPEC)
    raw = root / "FashionMNIST" / "raw"
    assert [p.name for p in raw.iterdir()] == []  # no partial file, no private folder left behind
    assert archives.FASHION_MNIST_FILES.state(root) != "ready"
    monkeypatch.setattr(archives, "extract_archive", whole)
    raw_splits = build_fashion_mnist({"root": str(root), "download": False, "val_fraction": 0.2}, SPEC)
    assert len(raw_splits.test) == 6 and not offline  # the next attempt extracts the whole files


@pytest.mark.parametrize("split", ["train", "t10k"])
def test_a_label_outside_the_sets_classes_is_refused_naming_the_split_before_any_carve(
        tmp_path: Path, offline: list[str], split: str) -> None:
    """An MNIST label file holding 12 was carved as "class 12 has a single image" (fix: add one more), then trained
    into an IndexError traceback; evaluate split=test the same (probe 66)."""
    write_mnist_style(tmp_path / "MNIST" / "raw")
    labels = [i % 2 for i in range(20 if split == "train" else 6)]
    labels[3] = 12
    write_idx(tmp_path / "MNIST" / "raw", split, labels)
    raw = tmp_path / "MNIST" / "raw"
    labels_file = raw / f"{split}-labels-idx1-ubyte"
    outside = rf"MNIST's (train|test) labels hold 12, outside 0-9 \(its 10 classes\): {labels_file} is corrupt"
    with pytest.raises(CnnlabError, match=outside) as info:
        build_mnist({"root": str(tmp_path), "download": "auto"}, SPEC)
    # probe 67: that file alone, and the .gz it came from (deleting only the file extracted the same labels again)
    assert info.value.fix.startswith(f"delete {labels_file}, {labels_file}.gz and put the official files there")
    assert not any(other in info.value.fix for other in ("images-idx3", "t10k-labels" if split == "train"
                                                         else "train-labels"))
    labels_file.unlink()
    (raw / f"{split}-labels-idx1-ubyte.gz").unlink()
    write_idx(raw, "official", [i % 2 for i in range(20 if split == "train" else 6)])  # "the official file"
    (raw / "official-labels-idx1-ubyte.gz").replace(raw / f"{split}-labels-idx1-ubyte.gz")
    assert len(build_mnist({"root": str(tmp_path), "download": "auto"}, SPEC).classes) == 10  # followed, it works


def test_a_flowers_image_missing_from_jpg_is_refused_before_any_work(tmp_path: Path, fake_checksums: None,
                                                                       offline: list[str]) -> None:
    """torchvision checks the .mat files and that jpg/ exists: a missing image was a FileNotFoundError traceback in
    the middle of training or evaluation (probe 66)."""
    write_flowers(tmp_path)
    (tmp_path / "flowers-102" / "jpg" / "image_00007.jpg").unlink()
    with pytest.raises(CnnlabError, match=r"Flowers-102 files in .* are incomplete or corrupted: "
                                          r".*jpg/image_00007.jpg is missing") as info:
        build_flowers({"root": str(tmp_path), "download": "auto"}, SPEC)
    assert info.value.fix.startswith(f"delete {tmp_path / 'flowers-102' / 'jpg'} and put the official files there")


@pytest.mark.parametrize("inside", ["MNIST", "MNIST/raw"])
def test_a_root_inside_the_sets_own_folders_names_the_root_to_use(tmp_path: Path, offline: list[str],
                                                                  inside: str) -> None:
    """dataset.root=ROOT/MNIST said MNIST was missing, and its hint asked for ROOT/MNIST/MNIST/raw/… (probe 66)."""
    write_mnist_style(tmp_path / "MNIST" / "raw")
    with pytest.raises(CnnlabError, match="MNIST's files are in .*, and dataset.root=.* names a folder inside them") \
            as info:
        build_mnist({"root": str(tmp_path / inside), "download": "auto"}, SPEC)
    assert info.value.fix == f"use dataset.root={tmp_path.resolve()}" and not offline
    raw = build_mnist({"root": str(tmp_path.resolve()), "download": "auto"}, SPEC)  # the fix, followed
    assert len(raw.test) == 6

# ---------------------------------------------- damaged or half-placed files: each message names the file at fault
def truncate(path: Path, keep: int, tail: bytes = b"") -> None:
    path.write_bytes(path.read_bytes()[:keep] + tail)


def test_a_cut_short_flowers_jpeg_is_refused_before_any_work_naming_it(tmp_path: Path, fake_checksums: None,
                                                                        offline: list[str]) -> None:
    """torchvision checks only the .mat files and that jpg/ exists: a truncated JPEG was an `OSError: Truncated File
    Read` traceback in the middle of training, or at `cnnlab evaluate split=test`."""
    write_flowers(tmp_path)
    jpg = tmp_path / "flowers-102" / "jpg"
    truncate(jpg / "image_00003.jpg", 300)
    with pytest.raises(CnnlabError, match=r"Flowers-102 files in .* are incomplete or corrupted: .*"
                                          r"image_00003.jpg cannot be read \(OSError: Truncated File Read\)") as info:
        build_flowers({"root": str(tmp_path), "download": "auto"}, SPEC)
    assert info.value.fix.startswith(f"delete {jpg} and put the official files there: place {jpg}/ (or the archive")
    shutil.rmtree(jpg)
    write_flowers(tmp_path / "fresh")
    (tmp_path / "fresh" / "flowers-102" / "jpg").rename(jpg)  # the fix, followed
    assert len(build_flowers({"root": str(tmp_path), "download": "auto"}, SPEC).train) == 3 and not offline


def test_a_flowers_jpeg_damaged_inside_is_one_line_when_it_is_read(tmp_path: Path, fake_checksums: None,
                                                                    offline: list[str]) -> None:
    """A file that ends as a JPEG should (its end marker) passes the quick check; reading it names it."""
    write_flowers(tmp_path)
    image = tmp_path / "flowers-102" / "jpg" / "image_00002.jpg"
    truncate(image, 300, tail=b"\xff\xd9")
    raw = build_flowers({"root": str(tmp_path), "download": "auto"}, SPEC)
    assert raw.train[0][0].mode == "RGB"
    with pytest.raises(CnnlabError, match=rf"image {image} cannot be read \(OSError: Truncated File Read\)") as info:
        raw.train[1]
    assert info.value.fix.startswith(f"delete {image.parent} and put the official files there")


def test_a_half_extracted_cifar_folder_names_the_missing_batch(tmp_path: Path, fake_checksums: None,
                                                              offline: list[str]) -> None:
    write_cifar10(tmp_path)
    folder = tmp_path / "cifar-10-batches-py"
    (folder / "data_batch_3").unlink()
    with pytest.raises(CnnlabError, match=rf"CIFAR-10 files in {tmp_path} are incomplete or corrupted: "
                                          rf"{folder / 'data_batch_3'} is missing — ") as info:
        build_cifar10({"root": str(tmp_path), "download": "auto"}, SPEC)
    assert info.value.fix.startswith(f"delete {folder} and put the official files there: place {folder}/")
    assert "Dataset not found" not in str(info.value) and not offline


def test_cifar_files_that_are_not_the_official_ones_are_named_by_their_md5_sum(tmp_path: Path,
                                                                                offline: list[str]) -> None:
    write_cifar10(tmp_path)  # every file there, none the official one: torchvision's real MD5 check
    with pytest.raises(CnnlabError, match=r"data_batch_1 is not the official file \(its MD5 sum differs\); .*"
                                          r"data_batch_2 is not the official file \(its MD5 sum differs\) "
                                          r"\(and 5 more\)"):
        build_cifar10({"root": str(tmp_path), "download": "auto"}, SPEC)


def test_a_truncated_archive_is_named(tmp_path: Path, offline: list[str]) -> None:
    (tmp_path / "cifar-10-python.tar.gz").write_bytes(b"not a gzip file at all")
    with pytest.raises(CnnlabError, match=rf"CIFAR-10: cannot extract {tmp_path / 'cifar-10-python.tar.gz'} "
                                          r"\(ReadError") as info:
        build_cifar10({"root": str(tmp_path), "download": False}, SPEC)
    assert info.value.fix.startswith("replace it with the official file: place")


@pytest.mark.parametrize("damage, file, why", [
    (lambda raw: truncate(raw / "train-images-idx3-ubyte", 16 + 19 * 784), "train-images-idx3-ubyte",
     r"holds 14,896 bytes of values where its header promises 20 x 28 x 28 = 15,680: it is cut short"),
    (lambda raw: truncate(raw / "train-labels-idx1-ubyte", 0), "train-labels-idx1-ubyte", "is empty"),
    (lambda raw: truncate(raw / "t10k-labels-idx1-ubyte", 8 + 5), "t10k-labels-idx1-ubyte",
     r"holds 5 bytes of values where its header promises 6: it is cut short"),
    (lambda raw: (raw / "t10k-images-idx3-ubyte").write_bytes(b"<html>not found</html>"), "t10k-images-idx3-ubyte",
     r"is not an idx file \(it starts with 0x3c68746d"),
    (lambda raw: write_idx(raw, "train", [0, 1] * 9, gz=False) or write_idx(raw, "tmp", [0] * 20, gz=False) or
     (raw / "tmp-images-idx3-ubyte").replace(raw / "train-images-idx3-ubyte"), "train-labels-idx1-ubyte",
     "holds 18 labels for the 20 images of train-images-idx3-ubyte"),
    # probe 67: 32 x 32 images with a header that says so trained as Fashion-MNIST, exit 0 (28-px strides of other
    # bytes); with a label count unlike the images', the label file was blamed and its fix looped
    (lambda raw: (raw / "train-images-idx3-ubyte").write_bytes(struct.pack(">IIII", 2051, 15, 32, 32)
                                                               + bytes(15 * 32 * 32)), "train-images-idx3-ubyte",
     "holds 32 x 32 images, not the 28 x 28 of MNIST, Fashion-MNIST and KMNIST"),
    # probe 127: a label file where the images go, and a header of 0 items: torchvision's "x should have 3 dimension
    # instead of 1" and a buffer-offset error, no file named, and a fix that deleted all four
    (lambda raw: (raw / "train-images-idx3-ubyte").write_bytes((raw / "train-labels-idx1-ubyte").read_bytes()),
     "train-images-idx3-ubyte", r"holds labels \(1-D\) where its name says images: are the image and label files "
                                r"swapped\?"),
    (lambda raw: (raw / "t10k-images-idx3-ubyte").write_bytes(struct.pack(">IIII", 2051, 0, 28, 28)),
     "t10k-images-idx3-ubyte", r"holds no items \(its header counts 0\)"),
])
def test_a_corrupt_idx_file_is_named_file_by_file(tmp_path: Path, offline: list[str], damage, file: str,
                                                  why: str) -> None:
    """Probe 66: `(RuntimeError: shape '[100, 28, 28]' is invalid for input of size 29984)`, and a fix that listed all
    four files."""
    raw = tmp_path / "MNIST" / "raw"
    write_mnist_style(raw, gz=False)
    damage(raw)
    with pytest.raises(CnnlabError, match=rf"MNIST files in {tmp_path} are incomplete or corrupted: "
                                          rf"{raw / file} {why}") as info:
        build_mnist({"root": str(tmp_path), "download": "auto"}, SPEC)
    fix = info.value.fix
    assert fix.startswith(f"delete {raw / file} and put the official files there: place {raw / file} (or the archive")
    others = {"train-images", "train-labels", "t10k-images", "t10k-labels"} - {file.rsplit("-", 2)[0]}
    assert not any(other in fix for other in others) and not offline  # that file (and its .gz), not all four


def write_svhn_split(root: Path, split: str) -> None:
    rng = np.random.default_rng(0)
    savemat(root / f"{split}_32x32.mat", {"X": rng.integers(0, 255, (32, 32, 3, 4), dtype=np.uint8),
                                          "y": np.array([[1 + i % 2] for i in range(4)])})


@pytest.mark.parametrize("download, says", [(False, "and dataset.download=false"),
                                            ("auto", "and could not be downloaded")])
def test_an_svhn_root_with_only_the_training_file_names_the_test_file(tmp_path: Path, fake_checksums: None,
                                                                      offline: list[str], download, says) -> None:
    """Probe 66: `SVHN is not in DIR`, listing both files, when only test_32x32.mat was missing."""
    write_svhn_split(tmp_path, "train")
    with pytest.raises(CnnlabError, match=rf"SVHN in {tmp_path} lacks {tmp_path / 'test_32x32.mat'} {says}") as info:
        build_svhn({"root": str(tmp_path), "download": download}, SPEC)
    assert info.value.fix.startswith(f"place {tmp_path / 'test_32x32.mat'} — from http")
    assert "train_32x32" not in info.value.fix
    write_svhn_split(tmp_path, "test")  # the fix, followed
    assert len(build_svhn({"root": str(tmp_path), "download": download, "val_fraction": 0.5}, SPEC).test) == 4


def test_a_damaged_fashion_mnist_file_with_the_system_copy_installed_is_told_to_delete_it_only(
        tmp_path: Path, offline: list[str], monkeypatch: pytest.MonkeyPatch) -> None:
    """Probe 184: the fix named `apt-get install dataset-fashion-mnist` where the package was installed; deleting the
    file alone is enough (the next run extracts it again from the installed copy)."""
    system = tmp_path / "system"
    write_mnist_style(system)
    monkeypatch.setitem(archives.SYSTEM_COPIES, "Fashion-MNIST", system)
    config = {"root": str(tmp_path / "data"), "download": False, "val_fraction": 0.2}
    build_fashion_mnist(config, SPEC)
    damaged = tmp_path / "data" / "FashionMNIST" / "raw" / "t10k-images-idx3-ubyte"
    damaged.write_bytes(damaged.read_bytes()[:100])
    with pytest.raises(CnnlabError, match="incomplete or corrupted") as err:
        build_fashion_mnist(config, SPEC)
    assert err.value.fix == f"delete {damaged}: the next run puts them back from the copy installed in {system}/"
    damaged.unlink()  # followed
    raw = build_fashion_mnist(config, SPEC)
    assert len(raw.test) == 6
