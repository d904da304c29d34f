"""Benchmark: the GPU's own ceiling for a training step of a network, with no data loading — random inputs already
on the device, bf16 autocast and channels-last as cnnlab's CUDA runtime trains (engine/runtime.py). Set beside a
run's logged images/s, it says whether that run waited on the GPU or on its DataLoader.

    python benchmarks/gpu_step.py [--model resnet18] [--stem cifar] [--size 32] [--batch 1024] [--steps 20]
"""

from __future__ import annotations

import argparse
import time

import torch
import torch.nn.functional as F

from cnnlab.models import create_model


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="resnet18")
    parser.add_argument("--stem", default="cifar", help="model.stem (resnet18: imagenet | cifar)")
    parser.add_argument("--size", type=int, default=32)
    parser.add_argument("--batch", type=int, default=1024, help="SimCLR at batch 512 trains on 1,024 views a step")
    parser.add_argument("--steps", type=int, default=20)
    args = parser.parse_args()
    if not torch.cuda.is_available():
        raise SystemExit("needs a CUDA GPU")
    torch.backends.cudnn.benchmark = True
    device = torch.device("cuda")
    stem = {} if args.stem == "imagenet" else {"stem": args.stem}
    model = create_model(args.model, 10, args.size, **stem).to(device, memory_format=torch.channels_last)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9, nesterov=True)
    x = torch.randn(args.batch, 3, args.size, args.size, device=device).to(memory_format=torch.channels_last)
    y = torch.randint(0, 10, (args.batch,), device=device)

    def step() -> None:
        with torch.autocast("cuda", dtype=torch.bfloat16):
            loss = F.cross_entropy(model(x), y)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()

    for _ in range(5):
        step()
    torch.cuda.synchronize()
    started = time.perf_counter()
    for _ in range(args.steps):
        step()
    torch.cuda.synchronize()
    seconds = (time.perf_counter() - started) / args.steps
    print(f"{torch.cuda.get_device_name(device)}: {args.model} ({args.stem} stem) at {args.size} px, "
          f"batch {args.batch}, bf16 + channels-last: {1000 * seconds:.1f} ms a step, "
          f"{args.batch / seconds:,.0f} images/s "
          f"(no data loading; {args.steps} steps after 5 warm-up)")


if __name__ == "__main__":
    main()
