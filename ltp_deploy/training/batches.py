"""Training batches: examples tokenised once, grouped by length, cut to each batch's longest row; stage budgets."""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
import torch

from ltp_deploy.data import Examples, encode
from ltp_deploy.training.recipes import GLUE_STAGES


@dataclass
class TrainData:
    """Training examples tokenised once; a batch is cut to its own longest row (per-batch padding)."""

    input_ids: torch.Tensor  # (N, T_max)
    attention_mask: torch.Tensor
    token_type_ids: torch.Tensor
    labels: torch.Tensor  # (N,) int64 class ids or float32 scores
    lengths: np.ndarray  # (N,)

    @classmethod
    def build(cls, tokenizer, examples: Examples, max_length: int) -> TrainData:
        enc = encode(tokenizer, examples, max_length)
        labels = torch.from_numpy(np.asarray(examples.labels))
        t = {k: torch.from_numpy(v) for k, v in enc.items()}
        return cls(t["input_ids"], t["attention_mask"], t["token_type_ids"], labels,
                   enc["attention_mask"].sum(axis=1))

    def __len__(self) -> int:
        return len(self.labels)

    def batch(self, idx: np.ndarray) -> dict[str, torch.Tensor]:
        """The examples at ``idx``, cut to their longest row; ``index`` is ``idx`` (what ``TeacherMemo`` keys on)."""
        width = int(self.lengths[idx].max())
        index = torch.from_numpy(idx)
        return {"input_ids": self.input_ids[index, :width], "attention_mask": self.attention_mask[index, :width],
                "token_type_ids": self.token_type_ids[index, :width], "labels": self.labels[index], "index": index}

    def stream(self, batch_size: int, rng: np.random.Generator) -> Iterator[dict[str, torch.Tensor]]:
        """Endless length-grouped batches, epoch after epoch."""
        while True:
            for idx in length_grouped_batches(self.lengths, batch_size, rng):
                yield self.batch(idx)


def length_grouped_batches(lengths: np.ndarray, batch_size: int, rng: np.random.Generator,
                           group: int = 50) -> list[np.ndarray]:
    """One epoch of batches of similar lengths: shuffle, sort within chunks of ``group`` batches, shuffle batches.

    Every example appears once; batches stay random in content and order, but padding nearly vanishes.
    """
    order = rng.permutation(len(lengths))
    chunk = batch_size * group
    out = []
    for start in range(0, len(order), chunk):
        part = order[start:start + chunk]
        part = part[np.argsort(-lengths[part], kind="stable")]
        out.extend(part[i:i + batch_size] for i in range(0, len(part), batch_size))
    return [out[i] for i in rng.permutation(len(out))]


def stage_steps(n_examples: int, batch_size: int, epochs: float | None, steps: int | None,
                stage: str | None = None) -> int:
    """Optimizer steps of a stage: ``steps`` if given, else ``epochs`` passes over the data, else the stage's
    GLUE default (``recipes.GLUE_STAGES``). 0 skips the stage."""
    if steps is None and epochs is None and stage is not None:
        epochs, steps = GLUE_STAGES[stage]
    if steps is not None:
        return steps
    if epochs is None:
        raise ValueError("a stage needs steps, epochs or a stage name")
    return int(round(epochs * math.ceil(n_examples / batch_size)))
