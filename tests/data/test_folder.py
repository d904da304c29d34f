from __future__ import annotations

import io
import logging
import zlib
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from PIL import Image

from cnnlab.data.decode import GRAY16
from cnnlab.data.folder import build_imagefolder
from cnnlab.data.spec import InputSpec
from cnnlab.data.transforms import eval_transform
from cnnlab.errors import CnnlabError

SPEC = InputSpec(16)


def write_image(path: Path, seed: int, mode: str = "RGB", fmt: str = "JPEG") -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    pixels = np.random.default_rng(seed).integers(0, 255, (10, 14, 4), dtype=np.uint8)
    Image.fromarray(pixels, "RGBA").convert(mode).save(path, fmt)
    return path


def make_classes(directory: Path, classes: dict[str, int]) -> None:
    """Other pictures in every folder: a val/ picture with a train/ picture's bytes is left out of val."""
    for name, count in classes.items():
        for i in range(count):
            write_image(directory / name / f"{i}.jpg", seed=zlib.crc32(f"{directory.name}/{name}/{i}".encode()))


def test_train_val_layout(tmp_path: Path) -> None:
    make_classes(tmp_path / "train", {"cat": 3, "dog": 2})
    make_classes(tmp_path / "val", {"cat": 1, "dog": 1})
    raw = build_imagefolder({"root": str(tmp_path)}, SPEC)
    assert raw.classes == ["cat", "dog"] and len(raw.train) == 5 and len(raw.val) == 2 and raw.test is None
    image, label = raw.train[4]
    assert image.mode == "RGB" and label == 1
    assert raw.stored_size is None and not raw.in_memory


def test_a_valid_folder_stands_in_for_val(tmp_path: Path) -> None:
    make_classes(tmp_path / "train", {"a": 2, "b": 2})
    make_classes(tmp_path / "valid", {"a": 1, "b": 1})
    raw = build_imagefolder({"root": str(tmp_path)}, SPEC)
    assert len(raw.val) == 2 and raw.test is None


def test_test_folder_next_to_val_becomes_the_test_split(tmp_path: Path) -> None:
    for split in ("train", "val", "test"):
        make_classes(tmp_path / split, {"a": 2, "b": 1})
    raw = build_imagefolder({"root": str(tmp_path)}, SPEC)
    assert raw.test is not None and len(raw.test) == 3


def test_one_level_layout_is_split_stratified_and_seeded(tmp_path: Path) -> None:
    make_classes(tmp_path, {"a": 6, "b": 4})
    (tmp_path / ".ipynb_checkpoints").mkdir()  # hidden folders are not classes
    cfg = {"root": str(tmp_path), "val_fraction": 0.5, "seed": 0}
    raw = build_imagefolder(cfg, SPEC)
    assert raw.classes == ["a", "b"] and len(raw.train) == 5 and len(raw.val) == 5
    assert sorted(label for _, label in (raw.val[i] for i in range(5))) == [0, 0, 0, 1, 1]
    assert build_imagefolder(cfg, SPEC).val.indices == raw.val.indices


def test_grey_and_rgba_files_come_out_rgb(tmp_path: Path) -> None:
    write_image(tmp_path / "train" / "a" / "grey.png", 1, mode="L", fmt="PNG")
    write_image(tmp_path / "train" / "a" / "alpha.png", 2, mode="RGBA", fmt="PNG")
    make_classes(tmp_path / "train", {"b": 1})  # a classifier needs two classes
    make_classes(tmp_path / "val", {"a": 1, "b": 1})
    raw = build_imagefolder({"root": str(tmp_path)}, SPEC)
    assert {raw.train[i][0].mode for i in range(2)} == {"RGB"}


def test_unreadable_files_are_skipped_and_counted(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    make_classes(tmp_path / "train", {"a": 2, "b": 2})
    make_classes(tmp_path / "val", {"a": 1, "b": 1})
    (tmp_path / "train" / "a" / "0garbage.jpg").write_bytes(b"not an image at all")
    buffer = io.BytesIO()
    Image.fromarray(np.random.default_rng(0).integers(0, 255, (64, 64, 3), dtype=np.uint8)).save(buffer, "JPEG")
    (tmp_path / "val" / "b" / "truncated.jpg").write_bytes(buffer.getvalue()[: len(buffer.getvalue()) // 2])
    (tmp_path / "train" / "b" / "notes.txt").write_text("not an image, not counted")
    with caplog.at_level(logging.WARNING, logger="cnnlab.data.folder"):
        raw = build_imagefolder({"root": str(tmp_path)}, SPEC)
    assert len(raw.train) == 4 and len(raw.val) == 2
    assert "skipped 2 (unreadable: 1, first: " in caplog.text and "0garbage.jpg" in caplog.text
    assert "damaged or cut short: 1, first: " in caplog.text and "truncated.jpg" in caplog.text
    assert "notes.txt" not in caplog.text


def test_colour_pictures_read_for_a_one_channel_model_are_said_to_lose_their_colour(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    """Probe 191: a folder of photos fine-tuned from a Fashion-MNIST (1-channel) run was read as grey without a word;
    its two classes that differ by colour alone scored 0 %. Grey pictures (8-bit, 16-bit) lose nothing: not counted.
    Counted over the splits the command reads, not the whole folder (an evaluate of test/ said "48 of its 48
    pictures" of a folder whose test/ holds 16), and marked for run.json's `warnings` (RUN_WARNING)."""
    from cnnlab.data.registry import build_datasets
    from cnnlab.console import RUN_WARNING

    make_classes(tmp_path / "train", {"a": 2, "b": 2})  # colour JPEGs
    write_image(tmp_path / "train" / "a" / "grey.png", seed=7, mode="L", fmt="PNG")
    write_image(tmp_path / "train" / "b" / "grey16.png", seed=8, mode="I;16", fmt="PNG")
    make_classes(tmp_path / "val", {"a": 1, "b": 1})
    make_classes(tmp_path / "test", {"a": 3, "b": 2})  # read by evaluate only
    cfg = {"name": "imagefolder", "root": str(tmp_path)}
    one_channel = InputSpec(16, mean=(0.5,) * 3, std=(0.25,) * 3, channels=1)
    for reads, said in ((("train", "val"), "train and val splits: 6 of its 8 pictures"),
                        (("test",), "test split: 5 of its 5 pictures"),
                        (("train", "val", "test"), "train, val and test splits: 11 of its 13 pictures")):
        caplog.clear()
        with caplog.at_level(logging.WARNING, logger="cnnlab"):
            build_datasets(cfg, one_channel, reads=reads)
        lines = [record for record in caplog.records if "luminance" in record.getMessage()]
        assert len(lines) == 1, caplog.text
        assert lines[0].getMessage() == (
            f"imagefolder {tmp_path}, {said} hold colour and are read as their luminance (L = "
            "0.299 R + 0.587 G + 0.114 B) for the model's 1-channel input: any colour that tells classes apart is lost "
            "(a 3-channel model keeps it)")
        assert all(getattr(lines[0], key) == value for key, value in RUN_WARNING.items())
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="cnnlab"):
        build_datasets(cfg, SPEC)  # a 3-channel model keeps the colour: nothing to say
    assert "luminance" not in caplog.text


def test_a_named_pipe_among_the_pictures_is_skipped_not_waited_on(tmp_path: Path,
                                                                  caplog: pytest.LogCaptureFixture) -> None:
    """Probe 112: a FIFO named fifo.png (or with no extension, read by its content) in a class folder hung finetune
    and predict forever in open(), waiting for a writer."""
    import contextlib
    import os
    import threading

    make_classes(tmp_path / "train", {"a": 2, "b": 2})
    make_classes(tmp_path / "val", {"a": 1, "b": 1})
    os.mkfifo(tmp_path / "train" / "a" / "fifo.png")
    os.mkfifo(tmp_path / "train" / "b" / "noextension")
    (tmp_path / "val" / "a" / "link.png").symlink_to(tmp_path / "train" / "a" / "fifo.png")
    fifos, done, waited = [tmp_path / "train" / "a" / "fifo.png", tmp_path / "train" / "b" / "noextension"], \
        threading.Event(), threading.Event()

    def unblock() -> None:  # a scan stuck in open() would hang the suite: after 15 s, a writer comes and goes
        if done.wait(15):
            return
        waited.set()
        while not done.wait(0.2):
            for fifo in fifos:
                with contextlib.suppress(OSError):  # no reader waiting at this moment
                    os.close(os.open(fifo, os.O_WRONLY | os.O_NONBLOCK))

    watchdog = threading.Thread(target=unblock, daemon=True)
    watchdog.start()
    try:
        with caplog.at_level(logging.WARNING, logger="cnnlab.data.folder"):
            raw = build_imagefolder({"root": str(tmp_path)}, SPEC)
    finally:
        done.set()
        watchdog.join()
    assert not waited.is_set(), "the scan waited on a named pipe until a writer came"
    assert len(raw.train) == 4 and len(raw.val) == 2
    assert "not a regular file: 2" in caplog.text, caplog.text


def test_class_left_without_readable_image_is_a_user_error(tmp_path: Path) -> None:
    make_classes(tmp_path, {"a": 3})
    (tmp_path / "b").mkdir()
    (tmp_path / "b" / "broken.png").write_bytes(b"\x89PNG broken")
    with pytest.raises(CnnlabError, match=r"class folder\(s\) b .*image; skipped 1 \(unreadable: 1"):
        build_imagefolder({"root": str(tmp_path)}, SPEC)


def test_missing_root_setting(tmp_path: Path) -> None:
    with pytest.raises(CnnlabError, match=r"imagefolder needs dataset.root=DIR") as err:
        build_imagefolder({"root": None}, SPEC)
    assert "DIR/train/<class>" in str(err.value)


def test_root_that_does_not_exist(tmp_path: Path) -> None:
    with pytest.raises(CnnlabError, match="does not exist") as err:
        build_imagefolder({"root": str(tmp_path / "nope")}, SPEC)
    assert "dataset.root=DIR" in str(err.value)


def test_root_that_is_a_file(tmp_path: Path) -> None:
    (tmp_path / "file.jpg").write_bytes(b"x")
    with pytest.raises(CnnlabError, match="is a file"):
        build_imagefolder({"root": str(tmp_path / "file.jpg")}, SPEC)


def test_root_without_class_folders(tmp_path: Path) -> None:
    write_image(tmp_path / "loose.jpg", 0)
    with pytest.raises(CnnlabError, match="no class folders") as err:
        build_imagefolder({"root": str(tmp_path)}, SPEC)
    assert "DIR/<class>/*.jpg" in str(err.value)


def test_class_folders_without_images(tmp_path: Path) -> None:
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    with pytest.raises(CnnlabError, match="no readable images"):
        build_imagefolder({"root": str(tmp_path)}, SPEC)


@pytest.mark.parametrize("split", ["test", "val"])
def test_an_empty_val_or_test_folder_names_itself_and_a_fix_that_works(tmp_path: Path, split: str) -> None:
    """Probe 136: an empty test/ (its class folders there, no image) stopped training with "set dataset.root=DIR to
    a folder laid out as DIR/train/<class>/*.jpg and DIR/val/<class>/*.jpg" — the layout the folder had."""
    import shutil

    for name in ("train", "val"):
        make_classes(tmp_path / name, {"a": 4, "b": 4})
    shutil.rmtree(tmp_path / split, ignore_errors=True)  # (test/ was never made)
    for name in ("a", "b"):
        (tmp_path / split / name).mkdir(parents=True)
    with pytest.raises(CnnlabError) as err:
        build_imagefolder({"root": str(tmp_path)}, SPEC)
    assert f"no readable images in the class folders of {tmp_path / split}" in err.value.message
    assert err.value.fix == (f"add images to its class folders ({tmp_path / split}/<class>/*.jpg), or remove the "
                             f"empty {tmp_path / split}/")
    shutil.rmtree(tmp_path / split)  # the fix, followed
    raw = build_imagefolder({"root": str(tmp_path)}, SPEC)
    carved = split == "val"  # without val/, val is carved from train/'s 8 images
    assert raw.test is None and len(raw.val) > 0 and len(raw.train) + len(raw.val) == (8 if carved else 16)
    (tmp_path / split).mkdir()  # probe 137: no class folders at all read the whole layout's fix
    with pytest.raises(CnnlabError) as err:
        build_imagefolder({"root": str(tmp_path)}, SPEC)
    assert f"no class folders and no pictures in {tmp_path / split}" in err.value.message
    assert err.value.fix.startswith(f"add its class folders with images ({tmp_path / split}/<class>/*.jpg") and \
        err.value.fix.endswith(f"or remove the empty {tmp_path / split}/")
    (tmp_path / split / "a").mkdir()
    (tmp_path / split / "b").mkdir()
    (tmp_path / split / "a" / "x.png").write_bytes(b"not a picture")  # probe 137: "the empty" folder held this
    with pytest.raises(CnnlabError) as err:
        build_imagefolder({"root": str(tmp_path)}, SPEC)
    assert err.value.fix.endswith(f"or remove {tmp_path / split}/") and "the empty" not in err.value.fix


def test_train_and_val_class_mismatch(tmp_path: Path) -> None:
    make_classes(tmp_path / "train", {"a": 1, "b": 1})
    make_classes(tmp_path / "val", {"a": 1, "c": 1})
    with pytest.raises(CnnlabError, match="missing: b; extra: c"):
        build_imagefolder({"root": str(tmp_path)}, SPEC)


def test_a_class_name_written_in_two_unicode_forms_is_named_with_a_fix_that_works(tmp_path: Path) -> None:
    """Probe 91: train/café (composed) and val/café (decomposed, as macOS writes it) read "missing: café; extra:
    café", and its fix (create val/café/) left the decomposed folder and the error in place."""
    import shlex
    import subprocess
    import unicodedata

    composed, decomposed = unicodedata.normalize("NFC", "café"), unicodedata.normalize("NFD", "café")
    make_classes(tmp_path / "train", {composed: 1, "b": 1})
    make_classes(tmp_path / "val", {decomposed: 1, "b": 1})
    with pytest.raises(CnnlabError, match="one name written in two Unicode forms") as err:
        build_imagefolder({"root": str(tmp_path)}, SPEC)
    assert "decomposed (NFD) and composed (NFC)" in str(err.value)
    subprocess.run(err.value.fix.split(": ", 1)[1], shell=True, check=True)  # the fix, followed
    assert shlex.quote(str(tmp_path / "val" / composed)) in err.value.fix
    assert build_imagefolder({"root": str(tmp_path)}, SPEC).classes == sorted(["b", composed])
    make_classes(tmp_path / "val", {decomposed: 1})  # both forms in val/ (probe 92): a rename would nest them
    with pytest.raises(CnnlabError, match="holds the class folders '.+' and '.+', one name written in two "
                                          "Unicode forms") as err:
        build_imagefolder({"root": str(tmp_path)}, SPEC)
    # the training split's spelling is kept
    # probe 230: the two paths print alike, so each is named by its form; the same file name in both is said
    assert f"move the images of the decomposed (NFD) {shlex.quote(str(tmp_path / 'val' / decomposed) + '/')} into " \
           f"the composed (NFC) {shlex.quote(str(tmp_path / 'val' / composed) + '/')} and remove the empty folder " \
           in (err.value.fix or "")
    assert err.value.fix.endswith("; 1 file name (0.jpg) is in both: rename those first, or the move replaces them")


def test_16_bit_pngs_give_the_tensors_of_their_8_bit_copies(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    # torchvision's pil_loader clips 16-bit values to 255: every image white, training at chance
    rng = np.random.default_rng(0)
    for i in range(4):
        grey = rng.integers(31, 235, (12, 10), dtype=np.uint8)  # 16-bit values 7967..60395
        for root, image in (("deep", Image.fromarray(grey.astype(np.uint16) * 257)), ("flat", Image.fromarray(grey))):
            (tmp_path / root / f"c{i % 2}").mkdir(parents=True, exist_ok=True)  # two classes: a classifier's least
            image.save(tmp_path / root / f"c{i % 2}" / f"{i}.png")
    assert Image.open(tmp_path / "deep" / "c0" / "0.png").mode == "I;16"
    with caplog.at_level(logging.INFO, logger="cnnlab.data.folder"):
        deep, flat = (build_imagefolder({"root": str(tmp_path / root), "val_fraction": 0.5}, SPEC)
                      for root in ("deep", "flat"))
    to_tensor = eval_transform(SPEC, None)
    for i in range(len(deep.train)):
        ours, reference = to_tensor(deep.train[i][0]), to_tensor(flat.train[i][0])
        assert torch.equal(ours, reference) and ours.std() > 0.1
    assert deep.decode is not None and deep.decode.converted == {GRAY16: 4}
    # 16-bit values are rounded: a warning; 8-bit grey is copied exactly: a line, not a warning (probe 69)
    assert [record.levelname for record in caplog.records] == ["WARNING", "INFO"]
    assert "16-bit grayscale: 4" in caplog.records[0].getMessage()
    assert "8-bit grayscale: 4" in caplog.records[1].getMessage()


def test_gif_is_read_and_unsupported_picture_formats_are_counted(tmp_path: Path,
                                                                 caplog: pytest.LogCaptureFixture) -> None:
    make_classes(tmp_path, {"a": 2, "b": 2})
    write_image(tmp_path / "a" / "anim.gif", 5, mode="P", fmt="GIF")
    (tmp_path / "b" / "phone.heic").write_bytes(b"....ftypheic")
    (tmp_path / "b" / ".DS_Store").write_bytes(b"\0")
    with caplog.at_level(logging.WARNING, logger="cnnlab.data.folder"):
        raw = build_imagefolder({"root": str(tmp_path), "val_fraction": 0.4}, SPEC)
    assert len(raw.train) + len(raw.val) == 5
    assert raw.decode is not None and raw.decode.as_record() == {
        "read": 5, "converted": {"palette": 1}, "skipped": {"format .heic not supported": 1}}
    assert "format .heic not supported: 1, first: " in caplog.text and "phone.heic" in caplog.text
    assert ".DS_Store" not in caplog.text


def test_plain_rgb_dataset_logs_its_summary_at_info(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    make_classes(tmp_path, {"a": 2, "b": 2})
    with caplog.at_level(logging.INFO, logger="cnnlab.data.folder"):
        build_imagefolder({"root": str(tmp_path), "val_fraction": 0.5}, SPEC)
    assert [(record.levelname, record.getMessage()) for record in caplog.records] == [
        ("INFO", f"imagefolder {tmp_path}: read 4 images")]


def test_val_pictures_saved_again_from_training_pictures_are_left_out(tmp_path: Path,
                                                                    caplog: pytest.LogCaptureFixture) -> None:
    """Probe 70: a carved val of pictures re-saved from training pictures (other PNG bytes, the same pixels) was
    kept: 86.67 % val for a model at chance on noise."""
    from helpers import random_image_folder

    random_image_folder(tmp_path, per_class=6, classes=("a", "b"))
    for picture in sorted(tmp_path.glob("*/*")):
        Image.open(picture).save(picture.with_name(f"again_{picture.stem}.png"), compress_level=0)
    with caplog.at_level(logging.WARNING, logger="cnnlab"):
        raw = build_imagefolder({"root": str(tmp_path), "val_fraction": 0.5}, SPEC)

    def pictures(split: Any) -> set[tuple[str, str]]:
        return {(Path(p).parent.name, Path(p).stem.removeprefix("again_")) for p in _paths(split)}

    assert raw.val is not None and not pictures(raw.val) & pictures(raw.train)
    assert "val pictures left out of val: copies of training pictures" in caplog.text


def test_a_picture_saved_twice_in_val_or_test_counts_once(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    """Probe 210: `p020.png` and its byte copy `p020 (1).png` both in val were both scored: that picture weighed
    double in val_acc. A third copy saved again (other bytes, the same pixels) is the same picture too."""
    import shutil

    from helpers import random_image_folder

    for split, seed in (("train", 0), ("val", 5), ("test", 9)):
        random_image_folder(tmp_path / split, per_class=3, classes=("a", "b"), seed=seed)
    for split in ("val", "test"):
        original = tmp_path / split / "b" / "1.png"
        shutil.copy(original, original.with_name("1 (1).png"))
        Image.open(original).save(original.with_name("1 again.png"), compress_level=0)
    # probe 220: a val picture filed under two classes kept the copy first in file order, with the wrong label
    shutil.copy(tmp_path / "val" / "b" / "2.png", tmp_path / "val" / "a" / "2 misfiled.png")
    with caplog.at_level(logging.WARNING, logger="cnnlab"):
        raw = build_imagefolder({"root": str(tmp_path)}, SPEC)
    kept = {"val": ["0.png", "0.png", "1 (1).png", "1.png", "2.png"],
            "test": ["0.png", "0.png", "1 (1).png", "1.png", "2.png", "2.png"]}
    for name, split in (("val", raw.val), ("test", raw.test)):
        assert split is not None and sorted(Path(p).name for p in _paths(split)) == kept[name], name
    assert len(raw.train) == 6
    said = " ".join(caplog.text.split())
    assert "2 of the 9 val pictures left out of val: copies of other val pictures" in said
    assert "2 of the 9 val pictures left out of val: copies of one picture filed under two or more classes" in said
    assert "2 of the 8 test pictures left out of test" in said


def test_a_class_left_without_val_pictures_by_the_copies_is_named(tmp_path: Path,
                                                                   caplog: pytest.LogCaptureFixture) -> None:
    """Probe 72: copies left out shrank val from 12 pictures to 2 for 3 classes without saying that whole classes
    were gone from it."""
    from helpers import random_image_folder

    random_image_folder(tmp_path / "train", per_class=3, classes=("a", "b"))
    random_image_folder(tmp_path / "val", per_class=1, classes=("b",), seed=9)
    (tmp_path / "val" / "a").mkdir()
    Image.open(tmp_path / "train" / "a" / "0.png").save(tmp_path / "val" / "a" / "again.png", compress_level=0)
    with caplog.at_level(logging.WARNING, logger="cnnlab"):
        raw = build_imagefolder({"root": str(tmp_path)}, SPEC)
    assert raw.val is not None and len(raw.val) == 1
    assert "val now holds no picture of a, so its score says nothing of that class" in caplog.text


@pytest.mark.parametrize("train_level", [False, True])
def test_a_class_of_one_image_names_fixes_that_work(tmp_path: Path, train_level: bool) -> None:
    """A class with a single image cannot be split by any dataset.val_fraction, which the message used to suggest:
    it names the class folder and the two fixes that work, and following either one builds the dataset."""
    source = tmp_path / "train" if train_level else tmp_path
    make_classes(source, {"cat": 3, "dog": 1})
    (source / "dog" / "broken.jpg").write_bytes(b"")  # probe 97: two files, one unreadable, and the line said one
    with pytest.raises(CnnlabError, match="class dog has a single image") as caught:
        build_imagefolder({"root": str(tmp_path), "val_fraction": 0.3}, SPEC)
    message = caught.value.message
    assert "; skipped 1 (empty file (0 bytes): 1, first: " in message and "broken.jpg" in message
    (source / "dog" / "broken.jpg").unlink()
    fix = caught.value.fix or ""
    assert "val_fraction" not in fix and f"add at least one more image to {source / 'dog'}/" in fix, fix
    assert f"{tmp_path}/val/<class>/" in fix, fix
    write_image(source / "dog" / "extra.jpg", seed=9)  # fix 1: another image of that class
    assert len(build_imagefolder({"root": str(tmp_path), "val_fraction": 0.3}, SPEC).val) == 2
    (source / "dog" / "extra.jpg").unlink()
    if not train_level:  # fix 2: a train/ and val/ layout
        for name in ("cat", "dog"):
            (tmp_path / name).rename(tmp_path / f"_{name}")
            (tmp_path / "train").mkdir(exist_ok=True)
            (tmp_path / f"_{name}").rename(tmp_path / "train" / name)
    make_classes(tmp_path / "val", {"cat": 1, "dog": 1})
    raw = build_imagefolder({"root": str(tmp_path), "val_fraction": 0.3}, SPEC)
    assert len(raw.train) == 4 and len(raw.val) == 2


def test_a_test_folder_beside_train_is_the_test_split_never_validation(tmp_path: Path) -> None:
    """train/ + test/ without val/ used test/ as the validation split: the best epoch was picked on the test images
    and `evaluate split=test` had nothing left to score. Now val is carved from train/, test/ stays the test split."""
    import numpy as np
    from PIL import Image

    from cnnlab.data import build_datasets, resolve_input_spec

    rng = np.random.default_rng(0)
    for split, count in (("train", 10), ("test", 3)):
        for name in ("cat", "dog"):
            folder = tmp_path / split / name
            folder.mkdir(parents=True)
            for i in range(count):
                Image.fromarray(rng.integers(0, 256, (8, 8, 3), dtype=np.uint8)).save(folder / f"{i}.png")
    config = {"name": "imagefolder", "root": str(tmp_path), "image_size": 8, "val_fraction": 0.2, "seed": 0,
              "mean": [0.5] * 3, "std": [0.5] * 3}
    data = build_datasets(config, resolve_input_spec(config, None))
    assert len(data.test) == 6 and len(data.train) + len(data.val) == 20 and len(data.val) == 4


def test_kaggle_training_and_testing_folders_are_the_train_and_test_splits(tmp_path: Path) -> None:
    """Kaggle sets ship Training/ + Testing/: without those names the folder was read as two classes,
    `Training` and `Testing`, trained at chance with exit 0."""
    make_classes(tmp_path / "Training", {"glioma": 5, "none": 5})
    make_classes(tmp_path / "Testing", {"glioma": 2, "none": 1})
    raw = build_imagefolder({"root": str(tmp_path), "val_fraction": 0.2, "seed": 0}, SPEC)
    assert raw.classes == ["glioma", "none"]
    assert raw.test is not None and len(raw.test) == 3 and len(raw.train) + len(raw.val) == 10


def test_an_image_without_an_extension_is_read_by_its_content(tmp_path: Path,
                                                              caplog: pytest.LogCaptureFixture) -> None:
    """Hash-named downloads (`a3f9c2`) were ignored without a word: a class of them was 'empty'. A file without
    an extension is read when its bytes are a JPEG/PNG/...; any other such file (LICENSE) is still ignored."""
    make_classes(tmp_path / "train", {"cat": 2, "dog": 2})
    make_classes(tmp_path / "val", {"cat": 1, "dog": 1})
    write_image(tmp_path / "train" / "cat" / "a3f9c2", seed=7, fmt="JPEG")
    write_image(tmp_path / "train" / "dog" / "b71e04", seed=8, fmt="PNG")
    (tmp_path / "train" / "dog" / "LICENSE").write_text("CC-BY 4.0")
    with caplog.at_level(logging.INFO):
        raw = build_imagefolder({"root": str(tmp_path)}, SPEC)
    assert len(raw.train) == 6 and len(raw.val) == 2
    assert [label for _, label in raw.train] == [0, 0, 0, 1, 1, 1]
    assert "skipped" not in caplog.text  # LICENSE is not an image: ignored as README.txt is


def test_val_pictures_with_the_bytes_of_training_pictures_are_left_out_of_val(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    """Probe 62: a download holding `img.png` and `img (1).png` put one copy in each split of the carve, and a
    val/ folder may hold copies of train/ pictures: val scored what the model memorised (94.44 % for a model at
    chance on noise pictures, exit 0). They are left out of val, with a warning; training keeps them."""
    carved = tmp_path / "carved"
    make_classes(carved, {"a": 6, "b": 6})
    for picture in list(carved.glob("*/*.jpg")):
        (picture.parent / f"{picture.stem} (1).jpg").write_bytes(picture.read_bytes())
    cfg = {"root": str(carved), "val_fraction": 0.5, "seed": 0}
    with caplog.at_level(logging.WARNING, logger="cnnlab"):
        raw = build_imagefolder(cfg, SPEC)
    train_bytes = {Path(p).read_bytes() for p in _paths(raw.train)}
    val_files = _paths(raw.val)
    assert val_files and not any(Path(p).read_bytes() in train_bytes for p in val_files)
    assert len(raw.train) == 12 and len(raw.val) < 12  # training keeps every picture
    # both copies of a picture may fall in val: one of them is left out too (probe 210), each counted once
    import re

    copies = re.search(r"(\d+) of the 12 val pictures left out of val: copies of training pictures", caplog.text)
    twice = re.search(r"(\d+) of the (\d+) val pictures left out of val: copies of other val", caplog.text)
    assert copies and twice and int(twice[2]) == 12 - int(copies[1]) == len(val_files) + int(twice[1]), caplog.text
    assert len({Path(p).read_bytes() for p in val_files}) == len(val_files)
    assert len(build_imagefolder(cfg, SPEC, carve=False).train) == 24  # scoring every image (split=all) drops none

    layered = tmp_path / "layered"
    make_classes(layered / "train", {"a": 3, "b": 3})
    (layered / "val" / "a").mkdir(parents=True)
    (layered / "val" / "b").mkdir(parents=True)
    (layered / "val" / "a" / "copy.jpg").write_bytes((layered / "train" / "a" / "0.jpg").read_bytes())
    write_image(layered / "val" / "a" / "new.jpg", seed=99)
    write_image(layered / "val" / "b" / "new.jpg", seed=98)
    assert sorted(Path(p).name for p in _paths(build_imagefolder({"root": str(layered)}, SPEC).val)) == \
        ["new.jpg", "new.jpg"]
    for picture in (layered / "val").glob("*/new.jpg"):
        picture.unlink()
    with pytest.raises(CnnlabError, match="every val picture is a copy of a training picture") as err:
        build_imagefolder({"root": str(layered)}, SPEC)
    assert err.value.fix == f"give {layered} a val split of other pictures than its training ones"
    twins = tmp_path / "twins"  # probe 64: carved, every picture twice: there is no val folder to replace
    make_classes(twins, {"a": 1, "b": 1})  # each picture and its copy: one of them lands in val
    for picture in list(twins.glob("*/*.jpg")):
        (picture.parent / f"{picture.stem} (1).jpg").write_bytes(picture.read_bytes())
    with pytest.raises(CnnlabError, match="every val picture") as err:
        build_imagefolder({"root": str(twins), "val_fraction": 0.5, "seed": 1}, SPEC)
    assert err.value.fix == f"keep one file of each picture in {twins} (delete the copies)"


def test_a_folder_of_one_class_is_refused_for_training_and_scored_for_evaluation(tmp_path: Path) -> None:
    """Probe 62: one class folder was found by the model builder ("1 classes", a fix naming no folder, a failed
    run folder). Scoring such a folder (`cnnlab evaluate split=all`) stays possible."""
    make_classes(tmp_path, {"top": 4})
    with pytest.raises(CnnlabError, match=r"holds one class folder \(top/\), and a classifier needs two or more"):
        build_imagefolder({"root": str(tmp_path)}, SPEC)
    assert len(build_imagefolder({"root": str(tmp_path)}, SPEC, carve=False).train) == 4


def _paths(split) -> list[str]:
    from cnnlab.data.folder import split_files

    return split_files(split) or []


def test_images_beside_class_folders_are_refused_not_dropped(tmp_path: Path) -> None:
    """Probe 83: a photo dump of 50 pictures with one sub-folder of 10 was read as one class of the 10, and the 50
    were never read (SimCLR trained on 8 images, exit 0)."""
    make_classes(tmp_path, {"sub": 10})
    for i in range(3):
        write_image(tmp_path / f"loose{i}.jpg", seed=100 + i)
    with pytest.raises(CnnlabError) as caught:
        build_imagefolder({"root": str(tmp_path)}, SPEC)
    assert "3 images directly in" in caught.value.message and "loose0.jpg" in caught.value.message
    assert "move the folders out" in caught.value.fix
    make_classes(tmp_path / "train", {"cat": 2, "dog": 2})  # a split's top level too
    for name in ("sub", "loose0.jpg", "loose1.jpg", "loose2.jpg"):
        (tmp_path / name).rename(tmp_path / "train" / name)
    with pytest.raises(CnnlabError, match="3 images directly in") as caught:
        build_imagefolder({"root": str(tmp_path)}, SPEC)
    assert "move the folders out" not in caught.value.fix  # probe 84: for a split, that led to the next refusal
    for i in range(3):
        (tmp_path / "train" / f"loose{i}.jpg").rename(tmp_path / "train" / "cat" / f"loose{i}.jpg")
    write_image(tmp_path / "beside.jpg", seed=7)  # probe 84: beside train/, in no split, never read
    with pytest.raises(CnnlabError, match="1 image directly in .* beside its split folder train/"):
        build_imagefolder({"root": str(tmp_path)}, SPEC)


def test_a_folder_without_pictures_says_so_and_names_both_layouts(tmp_path: Path) -> None:
    """Probe 83: an empty folder given to `pretrain method=simclr` read "no class folders", as if the flat layout
    were not a choice and as if it held pictures."""
    (tmp_path / "notes.txt").write_text("no pictures here")
    with pytest.raises(CnnlabError, match="no class folders and no pictures in") as err:
        build_imagefolder({"root": str(tmp_path)}, SPEC)
    assert "pictures directly in DIR (a flat folder)" in (err.value.fix or "")
