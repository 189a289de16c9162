"""Task metrics: accuracy, F1, Matthews, Pearson, Spearman; which ones a task reports; logits to predictions."""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from ltp_deploy.data import Examples, get_task
from ltp_deploy.errors import LtpDeployError

def _pair(labels: Any, preds: Any) -> tuple[np.ndarray, np.ndarray]:
    y, p = np.asarray(labels).ravel(), np.asarray(preds).ravel()
    if y.shape != p.shape or y.size == 0:
        raise ValueError(f"need equally many labels and predictions, got {y.size} and {p.size}")
    return y, p


def accuracy(labels: Any, predictions: Any) -> float:
    """Fraction of exact matches."""
    y, p = _pair(labels, predictions)
    return float(np.mean(y == p))


def f1(labels: Any, predictions: Any) -> float:
    """Binary F1 of the positive class 1 (0.0 when there are no true or predicted positives)."""
    y, p = _pair(labels, predictions)
    tp, fp, fn = np.sum((p == 1) & (y == 1)), np.sum((p == 1) & (y != 1)), np.sum((p != 1) & (y == 1))
    return float(2 * tp / (2 * tp + fp + fn)) if tp else 0.0


def matthews(labels: Any, predictions: Any) -> float:
    """Matthews correlation coefficient (multi-class form; 0.0 when undefined)."""
    y, p = _pair(labels, predictions)
    classes, inv = np.unique(np.concatenate([y, p]), return_inverse=True)
    cm = np.zeros((len(classes), len(classes)), dtype=np.float64)
    np.add.at(cm, (inv[: y.size], inv[y.size:]), 1)
    t, q, c, s = cm.sum(axis=1), cm.sum(axis=0), np.trace(cm), cm.sum()
    denom = math.sqrt((s * s - q @ q) * (s * s - t @ t))
    return float((c * s - t @ q) / denom) if denom else 0.0


def _correlation(kind: str, labels: Any, predictions: Any) -> float:
    from scipy import stats  # imported only when a correlation is asked for

    y, p = _pair(labels, predictions)
    fn = stats.pearsonr if kind == "pearson" else stats.spearmanr
    return float(fn(y.astype(np.float64), p.astype(np.float64))[0])


def pearson(labels: Any, predictions: Any) -> float:
    """Pearson correlation (scipy; nan when an input is constant)."""
    return _correlation("pearson", labels, predictions)


def spearman(labels: Any, predictions: Any) -> float:
    """Spearman rank correlation (scipy; nan when an input is constant)."""
    return _correlation("spearman", labels, predictions)


METRICS = {"accuracy": accuracy, "f1": f1, "matthews": matthews, "pearson": pearson, "spearman": spearman}
# The values each metric can take: a bound outside them is a mistake (e.g. 90 for 90% accuracy).
METRIC_RANGES = {"accuracy": (0.0, 1.0), "f1": (0.0, 1.0), "matthews": (-1.0, 1.0), "pearson": (-1.0, 1.0),
                 "spearman": (-1.0, 1.0)}


def metric_names(task_or_examples: str | Examples | None) -> tuple[str, ...]:
    """The metrics ``compute_metrics`` reports for a task or examples, the primary one first."""
    task = task_or_examples.task if isinstance(task_or_examples, Examples) else task_or_examples
    if task:
        return get_task(task).metrics
    regression = isinstance(task_or_examples, Examples) and task_or_examples.is_regression
    return ("pearson", "spearman") if regression else ("accuracy",)


def primary_metric(task_or_examples: str | Examples | None) -> str:
    """Name of the headline metric: accuracy (MRPC/QQP too), pearson for STS-B, matthews for CoLA."""
    return metric_names(task_or_examples)[0]


def compute_metrics(task_or_examples: str | Examples, predictions: Any, labels: Any = None) -> dict[str, float]:
    """Compute the task's metrics; labels come from the Examples, or ``labels`` with a task name.

    Predictions are class ids (classification) or floats (regression); see :func:`predictions_from_logits`.
    Raises:
        LtpDeployError: no labels, or predictions not one per example.
    """
    if labels is None and isinstance(task_or_examples, Examples):
        labels = task_or_examples.labels
    if labels is None:
        raise LtpDeployError("Cannot compute metrics without labels: use labelled data (give a label column).")
    preds = np.asarray(predictions)
    if preds.ndim != 1 or preds.shape[0] != len(labels):
        raise LtpDeployError(f"Got predictions of shape {preds.shape} for {len(labels)} examples: pass one "
                             "prediction per example (predictions_from_logits turns logits into them).")
    return {name: METRICS[name](labels, preds) for name in metric_names(task_or_examples)}


def predictions_from_logits(logits: Any, is_regression: bool) -> np.ndarray:
    """Class ids (argmax, int64) or, for regression, the float32 scores of ``(n,)``/``(n, 1)`` logits."""
    x = np.asarray(logits)
    if is_regression:
        return x.reshape(x.shape[0], -1)[:, 0].astype(np.float32)
    return np.argmax(x, axis=-1).astype(np.int64)
