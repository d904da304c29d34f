"""Running classification metrics kept on the device (no host sync per step)."""

from __future__ import annotations

import torch

from cnnlab.engine.runtime import all_reduce_sum


class ClassificationMeter:
    """Sums of loss, top-1 and top-5 hits and sample count; `.compute()` syncs once."""

    def __init__(self, device: torch.device) -> None:
        self.sums = torch.zeros(4, dtype=torch.float64, device=device)  # loss*n, top1, top5, n

    @torch.no_grad()
    def update(self, loss: torch.Tensor, logits: torch.Tensor, targets: torch.Tensor) -> None:
        n = targets.shape[0]
        k = min(5, logits.shape[-1])
        topk = logits.topk(k, dim=-1).indices
        hits = topk.eq(targets.unsqueeze(-1))
        self.sums += torch.stack([loss.detach().double() * n, hits[:, 0].sum().double(),
                                  hits.any(dim=-1).sum().double(), torch.tensor(n, dtype=torch.float64,
                                                                                 device=self.sums.device)])

    def loss_is_finite(self) -> bool:
        return bool(torch.isfinite(self.sums[0]))

    def compute(self, *, across_ranks: bool = False) -> dict[str, float]:
        sums = all_reduce_sum(self.sums) if across_ranks else self.sums
        loss, top1, top5, n = sums.tolist()
        n = max(n, 1.0)
        return {"loss": loss / n, "acc": top1 / n, "top5": top5 / n, "n": int(n)}
