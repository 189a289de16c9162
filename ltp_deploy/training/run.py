"""``train``: the three stages end to end, from a model folder and a task to written checkpoints."""

from __future__ import annotations

import datetime as dt
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import asdict, replace
from pathlib import Path

import numpy as np
import torch

from ltp_deploy.calibration.evaluate import EncodedData, Evaluation, evaluate
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


def _train(settings: TrainSettings, log: Log, outputs: ExitStack) -> TrainReport:
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
    ckpt = load_checkpoint(settings.model, dense=True)
    if ckpt.head_initialized:
        settings.check_dense_output()
        outputs.enter_context(reserved(settings.dense_path))
    model, hf_config = _task_model(ckpt, train_ex)
    tokenizer = ckpt.tokenizer()
    regression = train_ex.is_regression
    length = min(settings.max_length or default_max_length(task.name), model.config.max_length)  # never past the positions
    data = TrainData.build(tokenizer, train_ex, length)
    dev = EncodedData.build(tokenizer, dev_ex, length)
    tune = EncodedData.build(tokenizer, tune_ex, length) if tune_ex is not None else None
    n, bs = len(data), settings.batch_size
    stages, started = [], time.perf_counter()
    base_meta = {"task": task.name, "source_model": str(Path(settings.model).resolve()),
                 "train_examples": n, "dev_examples": len(dev_ex),
                 "tune_examples": 0 if tune_ex is None else len(tune_ex), "settings": _settings_dict(settings),
                 "versions": library_versions()}

    dense_output, stage = None, None
    if ckpt.head_initialized:
        with _diverged(settings, None):
            stage = fit_dense(model, data, stage_steps(n, bs, settings.dense_epochs, settings.dense_steps, "dense"),
                              settings.dense_lr, settings, regression, _stage_rng(settings.seed, 0))
        stages.append(stage)
    dense_eval = evaluate(model, dev)
    dense_tune = evaluate(model, tune) if tune is not None else None  # before stage 1 trains the weights in place
    log(_stage_line("dense", stage, dense_eval, note="" if stage else "the input model, already fine-tuned"))
    if ckpt.head_initialized:
        dense_output = settings.dense_path
        meta = {**base_meta, "kind": "dense", "created": _now(), "dev": dense_eval.to_dict(),
                "stages": [_stage_dict(s) for s in stages]}
        save_checkpoint(model, dense_output, hf_config, tokenizer=tokenizer, metadata=meta,
                        inputs=(*settings.output_rules["inputs"], settings.output), overwrite=settings.overwrite)

    # Stage 1 trains the dense model's weights in place (the dense checkpoint is already written).
    teacher = None
    if settings.distill > 0 or settings.distill_hidden > 0 or settings.rank_distill > 0:
        teacher = PrunedClassifier(model.config, None)
        teacher.load_state_dict(model.state_dict(), strict=True)
        teacher.eval().requires_grad_(False)
    thresholds = Thresholds(model.config.num_layers, settings.final_token_threshold, settings.learn_first_layer)
    soft_steps = stage_steps(n, bs, settings.soft_epochs, settings.soft_steps, "soft")
    scorers = LearnedScorers(model.config.num_layers, model.config.hidden_size) \
        if settings.scorer == "learned" else None
    with _diverged(settings, dense_output):
        stage = learn_thresholds(model, thresholds, data, soft_steps, settings, regression,
                                 _stage_rng(settings.seed, 1), teacher, scorers)
    stages.append(stage)
    source = {"method": "ltp-deploy train", "final_token_threshold": settings.final_token_threshold,
              "deltas": [float(d) for d in thresholds.delta.detach()], "lambda": settings.lambda_,
              "target_flops_reduction": settings.budget, "temperature": settings.temperature,
              "final_temperature": settings.end_temperature, "soft_masking": settings.masking,
              "budget_counts": settings.budget_counts, "learn_first_layer": settings.learn_first_layer,
              "scorer": settings.scorer}
    pruned = PrunedClassifier(model.config, thresholds.spec(settings.n_ref, source, settings.scorer))  # real dropping
    pruned.load_state_dict({**model.state_dict(), **(scorers.state_for(pruned) if scorers else {})}, strict=True)
    soft_eval = evaluate(pruned, dev)
    log(_stage_line("soft", stage, soft_eval, pruned.spec))

    hard_steps = stage_steps(n, bs, settings.hard_epochs, settings.hard_steps, "hard")
    qat = FakeQuantized(pruned) if settings.qat else None  # before fit_hard builds its optimizer
    with _diverged(settings, dense_output):
        stage = (fit_hard(pruned, data, hard_steps, settings, regression, _stage_rng(settings.seed, 2), teacher)
                 if hard_steps else None)
    stages += [stage] if stage else []
    budget_dev = dev if settings.budget_examples is None or settings.budget_examples >= len(dev_ex) else \
        EncodedData.build(tokenizer, dev_ex.take(settings.budget_examples), length)
    pruned, budget, idle = _finish_thresholds(pruned, budget_dev, settings, log,
                                              hold=(tune, dense_tune.value) if tune is not None else None, qat=qat)
    final_eval = evaluate(pruned, dev)
    spec = pruned.spec
    log(_stage_line("hard", stage, final_eval, spec))

    metadata = {
        **base_meta, "kind": "ltp", "created": _now(),
        "dev": final_eval.to_dict(),
        "dense": {"checkpoint": str(Path(dense_output or settings.model).resolve()), "dev": dense_eval.to_dict()},
        "after_soft_stage": soft_eval.to_dict(),
        "metric_drop_points": 100.0 * (dense_eval.value - final_eval.value),
        "thresholds": list(spec.thresholds), "n_ref": spec.n_ref, "budget": budget, "idle_layers_zeroed": idle,
        "stages": [_stage_dict(s) for s in stages],
        "train_seconds": time.perf_counter() - started,
    }
    out = save_checkpoint(pruned.eval(), settings.output, hf_config, tokenizer=tokenizer, metadata=metadata,
                          **settings.output_rules)
    return TrainReport(dense_eval, soft_eval, final_eval, spec, stages, out, dense_output, metadata)


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
