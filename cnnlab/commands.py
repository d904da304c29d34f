"""The table of commands: what each one is for and which pipeline module runs it.

Both the command line (help, without importing torch) and the Hydra entry point (dispatch)
read this one table, so adding a command is one entry here, one conf/command/<name>.yaml and
one module in cnnlab/pipelines/ with `run(cfg, ctx) -> dict`.

A pipeline module may also define `check(cfg) -> None`: the settings its command parses itself (prune.method,
quantize.mode, ...), raising CnnlabError. cnnlab.app calls it with the other settings checks, before any input is
read, and steps/stage_check calls it for each stage before a pipeline's first stage runs. A run refused there leaves
no run folder.
"""

from __future__ import annotations

import shlex
from dataclasses import dataclass, field
from typing import Sequence


# `ROLE.weights=` values that name no run (cnnlab.weights.resolve_weights reads them so): no recorded data to rebuild
NOT_A_RUN = ("imagenet", "none", "null", "", "random", "scratch")


@dataclass(frozen=True)
class CommandInfo:
    summary: str                      # one line for `cnnlab --help`
    description: str                  # a paragraph for `cnnlab CMD --help`
    pipeline: str                     # module with run(cfg, ctx) -> dict of metrics
    examples: tuple[str, ...] = ()
    groups: tuple[str, ...] = ("dataset", "model", "optim", "sched", "trainer", "experiment")
    extra_groups: tuple[str, ...] = field(default=())
    records_run: bool = True          # False: a read-only tool (inspect) that writes no run folder
    default_overrides: tuple[str, ...] = ()  # applied unless the user sets the same key (pipeline: the experiment)
    # keeps last.pt after every epoch and continues from it with resume=RUN; the pipeline resumes such a stage
    # (distill too: resume= restores its saved config and keeps the teacher the run started with)
    resumable: bool = False
    kept_note: str = "its last checkpoint (last.pt) is kept"  # what an interrupted resumable run keeps
    rerun_note: str = ""              # what running the same command again reuses (pipeline: finished stages)
    produces_model: bool = False      # its run holds a new model (model.pt or model.onnx): a report row, a model stage
    writes_onnx: bool = False         # writes model.onnx itself (the pipeline adds no export stage after it)
    converts_source: bool = False     # its model is the source's network in another form (INT8): the same stem/arch
    reads_source: bool = False        # starts from the model of a `source=` run or file
    # rebuilds the data the source recorded (steps.sources): `dataset.KEY=V` edits that, not the default dataset
    source_dataset: bool = False
    # ... or rebuilds the data of this role's weights when they name a run (distill: teacher.weights=latest:finetune;
    # finetune: model.weights=latest:pretrain without dataset=), whose packaged default is role_default_weights
    source_dataset_role: str | None = None
    role_default_weights: str | None = None
    model_fix: str = ""               # where its networks come from, for a model= it does not read ("model" not in groups)
    # sections every command's config has that this one never reads, and why: a typed `optim.lr=` for `cnnlab bench`
    # (or `trainer.epochs=1` for `cnnlab pipeline`, whose stages take their own) is refused, not ignored
    unread: tuple[str, ...] = ()
    unread_reason: str = "trains nothing"
    reads_only: tuple[str, ...] = ()  # the keys of an `unread` section it does read (export: trainer.batch_size)

    def reads_source_data(self, role_weights: object = None) -> bool:
        """Whether it runs on the data its source recorded: a `source=` run's (source_dataset), or the run named by
        `{source_dataset_role}.weights` (`role_weights`: that value, None when not typed and so the packaged
        default, role_default_weights) unless it names ImageNet's weights or none (NOT_A_RUN) — then the composed
        `dataset=` is the data. A typed `dataset=` picks other data all the same (steps/sources)."""
        if self.source_dataset or self.source_dataset_role is None:
            return self.source_dataset
        weights = self.role_default_weights if role_weights is None else role_weights
        return weights is not None and str(weights).strip("'\"").strip().lower() not in NOT_A_RUN


COMMANDS: dict[str, CommandInfo] = {
    "pretrain": CommandInfo(
        summary="Train a network from scratch (supervised, or self-supervised: SimCLR, SimSiam) and keep it.",
        description="Trains model=NAME from random initialisation on dataset=NAME and writes model.pt "
                    "(loadable with torch.load(weights_only=True)) and run.json to the run folder. "
                    "method=supervised (default) learns the labels; method=simclr or method=simsiam learns from "
                    "two augmented views of unlabeled images (method.temperature, method.projection_dim, "
                    "method.views.*), shows a kNN accuracy each epoch, and saves the backbone for "
                    "`cnnlab finetune model.weights=latest:pretrain` (docs/pretrain.md). On a GPU the "
                    "augmentations run on whole batches there (trainer.augment_on=auto|workers|device). "
                    "The default, dataset=synthetic, runs offline in about two minutes on a 2-core CPU.",
        pipeline="cnnlab.pipelines.pretrain",
        examples=("cnnlab pretrain",
                  "cnnlab pretrain model=lenet5 dataset=digits trainer.epochs=10",
                  "cnnlab pretrain model=resnet18 model.stem=cifar dataset=fashion_mnist",
                  "cnnlab pretrain method=simclr dataset=cifar10 model=resnet18 trainer.batch_size=256",
                  "cnnlab pretrain method=simsiam dataset=imagefolder dataset.root=~/unlabeled_photos",
                  "cnnlab pretrain -m optim.lr=0.01,0.05,0.1"),
        extra_groups=("method",),
        resumable=True,
        produces_model=True,
    ),
    "finetune": CommandInfo(
        summary="Transfer learning: new head on a pretrained backbone (linear, partial or full).",
        description="Loads a backbone (model.weights=imagenet|none|PATH|RUN|latest|latest:pretrain), replaces the "
                    "classifier head for the dataset's classes and trains it: finetune.mode=linear (frozen "
                    "backbone, head only; backbone features are computed once, cached and standardised: "
                    "finetune.standardize_features), partial (the last "
                    "finetune.unfreeze stages) or full; in partial and full a pretrained backbone trains at "
                    "finetune.backbone_lr_scale x optim.lr (auto: 0.1, so the new head does not overwrite it). "
                    "Weights from a cnnlab run train on that run's data unless dataset= names other data. "
                    "On a GPU the augmentations run on whole batches there (trainer.augment_on=auto|workers|device).",
        pipeline="cnnlab.pipelines.finetune",
        examples=("cnnlab finetune dataset=flowers",
                  "cnnlab finetune dataset=imagefolder dataset.root=~/photos finetune.mode=partial",
                  "cnnlab finetune model.weights=latest:pretrain finetune.mode=full",
                  "cnnlab finetune -m model=resnet18,mobilenet_v3_small"),
        resumable=True,
        produces_model=True,
        source_dataset_role="model",
    ),
    "distill": CommandInfo(
        summary="Knowledge distillation: train a small student from a trained teacher.",
        description="teacher=NAME (teacher.weights=latest:finetune|PATH|RUN|imagenet) teaches student=NAME with "
                    "Hinton's soft targets (distill.temperature, distill.alpha) and optional feature hints "
                    "(distill.feature=true). distill.baseline=true also trains the student alone with the same "
                    "budget, so the run records the gain that distillation bought.",
        pipeline="cnnlab.pipelines.distill",
        examples=("cnnlab distill teacher=resnet50 student=mobilenet",
                  "cnnlab distill teacher.weights=latest:finetune student=mobilenet_v3_small distill.temperature=2",
                  "cnnlab distill teacher=resnet18 teacher.weights=latest:pretrain student=lenet5 distill.feature=true"),
        groups=("dataset", "teacher", "student", "optim", "sched", "trainer", "experiment"),
        source_dataset_role="teacher",
        role_default_weights="latest:finetune",
        model_fix="distill takes its networks from teacher= and student= (teacher.stem=, student.stem=, ...), e.g. "
                  "`cnnlab distill teacher=resnet50 student=mobilenet teacher.weights=latest:finetune`",
        resumable=True,
        produces_model=True,
    ),
    "search": CommandInfo(
        summary="Architecture or hyperparameter search (Optuna) with latency measured on the target machine.",
        description="Searches space=mobilenet (inverted-residual networks: width, depth, resolution, kernel, "
                    "expansion, SE, activation), space=efficientnet (compound scaling around B0) or space=hparams "
                    "(lr, weight decay, batch size, augmentation for model=NAME) on dataset=NAME: each trial is "
                    "timed with the bench harness (search.latency.*, cached per architecture) and scored by a "
                    "short proxy training, poor trials stopped early; NSGA-II trades accuracy against latency "
                    "within search.max_latency_ms / search.max_params, or search.min_speedup over "
                    "search.reference (a zoo model timed beside each candidate in the same rounds: a ratio the "
                    "machine's drift cannot move). Writes study.db (resume=true continues "
                    "it), trials.csv, pareto.png, and trains the most accurate feasible candidate for "
                    "trainer.epochs as model.pt (its architecture string: model=searched model.arch=...).",
        pipeline="cnnlab.pipelines.search",
        examples=("cnnlab search dataset=fashion_mnist search.trials=40 search.max_latency_ms=2.0",
                  "cnnlab search dataset=fashion_mnist search.reference=mobilenet_v2 search.min_speedup=1.5",
                  "cnnlab search space=efficientnet dataset=cifar10 search.max_params=1000000",
                  "cnnlab search space=hparams model=resnet18 dataset=digits search.trials=20",
                  "cnnlab search resume=true",
                  "cnnlab export source=latest:search"),
        extra_groups=("space",),
        source_dataset_role="model",  # space=hparams from model.weights=RUN: that run's data unless dataset=
        resumable=True,
        kept_note="the study (study.db: every finished trial) is kept",
        produces_model=True,
    ),
    "prune": CommandInfo(
        reads_source=True,
        source_dataset=True,
        summary="Prune a trained model: channel pruning (real speed-ups) or magnitude sparsity.",
        description="prune.method=channel removes whole channels across coupled layers (Torch-Pruning's dependency "
                    "graph) so the model gets smaller and faster everywhere; prune.method=magnitude zeroes the "
                    "smallest weights (sparsity; dense runtimes gain no speed). Recovers accuracy with a short "
                    "fine-tune and records parameters, FLOPs, size and measured latency before and after.",
        pipeline="cnnlab.pipelines.prune",
        examples=("cnnlab prune source=latest:finetune prune.ratio=0.5",
                  "cnnlab prune source=latest:finetune prune.importance=taylor prune.steps=3 trainer.epochs=3",
                  "cnnlab prune source=latest:finetune prune.method=magnitude prune.ratio=0.8"),
        groups=("dataset", "optim", "sched", "trainer", "experiment"),
        produces_model=True, writes_onnx=True,
    ),
    "quantize": CommandInfo(
        reads_source=True,
        source_dataset=True,
        summary="INT8 quantization (post-training or quantization-aware) that is measured to be faster.",
        description="quantize.mode=ptq (default) calibrates onnxruntime static INT8 on training images and, with "
                    "quantize.format=auto, times and evaluates each candidate format (QDQ/QOperator, U8/S8 "
                    "activations) on this machine and keeps the fastest within quantize.max_acc_drop points of "
                    "FP32; the INT8 ONNX file itself is evaluated and timed next to the FP32 one. quantize.mode=qat "
                    "fine-tunes with fake quantization and exports QDQ; quantize.mode=dynamic is for comparison. "
                    "quantize.runtime=openvino chooses, evaluates and times on OpenVINO's own CPU runtime "
                    "(pip install \"cnnlab\\[openvino]\", beside onnxruntime).",
        pipeline="cnnlab.pipelines.quantize",
        examples=("cnnlab quantize source=latest:finetune",
                  "cnnlab quantize source=latest:export quantize.bench_batch_sizes=[1,32]",
                  "cnnlab quantize source=latest:finetune quantize.format=qdq_u8s8 quantize.calibrate_method=entropy",
                  "cnnlab quantize source=latest:finetune quantize.mode=qat trainer.epochs=2",
                  "cnnlab quantize source=latest:finetune quantize.runtime=openvino"),
        groups=("dataset", "optim", "sched", "trainer", "experiment"),
        produces_model=True, writes_onnx=True, converts_source=True,
    ),
    "export": CommandInfo(
        unread=("optim", "sched", "trainer"),  # but trainer's batch sizes and workers read the val images
        reads_only=("trainer.batch_size", "trainer.eval_batch_size", "trainer.workers"),
        reads_source=True,
        source_dataset=True,
        summary="Export a run's model to ONNX and verify it against PyTorch.",
        description="Writes model.onnx (dynamic batch, input 'input', output 'logits'; class names, input size, "
                    "mean/std, source run and cnnlab version in its metadata) and checks it: onnx.checker, then "
                    "onnxruntime vs PyTorch on the source's validation images (max |logit difference|, top-1 "
                    "agreement). A mismatch fails the run and leaves no model.onnx. Records the file's own "
                    "validation accuracy as metrics.val_acc.",
        pipeline="cnnlab.pipelines.export",
        examples=("cnnlab export source=latest:finetune",
                  "cnnlab export source=outputs/prune/... export.simplify=true"),
        groups=("dataset", "experiment"),
    ),
    "bench": CommandInfo(
        unread=("optim", "sched", "trainer"),
        reads_source=True,
        summary="Measure latency honestly: PyTorch eager/compiled, onnxruntime, TensorRT, OpenVINO; CPU and CUDA.",
        description="Times source=RUN|PATH (its model.onnx with onnxruntime, and the PyTorch model.pt of its chain) "
                    "or a random model=NAME: warm-up, then timed runs until a minimum count and time; p50/p90/p99, "
                    "mean, std, images/s and achieved GFLOP/s (and % of the FP32 peak) per backend and batch size, "
                    "with the hardware/software fingerprint. Writes bench.json; a backend that cannot run here is "
                    "listed as skipped with the reason.",
        pipeline="cnnlab.pipelines.bench",
        examples=("cnnlab bench source=latest:export", "cnnlab bench --device cuda model=resnet50",
                  "cnnlab bench model=mobilenet_v3_small dataset.image_size=224 bench.batch_sizes=[1,32]",
                  "cnnlab bench source=latest:export bench.compile=true bench.threads=4",
                  "cnnlab bench source=latest:quantize bench.backends=[onnxruntime,openvino]"),
        groups=("dataset", "model", "experiment"),
    ),
    "evaluate": CommandInfo(
        unread=("optim", "sched", "trainer"),  # but trainer's batch sizes and workers read the images
        reads_only=("trainer.batch_size", "trainer.eval_batch_size", "trainer.workers"),
        reads_source=True,
        source_dataset=True,
        summary="Score a checkpoint or ONNX file (FP32/INT8) on the test split: top-1/5, per class, confusion, ECE.",
        description="Runs source=RUN|FILE — a model.pt through PyTorch, or an FP32 or INT8 model.onnx through "
                    "onnxruntime (evaluate.runtime=pytorch|onnxruntime|openvino) — over split=test (the official "
                    "test split, which no other command reads; or val, train; all: every image, for new labelled "
                    "images) of the dataset the source recorded "
                    "(dataset=... picks another), preprocessed as the file's input spec says. Records top-1, top-5, "
                    "loss, per-class accuracy and the expected calibration error (15 bins) in run.json, and writes "
                    "confusion.csv, confusion.png, per_class.csv and outcomes.csv (per image: its class, the one "
                    "predicted, the confidence; what `cnnlab report` bootstraps its intervals from).",
        pipeline="cnnlab.pipelines.evaluate",
        examples=("cnnlab evaluate source=latest:finetune",
                  "cnnlab evaluate source=latest:quantize",
                  "cnnlab evaluate source=outputs/export/2026-01-05/10-00-00/model.onnx split=val",
                  "cnnlab evaluate source=latest:finetune dataset=fashion_mnist evaluate.runtime=pytorch"),
        groups=("dataset", "experiment"),
    ),
    "predict": CommandInfo(
        unread=("optim", "sched", "trainer"),
        reads_source=True,
        summary="Top-k classes of new images, with the preprocessing the model file records.",
        description="Runs source=RUN|FILE (a model.onnx, FP32 or INT8, through onnxruntime; a model.pt through "
                    "PyTorch) on image files and folders given after the command, preprocessed from the file's "
                    "own input spec (channels, resize, crop, mean/std) as a deployment would. Prints a table of "
                    "the predict.topk classes with their probabilities and writes predictions.csv and "
                    "predictions.json; unreadable files (and pictures in a format not read, such as .heic) are "
                    "listed, not fatal, unless no file can be read.",
        pipeline="cnnlab.pipelines.predict",
        examples=("cnnlab predict source=latest:export photo.jpg",
                  "cnnlab predict source=latest:quantize photos/ predict.topk=3",
                  "cnnlab predict source=outputs/finetune/2026-01-05/10-00-00 a.png b.png"),
        groups=("experiment",),
    ),
    "inspect": CommandInfo(
        unread=("optim", "sched", "trainer"),
        summary="Layer table: output shapes, parameters, FLOPs and receptive field of a network.",
        description="Shows what kernel size, stride and padding do to the feature map, layer by layer — output "
                    "shape, parameters, FLOPs, receptive field and its growth — with totals, for LeNet-5 as for "
                    "EfficientNet, at dataset.image_size. Writes no run folder.",
        pipeline="cnnlab.pipelines.inspect",
        examples=("cnnlab inspect model=lenet5", "cnnlab inspect model=resnet50 dataset.image_size=224"),
        groups=("dataset", "model"),
        records_run=False,
    ),
    "pipeline": CommandInfo(
        # its stages take their settings from the plan (only seed and device are passed on to each)
        unread=("dataset", "optim", "sched", "trainer"),
        unread_reason="passes only seed= and device= on to its stages (each takes the rest from its overrides)",
        summary="The whole chain in one command: train, compress, export, bench each model, report.",
        description="Runs the stages an experiment declares (conf/experiment/<name>.yaml; default quickstart: "
                    "offline, a few minutes on a 2-core CPU) — pretrain → fine-tune → prune, quantize and distill "
                    "variants → export each → bench each → report. Each stage is an ordinary run linked by source=; "
                    "a re-run skips completed stages and resumes a failed one; pipeline.stages=[...] picks a subset.",
        pipeline="cnnlab.pipelines.pipeline",
        examples=("cnnlab pipeline", "cnnlab pipeline experiment=flowers_resnet50",
                  "cnnlab pipeline pipeline.stages=[prune]",
                  "cnnlab pipeline -m experiment=quickstart seed=0,1"),
        groups=("experiment",),
        model_fix="each stage sets its own model in the experiment (conf/experiment/<name>.yaml, "
                  "pipeline.plan.<stage>.overrides; docs/pipeline.md)",
        default_overrides=("experiment=quickstart",),
        rerun_note="completed stages are reused and an interrupted training stage resumes from its checkpoint",
    ),
}



def commands_where(**facts: bool) -> tuple[str, ...]:
    """Names of the commands whose CommandInfo has every given fact (`commands_where(produces_model=True)`),
    in table order. Raises AttributeError for a fact CommandInfo does not have."""
    return tuple(name for name, info in COMMANDS.items()
                 if all(getattr(info, fact) == value for fact, value in facts.items()))


# The commands that read runs and write none (cli.py's own, not Hydra's): `latest:report` names a command, one with
# no runs (probe 149: "`report` is not a cnnlab command").
RUNLESS_COMMANDS = ("list", "report")

HYDRA_FLAGS_HELP = (
    "key=value overrides any setting (groups and settings above); group=choice picks a config file.\n"
    "-m/--multirun sweeps comma-separated values (model=resnet18,mobilenet_v2) as separate runs.\n"
    "--cfg job prints the composed config and exits; --config-dir DIR adds your own config groups\n"
    "(DIR/dataset/mydata.yaml → dataset=mydata); hydra/launcher=NAME picks a Hydra launcher plugin."
)


def rerun_option(arg: str) -> bool | None:
    """The value of a `rerun=` launch option (`rerun=true`: a sweep runs its completed jobs again), None for any
    other argument."""
    if not arg.lstrip("+").startswith("rerun="):
        return None
    return arg.split("=", 1)[1].strip().lower() in ("true", "1", "yes")


def interrupt_hint(command: str, args: Sequence[str], *, how: str = "Ctrl-C", checkpoint_kept: bool = False,
                   no_checkpoint: str | None = None, multirun: bool = False, resumed: str | None = None,
                   resume: str = "resume=true", taken: tuple[str, str] | None = None) -> str:
    """The one line shown when a run stops on Ctrl-C or a termination signal (`how`), naming a command that
    works: for a sweep (`multirun`), the same sweep again (it skips the completed jobs and continues the
    interrupted one); `resume=true` only for a resumable command whose run already wrote its checkpoint
    (last.pt); otherwise the same command line again (`args`: what followed `cnnlab COMMAND`). `resumed`: what
    the run's resume= continued (settings.resumed_by), which a stop before its first new epoch left as it was.
    `resume`: the word that continues this run (hydra_args.resume_argument). `taken`: the typed `hydra.run.dir=DIR`
    and DIR, where DIR now holds this run's record (launch_checks.run_dir_in_use): typed again, the command is refused
    there, so the hint leaves it out and says why (probe 169: it named the folder it then refused)."""
    info = COMMANDS[command]
    if multirun:  # resume=true would continue one job outside the sweep; the sweep itself knows every job
        again = shlex.join(["cnnlab", command, *args])
        # a job stopped before its first checkpoint starts again (probe 229: "from its checkpoint", and none was);
        # a launcher's jobs stop in other processes, whose checkpoints this one does not see
        kept = "continues the interrupted one from its checkpoint" if checkpoint_kept else \
            "continues an interrupted one from its checkpoint, or starts it again where it saved none"
        what = kept if info.resumable else "runs the others"
        if any(rerun_option(arg) for arg in args):
            # typed again with rerun=true it runs this sweep's completed jobs a third time; without it, it skips
            # the jobs completed before this sweep too — the very runs rerun=true was typed to redo (probe 214)
            plain = shlex.join(["cnnlab", command, *(arg for arg in args if rerun_option(arg) is None)])
            return (f"interrupted ({how}) — `{again}` runs every job again and {what}; `{plain}` (no rerun=) "
                    "skips every completed job, those completed before this sweep included")
        return f"interrupted ({how}) — run the sweep again with `{again}`: it skips the completed jobs and {what}"
    if info.resumable and checkpoint_kept:
        return (f"interrupted ({how}) — {info.kept_note}; "
                f"continue with `cnnlab {command} {resume}`")
    args = [arg for arg in args if taken is None or arg != taken[0]]
    again = shlex.join(["cnnlab", command, *args])
    where = f" (in a new run folder: {taken[1]} holds this run's record)" if taken is not None else ""
    if info.rerun_note:
        return f"interrupted ({how}) — run `{again}` again{where}: {info.rerun_note}"
    why = (f"this run keeps no checkpoint to resume ({no_checkpoint})" if info.resumable and no_checkpoint
           else f"no checkpoint was written since resuming {resumed}, which is as it was" if info.resumable and resumed
           # not "no epoch had completed": a stop just after an epoch's line, before its last.pt (probe 88)
           else "no checkpoint had been written yet, so there is none to resume" if info.resumable
           else f"`cnnlab {command}` does not resume")
    return f"interrupted ({how}) — {why}; start it again with `{again}`{where}"


def stage_rerun_note(command: str, checkpoint_kept: bool, resumed: bool) -> str:
    """What running the same `cnnlab pipeline` again does with a stage that stopped (a pipeline resumes a training
    stage from the newest attempt that kept a checkpoint: pipelines/pipeline.py `_find`). Probe 175: "it continues
    this stage" was said of export and bench stages too, and of a stage stopped before any checkpoint, which start
    over."""
    if COMMANDS[command].resumable and (checkpoint_kept or resumed):
        return ("it continues this stage after its last completed epoch" if checkpoint_kept else
                "it continues this stage from the checkpoint this attempt started from (it wrote none of its own)")
    return "it runs this stage again" + (" (it had written no checkpoint)" if COMMANDS[command].resumable else "")

