"""Receptive-field arithmetic on real forward passes: stacks, branches, gates, flattening."""

from __future__ import annotations

import torch
from torch import nn

from cnnlab.deploy.receptive_field import Field, FieldTracer


def trace(module: nn.Module, size: int = 32) -> tuple[Field | None, FieldTracer]:
    tracer = FieldTracer()
    with torch.no_grad(), tracer:
        out = module.eval()(tracer.start(torch.zeros(1, 3, size, size)))
    return tracer.field(out), tracer


def test_a_stack_follows_the_classic_recurrence() -> None:
    stack = nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2), nn.Conv2d(4, 4, 3, dilation=2),
                          nn.Conv2d(4, 4, 5, stride=2), nn.AvgPool2d(3, stride=1))
    # r += (k - 1)·d·j, j *= s:
    # 1 → 3 (3×3) → 4 (pool 2; j 2) → 12 (3×3 dilated 2) → 20 (5×5 s2; j 4) → 28 (3×3 pool)
    field, _ = trace(stack)
    assert field == Field(size=28, jump=4)


class TwoPaths(nn.Module):
    """A residual-style join of a 3×3 path and a 7×7 path."""

    def __init__(self) -> None:
        super().__init__()
        self.narrow, self.wide = nn.Conv2d(3, 4, 3, padding=1), nn.Conv2d(3, 4, 7, padding=3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.cat([self.narrow(x), self.wide(x)], 1) + torch.cat([self.wide(x), self.narrow(x)], 1)


def test_joined_paths_take_the_widest_field() -> None:
    assert trace(TwoPaths())[0] == Field(size=7, jump=1)


class Gated(nn.Module):
    """A squeeze-excitation gate: a globally pooled 1×1 tensor scales the map."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 4, 3, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.conv(x)
        return x * torch.sigmoid(nn.functional.adaptive_avg_pool2d(x, 1))


def test_a_global_gate_is_flagged_not_widened() -> None:
    field, _ = trace(Gated())
    assert field is not None and field.size == 3 and field.jump == 1 and field.global_context


def test_flattening_keeps_the_field_until_a_linear_mixes_the_positions() -> None:
    conv, linear = nn.Conv2d(3, 2, 3, stride=2, padding=1), nn.Linear(2 * 4 * 4, 5)
    tracer = FieldTracer()
    with torch.no_grad(), tracer:
        flat = torch.flatten(conv(tracer.start(torch.zeros(1, 3, 8, 8))), 1)
        out = linear(flat)
    assert tracer.field(flat).size == 3  # type: ignore[union-attr]
    assert tracer.field(out).size == 3 + 3 * 2  # type: ignore[union-attr]  # all 4 positions, 2 px apart


def test_untraced_tensors_have_no_field() -> None:
    _, tracer = trace(nn.Conv2d(3, 3, 1))
    assert tracer.field(torch.zeros(1)) is None


def _gradient_extent(module: nn.Module, size: int) -> int:
    """The widest side of input pixels one output element depends on, measured by its input gradient (every
    element tried): the field an independent check reads off the network itself."""
    image = torch.zeros(1, 3, size, size, requires_grad=True)
    out = module.eval()(image).flatten()
    widest = 0
    for index in range(out.numel()):
        (grad,) = torch.autograd.grad(out[index], image, retain_graph=True)
        rows = grad.abs().sum(dim=(0, 1, 3)).nonzero()
        widest = max(widest, int(rows.max() - rows.min()) + 1)
    return widest


def test_an_adaptive_pool_that_out_does_not_divide_has_the_field_its_widest_window_gives() -> None:
    """Probe 120: k = ⌈in/out⌉ took 54 → 5 for 11 positions where PyTorch's widest window reads 12, and the first
    Linear after it saw 216 px of LeNet-5's 224 px image where its logits depend on all of it (228 unclipped)."""
    for size, out in ((54, 5), (47, 5), (8, 6), (20, 5), (4, 5), (6, 7), (3, 3)):  # upsampling too (probe 123)
        pool = nn.Sequential(nn.Conv2d(3, 2, 3, padding=1), nn.AdaptiveAvgPool2d(out))
        field, _ = trace(pool, size)
        assert field is not None and field.size == _gradient_extent(pool, size), (size, out)
        classifier = nn.Sequential(pool, nn.Flatten(), nn.Linear(2 * out * out, 3))
        field, _ = trace(classifier, size)
        assert field is not None and field.size == 3 + (size - 1) * 1  # the whole map the pool read, unclipped
        assert _gradient_extent(classifier, size) == size  # clipped at the border: every pixel


def test_an_adaptive_pools_jump_is_the_widest_spacing_of_its_windows() -> None:
    """Probe 146: LeNet-5 at 32 px pools 6 → 5 positions; the windows start 1 position apart everywhere, but the jump
    read ⌈6/5⌉ = 2 (8 px where neighbouring units are 4 px apart)."""
    for size, out in ((6, 5), (54, 5), (8, 6), (20, 5), (9, 4)):
        pool = nn.Sequential(nn.Conv2d(3, 2, 3, padding=1), nn.AdaptiveAvgPool2d(out))
        field, _ = trace(pool, size)
        starts = [i * size // out for i in range(out)]  # PyTorch's ⌊i·in/out⌋, computed here on its own
        assert field is not None and field.jump == max(b - a for a, b in zip(starts, starts[1:])), (size, out)
