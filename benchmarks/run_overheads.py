"""Benchmark: two costs every command pays around its real work, as cnnlab pays them now and as before, interleaved
round by round in one run.

1. Loading a model.pt (`engine.checkpoint.load_model`: export, bench, evaluate, predict, quantize and prune all start
   there): the network now built on the meta device and given empty storage before its weights are loaded
   (`built_for_loading`), against building it with torch's random initialisation first, as before. VGG-16, ResNet-50
   and ResNet-18 checkpoints (10 classes, 64 px), saved by cnnlab.
2. Saving the resolved config of a run (`steps.resume.save_effective_config`, .hydra/config.yaml): OmegaConf's own
   YAML dump of the resolved values, against rebuilding a DictConfig of them for `OmegaConf.to_yaml`, as before.
   The text written is checked to be the same.

    python benchmarks/run_overheads.py [--rounds 7]
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

from _common import interleaved, median, pin_threads, print_machine, print_medians

NETWORKS = ("vgg16", "resnet50", "resnet18")


def _saved_checkpoints(folder: Path) -> dict[str, Path]:
    from cnnlab.data.spec import InputSpec
    from cnnlab.engine.checkpoint import save_model
    from cnnlab.models import create_model

    paths = {}
    for name in NETWORKS:
        paths[name] = folder / f"{name}.pt"
        save_model(paths[name], create_model(name, 10, 64), arch={"name": name, "num_classes": 10, "image_size": 64},
                   classes=[str(i) for i in range(10)], spec=InputSpec(size=64))
    return paths


def _load(path: Path, *, skip_init: bool) -> None:
    from cnnlab.engine import checkpoint

    now = checkpoint.built_for_loading
    if not skip_init:
        checkpoint.built_for_loading = lambda build: build()  # the build before: random initialisation first
    try:
        checkpoint.load_model(path)
    finally:
        checkpoint.built_for_loading = now


def _config() -> object:
    import cnnlab.app  # noqa: F401  (registers cnnlab's resolvers)
    from hydra import compose, initialize_config_module

    with initialize_config_module("cnnlab.conf", version_base="1.3"):
        return compose("config", overrides=["command=search"])


def _saved_text(cfg: object, *, direct: bool) -> str:
    import yaml
    from omegaconf import OmegaConf
    from omegaconf._utils import get_omega_conf_dumper

    if direct:
        values = OmegaConf.to_container(cfg, resolve=True, throw_on_missing=False, enum_to_str=True)
        return yaml.dump(values, Dumper=get_omega_conf_dumper(), default_flow_style=False, allow_unicode=True,
                         sort_keys=False)
    return OmegaConf.to_yaml(OmegaConf.create(OmegaConf.to_container(cfg, resolve=True, throw_on_missing=False)))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rounds", type=int, default=7)
    args = parser.parse_args()
    print_machine(pin_threads(1))
    with tempfile.TemporaryDirectory() as folder:
        paths = _saved_checkpoints(Path(folder))
        for name, path in paths.items():
            measures = {"now: meta build, empty storage": lambda p=path: _load(p, skip_init=True),
                        "before: random init, then load": lambda p=path: _load(p, skip_init=False)}
            interleaved(measures, 1)  # warm-up: the file in the page cache, the imports
            times = interleaved(measures, args.rounds)
            now, before = (median(values) for values in times.values())
            print(f"load_model of a {name} model.pt ({path.stat().st_size / 1e6:.1f} MB), {args.rounds} rounds:")
            print_medians(times, width=34)
            print(f"  speed-up: {before / now:.2f}x  ({before - now:.3f} s less per load)")
    cfg = _config()
    assert _saved_text(cfg, direct=True) == _saved_text(cfg, direct=False)
    measures = {"now: OmegaConf's dumper, direct": lambda: [_saved_text(cfg, direct=True) for _ in range(20)],
                "before: DictConfig rebuilt": lambda: [_saved_text(cfg, direct=False) for _ in range(20)]}
    interleaved(measures, 1)
    times = interleaved(measures, args.rounds)
    now, before = (median(values) / 20 for values in times.values())
    print(f"saving the resolved config of `cnnlab search` (same text both ways), per save, {args.rounds} rounds of 20:")
    print(f"  now {1000 * now:.1f} ms, before {1000 * before:.1f} ms: {before / now:.2f}x")


if __name__ == "__main__":
    main()
