"""run.json's dataset section (cnnlab/steps/recording.py)."""

from __future__ import annotations

from omegaconf import OmegaConf

from cnnlab.conftree import CONF_DIR
from cnnlab.data import build_datasets
from cnnlab.data.spec import InputSpec
from cnnlab.steps.recording import dataset_record


def test_the_recorded_config_gives_the_size_the_images_were_made_at() -> None:
    """Probe 53 (N1): `cnnlab evaluate dataset=synthetic` of a 32 px model drew the images at 32 px, as the model's
    spec says, but run.json's `dataset.config.image_size` said the config's 64: a client that rebuilt the data
    from the record drew other pictures (58.33 % instead of 57.33 %)."""
    config = OmegaConf.load(CONF_DIR / "dataset" / "synthetic.yaml")
    config.train_size, config.val_size = 20, 20
    data = build_datasets(config, InputSpec(size=32), train_augment=False)
    assert data.val[0][0].shape[-1] == 32
    record = dataset_record(data, config)
    assert record["config"]["image_size"] == record["image_size"] == 32
    config.image_size = None  # null (the native size) stays as typed: a rebuild gives the same
    assert dataset_record(build_datasets(config, InputSpec(size=32), train_augment=False), config)["config"][
        "image_size"] is None
