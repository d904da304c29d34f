"""A training that starts from a classifier already trained on its classes: what that classifier scored before the
first step, and a warning when the training ends below it.

Weights trained on these classes and trained again at a from-scratch learning rate can lose what they knew: a
LeNet-5 student started from an 85.56 % run ended at 23.06 % after one epoch at optim.lr=0.05, its baseline at
13.61 %, and distill reported a KD gain of +9.44 points without a word (probe 218) — neither number is at chance, so
no other check spoke. The start is scored on the same val split the training is judged on, once, before training.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from torch import nn
from torch.utils.data import DataLoader

from cnnlab.context import RunContext
from cnnlab.data import DataBundle
from cnnlab.engine.runtime import Runtime
from cnnlab.engine.trainer import evaluate
from cnnlab.steps.recording import record_warning
from cnnlab.weights import InitialWeights, keeps_head


@dataclass(frozen=True)
class StartScore:
    """The val top-1 (a fraction in [0, 1]) of the model a training starts from, over `n` val images."""

    acc: float
    n: int

    def lost_by(self, final: float) -> bool:
        """Whether `final` (val top-1, a fraction) is below this start by more than chance wobble: two standard errors
        of a proportion at the start's accuracy over n images, and at least one point (360 images at 85 %: 3.8
        points)."""
        wobble = 2 * math.sqrt(self.acc * (1 - self.acc) / self.n) if self.n else 0.0
        return self.acc - final > max(0.01, wobble)


def starts_trained(weights: InitialWeights, data: DataBundle, new_head: bool | None) -> bool:
    """Whether `initial_model` gives a classifier already trained on the data's classes: weights with their own head
    kept (weights.keeps_head) and trained (a self-supervised run's head never was)."""
    return keeps_head(weights, data, new_head) and not weights.untrained_head


def score_at_start(model: nn.Module, val_loader: DataLoader, runtime: Runtime, *, role: str) -> StartScore | None:
    """`model`'s val top-1 before training (trainer.evaluate: float32, summed over ranks), None for an empty split.
    Leaves the model in eval mode; the training sets its own."""
    if not len(val_loader.dataset):  # type: ignore[arg-type]
        return None
    scored = evaluate(model, val_loader, runtime, desc=f"{role} val (before training)")
    return StartScore(acc=float(scored["acc"]), n=int(scored["n"]))


def warn_below_start(ctx: RunContext, start: StartScore | None, final: float | None, *, role: str, lr: float,
                     alone: float | None = None) -> bool:
    """A warning (log, run.json `warnings`) when the training ended lower than the trained classifier it started
    from (StartScore.lost_by), with the fix: a hundredth of the learning rate, where fine-tuning rates sit (10-100x
    below a from-scratch one); a tenth did not always keep the start (a LeNet-5 at optim.lr=1, then 0.1: at chance
    both times). `alone`: distill's baseline, said beside. Returns whether it ended below: the cause the other
    checks of a poor result would guess at otherwise (probe 226: "set trainer.grad_clip=2" and "train longer" beside
    it, neither of which kept the start) — recorded as metrics.ended_below_start, which they read."""
    if start is None or final is None or not start.lost_by(final):
        return False
    if not ctx.is_main:
        return True
    beside = "" if alone is None else f"; {alone:.2%} alone"
    record_warning(ctx, f"the {role} ended below where it started: val top-1 {final:.2%}, {start.acc:.2%} before "
                        f"training{beside} — weights already trained on these classes lost what they knew at "
                        f"optim.lr={lr:g}: continue them at a hundredth of it (fine-tuning rates sit 10-100x below "
                        f"a from-scratch one), optim.lr={lr / 100:g}")
    return True
