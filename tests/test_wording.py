import pytest

from cnnlab.wording import counted, ratio_range_text, ratio_text


@pytest.mark.parametrize("count, noun, text", [(1, "epoch", "1 epoch"), (2, "epoch", "2 epochs"),
                                              (0, "trial", "0 trials"), (1200, "image", "1,200 images"),
                                              (1, "class", "1 class"), (2, "class", "2 classes"),  # probe 227
                                              (3, "batch", "3 batches")])
def test_counts_agree_with_their_noun(count: int, noun: str, text: str) -> None:
    assert counted(count, noun) == text


def test_ratios_read_faster_or_slower_never_a_fraction_faster() -> None:
    assert ratio_text(2.5) == "2.50× faster" and ratio_text(1.0) == "1.00×"
    assert ratio_text(1 / 1.03) == "1.03× slower" and ratio_text(0.5, "smaller", "larger") == "2.00× larger"


def test_a_range_of_ratios_reads_like_its_headline() -> None:
    """Per-round speed-ups were printed raw beside a headline in words: "2.45× slower (unstable: 0.41–0.55)", and at
    batch 1 "0.45–1.04" mixed slower and faster without saying so."""
    assert ratio_range_text(0.41, 0.55) == "1.82–2.44× slower"
    assert ratio_range_text(2.02, 4.12) == "2.02–4.12× faster" == ratio_range_text(4.12, 2.02)
    assert ratio_range_text(0.45, 1.04) == "2.22× slower to 1.04× faster"
    assert ratio_range_text(1.0, 1.5) == "1.00–1.50× faster" and ratio_range_text(0.5, 1.0) == "1.00–2.00× slower"
    assert ratio_range_text(2.001, 2.004) == "2.00× faster" and ratio_range_text(1.0, 1.0) == "1.00×"
    assert ratio_range_text(0.5, 0.8, "smaller", "larger") == "1.25–2.00× larger"
    assert ratio_range_text(0.999, 1.003) == "1.00×"  # was "1.00× slower to 1.00× faster"


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


def test_a_ratio_that_prints_as_one_reads_as_fast_as() -> None:
    """Probe 78: quantize logged "qop_u8s8 runs 1.00× than FP32 on this CPU"."""
    from cnnlab.wording import ratio_than

    assert ratio_than(0.999, "FP32") == "as fast as FP32 (1.00×)"
    assert ratio_than(2.5, "FP32") == "2.50× faster than FP32" and ratio_than(0.5, "FP32") == "2.00× slower than FP32"


def test_a_class_difference_of_spaces_is_said_and_shown() -> None:
    """Probe 116: a folder `banana ` (a trailing space) read "only the model's: banana; only the data's: banana"."""
    from cnnlab.wording import class_difference

    said = class_difference(["apple", "banana"], ["apple", "banana "])
    assert said == ("the names differ only in spaces (the model's banana; the data's 'banana '): class names are "
                    "compared exactly")
    assert class_difference(["a b"], ["a\tb", "c"]) == "only the model's: a b; only the data's: 'a\\tb', c"


def test_log_lines_and_error_lines_reach_the_terminal_with_control_characters_escaped(capsys) -> None:
    """Probe 132: the predict warnings ("skipped …"), the error line and the training log's class list printed a
    name's ESC and CR raw (colouring the terminal, overwriting the line) after the predict table was mended."""
    import logging

    from cnnlab.console import make_log_handler, print_error
    from cnnlab.wording import visible

    assert visible("a\x1b[31mb\rc\td\ne") == "a\\x1b[31mb\\rc\\td\\ne"
    assert visible("two\nlines\u202e", lines=True) == "two\nlines\\u202e"
    log = logging.getLogger("cnnlab.test.terminal")
    log.propagate = False
    log.addHandler(make_log_handler())
    try:
        log.warning("skipped %s: empty file", "\x1b[31mred.png")
    finally:
        log.handlers.clear()
    print_error("no image could be read (\rcr.png: empty file (0 bytes))")
    err = capsys.readouterr().err
    assert "\x1b[31m" not in err and "\r" not in err
    assert "\\x1b[31mred.png" in err and "\\rcr.png" in err
