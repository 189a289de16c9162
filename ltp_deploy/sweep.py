"""``sweep``: the dev metric against FLOPs reduction over a family of pruning settings, as JSON and a PNG.

The points (``report["points"]``, each with its ``kind``, ``spec``, ``metric``, ``metrics``, ``metric_drop_points``
against the dense point, ``flops_reduction`` and ``mean_kept_per_layer``) are:

* ``"dense"``: the checkpoint without pruning (strength 0), the reference of every ``metric_drop_points``;
* ``"family"``: evenly spaced strengths of the family of ``mode`` (see ``calibration.families``) up to the
  strength that reaches ``max_flops_reduction`` (thresholds) or a keep rate of 0.1 (top-k), all under the hard
  rule, with the checkpoint's weights: what each setting costs this model without retraining;
* ``"checkpoint"``: the checkpoint's own spec, when it has one;
* ``"trained"``: a checkpoint trained to a FLOPs budget, with its own weights and learned spec
  (``sweep_trained``): given (``trained``, ``--trained``) or trained here from the dense checkpoint to each of
  ``train_targets`` into ``train_dir`` (reused when already there). These points add ``checkpoint`` (its folder),
  ``budget`` (the FLOPs reduction it was trained to, from its ``ltp_deploy.json``; None when not recorded) and
  ``origin`` ("given", "trained" or "reused").

Example::

    report = sweep(SweepSettings("runs/sst2-dense", "sst2", json_out="sweep.json", plot_out="sweep.png",
                                 train_targets=(2.0, 3.0), train_dir="runs/sweep-trained"))
    [(p["kind"], p["flops_reduction"], p["metric"]) for p in report["points"]]
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Sequence

import numpy as np

from ltp_deploy.outputs import check_outputs, write_json
from ltp_deploy.calibration.evaluate import EncodedData, Evaluation, evaluate
from ltp_deploy.calibration.families import Family, family
from ltp_deploy.calibration.search import Evaluator, strength_for, upper_strength
from ltp_deploy.checkpoint import Checkpoint, load_checkpoint
from ltp_deploy.data import Examples, default_max_length, get_task, load_examples
from ltp_deploy.environment import library_versions
from ltp_deploy.errors import LtpDeployError
from ltp_deploy.plots import save_figure
from ltp_deploy.spec import MODES
from ltp_deploy.sweep_trained import (budget_of, load_trained, target_folder, train_settings, train_targets,
                                      validate_training)

SWEEP_VERSION = 1
_RANGE_EXAMPLES = 256  # dev sentences used to find the strongest threshold of the range (cheap, rough)


@dataclass
class SweepSettings:
    checkpoint: str | Path
    task: str
    json_out: str | Path
    plot_out: str | Path | None = None
    mode: str = "absolute_threshold"
    points: int = 8  # family points, the dense one included
    max_flops_reduction: float = 2.5  # thresholds: the strongest point reaches about this (if it can)
    min_keep_rate: float = 0.1  # top-k: the strongest point's token_keep_rate
    data: str | Path | None = None  # a task-layout file instead of GLUE_DIR's dev.tsv
    max_eval_examples: int | None = None
    max_length: int | None = None  # None: the task's (data.default_max_length)
    n_ref: int = 128
    overwrite: bool = False  # replace existing outputs that ltp-deploy did not write
    trained: Sequence[str | Path] = ()  # trained checkpoints to add as points (same architecture, with a spec)
    train_targets: Sequence[float] = ()  # FLOPs budgets to train to from ``checkpoint`` (needs ``train_dir``)
    train_dir: str | Path | None = None  # holds train_dir/target-<X>; an existing match is reused
    train_options: dict = field(default_factory=dict)  # other TrainSettings fields (e.g. soft_steps, max_examples)

    def validate(self) -> None:
        get_task(self.task)
        if self.mode not in MODES:
            raise LtpDeployError(f"Unknown --mode {self.mode!r}: use one of {', '.join(MODES)}.")
        if self.points < 2:
            raise LtpDeployError(f"--points must be at least 2 (the dense point and one pruned), got {self.points}.")
        if not self.max_flops_reduction > 1.0:
            raise LtpDeployError(f"--max-flops-reduction must be above 1.0, got {self.max_flops_reduction}: e.g. 3.")
        if not 0 < self.min_keep_rate < 1:
            raise LtpDeployError(f"--min-keep-rate must lie in (0, 1), got {self.min_keep_rate}: e.g. 0.1.")
        if self.max_eval_examples is not None and self.max_eval_examples < 1:
            raise LtpDeployError(f"--max-eval-examples must be at least 1, got {self.max_eval_examples}.")
        if self.plot_out is not None and Path(self.plot_out).suffix.lower() != ".png":
            raise LtpDeployError(f"Plot file {self.plot_out} must end in .png: name it, for example, sweep.png.")
        validate_training(self)
        trained_outputs = [(target_folder(self.train_dir, x), "checkpoint", "--train-dir") for x in self.train_targets]
        check_outputs([(self.json_out, "report", "--json"), (self.plot_out, "plot", "--plot"), *trained_outputs],
                      **self.output_rules)
        for x in self.train_targets:  # every training option, before any work
            train_settings(self, x).validate()

    @property
    def output_rules(self) -> dict:
        return {"inputs": (self.checkpoint, self.data, *self.trained), "overwrite": self.overwrite}


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


def plot_sweep(report: dict, path: str | Path, **rules) -> Path:
    """Dev metric (x100) against FLOPs reduction: the family and the trained points as lines, the dense point (a
    star), its metric less one point (dashed) and the checkpoint's own spec marked.

    Written to a temporary sibling, then renamed (matplotlib Agg backend, no display needed).
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    path = Path(path)
    family_points = [p for p in report["points"] if p["kind"] in ("dense", "family")]
    fig, ax = plt.subplots(figsize=(6.4, 4.4))
    xs = [p["flops_reduction"] for p in family_points]
    ys = [100 * p["metric"] for p in family_points]
    ax.plot(xs, ys, "o-", color="tab:blue", label=f"{report['mode']} family ({report['parameter']})")
    for p, x, y in zip(family_points, xs, ys):
        ax.annotate(f"{p['value']:.3g}", (x, y), textcoords="offset points", xytext=(4, 4), fontsize=7)
    dense = family_points[0]
    ax.plot([dense["flops_reduction"]], [100 * dense["metric"]], "k*", markersize=12, label="dense")
    ax.axhline(100 * dense["metric"] - 1.0, color="gray", lw=0.8, ls="--", label="dense - 1 point")
    for p in report["points"]:
        if p["kind"] == "checkpoint":
            ax.plot([p["flops_reduction"]], [100 * p["metric"]], "D", color="tab:red", label="checkpoint's own spec")
    _plot_trained(ax, [p for p in report["points"] if p["kind"] == "trained"])
    ax.set(xlabel="FLOPs reduction (dense / pruned, x)", ylabel=f"dev {report['metric']} (x100)",
           title=f"{Path(report['checkpoint']).name} on {report['task']} ({report['examples']} examples)")
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize=8)
    return save_figure(fig, path, **rules)


def _plot_trained(ax, points: list[dict]) -> None:
    """The trained points as their own line, by FLOPs reduction, each labelled with its budget."""
    if not points:
        return
    points = sorted(points, key=lambda p: p["flops_reduction"])
    xs = [p["flops_reduction"] for p in points]
    ys = [100 * p["metric"] for p in points]
    ax.plot(xs, ys, "s-", color="tab:green", label="trained (learned thresholds)")
    for i, (p, x, y) in enumerate(zip(points, xs, ys)):  # below the marker, every other label a line lower
        text = f"trained (budget {p['budget']:g}x)" if p.get("budget") else f"trained ({Path(p['checkpoint']).name})"
        last = i == len(points) - 1 and i > 0  # the rightmost label ends at its marker, inside the axes
        ax.annotate(text, (x, y), textcoords="offset points", xytext=(-4 if last else 4, -11 - 9 * (i % 2)),
                    ha="right" if last else "left", fontsize=7, color="tab:green")
