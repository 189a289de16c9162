"""The one interface every runtime adapter implements: load a model for a device, run a tokenised batch.

Example::

    rt = open_runtime("out/model.onnx", device="cpu")
    logits, kept = rt.run({"input_ids": ids, "attention_mask": mask, "token_type_ids": types})
"""

from __future__ import annotations

from abc import ABC, abstractmethod

import numpy as np


class Runtime(ABC):
    """A loaded model that maps an int64 batch to ``(logits (B, C) float32, kept_counts (B, L) int64)``."""

    name: str  # e.g. "onnxruntime-cpu"
    input_names: tuple[str, ...]

    @abstractmethod
    def run(self, batch: dict[str, np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
        """Run one right-padded batch; keys not in ``input_names`` are ignored."""

    def feed(self, batch: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        """The inputs this model takes, as contiguous int64 arrays."""
        return {n: np.ascontiguousarray(batch[n], dtype=np.int64) for n in self.input_names}
