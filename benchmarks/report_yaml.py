"""Benchmark: reading runs' saved configs (`.hydra/config.yaml`) as `cnnlab report` does, with libyaml's safe
loader (fileio.read_yaml_mapping) against PyYAML's pure-Python one (yaml.safe_load), interleaved in one run.

The report reads each model run's config to group seeds (report/seeds.py); probe 111 found that parsing was half of
a 3,200-run report's time. The files are cnnlab's own composed config, written N times into a temporary folder.

    python benchmarks/report_yaml.py [--files 400] [--rounds 5]
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

import yaml
from _common import interleaved, median, print_machine, print_medians

from cnnlab.fileio import read_yaml_mapping


def pure_python(path: Path) -> dict | None:
    data = yaml.safe_load(path.read_text())
    return data if isinstance(data, dict) else None


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--files", type=int, default=400)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    print_machine(None)
    from hydra import compose, initialize_config_module
    from omegaconf import OmegaConf

    with initialize_config_module("cnnlab.conf", version_base="1.3"):
        text = OmegaConf.to_yaml(compose("config", overrides=["command=finetune"]), resolve=False)
    with tempfile.TemporaryDirectory() as folder:
        files = [Path(folder) / f"{i}.yaml" for i in range(args.files)]
        for path in files:
            path.write_text(text)
        assert all(read_yaml_mapping(p) == pure_python(p) for p in files[:3])  # the same mapping either way
        times = interleaved({"libyaml (read_yaml_mapping)": lambda: [read_yaml_mapping(p) for p in files],
                             "pure Python (yaml.safe_load)": lambda: [pure_python(p) for p in files]}, args.rounds)
    fast, slow = (median(t) for t in times.values())
    print(f"{args.files} config files ({len(text)} bytes each), {args.rounds} interleaved rounds, medians:")
    print_medians(times)
    print(f"  speed-up: {slow / fast:.1f}x")


if __name__ == "__main__":
    main()
