"""``Examples``: texts (and second texts) with labels, the one record every loader returns."""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Sequence

import numpy as np


@dataclass
class Examples:
    """Texts (and optional second texts) with labels: int64 class ids, float32 scores, or None when unlabelled."""

    texts: list[str]
    text_pairs: list[str] | None
    labels: np.ndarray | None
    label_names: list[str] | None = None
    task: str | None = None
    is_regression: bool = False
    source: str = ""

    def __post_init__(self) -> None:
        n = len(self.texts)
        if self.text_pairs is not None and len(self.text_pairs) != n:
            raise ValueError(f"{len(self.text_pairs)} text pairs for {n} texts")
        if self.labels is not None and len(self.labels) != n:
            raise ValueError(f"{len(self.labels)} labels for {n} texts")

    def __len__(self) -> int:
        return len(self.texts)

    @property
    def has_labels(self) -> bool:
        return self.labels is not None

    def select(self, indices: Sequence[int]) -> Examples:
        """Return the rows at ``indices``, in that order."""
        idx = [int(i) for i in indices]
        return replace(self, texts=[self.texts[i] for i in idx],
                       text_pairs=None if self.text_pairs is None else [self.text_pairs[i] for i in idx],
                       labels=None if self.labels is None else self.labels[np.asarray(idx, dtype=np.int64)])

    def take(self, n: int) -> Examples:
        """Return the first ``n`` rows (all of them if there are fewer)."""
        return self.select(range(min(n, len(self))))

    def hold_out(self, n: int, seed) -> tuple[Examples, Examples]:
        """(the rest, ``n`` rows drawn at random without replacement), both kept in file order; ``seed`` is any
        ``numpy.random.default_rng`` seed (an int or a sequence of ints)."""
        picked = np.random.default_rng(seed).permutation(len(self))
        return self.select(np.sort(picked[n:])), self.select(np.sort(picked[:n]))

    def subset(self, n: int, seed: int = 0) -> Examples:
        """Return ``n`` rows drawn at random without replacement (reproducible by ``seed``), kept in file order."""
        if n >= len(self):
            return self.select(range(len(self)))
        return self.select(np.sort(np.random.default_rng(seed).choice(len(self), size=n, replace=False)))
