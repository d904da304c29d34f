"""`cnnlab predict`: top-k classes of new photos from a checkpoint or its ONNX file, preprocessed from the file alone."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch
from PIL import Image

import prebuilt
from helpers import read_run, run_dirs

COLOURS = {"red": (220, 30, 30), "green": (30, 200, 40), "blue": (30, 40, 220), "yellow": (230, 220, 30)}


def photo(path: Path, colour: tuple[int, int, int], size: tuple[int, int], seed: int, mode: str = "RGB") -> None:
    """A noisy photo of one colour with a darker border band, so that the crop matters a little."""
    rng = np.random.default_rng(seed)
    width, height = size
    pixels = np.clip(np.array(colour) + rng.normal(0, 25, (height, width, 3)), 0, 255).astype(np.uint8)
    pixels[:, : width // 6] //= 3
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(pixels).convert(mode).save(path)


@prebuilt.starts_in("trained")
def trained_made(workspace: Path) -> None:
    """A LeNet-5 trained on coloured photos (imagefolder: resize + centre crop), its model.onnx, and new/ photos."""
    root = workspace / "photos_dataset"
    for index, (name, colour) in enumerate(COLOURS.items()):
        for i in range(12):
            photo(root / ("train" if i < 9 else "val") / name / f"{i}.png", colour, (40 + 3 * i, 26), seed=100 * index + i)
    prebuilt.build_run(workspace, ("pretrain", "dataset=imagefolder", f"dataset.root={root}", "dataset.image_size=16",
                                   "model=lenet5", "trainer.epochs=10", "trainer.batch_size=12", "trainer.amp=none",
                                   "optim.lr=0.05"),
                       ("export", "source=latest:pretrain", "export.evaluate=false"))
    new = workspace / "new"
    for index, (name, colour) in enumerate(COLOURS.items()):
        photo(new / f"{name}_wide.jpg", colour, (60, 30), seed=999 + index)
    photo(new / "nested" / "red_tall.png", COLOURS["red"], (20, 44), seed=5)
    photo(new / "grey_red.png", COLOURS["red"], (30, 30), seed=6, mode="L")
    (new / "broken.jpg").write_bytes(b"\xff\xd8\xff\xe0 not really a jpeg")
    (new / "notes.txt").write_text("not an image")


@pytest.fixture
def trained(outputs: Path) -> Path:
    """The folder of new photos beside a LeNet-5 trained on coloured photos and its model.onnx (made once per
    process: prebuilt.py)."""
    return outputs.parent / "new"


def predictions_of(run_dir: Path) -> dict[str, list[dict]]:
    data = json.loads((run_dir / "predictions.json").read_text())
    return {Path(p["file"]).name: p["top"] for p in data["predictions"]}


def test_checkpoint_and_onnx_predict_the_same_and_bad_files_are_listed(cli, outputs: Path, trained: Path) -> None:
    result = cli("predict", "source=latest:pretrain", f"predict.inputs=['{trained}']", "predict.batch_size=4",
                 "predict.topk=3")
    assert result.code == 0, result.output
    assert "damaged or cut short" in result.output and "broken.jpg" in result.output  # a JPEG's header, then text
    torch_dir = run_dirs(outputs, "predict")[0]
    record = read_run(torch_dir)
    assert record["status"] == "completed" and record["metrics"] == {"images": 6, "unreadable": 1}
    assert record["model"]["outputs"] == "logits"  # what the probabilities were computed from, as evaluate records
    assert list(record["predict"]["unreadable"]) == [str(trained / "broken.jpg")]
    # probe 80: what decoding did to a file's picture was said for a dataset, not for predict's inputs
    assert record["predict"]["converted"] == {"8-bit grayscale": 1}
    entries = {Path(e["file"]).name: e for e in json.loads((torch_dir / "predictions.json").read_text())["predictions"]}
    assert entries["grey_red.png"]["converted"] == ["8-bit grayscale"] and "converted" not in entries["red_tall.png"]
    from_torch = predictions_of(torch_dir)
    assert sorted(from_torch) == ["blue_wide.jpg", "green_wide.jpg", "grey_red.png", "red_tall.png", "red_wide.jpg",
                                  "yellow_wide.jpg"]  # the folder walked (nested too), notes.txt ignored
    assert all(len(top) == 3 and top[0]["probability"] >= top[1]["probability"] for top in from_torch.values())
    for name in COLOURS:
        assert from_torch[f"{name}_wide.jpg"][0]["class"] == name  # it learned the colours
    rows = list(csv.reader((torch_dir / "predictions.csv").open()))
    assert rows[0] == ["file", "rank", "class", "probability"] and len(rows) == 1 + 6 * 3

    result = cli("predict", "source=latest:export", f"predict.inputs=['{trained}']")
    assert result.code == 0, result.output
    capped = f"predict.topk=5: the model knows {len(COLOURS)} classes, so every prediction lists all {len(COLOURS)}"
    assert capped in " ".join(result.stderr.split())  # probe 69: cut to the class count without a word
    onnx_dir = run_dirs(outputs, "predict")[1]
    assert read_run(onnx_dir)["model"]["format"] == "onnx"
    from_onnx = predictions_of(onnx_dir)
    for name, top in from_torch.items():
        assert from_onnx[name][0]["class"] == top[0]["class"]
        assert from_onnx[name][0]["probability"] == pytest.approx(top[0]["probability"], abs=1e-4)


def client_preprocess(path: Path, spec: dict, *, exact: bool = False) -> np.ndarray:
    """An independent client: PIL + numpy, following the ONNX metadata's input spec literally; `exact`: resized as
    docs/predict.md says gives the same probabilities (torchvision, on the uint8 picture)."""
    image = Image.open(path).convert("RGB")
    width, height = image.size
    side = spec["resize_to"]
    if spec["resize"] == "shorter_side":
        size = (side, int(side * height / width)) if width <= height else (int(side * width / height), side)
    else:
        size = (side, side)
    if exact:
        from torchvision.transforms.v2 import functional as F

        pixels = torch.from_numpy(np.asarray(image).copy()).permute(2, 0, 1)
        image = Image.fromarray(F.resize(pixels, [size[1], size[0]], antialias=True).permute(1, 2, 0).numpy())
    else:
        image = image.resize(size, Image.BILINEAR)
    if spec["crop"] is not None:
        crop, (width, height) = spec["crop"], image.size
        top, left = int(round((height - crop) / 2)), int(round((width - crop) / 2))
        image = image.crop((left, top, left + crop, top + crop))
    pixels = np.asarray(image, dtype=np.float32) * spec["scale"]
    pixels = (pixels - np.array(spec["mean"], np.float32)) / np.array(spec["std"], np.float32)
    return pixels.transpose(2, 0, 1)[None].astype(np.float32)


def test_a_client_reading_only_the_onnx_metadata_gets_the_same_top1(cli, outputs: Path, trained: Path) -> None:
    model_path = run_dirs(outputs, "export")[0] / "model.onnx"
    props = {p.key: json.loads(p.value) if p.value[:1] in "[{" else p.value
             for p in onnx.load(str(model_path)).metadata_props}
    spec, classes = props["input_spec"], props["classes"]
    assert spec["resize"] == "shorter_side" and spec["resize_to"] == 18 and spec["crop"] == 16  # photos: resize, crop
    result = cli("predict", "source=latest:export", str(trained))  # a positional folder, as the README shows
    assert result.code == 0, result.output
    predicted = predictions_of(run_dirs(outputs, "predict")[0])
    session = ort.InferenceSession(str(model_path), providers=["CPUExecutionProvider"])
    for name in ("red_wide.jpg", "green_wide.jpg", "blue_wide.jpg", "yellow_wide.jpg", "red_tall.png"):
        path = next(trained.rglob(name))
        logits = session.run(None, {session.get_inputs()[0].name: client_preprocess(path, spec)})[0][0]
        assert classes[int(logits.argmax())] == predicted[name][0]["class"]
        # docs/predict.md: torchvision's resize of the uint8 picture gives the same probabilities, not only the top-1
        exact = session.run(None, {session.get_inputs()[0].name: client_preprocess(path, spec, exact=True)})[0][0]
        probabilities = np.exp(exact - exact.max()) / np.exp(exact - exact.max()).sum()
        for entry in predicted[name]:
            assert probabilities[classes.index(entry["class"])] == pytest.approx(entry["probability"], abs=1e-5)


def test_an_unreadable_file_is_listed_with_its_reason_said_once(tmp_path: Path, capsys) -> None:
    from types import SimpleNamespace

    from cnnlab.data.spec import InputSpec
    from cnnlab.pipelines.predict import predict_files, show

    broken = tmp_path / "broken.jpg"
    broken.write_bytes(b"\xff\xd8\xff\xe0 not really a jpeg")
    model = SimpleNamespace(spec=InputSpec(16), classes=["a", "b"])  # never run: no file is readable
    predictions, unreadable = predict_files(model, [broken], topk=1, batch_size=4)  # type: ignore[arg-type]
    assert predictions == [] and list(unreadable) == [str(broken)]
    reason = unreadable[str(broken)]
    assert reason.startswith("damaged or cut short (") and reason.count("cut short") == 1, reason
    show(predictions, unreadable)
    lines = [ln for ln in capsys.readouterr().err.splitlines() if "broken.jpg" in ln]
    assert lines == [f"skipped {broken}: {reason}"], lines  # it read "unreadable: X (unreadable (...))"
    gone = tmp_path / "gone.png"  # probe 146: a dangling link in a folder was a FileNotFoundError traceback
    gone.symlink_to(tmp_path / "nowhere.png")
    _, unreadable = predict_files(model, [gone], topk=1, batch_size=4)  # type: ignore[arg-type]
    assert unreadable[str(gone)].startswith("missing (a link to nothing"), unreadable


def test_nothing_to_predict_is_a_user_error(cli, outputs: Path, tmp_path: Path) -> None:
    from helpers import TINY

    assert cli("pretrain", *TINY).code == 0
    result = cli("predict", "source=latest:pretrain")
    assert result.code == 2 and "needs images" in result.stderr and "Traceback" not in result.stderr
    empty = tmp_path / "empty"
    empty.mkdir()
    result = cli("predict", "source=latest:pretrain", str(empty))
    assert result.code == 2 and "no image files in" in result.stderr
    assert not (outputs / "predict").exists()  # refused before any work: no `failed` run left (probe 68)
    result = cli("predict", "source=latest:pretrain", f"predict.inputs=['{tmp_path / 'missing.jpg'}']")
    assert result.code == 2 and "no such file or folder" in result.stderr


def test_a_checkpoint_asked_to_run_on_onnxruntime_names_the_key_that_runs_it(cli, outputs: Path,
                                                                              tmp_path: Path) -> None:
    """The fix said "runtime=pytorch where the command offers it": followed, `unknown setting 'runtime'`."""
    from helpers import TINY

    assert cli("pretrain", *TINY).code == 0
    photo(tmp_path / "a.png", COLOURS["red"], (20, 20), seed=1)
    refused = cli("predict", "source=latest:pretrain", str(tmp_path / "a.png"), "predict.runtime=onnxruntime")
    assert refused.code == 2 and "predict.runtime=pytorch" in refused.stderr, refused.stderr
    followed = cli("predict", "source=latest:pretrain", str(tmp_path / "a.png"), "predict.runtime=pytorch")
    assert followed.code == 0, followed.output


def test_file_names_that_look_like_markup_are_printed_as_text(cli, outputs: Path, tmp_path: Path) -> None:
    from helpers import TINY

    assert cli("pretrain", *TINY).code == 0
    odd = tmp_path / "foo[" / "bar].png"  # "foo[/bar].png": a closing rich tag, once a traceback
    photo(odd, (200, 30, 30), (20, 20), seed=1)
    dollar = tmp_path / "x${y}.png"  # an OmegaConf interpolation: "Interpolation key 'y' not found", once
    photo(dollar, (30, 200, 30), (20, 20), seed=2)
    result = cli("predict", "source=latest:pretrain", str(odd), str(dollar))
    assert result.code == 0, result.output
    assert read_run(run_dirs(outputs, "predict")[0])["metrics"]["images"] == 2
    assert (run_dirs(outputs, "predict")[0] / "predictions.csv").is_file()


def test_pictures_in_a_format_not_read_are_listed_as_imagefolder_counts_them(tmp_path: Path) -> None:
    """A folder's .heic/.HEIC files were dropped silently, while `imagefolder` counts them as skipped."""
    from types import SimpleNamespace

    import torch

    from cnnlab.data.spec import InputSpec
    from cnnlab.pipelines.predict import list_images, predict_files

    photo(tmp_path / "a.png", COLOURS["red"], (20, 20), seed=1)
    for name in ("phone.heic", "PHONE2.HEIC", "scan.jxl"):
        (tmp_path / name).write_bytes(b"....ftypheic")
    (tmp_path / "notes.txt").write_text("not an image")
    files = list_images([tmp_path])
    assert sorted(p.name for p in files) == ["PHONE2.HEIC", "a.png", "phone.heic", "scan.jxl"]  # notes.txt: not one
    model = SimpleNamespace(spec=InputSpec(16), classes=["a", "b"],
                            probabilities=lambda x: torch.full((len(x), 2), 0.5))
    predictions, unreadable = predict_files(model, files, topk=1, batch_size=2)  # type: ignore[arg-type]
    assert [Path(p.file).name for p in predictions] == ["a.png"]
    assert unreadable == {str(tmp_path / "PHONE2.HEIC"): "format .heic not supported",
                          str(tmp_path / "phone.heic"): "format .heic not supported",
                          str(tmp_path / "scan.jxl"): "format .jxl not supported"}
    # a file named on its own is judged the same way
    assert predict_files(model, [tmp_path / "phone.heic"], topk=1,  # type: ignore[arg-type]
                         batch_size=2)[1] == {str(tmp_path / "phone.heic"): "format .heic not supported"}


def test_names_that_would_drive_the_terminal_are_shown_escaped(capsys) -> None:
    """Probe 126: a file named "\\x1b[31mred.png" coloured the terminal; "\\rcr.png" overwrote its row."""
    from cnnlab.evaluation.files import Prediction
    from cnnlab.pipelines.predict import show

    show([Prediction("\x1b[31mred.png", ("a\tb",), (0.75,)), Prediction("\rcr.png", ("c",), (1.0,))],
         {"\x07bell.png": "empty file (0 bytes)"})
    said = capsys.readouterr()  # the table on standard output, the skipped files on standard error (probe 238)
    for text in (said.out, said.err):
        assert "\x1b" not in text and "\r" not in text and "\x07" not in text and "\t" not in text
    assert "\\x1b[31mred.png" in said.out and "\\rcr.png" in said.out and "a\\tb 75.0%" in said.out
    assert "skipped \\x07bell.png: empty file (0 bytes)" in said.err and "red.png" not in said.err


def test_empty_and_cut_short_files_are_named_so_and_not_told_to_be_converted(tmp_path: Path) -> None:
    """Probe 126: a zero-byte .jpg and a cut .png read "unreadable (…cannot identify…)", and the fix said "convert
    these to PNG or JPEG" — not possible for a file that is empty or cut short."""
    from types import SimpleNamespace

    from cnnlab.data.spec import InputSpec
    from cnnlab.pipelines.predict import nothing_readable, predict_files

    photo(tmp_path / "whole.png", COLOURS["red"], (40, 40), seed=1)
    (tmp_path / "empty.jpg").write_bytes(b"")
    (tmp_path / "cut.png").write_bytes((tmp_path / "whole.png").read_bytes()[:300])
    # probe 132: cut inside the header (Pillow cannot open it at all) is cut short too, not "unreadable"
    (tmp_path / "head.png").write_bytes((tmp_path / "whole.png").read_bytes()[:20])
    Image.new("RGB", (40, 40)).save(tmp_path / "whole.jpg")
    (tmp_path / "head.jpg").write_bytes((tmp_path / "whole.jpg").read_bytes()[:100])
    (tmp_path / "notes.jpg").write_text("not a picture")
    model = SimpleNamespace(spec=InputSpec(16), classes=["a", "b"])  # never run: no file is readable
    files = [tmp_path / "empty.jpg", tmp_path / "cut.png", tmp_path / "head.png", tmp_path / "head.jpg"]
    _, unreadable = predict_files(model, files, topk=1, batch_size=4)  # type: ignore[arg-type]
    assert unreadable[str(files[0])] == "empty file (0 bytes)"
    assert all(unreadable[str(f)].startswith("damaged or cut short (") for f in files[1:]), unreadable
    error = nothing_readable(unreadable)
    assert error.fix == "copy the empty or cut-short files again from where they came, or leave them out"
    _, mixed = predict_files(model, [*files, tmp_path / "notes.jpg"], topk=1, batch_size=4)  # type: ignore[arg-type]
    fix = nothing_readable(mixed).fix or ""
    assert fix.startswith("copy the empty or cut-short files again") and "convert these to PNG or JPEG" in fix


def test_a_run_in_which_no_image_could_be_read_fails(cli, outputs: Path, tmp_path: Path) -> None:
    """It exited 0 with empty predictions files when every input was unreadable."""
    from helpers import TINY

    assert cli("pretrain", *TINY).code == 0
    photos = tmp_path / "photos"
    photos.mkdir()
    (photos / "phone.heic").write_bytes(b"....ftypheic")
    (photos / "broken.jpg").write_bytes(b"\xff\xd8\xff\xe0 not really a jpeg")
    result = cli("predict", "source=latest:pretrain", str(photos))
    assert result.code == 2, result.output
    lines = [ln for ln in result.stderr.splitlines() if ln.startswith("error")]
    assert len(lines) == 1 and "Traceback" not in result.output, result.output
    assert lines[0].startswith("error: no image could be read: all 2 files were skipped (") and \
        "phone.heic: format .heic not supported" in lines[0] and "broken.jpg: damaged or cut short" in lines[0], \
        lines[0]
    assert "convert these to PNG or JPEG" in lines[0] and "copy the empty or cut-short files again" in lines[0]
    run_dir = run_dirs(outputs, "predict")[0]
    record = read_run(run_dir)
    assert record["status"] == "failed" and sorted(Path(p).name for p in record["predict"]["unreadable"]) == [
        "broken.jpg", "phone.heic"]
    assert not (run_dir / "predictions.csv").exists() and not (run_dir / "predictions.json").exists()
    photo(photos / "ok.png", COLOURS["red"], (20, 20), seed=1)  # the fix: one readable image, and the run works
    result = cli("predict", "source=latest:pretrain", str(photos))
    assert result.code == 0, result.output
    assert read_run(run_dirs(outputs, "predict")[-1])["metrics"] == {"images": 1, "unreadable": 2}


def test_dataset_settings_that_predict_and_bench_would_ignore_are_refused(cli, outputs: Path, tmp_path: Path) -> None:
    """`predict ... dataset.image_size=32` (or dataset.mean=, dataset=digits) and `bench source=RUN
    dataset.image_size=64` were accepted, recorded and ignored: the model file's own preprocessing applied."""
    from helpers import TINY

    assert cli("pretrain", *TINY).code == 0
    picture = tmp_path / "x.png"
    Image.new("RGB", (20, 20), (200, 30, 30)).save(picture)
    for typed in ("dataset.image_size=32", "dataset.mean=[0.5,0.5,0.5]", "dataset=digits"):
        refused = cli("predict", "source=latest:pretrain", str(picture), typed)
        said = " ".join(refused.stderr.split())
        assert refused.code == 2 and "predict feeds images the way the model file records" in said, refused.output
        assert f"drop {typed.split('=')[0]}=" in said and "Traceback" not in refused.stderr
    bench = cli("bench", "source=latest:pretrain", "dataset.image_size=64", "bench.min_seconds=0")
    assert bench.code == 2 and "at the input size it records" in bench.stderr, bench.output
    assert cli("predict", "source=latest:pretrain", str(picture)).code == 0


def test_a_folder_link_inside_a_predicted_folder_is_walked_once(tmp_path: Path) -> None:
    """os.walk does not follow links: `predict photos/` skipped photos/more -> elsewhere/, silently."""
    from cnnlab.pipelines.predict import list_images

    (tmp_path / "elsewhere").mkdir()
    Image.new("RGB", (8, 8)).save(tmp_path / "elsewhere" / "b.png")
    photos = tmp_path / "photos"
    photos.mkdir()
    Image.new("RGB", (8, 8)).save(photos / "a.png")
    (photos / "more").symlink_to(tmp_path / "elsewhere", target_is_directory=True)
    (photos / "loop").symlink_to(photos, target_is_directory=True)  # a link back up: not walked again
    assert sorted(p.name for p in list_images([photos])) == ["a.png", "b.png"]
    # probe 126: a link to a folder above the one given walked that whole folder (`sub/loop -> ..`: photos/ as
    # photos/sub/loop/…; a link to / the whole disk)
    (photos / "sub").mkdir()
    Image.new("RGB", (8, 8)).save(photos / "sub" / "c.png")
    (photos / "sub" / "up").symlink_to("..", target_is_directory=True)
    (photos / "sub" / "top").symlink_to("/", target_is_directory=True)
    assert [p.name for p in list_images([photos / "sub"])] == ["c.png"]


def test_a_file_named_twice_is_predicted_once_and_a_link_to_it_gets_its_own_row(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """`predict a.png link.png` (link.png -> a.png) printed one row: the two names were deduplicated by target."""
    from cnnlab.pipelines.predict import list_images

    monkeypatch.chdir(tmp_path)
    photos = tmp_path / "photos"
    photo(photos / "a.png", COLOURS["red"], (20, 20), seed=1)
    (tmp_path / "link.png").symlink_to(photos / "a.png")
    assert list_images(["photos/a.png", "link.png"]) == [Path("photos/a.png"), Path("link.png")]
    assert list_images(["photos/a.png", "photos", "./photos/a.png"]) == [Path("photos/a.png")]


def test_a_file_whose_name_starts_with_a_tilde_is_that_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """`cnnlab predict -- ~home.png` was a traceback ("Could not determine home directory") and `./~nobody` became
    user nobody's home folder: `~` is expanded only for a path that does not exist as written."""
    from cnnlab.pipelines.predict import list_images

    monkeypatch.chdir(tmp_path)
    photo(tmp_path / "~home.png", COLOURS["red"], (20, 20), seed=1)
    (tmp_path / "~nobody").write_bytes((tmp_path / "~home.png").read_bytes())  # a PNG without an extension
    assert list_images(["~home.png", "./~nobody"]) == [Path("~home.png"), Path("./~nobody")]
    monkeypatch.setenv("HOME", str(tmp_path))
    assert list_images(["~/~home.png"]) == [tmp_path / "~home.png"]  # a home folder that exists: expanded


def test_nothing_readable_names_the_fix_of_its_reasons() -> None:
    """Probe 114: a named pipe called photo.png, skipped as "not a regular file", was told to convert it to PNG."""
    from cnnlab.pipelines.predict import nothing_readable

    assert nothing_readable({"photo.png": "not a regular file"}).fix == "give image files, not named pipes or devices"
    assert "convert these to PNG" in (nothing_readable({"a.heic": "format .heic not supported"}).fix or "")
