"""What the command line refuses about how and where runs are launched, before Hydra starts (one line each, exit 2):
a sweep's values (checked by each setting's rule, globs that match nothing, an option and its alias, jobs that would
start from each other's runs, one folder for every job), flags a sweep cannot take, SLURM without SLURM, and
`hydra.run.dir` / `hydra.sweep.dir` folders that hold or lie inside another run or sweep. Torch-free: the command line
imports it at start-up."""

from __future__ import annotations

import contextlib
import os
import re
import sys
import tempfile
from pathlib import Path
from typing import Any, Iterator, Sequence

from cnnlab import conftree
from cnnlab.errors import CnnlabError
from cnnlab.fileio import why_missing
from cnnlab.hydra_args import override_parser, quote_plain_value
from cnnlab.settings import check_setting


class UserError(Exception):
    """A mistake found before Hydra starts."""

    is_user_error = True
    exit_code = 2



def _launcher(args: Sequence[str]) -> str:
    """The Hydra launcher the command line names (hydra/launcher=NAME), or "" for Hydra's basic one."""
    return next((a.split("=", 1)[1] for a in args if a.startswith("hydra/launcher=")), "")



def check_sweep_values(typed: Sequence[str], command: str, config_dirs: Sequence[Path] = ()) -> None:
    """Every typed value of a sweep (`optim.lr=0.01,abc`, `seed=range(3)`, and the fixed ones beside them) checked by
    its setting's rule before the first job: each job checks its own when it starts, so a bad value in the sweep was
    refused only after the jobs before it had trained (probe 74); a sweep of no value (`seed=range(0,-2)`) launched
    nothing and said nothing (probe 75). Sweeps that cannot be listed here (glob, interval: a sweeper's) are left
    to the jobs, but for a glob of a config group's options that matches none of them (`model=glob(xyz*)`: 0 jobs,
    exit 0, silence)."""
    from hydra.core.override_parser.types import Glob

    parser = override_parser()
    for text in typed:
        try:
            override = parser.parse_override(quote_plain_value(text))  # as Hydra gets it (`~/x,~/y` quoted)
            if override.is_delete():
                continue
            key = override.key_or_group
            options = conftree.choices(key, config_dirs) if isinstance(override.value(), Glob) else []
            if isinstance(override.value(), Glob) and key in _FOLDER_KEYS:  # probe 106: told to list values, refused
                _check_folder_sweep(text, key, [], sweep=True)
            if isinstance(override.value(), Glob) and "." in key:  # probe 84: `trainer.epochs=glob(*)`: 0 jobs, exit 0
                raise CnnlabError(f"{text}: glob() picks among a config group's options, and {key} is a setting",
                                  fix=f"list its values ({key}=1,2,3) or a range ({key}=range(1,4))")
            if options:
                if not override.value().filter(options):
                    raise CnnlabError(f"{text} matches none of {key}'s options, so no job would run",
                                      fix=f"match some of {', '.join(options)} (e.g. {key}=glob({options[0][:3]}*))")
                values = override.value().filter(options)
            else:
                values = [parser.parse_override(f"{key}={value}").value()
                          for value in override.sweep_string_iterator()] if override.is_sweep_override() \
                    else [override.value()]
        except (CnnlabError, UserError):
            raise
        except Exception:  # noqa: BLE001 - not listable here, or malformed: Hydra says what when the sweep starts
            continue
        if not values:
            raise CnnlabError(f"{text}: the sweep holds no value, so no job would run",
                              fix=f"give it values, e.g. {key}=range(0,3) or {key}=1,2")
        if key in _FOLDER_KEYS:
            _check_folder_sweep(text, key, values, override.is_sweep_override())
        if "." not in key and override.is_sweep_override():
            _say_twins(key, [str(value) for value in values], config_dirs,
                       glob=override.value() if isinstance(override.value(), Glob) else None)
        for value in values:
            check_setting(key, value, command)


_FOLDER_KEYS = ("paths.outputs", "paths.data")


def _check_folder_sweep(text: str, key: str, values: Sequence[Any], sweep: bool) -> None:
    """A UserError for `-m paths.outputs=A,B` (the sweep's folder is set from paths.outputs before any job, so every
    job wrote into ./outputs while recording A or B: `latest` in a job looked elsewhere) and for a swept folder
    written with ~ (a single run refuses it, check_typed_folders; the sweep ran)."""
    if key == "paths.outputs" and sweep:
        raise UserError(f"{text}: a sweep's runs all go into one folder, chosen from paths.outputs before its first "
                        "job — run one sweep per outputs folder (CNNLAB_OUTPUTS=DIR cnnlab ... -m)")
    for value in values:
        if isinstance(value, str):
            _refuse_tilde(text, key, value)


# what a job of each command may start from a run by (`latest` among them)
_RUN_REFERENCES = ("model.weights", "teacher.weights", "student.weights", "source")



def check_sweep_subdir(typed: Sequence[str]) -> None:
    """A UserError for a sweep's typed `hydra.sweep.subdir`: cnnlab names each job's folder itself (its number;
    `<n>-again<j>` for a later attempt, app.job_subdir), so that no job writes over another run. A constant one put
    both jobs in one folder, one interpolating another setting (`${dataset.name}`) too, and even `job${hydra.job.num}`
    lets `rerun=true` write over the first attempt (probes 94, 95)."""
    for text in typed:
        key, _, value = text.lstrip("+").partition("=")
        if key == "hydra.sweep.subdir":
            raise UserError(f"{text}: cnnlab names each job's folder in the sweep folder itself (its number, and "
                            "<number>-again<j> for a later attempt) so that no job writes over another's run — drop "
                            "hydra.sweep.subdir; hydra.sweep.dir=DIR chooses the sweep's folder")


def check_sweep_latest(typed: Sequence[str], command: str) -> None:
    """A UserError for a sweep whose jobs would read each other's runs: `latest` (any command's newest model) or
    `latest:COMMAND` typed for a sweep of COMMAND names, for job 1, the run job 0 just made (probe 92: a 2-seed
    `finetune -m model.weights=latest seed=0,1` fine-tuned seed 1 from seed 0's model, reported as two seeds)."""
    from cnnlab.runs import MODEL_MAKERS  # a table; runs' heavier parts are not imported here

    makes_models = any(command in makers for makers in MODEL_MAKERS.values()) and _more_than_one_job(typed)
    for text in typed:
        key, _, value = text.lstrip("+").partition("=")
        # a word `latest` or `latest:COMMAND` anywhere in the value: quoted (probe 94), or in choice(...) (probe 95)
        named = {m.group(1) for m in re.finditer(r"(?<![\w/.-])latest(?::(\w+))?(?![\w/.-])", value)}
        if key in _RUN_REFERENCES and makes_models and (None in named or command in named):
            raise UserError(f"{text}: in a sweep, each job's `{command}` run is the newest one for the next job, so "
                            "its jobs would start from each other's models — name the run instead "
                            f"({key}=RUN_FOLDER, see `cnnlab list runs`), or drop -m")



def _more_than_one_job(typed: Sequence[str]) -> bool:
    """Whether the typed overrides sweep to more than one job (`-m seed=0` is one: nothing to clash with, probe 95);
    True where a sweep cannot be counted here (a glob, an interval)."""
    parser = override_parser()
    for text in typed:
        try:
            override = parser.parse_override(text)
            if override.is_sweep_override() and len(list(override.sweep_string_iterator())) > 1:
                return True
        except Exception:  # noqa: BLE001 - not listable here: assume it sweeps
            return True
    return False


def _say_twins(group: str, options: Sequence[str], config_dirs: Sequence[Path], *, glob: Any = None) -> None:
    """A warning line for a sweep over an option and its alias (`model=glob(*)` holds mobilenet and mobilenet_v2):
    the same network runs twice, under two names in the report. `glob`: the typed Glob, whose own patterns the fix
    keeps (probe 92: `glob(mobile*)` was offered `glob(*,exclude=mobilenet)`, all 14 models)."""
    for alias, kept in conftree.twins(group, options, config_dirs).items():
        if glob is not None:
            excluded = ",".join([*glob.exclude, alias])
            fix = f" (e.g. {group}='glob({','.join(glob.include)},exclude=[{excluded}])')"
        else:
            fix = " from the list"
        sys.stderr.write(f"warning: {group}={alias} is {group}={kept} under another name, so this sweep runs it "
                         f"twice — drop {alias}{fix}\n")



def check_sweep_flags(args: Sequence[str], multirun: bool) -> None:
    """What a sweep (-m) cannot run with, as one line before Hydra starts: --cfg or --info (Hydra: "Only one of
    --run, --multirun, --cfg, --info ...", a traceback), and a SLURM launcher (hydra/launcher=submitit_slurm,
    slurm_cpu, slurm_gpu) on a machine without SLURM (submitit: 'Could not detect "srun"', a traceback)."""
    import shutil

    if not multirun:
        return
    shown = next((a.split("=", 1)[0] for a in args if a.split("=", 1)[0] in ("--cfg", "-c", "--info", "-i")), None)
    if shown:
        raise UserError(f"{shown} shows one run's configuration and cannot be combined with -m — drop -m (with "
                        f"one value per key) to see it, or drop {shown} to run the sweep")
    launcher = _launcher(args)
    if "slurm" in launcher and shutil.which("srun") is None:
        raise UserError(f"hydra/launcher={launcher} submits the jobs to SLURM, and this machine has no SLURM (no srun "
                        "on the PATH) — run the command on the cluster's login node, or try the sweep here with "
                        "hydra/launcher=submitit_local")



# Values a file's aliases may expand it to: cnnlab's largest composed config has a few hundred; 10^5 values took 39 s
# to compose and 10^6 did not finish in 150 s at 2.8 GB (probe 150: a 300-byte "billion laughs").
MAX_CONFIG_VALUES = 20_000


def check_config_sizes(config_dirs: Sequence[Path], most: int = 2000) -> None:
    """A UserError naming the YAML file under a user's `config_dirs` (the first `most`) whose aliases expand it to
    more than MAX_CONFIG_VALUES values, ten times those it writes: composing it would take minutes and gigabytes
    (conftree.yaml_shape counts them without expanding). A file that writes its many values out is its author's."""
    for path in conftree.user_config_files(config_dirs, most):
        with contextlib.suppress(OSError):
            if "*" not in path.read_text(errors="replace"):  # no alias: nothing expands (and PyYAML's parser takes
                continue  # seconds over a deep file, which the recursion check names if it is too deep)
        _, values, written = conftree.yaml_shape(path)
        if values > max(MAX_CONFIG_VALUES, 10 * written):
            raise UserError(f"{path} expands, through its aliases (*name), to {values:,} values, more than a config "
                            f"holds (at most {MAX_CONFIG_VALUES:,} here): reading it would take minutes and "
                            "gigabytes — write the values it needs without aliases of aliases")


def check_launcher_has_a_sweep(launcher: str | None, multirun: bool) -> None:
    """A launcher chosen (the composed `hydra/launcher` choice: typed, or a --config-dir experiment's `override
    /hydra/launcher`, probe 150) without -m: Hydra uses no launcher for one run, so it would run here (probe 148:
    `hydra/launcher=slurm_gpu` trained on the login node, exit 0, without a word). Raises CnnlabError."""
    if not multirun and launcher not in (None, "", "basic"):
        raise CnnlabError(f"hydra/launcher={launcher} launches the jobs of a sweep (-m), and without -m Hydra runs "
                          "this one here, on this machine", fix="add -m (a sweep with one value per key is one job), "
                                                               "or drop the launcher (hydra/launcher=, or an "
                                                               "experiment file's override of it)")


def wait_for_submitit_controllers(args: Sequence[str], timeout_s: float = 5.0) -> None:
    """After a Ctrl-C of a submitit_local sweep: wait (at most `timeout_s`) for this process's children, submitit's
    job controllers. They take the same Ctrl-C, stop their jobs (each keeps its last.pt) and print
    their own KeyboardInterrupt traceback; waiting puts cnnlab's line (what to type next) after those, last."""
    import time

    if "submitit" not in _launcher(args):
        return
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            if os.waitpid(-1, os.WNOHANG) == (0, 0):
                time.sleep(0.05)
        except ChildProcessError:  # none left
            return



def check_run_dir_is_new(typed: Sequence[str], multirun: bool) -> tuple[Path, list[Path], frozenset[str]] | None:
    """`hydra.run.dir=DIR` naming a folder that already holds a run: Hydra would overwrite its .hydra/ and the run
    record its run.json (a completed run's metrics, which source= and the report read), even for a run refused at
    once (probe 60). A run never writes into another run's folder. Returns the typed folder, the folders of it and
    above it that do not exist yet, and the names the folder holds already (hidden files, empty folders: nothing a
    run writes, or it is refused above): a run refused before its work leaves them as they were (app.main), so that
    the same command, its typo mended, may use that folder (a folder holding .gitkeep kept the refused run's record,
    and the mended command was refused: "that folder already holds a run")."""
    if multirun:
        return None
    named = None
    for override, folder in _typed_folders(typed, "hydra.run.dir"):
        refuse_unmakeable_folder(override, Path(folder))  # before app.main resolves it (a link loop raised there)
        refuse_taken_run_dir(override, Path(folder))
        absolute = Path(os.path.abspath(folder))
        if not absolute.exists() or absolute.is_dir():
            before = frozenset(p.name for p in absolute.iterdir()) if absolute.exists() else frozenset()
            named = absolute, [p for p in (absolute, *absolute.parents) if not p.exists()], before
    return named



def refuse_taken_run_dir(override: str, folder: Path) -> None:
    """A UserError for a run folder that holds a run, lies inside one, or holds a sweep or runs below it (probe 133:
    a run written into a sweep's folder stopped that sweep continuing; one into outputs/ made every run below it
    "inside a run"): a run's folder is its own. `override`: how the folder was given, for the message."""
    if (folder / "run.json").exists():
        raise UserError(f"{override}: that folder already holds a run (its run.json), which this run would "
                        "overwrite — give a new folder, or leave hydra.run.dir out (each run gets its own)")
    _refuse_inside_a_run(override, folder, "hydra.run.dir")
    held = "a sweep (its multirun.yaml)" if (folder / "multirun.yaml").exists() else \
        "runs in folders below it" if _holds_runs(folder) else None
    if held is not None:
        raise UserError(f"{override}: that folder holds {held}, and a run's folder is its own — give a new folder, "
                        "or leave hydra.run.dir out (each run gets its own)")
    yours = _visible_names(folder, written=(".hydra",))
    if yours:  # probe 161: `predict … hydra.run.dir=results` replaced the user's own predictions.csv without a word
        raise UserError(f"{override}: that folder already holds {_first_names(yours)}, and a run writes its files "
                        "(run.json, model.pt, predictions.csv, …) into its own folder, replacing any of the same "
                        "name — give a new or empty folder, or leave hydra.run.dir out (each run gets its own)")


def _first_names(names: Sequence[str]) -> str:
    """'a, b, c' or 'a, b, c and 4 more'."""
    return ", ".join(names[:3]) + (f" and {len(names) - 3} more" if len(names) > 3 else "")


def _visible_names(folder: Path, *, written: Sequence[str] = ()) -> list[str]:
    """The sorted names in `folder` that are not hidden (a leading dot: .gitkeep, .DS_Store) and hold something — a
    file, or a folder with a file somewhere below it (probe 169: empty folders `a/b/c` were refused, and nothing of
    them could be lost) — with those of the hidden `written` (names Hydra writes: a run's `.hydra/`, probe 169:
    another Hydra app's .hydra/config.yaml was replaced) that exist; [] for no folder."""
    try:
        entries = list(os.scandir(folder))
    except OSError:
        return []
    return sorted(entry.name for entry in entries
                  if (not entry.name.startswith(".") or entry.name in written) and _holds_a_file(entry.path))


def _holds_a_file(path: str) -> bool:
    """Whether `path` is a file (or a link: what it leads to is not looked into), or a folder with one below it."""
    if os.path.islink(path) or not os.path.isdir(path):
        return True
    return any(files for _, _, files in os.walk(path))


def refuse_unmakeable_folder(override: str, folder: Path) -> None:
    """A UserError for a run or sweep folder Hydra could not make or write: a file, a dangling link or a link loop
    where one of its folders belongs, or a nearest existing folder this process cannot write in — tried by making
    and removing a folder there, since the permission bits do not tell root on /proc, /sys or a root-squashed NFS
    share (probes 136, 137: Hydra's mkdir raised PermissionError, NotADirectoryError, FileNotFoundError, and
    app.main's resolve() a link loop's RuntimeError — tracebacks read as bugs in cnnlab). `override`: how the
    folder was given."""
    key = override.split("=", 1)[0]
    existing = next((p for p in (folder, *folder.parents) if p.exists() or p.is_symlink()), None)
    if existing is None:
        return
    if existing.is_symlink() and not existing.exists():
        raise UserError(f"{override}: cannot create that folder: {existing} {why_missing(existing)} — mend or "
                        f"remove the link, or give {key} another folder")
    if not existing.is_dir():
        raise UserError(f"{override}: cannot create that folder: {existing} is a file, not a folder — move or rename "
                        f"it, or give {key} another folder")
    try:
        os.rmdir(tempfile.mkdtemp(prefix=".cnnlab-write-check-", dir=existing))
    except OSError as exc:
        why = "permission denied" if isinstance(exc, PermissionError) else (exc.strerror or str(exc)).lower()
        raise UserError(f"{override}: cannot write in {existing} ({why}) — give {key} a folder you can "
                        "write") from None


def _holds_runs(folder: Path, depth: int = 4, budget: int = 20_000) -> bool:
    """Whether a run.json lies in a folder up to `depth` levels below `folder` (outputs/<command>/<date>/<time>/ is
    4), looking at no more than `budget` entries: a home folder given as a run folder is not walked whole."""
    level, seen = [folder], 0
    for _ in range(depth):
        below = []
        for parent in level:
            with contextlib.suppress(OSError), os.scandir(parent) as entries:
                for entry in entries:
                    seen += 1
                    if seen > budget:
                        return False
                    if entry.is_dir(follow_symlinks=False):
                        if os.path.isfile(os.path.join(entry.path, "run.json")):
                            return True
                        below.append(Path(entry.path))
        level = below
    return False


def refuse_taken_sweep_dir(override: str, folder: Path, task: Sequence[str]) -> None:
    """A UserError for a sweep folder that holds a run, lies inside one, holds another sweep (one of other fixed
    settings: Hydra would replace its multirun.yaml and mix the two experiments' jobs), or holds files of yours and no
    sweep. `task`: this sweep's task overrides, as Hydra records them."""
    if (folder / "run.json").exists():  # the jobs' folders would land inside that run's, changing it
        raise UserError(f"{override}: that folder holds a run (its run.json), not a sweep, and a run's folder is "
                        "never written into — give a new folder, or leave hydra.sweep.dir out (each sweep "
                        "gets its own)")
    _refuse_inside_a_run(override, folder, "hydra.sweep.dir")
    earlier = _sweep_task(folder) if folder.is_dir() else None
    yours = _visible_names(folder) if earlier is None and not (folder / "multirun.yaml").exists() else []
    if yours:  # probe 167: `predict -m … hydra.sweep.dir=s3` replaced the user's own s3/0/predictions.csv
        raise UserError(f"{override}: that folder already holds {_first_names(yours)}, and a sweep writes its "
                        "jobs' folders (0/, "
                        "1/, …) and their files into it, replacing any of the same name — give a new or empty "
                        "folder, or leave hydra.sweep.dir out (each sweep gets its own)")
    if earlier is not None and not _same_experiment(_settings_of(earlier), _settings_of(task)):
        shown = " ".join(t for t in earlier if not t.startswith("command="))
        raise UserError(f"{override}: that folder holds another sweep ({shown}), whose record (multirun.yaml) "
                        "this one would replace, its jobs mixed with that sweep's — give a new folder, or leave "
                        "hydra.sweep.dir out (each sweep gets its own)")


def check_typed_choices_read(typed: Sequence[str], config_dirs: Sequence[Path]) -> None:
    """A typed group choice (`hydra/launcher=slurm_cpu`) whose --config-dir file cnnlab's own of that name hides:
    refused before Hydra launches anything — a launcher's is read before any job, so the job's own check came after
    the jobs went to cnnlab's partition and time limit (probe 100)."""
    choices = {}
    for override in typed:
        key, sep, value = override.partition("=")
        key = key.lstrip("+~")
        if sep and (conftree.CONF_DIR / key).is_dir():  # a group (dataset=, hydra/launcher=), not a setting
            choices[key] = value
    shadowed = conftree.shadowed_file(choices, config_dirs)
    if shadowed is not None:
        message, fix = conftree.shadowed_message(*shadowed)
        raise UserError(f"{message} — {fix}")


def refuse_chdir(shown: str, chdir: Any) -> None:
    """`hydra.job.chdir` true, however it was set (typed, `hydra.job={chdir:true}`, an experiment file: folder_guard
    sees the composed value): the job would run inside its run folder, where every relative path the user typed
    (dataset.root=imgs, a source folder) and outputs/ itself (latest:, source= lookups) are read from — "dataset.root
    imgs does not exist", "matches no run", neither naming chdir (probe 130). cnnlab writes every file of a run into
    its run folder without it. `shown`: how it was set, for the message."""
    if chdir is True or str(chdir).strip().lower() in ("true", "1", "yes", "on"):
        raise UserError(f"{shown}: cnnlab reads relative paths (dataset.root=DIR, source=, its outputs folder) from "
                        "the folder you start it in, and a run's files already go into its run folder — drop it "
                        "(or set hydra.job.chdir=false)")


def check_typed_folders(typed: Sequence[str]) -> None:
    """`paths.outputs=~/runs` (or paths.data): Hydra does not expand ~, and neither does the shell inside a word, so
    the runs went to a folder named ~ here, where CNNLAB_OUTPUTS='~/runs' is the home folder's (probe 100)."""
    for key in ("paths.outputs", "paths.data"):
        for _ in _typed_folders(typed, key):  # refuses a folder written with ~
            pass


def _refuse_inside_a_run(override: str, folder: Path, key: str) -> None:
    """A UserError for a folder inside another run's folder (`hydra.run.dir=RUN/inner`, probe 92): a run's folder is
    never written into, and a run inside it would be read as part of it."""
    for parent in Path(os.path.abspath(folder)).parents:
        if (parent / "run.json").is_file():
            raise UserError(f"{override}: that folder lies inside the run {parent}, whose folder is never written "
                            f"into — give a folder outside it, or leave {key} out (each "
                            f"{'sweep' if key == 'hydra.sweep.dir' else 'run'} gets its own)")



def run_dir_in_use(typed: Sequence[str]) -> tuple[str, str] | None:
    """The typed `hydra.run.dir=DIR` and DIR (as Hydra reads it) where DIR holds a run's record now — a stopped run's:
    the same command typed again is refused there (refuse_taken_run_dir); None otherwise."""
    return next(((override, folder) for override, folder in _typed_folders(typed, "hydra.run.dir")
                 if (Path(folder) / "run.json").is_file()), None)


def _typed_folders(typed: Sequence[str], key: str) -> Iterator[tuple[str, str]]:
    """(override, the folder Hydra reads from it) for each typed `key=DIR` whose folder can be told before
    composing. UserError for a folder written with ~, which Hydra does not expand: `hydra.run.dir=~/x` is a folder
    named "~" here (a `rm -rf ~` trap later)."""
    for override in typed:
        if override.lstrip("+").partition("=")[0] != key or (folder := _folder_hydra_reads(override)) is None:
            continue
        _refuse_tilde(override, key, folder)
        yield override, folder


def _refuse_tilde(override: str, key: str, folder: str) -> None:
    """A UserError for a folder written with ~, typed or swept: Hydra does not expand it (nor does the shell inside a
    word), so `key=~/x` is a folder named "~" in the working folder (a `rm -rf ~` trap later)."""
    if folder.startswith("~"):
        raise UserError(f"{override}: Hydra does not expand ~, so {folder} is a folder named '~' in {Path.cwd()} — "
                        f"write the full path ({key}=$HOME{folder[1:]}, unquoted)")



def check_sweep_dir_is_free(typed: Sequence[str], task: Sequence[str], multirun: bool) -> None:
    """`-m hydra.sweep.dir=DIR` naming the folder of another sweep, one with other fixed settings: Hydra would
    replace that sweep's record (multirun.yaml) and mix the two experiments' jobs in one folder (probe 61: before
    the `<n>-again<j>` job folders, it wrote over the job records too). The same sweep, its values reordered or
    extended (`seed=0,1` then `seed=0,1,2`), continues in DIR: its completed jobs are skipped, and a job never
    writes over another's folder (app.job_subdir). `task`: the non-Hydra overrides this sweep hands to Hydra."""
    if not multirun:
        return
    for override, folder in _typed_folders(typed, "hydra.sweep.dir"):
        refuse_taken_sweep_dir(override, Path(folder), task)



def _settings_of(task: Sequence[str]) -> dict[str, str | None]:
    """A sweep's task overrides as key → value, None for a swept key (`seed=0,1`, `seed=range(3)`). An override
    Hydra cannot parse stands as typed (Hydra's own error follows when it parses the command line)."""
    parser, settings = override_parser(), {}
    for text in task:
        try:
            parsed = parser.parse_override(text)
            settings[parsed.get_key_element()] = None if parsed.is_sweep_override() \
                else parsed.get_value_element_as_str()
        except Exception:  # noqa: BLE001
            settings[text] = ""
    return settings



def _same_experiment(one: dict[str, str | None], other: dict[str, str | None]) -> bool:
    """The same keys, and the same value for each key neither sweeps: `seed=0,1`, `seed=1,0,2` and `seed=7` of one
    recipe are one experiment, over more seeds; `trainer.epochs=3` for 2 is another."""
    return one.keys() == other.keys() and all(one[k] is None or other[k] is None or one[k] == other[k] for k in one)



def is_task_override(override: str) -> bool:
    """A setting of the jobs, as Hydra records it in multirun.yaml: not Hydra's own (`hydra.sweep.dir=`,
    `hydra/launcher=`), nor the launch option `rerun=` (cnnlab.app takes it off the command line)."""
    key = override.lstrip("+~").partition("=")[0]
    return not (key in ("hydra", "rerun") or key.startswith(("hydra.", "hydra/")))



def _sweep_task(folder: Path) -> list[str] | None:
    """The task overrides of the sweep Hydra recorded in `folder` (multirun.yaml `hydra.overrides.task`); None
    when there is none, or it cannot be read (an unreadable record is another sweep's)."""
    import yaml

    record = folder / "multirun.yaml"
    if not record.is_file():
        return None
    try:
        task = ((yaml.safe_load(record.read_text(encoding="utf-8")) or {}).get("hydra") or {})["overrides"]["task"]
    except Exception:  # noqa: BLE001 - untrusted file: anything unreadable is not this sweep
        return ["(unreadable multirun.yaml)"]
    return [str(t) for t in task] if isinstance(task, list) else ["(unreadable multirun.yaml)"]



def _folder_hydra_reads(override: str) -> str | None:
    """The folder `hydra.run.dir=...` names as Hydra reads it (after cnnlab's own quoting, hydra_args): its quoting
    and escapes (`runs/e\\ 2`), and the resolvers it may use (`${oc.env:PWD}/runs`, `${now:%H-%M}`). None when it
    cannot be told before composing (it interpolates another setting). Probe 61: the typed text, checked as it
    stood, let three spellings through."""
    import hydra.core.utils  # noqa: F401 - registers Hydra's `now` resolver
    from omegaconf import OmegaConf

    try:
        value = override_parser().parse_override(quote_plain_value(override.lstrip("+"))).value()
        return str(OmegaConf.create({"folder": value}).folder) if isinstance(value, str) else None
    except Exception:  # noqa: BLE001 - a value Hydra itself will refuse or resolve only once composed
        return None
