"""`cnnlab prune`'s settings, typed once from the `prune:` config section (the keys its errors name)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Mapping

import torch
from omegaconf import DictConfig
from torch import nn

from cnnlab.compress.pruning.channel import IMPORTANCES, ChannelPruner, ChannelSettings, check_ratio
from cnnlab.compress.pruning.magnitude import MagnitudePruner, MagnitudeSettings
from cnnlab.data.spec import InputSpec
from cnnlab.deploy.bench import TimingPlan
from cnnlab.deploy.paired import ROUNDS, PairedSettings, threads_or_default
from cnnlab.errors import CnnlabError

METHODS = ("channel", "magnitude")
CHANNEL_ONLY = ("importance", "round_to", "taylor_batches")  # settings magnitude pruning does not read


@dataclass(frozen=True)
class PruneSettings:
    """The `prune:` section of the config (cnnlab/conf/command/prune.yaml), checked once."""

    method: str
    ratio: float
    importance: str
    global_ranking: bool
    ignore: tuple[str, ...]
    round_to: int | None
    steps: int
    finetune_epochs: int
    lr_scale: float
    taylor_batches: int
    measure: bool
    bench_threads: int                # paired timing threads (None/0 in the config: deploy.paired's default)
    bench_batch: int
    bench_seconds: float

    @classmethod
    def from_config(cls, section: DictConfig) -> "PruneSettings":
        method = str(section.method)
        if method not in METHODS:
            raise CnnlabError(f"prune.method={method} is not a pruning method", fix=f"use one of: {', '.join(METHODS)}")
        importance = str(section.importance)
        if importance not in IMPORTANCES:
            raise CnnlabError(f"prune.importance={importance} is not an importance",
                              fix=f"use one of: {', '.join(IMPORTANCES)}")
        ignore = section.get("ignore") or []
        if isinstance(ignore, str):
            ignore = [ignore]
        round_to = section.get("round_to")
        threads = section.get("bench_threads")
        parsed = cls(method=method, ratio=check_ratio(section.ratio), importance=importance,
                   global_ranking=bool(section["global"]), ignore=tuple(str(p) for p in ignore),
                   round_to=int(round_to) if round_to not in (None, 0) else None, steps=int(section.steps),
                   finetune_epochs=int(section.finetune_epochs), lr_scale=float(section.lr_scale),
                   taylor_batches=int(section.taylor_batches), measure=bool(section.measure),
                   bench_threads=threads_or_default(threads),
                   bench_batch=int(section.bench_batch), bench_seconds=float(section.bench_seconds))
        for key, value, least in (("steps", parsed.steps, 1), ("finetune_epochs", parsed.finetune_epochs, 0),
                                  ("taylor_batches", parsed.taylor_batches, 1), ("bench_batch", parsed.bench_batch, 1)):
            if value < least:
                raise CnnlabError(f"prune.{key}={value} must be at least {least}")
        if parsed.lr_scale <= 0:
            raise CnnlabError(f"prune.lr_scale={parsed.lr_scale} must be positive")
        if parsed.bench_seconds < 0:
            raise CnnlabError(f"prune.bench_seconds={parsed.bench_seconds} must be 0 or more")
        return parsed

    def refuse_channel_settings(self, section: Mapping[str, Any], defaults: Mapping[str, tuple[Any, ...]]) -> None:
        """CnnlabError for magnitude pruning given a setting only channel pruning reads (CHANNEL_ONLY) at another value
        than its packaged default (`defaults`: settings.packaged_defaults). Probe 60: `prune.importance=taylor` was
        accepted, recorded nowhere, and ignored. Likewise prune.taylor_batches for an importance other than taylor
        (probe 141: a sweep over it wrote one file twice)."""
        if self.method != "magnitude":
            if self.importance != "taylor" and section.get("taylor_batches") not in defaults.get(
                    "prune.taylor_batches", ()):
                raise CnnlabError(f"prune.taylor_batches={section.get('taylor_batches')} applies to "
                                  f"prune.importance=taylor; {self.importance} ranks channels by their weights alone "
                                  "and would ignore it",
                                  fix="drop prune.taylor_batches= (or use prune.importance=taylor)")
            return
        changed = [key for key in CHANNEL_ONLY if section.get(key) not in defaults.get(f"prune.{key}", ())]
        if changed:
            shown = "null" if section.get(changed[0]) is None else section.get(changed[0])  # as typed (probe 61)
            raise CnnlabError(f"prune.{changed[0]}={shown} applies to prune.method=channel; "
                              "magnitude pruning ranks single weights by |w| and would ignore it",
                              fix=f"drop prune.{changed[0]}= (or use prune.method=channel)")

    def pruner_settings(self) -> ChannelSettings | MagnitudeSettings:
        if self.method == "channel":
            return ChannelSettings(self.ratio, importance=self.importance, global_ranking=self.global_ranking,
                                   round_to=self.round_to, steps=self.steps)
        return MagnitudeSettings(self.ratio, global_ranking=self.global_ranking, steps=self.steps)

    def describe(self) -> dict[str, Any]:
        common = {"method": self.method, "ratio": self.ratio, "global": self.global_ranking,
                  "ignore": list(self.ignore), "steps": self.steps, "finetune_epochs": self.finetune_epochs,
                  "lr_scale": self.lr_scale}
        if self.method == "channel":
            common.update(importance=self.importance, round_to=self.round_to)
        return common

    def timing(self) -> PairedSettings:
        """Dense against pruned: prune.bench_seconds split over the rounds, each at least the default run count."""
        return PairedSettings(batch_sizes=(self.bench_batch,), threads=self.bench_threads, rounds=ROUNDS,
                              plan=TimingPlan(min_seconds=self.bench_seconds / ROUNDS))

    def make_pruner(self, model: nn.Module, keep: tuple[str, ...], spec: InputSpec) -> ChannelPruner | MagnitudePruner:
        """The pruner of these settings for `model` (channel pruning traces it on a zero image of `spec`, on the model's
        device); the layers in `keep` keep all their outputs."""
        settings = self.pruner_settings()
        if isinstance(settings, ChannelSettings):
            example = torch.zeros(1, spec.channels, spec.size, spec.size, device=next(model.parameters()).device)
            return ChannelPruner(model, example, settings, keep=keep, ignored=self.ignore)
        return MagnitudePruner(model, settings, keep=keep)
