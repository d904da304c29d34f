"""The run and sweep folders as Hydra resolves them, checked before Hydra writes into them (a Hydra callback,
registered in conf/config.yaml).

cnnlab.launch_checks checks `hydra.run.dir=DIR` and `hydra.sweep.dir=DIR` as typed, before Hydra starts; a folder
written with an interpolation (`hydra.run.dir=runs/x_${model.name}`, `${paths.outputs}/...`, `${hydra:runtime.cwd}`)
can only be told once the config is composed, and Hydra writes the run's .hydra/ (a sweep's multirun.yaml) right
after. Probe 130: such a folder naming a completed run had its .hydra/ replaced by settings that never ran before the
run record refused it; one inside another run, or holding another sweep, was accepted. Hydra calls `on_run_start` /
`on_multirun_start` with the composed config before it creates or writes anything of the job
(hydra/_internal/hydra.py); the same checks then see every spelling, and `hydra.job.chdir` however it was set."""

from __future__ import annotations

import contextlib
from pathlib import Path
from typing import Any, Iterator

from hydra.core.hydra_config import HydraConfig
from hydra.experimental.callback import Callback
from omegaconf import DictConfig, OmegaConf
from omegaconf.errors import InterpolationResolutionError

from cnnlab.errors import CnnlabError
from cnnlab.errors_view import UserAbort, interpolation_error
from cnnlab.launch_checks import (UserError, refuse_chdir, refuse_taken_run_dir, refuse_taken_sweep_dir,
                                  refuse_unmakeable_folder)


class FolderGuard(Callback):
    """Refuses a resolved run folder that cannot be made or written, holds a run, lies inside one, or holds a sweep or
    runs; a resolved sweep folder that cannot be made or written, holds or lies inside a run, or holds another sweep;
    `hydra.job.chdir` set true. Each refusal is raised as errors_view.UserAbort, a BaseException: Hydra's callback
    runner turns any Exception a callback raises into a warning and goes on (hydra/_internal/callbacks.py);
    cnnlab.app removes the folder the resolving made."""

    def on_run_start(self, config: DictConfig, **kwargs: Any) -> None:
        with _refusals(config):
            refuse_chdir(f"hydra.job.chdir={config.hydra.job.chdir}", config.hydra.job.chdir)  # before a folder is made
            folder = Path(str(config.hydra.run.dir))
            refuse_unmakeable_folder(f"hydra.run.dir={folder}", folder)
            refuse_taken_run_dir(f"hydra.run.dir={folder}", folder)

    def on_multirun_start(self, config: DictConfig, **kwargs: Any) -> None:
        with _refusals(config):
            refuse_chdir(f"hydra.job.chdir={config.hydra.job.chdir}", config.hydra.job.chdir)
            folder = Path(str(config.hydra.sweep.dir))
            refuse_unmakeable_folder(f"hydra.sweep.dir={folder}", folder)
            task = OmegaConf.to_container(config.hydra.overrides.task, resolve=False)
            refuse_taken_sweep_dir(f"hydra.sweep.dir={folder}", folder, [str(t) for t in task or []])


@contextlib.contextmanager
def _refusals(config: DictConfig) -> Iterator[None]:
    """Hydra's own config set while the folders resolve (`${hydra:runtime.cwd}` reads it: probe 133 — it was not
    yet, the error became a warning, and the run went on to rewrite a completed run's .hydra/), put back after; a
    refusal or an interpolation that does not resolve raised as UserAbort."""
    instance = HydraConfig.instance()
    before, readonly = instance.cfg, OmegaConf.is_readonly(config.hydra)
    try:
        # What HydraConfig.set_config sets, less its copy of the config's hydra node (~10 ms a command): the
        # `hydra:` resolver reads `instance.cfg.hydra`, which the whole config holds; run_job sets Hydra's own after.
        OmegaConf.set_readonly(config.hydra, True)
        instance.cfg = config
        yield
    except UserError as refused:
        raise UserAbort(CnnlabError(str(refused))) from None
    except InterpolationResolutionError as exc:
        typed = [str(o) for part in ("hydra", "task")
                 for o in OmegaConf.to_container(config.hydra.overrides[part], resolve=False) or []]
        raise UserAbort(interpolation_error(exc, typed, {})) from None
    finally:
        instance.cfg = before
        OmegaConf.set_readonly(config.hydra, readonly)
