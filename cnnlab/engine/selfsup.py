"""Self-supervised objectives: SimCLR's NT-Xent and SimSiam's negative cosine, as engine objectives.

Both take a batch (view 1 [N, C, H, W], view 2 [N, C, H, W], labels — ignored) and a `SiameseNetwork`-like model
whose forward(images) returns (projections z, predictions p or None). The two views go through the model in
one call (one forward per step, as DistributedDataParallel expects; BatchNorm sees both views, as in SimCLR's
reference). Each objective returns (loss, logits, targets) so the engine's meter reports a meaningful "accuracy":

- SimCLR: the contrastive classification — for every view-1 image, is its other view the most similar of the
  2N - 1 candidates (SimCLR reports this "contrastive accuracy").
- SimSiam: view matching — is p(view 1) closest (cosine) to z(view 2) of the same image among the batch.

`validation` (the engine's per-epoch evaluation hook, see trainer.py) is the kNN monitor when one is given.

References: Chen, Kornblith, Norouzi & Hinton 2020, "A Simple Framework for Contrastive Learning of Visual
Representations" (arXiv:2002.05709), eq. 1; Chen & He 2021, "Exploring Simple Siamese Representation Learning"
(arXiv:2011.10566), eq. 1-4.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Mapping, Sequence

import torch
import torch.distributed as dist
import torch.nn.functional as F
from torch import nn

from cnnlab.engine.objectives import Validation
from cnnlab.errors import CnnlabError

METHODS = ("simclr", "simsiam")


def _world() -> tuple[int, int]:
    """(rank, world size) of the process group, (0, 1) without one."""
    if torch.distributed.is_available() and torch.distributed.is_initialized():
        return torch.distributed.get_rank(), torch.distributed.get_world_size()
    return 0, 1


class _GatherWithGrad(torch.autograd.Function):
    """all_gather whose backward sums each rank's gradient for every part over the ranks and hands each rank the
    sum for its own part — SimCLR's and lightly's GatherLayer, on public torch.distributed calls
    (torch.distributed.nn.functional.all_gather, which did the same, is deprecated since torch 2.14). The ranks'
    parts may differ in rows (their shares of a last batch that does not divide by them: EpochSampler): each is
    padded to the longest for the collective and cut back (gloo aborted on unequal sizes; probe 92)."""

    @staticmethod
    def forward(ctx: Any, tensor: torch.Tensor) -> tuple[torch.Tensor, ...]:  # type: ignore[override]
        world = dist.get_world_size()
        sizes = [torch.zeros(1, dtype=torch.long, device=tensor.device) for _ in range(world)]
        dist.all_gather(sizes, torch.tensor([tensor.shape[0]], device=tensor.device))
        rows = [int(size) for size in sizes]
        padded = torch.zeros((max(rows), *tensor.shape[1:]), dtype=tensor.dtype, device=tensor.device)
        padded[:tensor.shape[0]] = tensor
        parts = [torch.empty_like(padded) for _ in range(world)]
        dist.all_gather(parts, padded.contiguous())
        ctx.rows = rows
        return tuple(part[:n] for part, n in zip(parts, rows))

    @staticmethod
    def backward(ctx: Any, *grads: torch.Tensor) -> torch.Tensor:  # type: ignore[override]
        longest = max(ctx.rows)
        padded = [torch.cat([g, g.new_zeros((longest - g.shape[0], *g.shape[1:]))]) for g in grads]
        summed = torch.stack(padded).contiguous()
        dist.all_reduce(summed)
        return summed[dist.get_rank()][:ctx.rows[dist.get_rank()]]


def gather_with_grad(tensor: torch.Tensor) -> tuple[torch.Tensor, int]:
    """(every rank's `tensor` concatenated along dim 0, this rank's offset in it). Gradients flow back to each
    rank's own part, summed over the ranks (_GatherWithGrad), so negatives from other ranks train this rank's
    encoder as in a single process with the global batch. The ranks' row counts may differ. Without DDP:
    (tensor, 0)."""
    rank, world = _world()
    if world == 1:
        return tensor, 0
    parts = _GatherWithGrad.apply(tensor)
    return torch.cat(parts), sum(part.shape[0] for part in parts[:rank])


def nt_xent(z1: torch.Tensor, z2: torch.Tensor, temperature: float, *,
            gather: bool = True) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """SimCLR's NT-Xent loss (normalised temperature-scaled cross-entropy) of two views' projections [N, D].

    Every one of the 2N views is an anchor; its positive is the other view of its image, the other 2N - 2 views
    are negatives: loss = mean over anchors i of -log(exp(sim(i, pos) / t) / sum_{k != i} exp(sim(i, k) / t)),
    sim the cosine similarity. Under torch.distributed (gather=True) the candidates are the views of all ranks
    (2 N x world), gathered with gradients. Computed in float32.

    Returns (loss, logits [N, 2N'] of the view-1 anchors with -inf at the anchor itself, targets [N]: the column of
    each anchor's positive) — the contrastive classification whose top-1 is SimCLR's "contrastive accuracy"."""
    z1, z2 = F.normalize(z1.float(), dim=1), F.normalize(z2.float(), dim=1)
    n = z1.shape[0]
    all1, offset = gather_with_grad(z1) if gather else (z1, 0)
    all2, _ = gather_with_grad(z2) if gather else (z2, 0)
    total = all1.shape[0]
    anchors = torch.cat([z1, z2])                               # [2n, D]
    logits = anchors @ torch.cat([all1, all2]).T / temperature  # [2n, 2N]
    own = torch.arange(n, device=z1.device) + offset
    self_column = torch.cat([own, own + total])
    positive = torch.cat([own + total, own])
    is_self = torch.zeros_like(logits, dtype=torch.bool)
    is_self[torch.arange(2 * n, device=z1.device), self_column] = True
    logits = logits.masked_fill(is_self, float("-inf"))
    loss = F.cross_entropy(logits, positive)
    return loss, logits[:n].detach(), positive[:n]


def negative_cosine(p: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
    """SimSiam's D(p, z) = -cos(p, stopgrad(z)), averaged over the batch: -1 when p and z point the same way.
    No gradient reaches z (the stop-gradient that keeps SimSiam from collapsing, its §4)."""
    return -F.cosine_similarity(p.float(), z.detach().float(), dim=-1).mean()


def simsiam_loss(p1: torch.Tensor, p2: torch.Tensor, z1: torch.Tensor, z2: torch.Tensor) -> torch.Tensor:
    """The symmetrised SimSiam loss: D(p1, z2) / 2 + D(p2, z1) / 2 (in [-1, 1])."""
    return negative_cosine(p1, z2) / 2 + negative_cosine(p2, z1) / 2


def both_views(model: nn.Module, batch: Sequence[torch.Tensor]) -> tuple[int, torch.Tensor, torch.Tensor | None]:
    """(N, projections z [2N, ...], predictions p [2N, ...] or None) of a batch's two views [N, C, H, W] each, in one
    forward call: rows :N are view 1, N: view 2."""
    n = batch[0].shape[0]
    z, p = model(torch.cat([batch[0], batch[1]]))
    return n, z, p


# The temperatures SimCLR reports (arXiv:2002.05709, table 5 and B.9: 0.1-1); below the first, NT-Xent's logits (up to
# 1/T) and gradients grow fast. USUAL_TEMPERATURES brackets what published contrastive recipes use (CLIP ends at 0.01).
SIMCLR_LOWEST_TEMPERATURE = 0.1
USUAL_TEMPERATURES = (0.01, 10.0)


class SimCLRObjective:
    """NT-Xent on the projections of the batch's two views (`nt_xent`), with an optional per-epoch `validation`."""

    accuracy_name = "contrastive acc"  # the train top-1 is picking each view's partner, not a class
    contrasts_within_batch = True  # a step of one image has no negatives: loss 0, a free hit (probe 143)

    def __init__(self, temperature: float, validation: Validation | None = None) -> None:
        self.temperature = temperature
        self.validation = validation

    @property
    def divergence_hint(self) -> str | None:
        """A loss that became NaN/inf at a temperature below SimCLR's: the temperature is the first suspect."""
        if self.temperature >= SIMCLR_LOWEST_TEMPERATURE:
            return None
        return (f"raise method.temperature (now {self.temperature:g}: NT-Xent's logits reach 1/T = "
                f"{1 / self.temperature:.3g}; SimCLR used 0.1 to 1, e.g. method.temperature=0.5)")

    def __call__(self, model: nn.Module, batch: Sequence[torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor,
                                                                                  torch.Tensor]:
        n, z, _ = both_views(model, batch)
        return nt_xent(z[:n], z[n:], self.temperature)


class SimSiamObjective:
    """The symmetrised negative cosine of predictions and stop-gradient projections (`simsiam_loss`)."""

    accuracy_name = "view-match acc"

    def __init__(self, validation: Validation | None = None) -> None:
        self.validation = validation

    def __call__(self, model: nn.Module, batch: Sequence[torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor,
                                                                                  torch.Tensor]:
        n, z, p = both_views(model, batch)
        if p is None:
            raise ValueError("SimSiam needs a model with a predictor")
        loss = simsiam_loss(p[:n], p[n:], z[:n], z[n:])
        with torch.no_grad():  # view matching: p(view 1) of image i against z(view 2) of every image
            logits = F.normalize(p[:n].float(), dim=1) @ F.normalize(z[n:].float(), dim=1).T
        return loss, logits, torch.arange(n, device=logits.device)


# The widest head a setting may ask for. The widest projectors published are 8192 (Barlow Twins, VICReg); at
# 65,536 a Linear from a 2048-wide backbone holds 0.5 GB. Beyond it a typo allocated terabytes: a traceback (probe 118).
MAX_WIDTH = 65536
# The deepest: SimCLR v2's projector has 3 layers; 100,000 trained to NaN weights with a fix (lower optim.lr) that
# did not help.
MAX_HEAD_LAYERS = 16


def _positive_int(value: Any, key: str, example: int, high: int | None = None) -> int:
    try:
        number = int(value)
    except (TypeError, ValueError):
        number = 0
    if number < 1 or (isinstance(value, float) and not value.is_integer()):
        raise CnnlabError(f"{key}={value} must be a whole number >= 1", fix=f"use e.g. {key}={example}")
    if high is not None and number > high:
        raise CnnlabError(f"{key}={value} is more than any projection head takes (at most {high:,})",
                          fix=f"use e.g. {key}={example}")
    return number


def _positive(value: Any, key: str, example: float) -> float:
    try:
        number = float(value)
    except (TypeError, ValueError):
        number = 0.0
    if not number > 0:
        raise CnnlabError(f"{key}={value} must be a number > 0", fix=f"use e.g. {key}={example:g}")
    return number


@dataclass(frozen=True)
class SelfSupervisedSettings:
    """The `method` group for a self-supervised method (everything but `views`, which data/views.py types).

    hidden_dim None: the width of the backbone's features (SimCLR's and SimSiam's choice: 2048 for ResNet-50);
    predictor_hidden_dim: SimSiam only; unlabeled: also train on the dataset's unlabeled split (STL-10)."""

    name: str
    temperature: float = 0.5
    projection_dim: int = 128
    hidden_dim: int | None = None
    projection_layers: int = 2
    predictor_hidden_dim: int = 512
    unlabeled: bool = True
    knn_k: int = 200
    knn_temperature: float = 0.1
    knn_bank_size: int | None = None

    @classmethod
    def from_config(cls, section: Mapping[str, Any]) -> "SelfSupervisedSettings":
        """Raises CnnlabError for an unknown method name or an out-of-range value."""
        name = str(section.get("name"))
        if name not in METHODS:
            raise CnnlabError(f"method.name={name} is not a self-supervised method",
                              fix=f"use method=supervised or one of: {', '.join(METHODS)}")
        hidden = section.get("hidden_dim", "auto")
        knn = section.get("knn") or {}
        bank = knn.get("bank_size")
        return cls(
            name=name, temperature=_positive(section.get("temperature", cls.temperature), "method.temperature", 0.5),
            projection_dim=_positive_int(section.get("projection_dim", cls.projection_dim), "method.projection_dim",
                                         2048 if name == "simsiam" else 128, MAX_WIDTH),  # each paper's (probe 143)
            hidden_dim=None if str(hidden).lower() in ("auto", "none", "null") else
            _positive_int(hidden, "method.hidden_dim", 512, MAX_WIDTH),
            projection_layers=_positive_int(section.get("projection_layers", cls.projection_layers),
                                            "method.projection_layers", 2, MAX_HEAD_LAYERS),
            predictor_hidden_dim=_positive_int(section.get("predictor_hidden_dim", cls.predictor_hidden_dim),
                                               "method.predictor_hidden_dim", 512, MAX_WIDTH),
            unlabeled=bool(section.get("unlabeled", cls.unlabeled)),
            knn_k=_positive_int(knn.get("k", cls.knn_k), "method.knn.k", 200),
            knn_temperature=_positive(knn.get("temperature", cls.knn_temperature), "method.knn.temperature", 0.1),
            knn_bank_size=None if bank is None or str(bank).lower() in ("none", "null") else
            _positive_int(bank, "method.knn.bank_size", 10000))

    @property
    def batch_need(self) -> str:
        """Why the method needs a batch of several images, in words (this check's and pretrain's fewer-than-a-batch
        refusal's): SimCLR's negatives; SimSiam has none, its heads' BatchNorm normalises over the batch."""
        return ("simclr contrasts each image with the others of its batch" if self.name == "simclr" else
                f"{self.name}'s projector and predictor normalise over a whole batch (BatchNorm)")

    def check_batch(self, batch_size: int) -> None:
        """A global batch of one image gives SimCLR no negatives (and BatchNorm in the heads one sample)."""
        if batch_size >= 2:
            return
        why = self.batch_need + (": a batch of one has no negatives" if self.name == "simclr" else
                                 ": one image per batch has nothing to normalise against")
        raise CnnlabError(f"trainer.batch_size={batch_size} with method={self.name}: {why}",
                          fix="use trainer.batch_size=256 (or as large as memory allows; at least 2, at most the "
                              "number of training images)")

    def record(self) -> dict[str, Any]:
        """run.json's `pretrain` section (without the views, which the pipeline adds)."""
        data: dict[str, Any] = {"method": self.name, "projection_dim": self.projection_dim,
                                "hidden_dim": self.hidden_dim, "projection_layers": self.projection_layers,
                                "unlabeled": self.unlabeled,
                                "knn": {"k": self.knn_k, "temperature": self.knn_temperature,
                                        "bank_size": self.knn_bank_size}}
        if self.name == "simclr":
            data["temperature"] = self.temperature
        else:
            data["predictor_hidden_dim"] = self.predictor_hidden_dim
        return data
