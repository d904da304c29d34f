from __future__ import annotations

import os
import pickle
import tarfile
import urllib.error
import urllib.request
from pathlib import Path

import numpy as np
import pytest
import torchvision.datasets.cifar
import torchvision.datasets.flowers102
import torchvision.datasets.utils
from PIL import Image
from scipy.io import savemat

from cnnlab.data.spec import InputSpec
from cnnlab.data.torchvision_sets import build_cifar10, build_cifar100, build_flowers, download_mode
from cnnlab.errors import CnnlabError

SPEC = InputSpec(16)


def exists_only(path: str, md5: str | None = None) -> bool:
    """Stands in for torchvision's md5 check: our fake files cannot match the real checksums."""
    return os.path.isfile(path)


@pytest.fixture
def fake_checksums(monkeypatch: pytest.MonkeyPatch) -> None:
    for module in (torchvision.datasets.flowers102, torchvision.datasets.cifar, torchvision.datasets.utils):
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


def test_flowers_with_wrong_checksums_is_reported_as_corrupted(tmp_path: Path, offline: list[str]) -> None:
    write_flowers(tmp_path)  # real md5 check: our fake .mat files fail it
    with pytest.raises(CnnlabError, match="incomplete or corrupted"):
        build_flowers({"root": str(tmp_path), "download": "auto"}, SPEC)
    assert not offline


def test_cifar10_train_and_official_test_split(tmp_path: Path, fake_checksums: None, offline: list[str]) -> None:
    write_cifar10(tmp_path)
    raw = build_cifar10({"root": str(tmp_path), "download": "auto"}, SPEC)
    assert (len(raw.train), len(raw.val), raw.test) == (10, 3, None)
    assert raw.classes[:2] == ["airplane", "automobile"] and raw.stored_size == 32
    image, label = raw.val[1]
    assert image.size == (32, 32) and label == 1 and not offline


def test_cifar10_archive_is_extracted_offline(tmp_path: Path, fake_checksums: None, offline: list[str]) -> None:
    source = tmp_path / "source"
    write_cifar10(source)
    with tarfile.open(tmp_path / "cifar-10-python.tar.gz", "w:gz") as archive:
        archive.add(source / "cifar-10-batches-py", arcname="cifar-10-batches-py")
    raw = build_cifar10({"root": str(tmp_path), "download": False}, SPEC)
    assert len(raw.train) == 10 and (tmp_path / "cifar-10-batches-py" / "test_batch").is_file() and not offline


def test_cifar100_fine_labels(tmp_path: Path, fake_checksums: None) -> None:
    names = [f"class{i}" for i in range(100)]
    write_cifar(tmp_path, "cifar-100-python", {"train": 4, "test": 2}, "fine_labels", ("meta", "fine_label_names"),
                names)
    raw = build_cifar100({"root": str(tmp_path), "download": "auto"}, SPEC)
    assert len(raw.train) == 4 and len(raw.val) == 2 and raw.classes == names


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
