"""Training to a FLOPs budget X (dense FLOPs / pruned FLOPs, LTP's accounting in ``ltp_deploy.flops``).

Three pieces hold the budget through a run:

1. ``Lagrangian`` (stage 1, ToP's constraint): the loss adds ``l1 * (r - t) + l2 * (r - t)^2``, ``r`` the expected
   FLOPs of the soft masks over the dense FLOPs, ``t = 1 / X``. ``l1`` and ``l2`` start at 0 and rise by gradient
   ascent while ``r`` misses ``t``, so the thresholds climb until the budget is met and stop there (``l1`` turns
   negative if they overshoot).
2. ``BudgetController`` (stage 2): the hard rule's thresholds are constants that no gradient moves, and the
   weights drift towards keeping more tokens. After each step the controller scales every threshold by
   ``exp(gain * (log X - log R))``, ``R`` the reduction of the recent training batches, so that the weights adapt to
   thresholds that keep the budget.
3. ``meet_budget`` (after stage 2): training batches are not the inputs the budget is judged on (SST-2 trains on
   phrases and is judged on sentences). A search over one common scale of the thresholds makes the dev inputs
   meet X; their labels are never read.
4. ``hold_metric`` (``--max-metric-drop D``, each task's default): the budget is an upper bound. A search over one
   common factor <= 1 of the thresholds keeps the largest FLOPs reduction whose task metric on a labelled tuning
   slice, held out of the training examples, is at most D points below the dense model's on the same slice. The
   split that ``train`` reports (dev) is never read for it.

``drop_idle_pruners`` then sets to 0 the threshold of every layer that drops no token of those same inputs (nor of
the tuning slice, when the hold ran): on them the decisions, the metric and the FLOPs stay exactly the same, and the export loses that layer's scoring and
gather (about 8 executed OpenVINO nodes per layer at batch 1, `scripts/ov_nodes.py`).
"""

from __future__ import annotations

import math
from dataclasses import replace

import numpy as np
import torch
from torch import nn

from ltp_deploy.evaluation import EncodedData, evaluate, predict
from ltp_deploy.flops import dense_flops, flops_from_kept, flops_reduction
from ltp_deploy.model import PrunedClassifier


class Lagrangian(nn.Module):
    """ToP's budget term for stage 1: ``forward(r)`` is ``l1 * (r - t) + l2 * (r - t)^2``; ``optimizer`` ascends."""

    def __init__(self, target_reduction: float):
        super().__init__()
        self.target_ratio = 1.0 / target_reduction
        self.multipliers = nn.Parameter(torch.zeros(2))

    def forward(self, ratio: torch.Tensor) -> torch.Tensor:
        gap = ratio - self.target_ratio
        return self.multipliers[0] * gap + self.multipliers[1] * gap * gap

    def optimizer(self, lr: float) -> torch.optim.Optimizer:
        """AdamW that maximises the loss in the multipliers (the min-max of a Lagrangian)."""
        return torch.optim.AdamW(self.parameters(), lr=lr, weight_decay=0.0, maximize=True)


class BudgetController:
    """Holds a threshold model at ``target`` FLOPs reduction while its weights train under the hard rule.

    ``update(lengths, kept)`` takes one training batch's real lengths (B,) and kept counts (B, L), folds them into
    running sums of dense and pruned FLOPs (``memory`` per step: about 1 / (1 - memory) recent batches count) and
    scales the model's thresholds towards the budget; it returns the running reduction.
    """

    def __init__(self, model: PrunedClassifier, target: float, gain: float = 0.05, memory: float = 0.9):
        self.model, self.target, self.gain, self.memory = model, target, gain, memory
        self.dense = self.pruned = 0.0
        self.scale = 1.0  # product of every factor applied so far

    def update(self, lengths: np.ndarray, kept: np.ndarray) -> float:
        cfg = self.model.config
        self.dense = self.memory * self.dense + float(np.sum(dense_flops(cfg, lengths)))
        self.pruned = self.memory * self.pruned + float(flops_from_kept(cfg, lengths, kept).sum())
        reduction = self.dense / self.pruned
        factor = math.exp(self.gain * (math.log(self.target) - math.log(reduction)))
        self.model.scale_thresholds(factor)
        self.scale *= factor
        return reduction


class _ScaledThresholds:
    """``model`` with its thresholds at ``exp(log_scale)`` times where they started, each factor measured once by
    ``measure(model)`` (``tried``: log factor -> measurement). Calling it moves the model in place, so the model is
    always at the last factor asked for: the one mover of both searches below."""

    def __init__(self, model: PrunedClassifier, measure):
        self.model, self.measure, self.log = model, measure, 0.0
        self.tried: dict[float, object] = {}

    def __call__(self, log_scale: float):
        self.model.scale_thresholds(math.exp(log_scale - self.log))
        self.log = log_scale
        if log_scale not in self.tried:
            self.tried[log_scale] = self.measure(self.model)
        return self.tried[log_scale]


def meet_budget(model: PrunedClassifier, data: EncodedData, target: float, tolerance: float = 0.01,
                max_evals: int = 14, step: float = 0.25) -> dict:
    """Scale ``model``'s thresholds (in place) so that its FLOPs reduction on ``data`` is in [X, X * (1 + tol)].

    The reduction grows with the scale; the search brackets X in steps of ``step`` in log scale, then bisects, and
    leaves the smallest scale tried whose reduction reaches X (or, if none does within ``max_evals`` runs, the
    largest tried). Labels are not used.

    Returns:
        ``{"target", "reached", "scale", "evaluations"}``: the reduction reached on ``data`` and the factor applied.
    """
    scaled = _ScaledThresholds(model, lambda m: flops_reduction(m.config, data.lengths, predict(m, data)[1]))
    tried, reduction_at = scaled.tried, scaled

    def good(r: float) -> bool:
        return target <= r <= target * (1 + tolerance)

    r = reduction_at(0.0)
    if not any(model.spec.thresholds):  # nothing prunes: no scale changes the FLOPs
        return {"target": target, "reached": r, "scale": 1.0, "evaluations": 1}
    if r < target:  # bracket upwards: lo misses, hi meets
        lo, hi = 0.0, step
        while reduction_at(hi) < target and len(tried) < max_evals:
            lo, hi = hi, hi + step
    else:  # bracket downwards
        lo, hi = -step, 0.0
        while not good(tried[hi]) and reduction_at(lo) >= target and len(tried) < max_evals:
            lo, hi = lo - step, lo
    while tried.get(hi, 0.0) >= target and not good(tried[hi]) and len(tried) < max_evals:
        mid = (lo + hi) / 2
        if reduction_at(mid) >= target:
            hi = mid
        else:
            lo = mid
    meeting = [s for s, v in tried.items() if v >= target]
    final = min(meeting) if meeting else max(tried)
    reduction_at(final)
    return {"target": target, "reached": tried[final], "scale": math.exp(final), "evaluations": len(tried)}


def hold_metric(model: PrunedClassifier, data: EncodedData, reference: float, max_drop: float,
                shrink: float = 0.8, min_scale: float = 0.05, refine: int = 4) -> dict:
    """Lower ``model``'s thresholds (in place, by one common factor <= 1) to the largest FLOPs reduction on ``data``
    whose primary metric is at most ``max_drop`` points (100 x the metric) below ``reference``.

    ``data`` is labelled and must be held out of training and of the split that is reported: ``train`` passes its
    tuning slice, and ``reference`` is the dense model's metric on it. The scan tries the factors 1, ``shrink``,
    ``shrink``^2, ... down to ``min_scale`` until one passes, then bisects (in log scale, ``refine`` steps) between
    the last failing and the first passing factor. The metric is not exactly monotone in the factor, so the factor
    kept is the passing one with the largest FLOPs reduction among all tried; if none passes, the smallest tried
    (``met`` False).

    Returns:
        ``{"max_metric_drop", "reference", "metric", "metric_drop_points", "scale", "reached", "met",
        "examples", "evaluations"}``: the metric and FLOPs reduction on ``data`` at the factor kept.
    """
    def passes(metric: float) -> bool:
        return 100.0 * (reference - metric) <= max_drop + 1e-9

    def measure(m: PrunedClassifier) -> tuple[float, float]:
        ev = evaluate(m, data)
        return ev.value, ev.flops_reduction

    scaled = _ScaledThresholds(model, measure)  # log factor -> (metric, FLOPs reduction)
    tried = scaled.tried

    def at(log_scale: float) -> bool:
        return passes(scaled(log_scale)[0])

    step, floor = math.log(shrink), math.log(min_scale)
    fail, ok = None, 0.0
    while not at(ok):
        fail, ok = ok, ok + step
        if ok < floor:
            break
    if fail is not None and ok >= floor:
        for _ in range(refine):
            mid = (fail + ok) / 2
            if at(mid):
                ok = mid
            else:
                fail = mid
    passing = [k for k in tried if passes(tried[k][0])]
    final = max(passing, key=lambda k: (tried[k][1], k)) if passing else min(tried)
    at(final)
    metric, reached = tried[final]
    return {"max_metric_drop": max_drop, "reference": reference, "metric": metric,
            "metric_drop_points": 100.0 * (reference - metric), "scale": math.exp(final), "reached": reached,
            "met": bool(passing), "examples": len(data), "evaluations": len(tried)}


def drop_idle_pruners(model: PrunedClassifier, *data: EncodedData) -> tuple[PrunedClassifier, list[int]]:
    """``model`` with threshold 0 in each pruning layer that keeps every token it receives on every set in ``data``.

    A layer is idle when, for every input, it keeps as many tokens as the layer before it (the real length for
    layer 0). Zeroing one idle layer leaves every later layer's input unchanged, so all idle layers go at once and
    the model's decisions on each set stay identical. Labels are not used.

    Returns:
        The model (a new one sharing weights, without the idle layers' learned scorers; ``model`` itself when no
        layer is idle) and the zeroed layers' indices.
    """
    spec = model.spec
    if spec is None or spec.mode != "absolute_threshold":
        return model, []
    idle = set(spec.pruning_layers())
    for one in data:
        _, kept = predict(model, one)
        before = np.concatenate([one.lengths[:, None], kept[:, :-1]], axis=1)
        idle &= {i for i in spec.pruning_layers() if np.array_equal(kept[:, i], before[:, i])}
    idle = sorted(idle)
    if not idle:
        return model, []
    thresholds = tuple(0.0 if i in idle else t for i, t in enumerate(spec.thresholds))
    source = {**(spec.source or {}), "idle_layers_zeroed": idle}
    return model.with_spec(replace(spec, thresholds=thresholds, source=source)), idle
