"""imagefolder layouts a tester got wrong results from (all ran and exited 0): split folders in other cases or
spellings, split folders taken for classes, a class named train, an empty class folder in val/, links across splits
and hidden files. Each test builds tiny PNGs (8 px) whose colour tells which file a sample is."""

from __future__ import annotations

import logging
import os
import re
import shutil
from pathlib import Path

import pytest
from PIL import Image

from cnnlab.data.folder import DUPLICATE, FOLDER_ALREADY_SCANNED, build_imagefolder
from cnnlab.data.spec import InputSpec
from cnnlab.errors import CnnlabError

SPEC = InputSpec(8)


def png(path: Path, shade: int) -> Path:
    """An 8×8 PNG of grey level `shade` (the picture's identity in the assertions)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", (8, 8), (shade, shade, shade)).save(path)
    return path


def classes(directory: Path, counts: dict[str, int], first_shade: int = 0) -> None:
    shade = first_shade
    for name, count in counts.items():
        for i in range(count):
            png(directory / name / f"{i}.png", shade)
            shade += 1


def build(root: Path, **cfg: object):  # type: ignore[no-untyped-def]
    return build_imagefolder({"root": str(root), "val_fraction": 0.5, "seed": 0, **cfg}, SPEC)


def paths_of(split) -> list[str]:  # type: ignore[no-untyped-def]
    """The file paths of a split (an ImageFolder or a Subset of one)."""
    if hasattr(split, "samples"):
        return [path for path, _ in split.samples]
    return [split.dataset.samples[i][0] for i in split.indices]


# 1. split folders are recognised ignoring case; 3. validation/ is a validation split


@pytest.mark.parametrize("train_name, val_name, test_name", [("Train", "Val", "Test"), ("TRAIN", "Validation", None),
                                                             ("train", "VALID", "TEST"), ("train", "validation", None)])
def test_split_folders_are_found_ignoring_case(tmp_path: Path, train_name: str, val_name: str,
                                               test_name: str | None) -> None:
    """Train/ + Val/ trained a 2-class model with classes ['Train', 'Val']; train/ + validation/ ignored
    validation/ and carved val from train/. Now each is the split it is named after."""
    classes(tmp_path / train_name, {"cat": 3, "dog": 3})
    classes(tmp_path / val_name, {"cat": 1, "dog": 2}, first_shade=100)
    if test_name:
        classes(tmp_path / test_name, {"cat": 2, "dog": 2}, first_shade=200)
    raw = build(tmp_path)
    assert raw.classes == ["cat", "dog"]
    assert len(raw.train) == 6 and len(raw.val) == 3 and all(f"/{val_name}/" in p for p in paths_of(raw.val))
    assert [raw.val[i][1] for i in range(3)] == [0, 1, 1]
    assert (raw.test is None) if test_name is None else len(raw.test) == 4


def test_of_several_validation_folders_the_first_in_documented_order_wins(tmp_path: Path,
                                                                          caplog: pytest.LogCaptureFixture) -> None:
    classes(tmp_path / "train", {"a": 2, "b": 2})
    classes(tmp_path / "Validation", {"a": 1, "b": 1}, first_shade=10)  # other pictures than train/'s
    classes(tmp_path / "Valid", {"a": 2, "b": 2}, first_shade=20)
    with caplog.at_level(logging.WARNING, logger="cnnlab.data.folder"):
        raw = build(tmp_path)
    assert len(raw.val) == 4 and all("/Valid/" in p for p in paths_of(raw.val))
    assert "Valid/ is the validation split; Validation/ not read" in caplog.text


# 2. a split folder (or class-named folders) inside a one-level layout is refused


@pytest.mark.parametrize("split", ["test", "Val", "validation"])
def test_split_folder_beside_class_folders_is_refused_with_a_fix_that_works(tmp_path: Path, split: str) -> None:
    """DIR/{a,b,c,d,test/{a,b,c,d}} trained a 5-class model whose class 'test' was the test images."""
    names = {"a": 2, "b": 2, "c": 2, "d": 2}
    classes(tmp_path, names)
    classes(tmp_path / split, names, first_shade=100)
    with pytest.raises(CnnlabError, match=f"{tmp_path / split} holds class folders .* no train/ folder") as err:
        build(tmp_path)
    assert f"{tmp_path}/train/<class>/ beside {tmp_path / split}/<class>/" in (err.value.fix or "")
    for name in names:  # follow the fix
        (tmp_path / "train").mkdir(exist_ok=True)
        (tmp_path / name).rename(tmp_path / "train" / name)
    raw = build(tmp_path)
    assert raw.classes == ["a", "b", "c", "d"] and len(raw.train) + len(raw.val) + len(raw.test or []) == 16


def test_split_folders_without_a_train_folder_are_refused(tmp_path: Path) -> None:
    classes(tmp_path / "val", {"a": 2, "b": 2})
    classes(tmp_path / "test", {"a": 2, "b": 2})
    with pytest.raises(CnnlabError, match="no train/ folder") as err:
        build(tmp_path)
    assert f"put the training images in {tmp_path}/train/<class>/" in (err.value.fix or "")


@pytest.mark.parametrize("under", ["", "train"])
def test_class_folder_holding_folders_named_like_the_classes_is_refused(tmp_path: Path, under: str) -> None:
    split = tmp_path / under
    classes(split, {"a": 2, "b": 2})
    classes(split / "c", {"a": 2, "b": 2}, first_shade=100)  # c/a, c/b: no image of its own
    with pytest.raises(CnnlabError, match=f"{split / 'c'} holds no image directly but folders named like "
                                          r"the class folders beside it \(a, b\)"):
        build(tmp_path)


def test_a_class_folder_of_images_holding_a_folder_named_like_another_class_warns(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    # Probe 182: 2/cat dog/ beside 2/'s own images trained as class 2, and nothing said so.
    classes(tmp_path, {"2": 3, "cat dog": 3})
    classes(tmp_path / "2", {"cat dog": 2, "2021": 1}, first_shade=100)
    with caplog.at_level(logging.WARNING, logger="cnnlab"):
        raw = build(tmp_path)
    assert len(raw.train) + len(raw.val) == 9  # read as documented: nested images belong to their class folder
    [line] = [r.getMessage() for r in caplog.records if "named like other classes" in r.getMessage()]
    assert "2/ holds folders named like other classes (cat dog)" in line and f"{tmp_path}/cat dog/" in line
    assert "2021" not in line


def test_class_folders_holding_split_folders_are_refused(tmp_path: Path) -> None:
    for name in ("cat", "dog"):
        classes(tmp_path / name, {"train": 2, "val": 1})
    with pytest.raises(CnnlabError, match=r"cat holds no image directly but split folders \(train, val\)") as err:
        build(tmp_path)
    assert f"move {tmp_path}/cat/train/ to {tmp_path}/train/cat/" in (err.value.fix or "")


def test_images_nested_in_other_sub_folders_of_a_class_are_read(tmp_path: Path) -> None:
    classes(tmp_path / "a", {"2020": 2, "2021": 2})
    classes(tmp_path, {"b": 4}, first_shade=100)
    raw = build(tmp_path)
    assert raw.classes == ["a", "b"] and len(raw.train) + len(raw.val) == 8


# 4. a class named train


def test_class_named_train_is_refused_naming_the_collision(tmp_path: Path) -> None:
    """vehicles/{bus,car,train}/*.png said 'vehicles/train holds images but no class folders — sort the images into
    class folders' (they are sorted). Now the message names the clash, and the rename it suggests works."""
    vehicles = tmp_path / "vehicles"
    for shade, name in enumerate(("bus", "car", "train")):
        for i in range(2):
            png(vehicles / name / f"{i}.png", 10 * shade + i)
    with pytest.raises(CnnlabError, match=f"{vehicles / 'train'} holds images beside the class folders bus, car .*"
                                          "a folder named train is read as the training split") as err:
        build(vehicles)
    assert f"rename the class folder {vehicles / 'train'} to {vehicles / 'train'}_class" in (err.value.fix or "")
    (vehicles / "train").rename(vehicles / "train_class")
    assert build(vehicles).classes == ["bus", "car", "train_class"]


def test_train_folder_of_loose_images_says_a_class_named_train_must_be_renamed(tmp_path: Path) -> None:
    png(tmp_path / "train" / "0.png", 0)
    classes(tmp_path / "val", {"a": 1})
    with pytest.raises(CnnlabError, match="train holds images but no class folders") as err:
        build(tmp_path)
    assert "a class named train must be renamed (e.g. to train_class)" in (err.value.fix or "")


# 5. an empty class folder in val/ or test/


def test_empty_class_folder_in_val_and_test_is_allowed_and_logged(tmp_path: Path,
                                                                  caplog: pytest.LogCaptureFixture) -> None:
    """An empty val/2/ was refused ('add images ... or remove them'), and removing it was refused too."""
    classes(tmp_path / "train", {"0": 2, "1": 2, "2": 2})
    classes(tmp_path / "val", {"0": 1, "1": 1}, first_shade=100)
    (tmp_path / "val" / "2").mkdir()
    classes(tmp_path / "test", {"0": 1, "2": 1}, first_shade=200)
    (tmp_path / "test" / "1").mkdir()
    with caplog.at_level(logging.WARNING, logger="cnnlab.data.folder"):
        raw = build(tmp_path)
    assert raw.classes == ["0", "1", "2"] and len(raw.train) == 6
    assert [(item[0].getpixel((0, 0))[0], item[1]) for item in (raw.val[0], raw.val[1])] == [(100, 0), (101, 1)]
    assert raw.test is not None and [raw.test[i][1] for i in range(2)] == [0, 2]  # labels are train/'s
    assert f"imagefolder {tmp_path / 'val'}: class folder(s) 2 hold no readable image" in caplog.text
    assert f"imagefolder {tmp_path / 'test'}: class folder(s) 1 hold no readable image" in caplog.text


def test_missing_val_class_folder_gets_a_fix_that_works(tmp_path: Path) -> None:
    classes(tmp_path / "train", {"0": 2, "1": 2, "2": 2})
    classes(tmp_path / "val", {"0": 1, "1": 1}, first_shade=100)
    with pytest.raises(CnnlabError, match=r"missing: 2\)") as err:
        build(tmp_path)
    assert f"create {tmp_path / 'val'}/2/ (an empty one is fine" in (err.value.fix or "")
    (tmp_path / "val" / "2").mkdir()
    assert len(build(tmp_path).val) == 2


def test_empty_class_folder_in_train_is_still_refused(tmp_path: Path) -> None:
    classes(tmp_path / "train", {"0": 2, "1": 2})
    (tmp_path / "train" / "2").mkdir()
    classes(tmp_path / "val", {"0": 1, "1": 1, "2": 1}, first_shade=100)
    with pytest.raises(CnnlabError, match=r"class folder\(s\) 2 in .*train hold no readable image") as err:
        build(tmp_path)
    assert "remove that class from every split" in (err.value.fix or "")


def test_an_empty_training_class_is_named_before_the_other_splits_lack_it(tmp_path: Path) -> None:
    """Probe 127: train/Coat/ empty, val/ and test/ without Coat/: "create val/Coat/", then "create test/Coat/", then
    "remove that class from every split" — two fixes the third undoes."""
    classes(tmp_path / "train", {"Bag": 2, "Trouser": 2})
    (tmp_path / "train" / "Coat").mkdir()
    (tmp_path / "train" / "Coat" / "notes.txt").write_text("not a picture")
    classes(tmp_path / "val", {"Bag": 1, "Trouser": 1}, first_shade=100)
    classes(tmp_path / "test", {"Bag": 1, "Trouser": 1}, first_shade=150)
    with pytest.raises(CnnlabError, match=r"class folder\(s\) Coat in .*train hold no readable image") as err:
        build(tmp_path)
    assert "remove that class from every split" in (err.value.fix or "")
    for name, content in (("photo.heic", b"....ftypheic"), ("cut.png", b"\x89PNG\r\n\x1a\n\x00\x00")):
        (tmp_path / "train" / "Coat" / name).write_bytes(content)  # probe 132: pictures none of which reads
        with pytest.raises(CnnlabError, match=r"class folder\(s\) Coat in .*train hold no readable image"):
            build(tmp_path)
        (tmp_path / "train" / "Coat" / name).unlink()
    shutil.rmtree(tmp_path / "train" / "Coat")  # the fix, followed
    assert build(tmp_path).train is not None


# 6. links across splits


def test_link_from_train_to_a_val_file_is_skipped_and_the_real_file_stays_in_val(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    """`ln -s ../../val/2/0.png DIR/train/10/zz_link.png` dropped the real val file and trained on it as class 10."""
    classes(tmp_path / "train", {"10": 2, "2": 2})
    classes(tmp_path / "val", {"10": 1, "2": 2}, first_shade=100)
    link = tmp_path / "train" / "10" / "zz_link.png"
    os.symlink("../../val/2/0.png", link)
    with caplog.at_level(logging.WARNING, logger="cnnlab.data.folder"):
        raw = build(tmp_path)
    assert str(tmp_path / "val" / "2" / "0.png") in paths_of(raw.val) and len(raw.val) == 3
    assert str(link) not in paths_of(raw.train) and len(raw.train) == 4
    assert raw.decode is not None and raw.decode.skipped == {DUPLICATE: 1}
    assert f"{DUPLICATE}: 1, first: {link}" in caplog.text


def test_folder_link_from_train_into_val_is_not_entered(tmp_path: Path) -> None:
    classes(tmp_path / "train", {"a": 2, "b": 2})
    classes(tmp_path / "val", {"a": 1, "b": 1}, first_shade=100)
    os.symlink(tmp_path / "val" / "b", tmp_path / "train" / "a" / "more")
    raw = build(tmp_path)
    assert len(raw.train) == 4 and len(raw.val) == 2
    assert raw.decode is not None and raw.decode.skipped == {FOLDER_ALREADY_SCANNED: 1}


@pytest.mark.parametrize("link_name", ["alink", "zlink"])  # sorted before and after the class it leads into
def test_a_folder_link_never_takes_the_folder_it_leads_to_into_its_class_or_split(
        tmp_path: Path, link_name: str, caplog: pytest.LogCaptureFixture) -> None:
    """Probe 161: `train/cat/alink -> ../../val/dog/sub`, walked before val/ (and, in one split, `cat/alink ->
    ../dog/zsub`, before dog/), took the real folder's pictures into cat and the training split; the real folder was
    the one skipped as "already scanned" — 3 dog pictures scored as "cat", 72.73 % for a model at 100 %."""
    classes(tmp_path / "train", {"cat": 2, "dog": 2})
    classes(tmp_path / "val", {"cat": 1, "dog": 1}, first_shade=100)
    for i in range(3):
        png(tmp_path / "val" / "dog" / "sub" / f"{i}.png", 200 + i)
    link = tmp_path / "train" / "cat" / link_name
    os.symlink("../../val/dog/sub", link)
    with caplog.at_level(logging.WARNING, logger="cnnlab.data.folder"):
        raw = build(tmp_path)
    val = dict(zip(paths_of(raw.val), (label for _, label in raw.val.samples)))
    assert len(raw.val) == 5 and all(val[str(tmp_path / "val" / "dog" / "sub" / f"{i}.png")] == 1 for i in range(3))
    assert len(raw.train) == 4 and not any(path.startswith(str(link)) for path in paths_of(raw.train))
    assert raw.decode is not None and raw.decode.skipped == {FOLDER_ALREADY_SCANNED: 1}
    assert f"{FOLDER_ALREADY_SCANNED}: 1, first: {link}" in caplog.text  # the link is named, not the real folder


def test_a_class_folder_that_is_a_link_keeps_its_own_sub_folders(tmp_path: Path) -> None:
    """Probe 167: `test/cat -> ext/testcats` (a class folder that is a link) and `train/ant/x -> ext/testcats/sub`:
    the class folder's own sub-folder was put off as if it were a link, and the link sorted first took its 3 test cat
    pictures into training as "ant"."""
    for i in range(2):
        png(tmp_path / "ext" / "testcats" / f"t{i}.png", 100 + i)
    for i in range(3):
        png(tmp_path / "ext" / "testcats" / "sub" / f"s{i}.png", 200 + i)
    classes(tmp_path / "ds" / "train", {"ant": 2, "cat": 2})
    classes(tmp_path / "ds" / "val", {"ant": 1, "cat": 1}, first_shade=50)
    png(tmp_path / "ds" / "test" / "ant" / "0.png", 60)
    os.symlink("../../../ext/testcats/sub", tmp_path / "ds" / "train" / "ant" / "x")
    os.symlink("../../ext/testcats", tmp_path / "ds" / "test" / "cat")
    raw = build(tmp_path / "ds")
    assert len(raw.train) == 4 and not any("/x/" in path for path in paths_of(raw.train))
    test = dict(zip(paths_of(raw.test), (label for _, label in raw.test.samples)))
    assert len(test) == 6 and sum(label == 1 for label in test.values()) == 5  # cat: t0, t1 and sub/s0..s2


@pytest.mark.parametrize("link, target, said", [
    ("flat/alias", "zebra", "a link to the class folder {root}/flat/zebra: one folder's pictures would be two classes"),
    ("flat/alias", "zebra/2021", "a link to a folder inside the class folder {root}/flat/zebra"),
    ("split/test/zebra", "../train/zebra", "would be in two splits (test/ and train/)"),
])
def test_a_class_folder_that_is_a_link_to_another_class_folder_is_refused(tmp_path: Path, link: str, target: str,
                                                                          said: str) -> None:
    """Probe 227: `alias -> zebra` beside zebra/ trained zebra's sub-folder 2021/ as class "alias" (exit 0): the link,
    sorted first, claimed it, and the real 2021/ was skipped as "a folder link already scanned"; its fix, "add an
    image to alias/", put the image in zebra/. `test/zebra -> ../train/zebra` was "a class folder with no readable
    image". The fix it names, followed, trains."""
    for layout in ("flat", "split/train"):
        classes(tmp_path / layout, {"cat": 3, "zebra": 3})
        for i in range(2):
            png(tmp_path / layout / "zebra" / "2021" / f"n{i}.png", 200 + i)
    classes(tmp_path / "split" / "test", {"cat": 1}, first_shade=100)
    os.symlink(target, tmp_path / link)
    root = tmp_path / link.split("/")[0]
    with pytest.raises(CnnlabError, match=f"class folder {tmp_path / link} is {re.escape(said.format(root=tmp_path))}"
                       if "{root}" in said else re.escape(said)) as refused:
        build(root)
    assert refused.value.fix.startswith(f"remove the link (rm {tmp_path / link})")
    (tmp_path / link).unlink()
    if root.name == "split":
        (root / "test" / "zebra").mkdir()  # as the classes check then says: an empty one is fine
    raw = build(root)
    assert raw.classes == ["cat", "zebra"] and len(raw.train) + len(raw.val) == 8  # 2021/'s two pictures are zebra


def test_a_linked_class_missing_from_val_is_refused_as_a_link_not_asked_for_in_val(tmp_path: Path) -> None:
    """Probe 230: train/bird -> dog with no val/bird/ said "create val/bird/"; followed, the link was refused; removed,
    "remove val/bird/" came next. The link is the fault to name, first."""
    classes(tmp_path / "train", {"cat": 2, "dog": 2})
    classes(tmp_path / "val", {"cat": 1, "dog": 1}, first_shade=100)
    os.symlink("dog", tmp_path / "train" / "bird")
    with pytest.raises(CnnlabError, match="class folder .*/train/bird is a link to the class folder") as refused:
        build(tmp_path)
    assert "val" not in refused.value.fix
    (tmp_path / "train" / "bird").unlink()  # the fix, followed
    assert build(tmp_path).classes == ["cat", "dog"]


def test_a_folder_link_to_a_folder_nothing_else_reaches_keeps_its_place(tmp_path: Path) -> None:
    classes(tmp_path / "train", {"a": 2, "b": 2})
    classes(tmp_path / "val", {"a": 1, "b": 1}, first_shade=100)
    png(tmp_path / "elsewhere" / "x.png", 50)
    os.symlink(tmp_path / "elsewhere", tmp_path / "train" / "a" / "0b_more")
    raw = build(tmp_path)
    assert [Path(p).relative_to(tmp_path).as_posix() for p in paths_of(raw.train)[:3]] == \
        ["train/a/0.png", "train/a/0b_more/x.png", "train/a/1.png"]  # ImageFolder's sorted walk, as before


@pytest.mark.parametrize("loop", ["train/bird", "val/bird", "train/a/l.png", "bird"])
def test_a_link_back_to_itself_anywhere_in_the_folder_is_no_class_and_no_picture(tmp_path: Path, loop: str) -> None:
    """Probe 169: a link to itself (ELOOP) as a split's entry, a picture or a class of a flat layout was a traceback
    ("Too many levels of symbolic links ... a bug in cnnlab"): os.DirEntry.is_dir raises where Path.is_dir says no."""
    root = tmp_path / "data"
    flat = "/" not in loop
    classes(root if flat else root / "train", {"a": 2, "b": 2})
    if not flat:
        classes(root / "val", {"a": 1, "b": 1}, first_shade=100)
    os.symlink(Path(loop).name, root / loop)
    raw = build(root)
    assert raw.classes == ["a", "b"]
    assert not any(Path(p).name in ("bird", "l.png") for p in paths_of(raw.train))


# 7. hidden files


@pytest.mark.parametrize("layout", ["one_level", "train_val"])
def test_hidden_files_and_folders_are_not_read(tmp_path: Path, layout: str) -> None:
    """imagefolder read .hidden.png (predict skips it); macOS writes ._IMG.jpg beside every picture on some drives."""
    split = tmp_path / "train" if layout == "train_val" else tmp_path
    classes(split, {"a": 2, "b": 2})
    if layout == "train_val":
        classes(tmp_path / "val", {"a": 1, "b": 1}, first_shade=100)
    png(split / "a" / ".hidden.png", 250)
    png(split / "b" / ".cache" / "0.png", 251)
    raw = build(tmp_path)
    everything = paths_of(raw.train) + paths_of(raw.val)
    assert len(everything) == 4 + (2 if layout == "train_val" else 0)
    assert not any("/." in path for path in everything)
    assert raw.decode is not None and raw.decode.read == len(everything) and not raw.decode.skipped


def test_system_folders_of_nas_boxes_and_archivers_are_not_read(tmp_path: Path) -> None:
    """Probe 97: a Synology share's @eaDir/ (two thumbnails of every photo) tripled a folder of 40 photos, and a carved
    val of thumbnails of training photos read 96 % for a model at chance; __MACOSX/ of an unzipped Finder archive
    was refused as a class folder, with a fix (move its images) that moved nothing."""
    classes(tmp_path, {"a": 2, "b": 2})
    for name in ("a", "b"):
        png(tmp_path / name / "@eaDir" / "0.png" / "SYNOPHOTO_THUMB_S.jpg", 200)
        (tmp_path / name / "Thumbs.db").write_bytes(b"\xd0\xcf\x11\xe0")
    png(tmp_path / "__MACOSX" / "a" / "._0.png", 202)
    png(tmp_path / "a" / "#recycle" / "old.png", 203)
    raw = build(tmp_path)
    assert raw.classes == ["a", "b"]
    assert raw.decode is not None and raw.decode.read == 4 and not raw.decode.skipped


def test_splits_under_other_names_are_refused_with_a_fix_that_works(tmp_path: Path) -> None:
    """Probe 97: Kaggle's cats-and-dogs layout (training_set/training_set/<class>/ beside test_set/test_set/<class>/)
    trained a 2-class model of the classes test_set and training_set, exit 0; so did train_data/ + valid_data/."""
    import subprocess

    classes(tmp_path / "training_set" / "training_set", {"cats": 2, "dogs": 2})
    classes(tmp_path / "test_set" / "test_set", {"cats": 1, "dogs": 1}, first_shade=100)
    with pytest.raises(CnnlabError, match="include test_set, training_set, named like splits") as err:
        build(tmp_path)
    subprocess.run(err.value.fix.split("in any case): ", 1)[1].split(" (classes whose", 1)[0], shell=True,
                   check=True)  # the fix, followed
    raw = build(tmp_path)
    assert raw.classes == ["cats", "dogs"] and len(paths_of(raw.test)) == 2
    other = tmp_path / "other"
    classes(other / "train_data", {"x": 2, "y": 2})
    classes(other / "valid_data", {"x": 1, "y": 1}, first_shade=100)
    with pytest.raises(CnnlabError, match=r"mv \S+/train_data \S+/train; mv \S+/valid_data \S+/val \(classes"):
        build(other)
    # probe 102: a test split without one class, or with the classes in another case, is still a split
    for test_classes in ({"a": 1}, {"A": 1, "B": 1}):
        layout = tmp_path / f"seg{len(test_classes)}"
        classes(layout / "seg_train" / "seg_train", {"a": 2, "b": 2, "c": 2})
        classes(layout / "seg_test" / "seg_test", test_classes, first_shade=100)
        with pytest.raises(CnnlabError, match="include seg_test, seg_train, named like splits"):
            build(layout)
    classes(tmp_path / "fine", {"train_station": 2, "tram": 2})  # a class named with a split's word, holding images
    assert build(tmp_path / "fine").classes == ["train_station", "tram"]
    # probe 100: classes whose pictures sit in sub-folders, one or two of them named with a split's word
    classes(tmp_path / "nested" / "steam_train" / "2021", {"a": 2}, first_shade=150)
    classes(tmp_path / "nested" / "test_tube" / "2021", {"a": 2}, first_shade=160)
    classes(tmp_path / "nested" / "bus" / "2021", {"a": 2}, first_shade=170)
    assert build(tmp_path / "nested").classes == ["bus", "steam_train", "test_tube"]


@pytest.mark.parametrize("twin", ["Cat", "cat "])
def test_class_folders_whose_names_differ_only_in_case_or_spaces_are_refused(tmp_path: Path, twin: str) -> None:
    """Probe 97: cat/ beside Cat/ or "cat "/ trained as two classes that predict printed alike; across splits the
    error read "missing: cat; extra: cat " with no sign of the space."""
    classes(tmp_path / "train", {"cat": 2, twin: 2, "dog": 2})
    classes(tmp_path / "val", {"cat": 1, "dog": 1}, first_shade=100)
    with pytest.raises(CnnlabError, match="one name differing only in case or spaces") as err:
        build(tmp_path)
    assert repr(twin) in err.value.message and "move the images of" in (err.value.fix or "")
    # probe 227: both folders held 0.png and 1.png; the move, followed, replaced one class's pictures with the other's
    assert "2 file names (0.png and 1.png) are in both: rename those first, or the move replaces them" in err.value.fix
    (tmp_path / "train" / twin / "0.png").rename(tmp_path / "train" / "cat" / "t0.png")
    (tmp_path / "train" / twin / "1.png").rename(tmp_path / "train" / "cat" / "t1.png")
    (tmp_path / "train" / twin).rmdir()
    (tmp_path / "val" / "cat").rename(tmp_path / "val" / twin)  # now only val/ spells it otherwise
    with pytest.raises(CnnlabError, match=f"the class folder .*/val/'{twin}'/ and the training split's 'cat'/") as err:
        build(tmp_path)
    import subprocess
    subprocess.run(err.value.fix.split(": ", 1)[1], shell=True, check=True)  # the rename it offers
    assert build(tmp_path).classes == ["cat", "dog"]



def test_a_test_folder_of_unlabelled_images_names_predict_not_a_class_rename(tmp_path: Path) -> None:
    """Kaggle's Training/<class>/ beside a flat Testing/ of unlabelled pictures said "a class named Testing must be
    renamed (e.g. to Testing_class)" — there is no such class. Both fixes the message names work."""
    data = tmp_path / "data"
    classes(data / "Training", {"cat": 3, "dog": 3})
    for i in range(2):
        png(data / "Testing" / f"{i}.png", 200 + i)
    with pytest.raises(CnnlabError, match="Testing holds images but no class folders: as the split beside") as err:
        build(data)
    fix = err.value.fix or ""
    assert "Testing_class" not in fix and "cnnlab predict source=RUN Testing" in fix and "cat, dog" in fix
    (data / "Testing").rename(tmp_path / "Testing")  # moved out: Training/ alone, val carved from it
    assert build(data).test is None and build(data).classes == ["cat", "dog"]
    for i, name in enumerate(("cat", "dog")):  # or sorted into class folders: the test split
        png(data / "Testing" / name / "0.png", 210 + i)
    assert build(data).test is not None and len(build(data).test) == 2


def test_a_picture_in_two_classes_is_named(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    """Probe 97: a copy of one picture under 1/ and 10/ was trained and scored twice, its labels contradicting each
    other, without a word."""
    classes(tmp_path / "train", {"a": 3, "b": 3})
    classes(tmp_path / "val", {"a": 1, "b": 1}, first_shade=100)
    png(tmp_path / "train" / "b" / "copy_of_a0.png", 0)  # the pixels of train/a/0.png
    with caplog.at_level(logging.WARNING, logger="cnnlab"):
        build(tmp_path)
    [line] = [r.getMessage() for r in caplog.records if "two or more classes" in r.getMessage()]
    assert "1 picture lies in the folders of two or more classes" in line and "copy_of_a0.png" in line
