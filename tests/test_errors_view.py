"""How Hydra's own refusals look to the user (cnnlab/errors_view.py): one line that names a fix that works."""

from __future__ import annotations

import pytest

from helpers import TINY


def _error_line(result) -> str:
    lines = [ln for ln in result.stderr.splitlines() if ln.startswith("error")]
    assert len(lines) == 1, result.output
    assert "Traceback" not in result.output
    return lines[0]


@pytest.mark.parametrize("added, plain", [
    # Hydra: "Could not append to config. An item is already at 'dataset.label_fraction'." (docs/datasets.md used to
    # tell users to add it with a plus, after every dataset config had come to declare it)
    ("+dataset.label_fraction=0.5", "dataset.label_fraction=0.5"),
    ("+trainer.epochs=1", "trainer.epochs=1"),
    # a group chosen with a plus: "Multiple values for model. To override a value use 'override model: lenet5'"
    ("+model=lenet5", "model=lenet5"),
    # "trainer appears more than once in the final defaults list"
    ("+trainer=default", "trainer=default"),
])
def test_a_plus_on_what_exists_names_the_override_without_it_and_that_works(cli, added: str, plain: str) -> None:
    args = [a for a in TINY if a.split("=")[0] != plain.split("=")[0]]
    refused = cli("pretrain", *args, added)
    assert refused.code == 2, refused.output
    line = _error_line(refused)
    assert line.startswith(f"error: {added}: ") and line.endswith(f"drop the '+': {plain}"), line
    followed = cli("pretrain", *args, plain)
    assert followed.code == 0, followed.output


def test_a_plus_on_a_new_key_still_adds_it(cli) -> None:
    result = cli("pretrain", *TINY, "+trainer.my_note=1", "--cfg", "job")
    assert result.code == 0 and "my_note: 1" in result.stdout, result.output
