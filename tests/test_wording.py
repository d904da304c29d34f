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


def test_a_class_difference_names_only_the_side_that_has_names_of_its_own() -> None:
    """A model of classes a, b scored on data of a, b, c said "only the model's: -; only the data's: c"."""
    from cnnlab.wording import class_difference

    assert class_difference(["a", "b"], ["a", "b", "c"]) == "only the data's: c"
    assert class_difference(["a", "b", "c"], ["a", "b"]) == "only the model's: c"
    assert class_difference(["a", "x"], ["a", "y", "z"]) == "only the model's: x; only the data's: y, z"
    assert class_difference([str(i) for i in range(6)], []) == "only the model's: 0, 1, 2, 3 …"
    assert "differ only in case" in class_difference(["cat", "dog"], ["Cat", "Dog"])  # was two lists to compare
