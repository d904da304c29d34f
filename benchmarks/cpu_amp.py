"""Benchmark: bf16 autocast vs float32 for CPU training, per network and image size — the evidence behind
`trainer.amp=auto` on the CPU (engine/runtime.py: bf16 only for networks without depthwise/grouped convolutions
whose every convolution runs on maps of at least BF16_MIN_MAP px: models.measure.smallest_conv_input).

One training step = forward under autocast (or not), cross-entropy in float32, backward, SGD step; channels_last
as the engine runs it; random images (speed does not depend on their content). For every (network, size) the two
precisions alternate over --rounds rounds of --steps steps after a warm-up, so drift hits both; medians compared.

    python benchmarks/cpu_amp.py [--threads 2] [--rounds 3] [--steps 6] [--batch 64] [--json FILE]
"""

from __future__ import annotations

import argparse
import time

import torch
import torch.nn.functional as F

from _common import dump, median, pin_threads, print_machine
from cnnlab.engine.runtime import cpu_float32_reason, has_grouped_convs
from cnnlab.models import create_model
from cnnlab.models.measure import count_flops, count_params, smallest_conv_input

CIFAR = {"stem": "cifar"}
# (network, px, constructor options, batch or None for --batch): the dense ones straddle the smallest-map line; the
# last two ask whether the batch moves it (it did not: docs/benchmarks.md).
CASES = [("lenet5", 28, {}, None), ("resnet18", 28, {}, None), ("resnet18", 32, {}, None), ("resnet18", 48, {}, None),
         ("resnet18", 64, {}, None), ("resnet18", 28, CIFAR, None), ("resnet34", 32, {}, None),
         ("resnet50", 32, {}, None), ("resnet50", 64, {}, None), ("vgg11", 32, {}, None), ("googlenet", 64, {}, None),
         ("mobilenet_v2", 28, {}, None), ("mobilenet_v2", 28, CIFAR, None), ("mobilenet_v2", 64, {}, None),
         ("mobilenet_v3_small", 64, {}, None), ("efficientnet_b0", 64, {}, None),
         ("resnet18", 32, {}, 256), ("resnet18", 64, {}, 16)]


def steps_per_second(model: torch.nn.Module, images: torch.Tensor, labels: torch.Tensor, optimizer, bf16: bool,
                     steps: int) -> float:
    start = time.perf_counter()
    for _ in range(steps):
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
            loss = F.cross_entropy(model(images).float(), labels)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
    return steps / (time.perf_counter() - start)


def measure(name: str, size: int, options: dict, batch: int, args: argparse.Namespace) -> dict:
    torch.manual_seed(0)
    model = create_model(name, num_classes=10, image_size=size, **options)
    model = model.to(memory_format=torch.channels_last).train()
    images = torch.randn(batch, 3, size, size).contiguous(memory_format=torch.channels_last)
    labels = torch.randint(0, 10, (batch,))
    optimizer = torch.optim.SGD(model.parameters(), lr=1e-3, momentum=0.9)
    for bf16 in (False, True):  # warm-up: oneDNN builds its kernels for both
        steps_per_second(model, images, labels, optimizer, bf16, 2)
    rates: dict[str, list[float]] = {"fp32": [], "bf16": []}
    for _ in range(args.rounds):
        for key in ("fp32", "bf16"):
            rates[key].append(batch * steps_per_second(model, images, labels, optimizer, key == "bf16",
                                                            args.steps))
    reason = cpu_float32_reason(model, size)  # the product's own rule for trainer.amp=auto on a bf16 CPU
    label = name + "".join(f"[{k}={v}]" for k, v in options.items())
    flops = count_flops(model, size)
    row = {"model": label, "size": size, "batch": batch, "gflops": flops / 1e9, "auto": "fp32" if reason else "bf16",
           "flops_per_weight": batch * flops / count_params(model), "smallest_map": smallest_conv_input(model, size),
           "depthwise": has_grouped_convs(model),
           "fp32_img_s": median(rates["fp32"]), "bf16_img_s": median(rates["bf16"]), "rounds": rates}
    row["bf16_over_fp32"] = row["bf16_img_s"] / row["fp32_img_s"]
    print(f"{label:26s} {size:3d} px  batch {batch:3d}  {row['gflops']:6.3f} GFLOPs  {row['flops_per_weight']:5.0f} "
          f"FLOPs/weight  smallest map {row['smallest_map']:2d}  depthwise {'yes' if row['depthwise'] else 'no ':3s}  "
          f"fp32 {row['fp32_img_s']:6.0f} img/s  "
          f"bf16 {row['bf16_img_s']:6.0f} img/s  bf16/fp32 {row['bf16_over_fp32']:.2f}x  auto: {row['auto']}", flush=True)
    return row


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--steps", type=int, default=6)
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--only", nargs="*", help="model names to keep (default: all cases)")
    parser.add_argument("--json", help="write the rows here")
    args = parser.parse_args()
    print_machine(pin_threads(args.threads))
    rows = [measure(name, size, options, batch or args.batch, args) for name, size, options, batch in CASES
            if not args.only or name in args.only]
    dump(args.json, {"rows": rows, "steps": args.steps})


if __name__ == "__main__":
    main()
