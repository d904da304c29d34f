"""Atomic file writes: write a temporary file beside the target, then rename over it.

A crash or Ctrl-C mid-write leaves the previous file intact; readers never see half a file. A disk that
fills up (ENOSPC) or a quota that runs out (EDQUOT) mid-write becomes one CnnlabError naming the file, and
the temporary file is removed so the failed write leaves no trace.

The file gets the permissions a plain `open(path, "w")` gives a new file: 0o666 less the umask (0o644 under the usual
umask 0o022), so another user or a serving container can read an exported model. The temporary file is created
with that mode (`_create_temp`: the kernel applies the umask, nothing changes the process-wide umask), not
tempfile.mkstemp's private 0o600.

Every CSV file cnnlab writes goes through `write_text`, which makes it safe to open in a spreadsheet: a text cell
that starts with = + - @ or a tab or carriage return (a class or file name such as `=HYPERLINK(...)`) would run as
a formula there (CSV injection), so it gets a leading single quote (OWASP's advice); numbers (-0.5, +3, -1e-06)
are left alone (`spreadsheet_safe`).
"""

from __future__ import annotations

import copy
import csv
import errno
import functools
import hashlib
import io
import json
import os
import re
import secrets
import shutil
import stat
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterable, Iterator, Sequence

import yaml

from cnnlab.errors import CnnlabError, exception_chain

# EFBIG: the file outgrew a size limit — the process's (`ulimit -f`; Python ignores SIGXFSZ, so the write fails) or
# the filesystem's largest file (probe 235: a traceback and "a bug in cnnlab" for the same kind of failed write)
DISK_FULL_ERRNOS = (errno.ENOSPC, errno.EDQUOT, errno.EFBIG)
_TEMP_NAME = re.compile(r"^\.(?P<name>.+)\.[0-9a-f]{8}\.tmp$")  # _create_temp's `.<name>.<random>.tmp`


def is_disk_full(exc: BaseException) -> bool:
    """True for an OSError saying the disk (ENOSPC) or the user's quota (EDQUOT) is full, or that the file outgrew
    a size limit (EFBIG)."""
    return isinstance(exc, OSError) and exc.errno in DISK_FULL_ERRNOS


def _bytes(count: int) -> str:
    for unit, size in (("GB", 1e9), ("MB", 1e6), ("kB", 1e3)):
        if count >= size:
            return f"{count / size:.1f} {unit}"
    return f"{count} bytes"


_RAISE_THE_LIMIT = ("raise the file-size limit (`ulimit -f unlimited` in the shell that runs cnnlab) or write to a "
                    "filesystem that takes larger files (paths.outputs=DIR), then run the command again")


def disk_full_error(exc: OSError, target: str | os.PathLike[str] | None = None, *, files: int = 1) -> CnnlabError:
    """The one-line error for a write that ran out of space (or outgrew a file-size limit): which file — the one
    an atomic write was replacing, not its temporary copy (probe 235 was told of `.model.onnx.e36aead7.tmp`) — or,
    for `files` written together, which folder; how much is free there."""
    what = "a file-size limit reached" if exc.errno == errno.EFBIG else \
        "disk quota exceeded" if exc.errno == errno.EDQUOT else "disk full"
    if target is None and exc.filename is None:  # a write the system named no file for: stdout on a full device
        return CnnlabError(f"{what} while writing a file the system did not name (or standard output, where it "
                           f"goes to a full device): {exc.strerror}",
                           fix=_RAISE_THE_LIMIT if exc.errno == errno.EFBIG else
                           "free space on the disk the command writes to (paths.outputs), or send its output "
                           "elsewhere, then run the command again")
    where = Path(target if target is not None else exc.filename)
    if (temporary := _TEMP_NAME.match(where.name)) is not None:
        where = where.with_name(temporary["name"])
    folder = where if where.is_dir() else where.parent
    while not folder.exists() and folder != folder.parent:
        folder = folder.parent
    unchanged = "the file was not changed" if files == 1 else f"none of the {files} files written together was changed"
    if exc.errno == errno.EFBIG:
        return CnnlabError(f"{where} grew past the largest file allowed here ({exc.strerror}); {unchanged}",
                           fix=_RAISE_THE_LIMIT)
    try:
        free = f"{_bytes(shutil.disk_usage(folder).free)} free there"
    except OSError:
        free = "free space unknown"
    return CnnlabError(f"{what} while writing {where} ({free}); {unchanged}",
                       fix=f"free space on the disk holding {folder}, then run the command again")


def disk_full_behind(exc: BaseException | None) -> OSError | None:
    """The OSError of a full disk, quota or file-size limit (is_disk_full) behind `exc` — itself, or what it wraps
    (Hydra's write of .hydra/, torch's exporter) — else None."""
    return next((link for link in exception_chain(exc)
                 if isinstance(link, OSError) and link.errno in DISK_FULL_ERRNOS), None)


def name_too_long(exc: BaseException | None) -> OSError | None:
    """The OSError ENAMETOOLONG behind `exc` (itself, or what it wraps: OmegaConf's resolver errors, Hydra's), else
    None. pathlib's exists()/is_file() raise it rather than answer False (probe 111: a 300-character source= or a
    working folder near PATH_MAX stopped every command with a traceback)."""
    return next((link for link in exception_chain(exc)
                 if isinstance(link, OSError) and link.errno == errno.ENAMETOOLONG), None)


def name_too_long_error(exc: OSError) -> CnnlabError:
    """The one line for a path the system refuses as too long: which name (over NAME_MAX bytes) or which path (over
    PATH_MAX), shortened, and the fix."""
    path = os.fsencode(exc.filename) if exc.filename is not None else b""
    name_max, path_max = _limit("PC_NAME_MAX", 255), _limit("PC_PATH_MAX", 4096)
    long_names = [part for part in path.split(b"/") if len(part) > name_max]
    if long_names:
        what = f"the name {_shortened(long_names[0])} ({len(long_names[0])} bytes; at most {name_max})"
    elif path:
        what = f"the path {_shortened(path)} ({len(path)} bytes; at most {path_max})"
    else:
        what = "a path"
    return CnnlabError(f"{what} is longer than this system allows",
                       fix="give a shorter name; for a run folder's path, write runs to a shorter folder "
                           "(paths.outputs=DIR or CNNLAB_OUTPUTS=DIR)")


def link_loop(exc: BaseException | None) -> str | None:
    """The path of the symbolic link loop behind `exc` (an OSError ELOOP, or pathlib's resolve() RuntimeError
    "Symlink loop from '…'" of Python 3.11), else None (probe 209: a run's model.pt linked to itself stopped `list
    runs`, `report` and every `source=` with a traceback)."""
    for link in exception_chain(exc):
        if isinstance(link, OSError) and link.errno == errno.ELOOP:
            return str(link.filename) if link.filename is not None else "a path"
        if isinstance(link, RuntimeError) and str(link).startswith(_LOOP):
            return str(link)[len(_LOOP):].strip("'")
    return None


_LOOP = "Symlink loop from "


def link_loop_error(path: str) -> CnnlabError:
    """The one line for a symbolic link loop at `path`."""
    return CnnlabError(f"{path} is a symbolic link loop: following it leads back to itself, never to a file",
                       fix="remove the link, or point it at the real file (`ls -l` shows where a link leads)")


def _limit(name: str, default: int) -> int:
    try:
        return int(os.pathconf("/", name))
    except (OSError, ValueError):
        return default


def _shortened(raw: bytes) -> str:
    text = os.fsdecode(raw)
    return repr(text if len(text) <= 60 else f"{text[:28]}…{text[-28:]}")


# O_EXCL: never open a file someone else made; O_NOFOLLOW: nor follow a planted link (as tempfile.mkstemp).
_TEMP_FLAGS = os.O_RDWR | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_BINARY", 0)


def _create_temp(target: Path) -> Path:
    """A new empty file beside `target`, `.<name>.<random>.tmp`, created with mode 0o666 so that the kernel gives
    it what `open(path, "w")` would (0o666 & ~umask) — tempfile.mkstemp would make it 0o600."""
    for _ in range(100):
        candidate = target.parent / f".{target.name}.{secrets.token_hex(4)}.tmp"
        try:
            fd = os.open(candidate, _TEMP_FLAGS, 0o666)
        except FileExistsError:
            continue
        os.close(fd)
        return candidate
    raise FileExistsError(errno.EEXIST, "no unused temporary file name", str(target.parent))


@contextmanager
def atomic_path(target: str | os.PathLike[str]) -> Iterator[Path]:
    """Yield a temporary path in the target's folder; on success it replaces `target` atomically.

    On any exception the temporary file is deleted and `target` keeps its previous content; ENOSPC/EDQUOT
    raise `disk_full_error` instead of the bare OSError. The file ends up with mode 0o666 & ~umask, as a file
    made by `open(target, "w")`.
    """
    with atomic_paths([target]) as (tmp_path,):
        yield tmp_path


@contextmanager
def atomic_paths(targets: Sequence[str | os.PathLike[str]]) -> Iterator[list[Path]]:
    """atomic_path for files that belong together (a report's .md, .csv, .json and plots): yields a temporary path
    per target, and only once every one is written are they renamed over their targets — a failure while writing
    any (a full disk, Ctrl-C) leaves every target as it was (probe 112: report.md and .csv were new beside an old
    report.json). A target that is a folder is refused before anything is written (probe 114: the renames before it
    had replaced three files when it failed). A full disk is disk_full_error naming the target being written."""
    paths = [Path(target) for target in targets]
    for target in paths:
        if target.is_dir():
            raise IsADirectoryError(errno.EISDIR, os.strerror(errno.EISDIR), str(target))
    temporary: list[Path] = []
    try:
        for target in paths:
            target.parent.mkdir(parents=True, exist_ok=True)
            temporary.append(_create_temp(target))
        yield temporary
        for temp, target in zip(temporary, paths):
            os.replace(temp, target)
    except OSError as exc:
        if is_disk_full(exc):
            written = {str(temp): target for temp, target in zip(temporary, paths)}.get(str(exc.filename))
            where = written or (paths[0] if len(paths) == 1 else paths[0].parent)  # a write that named no file
            raise disk_full_error(exc, where, files=len(paths)) from exc
        raise
    finally:
        for temp in temporary:
            try:
                temp.unlink(missing_ok=True)
            except OSError:
                pass  # never let the clean-up hide the error that ended the write


def with_usual_permissions(path: str | os.PathLike[str]) -> None:
    """Give a file another library wrote with tempfile.mkstemp's private 0o600 (onnxruntime's calibration cache) the
    mode cnnlab's own files have, 0o666 & ~umask (docs/runs.md), by copying it onto itself atomically."""
    with atomic_path(path) as temp:
        shutil.copyfile(path, temp)


def claim(target: str | os.PathLike[str]) -> bool:
    """Create `target` empty if no file is there, in one step no other process can interleave with (O_EXCL); False
    when it exists. What decides which of two processes started at once owns a path."""
    Path(target).parent.mkdir(parents=True, exist_ok=True)
    try:
        os.close(os.open(target, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o666))
    except FileExistsError:
        return False
    return True


def write_json(target: str | os.PathLike[str], data: Any) -> None:
    with atomic_path(target) as tmp:
        tmp.write_text(json.dumps(data, indent=2, default=str) + "\n", encoding="utf-8")


# Characters that make a spreadsheet read a cell as a formula (tab and CR: some strip them, then see the next one).
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")
_NUMBER = re.compile(r"[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?|[+-]?(inf|infinity|nan)", re.IGNORECASE)


def spreadsheet_safe(cell: str) -> str:
    """`cell` as a spreadsheet shows it as text: a leading single quote when it starts like a formula
    (FORMULA_STARTS) and is not a number."""
    if cell.startswith(FORMULA_STARTS) and not _NUMBER.fullmatch(cell):
        return "'" + cell
    return cell


def csv_text(rows: Iterable[Sequence[object]]) -> str:
    """`rows` as CSV text with "\n" line ends, every cell holding a line break quoted. csv.writer quotes only the
    characters of its own lineterminator: with "\n" a file name holding a lone "\r" went out bare, and every
    reader (csv, pandas, spreadsheets) split its row in two at it (probe 126: a prediction for a file "1.png"
    that does not exist). Each row is written with "\r\n", which quotes both, and ends in "\n"."""
    buffer = io.StringIO(newline="")
    writer = csv.writer(buffer, lineterminator="\r\n")
    for row in rows:
        writer.writerow(row)
        buffer.seek(buffer.tell() - 2)
        buffer.write("\n")
        buffer.truncate()
    return buffer.getvalue()


def spreadsheet_safe_csv(text: str) -> str:
    """CSV `text` with every cell passed through `spreadsheet_safe`; `text` itself (the same bytes) when no cell
    needed it. The rows are re-written with the line ending `text` used."""
    rows = list(csv.reader(io.StringIO(text, newline="")))
    safe = [[spreadsheet_safe(cell) for cell in row] for row in rows]
    if safe == rows:
        return text
    if not text.endswith("\r\n"):
        return csv_text(safe)
    buffer = io.StringIO(newline="")
    csv.writer(buffer, lineterminator="\r\n").writerows(safe)
    return buffer.getvalue()


def write_text(target: str | os.PathLike[str], text: str) -> None:
    """Write `text` to `target` atomically, as `text_for` makes it."""
    with atomic_path(target) as tmp:
        tmp.write_text(text_for(target, text), encoding="utf-8")


def text_for(target: str | os.PathLike[str], text: str) -> str:
    """What cnnlab writes of `text` into `target`: a `.csv` target's made spreadsheet-safe (`spreadsheet_safe_csv`)."""
    return spreadsheet_safe_csv(text) if Path(target).suffix.lower() == ".csv" else text


# What reading an untrusted YAML file may raise: the file (OSError), its bytes (UnicodeDecodeError, a ValueError),
# its text (YAMLError), and nesting past Python's recursion limit — PyYAML's pure-Python loader and OmegaConf recurse
# once per level (probe 137: `[[[…]]]` in a run's .hydra/config.yaml or a --config-dir file was a traceback)
UNREADABLE_YAML = (OSError, ValueError, yaml.YAMLError, RecursionError)
# libyaml's loader where PyYAML was built with it: the same safe constructor as yaml.safe_load, many times faster
# (benchmarks/report_yaml.py), and it refuses nesting past 1,000 levels with a YAMLError instead of recursing
YAML_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


def load_yaml(path: str | os.PathLike[str]) -> Any:
    """What the YAML file at `path` holds, as yaml.safe_load gives it, parsed by libyaml where PyYAML has it and once
    per version of the file (its inode, size and modification time) in a process: a command's settings checks read
    the packaged config files ~25 times, 0.8 s of pure-Python parsing per command (benchmarks/config_reads.py). A
    copy: callers may change it. Raises what reading and yaml.safe_load raise (UNREADABLE_YAML)."""
    found = os.stat(path)
    return copy.deepcopy(_parsed_yaml(os.fspath(path), (found.st_ino, found.st_size, found.st_mtime_ns)))


@functools.lru_cache(maxsize=256)
def _parsed_yaml(path: str, version: tuple[int, int, int]) -> Any:
    return yaml.load(Path(path).read_text(encoding="utf-8"), Loader=YAML_LOADER)  # noqa: S506


def read_yaml_mapping(path: str | os.PathLike[str]) -> dict[str, Any] | None:
    """A YAML file whose top level is a mapping (a run's saved config, Hydra's record); None when it is missing,
    unreadable or anything else — these files are untrusted input. Parsed by libyaml where PyYAML has it (the same
    safe constructor as yaml.safe_load; benchmarks/report_yaml.py — probe 111: half of a 3,200-run report was
    parsing)."""
    if not is_regular_file(path):
        return None
    try:
        data = yaml.load(Path(path).read_text(encoding="utf-8"), Loader=YAML_LOADER)  # noqa: S506
    except UNREADABLE_YAML:
        return None
    return data if isinstance(data, dict) else None


def read_json(path: str | os.PathLike[str]) -> Any:
    """The JSON file at `path`. Raises OSError (NotARegularFile for a named pipe, whose read would wait forever) or
    ValueError (also for arrays or objects nested past Python's recursion limit: probe 136's `[[[…]]]` run.json
    was a RecursionError that stopped `cnnlab list runs` and the report)."""
    check_regular_file(path)
    text = Path(path).read_text(encoding="utf-8")
    try:
        return json.loads(text)
    except RecursionError:
        raise ValueError("nested too deeply to read") from None


NOT_A_REGULAR_FILE = "not a regular file (a named pipe, device or socket)"


def why_missing(path: str | os.PathLike[str], absent: str = "does not exist") -> str:
    """Why nothing can be read at `path`, which does not exist as far as os.stat can tell: `absent`, or, for a
    symbolic link that leads nowhere, which way: "is a link back to itself", "is a link in a loop (to b, a link to
    a)", "is a link to gone.pt, which does not exist", "is a link to b.pt, a link to gone.pt, which does not exist"
    ("no such file" sent the user looking for a file that the link hid; probe 169: one sentence for all three cases
    left the user to work out which)."""
    if not os.path.islink(path):
        return absent
    chain, seen, here = [], {os.path.abspath(path)}, os.fspath(path)
    while os.path.islink(here) and len(chain) < 8:
        try:
            target = os.readlink(here)
        except OSError:
            return "is a link that cannot be read"
        chain.append(target)
        here = os.path.join(os.path.dirname(here), target)
        if os.path.abspath(here) in seen:
            return "is a link back to itself" if len(chain) == 1 else \
                f"is a link in a loop ({_links_to(chain)})"
        seen.add(os.path.abspath(here))
    if os.path.islink(here):  # eight links on, or a loop through a folder link on the way
        return f"is a link that leads nowhere ({_links_to(chain)}, …: a loop, or too long a chain of links)"
    return f"is a link {_links_to(chain)}, which does not exist"


def _links_to(chain: Sequence[str]) -> str:
    """'to b' or 'to b, a link to c' for the targets of a chain of links."""
    return "to " + ", a link to ".join(chain)


def why_not_a_file(path: str | os.PathLike[str]) -> str:
    """Why `path`, where a file is to be read, is none: "is a folder, not a file", "is not a regular file (...)", or
    why_missing's words."""
    if os.path.isdir(path):
        return "is a folder, not a file"
    return f"is {NOT_A_REGULAR_FILE}" if os.path.exists(path) else why_missing(path)


class NotARegularFile(OSError):
    """A named pipe, device or socket where a file is read: its open may never return (probes 112, 114)."""


def is_regular_file(path: str | os.PathLike[str]) -> bool:
    """Whether `path` (its link followed) is a regular file, or cannot be stat'ed (the open then says why): opening
    a named pipe waits for a writer forever (probe 112: a FIFO named fifo.png hung finetune), a device may never
    end."""
    try:
        return stat.S_ISREG(os.stat(path).st_mode)
    except OSError:
        return True


def check_regular_file(path: str | os.PathLike[str]) -> None:
    """NotARegularFile for a path that exists and is no regular file (nor a folder: the caller's read says that)."""
    if not is_regular_file(path) and not os.path.isdir(path):
        raise NotARegularFile(errno.EINVAL, NOT_A_REGULAR_FILE, str(path))


FileVersion = tuple[str, int, int, int, int, int]


def file_version(path: str | os.PathLike[str]) -> FileVersion | None:
    """(absolute path, modification time in ns, size in bytes, device, inode, change time in ns) of the file at
    `path`: the key under which what is read from a file (its digest, its record, its pixels) is kept once per version
    of the file, and what tells that a file read was changed or replaced since (runs.check_reads_unchanged). The inode
    and the change time tell a file apart from another of the same size and modification time put in its place
    (`cp -p`, an os.replace); the change time cannot be set back as the modification time can. None when it cannot
    be stat'ed (gone, a dangling link). Not the real path: resolving links costs more than the rest for a folder of
    small pictures, and a file named two ways is at worst read twice."""
    try:
        info = os.stat(path)
    except OSError:
        return None
    return os.path.abspath(path), info.st_mtime_ns, info.st_size, info.st_dev, info.st_ino, info.st_ctime_ns


@functools.lru_cache(maxsize=16)
def _digest_at(version: FileVersion) -> str:
    """sha256_of the file once per version (file_version): a command resolves its source more than once, and a
    ResNet-50 ONNX file is 100 MB."""
    return sha256_of(version[0])


def file_sha256(path: str | os.PathLike[str]) -> str | None:
    """The SHA-256 of the file at `path` (64 hex digits), computed once per version of the file; None when it cannot
    be read."""
    version = file_version(path)
    try:
        return None if version is None else _digest_at(version)
    except OSError:
        return None


def sha256_of(path: str | os.PathLike[str]) -> str:
    """The SHA-256 of the file at `path` as 64 hex digits, read in blocks (hashlib.file_digest). Raises OSError."""
    with open(path, "rb") as handle:
        return hashlib.file_digest(handle, "sha256").hexdigest()
