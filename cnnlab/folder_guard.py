"""The run and sweep folders as Hydra resolves them, checked before Hydra writes into them (a Hydra callback,
registered in conf/config.yaml).

cnnlab.launch_checks checks `hydra.run.dir=DIR` and `hydra.sweep.dir=DIR` as typed, before Hydra starts; a folder
written with an interpolation (`hydra.run.dir=runs/x_${model.name}`, `${paths.outputs}/...`) can only be told once
the config is composed, and Hydra writes the run's .hydra/ (a sweep's multirun.yaml) right after. Probe 130: such a
folder naming a completed run had its .hydra/ replaced by settings that never ran before the run record refused it;
one inside another run, or holding another sweep, was accepted. Hydra calls `on_run_start` / `on_multirun_start`
with the composed config before it creates or writes anything of the job (hydra/_internal/hydra.py)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from hydra.experimental.callback import Callback
from omegaconf import DictConfig, OmegaConf

from cnnlab.launch_checks import UserError, refuse_taken_run_dir, refuse_taken_sweep_dir


class FolderRefused(BaseException):
    """launch_checks' refusal, raised past Hydra's callback runner: it turns any Exception a callback raises into a
    warning and goes on (hydra/_internal/callbacks.py). Shown as one line, exit 2 (errors_view: is_user_error)."""

    is_user_error = True
    exit_code = 2


class FolderGuard(Callback):
    """Refuses a resolved run folder that holds a run or lies inside one, and a resolved sweep folder that does, or
    that holds another sweep (FolderRefused)."""

    def on_run_start(self, config: DictConfig, **kwargs: Any) -> None:
        folder = Path(str(config.hydra.run.dir))
        try:
            refuse_taken_run_dir(f"hydra.run.dir={folder}", folder)
        except UserError as refused:
            raise FolderRefused(str(refused)) from None

    def on_multirun_start(self, config: DictConfig, **kwargs: Any) -> None:
        folder = Path(str(config.hydra.sweep.dir))
        task = OmegaConf.to_container(config.hydra.overrides.task, resolve=False)
        try:
            refuse_taken_sweep_dir(f"hydra.sweep.dir={folder}", folder, [str(t) for t in task or []])
        except UserError as refused:
            raise FolderRefused(str(refused)) from None
