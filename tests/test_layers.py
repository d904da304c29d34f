"""The layering contract of docs/design.md, checked on the source: a module imports only from its own layer and
the layers drawn below it, and command modules never import each other."""

from __future__ import annotations

import ast
from pathlib import Path

import cnnlab

PACKAGE = Path(cnnlab.__file__).parent

# Bottom to top, as drawn in docs/design.md. Equal ranks may import each other.
RANK = {"data": 0, "models": 1, "engine": 2, "deploy": 3, "compress": 4, "search": 5, "evaluation": 5,
        "records": 6, "runs": 6, "links": 6, "report": 6, "context": 6, "settings": 6, "weights": 6,
        "steps": 7, "pipelines": 8, "app": 9, "cli": 9, "launch_checks": 9, "folder_guard": 9, "listing": 9,
        "__main__": 9}
# Shared leaves: they import no layer, so any layer may read them.
LEAVES = {"errors", "errors_view", "fileio", "console", "conftree", "commands", "environment", "interrupts",
          "wording", "hydra_args", "__version__"}
KNOWN_EXCEPTIONS = {("cnnlab/deploy/subject.py", "runs")}  # deploy/subject.py takes a runs.Source (to remove)


def _layer(module: str) -> str:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else "__init__"


def _imports(path: Path) -> list[str]:
    found = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.split(".")[0] == "cnnlab":
            if node.module == "cnnlab":  # `from cnnlab import x`: x is the layer
                found += [f"cnnlab.{alias.name}" for alias in node.names]
            else:
                found.append(node.module)
        elif isinstance(node, ast.Import):
            found += [alias.name for alias in node.names if alias.name.split(".")[0] == "cnnlab"]
    return found


def _modules() -> list[tuple[str, str]]:
    out = []
    for path in sorted(PACKAGE.rglob("*.py")):
        rel = path.relative_to(PACKAGE.parent)
        layer = rel.parts[1] if len(rel.parts) > 2 else rel.stem
        if layer in ("__init__", "conf"):
            continue
        out.append((str(rel), layer))
    return out


def test_every_module_has_a_layer() -> None:
    unknown = {layer for _, layer in _modules()} - set(RANK) - LEAVES
    assert not unknown, f"add these to RANK or LEAVES (and to the picture in docs/design.md): {sorted(unknown)}"


def test_no_import_runs_up_a_layer() -> None:
    upward = []
    for rel, layer in _modules():
        if layer in LEAVES:
            continue
        for module in _imports(PACKAGE.parent / rel):
            target = _layer(module)
            if target in LEAVES or target == "__init__" or (rel, target) in KNOWN_EXCEPTIONS:
                continue
            if RANK[target] > RANK[layer]:
                upward.append(f"{rel} ({layer}) imports {module} ({target})")
    assert not upward, "\n".join(upward)


def test_leaves_import_no_layer() -> None:
    for rel, layer in _modules():
        if layer in LEAVES:
            targets = {_layer(m) for m in _imports(PACKAGE.parent / rel)}
            assert targets <= LEAVES, f"{rel} is a shared leaf but imports {sorted(targets - LEAVES)}"


def test_command_modules_do_not_import_each_other() -> None:
    for path in sorted((PACKAGE / "pipelines").glob("*.py")):
        others = [m for m in _imports(path) if m.startswith("cnnlab.pipelines")]
        assert not others, f"{path.name} imports {others}: move what they share to cnnlab/steps/"


def test_the_checker_sees_an_upward_import(tmp_path: Path) -> None:
    """The parser finds both import forms (so the tests above cannot pass by reading nothing)."""
    sample = tmp_path / "m.py"
    sample.write_text("from cnnlab.pipelines import finetune\nimport cnnlab.steps.training\nfrom cnnlab import runs\n")
    assert _imports(sample) == ["cnnlab.pipelines", "cnnlab.steps.training", "cnnlab.runs"]
