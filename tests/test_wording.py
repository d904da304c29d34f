import pytest

from cnnlab.wording import counted, ratio_text


@pytest.mark.parametrize("count, noun, text", [(1, "epoch", "1 epoch"), (2, "epoch", "2 epochs"),
                                              (0, "trial", "0 trials"), (1200, "image", "1,200 images")])
def test_counts_agree_with_their_noun(count: int, noun: str, text: str) -> None:
    assert counted(count, noun) == text


def test_ratios_read_faster_or_slower_never_a_fraction_faster() -> None:
    assert ratio_text(2.5) == "2.50× faster" and ratio_text(1.0) == "1.00×"
    assert ratio_text(1 / 1.03) == "1.03× slower" and ratio_text(0.5, "smaller", "larger") == "2.00× larger"


def test_wording_is_a_leaf_the_light_commands_can_import() -> None:
    """`cnnlab report` and `runs` must not load torch; this module is imported by them."""
    import ast
    import inspect
    import sys

    import cnnlab.wording
    tree = ast.parse(inspect.getsource(cnnlab.wording))
    imported = {alias.name for node in ast.walk(tree) if isinstance(node, ast.Import) for alias in node.names}
    imported |= {node.module for node in ast.walk(tree) if isinstance(node, ast.ImportFrom) and node.module}
    assert all(name.split(".")[0] in sys.stdlib_module_names for name in imported), imported
