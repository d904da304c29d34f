"""Projection and prediction heads for self-supervised pretraining, and the network that carries them.

SimCLR (Chen et al. 2020, arXiv:2002.05709, §2.1) trains the backbone's representation h through a small MLP
g(h) = W2 ReLU(BN(W1 h)) and discards g afterwards: the layer before the projection is the better representation
(its §4.2). SimSiam (Chen & He 2021, arXiv:2011.10566, §4) adds a predictor MLP with a bottleneck on one branch.
`SiameseNetwork` puts these heads on a zoo model whose classifier head is set aside, so the saved backbone is an
ordinary zoo model again (`backbone()`), head included.
"""

from __future__ import annotations

import torch
from torch import nn

from cnnlab.errors import CnnlabError
from cnnlab.models.heads import get_head
from cnnlab.models.registry import get_entry


def projection_head(in_dim: int, hidden_dim: int, out_dim: int, *, layers: int = 2,
                    bn_output: bool = False) -> nn.Sequential:
    """An MLP of `layers` Linear layers: (Linear → BatchNorm → ReLU) x (layers - 1), then Linear to `out_dim`.
    SimCLR's g (2 layers); SimSiam's projector (bn_output=True: BatchNorm without affine on the output, 2 layers in
    its CIFAR recipe, 3 for ImageNet). Hidden Linear layers carry no bias (BatchNorm follows them)."""
    if layers < 1:
        raise CnnlabError(f"method.projection_layers={layers} must be at least 1", fix="use method.projection_layers=2")
    modules: list[nn.Module] = []
    width = in_dim
    for _ in range(layers - 1):
        modules += [nn.Linear(width, hidden_dim, bias=False), nn.BatchNorm1d(hidden_dim), nn.ReLU(inplace=True)]
        width = hidden_dim
    modules.append(nn.Linear(width, out_dim, bias=not bn_output))
    if bn_output:
        modules.append(nn.BatchNorm1d(out_dim, affine=False))
    return nn.Sequential(*modules)


def prediction_head(dim: int, hidden_dim: int) -> nn.Sequential:
    """SimSiam's predictor h: Linear(dim → hidden) → BatchNorm → ReLU → Linear(hidden → dim), a bottleneck
    (hidden = dim / 4 in the paper: 2048 → 512 → 2048)."""
    return nn.Sequential(nn.Linear(dim, hidden_dim, bias=False), nn.BatchNorm1d(hidden_dim), nn.ReLU(inplace=True),
                         nn.Linear(hidden_dim, dim))


def feature_dim(model: nn.Module, name: str) -> int:
    """Width of the representation a `name` zoo model feeds its classifier head (its penultimate layer)."""
    return get_head(model, name).in_features


class SiameseNetwork(nn.Module):
    """A zoo model's backbone (`encoder`, its classifier head replaced by Identity, so it returns the penultimate
    features [B, D]), a `projector` and an optional `predictor`. forward(images) → (z, p): the projections [B, out]
    and the predictions (None without a predictor) — one call, so DistributedDataParallel sees every parameter.
`feature_dim` is D.

    The classifier head is kept aside, outside the module tree (not trained, not in last.pt): `backbone()` puts it
    back and returns the zoo model, to be saved as an ordinary checkpoint."""

    def __init__(self, model: nn.Module, name: str, projector: nn.Module, predictor: nn.Module | None = None) -> None:
        super().__init__()
        path = get_entry(name).head
        head = get_head(model, name)
        self.feature_dim = head.in_features
        model.set_submodule(path, nn.Identity())
        self.encoder = model
        self.projector = projector
        self.predictor = predictor
        self._head = (path, head)  # a tuple: nn.Module does not register it

    def features(self, images: torch.Tensor) -> torch.Tensor:
        """The backbone's representation h [B, D] (what a linear probe and the kNN monitor read)."""
        return self.encoder(images).flatten(1)

    def forward(self, images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
        z = self.projector(self.features(images))
        return z, (self.predictor(z) if self.predictor is not None else None)

    def backbone(self) -> nn.Module:
        """The zoo model with its classifier head back in place (on the encoder's device); the encoder is that
        model, so this network is not usable afterwards."""
        path, head = self._head
        device = next(self.encoder.parameters()).device
        self.encoder.set_submodule(path, head.to(device))
        return self.encoder
