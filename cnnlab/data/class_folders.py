"""How an image folder's class folders name a model's classes, when a model scores a folder of labelled images
(`cnnlab evaluate dataset=imagefolder dataset.root=DIR`; docs/evaluate.md, docs/datasets.md).

The rule: a class folder is named exactly as its class, except that a `/` in the class name — which no file system
allows in a folder name — is written `_`: Fashion-MNIST's class `T-shirt/top` is the folder `T-shirt_top/`. A
folder named exactly as a class is that class: for a model with both `a/b` and `a_b`, the folder `a_b/` is `a_b`,
and `a/b` has no folder name (every class has one folder, and every folder one class).

Only `_` is accepted. Look-alikes of `/` (the Unicode division slash `∕` U+2215, the fraction slash `⁄` U+2044,
or the `:` that macOS Finder stores for a typed `/`) are refused with the rule in the fix: one spelling that every
keyboard types and every file system accepts (Windows allows no `:`), and a listing that shows what a folder is
called — a `∕` looks like `/` on screen, so a folder named with it could not be told from one named wrong. One
spelling also keeps two folders (T-shirt_top/ and T-shirt∕top/) from both claiming one class.

A folder name in another Unicode form than the class (macOS writes `café` decomposed, NFD) names that class: the
two are one name, canonically equal, and print alike.

The rule works both ways: a model trained on class folders (its classes `T-shirt_top`, ...) scores the named data
they were made from (`dataset=fashion_mnist`, classes `T-shirt/top`, ...) with its labels renumbered to the model's.

A folder's class order (its sorted folder names) says nothing: once the folders name the model's classes, the labels
are renumbered to the model's order and the data carries the model's names, so the records, confusion matrix and
per-class accuracies say `T-shirt/top`, and label k means the model's output k.
"""

from __future__ import annotations

import logging
import unicodedata
from dataclasses import replace
from typing import Any, Sequence

from torch.utils.data import Dataset

from cnnlab.data.bundle import DataBundle, RelabeledDataset
from cnnlab.errors import CnnlabError, found_before_work
from cnnlab.wording import class_difference

log = logging.getLogger(__name__)

SLASH_IN_FOLDER = "_"  # what a class name's "/" is written as in its folder's name
RULE = f"a class folder is named as its class, with / written as {SLASH_IN_FOLDER}"


def folder_name(class_name: str) -> str:
    """The name of the folder that holds the images of `class_name` (the module's rule): T-shirt/top → T-shirt_top."""
    return class_name.replace("/", SLASH_IN_FOLDER)


def _class_of_folder(model_classes: Sequence[str], folder: str) -> list[int]:
    """The indices of the model classes the folder `folder` names: the class of that exact name, else those whose
    `folder_name` it is (one, unless two classes are written alike: a/b_c and a_b/c are both a_b_c), else those it
    writes in another Unicode form (macOS names a folder café decomposed, NFD; Linux and the model composed, NFC:
    one name, canonically equal, that no one can tell apart on screen — probe 182 was told to rename café to
    café)."""
    if folder in model_classes:
        return [list(model_classes).index(folder)]
    written = [index for index, name in enumerate(model_classes) if folder_name(name) == folder]
    if written:
        return written
    composed = unicodedata.normalize("NFC", folder)
    return [index for index, name in enumerate(model_classes)
            if unicodedata.normalize("NFC", folder_name(name)) == composed]


def model_class_of_folders(model_classes: Sequence[str], folders: Sequence[str]) -> list[int] | None:
    """For each class folder name (in the folder's order), the index of the model class it names
    (`_class_of_folder`), or None unless the folders name every model class exactly once."""
    mapping = []
    for folder in folders:
        claimed = _class_of_folder(model_classes, folder)
        if len(claimed) != 1:
            return None
        mapping.append(claimed[0])
    # every class once: a model with classes a/b and a_b has no folder for a/b (a_b/ is the class a_b)
    return mapping if sorted(mapping) == list(range(len(model_classes))) else None


def _as_class_names(model_classes: Sequence[str], folders: Sequence[str]) -> list[str]:
    """The folder names, each written as the model class it names where it names one (T-shirt_top: T-shirt/top):
    what a refusal compares, so that a folder named by the rule is never shown as a difference."""
    named = [_class_of_folder(model_classes, folder) for folder in folders]
    return [model_classes[claimed[0]] if len(claimed) == 1 else folder for folder, claimed in zip(folders, named)]


def named_by_folders(model_classes: Sequence[str], data_classes: Sequence[str]) -> list[int] | None:
    """The other way round: a model trained on class folders (its classes are folder names: `T-shirt_top`) scoring
    the named data they were made from (`fashion_mnist`: `T-shirt/top`). For each data class, the index of the model
    class that is its folder, or None unless each model class names one data class and each data class has one."""
    data_class_of = model_class_of_folders(data_classes, model_classes)  # the model's classes read as folders
    if data_class_of is None:
        return None
    mapping = [0] * len(data_classes)
    for model_index, data_index in enumerate(data_class_of):
        mapping[data_index] = model_index
    return mapping


@found_before_work()  # a refusal of the inputs leaves no `failed` run behind (probe 68)
def with_model_classes(data: DataBundle, classes: Sequence[str], what: str = "the model", *,
                       folder_data: bool) -> DataBundle:
    """`data` labelled as `what` (a model) labels it: the same bundle when its classes are the model's, in order; an
    image folder (`folder_data`: its classes are its folder names) whose class folders name the model's classes (the
    module's rule, in any order) with its labels renumbered to the model's order and the model's names. CnnlabError
    otherwise: the labels would mean other classes."""
    if list(data.classes) == list(classes):
        return data
    mapping = model_class_of_folders(classes, data.classes) if folder_data else named_by_folders(classes, data.classes)
    if mapping is None:
        found = _as_class_names(classes, data.classes) if folder_data else list(data.classes)
        raise CnnlabError(class_mismatch(list(classes), found, data.name, what, folders=folder_data),
                          fix=_folder_fix(list(classes), found) if folder_data else
                          f"{_BACK}, or a folder of labelled images: dataset=imagefolder dataset.root=DIR")
    renamed = {folder: classes[index] for folder, index in zip(data.classes, mapping) if folder != classes[index]}
    if renamed:
        said = "the folder {} holds class {}" if folder_data else "its class {} is the model's class folder {}"
        forms = " (the same name in another Unicode form)"
        log.info("dataset %s: %s (%s)", data.name, ", ".join(
            said.format(*pair) + (forms if unicodedata.normalize("NFC", pair[0]) == unicodedata.normalize(
                "NFC", pair[1]) else "") for pair in renamed.items()), RULE)

    def relabeled(split: Dataset | None) -> Any:
        return None if split is None else RelabeledDataset(split, mapping)

    # data.unlabeled (label -1) has nothing to renumber
    return replace(data, train=relabeled(data.train), val=relabeled(data.val), test=relabeled(data.test),
                   classes=list(classes))


def class_mismatch(known: list[str], found: list[str], dataset: str, what: str = "the model",
                   folders: bool = False) -> str:
    """'the model knows 10 classes but dataset X has 9: ...', or with as many classes 'the model and dataset X both
    have 10 classes, but the names differ: ...' (never "knows 10 classes but ... has 10"). `folders`: `found` are
    class folders' names (folder_name)."""
    written = folder_name if folders else None
    if len(known) != len(found):
        return f"{what} knows {len(known)} classes but dataset {dataset} has {len(found)}: " \
               f"{class_difference(known, found, written)}"
    if sorted(known) == sorted(found):
        return f"dataset {dataset} has {what}'s {len(known)} classes in another order, so its labels mean other " \
               "classes"
    return f"{what} and dataset {dataset} both have {len(known)} classes, but the names differ: " \
           f"{class_difference(known, found, written)}"


_BACK = "use the data the model was trained on (its run records it: drop dataset=... if you gave one)"


def _folder_fix(known: list[str], found: list[str]) -> str:
    """The fix for an image folder whose class folders do not name the model's classes (`found`: as
    `_as_class_names` writes them): the folders to rename, create or remove, and the rule, with an example."""
    missing, extra = [c for c in known if c not in found], [f for f in found if f not in known]
    if len(missing) == 1 and len(extra) == 1:
        steps = [f"rename the class folder {extra[0]} to {folder_name(missing[0])}"]
    else:
        steps = ([f"create the class folder{'s' if len(missing) > 1 else ''} "
                  f"{_listed([folder_name(c) for c in missing])}"] if missing else []) + (
            [f"remove or rename the class folder{'s' if len(extra) > 1 else ''} {_listed(extra)}"] if extra else [])
    slashed = next((name for name in known if "/" in name), "T-shirt/top")
    rule = f"{RULE}: name the folder {folder_name(slashed)} for {slashed}"
    return f"{'; '.join(steps) or 'name the class folders as the model classes'} ({rule}); or {_BACK}"


def _listed(names: list[str], limit: int = 4) -> str:
    return ", ".join(names[:limit]) + (f" and {len(names) - limit} more" if len(names) > limit else "")
