"""Measure a model under the hard rule: task metric, tokens kept per layer and FLOPs reduction.

Evaluation always runs the deployed forward (``PrunedClassifier``, real token dropping) on batches padded per
batch. Texts are tokenised once (``EncodedData``) so that a search or a sweep can evaluate many pruning specs on
the same sentences cheaply. FLOPs come from ``ltp_deploy.flops`` (LTP's accounting on real, unpadded lengths).

Example::

    data = EncodedData.build(ckpt.tokenizer(), load_glue("sst2", "dev"), max_length=64)
    result = evaluate(ckpt.model, data)
    result.value, result.flops_reduction, result.mean_kept     # 0.885, 1.74, [25.1, 20.3, ...]
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import torch

from ltp_deploy.data import Examples, batches, encode
from ltp_deploy.flops import flops_reduction
from ltp_deploy.metrics import compute_metrics, predictions_from_logits, primary_metric
from ltp_deploy.model import PrunedClassifier


@dataclass
class EncodedData:
    """Tokenised examples cut into batches padded per batch (shortest first, so padding stays small)."""

    examples: Examples
    batches: list[tuple[np.ndarray, dict[str, torch.Tensor]]]  # (row indices, int64 tensors (B, T_batch))
    max_length: int
    lengths: np.ndarray = field(repr=False)  # (N,) real token counts, special tokens included

    @classmethod
    def build(cls, tokenizer, examples: Examples, max_length: int, batch_size: int = 64) -> EncodedData:
        """Tokenise ``examples`` (truncating to ``max_length``) into length-sorted batches of ``batch_size``."""
        out, lengths = [], np.zeros(len(examples), dtype=np.int64)
        for idx in batches(examples, batch_size, sort_by_length=True):
            enc = encode(tokenizer, examples, max_length, indices=idx)
            lengths[idx] = enc["attention_mask"].sum(axis=1)
            out.append((np.asarray(idx), {k: torch.from_numpy(v) for k, v in enc.items()}))
        return cls(examples, out, max_length, lengths)

    def __len__(self) -> int:
        return len(self.examples)


@dataclass
class Evaluation:
    """One model (one spec) on one data set."""

    metrics: dict[str, float]  # every metric of the task, as fractions (accuracy 0.885)
    metric: str  # name of the primary metric
    value: float  # the primary metric
    flops_reduction: float  # dense FLOPs / pruned FLOPs over the set (1.0 when nothing is dropped)
    mean_kept: list[float]  # tokens alive after each layer's decision, averaged over sequences
    mean_length: float  # real tokens per sequence before any drop
    examples: int

    def to_dict(self) -> dict:
        return {"metric": self.metric, "value": self.value, "metrics": self.metrics,
                "flops_reduction": self.flops_reduction, "mean_kept_per_layer": self.mean_kept,
                "mean_length": self.mean_length, "examples": self.examples}


def evaluate(model: PrunedClassifier, data: EncodedData) -> Evaluation:
    """Run ``model`` (its own spec, hard rule) over ``data``; the model is left in eval mode.

    Args:
        model: a dense or pruned ``PrunedClassifier``.
        data: labelled ``EncodedData``.
    Returns:
        The metrics, mean kept tokens per layer and FLOPs reduction of ``model`` on ``data``.
    Example::

        evaluate(model.with_spec(PruningSpec.threshold(thresholds)), data).flops_reduction
    """
    logits, kept = predict(model, data)
    ex = data.examples
    metrics = compute_metrics(ex, predictions_from_logits(logits, ex.is_regression))
    name = primary_metric(ex)
    return Evaluation(
        metrics=metrics, metric=name, value=metrics[name],
        flops_reduction=flops_reduction(model.config, data.lengths, kept),
        mean_kept=[float(v) for v in kept.mean(axis=0)], mean_length=float(data.lengths.mean()), examples=len(ex),
    )


def predict(model: PrunedClassifier, data: EncodedData) -> tuple[np.ndarray, np.ndarray]:
    """Logits (N, C) and kept counts (N, L) in the examples' own order."""
    model.eval()
    logits = np.zeros((len(data), model.config.num_labels), dtype=np.float32)
    kept = np.zeros((len(data), model.config.num_layers), dtype=np.int64)
    with torch.inference_mode():
        for idx, batch in data.batches:
            out, counts = model(batch["input_ids"], batch["attention_mask"], batch["token_type_ids"])
            logits[idx], kept[idx] = out.numpy(), counts.numpy()
    return logits, kept
