"""Find a pruning spec for a fine-tuned checkpoint without training: a one-parameter search on a calibration split.

Two goals:

* ``target_flops_reduction=X``: bisection on the family's strength until the calibration split's FLOPs reduction
  is within ``tolerance`` (relative, default 1%) of X. FLOPs are piecewise constant in the strength (whole tokens
  are dropped), so the search stops at the first setting within the tolerance.
* ``max_metric_drop=D``: the largest FLOPs reduction whose calibration metric stays within D points (metric x 100)
  of the dense model's: a coarse scan of the family, then a bisection between the last passing and the first
  failing setting.

The calibration split is a slice of the training data: the dev split is only ever used to report the outcome.

Example::

    result = search(model, calib, mode="absolute_threshold", target_flops_reduction=1.6)
    result.spec.thresholds, result.calibration.flops_reduction     # (...), 1.603
"""

from __future__ import annotations

from dataclasses import dataclass, field

from ltp_deploy.evaluation import EncodedData, Evaluation, evaluate
from ltp_deploy.calibration.families import Family, family
from ltp_deploy.errors import LtpDeployError
from ltp_deploy.model import PrunedClassifier
from ltp_deploy.spec import PruningSpec

TOLERANCE = 0.01  # the FLOPs target is met when |achieved / target - 1| <= 1% on the calibration split
_MAX_EVALUATIONS = 40
_SCAN_POINTS = 10
_REFINE_STEPS = 6


@dataclass
class Trial:
    strength: float
    evaluation: Evaluation

    def to_dict(self, fam: Family) -> dict:
        return {fam.parameter: fam.value(self.strength), "metric": self.evaluation.value,
                "flops_reduction": self.evaluation.flops_reduction}


@dataclass
class SearchResult:
    """The chosen setting and its calibration-split numbers, with every setting tried."""

    family: Family
    strength: float
    spec: PruningSpec | None  # None: the dense model was the best answer (e.g. a drop budget of 0)
    calibration: Evaluation
    dense_calibration: Evaluation
    goal: dict  # {"target_flops_reduction": X, "tolerance": t} or {"max_metric_drop": D}
    met: bool
    trials: list[Trial] = field(default_factory=list)

    @property
    def value(self) -> float:
        return self.family.value(self.strength)

    @property
    def metric_drop_points(self) -> float:
        return 100.0 * (self.dense_calibration.value - self.calibration.value)


class Evaluator:
    """Evaluates family settings on the calibration split, remembering every result."""

    def __init__(self, model: PrunedClassifier, data: EncodedData, fam: Family, n_ref: int):
        self.model, self.data, self.fam, self.n_ref = model, data, fam, n_ref
        self.trials: dict[float, Trial] = {}

    def __call__(self, strength: float) -> Trial:
        if strength not in self.trials:
            if len(self.trials) >= _MAX_EVALUATIONS:
                raise LtpDeployError("Calibration did not converge within 40 evaluations: the model's FLOPs do not "
                                     "respond to the pruning strength; try the other --mode.")
            spec = self.fam.spec(strength, self.model.config.num_layers, self.n_ref)
            self.trials[strength] = Trial(strength, evaluate(self.model.with_spec(spec), self.data))
        return self.trials[strength]

    def ordered(self) -> list[Trial]:
        return [self.trials[k] for k in sorted(self.trials)]


def search(model: PrunedClassifier, data: EncodedData, mode: str, target_flops_reduction: float | None = None,
           max_metric_drop: float | None = None, n_ref: int = 128, tolerance: float = TOLERANCE) -> SearchResult:
    """Search ``mode``'s family on ``data`` (the calibration split) for one of the two goals.

    Args:
        model: the fine-tuned model; its own spec is ignored (the search starts from dense).
        data: labelled calibration examples (a train slice, never dev).
        mode: ``absolute_threshold`` or ``topk``.
        target_flops_reduction: reach this FLOPs reduction (> 1) within ``tolerance``; or
        max_metric_drop: largest FLOPs reduction with a metric drop of at most this many points.
        n_ref: score normaliser of the resulting threshold spec.
    Returns:
        A ``SearchResult``; ``met`` is False when the FLOPs target could only be approached (see ``trials``).
    Raises:
        LtpDeployError: both or neither goal, a target <= 1, a negative drop, a target the family cannot reach.
    """
    check_goal(target_flops_reduction, max_metric_drop)
    fam = family(mode)
    dense_model = model.with_spec(None)
    run = Evaluator(dense_model, data, fam, n_ref)
    dense = run(0.0).evaluation
    if target_flops_reduction is not None:
        best, met = _bisect_flops(run, target_flops_reduction, tolerance)
        goal = {"target_flops_reduction": target_flops_reduction, "tolerance": tolerance}
    else:
        best, met = _largest_within_drop(run, dense.value, max_metric_drop), True
        goal = {"max_metric_drop": max_metric_drop}
    spec = fam.spec(best.strength, model.config.num_layers, n_ref,
                    source={"method": "ltp-deploy calibrate", **goal})
    return SearchResult(fam, best.strength, spec, best.evaluation, dense, goal, met, run.ordered())


def check_goal(target_flops_reduction: float | None, max_metric_drop: float | None) -> None:
    """Exactly one goal, with a valid value."""
    if (target_flops_reduction is None) == (max_metric_drop is None):
        raise LtpDeployError("Give exactly one of --target-flops-reduction and --max-metric-drop: "
                             "e.g. --target-flops-reduction 1.6 or --max-metric-drop 1.0.")
    if target_flops_reduction is not None and not target_flops_reduction > 1.0:
        raise LtpDeployError(f"--target-flops-reduction must be above 1.0 (dense), got {target_flops_reduction}: "
                             "give the wanted dense/pruned FLOPs ratio, e.g. 1.6.")
    if max_metric_drop is not None and not max_metric_drop >= 0:
        raise LtpDeployError(f"--max-metric-drop must be zero or more points, got {max_metric_drop}: "
                             "e.g. 1.0 allows one accuracy point.")


def upper_strength(run: Evaluator, flops_at_least: float) -> Trial:
    """The weakest doubling (threshold family) or the strongest setting (top-k) reaching ``flops_at_least``;
    for thresholds, doubling stops once every token but CLS is dropped."""
    fam = run.fam
    if fam.max_strength != float("inf"):
        return run(fam.max_strength)
    strength = 0.25 / run.n_ref  # a quarter of the mean score (1 / n_ref): already drops tokens in most layers
    trial, previous = run(strength), 1.0
    while trial.evaluation.flops_reduction < flops_at_least and strength < 64.0 / run.n_ref:
        if trial.evaluation.flops_reduction == previous:  # saturated: only CLS is left after every layer but 0
            break
        previous, strength = trial.evaluation.flops_reduction, strength * 2
        trial = run(strength)
    return trial


def strength_for(run: Evaluator, target: float, tolerance: float = TOLERANCE) -> tuple[Trial, bool]:
    """The setting whose FLOPs reduction is within ``tolerance`` of ``target`` (bisection); ``met`` False when the
    closest setting tried is still off (FLOPs move in whole tokens).

    Raises:
        LtpDeployError: the family cannot reach ``target``.
    """
    return _bisect_flops(run, target, tolerance)


def _bisect_flops(run: Evaluator, target: float, tolerance: float) -> tuple[Trial, bool]:
    hi = upper_strength(run, target)
    if hi.evaluation.flops_reduction < target * (1 - tolerance):
        raise LtpDeployError(
            f"The {run.fam.mode} family reaches at most {hi.evaluation.flops_reduction:.2f}x FLOPs reduction on the "
            f"calibration split, below the target {target:g}x: lower --target-flops-reduction or use the other --mode.")
    lo = run(0.0)
    for _ in range(_MAX_EVALUATIONS - len(run.trials)):
        for trial in (hi, lo):
            if abs(trial.evaluation.flops_reduction / target - 1) <= tolerance:
                return trial, True
        mid = run((lo.strength + hi.strength) / 2)
        if mid.evaluation.flops_reduction >= target:
            hi = mid
        else:
            lo = mid
        if hi.strength - lo.strength <= 1e-9 * max(1.0, hi.strength):
            break
    best = min(run.trials.values(), key=lambda t: abs(t.evaluation.flops_reduction / target - 1))
    return best, abs(best.evaluation.flops_reduction / target - 1) <= tolerance


def _largest_within_drop(run: Evaluator, dense_value: float, max_drop: float) -> Trial:
    def passes(trial: Trial) -> bool:
        return 100.0 * (dense_value - trial.evaluation.value) <= max_drop + 1e-9

    top = upper_strength(run, 4.0)
    step = top.strength / _SCAN_POINTS
    scan = [run(step * i) for i in range(_SCAN_POINTS + 1)]
    passing = [t for t in scan if passes(t)]
    best = max(passing, key=lambda t: t.evaluation.flops_reduction)
    above = [t for t in scan if t.strength > best.strength and not passes(t)]
    if above:
        lo, hi = best, min(above, key=lambda t: t.strength)
        for _ in range(_REFINE_STEPS):
            mid = run((lo.strength + hi.strength) / 2)
            if passes(mid):
                lo = mid
                if mid.evaluation.flops_reduction > best.evaluation.flops_reduction:
                    best = mid
            else:
                hi = mid
    return best
