"""The dense teacher that stages 1 and 2 distil from, with its outputs kept per training example."""

from __future__ import annotations

import torch

from ltp_deploy.model import PrunedClassifier


class TeacherMemo:
    """``teacher``'s CLS row and logits for each training example, computed the first time a batch holds it.

    The teacher is frozen and in eval mode (no dropout), so an example's outputs never change: a stage that sees
    every example k times runs the teacher once per example instead of k times (IMDB's stage 2 sees its subset
    1.6 times, and the teacher runs at full length where the student runs pruned). Rows are cut to the batch's longest, so a row's outputs
    equal a batch-of-one forward up to float rounding.
    """

    def __init__(self, teacher: PrunedClassifier, n_examples: int):
        self.teacher = teacher
        self.filled = torch.zeros(n_examples, dtype=torch.bool)
        self.cls: torch.Tensor | None = None
        self.logits: torch.Tensor | None = None
        self.computed = 0  # examples run through the teacher so far

    @torch.no_grad()
    def outputs(self, batch: dict[str, torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
        """(B, D) CLS rows and (B, C) logits of ``batch`` (a ``TrainData.batch``, which carries ``index``)."""
        index = batch["index"]
        todo = ~self.filled[index]
        if todo.any():
            rows = todo.nonzero()[:, 0]
            width = int(batch["attention_mask"][rows].sum(dim=1).max())
            inputs = [batch[k][rows, :width] for k in ("input_ids", "attention_mask", "token_type_ids")]
            cls, _ = self.teacher.encode(*inputs)
            logits = self.teacher.head(cls)
            if self.cls is None:
                self.cls = cls.new_zeros(len(self.filled), cls.shape[1])
                self.logits = logits.new_zeros(len(self.filled), logits.shape[1])
            self.cls[index[rows]], self.logits[index[rows]] = cls, logits
            self.filled[index[rows]] = True
            self.computed += len(rows)
        return self.cls[index], self.logits[index]
