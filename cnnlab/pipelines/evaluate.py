"""`cnnlab evaluate source=RUN|FILE [dataset=...] [split=test]`: score a model file on a split — the one command
that reads the official test split.

1. open the source: a model.pt through PyTorch, or an FP32/FP16/INT8 model.onnx through onnxruntime (or OpenVINO)
   — its precision read from the graph (onnx_check.graph_precision, as quantize reads it), a graph ending in
   Softmax scored from the log of its probabilities (cnnlab.deploy.infer);
2. rebuild its data — the dataset its run (or the file itself) records, unless dataset=... picks another —
   preprocessed exactly as the file's input spec says;
   `split=all` (train, val and test together: a folder of new labelled images with no split folders) is refused
   on the data the model trained on (steps/sources.py refuse_training_images); an image folder's class folders
   name the model's classes in any order, a `/` in a class name written `_` (data/class_folders.py: the folder
   T-shirt_top holds Fashion-MNIST's T-shirt/top), and its labels are renumbered to the model's;
3. score `split` batch by batch: top-1 with its 95 % Wilson interval over the images (evaluation/intervals.py),
   top-5, loss, per-class accuracy, confusion matrix, ECE (15 bins);
4. write confusion.csv, confusion.png, per_class.csv, outcomes.csv (per image) and the run record (metrics
   `<split>_acc`, `<split>_top5`, `<split>_loss`, `ece`, `n`, `split`, `per_class_acc`; `model.precision`,
   `model.outputs`: logits | probabilities | log-probabilities).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from omegaconf import DictConfig
from torch.utils.data import ConcatDataset, Dataset

from cnnlab.context import RunContext
from cnnlab.data import DataBundle
from cnnlab.data.folder import one_of_each_picture, split_files
from cnnlab.deploy.export import model_file_bytes
from cnnlab.deploy.infer import InferenceModel, model_device, open_model, source_kinds
from cnnlab.engine.metrics import ECE_BINS, ClassificationScores, ScoreAccumulator
from cnnlab.engine.progress import make_progress
from cnnlab.engine.recipe import Recipe
from cnnlab.errors import CnnlabError, found_before_work
from cnnlab.evaluation.files import (OUTCOMES_FILE, plot_confusion_png, write_confusion_csv, write_outcomes_csv,
                                     write_per_class_csv)
from cnnlab.evaluation.intervals import accuracy_interval
from cnnlab.steps.sources import (Labels, model_labelled, refuse_training_images, refuse_training_images_in_test,
                                   require_source, source_data)
from cnnlab.steps.recording import dataset_record
from cnnlab.steps.training import eval_loader, loader_workers
from cnnlab.wording import counted

SPLITS = ("train", "val", "test", "all")  # all: every image of the data (new labelled images, no split folders)
CARVED_SPLITS = ("train", "val")  # read from the data as the model trained on it: val carved as it was
# Whose label fraction each split's data takes (steps/sources.settle_label_fraction): train, the pictures the model
# trained on; val and test, which no fraction touches, keep the model's in the record; all, every image scored.
_LABELS: dict[str, Labels] = {"train": "source's", "val": "kept", "test": "kept", "all": "scored"}


def run(cfg: DictConfig, ctx: RunContext) -> dict[str, Any]:
    runtime, split = str(cfg.evaluate.runtime), str(cfg.split)
    recipe = Recipe.from_config(cfg)  # the evaluation batch size, loader workers and seed
    if split not in SPLITS:
        raise CnnlabError(f"split={split} is not a split", fix="use split=test (default), val, train or all")
    source = require_source(cfg, ctx, want=source_kinds(runtime))
    model = open_model(source.kind, source.path, runtime=runtime,
                       device=model_device(cfg.get("device"), source.kind, runtime))
    # train and val are carved only when scored: split=test reads neither (probe 64: a folder whose val/ copied its
    # train/ was refused for a test score), split=all every image
    # split=train: the pictures the model trained on, its run's label fraction kept (probe 210: a run at 0.3 was
    # scored on the whole training split, 85 of its 121 pictures never trained on, recorded as label_fraction 1.0)
    # and its carve too (probe 214: dataset.seed=0 for the run's 3 scored 434 pictures, 79 of them its val split's)
    data, dataset_cfg = source_data(cfg, ctx, source, model.spec, uses_val=split in ("val", "train"),
                                    carve_val=split in CARVED_SPLITS,
                                    reads=("train", "val", "test") if split == "all" else (split,),
                                    labels=_LABELS[split],
                                    scored="train" if split == "train" else "val")
    require_split(data, split, dataset_cfg.get("root") if data.name == "imagefolder" else None)  # first: a folder
    # of new images needs split=all, whatever its class folders say
    data = model_labelled(data, model.classes)  # the model's names and order (or CnnlabError)
    if split == "all":
        refuse_training_images(source, dataset_cfg, data)
    elif split == "test":
        refuse_training_images_in_test(source, dataset_cfg, data)
    images = split_of(data, split)
    ctx.log.info("evaluate %s (%s, %s, %s) on %s/%s: %s at %d px", model.arch or source.path.name,
                 model.kind, model.precision, model.runtime, data.name, split, counted(len(images), "image"),
                 model.spec.size)

    scores = score(model, eval_loader(recipe, images, workers=loader_workers(recipe, data)), desc=f"evaluate {split}")
    files = write_outputs(ctx, scores, model.classes, f"{model.arch or source.path.name} on {data.name}/{split}",
                          split_files(images))
    # with 5 classes or fewer every class is in the top 5: 100 % by construction, which says nothing (probe 88)
    top5 = f", top-5 {100 * scores.top5:.2f}%" if len(model.classes) > 5 else ""
    # the test set is finite: the top-1 with its interval over images (probe 184: none was said or recorded)
    interval = accuracy_interval(scores.correct, scores.n)
    ctx.log.info("%s: top-1 %.2f%% (%s, Wilson, over the images)%s, ECE %.4f on %s", split, 100 * scores.top1,
                 interval.text() if interval else "no interval", top5, scores.ece, counted(scores.n, "image"))
    dataset = dataset_record(data, dataset_cfg)
    if split not in CARVED_SPLITS:  # built without carving val: not the train/val sizes the model had (probe 97)
        dataset.update(train_size=None, val_size=None)
    ctx.record.update(evaluate={"split": split, "n": scores.n, "correct": scores.correct, "runtime": model.runtime,
                                "ece_bins": ECE_BINS, "top1_interval": interval.to_dict() if interval else None,
                                "files": files},
                      model={"name": model.arch, "format": "onnx" if model.kind == "onnx" else "pytorch",
                             "precision": model.precision, "image_size": model.spec.size,
                             "num_classes": len(model.classes), "file_bytes": model_file_bytes(source.path),
                             "input": model.spec.to_dict(), "outputs": model.outputs},
                      dataset=dataset)
    return {f"{split}_acc": scores.top1, f"{split}_top5": scores.top5, f"{split}_loss": scores.loss,
            "ece": scores.ece, "n": scores.n, "split": split,
            "per_class_acc": dict(zip(model.classes, scores.per_class))}


@found_before_work()
def require_split(data: DataBundle, split: str, folder: str | None = None) -> None:
    """CnnlabError for a split (SPLITS) the data lacks: a folder of new labelled images has no test split, and its
    class folders were judged first, with a fix that then led to this refusal (probe 70). `folder`: an image
    folder's root, whose own test split is the first fix (probe 184: it was not offered)."""
    if split != "all" and {"train": data.train, "val": data.val, "test": data.test}[split] is None:
        # only beside a train/ folder: in a one-level folder a test/ would be read as a class (data/folder.py)
        own = f"put test images in {folder}/test/<class>/ beside its train/ (a test split of its own); " \
            if folder and split == "test" and (Path(folder) / "train").is_dir() else ""
        raise CnnlabError(f"dataset {data.name} has no {split} split",
                          fix=f"{own}use split=val; split=all to score every image of a folder of new labelled "
                              "images (dataset=imagefolder dataset.root=DIR); or a dataset with an official test "
                              "split (cifar10, cifar100, mnist, fashion_mnist, kmnist, svhn, stl10, flowers)")


@found_before_work()
def split_of(data: DataBundle, split: str) -> Dataset:
    """The images of `split` (SPLITS), a split the data has (require_split); "all" is train, val and test together.
    CnnlabError for an empty one."""
    parts = {"train": data.train, "val": data.val, "test": data.test}
    if split == "all":
        present = [part for part in parts.values() if part is not None and len(part)]  # type: ignore[arg-type]
        if not present:
            raise CnnlabError(f"dataset {data.name} holds no images", fix="point dataset.root=DIR to the images")
        # a picture in two splits, or twice in one, is scored once (each split was read so already: data/folder.py)
        return one_of_each_picture(ConcatDataset(present), f"dataset {data.name}", "split=all")
    images = parts[split]
    assert images is not None, "run() checks the split first (require_split)"
    if len(images) == 0:  # type: ignore[arg-type]
        raise CnnlabError(f"the {split} split of {data.name} is empty", fix="use another split or dataset")
    return images


def score(model: InferenceModel, loader: Any, *, desc: str = "evaluate") -> ClassificationScores:
    """The model's scores over `loader` (batches of preprocessed images and labels), with a progress bar."""
    accumulator = ScoreAccumulator(len(model.classes))
    with make_progress() as progress:
        task = progress.add_task(desc, total=len(loader), status="")
        for images, targets, *_ in loader:
            logits, probabilities = model.scores(images)
            accumulator.update(logits, targets, probabilities)
            progress.advance(task)
    return accumulator.compute()


def write_outputs(ctx: RunContext, scores: ClassificationScores, classes: list[str], title: str,
                  files: list[str] | None = None) -> dict[str, str]:
    """confusion.csv, confusion.png, per_class.csv and outcomes.csv (per image; `files`: the file of each, where the
    split was read from files) in the run folder, recorded as artifacts."""
    if not ctx.is_main:
        return {}
    paths = {"confusion_csv": write_confusion_csv(ctx.path("confusion.csv"), scores.confusion, classes),
             "confusion_png": plot_confusion_png(ctx.path("confusion.png"), scores.confusion, classes,
                                                 f"{title}: top-1 {100 * scores.top1:.2f}%"),
             "per_class_csv": write_per_class_csv(ctx.path("per_class.csv"), scores.confusion, classes)}
    if scores.targets is not None and scores.predicted is not None and scores.confidence is not None:
        paths["outcomes_csv"] = write_outcomes_csv(ctx.path(OUTCOMES_FILE), scores.targets, scores.predicted,
                                                   scores.confidence, classes, files)
    for name, path in paths.items():
        ctx.record.add_artifact(name, path)
    return {name: path.name for name, path in paths.items()}
