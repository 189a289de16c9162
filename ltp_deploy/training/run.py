"""``train``: the three stages end to end, from a model folder and a task to written checkpoints."""

from __future__ import annotations

import datetime as dt
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

import numpy as np
import torch

from ltp_deploy.evaluation import EncodedData, Evaluation, evaluate
from ltp_deploy.checkpoint import Checkpoint, load_checkpoint, save_checkpoint
from ltp_deploy.data import Examples, default_max_length, get_task, load_examples
from ltp_deploy.environment import library_versions
from ltp_deploy.errors import LtpDeployError
from ltp_deploy.model import PrunedClassifier
from ltp_deploy.outputs import reserved
from ltp_deploy.spec import PruningSpec
from ltp_deploy.training.batches import TrainData, stage_steps
from ltp_deploy.training.budget import drop_idle_pruners, hold_metric, meet_budget
from ltp_deploy.training.quantize import FakeQuantized
from ltp_deploy.training.settings import Log, StageLog, TrainReport, TrainSettings
from ltp_deploy.training.soft import LearnedScorers, Thresholds
from ltp_deploy.training.stages import LEARNING_RATES, TrainingDiverged, fit_dense, fit_hard, learn_thresholds

def train(settings: TrainSettings, log: Log | None = None) -> TrainReport:
    """Run the three stages and write the checkpoints (each folder atomically).

    Args:
        settings: see ``TrainSettings``.
        log: called with one line per finished stage (the CLI prints them); None: silent.
    Returns:
        A ``TrainReport``; the pruned checkpoint is at ``report.output``, the dense one at ``report.dense_output``.
    Raises:
        LtpDeployError: bad options, missing data or GLUE_DIR, a model that does not fit the task, non-finite
            labels or weights (refused before training), a stage whose loss or weights turn NaN/inf (training stops
            there; the output, written atomically at the end, is not written).
    Example::

        train(TrainSettings("minilm/", "sst2", "runs/sst2-ltp", max_examples=512, dense_steps=40))
    """
    log = log or (lambda line: None)
    settings = settings.resolved()
    settings.validate()
    with ExitStack() as outputs:  # held from the start: a second run naming the same output is refused at once
        outputs.enter_context(reserved(settings.output))
        return _train(settings, log, outputs)


@dataclass
class _Run:
    """What every stage of one ``train`` run reads: the settings, the encoded data, and the records so far."""

    settings: TrainSettings
    log: Log
    tokenizer: object
    length: int  # tokens per example
    data: TrainData  # the training examples
    dev: EncodedData
    dev_examples: Examples
    tune: EncodedData | None  # the tuning slice held out of training (``budget.hold_metric``), or None
    base_meta: dict
    regression: bool
    stages: list = field(default_factory=list)
    budget: dict | None = None  # the budget search's record (with the metric hold's), once stage 2 is done
    idle: list = field(default_factory=list)  # layers whose pruner dropped nothing, zeroed
    started: float = field(default_factory=time.perf_counter)

    def steps(self, stage: str) -> int:
        s = self.settings
        epochs, steps = {"dense": (s.dense_epochs, s.dense_steps), "soft": (s.soft_epochs, s.soft_steps),
                         "hard": (s.hard_epochs, s.hard_steps)}[stage]
        return stage_steps(len(self.data), s.batch_size, epochs, steps, stage)


def _train(settings: TrainSettings, log: Log, outputs: ExitStack) -> TrainReport:
    examples = _examples(settings)  # data faults are found before the checkpoint loads
    ckpt = load_checkpoint(settings.model, dense=True)
    if ckpt.head_initialized:
        settings.check_dense_output()
        outputs.enter_context(reserved(settings.dense_path))
    run, model, hf_config = _prepare(settings, log, ckpt, *examples)
    dense_eval, dense_tune, dense_output = _dense_stage(run, model, ckpt, hf_config)
    # Stage 1 trains the dense model's weights in place (the dense checkpoint is already written).
    teacher = _teacher(model) if settings.distill > 0 or settings.distill_hidden > 0 or settings.rank_distill > 0 \
        else None
    pruned, soft_eval = _soft_stage(run, model, teacher, dense_output)
    pruned, final_eval = _hard_stage(run, pruned, teacher, dense_output, dense_tune)
    spec = pruned.spec
    metadata = {
        **run.base_meta, "kind": "ltp", "created": _now(),
        "dev": final_eval.to_dict(),
        "dense": {"checkpoint": str(Path(dense_output or settings.model).resolve()), "dev": dense_eval.to_dict()},
        "after_soft_stage": soft_eval.to_dict(),
        "metric_drop_points": 100.0 * (dense_eval.value - final_eval.value),
        "thresholds": list(spec.thresholds), "n_ref": spec.n_ref, "budget": run.budget, "idle_layers_zeroed": run.idle,
        "stages": [_stage_dict(s) for s in run.stages],
        "train_seconds": time.perf_counter() - run.started,
    }
    out = save_checkpoint(pruned.eval(), settings.output, hf_config, tokenizer=run.tokenizer, metadata=metadata,
                          **settings.output_rules)
    return TrainReport(dense_eval, soft_eval, final_eval, spec, run.stages, out, dense_output, metadata)


def _examples(settings: TrainSettings) -> tuple[Examples, Examples, Examples | None]:
    """The training examples, dev, and the tuning slice held out of training (or None)."""
    task = get_task(settings.task)
    train_ex = load_examples(settings.train_data, task.name, "train")
    dev_ex = load_examples(settings.dev_data, task.name, "dev")
    if not train_ex.has_labels or not dev_ex.has_labels:
        raise LtpDeployError("Training needs labelled train and dev data: give files with a label column.")
    train_ex, tune_ex = _tuning_slice(train_ex, settings)
    if settings.max_examples is not None:
        train_ex = train_ex.subset(settings.max_examples, seed=settings.seed)
    if settings.max_eval_examples is not None:
        dev_ex = dev_ex.take(settings.max_eval_examples)
    return train_ex, dev_ex, tune_ex


def _prepare(settings: TrainSettings, log: Log, ckpt: Checkpoint, train_ex: Examples, dev_ex: Examples,
             tune_ex: Examples | None) -> tuple[_Run, PrunedClassifier, dict]:
    """The task's model and the encoded data of every stage."""
    task = get_task(settings.task)
    model, hf_config = _task_model(ckpt, train_ex)
    tokenizer = ckpt.tokenizer()
    length = min(settings.max_length or default_max_length(task.name), model.config.max_length)  # within positions
    data = TrainData.build(tokenizer, train_ex, length)
    base_meta = {"task": task.name, "source_model": str(Path(settings.model).resolve()),
                 "train_examples": len(data), "dev_examples": len(dev_ex),
                 "tune_examples": 0 if tune_ex is None else len(tune_ex), "settings": _settings_dict(settings),
                 "versions": library_versions()}
    run = _Run(settings, log, tokenizer, length, data, EncodedData.build(tokenizer, dev_ex, length), dev_ex,
               EncodedData.build(tokenizer, tune_ex, length) if tune_ex is not None else None, base_meta,
               train_ex.is_regression)
    return run, model, hf_config


def _dense_stage(run: _Run, model: PrunedClassifier, ckpt: Checkpoint, hf_config: dict):
    """Stage 0 (fine-tune an encoder-only model; skipped for a classifier), its evaluation on dev and the tuning
    slice, and the dense checkpoint. Returns (dev evaluation, tuning-slice evaluation or None, dense folder or None)."""
    s, stage = run.settings, None
    if ckpt.head_initialized:
        with _diverged(s, None):
            stage = fit_dense(model, run.data, run.steps("dense"), s.dense_lr, s, run.regression, _stage_rng(s.seed, 0))
        run.stages.append(stage)
    dense_eval = evaluate(model, run.dev)
    dense_tune = evaluate(model, run.tune) if run.tune is not None else None  # before stage 1 trains in place
    run.log(_stage_line("dense", stage, dense_eval, note="" if stage else "the input model, already fine-tuned"))
    if not ckpt.head_initialized:
        return dense_eval, dense_tune, None
    meta = {**run.base_meta, "kind": "dense", "created": _now(), "dev": dense_eval.to_dict(),
            "stages": [_stage_dict(x) for x in run.stages]}
    save_checkpoint(model, s.dense_path, hf_config, tokenizer=run.tokenizer, metadata=meta,
                    inputs=(*s.output_rules["inputs"], s.output), overwrite=s.overwrite)
    return dense_eval, dense_tune, s.dense_path


def _teacher(model: PrunedClassifier) -> PrunedClassifier:
    teacher = PrunedClassifier(model.config, None)
    teacher.load_state_dict(model.state_dict(), strict=True)
    return teacher.eval().requires_grad_(False)


def _soft_stage(run: _Run, model: PrunedClassifier, teacher, dense_output: Path | None):
    """Stage 1: learn the thresholds with soft masks; returns the hard-rule model they define and its evaluation."""
    s = run.settings
    thresholds = Thresholds(model.config.num_layers, s.final_token_threshold, s.learn_first_layer)
    scorers = LearnedScorers(model.config.num_layers, model.config.hidden_size) if s.scorer == "learned" else None
    with _diverged(s, dense_output):
        stage = learn_thresholds(model, thresholds, run.data, run.steps("soft"), s, run.regression,
                                 _stage_rng(s.seed, 1), teacher, scorers)
    run.stages.append(stage)
    source = {"method": "ltp-deploy train", "final_token_threshold": s.final_token_threshold,
              "deltas": [float(d) for d in thresholds.delta.detach()], "lambda": s.lambda_,
              "target_flops_reduction": s.budget, "temperature": s.temperature,
              "final_temperature": s.end_temperature, "soft_masking": s.masking,
              "budget_counts": s.budget_counts, "learn_first_layer": s.learn_first_layer, "scorer": s.scorer}
    pruned = PrunedClassifier(model.config, thresholds.spec(s.n_ref, source, s.scorer))  # real dropping
    pruned.load_state_dict({**model.state_dict(), **(scorers.state_for(pruned) if scorers else {})}, strict=True)
    soft_eval = evaluate(pruned, run.dev)
    run.log(_stage_line("soft", stage, soft_eval, pruned.spec))
    return pruned, soft_eval


def _hard_stage(run: _Run, pruned: PrunedClassifier, teacher, dense_output: Path | None, dense_tune):
    """Stage 2 (hard rule, optionally under ``--qat``), then the budget search and the metric hold; returns the
    final model and its evaluation (the budget record and the idle layers go into ``run``)."""
    s = run.settings
    hard_steps = run.steps("hard")
    qat = FakeQuantized(pruned) if s.qat else None  # before fit_hard builds its optimizer
    with _diverged(s, dense_output):
        stage = (fit_hard(pruned, run.data, hard_steps, s, run.regression, _stage_rng(s.seed, 2), teacher)
                 if hard_steps else None)
    run.stages += [stage] if stage else []
    budget_dev = run.dev if s.budget_examples is None or s.budget_examples >= len(run.dev_examples) else \
        EncodedData.build(run.tokenizer, run.dev_examples.take(s.budget_examples), run.length)
    hold = (run.tune, dense_tune.value) if run.tune is not None else None
    pruned, run.budget, run.idle = _finish_thresholds(pruned, budget_dev, s, run.log, hold=hold, qat=qat)
    final_eval = evaluate(pruned, run.dev)
    run.log(_stage_line("hard", stage, final_eval, pruned.spec))
    return pruned, final_eval


@contextmanager
def _diverged(settings: TrainSettings, dense_output: Path | None) -> Iterator[None]:
    """A stage whose loss or weights turn NaN/inf ends ``train`` in one sentence: what happened, that the output
    (written atomically at the end) was not written, what to lower, and the dense model to restart from if one
    was written before."""
    try:
        yield
    except TrainingDiverged as e:
        unwritten = settings.output if dense_output or e.stage != "dense" else \
            f"{settings.output} (nor the dense model to {settings.dense_path})"
        resume = f", from the dense model already written (--model {dense_output})" if dense_output else ""
        raise LtpDeployError(f"Training diverged in the {e.stage} stage at step {e.step} of {e.steps} ({e.what}), "
                             f"so nothing was written to {unwritten}: lower {LEARNING_RATES[e.stage]} and train "
                             f"again{resume}.") from None


def _finish_thresholds(pruned: PrunedClassifier, data: EncodedData, settings: TrainSettings, log: Log,
                       hold: tuple[EncodedData, float] | None = None, qat: FakeQuantized | None = None):
    """After stage 2: scale the thresholds so that ``data`` (dev inputs, labels unread) meets the budget; with
    ``hold`` (the tuning slice and the dense model's metric on it) lower them until the slice is within
    ``max_metric_drop`` points (both under ``qat``'s fake quantization, its observers frozen, removed afterwards);
    then zero the idle pruners'. Returns the model, the budget record (None without a budget; with the hold's record
    under ``"metric_hold"``) and the zeroed layers."""
    if qat is not None:
        qat.freeze()
    budget = None
    if settings.budget is not None:
        budget = meet_budget(pruned, data, settings.budget)
        budget["examples"] = len(data.lengths)
        log(f"budget: thresholds x{budget['scale']:.3f} after {budget['evaluations']} runs over "
            f"{budget['examples']} dev inputs: "
            f"{budget['reached']:.2f}x FLOPs reduction for a target of {settings.budget:g}x")
    if hold is not None and any(pruned.spec.thresholds):
        held = hold_metric(pruned, hold[0], hold[1], settings.max_metric_drop)
        budget = {**(budget or {}), "metric_hold": held}
        outcome = "within" if held["met"] else "still more than"
        log(f"metric hold: thresholds x{held['scale']:.3f} after {held['evaluations']} runs over {held['examples']} "
            f"held-out training examples: {100 * held['metric']:.2f} against the dense {100 * held['reference']:.2f}, "
            f"{outcome} {settings.max_metric_drop:g} points, at {held['reached']:.2f}x FLOPs reduction there")
    if qat is not None:
        qat.remove()
    idle = []
    if settings.drop_idle_pruners:
        pruned, idle = drop_idle_pruners(pruned, data, *([hold[0]] if hold is not None else []))
    if idle:
        seen = "dev or tuning" if hold is not None else "dev"
        log(f"idle pruners: layer{'s' if len(idle) > 1 else ''} {', '.join(map(str, idle))} dropped no {seen} "
            f"token; threshold set to 0 (same decisions there, fewer graph nodes)")
    return pruned, budget, idle


def _tuning_slice(examples: Examples, settings: TrainSettings) -> tuple[Examples, Examples | None]:
    """(training examples, tuning slice): with ``max_metric_drop`` set, ``tune_examples`` seeded rows (at most a tenth
    of ``examples``) leave the training data for ``budget.hold_metric``; otherwise (examples, None)."""
    if settings.max_metric_drop is None:
        return examples, None
    n = min(settings.tune_examples, len(examples) // 10)
    if n < 1:
        raise LtpDeployError(f"--max-metric-drop needs a tuning slice held out of training, but {len(examples)} "
                             "training examples leave none: give at least 10, or --target-flops-reduction instead.")
    return examples.hold_out(n, seed=[settings.seed, 7])


def _stage_rng(seed: int, stage: int) -> np.random.Generator:
    """Seed torch and numpy per stage, so that training from a saved dense model repeats the full run's stages."""
    torch.manual_seed(seed * 3 + stage)
    return np.random.default_rng([seed, stage])


def _task_model(ckpt: Checkpoint, examples: Examples) -> tuple[PrunedClassifier, dict]:
    """The checkpoint's dense model with a head for the task: a fresh head of the right size for an encoder-only
    folder; a fine-tuned classifier must already have the task's number of outputs."""
    cfg = ckpt.config
    num_labels = 1 if examples.is_regression else len(examples.label_names or ()) or cfg.num_labels
    hf_config = dict(ckpt.hf_config)
    if not ckpt.head_initialized:
        if cfg.num_labels != num_labels:
            raise LtpDeployError(
                f"{ckpt.path} is a classifier with {cfg.num_labels} outputs but task {examples.task} needs "
                f"{num_labels}: fine-tune from the encoder, or pass a classifier trained for this task.")
        return ckpt.model, hf_config
    labels = None if examples.is_regression else tuple(examples.label_names or ()) or None
    new_cfg = replace(cfg, num_labels=num_labels, id2label=labels)
    for key in ("id2label", "label2id"):
        hf_config.pop(key, None)
    hf_config["num_labels"] = num_labels
    if examples.is_regression:
        hf_config["problem_type"] = "regression"
    model = PrunedClassifier(new_cfg)
    state = {k: v for k, v in ckpt.model.state_dict().items() if not k.startswith("classifier.")}
    generator = torch.Generator().manual_seed(0)  # the same seeded head init as load_checkpoint's
    for k, v in model.state_dict().items():
        if k.startswith("classifier."):
            state[k] = torch.empty_like(v).normal_(0.0, 0.02, generator=generator) if k.endswith("weight") \
                else torch.zeros_like(v)
    model.load_state_dict(state, strict=True)
    return model, hf_config


def _settings_dict(settings: TrainSettings) -> dict:
    d = {k: (str(v) if isinstance(v, Path) else v) for k, v in asdict(settings).items()}
    d["lambda"] = d.pop("lambda_")
    return d


def _stage_dict(stage: StageLog) -> dict:
    return {"name": stage.name, "steps": stage.steps, "seconds": round(stage.seconds, 2), "history": stage.history}


def _stage_line(name: str, stage: StageLog | None, ev: Evaluation, spec: PruningSpec | None = None,
                note: str = "") -> str:
    """One line per stage: what it did, then the dev metric, FLOPs reduction and kept tokens under the hard rule."""
    if stage is not None and stage.history:
        done = f"{stage.steps} steps in {stage.seconds:.0f} s, loss {stage.first_loss:.3f} -> {stage.last_loss:.3f}; "
    else:
        done = f"{note or 'skipped (0 steps)'}; "
    thr = f"; thresholds {', '.join(f'{t:.4f}' for t in spec.thresholds)}" if spec is not None else ""
    return (f"{name}: {done}dev {ev.metric} {100 * ev.value:.2f}, FLOPs reduction {ev.flops_reduction:.2f}x, "
            f"kept {', '.join(f'{k:.1f}' for k in ev.mean_kept)} of {ev.mean_length:.1f} tokens{thr}")


def _now() -> str:
    return dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")
