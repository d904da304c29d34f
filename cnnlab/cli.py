"""The `cnnlab` command line: Typer owns help and a few conveniences, Hydra owns configuration.

`cnnlab finetune k=v ...` becomes the Hydra argv `command=finetune k=v ...` and runs through the
single @hydra.main in cnnlab.app, so multirun, --cfg, --config-dir and launchers all keep working.
This module must not import torch or onnxruntime: `cnnlab --help` stays fast.
"""

from __future__ import annotations

import contextlib
import os
import re
import signal
import sys
import traceback
from pathlib import Path
from typing import Any, NoReturn, Optional, Sequence

import typer
from rich.panel import Panel
from rich.table import Table
from rich.text import Text
from typer.core import TyperCommand, TyperGroup

from cnnlab import __version__, conftree
from cnnlab.commands import COMMANDS, HYDRA_FLAGS_HELP, interrupt_hint, stage_rerun_note
from cnnlab.console import HeldSweepFailureLine, debug_enabled, out, print_error, tolerate_narrow_encodings
from cnnlab.environment import launched_ranks
from cnnlab.errors import exception_chain
from cnnlab.fileio import NOT_A_REGULAR_FILE
from cnnlab.hydra_args import HYDRA_VALUE_FLAGS, hydra_overrides, hydra_quoted, override_parser
from cnnlab.launch_checks import (UserError, check_config_sizes, check_run_dir_is_new, check_sweep_dir_is_free,
                                   check_sweep_flags, check_sweep_latest, check_sweep_subdir, check_sweep_values,
                                   check_typed_choices_read, check_typed_folders, is_task_override, run_dir_in_use,
                                   wait_for_submitit_controllers)
from cnnlab.settings import check_added_keys, check_nothing_deleted, check_sections_read, resumed_by, setting_facts

# Click's UsageError, whichever Click Typer runs on (a copy of its own since Typer 0.2x, the click package before)
_USAGE_ERROR: type[Exception] = next(c for c in typer.BadParameter.__mro__ if c.__name__ == "UsageError")


class CnnlabGroup(TyperGroup):
    """The `cnnlab` group: Click's usage errors (an unknown command or option, a missing argument or value — of
    `cnnlab` itself here, of `list` and `report` in CnnlabCommand) are one line with the way on, as cnnlab's own
    errors are: Typer drew each in a box under a usage block, and "No such command" named none."""

    def parse_args(self, ctx: typer.Context, args: list[str]) -> list[str]:
        try:
            return super().parse_args(ctx, args)
        except _USAGE_ERROR as error:
            _usage_error(error, ctx)

    def resolve_command(self, ctx: typer.Context, args: list[str]) -> Any:
        try:
            return super().resolve_command(ctx, args)
        except _USAGE_ERROR as error:
            _usage_error(error, ctx, commands=self.list_commands(ctx))


class CnnlabCommand(TyperCommand):
    """A command whose options Typer parses (`list`, `report`; HydraCommand's own flags such as --device): its usage
    errors are one line (CnnlabGroup)."""

    def parse_args(self, ctx: typer.Context, args: list[str]) -> list[str]:
        try:
            return super().parse_args(ctx, args)
        except _USAGE_ERROR as error:
            _usage_error(error, ctx)


def _usage_error(error: Any, ctx: typer.Context, commands: Sequence[str] = ()) -> NoReturn:
    """Print Click's usage `error`, met parsing `ctx`'s command, as cnnlab's one line: for an unknown command, the
    one meant (Typer's guess) or the `commands` there are; else the help that lists what the command takes."""
    message = error.format_message().rstrip(".")
    message = message[:1].lower() + message[1:]
    if commands:
        unknown, _, guess = message.partition(". Did you mean ")
        way = f"did you mean {guess}" if guess else f"choose one of {', '.join(commands)}"
        print_error(f"{unknown} — {way} (see `cnnlab --help`)")
    else:
        print_error(f"{message} — see `{ctx.command_path} --help`")
    raise typer.Exit(error.exit_code)


app = typer.Typer(
    name="cnnlab",
    cls=CnnlabGroup,
    help="Transfer learning and CNN compression from the command line: train, fine-tune, prune, quantize, "
         "distill, export to ONNX and measure latency — one honest table of accuracy x size x latency.",
    no_args_is_help=True,
    add_completion=False,
    rich_markup_mode="rich",
    context_settings={"help_option_names": ["-h", "--help"]},
)

# `--info` takes one of these or none (Hydra's nargs="?", "all" then): bare, it took the `command=` cnnlab puts after
# the flags as its value, "invalid choice: 'command=pretrain'" (probe 99)
_INFO_FLAGS, _INFO_CHOICES = {"--info", "-i"}, ("all", "config", "defaults", "defaults-tree", "plugins", "searchpath")
# `--cfg` takes one of these; argparse said so in a page of usage text
_CFG_FLAGS, _CFG_CHOICES = {"--cfg", "-c"}, ("job", "hydra", "all")
# what each value flag's one-line refusal shows as its value when none follows (probe 167: the `command=` cnnlab puts
# after the flags became it — "Additional config directory '.../command=pretrain' not found")
_VALUE_EXAMPLES = {"--cfg": "job", "-c": "job", "--package": "_global_", "-p": "_global_", "--config-dir": "myconf",
                   "-cd": "myconf", "--config-name": "config", "-cn": "config", "--config-path": "myconf",
                   "-cp": "myconf", "--experimental-rerun": "outputs/RUN/.hydra/config.pickle"}
# Every flag Hydra's argparse knows (hydra._internal.utils.get_args_parser); any other would print its usage page.
_HYDRA_FLAGS = HYDRA_VALUE_FLAGS | {"--help", "-h", "--hydra-help", "--version", "--resolve", "--run", "-r",
                                    "--multirun", "-m", "--shell-completion", "-sc"}
# ctx.meta keys HydraCommand.parse_args fills: how many trailing args followed `--`; single-dash words Click splits
_AFTER_DASHES, _SPLIT_WORDS = "cnnlab.after_dashes", "cnnlab.split_words"
_OVERRIDE = re.compile(r"^(?P<prefix>[+~]{0,2})(?P<key>[\w./@-]+)(?:=(?P<value>.*))?$", re.S)


class HydraCommand(CnnlabCommand):
    """Typer's help, followed by the config groups with their choices and the command's own settings."""

    def format_help(self, ctx: Any, formatter: Any) -> None:
        super().format_help(ctx, formatter)
        # `--config-dir DIR --help`: DIR's choices too, as its help text promises (probe 130: they were left out)
        _print_config_help(self.name or "", _config_dirs(sys.argv[1:]))

    def parse_args(self, ctx: Any, args: list[str]) -> list[str]:
        end = args.index("--") if "--" in args else len(args)
        # Hydra's `-p=model`, `-cd=myconf`: Click reads a single-dash word as short options (the `m` of "model" as -m,
        # -cd=myconf as -c "d=myconf"...: probe 172), so the flag and its value go to it as two words, as argparse
        # reads them
        args = [part for arg in args[:end] for part in _flag_and_value(arg)] + args[end:]
        end = args.index("--") if "--" in args else len(args)
        # Click reads `-name.png` as the short options -n -a -m (multirun!) ...: remember the word as typed
        ctx.meta[_SPLIT_WORDS] = [a for a in args[:end] if a[:1] == "-" and a[:2] != "--" and len(a) > 2
                                  and a.split("=", 1)[0] not in _HYDRA_FLAGS]
        after = args[end + 1:]  # Click drops `--` and passes what follows last: never options
        rest = super().parse_args(ctx, list(args))  # (Click pops from the list it is given)
        ctx.meta[_AFTER_DASHES] = len(after) if after and rest[-len(after):] == after else 0
        return rest


def _flag_and_value(arg: str) -> list[str]:
    """`-p=model` as ["-p", "model"] for a single-dash Hydra flag that takes a value; any other word as it is."""
    flag, sep, value = arg.partition("=")
    return [flag, value] if sep and flag[:1] == "-" and flag[:2] != "--" and flag in HYDRA_VALUE_FLAGS else [arg]


def _print_config_help(command: str, extra_dirs: Sequence[Path] = ()) -> None:
    info = COMMANDS[command]
    defaults = conftree.default_choices(command)
    defaults.update(o.split("=", 1) for o in info.default_overrides)  # type: ignore[arg-type]
    table = Table(show_header=False, box=None, pad_edge=False)
    table.add_column(style="bold cyan", no_wrap=True)
    table.add_column()
    for group in (*info.groups, *info.extra_groups):
        default = defaults.get(group)
        options, empty = conftree.choices(group, extra_dirs), "(none yet)"
        if group == "experiment" and command != "pipeline":  # the recipes it would refuse are not its choices
            recipes = [o for o in options if conftree.is_pipeline_recipe(o, extra_dirs)]
            options = [o for o in options if o not in recipes]
            empty = f"(none: {', '.join(recipes)} are `cnnlab pipeline` recipes)" if recipes else empty
        names = [Text(n + ("*" if n == default else ""), style="bold" if n == default else "") for n in options]
        table.add_row(group, Text(" ").join(names) if names else Text(empty))
    out.print(Panel(table, title="Config groups: group=choice (* = default)", title_align="left",
                    border_style="dim"))
    settings = conftree.command_settings_text(command)
    if settings:
        out.print(Panel(Text(settings), title=f"{command} settings (conf/command/{command}.yaml)",
                        title_align="left", border_style="dim"))
    examples = "\n".join(f"$ {e}" for e in info.examples)
    out.print(Panel(Text(f"{examples}\n\n{HYDRA_FLAGS_HELP}"), title="Examples and Hydra",
                    title_align="left", border_style="dim"))


def _config_dirs(args: list[str]) -> list[Path]:
    dirs = []
    for i, arg in enumerate(args):
        if arg in ("--config-dir", "-cd") and i + 1 < len(args):
            dirs.append(Path(args[i + 1]).expanduser())
        elif arg.startswith(("--config-dir=", "-cd=")):  # argparse takes -cd=DIR as well (probe 92)
            dirs.append(Path(arg.split("=", 1)[1]).expanduser())
    return dirs


def no_such_option(command: str, arg: str) -> str:
    """The one line for a word that starts with '-' but is no option cnnlab or Hydra knows."""
    if command == "predict":
        return (f"no such option: {arg} — for a file whose name starts with '-', write ./{arg} or put it after -- "
                f"(cnnlab predict source=RUN -- {arg})")
    return f"no such option: {arg} — settings are key=value, e.g. trainer.epochs=3 (see `cnnlab {command} --help`)"


def _closest(typed: str, valid: Sequence[str]) -> str | None:
    """The one valid choice `typed` most likely meant: the same name but for case, `-`, `_` and spaces (VGG11,
    resnet-18, "mobilenet_v2 "), else difflib's nearest close match; None when nothing is close."""
    import difflib

    def squeezed(name: str) -> str:
        return "".join(ch for ch in name.lower() if ch.isalnum())

    same = [name for name in valid if squeezed(name) == squeezed(typed)]
    if len(same) == 1:
        return same[0]
    close = difflib.get_close_matches(typed.lower(), list(valid), n=1, cutoff=0.75)
    return close[0] if close else None


def _read_as_text(choice: str) -> bool:
    """Whether Hydra's override grammar reads `choice` as a string (`1`, `2.5`, `nan`, `inf`, `true` are not: a
    config group given one fails inside Hydra with a ValueError)."""
    try:
        return isinstance(override_parser().parse_override(f"key={choice}").value(), str)
    except Exception:  # noqa: BLE001 - not ours to judge: Hydra's own message follows
        return True


def check_overrides(command: str, args: list[str]) -> None:
    """Catch the common mistakes with a one-line message before Hydra prints a page of text."""
    extra_dirs = _config_dirs(args)
    if len(extra_dirs) > 1:  # Hydra keeps the last --config-dir and drops the others without a word
        raise UserError(f"--config-dir is given {len(extra_dirs)} times ({', '.join(map(str, extra_dirs))}), and "
                        f"Hydra reads only the last — put the files of all of them into one folder (its "
                        f"<group>/<name>.yaml layout) and give that one")
    for folder in extra_dirs:  # Hydra skips a missing one silently; its groups then look "unknown"
        if not folder.is_dir():
            raise UserError(f"--config-dir {folder} is not a folder — give the folder that holds your "
                            f"<group>/<name>.yaml files (e.g. --config-dir myconf for myconf/dataset/birds.yaml)")
    groups = conftree.group_dirs(extra_dirs)
    skip_next = False
    for arg in args:
        if skip_next:
            skip_next = False
            continue
        if arg.startswith("-"):
            if arg.split("=", 1)[0] not in _HYDRA_FLAGS:  # else Hydra's argparse prints its usage page
                raise UserError(no_such_option(command, arg))
            skip_next = arg in HYDRA_VALUE_FLAGS
            continue
        match = _OVERRIDE.match(arg)
        if not match or (match["value"] is None and not match["prefix"].startswith("~")):
            raise UserError(f"malformed override '{arg}' — write key=value, e.g. trainer.epochs=3 "
                            f"(see `cnnlab {command} --help`)")
        key, value = match["key"], match["value"]
        if key == "command":
            raise UserError(f"command= is set by the CLI — run `cnnlab {value} ...` instead")
        if key not in groups or value is None or match["prefix"]:
            continue
        owners = conftree.commands_using(key)
        if owners and command not in owners:  # Hydra would say "No match in the defaults list"
            then = f"start from its run (e.g. source= or model.weights=latest:{owners[0]})"
            if command == "finetune":  # it takes no source= (probe 157: the fix named one)
                then = f"start from its run (model.weights=latest:{owners[0]})"
            if key == "method" and command != "finetune":  # a backbone whose head no step trained (probe 143)
                then = ("fine-tune its backbone (`cnnlab finetune model.weights=latest:pretrain`), and start from "
                        "that run (latest:finetune)")
            raise UserError(f"{key}={value} is a setting of `cnnlab {' / '.join(owners)}`; `cnnlab {command}` has "
                            f"no {key} — run `cnnlab {owners[0]} {key}={value}` first and {then}")
        if any(ch in value for ch in "()[]{}$*"):  # sweep functions and interpolations: Hydra's job
            continue
        valid = conftree.choices(key, extra_dirs)
        choices = value.split(",")
        for choice in choices:
            quoted = len(choice) > 1 and choice[0] == choice[-1] and choice[0] in "'\""
            choice = choice[1:-1] if quoted else choice
            if choice == "null" and not quoted and "null" not in valid:  # Hydra: "Got NoneType", a traceback
                raise UserError(f"{key}=null leaves the command with no {key} — choose one of: {', '.join(valid)}")
            irregular = conftree.irregular_choice(key, choice, extra_dirs) if choice and choice != "null" else None
            if irregular is not None:
                what = "a folder" if irregular.is_dir() else "a broken link" if not irregular.exists() \
                    else NOT_A_REGULAR_FILE
                raise UserError(f"{key}={choice}: {irregular} is {what}, and Hydra reads only files — put the YAML "
                                f"file itself at {irregular}")
            if choice and choice != "null" and choice not in valid:
                near = _closest(choice, valid)  # probe 181: `model=resnet-18` listed all 14 names, none picked out
                raise UserError(f"unknown {key} '{choice}'{f' (did you mean {key}={near}?)' if near else ''} — "
                                f"choose one of: {', '.join(valid)} (or add {key}/{choice}.yaml in a --config-dir)")
            if choice and not quoted and not _read_as_text(choice):
                # The shell strips quotes: the whole override goes inside double quotes, every such name quoted.
                fixed = ",".join(f"'{c}'" if c and not _read_as_text(c) else c for c in choices)
                raise UserError(f"{key}={choice}: Hydra reads {choice} as a number, a boolean or null, not as the "
                                f"name of {key}/{choice}.yaml — quote it, inside double quotes for the shell: "
                                f"\"{key}={fixed}\"")
            # a list file, named before Hydra starts (files that other files' defaults lists pull in: cnnlab.app)
            problem = conftree.not_a_mapping_at(f"{key}/{choice}", extra_dirs) if choice and choice != "null" else None
            if problem:
                raise UserError(f"{problem} — {conftree.MAPPING_FIX}")


def _takes_value(args: Sequence[str], index: int) -> bool:
    """Whether the flag `args[index]` takes the argument after it as its value."""
    if args[index] in _INFO_FLAGS:
        return index + 1 < len(args) and args[index + 1] in _INFO_CHOICES
    return args[index] in HYDRA_VALUE_FLAGS


def _names_a_path(arg: str) -> bool:
    """Whether a file or folder of that name exists; False for a name the system could not hold (probe 111:
    `predict.inputs=[30 file names]`, over 255 bytes, raised ENAMETOOLONG here)."""
    try:
        return Path(arg).exists()
    except OSError:
        return False


def positional_inputs(args: list[str], after_dashes: Sequence[str] = ()) -> list[str]:
    """`cnnlab predict source=RUN photo.jpg folder/`: the arguments that are paths (existing files or folders,
    or anything without "=") become one `predict.inputs=[...]` override; flags and key=value stay as they are.
    `after_dashes` (what followed `--`) holds no flags: `-- -name.png` is a file."""
    kept, paths, expects_value = [], [], False
    for index, arg in enumerate(args):
        if expects_value or arg.startswith("-"):
            kept.append(arg)
            expects_value = not expects_value and _takes_value(args, index)
        elif "=" in arg and not _names_a_path(arg):
            kept.append(arg)
        else:
            paths.append(arg)
    for arg in after_dashes:
        (kept if "=" in arg and not _names_a_path(arg) else paths).append(arg)
    if not paths:
        return kept
    # `predict.inputs=[a.png]` beside positional files: one list of both (probe 80: the later override replaced the
    # typed list, and a.png went unpredicted with exit 0)
    typed: list[str] = []
    for arg in [arg for arg in kept if arg.lstrip("+").split("=", 1)[0] == "predict.inputs"]:
        try:
            value = override_parser().parse_override(arg).value()
        except Exception:  # noqa: BLE001 - malformed: Hydra says what, as for any override
            continue
        typed += [str(item) for item in (value if isinstance(value, list) else [value]) if item is not None]
        kept.remove(arg)
    paths = [*typed, *paths]  # in the order typed (probe 84: two typed lists came out reversed)
    quoted = ",".join(hydra_quoted(path) for path in paths)
    return [*kept, f"predict.inputs=[{quoted}]"]


def _check_flag_value(command: str, flag: str, value: str | None) -> None:
    """Refuse a Hydra value flag given no value (nothing follows, or another flag does) and `--cfg` given a value
    it does not take, in one line each."""
    if value is None or (value.startswith("-") and value.split("=", 1)[0] in _HYDRA_FLAGS):
        raise UserError(f"{flag} takes a value — e.g. {flag} {_VALUE_EXAMPLES[flag]} (see `cnnlab {command} --help`, "
                        f"Examples and Hydra)")
    if flag in _CFG_FLAGS and value not in _CFG_CHOICES:
        raise UserError(f"{flag} {value}: {flag} takes one of {', '.join(_CFG_CHOICES)} — e.g. {flag} job prints the "
                        f"composed config")


def _check_flag_pairs(command: str, flags: Sequence[str], overrides: Sequence[str]) -> None:
    """Hydra's flags that need another: `--resolve` works with --cfg or --help, `--shell-completion` with its
    subcommand (install=bash, ...) — alone, Hydra raised a ValueError, shown as a bug in cnnlab (probe 172)."""
    names = {flag.partition("=")[0] for flag in flags}
    if "--resolve" in names and not names & {"--cfg", "-c", "--help", "-h"}:
        raise UserError(f"--resolve resolves the config --cfg prints — e.g. `cnnlab {command} --cfg job --resolve`")
    subcommands = ("install", "uninstall", "query")
    if names & {"--shell-completion", "-sc"} and not any(o.partition("=")[0] in subcommands for o in overrides):
        raise UserError(f"--shell-completion takes one of {', '.join(f'{s}=SHELL' for s in subcommands)} — e.g. "
                        f"`cnnlab {command} --shell-completion install=bash`")


def split_flags(command: str, args: list[str]) -> tuple[list[str], list[str]]:
    """Separate Hydra flags (with their values) from key=value overrides, keeping their order."""
    flags, overrides = [], []
    expects_value = False
    for index, arg in enumerate(args):
        if expects_value:
            flags.append(arg)
            expects_value = False
        elif arg.startswith("-"):
            flags.append(arg)
            expects_value = _takes_value(args, index)
            if expects_value:
                _check_flag_value(command, arg, args[index + 1] if index + 1 < len(args) else None)
            elif arg.partition("=")[0] in HYDRA_VALUE_FLAGS - _INFO_FLAGS:  # --cfg=job: its value in the word
                _check_flag_value(command, arg.partition("=")[0], arg.partition("=")[2] or None)
            if arg in _INFO_FLAGS and not expects_value:
                following = args[index + 1] if index + 1 < len(args) else ""
                if following and "=" not in following and not following.startswith(("-", "~", "+")):  # --info nosuch
                    raise UserError(f"{arg} {following}: {arg} takes one of {', '.join(_INFO_CHOICES)} (or nothing: "
                                    "all)")
                flags.append("all")  # Hydra's own default, said: the argument after the flags is no value of it
        else:
            overrides.append(arg)
    _check_flag_pairs(command, flags, overrides)
    return flags, overrides


def launch(command: str, args: list[str], *, device: Optional[str], multirun: bool, debug: bool,
           after_dashes: Sequence[str] = (), split_words: Sequence[str] = ()) -> None:
    """Hand a command to the Hydra entry point; turn every user mistake into one line and an exit code.
    after_dashes: the arguments that followed `--`; split_words: `-word`s Click took for short options."""
    if debug:
        os.environ["CNNLAB_DEBUG"] = "1"
    # Let exceptions reach us so we decide how they look (one line, or a traceback with --debug).
    os.environ["HYDRA_FULL_ERROR"] = "1"
    if split_words:
        raise typer.Exit(_show_error(UserError(no_such_option(command, split_words[0])), command))
    args = positional_inputs(args, after_dashes) if command == "predict" else [*args, *after_dashes]
    try:
        flags, typed = split_flags(command, args)
    except UserError as refused:
        raise typer.Exit(_show_error(refused, command))
    if multirun:
        flags.append("--multirun")
    # Hydra's own help composes its help config alone: `command=` there read "Could not override 'command'" (probe 130)
    overrides = [] if "--hydra-help" in flags else hydra_overrides(command, typed, device)
    code = 0
    stderr = sys.stderr
    held = HeldSweepFailureLine(stderr) if multirun else None
    device_option = ["--device", device] if device else []  # a fix that repeats the line keeps it
    try:
        check_overrides(command, args)
        named_run_dir = check_run_dir_is_new(typed, multirun)
        check_typed_folders(typed)
        check_config_sizes(_config_dirs(args))  # before Hydra composes: an alias bomb would hang it
        check_typed_choices_read(typed, _config_dirs(args))
        check_sweep_dir_is_free(typed, [o for o in overrides if is_task_override(o)], multirun)
        check_sweep_flags(args, multirun)
        # before any job: a sweep refused it once per job
        check_added_keys(typed, command, unknown_too=multirun and not _config_dirs(args))
        if multirun:  # what every job would refuse, refused once before the first (probes 74, 75, 77)
            check_nothing_deleted(typed, command)
            check_sweep_values(typed, command, _config_dirs(args))
            check_sweep_latest(typed, command)
            check_sweep_subdir(typed)
        if command != "pipeline":  # its plan may interpolate a section: checked once composed (pipelines/pipeline)
            check_sections_read(typed, command)
        # Hydra's argparse wants every flag before the positional overrides.
        sys.argv = ["cnnlab", *flags, *overrides]
        from cnnlab.app import main  # heavy imports (torch) only past this point

        sys.stderr = held or stderr
        main(records_run=COMMANDS[command].records_run, named_run_dir=named_run_dir)
    except KeyboardInterrupt as stop:  # Ctrl-C, or SIGTERM (cnnlab.interrupts.Interrupted carries what it knows)
        typed = [*device_option, *(["-m"] if multirun else []), *args]
        if held is not None:
            held.drop()
        wait_for_submitit_controllers(args if multirun else ())
        from cnnlab.runs import PIPELINE_TAG_ENV  # here, not at start-up: the command line starts light

        how, ranks = getattr(stop, "how", "Ctrl-C"), launched_ranks()
        if ranks.rank > 0:  # rank 0 alone writes the checkpoint, so only it knows what there is to continue from
            print_error(f"interrupted ({how}) — rank 0's line says what was kept and how to continue")
        elif os.environ.get(PIPELINE_TAG_ENV):  # a pipeline's stage: its own `resume=true` would train it again
            # outside the pipeline's workspace, where the pipeline does not look (probe 87)
            note = stage_rerun_note(command, getattr(stop, "checkpoint_kept", False),
                                    resumed_by(command, args) is not None)
            print_error(f"interrupted ({how}) — run the same `cnnlab pipeline` again: {note}")
        else:
            hint = interrupt_hint(command, typed, how=how, checkpoint_kept=getattr(stop, "checkpoint_kept", False),
                                  no_checkpoint=getattr(stop, "no_checkpoint", None), multirun=multirun,
                                  resumed=resumed_by(command, args), resume=getattr(stop, "resume", "resume=true"),
                                  taken=run_dir_in_use(args))
            print_error(hint + (" (under torchrun, as this run was started)" if ranks.world_size > 1 else ""))
        code = getattr(stop, "exit_code", 130)
    except SystemExit as exit_:  # rich's console exits so on a reader gone (probe 238: `inspect ... | head -1`, 1)
        code = _reader_gone() if _reader_stopped(exit_) else \
            exit_.code if isinstance(exit_.code, int) else (0 if exit_.code is None else 1)
    except BaseException as exc:  # noqa: BLE001 - the one place that decides how errors look
        code = _show_error(exc, command, held, [*device_option, *(["-m"] if multirun else []), *args])
    finally:
        if held is not None:
            held.release()  # a failure nobody described (e.g. a SystemExit) keeps Hydra's line
        sys.stderr = stderr
    raise typer.Exit(code)


def _show_error(exc: BaseException, command: str = "CMD", held: HeldSweepFailureLine | None = None,
                typed: Sequence[str] = ()) -> int:
    """Print `exc` as the user sees it (cnnlab/errors_view.py); the exit code to leave with. `held`: Hydra's line
    for a failed sweep job, written only above a traceback (cnnlab's own line says more). `typed`: the user's
    arguments after the command."""
    if _reader_stopped(exc):
        return _reader_gone()
    from cnnlab.errors_view import describe  # lazy: imports hydra/omegaconf error types

    message, is_bug = describe(exc, command, setting_facts(command, typed))
    if held is not None:
        held.release() if debug_enabled() or is_bug else held.drop()
    if debug_enabled() or is_bug:
        traceback.print_exception(exc)
    if is_bug:
        print_error(f"{message} — this is a bug in cnnlab; please report it with the traceback above")
        return 1
    print_error(message)
    return getattr(exc, "exit_code", 2)


def _reader_stopped(exc: BaseException) -> bool:
    """Whether `exc` is, or was raised while handling, a BrokenPipeError: rich's console turns one into SystemExit(1)
    (Console.on_broken_pipe), with the pipe error as its context."""
    return any(isinstance(link, BrokenPipeError) for link in exception_chain(exc))


def _reader_gone() -> int:
    """What a command whose output was piped into a reader that stopped reading (`cnnlab list models | head -3`, a
    pager quit) exits with: quietly, as `git log | head` does, with 141 (128 + SIGPIPE) — not a traceback and "a bug
    in cnnlab" (probe 208). Standard output then points at /dev/null, so the interpreter's last flush cannot fail
    again (Python's documented recipe, "Note on SIGPIPE")."""
    with contextlib.suppress(OSError, ValueError):
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
    return 128 + 13


def _hydra_command(name: str) -> None:
    info = COMMANDS[name]

    def command(
        ctx: typer.Context,
        device: Optional[str] = typer.Option(None, "--device", help="auto | cpu | cuda | cuda:N (same as device=...)."),
        multirun: bool = typer.Option(False, "-m", "--multirun", help="Run a sweep: comma-separated values become separate runs."),
        debug: bool = typer.Option(False, "--debug", help="Show full tracebacks (also CNNLAB_DEBUG=1)."),
    ) -> None:
        args, literal = list(ctx.args), ctx.meta.get(_AFTER_DASHES, 0)
        launch(name, args[:len(args) - literal], device=device, multirun=multirun, debug=debug,
               after_dashes=args[len(args) - literal:], split_words=ctx.meta.get(_SPLIT_WORDS, []))

    command.__doc__ = f"{info.summary}\n\n{info.description}"
    app.command(
        name,
        cls=HydraCommand,
        options_metavar="[OPTIONS] [KEY=VALUE | GROUP=CHOICE]..."
                        + (" IMAGE_OR_FOLDER..." if name == "predict" else ""),
        help=f"{info.summary}\n\n{info.description}",
        short_help=info.summary,
        context_settings={"allow_extra_args": True, "ignore_unknown_options": True,
                          "help_option_names": ["-h", "--help"]},
    )(command)


for _name in COMMANDS:
    _hydra_command(_name)


# list and report are no Hydra commands: a `key=value` (outputs=out2, as every other command takes) reaches them as
# an extra argument, refused in one line (probe 147: Typer's error box, "unexpected extra argument(s)").
_EXTRA_WORDS = {"allow_extra_args": True}


def _refuse_extra_words(ctx: typer.Context, command: str, options: str) -> None:
    """UserError for words `cnnlab {command}` does not take (ctx.args), naming the options it does."""
    if ctx.args:
        word = ctx.args[0]
        hydra = " (it is no Hydra command: key=value settings are not read here)" if "=" in word else ""
        raise UserError(f"`cnnlab {command}` takes no {word}{hydra} — use {options}; `cnnlab {command} --help` lists "
                        "them")


@app.command("list", cls=CnnlabCommand, context_settings=_EXTRA_WORDS)
def list_(
    ctx: typer.Context,
    what: str = typer.Argument(..., help="models | datasets | runs"),
    outputs: Optional[Path] = typer.Option(None, "--outputs", help="Outputs folder to scan for runs; "
                                           "default: $CNNLAB_OUTPUTS or ./outputs."),
) -> None:
    """List the model zoo, the datasets, or the runs in the outputs folder."""
    from cnnlab import listing

    try:
        _refuse_extra_words(ctx, "list", "--outputs DIR for the folder of runs" if what == "runs" else
                            f"`cnnlab list {what}` alone")  # probe 150: `list models x=1` was told --outputs
        if what == "models":
            listing.print_models()
        elif what == "datasets":
            listing.print_datasets()
        elif what == "runs":
            listing.print_runs(outputs or conftree.outputs_folder(), named=outputs is not None)
        else:
            raise UserError(f"cannot list '{what}' — choose models, datasets or runs")
    except BaseException as exc:  # noqa: BLE001
        raise typer.Exit(_show_error(exc))


# one string per paragraph: Typer's rich help keeps a docstring's line breaks (probe 154: broken mid-sentence)
_REPORT_HELP = (
    "Accuracy × size × latency of every trained model, from run records only (nothing is re-run).\n\n"
    "One row per model run (pretrain, finetune, distill, prune, quantize) with the latency its bench runs measured; "
    "runs that differ only in `seed` (a `-m seed=0,1,2` sweep) form one group row with mean ± std, its runs listed "
    "under it. KD gain, pruning and INT8 top-1 changes get a 95 % CI paired over seeds (\"not significant\" when it "
    "contains zero). Only like is compared with like (same dataset, backend, batch, device, threads, machine), the "
    "Pareto front is marked, and what was left out is listed. Writes report.md, report.csv, report.json and a plot "
    "per dataset table (report.png, or report-<dataset>.png each where there are several; error bars for seed "
    "groups) into OUTPUTS_DIR (or --out).")


@app.command("report", cls=CnnlabCommand, context_settings=_EXTRA_WORDS, help=_REPORT_HELP)
def report_(
    ctx: typer.Context,
    outputs_dir: Optional[Path] = typer.Argument(None, help="Folder to read run records from (a sweep or pipeline "
                                                "folder works too); default: $CNNLAB_OUTPUTS or ./outputs."),
    runs: Optional[str] = typer.Option(None, "--runs", help="Only runs whose folder, relative to OUTPUTS_DIR, "
                                       "matches this glob, e.g. 'finetune/2026-11-28/*'."),
    backend: str = typer.Option("onnxruntime", "--backend", help="Latency of which bench backend to compare: "
                                "torch, torch_compile, onnxruntime, tensorrt or openvino."),
    batch: int = typer.Option(1, "--batch", help="Latency at which batch size (1 or more, as benchmarked)."),
    device: Optional[str] = typer.Option(None, "--device", help="Latency on which device; default: the most "
                                         "benchmarked one."),
    machine: Optional[str] = typer.Option(None, "--machine", help="Latency timed on which machine, as the report "
                                          "names it (e.g. 'AMD EPYC (family 26, model 2)'); default: the most "
                                          "benchmarked one, where the bench runs name several."),
    write: bool = typer.Option(True, "--write/--no-write", help="Write report.md/.csv/.json and the plot PNG."),
    out_dir: Optional[Path] = typer.Option(None, "--out", help="Write the files into this folder instead of "
                                           "OUTPUTS_DIR (never into a run folder: source runs are never modified)."),
) -> None:
    """`cnnlab report`: what it does is _REPORT_HELP (the --help text)."""
    from cnnlab.report import Comparison, build_report, print_report, report_folder, write_report

    try:
        _refuse_extra_words(ctx, "report", "OUTPUTS_DIR as its one argument, and --runs, --backend, --batch, "
                                           "--device, --machine, --out")
        folder = outputs_dir or conftree.outputs_folder()
        target = report_folder(folder, out_dir) if write else None  # refused before any work: never into a run
        report = build_report(folder, pattern=runs, comparison=Comparison(backend=backend, batch=batch, device=device,
                                                                          machine=machine))
        print_report(report)
        if target is not None:
            for path in write_report(report, target):
                out.print(f"wrote {path}", markup=False, highlight=False)
    except BaseException as exc:  # noqa: BLE001
        raise typer.Exit(_show_error(exc, "report"))


def _version(value: bool) -> None:
    if value:
        out.print(f"cnnlab {__version__}")
        raise typer.Exit()


@app.callback()
def _main(
    version: bool = typer.Option(False, "--version", callback=_version, is_eager=True, help="Print the version and exit."),
) -> None:
    """cnnlab: transfer learning and CNN compression from the command line."""


def run() -> None:
    """Console-script entry point."""
    if sys.stdout is None:  # `cnnlab list models >&-`: rich wrote the results to a null file and exited 0 (probe 238)
        print_error("standard output is closed (>&-), where cnnlab writes its tables and results — give it one: "
                    "`> results.txt` keeps them, `> /dev/null` discards them")
        raise SystemExit(2)
    tolerate_narrow_encodings()
    try:
        app()
    finally:
        # What is left is Python shutting down (torch's and onnxruntime's threads: a second or two), the command's
        # record written: a Ctrl-C now only turned a completed run's exit into 130, with no line (probe 112).
        signal.signal(signal.SIGINT, signal.SIG_IGN)


if __name__ == "__main__":
    run()
