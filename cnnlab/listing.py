"""`cnnlab list models|datasets|runs`: tables of what exists."""

from __future__ import annotations

import contextlib
import datetime as _dt
import itertools
import re
from pathlib import Path
from typing import Sequence

from rich.markup import escape
from rich.table import Table

from cnnlab import conftree
from cnnlab.console import out
from cnnlab.errors import CnnlabError
from cnnlab.fileio import load_yaml, read_yaml_mapping
from cnnlab.runs import SAVED_CONFIG, RunInfo, iter_runs


def _fmt_millions(value: float | int | None) -> str:
    return "—" if value is None else f"{value / 1e6:.1f} M"


def print_models() -> None:
    from cnnlab.models import ALIASES, MODELS, model_info, models_with_cifar_stem  # imports torch: not a help path

    table = Table(title="Model zoo (model=NAME)", title_justify="left")
    params = "params (1000 classes)"  # every row with ImageNet's head: the weights' meta counts it so
    for column in ("name", "family", "year", params, "GFLOPs @224", "ImageNet top-1", "ImageNet weights"):
        numeric = column in (params, "GFLOPs @224", "ImageNet top-1", "year")
        table.add_column(column, justify="right" if numeric else "left")
    for name, entry in MODELS.items():
        info = model_info(name)
        acc = info.get("imagenet_acc1")
        gflops = info.get("gflops")
        table.add_row(name, str(info.get("family", "")), str(info.get("year", "")), _fmt_millions(info.get("params")),
                      "—" if gflops is None else f"{gflops:.2f}", "—" if acc is None else f"{acc:.1f} %",
                      entry.tv_weights or "none")
    for alias, target in ALIASES.items():
        table.add_row(alias, f"alias of {target}", "", "", "", "", "")
    out.print(table)
    out.print(f"small images (≤ 64 px): model.stem=cifar keeps the first stage at input resolution "
              f"({', '.join(models_with_cifar_stem())}; 8–10× the FLOPs at 16 px, 13× at 28, 14–16× at 32–64) — "
              "docs/models.md")


def print_datasets() -> None:
    table = Table(title="Datasets (dataset=NAME)", title_justify="left")
    table.add_column("name")
    table.add_column("what")
    table.add_column("offline")
    for name in conftree.choices("dataset"):
        path = conftree.CONF_DIR / "dataset" / f"{name}.yaml"
        text = path.read_text(encoding="utf-8")
        # the first sentence of the comment block the file opens with (probe 165: its first line alone stopped
        # mid-sentence, "…/val/<class>/*.jpg,")
        lines = text.lstrip("\n").splitlines()
        opening = " ".join(ln.lstrip("# ").strip() for ln in itertools.takewhile(lambda ln: ln.startswith("#"), lines))
        first_comment = re.split(r"(?<=\.)\s", opening, maxsplit=1)[0]
        data = load_yaml(path) or {}
        offline = "downloads once" if "download" in data else ("your files" if "root" in data else "built in")
        if "download" in data:
            from cnnlab.data.archives import system_copy_of  # torch-free: listing stays a fraction of a second

            copy = system_copy_of(name)
            offline = f"here, in {copy}" if copy is not None else offline
        table.add_row(name, first_comment, offline)
    out.print(table)


# the commands whose network is the one their config names (the others read a source's): where it is named (a
# search's only for space=hparams; an architecture space's network is "searched", as a completed search records)
_BUILDS_MODEL = {"pretrain": "model", "finetune": "model", "search": "model", "distill": "student"}


def _model_name(run: RunInfo) -> str:
    """The network the run records; for a run that stopped before recording it (interrupted, failed, dead, still
    running), the one its saved config names (model=, or distill's student=), so its row is not blank (probe 70)."""
    subjects = (run.data.get("paired") or {}).get("subjects") if not run.damaged else None
    if not run.model.name and isinstance(subjects, list) and subjects:  # a paired bench session (probe 192: blank)
        return f"{len(subjects)} paired: " + ", ".join(str(s.get("name") or "?") if isinstance(s, dict) else "?"
                                                      for s in subjects)
    if run.model.name or run.damaged or run.command not in _BUILDS_MODEL:
        return run.model.name or ""  # quantize, prune, ...: the network is their source's, not the config's model=
    config = read_yaml_mapping(run.path / SAVED_CONFIG) or {}
    space = config.get("space")
    if run.command == "search" and not (isinstance(space, dict) and space.get("kind") == "hparams"):
        return "searched"  # an architecture space's network, not model= (probe 74: "resnet18" for a mobilenet space)
    source = run.data.get("source")
    if run.command == "finetune" and isinstance(source, dict) and isinstance(source.get("run"), str):
        # from a cnnlab run's weights the network is that run's, not the config's default model= (probe 199: an
        # interrupted fine-tune of a LeNet-5 listed as resnet18)
        with contextlib.suppress(OSError, ValueError):
            started = RunInfo.read(Path(source["run"]))
            if started.model.name:
                return started.model.name
    node = config.get(_BUILDS_MODEL[run.command])
    name = node.get("name") if isinstance(node, dict) else None
    return str(name) if isinstance(name, str) else ""


def _val_acc_cell(run: RunInfo) -> str:
    """The run's val top-1; for a run that stopped before its end (interrupted, failed, dead, still running), the last
    epoch's that its record kept, with the epoch. A damaged record's sections are empty: its row shows the reason."""
    if run.metrics.val_acc is not None:
        return f"{run.metrics.val_acc:.2%}"
    history = run.metrics.extra.get("history")
    last = history[-1] if isinstance(history, list) and history and isinstance(history[-1], dict) else {}
    acc = last.get("val_acc")
    if not isinstance(acc, (int, float)) or isinstance(acc, bool) or not 0 <= acc <= 1:
        return "—"
    return f"{acc:.2%} (epoch {len(history)})"


def _local_time(run: RunInfo) -> str:
    """When `run` started, in this machine's time zone: a run recorded under another UTC offset (a DST change, a
    cluster node elsewhere) read "22:11" among "01:09"s, out of the listed order (probe 91)."""
    seconds = run.started_at
    if seconds == float("-inf"):
        return run.started.replace("T", " ")[:19]
    return _dt.datetime.fromtimestamp(seconds).strftime("%Y-%m-%d %H:%M:%S")


def _continuations(runs: Sequence[RunInfo]) -> dict[Path, str]:
    """{resolved run folder: the folder name of the newest run listed that continued it (`resumed_from`)}: a run
    interrupted and then resumed to the end read just "interrupted", nothing linking it to its continuation (probe
    228)."""
    continued: dict[Path, str] = {}
    for run in runs:
        origin = None if run.damaged else run.data.get("resumed_from")
        if isinstance(origin, str) and origin:
            continued[Path(origin).expanduser().resolve()] = run.path.name
    return continued


def print_runs(outputs: Path, *, named: bool = False) -> None:
    """The runs under `outputs`, oldest first. A folder the user `named` (--outputs DIR) that does not exist is a
    CnnlabError (exit 2): "no runs yet" would hide a mistyped path. The default outputs folder (./outputs,
    $CNNLAB_OUTPUTS) does not exist before the first run: then there are simply no runs yet."""
    if named and not outputs.exists():
        raise CnnlabError(f"--outputs {outputs}: no such folder",
                          fix="give the folder your runs are in (commands write them to $CNNLAB_OUTPUTS, else "
                              "./outputs: `cnnlab list runs` without --outputs lists that one)")
    runs = list(iter_runs(outputs))
    if not runs:
        missing = "" if outputs.exists() else " (the folder does not exist yet)"
        out.print(f"no runs in {outputs}/ yet{missing} — start with `cnnlab pretrain` or `cnnlab finetune`")
        return
    table = Table(title=f"Runs in {outputs}/ (oldest first; source=latest picks the newest completed)",
                  title_justify="left")
    for column in ("run", "command", "status", "model", "dataset", "val acc", "started"):
        table.add_column(column)
    continued = _continuations(runs)
    for run in runs:
        # dead: recorded `running`, but its process is gone from this host (killed); resume=true continues it
        # damaged: run.json cannot be used (the reason is shown); latest, resume and report skip it
        gone = [] if run.damaged else run.deleted_files()
        later = continued.get(run.path.resolve()) if run.status != "completed" else None
        status = escape(run.status + (f" (run.json: {run.damaged})" if run.damaged else "")
                        + (f" ({' and '.join(gone)} deleted)" if gone else "")
                        + (f" (continued by {later})" if later else ""))
        style = {"completed": "green", "failed": "red", "interrupted": "yellow", "dead": "bold red",
                 "damaged": "red"}.get(run.status, "")
        table.add_row(escape(str(run.path)), escape(run.command), f"[{style}]{status}[/]" if style else status,
                      escape(_model_name(run)), escape(run.dataset.name or ""),
                      _val_acc_cell(run),
                      escape(_local_time(run)))
    out.print(table)
    damaged = sum(1 for run in runs if run.damaged)
    if damaged:
        out.print(f"{damaged} damaged run(s): skipped by source=latest, resume=true and `cnnlab report`; "
                  "mend what the reason names — their run.json, or a file it names that leads out of the run "
                  "folder (replace a link with the file) — or move them out of the outputs folder", markup=False,
                  highlight=False)
