"""Torch reference adapter: a checkpoint's ``PrunedClassifier`` behind the ``Runtime`` interface.

Lets ``bench`` and ``check`` run the checkpoint itself next to its exported graphs.

Example::

    rt = TorchRuntime("runs/sst2-ltp")                 # the folder's own pruning spec
    rt = TorchRuntime(load_checkpoint("runs/sst2-ltp", dense=True).model, device="cuda")
    logits, kept = rt.run(batch)
"""

from __future__ import annotations

import threading
from pathlib import Path

import numpy as np
import torch

from ltp_deploy.errors import LtpDeployError
from ltp_deploy.model import PrunedClassifier
from ltp_deploy.runtimes.base import LoadTimer, Runtime
from ltp_deploy.runtimes.inputs import InputLimits


# torch.set_num_threads is process-wide: one lock for every TorchRuntime, held from setting it to restoring it.
THREADS_LOCK = threading.Lock()


class TorchRuntime(Runtime):
    """Runs ``PrunedClassifier`` in fp32 under ``torch.inference_mode``.

    Args:
        model: a checkpoint folder (loaded with ``load_checkpoint``, its own spec) or a loaded model.
        device: "cpu", "cuda" or "cuda:N".
        threads: torch intra-op threads while this runtime runs (restored afterwards; torch's setting is
            process-wide, so runs with ``threads`` set hold ``THREADS_LOCK`` from setting it to restoring it: they
            take turns, and two threads never restore each other's value).

    Thread-safe: the forward pass keeps no state, so calls without ``threads`` run concurrently (with whatever
    thread count the process has); calls with ``threads`` take turns under ``THREADS_LOCK``.

    Raises:
        LtpDeployError: CUDA asked for but torch sees no GPU; anything ``load_checkpoint`` rejects.
    """

    name = "torch"

    def __init__(self, model: str | Path | PrunedClassifier, device: str = "cpu", threads: int | None = None):
        if device.startswith("cuda") and not torch.cuda.is_available():
            raise LtpDeployError(
                "torch sees no CUDA device: install a CUDA build of torch with a CUDA-capable driver, "
                "or use --device cpu."
            )
        self.device, self.threads = device, threads
        with LoadTimer(self):
            if not isinstance(model, PrunedClassifier):
                from ltp_deploy.checkpoint import load_checkpoint

                model = load_checkpoint(model).model
            self.model = model.eval().to(torch.device(device))
        self.name = f"torch-{device.split(':')[0]}"
        base = ("input_ids", "attention_mask")
        self.input_names = base + ("token_type_ids",) if model.config.uses_token_type_ids else base
        self.limits = InputLimits.of(model.config)

    def _infer(self, feed: dict[str, np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
        tensors = [torch.from_numpy(a).to(self.device) for a in feed.values()]
        if not self.threads:
            return self._forward(tensors)
        with THREADS_LOCK:  # without it, thread B reads A's value as "previous" and restores it for good
            previous = torch.get_num_threads()
            torch.set_num_threads(self.threads)
            try:
                return self._forward(tensors)
            finally:
                torch.set_num_threads(previous)

    def _forward(self, tensors: list[torch.Tensor]) -> tuple[np.ndarray, np.ndarray]:
        with torch.inference_mode():
            logits, kept = self.model(*tensors)
        return logits.float().cpu().numpy(), kept.cpu().numpy().astype(np.int64, copy=False)
