"""`cnnlab predict source=RUN|FILE IMAGE_OR_FOLDER...`: the top-k classes of new images, as a deployment would
compute them — with nothing but the model file: its input spec (channels, resize, crop, interpolation, mean/std)
and class names.

1. open the source: a model.onnx (FP32 or INT8) through onnxruntime, or a model.pt through PyTorch;
2. list the images: files as given, folders walked (sorted; files with an image extension, including pictures
   this build cannot read, such as .heic);
3. decode each (cnnlab.data.decode: as a viewer shows it), preprocess with eval_transform(spec), batch, run;
   an unreadable file (or a picture format that is not read: "format .heic not supported", as `imagefolder`
   counts it) is listed with its reason, not fatal — unless no file at all could be read: a CnnlabError;
4. print a table and write predictions.csv / predictions.json to the run folder.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Iterator, Sequence

import torch
from omegaconf import DictConfig
from rich.table import Table
from rich.text import Text

from cnnlab.console import console, out
from cnnlab.context import RunContext
from cnnlab.data.decode import (CUT_SHORT, EMPTY, NOT_A_FILE, READ_EXTENSIONS, DecodeSummary, UndecodableImage,
                                decode_image, extension_reason, holds_colour)
from cnnlab.data.transforms import eval_transform
from cnnlab.deploy.infer import InferenceModel, model_device, open_model, source_kinds
from cnnlab.engine.metrics import top_k
from cnnlab.engine.progress import make_progress
from cnnlab.wording import counted, visible
from cnnlab.errors import CnnlabError, found_before_work
from cnnlab.fileio import why_missing
from cnnlab.evaluation.files import Prediction, write_predictions
from cnnlab.data.content import visible_files
from cnnlab.steps.recording import record_warning
from cnnlab.steps.sources import refuse_dataset_settings, require_source

_SHOWN = 50  # rows of the terminal table; the files hold every prediction
_SOME_FORMATS = ", ".join(ext for ext in (".jpg", ".png", ".bmp", ".gif", ".tif", ".webp") if ext in READ_EXTENSIONS)


def run(cfg: DictConfig, ctx: RunContext) -> dict[str, Any]:
    settings = cfg.predict
    runtime, topk, batch = str(settings.runtime), int(settings.topk), int(settings.batch_size)
    if topk < 1 or batch < 1:
        raise CnnlabError(f"predict.topk={topk} and predict.batch_size={batch} must be at least 1")
    refuse_dataset_settings(ctx, "predict feeds images the way the model file records (size, crop, normalisation), "
                                 "as a deployment would, whatever dataset settings say",
                            "the file's preprocessing is its input spec (docs/predict.md, \"Preprocessing\")")
    files = list_images(list(settings.inputs or []))
    source = require_source(cfg, ctx, want=source_kinds(runtime))
    model = open_model(source.kind, source.path, runtime=runtime,
                       device=model_device(cfg.get("device"), source.kind, runtime))
    if topk > len(model.classes):  # said, not silently cut (probe 69)
        ctx.log.info("predict.topk=%d: the model knows %d classes, so every prediction lists all %d", topk,
                     len(model.classes), len(model.classes))
    topk = min(topk, len(model.classes))  # a model of 4 classes has no top-5
    ctx.log.info("predict with %s (%s, %s, %s): %s, top-%d", model.arch or source.path.name, model.kind,
                 model.precision, model.runtime, counted(len(files), "file"), topk)

    predictions, unreadable = predict_files(model, files, topk=topk, batch_size=batch)
    for path, reason in unreadable.items():
        ctx.log.warning("skipped %s: %s", path, reason)
    decoding = DecodeSummary()  # what decoding changed, as a dataset scan says it (probe 80: predict said nothing)
    for prediction in predictions:
        decoding.add_read(prediction.converted, coloured=prediction.coloured)
    if decoding.converted:
        decoding.log(ctx.log, "predict inputs")
    if (grey := decoding.colour_dropped("predict inputs", model.spec.channels)) is not None:
        record_warning(ctx, grey)  # a 1-channel model: the colour of colour pictures is lost, as in a dataset read
    show(predictions, unreadable)
    if not predictions:  # nothing predicted is no success: no predictions files, a failed run
        ctx.record.update(predict={"runtime": model.runtime, "topk": topk, "unreadable": unreadable})
        raise nothing_readable(unreadable)
    context = {"source": source.describe(), "model": model.describe()}
    if ctx.is_main:
        csv_path, json_path = write_predictions(ctx.run_dir, predictions, unreadable, context)
        ctx.record.add_artifact("predictions_csv", csv_path)
        ctx.record.add_artifact("predictions_json", json_path)
    ctx.record.update(model={"name": model.arch, "format": "onnx" if model.kind == "onnx" else "pytorch",
                             "precision": model.precision, "image_size": model.spec.size,
                             "num_classes": len(model.classes), "input": model.spec.to_dict(),
                             "outputs": model.outputs},
                      predict={"runtime": model.runtime, "topk": topk, "unreadable": unreadable,
                               "converted": dict(decoding.converted)})
    return {"images": len(predictions), "unreadable": len(unreadable)}


@found_before_work()  # a refusal of the inputs leaves no `failed` run behind (probe 68)
def list_images(inputs: Sequence[Any]) -> list[Path]:
    """Files as given (any extension: the decoder decides), and the image files under each folder, sorted; each
    path once (a link to a file is a row of its own: the user named it). CnnlabError when nothing is given, a path
    does not exist, or no image is found at all."""
    if not inputs:
        raise CnnlabError("`cnnlab predict` needs images", fix="cnnlab predict source=RUN photo.jpg photos/")
    files: list[Path] = []
    for item in inputs:
        path = _input_path(str(item))
        if path.is_dir():  # pictures this build cannot read (.heic, ...) too: they are listed as skipped
            files += sorted(p for p in _walk(path) if extension_reason(p) != "")
        elif path.exists():
            files.append(path)
        else:
            raise CnnlabError(f"{path}: {why_missing(path, absent='no such file or folder')}",
                              fix="give image files or folders that exist")
    if not files:
        raise CnnlabError(f"no image files in {', '.join(str(i) for i in inputs)}",
                          fix=f"give pictures ({_SOME_FORMATS}, ...; a file without an extension is read when its "
                              "bytes are one), or folders holding them")
    unique: dict[str, Path] = {}
    for file in files:  # a file named twice (alone and in its folder) is predicted once; a link is its own name
        unique.setdefault(os.path.abspath(file), file)
    return list(unique.values())


def _input_path(text: str) -> Path:
    """The file or folder `text` names: itself when it exists as written (a file named `~home.png`, `./~nobody`),
    else with `~` expanded (`predict.inputs=['~/photos']`, which no shell expands); as written when `~` names no
    home folder."""
    if os.path.lexists(text) or not text.startswith("~"):
        return Path(text)
    try:
        return Path(text).expanduser()
    except RuntimeError:  # "Could not determine home directory": `~user` of no user
        return Path(text)


def _walk(folder: Path) -> Iterator[Path]:
    """Files under `folder` (data.content.visible_files: hidden ones left out, folder links followed once)."""
    return (Path(path) for path in visible_files(folder))


def predict_files(model: InferenceModel, files: Sequence[Path], *, topk: int,
                  batch_size: int) -> tuple[list[Prediction], dict[str, str]]:
    """(top-k predictions of the readable files, in order; {file: reason} for the others). Each file is decoded
    with decode_image and preprocessed with eval_transform(model.spec.preprocessing()), batch_size at a time."""
    transform = eval_transform(model.spec.preprocessing())
    predictions: list[Prediction] = []
    unreadable: dict[str, str] = {}
    with make_progress() as progress:
        task = progress.add_task("predict", total=len(files), status="")
        for start in range(0, len(files), batch_size):
            read, tensors = [], []  # (file, its conversions, whether it holds colour a 1-channel model loses), tensor
            for path in files[start:start + batch_size]:
                if reason := extension_reason(path):  # a picture format this build does not read (.heic)
                    unreadable[str(path)] = reason
                    continue
                try:
                    decoded = decode_image(path)
                    tensors.append(transform(decoded.image))
                    read.append((str(path), decoded.kinds,
                                 holds_colour(decoded.image) if model.spec.channels == 1 else None))
                except UndecodableImage as exc:
                    unreadable[str(path)] = exc.reason + (f" ({exc.detail})" if exc.detail else "")
            if tensors:
                probabilities = model.probabilities(torch.stack(tensors))
                ranked = top_k(probabilities, topk)  # ties in class order, as evaluate ranks them
                shown = probabilities.gather(-1, ranked)
                for (name, kinds, coloured), values, indices in zip(read, shown.tolist(), ranked.tolist()):
                    predictions.append(Prediction(name, tuple(model.classes[i] for i in indices), tuple(values),
                                                  converted=kinds, coloured=coloured))
            progress.advance(task, len(files[start:start + batch_size]))
    return predictions, unreadable


def nothing_readable(unreadable: dict[str, str]) -> CnnlabError:
    """The error for a predict run in which no file could be read: the first files and their reasons."""
    shown = "; ".join(f"{path}: {reason}" for path, reason in list(unreadable.items())[:3])
    more = f"; and {len(unreadable) - 3} more" if len(unreadable) > 3 else ""
    return CnnlabError(f"no image could be read: all {len(unreadable)} files were skipped ({shown}{more}; every "
                       "file and its reason is listed above and in run.json's predict.unreadable)",
                       fix="; ".join(dict.fromkeys(_unreadable_fix(reason) for reason in unreadable.values())))


def _unreadable_fix(reason: str) -> str:
    """What helps a file skipped for `reason` (probe 114: a FIFO named .png was told to convert it to PNG; probe 126:
    an empty or cut-short .jpg, which no conversion can mend)."""
    if reason.startswith(NOT_A_FILE):
        return "give image files, not named pipes or devices"
    if reason.startswith((EMPTY, CUT_SHORT)):
        return "copy the empty or cut-short files again from where they came, or leave them out"
    return f"give images in a format cnnlab reads ({_SOME_FORMATS}, ...), e.g. convert these to PNG or JPEG"


def show(predictions: Sequence[Prediction], unreadable: dict[str, str]) -> None:
    """A rich table on standard output, as every command's results (probe 238: predict's went to standard error):
    file, then `class probability%` for each rank; the unreadable files after it, on standard error."""
    table = Table(title=f"top-{len(predictions[0].labels) if predictions else 0} predictions", show_lines=False)
    table.add_column("file", overflow="fold")
    for rank in range(len(predictions[0].labels) if predictions else 0):
        table.add_column(f"#{rank + 1}")
    for p in predictions[:_SHOWN]:
        # Text, not markup: file and class names are the user's ("foo[/bar].png" is a valid name)
        table.add_row(Text(visible(p.file)), *(Text(f"{visible(label)} {100 * prob:.1f}%")
                                               for label, prob in zip(p.labels, p.probabilities)))
    if predictions:
        out.print(table)
    if len(predictions) > _SHOWN:
        out.print(f"... and {len(predictions) - _SHOWN} more (predictions.csv holds them all)", markup=False)
    for path, reason in unreadable.items():
        # the reason already says what went wrong ("unreadable (...)", "colour mode ... not supported")
        console.print(f"skipped {visible(path)}: {visible(reason)}", markup=False, highlight=False, soft_wrap=True)
