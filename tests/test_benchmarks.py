"""Every benchmark script still starts, and every command the docs give for one still parses as documented.

Probe 232: engine_throughput.py failed on import and the documented openvino_int8.py command no longer parsed, so two
tables of docs/benchmarks.md could not be reproduced; nothing ran the scripts between the sessions that measured
with them. The check runs each script as `__main__` in one child process (the scripts pin threads and set
environment variables) with argparse stopped right after parsing: nothing is measured or written.
"""

from __future__ import annotations

import json
import re
import shlex
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
BENCHMARKS = ROOT / "benchmarks"
DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").rglob("*.md"))]

_COMMAND = re.compile(r"python3? benchmarks/(\w+\.py)(.*)", re.S)
_SPAN_COMMAND = re.compile(r"^(?:python3? )?(?:benchmarks/)?(\w+\.py)(\s.*)?$", re.S)  # `x.py --flag` in a table
_CODE_SPAN = re.compile(r"`([^`]+)`")
_FENCE = re.compile(r"^```[^\n]*\n(.*?)^```", re.S | re.M)
_STOP = {"#", "&&", "||", ";", "|", ">", "2>&1", "...", "…"}

# Runs each (script, argv) as __main__ with ArgumentParser.parse_args stopped once it has parsed; prints, as JSON,
# the commands that failed to import or to parse, with the last line of what they said.
_CHECKER = r"""
import argparse, contextlib, io, json, runpy, sys
sys.path.insert(0, sys.argv[1])
class Parsed(Exception):
    pass
parse = argparse.ArgumentParser.parse_args
def stop(self, args=None, namespace=None):
    parse(self, args, namespace)
    raise Parsed()
argparse.ArgumentParser.parse_args = stop
failures = []
for script, argv in json.loads(sys.stdin.read()):
    sys.argv = [script, *argv]
    said = io.StringIO()
    try:
        with contextlib.redirect_stderr(said), contextlib.redirect_stdout(io.StringIO()):
            runpy.run_path(script, run_name="__main__")
        failures.append([script, argv, "ran without parsing its arguments"])
    except Parsed:
        pass
    except SystemExit as exc:
        if exc.code not in (0, None):  # --help exits 0
            lines = said.getvalue().strip().splitlines()
            failures.append([script, argv, lines[-1] if lines else f"exit {exc.code}"])
    except BaseException as exc:
        failures.append([script, argv, f"{type(exc).__name__}: {exc}"])
print(json.dumps(failures))
"""


def _command_texts(markdown: str) -> list[tuple[str, str]]:
    """(script name, the text after it) for each benchmark command: `python benchmarks/NAME.py ...` in fenced blocks
    (one command a line, `\\` continuing it) and in inline code spans (which may wrap across lines), and a span that
    is a benchmark script's name with its flags (the tables' `NAME.py --flag`)."""
    lines = [line for block in _FENCE.findall(markdown) for line in block.replace("\\\n", " ").splitlines()]
    spans = _CODE_SPAN.findall(_FENCE.sub("", markdown))
    found = [match.groups() for text in lines + spans for match in _COMMAND.finditer(text)]
    for span in spans:
        match = _SPAN_COMMAND.match(span.strip())
        if match and not span.startswith("python") and (BENCHMARKS / match.group(1)).is_file() and match.group(2):
            found.append(match.groups())
    return found


def documented_commands() -> list[tuple[str, list[str], str]]:
    """(script path, its arguments, the doc it is in) for every benchmark command in README.md and docs/: the words up
    to a comment, a shell operator or an ellipsis (where the doc leaves the rest out)."""
    found = []
    for doc in DOCS:
        for script, text in _command_texts(doc.read_text(encoding="utf-8")):
            words = []
            for word in shlex.split(text.split("python", 1)[0], comments=True):
                if word in _STOP or word.startswith(">"):
                    break
                words.append(word)
            found.append((str(BENCHMARKS / script), words, doc.name))
    return found


def _failures(commands: list[tuple[str, list[str]]]) -> list[list]:
    done = subprocess.run([sys.executable, "-c", _CHECKER, str(BENCHMARKS)], input=json.dumps(commands),
                          capture_output=True, text=True, cwd=ROOT, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


def test_every_benchmark_script_starts_and_every_documented_command_parses():
    scripts = sorted(p for p in BENCHMARKS.glob("*.py") if not p.name.startswith("_") and "common" not in p.stem)
    documented = documented_commands()
    assert {Path(s).name for s, _, _ in documented} >= {"fashion_mnist.py", "ssl_fashion_mnist.py", "int8_peers.py"}
    missing = sorted({f"{doc}: {Path(s).name}" for s, _, doc in documented if not Path(s).is_file()})
    assert not missing, f"the docs name benchmark scripts that do not exist: {missing}"
    commands = [(str(p), ["--help"]) for p in scripts] + [(s, argv) for s, argv, _ in documented]
    failures = _failures(commands)
    assert not failures, "\n".join(f"{Path(s).name} {' '.join(argv)}: {why}" for s, argv, why in failures)


def test_the_check_catches_a_flag_a_script_does_not_have():
    """The check itself can fail: a documented flag that the script lacks is reported (not a test of the docs)."""
    failures = _failures([(str(BENCHMARKS / "cli_startup.py"), ["--no-such-flag", "3"])])
    assert len(failures) == 1 and "unrecognized arguments: --no-such-flag" in failures[0][2]
