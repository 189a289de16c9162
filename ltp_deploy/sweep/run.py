"""``sweep``: the dense point, the family of training-free settings and the trained points on dev."""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Callable

import numpy as np

from ltp_deploy.calibration.families import Family, family
from ltp_deploy.calibration.search import Evaluator, strength_for, upper_strength
from ltp_deploy.checkpoint import Checkpoint, load_checkpoint
from ltp_deploy.data import Examples, default_max_length, get_task, load_examples
from ltp_deploy.environment import library_versions
from ltp_deploy.errors import LtpDeployError
from ltp_deploy.evaluation import EncodedData, Evaluation, evaluate
from ltp_deploy.outputs import write_json
from ltp_deploy.sweep.plots import plot_sweep
from ltp_deploy.sweep.settings import SweepSettings
from ltp_deploy.sweep.trained import budget_of, load_trained, train_targets

SWEEP_VERSION = 1
_RANGE_EXAMPLES = 256  # dev sentences used to find the strongest threshold of the range (cheap, rough)


def sweep(settings: SweepSettings, log: Callable[[str], None] | None = None) -> dict:
    """Evaluate the family and the trained points on the dev split; write the JSON (and the PNG) atomically.

    Args:
        settings: see ``SweepSettings``.
        log: called with a line per training step of ``train_targets`` (the CLI prints them); None: silent.
    Returns:
        The report (the JSON written).
    Raises:
        LtpDeployError: bad options, missing data or checkpoint, an untrained head, a trained checkpoint of
            another architecture or without a pruning spec.
    """
    settings.validate()
    log = log or (lambda line: None)
    task = get_task(settings.task)
    ckpt = load_checkpoint(settings.checkpoint)
    if ckpt.head_initialized:
        raise LtpDeployError(f"{ckpt.path} has no trained classification head: fine-tune it first (ltp-deploy train).")
    trained = [(load_trained(path, ckpt), "given") for path in settings.trained]  # refused before any work
    dev_ex = _dev_examples(settings, task.name)
    trained += [(load_trained(folder, ckpt), origin) for folder, origin in train_targets(settings, log)]
    tokenizer = ckpt.tokenizer()
    length = min(settings.max_length or default_max_length(settings.task), ckpt.config.max_length)
    dev = EncodedData.build(tokenizer, dev_ex, length)
    fam = family(settings.mode)
    model = ckpt.model.with_spec(None)
    top = _top_strength(settings, model, fam,
                        lambda: EncodedData.build(tokenizer, dev_ex.take(_RANGE_EXAMPLES), length))
    run = Evaluator(model, dev, fam, settings.n_ref)
    dense = run(0.0).evaluation
    points = [_point("dense" if s == 0 else "family", fam.parameter, fam.value(s),
                     fam.spec(s, model.config.num_layers, settings.n_ref), run(s).evaluation, dense)
              for s in np.linspace(0.0, top, settings.points)]
    if ckpt.spec is not None:
        points.append(_point("checkpoint", None, None, ckpt.spec, evaluate(ckpt.model, dev), dense))
    points += [_trained_point(t, origin, dev, dense) for t, origin in trained]
    report = {
        "kind": "ltp-deploy-sweep",
        "version": SWEEP_VERSION,
        "created": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        "checkpoint": str(Path(settings.checkpoint).resolve()), "task": task.name, "mode": settings.mode,
        "parameter": fam.parameter, "metric": dense.metric, "examples": len(dev_ex),
        "mean_length": dense.mean_length, "max_length": length, "n_ref": settings.n_ref,
        "points": points, "versions": library_versions(),
    }
    if settings.plot_out is not None:
        plot_sweep(report, settings.plot_out, **settings.output_rules)
    write_json(settings.json_out, report, **settings.output_rules)
    return report


def _dev_examples(settings: SweepSettings, task: str) -> Examples:
    dev_ex = load_examples(settings.data, task, "dev")
    if settings.max_eval_examples is not None:
        dev_ex = dev_ex.take(settings.max_eval_examples)
    if not dev_ex.has_labels:
        raise LtpDeployError("A sweep needs labelled data: give a file with a label column.")
    return dev_ex


def _top_strength(settings: SweepSettings, model, fam: Family, probe_data: Callable[[], EncodedData]) -> float:
    """The family's strongest strength: keep rate ``min_keep_rate`` (top-k), or ``max_flops_reduction`` reached
    on ``probe_data()`` (a few dev sentences, built only for thresholds)."""
    if settings.mode == "topk":
        return 1.0 - settings.min_keep_rate
    probe = Evaluator(model, probe_data(), fam, settings.n_ref)
    hi = upper_strength(probe, settings.max_flops_reduction)
    if hi.evaluation.flops_reduction > settings.max_flops_reduction:  # overshot: bisect back to the target
        hi, _ = strength_for(probe, settings.max_flops_reduction, tolerance=0.05)
    return hi.strength


def _point(kind: str, parameter: str | None, value: float | None, spec, ev: Evaluation, dense: Evaluation) -> dict:
    return {"kind": kind, "dense": kind == "dense", "parameter": parameter, "value": value,
            "spec": spec.to_dict() if spec is not None else None,
            "metric": ev.value, "metrics": ev.metrics, "metric_drop_points": 100.0 * (dense.value - ev.value),
            "flops_reduction": ev.flops_reduction, "mean_kept_per_layer": ev.mean_kept}


def _trained_point(ckpt: Checkpoint, origin: str, dev: EncodedData, dense: Evaluation) -> dict:
    """A trained checkpoint, its own weights and spec, on the sweep's dev data."""
    point = _point("trained", None, None, ckpt.spec, evaluate(ckpt.model, dev), dense)
    point.update(checkpoint=str(Path(ckpt.path).resolve()), budget=budget_of(ckpt.metadata), origin=origin)
    return point
