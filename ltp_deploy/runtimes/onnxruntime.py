"""ONNX Runtime adapter (CPU execution provider)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ltp_deploy.errors import LtpDeployError
from ltp_deploy.runtimes.base import Runtime


class OnnxRuntimeCPU(Runtime):
    """An ``onnxruntime.InferenceSession`` on the CPU provider, all graph optimisations on."""

    name = "onnxruntime-cpu"
    providers = ("CPUExecutionProvider",)

    def __init__(self, path: str | Path, threads: int | None = None):
        import onnxruntime as ort

        options = ort.SessionOptions()
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        options.log_severity_level = 3
        if threads:
            options.intra_op_num_threads = threads
        try:
            self.session = ort.InferenceSession(str(path), options, providers=list(self.providers))
        except Exception as e:  # ORT raises its own untyped errors for unreadable graphs
            raise LtpDeployError(f"ONNX Runtime cannot load {path} ({str(e).splitlines()[0][:200]}): re-export it.")
        self.input_names = tuple(i.name for i in self.session.get_inputs())

    def run(self, batch: dict[str, np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
        logits, kept = self.session.run(["logits", "kept_counts"], self.feed(batch))
        return logits, kept
