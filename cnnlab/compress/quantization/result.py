"""What a format search found (`search.search_formats`): typed figures per candidate and for FP32, the choice and its
reason; and how they are written down (run.json's `quantize` and `metrics` sections, the terminal table)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping

from rich.table import Table

from cnnlab.compress.quantization.formats import Format
from cnnlab.deploy.export import model_file_bytes
from cnnlab.compress.quantization.selection import Selection, drop_points, paired_ratio, signed_points, within_budget
from cnnlab.deploy.paired import PairedRatio, PairedSettings, SubjectTiming, paired_speedup
from cnnlab.errors import CnnlabError
from cnnlab.wording import counted

FP32 = "fp32"


def p50_text(ms: float) -> str:
    """A latency for the table: three significant digits, trailing zeros kept, so every row reads alike (2.003908 ms
    printed as `2` beside `0.811` with `:.3g`); whole milliseconds from 100 up (`123`, `1234`, never `1.23e+03`)."""
    if ms >= 99.95:  # 99.96 rounds to three digits as "100."
        return f"{ms:.0f}"
    return f"{ms:#.3g}"


@dataclass(frozen=True)
class Accuracy:
    """A file's own figures on the validation split, as the runtime computes them (deploy.ort.evaluate_onnx)."""

    acc: float       # top-1, in [0, 1]
    top5: float
    loss: float      # mean cross-entropy
    n: int           # images

    @classmethod
    def of(cls, metrics: Mapping[str, Any]) -> "Accuracy":
        return cls(float(metrics["acc"]), float(metrics["top5"]), float(metrics["loss"]), int(metrics["n"]))


@dataclass(frozen=True)
class Fp32Figures:
    path: Path
    accuracy: Accuracy
    timing: SubjectTiming


@dataclass(frozen=True)
class CandidateResult:
    """One format: its file, what makes it INT8, its accuracy and latency — or why it could not be built or run."""

    format: Format
    path: Path | None = None
    accuracy: Accuracy | None = None
    int8_ops: Mapping[str, int] | None = None   # quantized operator -> node count
    timing: SubjectTiming | None = None
    notes: tuple[str, ...] = ()
    error: str | None = None
    loads_on: Mapping[str, str] | None = None   # deployment runtime -> "loads" or why it cannot run the file
    built_by: Mapping[str, Any] | None = None   # what the engine did (NNCF: version, preset, accuracy control)
    weight_tensors: Mapping[str, int] | None = None  # "s8"/"u8" -> weight tensors stored so (onnx_check.weight_types)

    def stored_weights(self) -> dict[str, Any]:
        """The format's `weights` as the file stores them ("s8", "u8", or "s8+u8" when mixed) with the tensor counts,
        where the file says; {} where it does not (not built, or no INT8 weights)."""
        if not self.weight_tensors:
            return {}
        return {"weights": "+".join(sorted(self.weight_tensors)), "weight_tensors": dict(self.weight_tensors)}

    @property
    def usable(self) -> bool:
        """Built, evaluated and timed: it took part in the selection."""
        return self.error is None and self.path is not None and self.accuracy is not None and self.timing is not None


@dataclass(frozen=True)
class QuantizationResult:
    fp32: Fp32Figures
    candidates: tuple[CandidateResult, ...]
    selection: Selection
    timing: PairedSettings
    max_acc_drop: float                       # percentage points
    deploy_runtimes: tuple[str, ...] = ()     # runtimes every candidate was checked to load on
    eval_batch_size: int | None = None        # images per batch every accuracy was scored at (the last batch: the rest)
    qat_fp32_acc: float | None = None         # qat: top-1 of the QAT-trained weights in float (PyTorch, fake
                                              # quantization off), in [0, 1]: the training's part of INT8's change

    @property
    def chosen(self) -> CandidateResult:
        """The INT8 candidate chosen — or, when `fp32_kept`, the best one, which the FP32 model replaces."""
        return next(c for c in self.candidates if c.usable and c.format.name == self.selection.chosen)

    @property
    def threads(self) -> int:
        """The threads the timing ran with, as its records say: OpenVINO takes no more than the cores this process
        may use, whatever quantize.bench_threads asked (probe 137: the title and `chosen_on` said the 4 asked)."""
        return next(iter(self.fp32.timing.stats.values())).threads

    @property
    def fp32_kept(self) -> bool:
        """No INT8 candidate within the budget beats FP32 here: the FP32 file ships (selection.select)."""
        return self.selection.fp32_kept

    @property
    def shipped(self) -> str:
        """What model.onnx holds: the chosen format's name, or "fp32"."""
        return FP32 if self.fp32_kept else self.selection.chosen

    def speedup(self, candidate: CandidateResult) -> float:
        """The candidate's paired speed-up over FP32: the median over rounds of each round's FP32 p50 / the
        candidate's, geometric mean over the batch sizes (selection.paired_ratio)."""
        return self.ratio(candidate).ratio

    def ratio(self, candidate: CandidateResult) -> PairedRatio:
        """The candidate's speed-up with its per-round speed-ups, judged by the rule of every paired timing
        (`PairedRatio.unstable`: rounds more than 15 % apart)."""
        assert candidate.timing is not None
        return paired_ratio(candidate.timing, self.fp32.timing)

    @property
    def reason(self) -> str:
        """Why the shipped file won (selection.reason); qat: how much of the INT8 file's change against the source
        is its training, and which FP32 model ships when FP32 is kept."""
        if self.qat_fp32_acc is None:
            return self.selection.reason
        int8 = self.chosen.accuracy
        assert int8 is not None
        said = (f"{self.selection.reason}; qat: the trained weights score {self.qat_fp32_acc:.2%} in float "
                f"({signed_points(100 * (self.qat_fp32_acc - self.fp32.accuracy.acc))} pts against the source: "
                f"training), INT8 changes them by {signed_points(100 * (int8.acc - self.qat_fp32_acc))} pts")
        return said + ("; model.onnx is the source's FP32 model, as given, not the QAT-trained weights"
                       if self.fp32_kept else "")

    def metrics(self, target: Path) -> dict[str, Any]:
        """run.json's metrics: the shipped file's (`target`, model.onnx) figures against FP32's. With FP32 kept,
        model.onnx is FP32 (speed-up 1, no accuracy change) and `int8_best*` say what the best candidate measured."""
        chosen, fp32 = self.chosen, self.fp32
        assert chosen.accuracy is not None and chosen.timing is not None
        shipped = fp32.accuracy if self.fp32_kept else chosen.accuracy
        metrics: dict[str, Any] = {
            "val_acc": shipped.acc, "val_top5": shipped.top5, "val_loss": shipped.loss,
            "fp32_val_acc": fp32.accuracy.acc, "acc_drop": fp32.accuracy.acc - shipped.acc,
            "speedup": 1.0 if self.fp32_kept else self.speedup(chosen), "onnx_bytes_fp32": model_file_bytes(fp32.path),
            "speedup_stable": True if self.fp32_kept else self.ratio(chosen).checked,
            "onnx_bytes_int8": target.stat().st_size, "format": self.shipped,
            "within_budget": self.selection.within_budget}
        metrics["size_ratio"] = metrics["onnx_bytes_fp32"] / metrics["onnx_bytes_int8"]
        if self.qat_fp32_acc is not None:  # what INT8 itself cost, apart from the training (fractions, as acc_drop)
            metrics.update(qat_fp32_val_acc=self.qat_fp32_acc,
                           qat_int8_acc_drop=self.qat_fp32_acc - chosen.accuracy.acc)
        if self.fp32_kept:  # model.onnx is the FP32 graph: no INT8 file size to report, no size gained
            del metrics["onnx_bytes_int8"]
            # the FP32 graph shipped again (its metadata other bytes): the ratio of the two files, as measured
            # (probe 219: 1.0 recorded beside 283,846 and 284,307 bytes)
            metrics.update(size_ratio=metrics["onnx_bytes_fp32"] / target.stat().st_size,
                           onnx_bytes=target.stat().st_size, fp32_kept=True,
                           int8_best=chosen.format.name, int8_best_speedup=self.speedup(chosen),
                           int8_best_speedup_stable=self.ratio(chosen).checked,
                           int8_best_val_acc=chosen.accuracy.acc)
            return metrics
        for batch, stats in chosen.timing.stats.items():
            reference = fp32.timing.stats[batch].p50_ms
            rounds = [f / c for f, c in zip(fp32.timing.p50_per_round[batch], chosen.timing.p50_per_round[batch])]
            metrics.update({f"latency_p50_ms_fp32_b{batch}": reference, f"latency_p50_ms_int8_b{batch}": stats.p50_ms,
                            f"speedup_b{batch}": paired_speedup(rounds, reference / stats.p50_ms)})
        return metrics

    def describe(self) -> dict[str, Any]:
        """run.json's quantize.{fp32 figures, candidates, chosen, reason, within_budget} (fp32's file and origin are
        the caller's to add)."""
        fp32 = self.fp32
        return {"fp32": {"val_acc": fp32.accuracy.acc, "val_top5": fp32.accuracy.top5, "val_loss": fp32.accuracy.loss,
                         "file_bytes": model_file_bytes(fp32.path), "latency": fp32.timing.to_dict()},
                "candidates": [self._describe(c) for c in self.candidates], "chosen": self.selection.chosen,
                "shipped": self.shipped, "fp32_kept": self.fp32_kept, "deploy_runtimes": list(self.deploy_runtimes),
                "eval_batch_size": self.eval_batch_size, "reason": self.reason,
                "within_budget": self.selection.within_budget}

    def _describe(self, candidate: CandidateResult) -> dict[str, Any]:
        described: dict[str, Any] = {**candidate.format.describe(), **candidate.stored_weights(),
                                     "notes": list(candidate.notes),
                                     **({"built_by": dict(candidate.built_by)} if candidate.built_by else {})}
        if candidate.error is not None:
            return {**described, "error": candidate.error, **({"loads_on": dict(candidate.loads_on)}
                                                               if candidate.loads_on else {})}
        accuracy = candidate.accuracy
        described.update(acc=accuracy.acc if accuracy else None, top5=accuracy.top5 if accuracy else None,
                         loss=accuracy.loss if accuracy else None, n=accuracy.n if accuracy else None,
                         int8_ops=dict(candidate.int8_ops or {}), loads_on=dict(candidate.loads_on or {}))
        if candidate.format.mode == "dynamic":  # ort.run_images: one image per call, whatever eval_batch_size says
            described["scored_batch_size"] = 1
        if candidate.path is not None and candidate.path.exists():
            described["file_bytes"] = candidate.path.stat().st_size
        if candidate.usable:
            assert accuracy is not None and candidate.timing is not None
            ratio = self.ratio(candidate)
            described.update(acc_drop_points=drop_points(accuracy.acc, self.fp32.accuracy.acc),
                             speedup=ratio.ratio, speedup_rounds=list(ratio.rounds), stable=ratio.checked,
                             latency=candidate.timing.to_dict())
        return described

    def over_budget(self, calibrate_method: str = "minmax") -> CnnlabError:
        """The error of a search whose best candidate is over the budget (model.onnx and run.json hold it). Its fix
        is the mode's: calibration for PTQ (the methods not used already: probe 179 followed `entropy` and was told
        `entropy` again); for QAT, the training where the trained weights lost the accuracy in float already
        (probe 113: 86.67 % → 11.67 % at the default rate was told to calibrate, or to use QAT)."""
        message = (f"{self.reason} (quantize.max_acc_drop={self.max_acc_drop:g} points below the FP32 accuracy, "
                   f"{self.fp32.accuracy.acc:.2%}). model.onnx holds it; run.json has every candidate")
        if self.qat_fp32_acc is None:
            others = "|".join(m for m in ("entropy", "percentile") if m != calibrate_method)
            return CnnlabError(message, fix="raise quantize.max_acc_drop, calibrate with more quantize.calib_batches "
                                            f"or quantize.calibrate_method={others}, keep sensitive nodes in "
                                            "float (quantize.exclude), or train for it (quantize.mode=qat)")
        if not within_budget(self.qat_fp32_acc, self.fp32.accuracy.acc, self.max_acc_drop):
            return CnnlabError(message, fix="QAT's training lost it before INT8: train at a lower rate "
                                            "(quantize.lr_scale, e.g. a tenth of it) or try quantize.mode=ptq, or "
                                            "raise quantize.max_acc_drop")
        return CnnlabError(message, fix="INT8 lost it from the QAT-trained weights: train longer (trainer.epochs), "
                                        "keep sensitive nodes in float (quantize.exclude), or raise "
                                        "quantize.max_acc_drop")

    def table(self, mode: str) -> Table:
        """Every candidate next to FP32: accuracy, its drop, p50 per batch size, speed-up, size, and why."""
        sizes, fp32 = self.timing.batch_sizes, self.fp32
        table = Table(title=f"quantize.mode={mode} · {self.timing.runtime} CPU, {counted(self.threads, 'thread')}",
                      title_justify="left")
        table.add_column("model")
        for column in ("val acc", "Δ pts", *(f"p50 ms b{b}" for b in sizes), "speed-up", "MB"):
            table.add_column(column, justify="right")
        table.add_column("")
        table.add_row(FP32 if self.qat_fp32_acc is None else f"{FP32} (source)", f"{fp32.accuracy.acc:.2%}", "",
                      *(p50_text(fp32.timing.stats[b].p50_ms) for b in sizes), "reference",
                      f"{model_file_bytes(fp32.path) / 1e6:.3g}",
                      "kept: no INT8 candidate is measured faster" if self.fp32_kept else "")
        if self.qat_fp32_acc is not None:
            table.add_row(f"{FP32}, QAT-trained", f"{self.qat_fp32_acc:.2%}",
                          signed_points(-drop_points(self.qat_fp32_acc, fp32.accuracy.acc)), *[""] * (2 + len(sizes)),
                          "PyTorch, not shipped: the training's part of the INT8 file's Δ")
        for c in self.candidates:
            if not c.usable:
                table.add_row(c.format.name, *[""] * (4 + len(sizes)), f"failed: {c.error}")
                continue
            assert c.timing is not None and c.path is not None and c.accuracy is not None
            over_budget = not within_budget(c.accuracy.acc, fp32.accuracy.acc, self.max_acc_drop)
            chosen = c.format.name == self.selection.chosen
            mark = ("best INT8, not measured faster than FP32" if chosen and self.fp32_kept
                    # probe 179: an over-budget file shipped read "chosen", beside "over budget" at the same drop
                    else "over budget; the most accurate, in model.onnx" if chosen and over_budget
                    else "chosen" if chosen else "over budget" if over_budget else "")
            int8_itself = ([] if self.qat_fp32_acc is None else
                           [f"{signed_points(-drop_points(c.accuracy.acc, self.qat_fp32_acc))} pts vs the QAT-trained "
                            "weights"])
            table.add_row(c.format.name, f"{c.accuracy.acc:.2%}",
                          signed_points(-drop_points(c.accuracy.acc, fp32.accuracy.acc)),
                          *(p50_text(c.timing.stats[b].p50_ms) for b in sizes), self.ratio(c).text(),
                          f"{c.path.stat().st_size / 1e6:.3g}", "; ".join([mark, *int8_itself, *c.notes]).strip("; "))
        return table
