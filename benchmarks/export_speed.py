"""Benchmark: `export_onnx` with torch's ATen → ONNX function table built once per process (cnnlab's default,
deploy/export.py `_reused_torchlib_registry`) vs built afresh for every export (what `torch.onnx.export(dynamo=True)`
does on its own). Each round exports every model both ways, alternating which goes first, so drift hits both;
the speed-up is the median of the per-round ratios. The first export of the process (which builds the table
either way) is a warm-up and not counted.

    python benchmarks/export_speed.py [--threads 2] [--rounds 3] [--json FILE]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import torch

from _common import dump, median, pin_threads, print_machine
from cnnlab.data.spec import InputSpec
from cnnlab.deploy import export as export_module
from cnnlab.models import create_model

CASES = [("lenet5", 28), ("mobilenet_v2", 32), ("resnet18", 32), ("efficientnet_b0", 64)]
CLASSES = [str(i) for i in range(10)]


def seconds(model: torch.nn.Module, size: int, path: Path, fresh_table: bool) -> float:
    if fresh_table:
        export_module._TORCHLIB_REGISTRIES.clear()  # as torch does by itself: a new table for this export
    start = time.perf_counter()
    export_module.export_onnx(model, path, spec=InputSpec(size=size), classes=CLASSES)
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--json", help="write the rows here")
    args = parser.parse_args()
    print_machine(pin_threads(args.threads))
    models = {(name, size): create_model(name, num_classes=len(CLASSES), image_size=size).eval()
              for name, size in CASES}
    rows = []
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "model.onnx"
        seconds(models[CASES[0]], CASES[0][1], path, fresh_table=True)  # warm-up: imports, first table
        for (name, size), model in models.items():
            times: dict[str, list[float]] = {"fresh": [], "reused": []}
            for round_ in range(args.rounds):
                order = ("fresh", "reused") if round_ % 2 == 0 else ("reused", "fresh")
                for key in order:  # "fresh" leaves its table behind: "reused" finds one either way
                    times[key].append(seconds(model, size, path, fresh_table=key == "fresh"))
            ratios = [f / r for f, r in zip(times["fresh"], times["reused"])]
            row = {"model": name, "size": size, "fresh_s": median(times["fresh"]),
                   "reused_s": median(times["reused"]), "speedup": median(ratios), "rounds": times}
            rows.append(row)
            print(f"{name:16s} {size:3d} px  table built per export {row['fresh_s']:6.2f} s  "
                  f"table reused {row['reused_s']:6.2f} s  speed-up {row['speedup']:.2f}x "
                  f"(per round {', '.join(f'{r:.2f}' for r in ratios)})", flush=True)
    dump(args.json, {"rows": rows, "rounds": args.rounds})


if __name__ == "__main__":
    main()
