"""The training recipe: every setting one training run uses, typed once from the config.

A command builds its `Recipe` at the top (`Recipe.from_config(cfg)`, which reads `trainer`, `optim`, `sched`
and `seed`) and hands the object down; where it needs another value it makes a copy with
`dataclasses.replace(recipe, epochs=3)` or `recipe.with_lr_scale(0.1)` instead of merging a new config.
The boundary checks (settings.py) have already refused out-of-range values; what is checked here is what
turns text into a type (`precise_bn=maybe`, `bn_momentum=fast`).
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any, Mapping

from cnnlab.engine.epoch_log import EpochLogSettings
from cnnlab.errors import CnnlabError

_OFF = ("none", "null")
# where training images are augmented (trainer.augment_on): steps/augment_on.py places it
AUGMENT_ON = ("auto", "workers", "device")


def auto_flag(value: Any, key: str) -> bool | None:
    """true/false, or None for auto. Raises CnnlabError for anything else."""
    if isinstance(value, bool):
        return value
    text = str(value).lower()
    if text in ("auto", *_OFF):
        return None
    if text in ("true", "false"):
        return text == "true"
    raise CnnlabError(f"{key}={value} is not a choice", fix=f"use {key}=auto, true or false")


def _optional(value: Any, kind: type, *, zero_is_off: bool = False) -> Any:
    """`kind(value)`, or None for null/none (and for 0 when `zero_is_off`)."""
    if value is None or str(value).lower() in _OFF or (zero_is_off and not value):
        return None
    return kind(value)


def _plain(node: Any) -> dict[str, Any]:
    """A config section (DictConfig or mapping) as a plain dict, interpolations resolved."""
    if node is None:
        return {}
    try:
        from omegaconf import OmegaConf

        if OmegaConf.is_config(node):
            return dict(OmegaConf.to_container(node, resolve=True))  # type: ignore[arg-type]
    except ImportError:  # pragma: no cover - omegaconf ships with hydra
        pass
    return dict(node)


@dataclass(frozen=True)
class Recipe:
    """How to train: the `trainer` group, the optimizer (`optim`) and schedule (`sched`) sections, and `seed`.

    Units: epochs and batches are counts, `batch_size` is the global batch (split over DDP ranks),
    `grad_clip` a max L2 norm, `mixup`/`cutmix` Beta alphas (0 = off). `optimizer` is the `optim` section as
    instantiated by Hydra (`_target_`, `lr`, `weight_decay`, ...); `schedule` the `sched` section (name,
    warmup_epochs, ...). Frozen: a copy with other values comes from `dataclasses.replace`.
    """

    epochs: int = 5
    batch_size: int = 64
    eval_batch_size: int | None = None          # None: 2 x batch_size
    workers: int | None = None                  # DataLoader workers; None = auto (see training.loader_workers)
    augment_on: str = "auto"                    # auto | workers | device (steps/augment_on.py)
    seed: int = 0                               # training seed: init, data order, augmentation
    amp: str = "auto"                           # auto | bf16 | fp16 | none (resolved by engine/runtime.py)
    channels_last: Any = "auto"
    grad_clip: float | None = None
    label_smoothing: float = 0.0
    mixup: float = 0.0
    cutmix: float = 0.0
    compile: bool = False
    log_every: int = 20
    checkpoint_every: int = 1
    max_steps_per_epoch: int | None = None
    sync_bn: bool = False
    precise_bn: bool | None = None              # None = auto: on when the model has BatchNorm layers that train
    precise_bn_batches: int = 20
    bn_momentum: float | None = None            # None: each BatchNorm layer keeps its own
    optimizer: Mapping[str, Any] = field(default_factory=lambda: {"_target_": "torch.optim.SGD", "lr": 0.05})
    schedule: Mapping[str, Any] = field(default_factory=lambda: {"name": "constant"})
    epoch_log: EpochLogSettings = field(default_factory=EpochLogSettings)  # root key `logger`: TensorBoard or not

    __hash__ = None  # type: ignore[assignment]  # the two mappings are not hashable; nothing hashes a recipe

    def images_read(self, train_images: int) -> int:
        """The training images the epochs read in all (all DDP ranks together), repeats counted: each epoch the whole
        split of `train_images`, or trainer.max_steps_per_epoch batches of the global batch when that is fewer."""
        per_epoch = train_images
        if self.max_steps_per_epoch:
            per_epoch = min(train_images, self.max_steps_per_epoch * self.batch_size)
        return self.epochs * per_epoch

    @classmethod
    def from_config(cls, cfg: Mapping[str, Any]) -> "Recipe":
        """The recipe of a composed config (`trainer`, `optim`, `sched`, `seed`, `logger`; a missing section keeps
        the defaults above). Raises CnnlabError for a value that is not of its kind, and for logger=tensorboard
        without the package (before anything is spent)."""
        trainer = cfg.get("trainer") or {}
        epochs = int(trainer.get("epochs", 5))
        if epochs < 0:
            raise CnnlabError(f"trainer.epochs={epochs} must not be negative")
        bn_batches = int(trainer.get("precise_bn_batches", 20))
        if bn_batches < 1:
            raise CnnlabError(f"trainer.precise_bn_batches={bn_batches} must be at least 1",
                              fix="use trainer.precise_bn_batches=20, or trainer.precise_bn=false to switch it off")
        workers = trainer.get("workers", "auto")
        augment_on = str(trainer.get("augment_on") or "auto").lower()
        if augment_on not in AUGMENT_ON:
            raise CnnlabError(f"trainer.augment_on={trainer.get('augment_on')} is not a choice",
                              fix="use trainer.augment_on=auto (device on CUDA where it can), workers or device")
        optimizer = _plain(cfg.get("optim")) or cls().optimizer
        if optimizer.get("lr") is None:  # the schedule and parameter groups start from it: never a silent 0
            raise CnnlabError("the optim settings have no lr (a --config-dir optim file without one?)",
                              fix="set optim.lr=VALUE (e.g. optim.lr=0.001), or add lr: to that file")
        momentum = trainer.get("bn_momentum")
        try:
            momentum = _optional(momentum, float)
        except ValueError as exc:
            raise CnnlabError(f"trainer.bn_momentum={momentum} is not a number",
                              fix="use a value in (0, 1], e.g. trainer.bn_momentum=0.1, or null for the model's own"
                              ) from exc
        return cls(
            epochs=epochs, batch_size=int(trainer.get("batch_size", 64)),
            eval_batch_size=_optional(trainer.get("eval_batch_size"), int, zero_is_off=True),
            workers=None if str(workers) == "auto" else int(workers), augment_on=augment_on,
            seed=int(cfg.get("seed", 0) or 0),
            amp=str(trainer.get("amp", "auto")), channels_last=trainer.get("channels_last", "auto"),
            grad_clip=_optional(trainer.get("grad_clip"), float, zero_is_off=True),
            label_smoothing=float(trainer.get("label_smoothing", 0.0)), mixup=float(trainer.get("mixup", 0.0)),
            cutmix=float(trainer.get("cutmix", 0.0)), compile=bool(trainer.get("compile", False)),
            log_every=max(1, int(trainer.get("log_every", 20))),
            checkpoint_every=max(1, int(trainer.get("checkpoint_every", 1))),
            max_steps_per_epoch=_optional(trainer.get("max_steps_per_epoch"), int, zero_is_off=True),
            sync_bn=bool(trainer.get("sync_bn", False)),
            precise_bn=auto_flag(trainer.get("precise_bn", "auto"), "trainer.precise_bn"),
            precise_bn_batches=bn_batches, bn_momentum=momentum,
            optimizer=optimizer, schedule=_plain(cfg.get("sched")) or cls().schedule,
            epoch_log=EpochLogSettings.from_logger(cfg.get("logger", "none")))

    # ------------------------------------------------------------------ derived values
    @property
    def lr(self) -> float:
        """The base learning rate (optim.lr; from_config refuses an optimizer without one)."""
        return float(self.optimizer["lr"])

    @property
    def weight_decay(self) -> float:
        """optim.weight_decay; without one (`~optim.weight_decay`), the optimizer class's own default."""
        if self.optimizer.get("weight_decay") is None:
            from cnnlab.engine.optim import default_weight_decay  # torch and Hydra's instantiate: only when asked

            return default_weight_decay(str(self.optimizer.get("_target_")))
        return float(self.optimizer["weight_decay"])

    @property
    def eval_batch(self) -> int:
        """Batch size of evaluation passes: trainer.eval_batch_size, else twice the training batch."""
        return self.eval_batch_size or 2 * self.batch_size

    @property
    def mixes_images(self) -> bool:
        """MixUp or CutMix is on: a training image is a blend of two (no fixed per-image target)."""
        return bool(self.mixup or self.cutmix)

    def with_lr_scale(self, factor: float) -> "Recipe":
        """A copy whose optimizer runs at optim.lr x `factor` (prune's recovery, QAT)."""
        return replace(self, optimizer={**self.optimizer, "lr": self.lr * factor})
