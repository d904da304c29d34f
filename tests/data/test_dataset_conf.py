"""The shipped conf/dataset/*.yaml files carry every key the data package reads."""

from __future__ import annotations

from pathlib import Path

import pytest
from omegaconf import OmegaConf

import cnnlab
from cnnlab.data import DATASETS, build_datasets, resolve_input_spec
from cnnlab.data.spec import InputSpec

CONF = Path(cnnlab.__file__).parent / "conf" / "dataset"


def load(name: str, **overrides: object):
    """The YAML plus overrides (root= replaces ${paths.data}, which has no value outside Hydra)."""
    return OmegaConf.merge(OmegaConf.load(CONF / f"{name}.yaml"), overrides)


@pytest.mark.parametrize("name", DATASETS)
def test_every_dataset_has_a_config_that_resolves_a_spec(name: str) -> None:
    cfg = load(name, root="/data")
    assert cfg.name == name
    spec = resolve_input_spec(cfg, None)
    assert spec.size == (cfg.image_size or cfg.native_size) and len(spec.mean) == 3
    assert resolve_input_spec(cfg, InputSpec(224)).size == (cfg.image_size or 224)
    assert {"hflip", "random_crop", "crop_scale", "randaugment", "randaugment_magnitude"} <= set(cfg.augment)


def test_synthetic_config_builds_from_an_omegaconf_node() -> None:
    cfg = load("synthetic", train_size=20, val_size=10, image_size=16)
    bundle = build_datasets(cfg, resolve_input_spec(cfg, None))
    assert len(bundle.train) == 20 and bundle.train[0][0].shape == (3, 16, 16) and bundle.random_train_transform


def test_digits_config_does_not_mirror_digits() -> None:
    cfg = load("digits", image_size=8)
    assert not cfg.augment.hflip
    assert build_datasets(cfg, resolve_input_spec(cfg, None)).classes == [str(d) for d in range(10)]
