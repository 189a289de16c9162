"""OpenVINO adapter (CPU plugin) for an IR (``.xml``) or an ``.onnx`` graph.

The precision hint is always set: on CPUs with bf16/AMX the plugin otherwise computes in bf16 on its own,
which can flip keep/drop decisions next to a threshold. ``f32`` is the default; ``bf16`` must be asked for.

Example::

    rt = OpenVINOCPU("out/sst2-ov/model.xml", threads=4, hint="latency")
    logits, kept = rt.run(batch)
"""

from __future__ import annotations

import queue
from pathlib import Path

import numpy as np

from ltp_deploy.errors import LtpDeployError
from ltp_deploy.runtimes.base import LoadTimer, Runtime, read_graph
from ltp_deploy.runtimes.tables import openvino_graph_limits

HINTS = ("latency", "throughput")
PRECISIONS = {"fp32": "f32", "bf16": "bf16"}  # our name -> OpenVINO element type


class OpenVINOCPU(Runtime):
    """A model compiled for OpenVINO's CPU plugin, run through a pool of ``InferRequest``s.

    An ``InferRequest`` serves one call at a time (a second concurrent ``infer`` raises "Infer Request is busy"
    or, worse, reads the other call's outputs), so each ``run`` checks one out of the pool and returns it when its
    outputs are copied: one runtime is safe to share between threads. The pool holds the compiled model's
    ``OPTIMAL_NUMBER_OF_INFER_REQUESTS``, made at load: 1 with the latency hint (one CPU stream: concurrent calls
    take turns, as more requests would only queue inside the plugin), one per stream with the throughput hint
    (concurrent calls run in parallel). A caller waits while every request is busy. A single thread always gets
    the same request back, so its cost is one uncontended queue get/put per call.

    Args:
        path: an ``.xml`` IR (with its ``.bin`` beside it) or an ``.onnx`` file.
        threads: ``INFERENCE_NUM_THREADS`` (default: the plugin's choice).
        precision: "fp32" (default) or "bf16", passed as ``INFERENCE_PRECISION_HINT``.
        hint: ``PERFORMANCE_HINT``, "latency" (default) or "throughput".

    Raises:
        LtpDeployError: unknown precision or hint, bf16 on a CPU without bf16 support, an unreadable graph.
    """

    name = "openvino-cpu"

    def __init__(self, path: str | Path, threads: int | None = None, precision: str = "fp32",
                 hint: str = "latency"):
        import openvino.properties.hint as hints

        if precision not in PRECISIONS:
            raise LtpDeployError(f"Unknown OpenVINO precision {precision!r}: use {' or '.join(PRECISIONS)}.")
        if hint not in HINTS:
            raise LtpDeployError(f"Unknown performance hint {hint!r}: use {' or '.join(HINTS)}.")
        with LoadTimer(self):
            model, self.compiled = compile_cpu(path, threads, precision, hint)
            self._requests = request_pool(self.compiled)
        actual = self.compiled.get_property(hints.inference_precision()).get_type_name()
        self.precision = {v: k for k, v in PRECISIONS.items()}.get(actual, actual)
        self.weights = "fp16" if stores_fp16_weights(model) else "fp32"
        self.hint = hint
        self.input_names = tuple(p.get_any_name() for p in self.compiled.inputs)
        batch_axis = self.compiled.inputs[0].get_partial_shape()[0]
        self.single_sequence = batch_axis.is_static and batch_axis.get_length() == 1
        names = {name for p in self.compiled.outputs for name in p.get_names()}
        self.limits, self.dense_layers, stored = read_graph(path, names, lambda: openvino_graph_limits(model))
        if stored == "int8":
            self.weights = stored

    def _infer(self, feed: dict[str, np.ndarray]) -> tuple[np.ndarray, np.ndarray | None]:
        request = self._requests.get()  # blocks while every request is serving another thread
        try:
            request.infer(feed)
            # Copies, made before the request goes back: its next call reuses the output memory.
            logits = np.array(request.get_tensor("logits").data, dtype=np.float32)
            kept = None if self.dense_layers else np.array(request.get_tensor("kept_counts").data, dtype=np.int64)
        finally:
            self._requests.put(request)
        return logits, kept


def compile_cpu(path: str | Path, threads: int | None = None, precision: str = "fp32", hint: str = "latency",
                extra: dict | None = None):
    """``(openvino.Model, CompiledModel)`` of the graph ``path`` on the CPU, compiled as ``OpenVINOCPU`` runs it:
    ``hint``'s performance mode, ``precision``'s arithmetic (forced: left to itself, OpenVINO picks bf16 on a
    bf16-capable CPU), ``threads``; ``extra`` adds properties (``runtimes.profile``: ``PERF_COUNT``).

    Raises:
        LtpDeployError: bf16 on a CPU without it, an unreadable or unsupported graph.
    """
    import openvino as ov
    import openvino.properties as props
    import openvino.properties.hint as hints

    core = ov.Core()
    if precision == "bf16":
        require_bf16(cpu_capabilities(core))
    config = {
        hints.performance_mode: getattr(hints.PerformanceMode, hint.upper()),
        hints.inference_precision: getattr(ov.Type, PRECISIONS[precision]),
        **(extra or {}),
    }
    if threads:
        config[props.inference_num_threads] = threads
    try:
        model = core.read_model(str(path))
        return model, core.compile_model(model, "CPU", config)
    except RuntimeError as e:  # OpenVINO reports unreadable or unsupported graphs as RuntimeError
        first = str(e).strip().splitlines()[0][:200] if str(e).strip() else type(e).__name__
        raise LtpDeployError(f"OpenVINO cannot load {path} ({first}): re-export it.") from None


def request_pool(compiled) -> queue.Queue:
    """A queue holding ``OPTIMAL_NUMBER_OF_INFER_REQUESTS`` (at least 1) new infer requests of ``compiled``."""
    count = max(1, int(compiled.get_property("OPTIMAL_NUMBER_OF_INFER_REQUESTS")))
    pool: queue.Queue = queue.Queue()
    for _ in range(count):
        pool.put(compiled.create_infer_request())
    return pool


def cpu_capabilities(core) -> list[str]:
    """The CPU plugin's ``OPTIMIZATION_CAPABILITIES`` (e.g. ``["FP32", "BF16", "INT8", ...]``)."""
    return list(core.get_property("CPU", "OPTIMIZATION_CAPABILITIES"))


def require_bf16(capabilities: list[str]) -> None:
    """Raise the one-sentence error when the CPU plugin cannot compute in bf16."""
    if "BF16" not in capabilities:
        raise LtpDeployError(
            f"This CPU has no bf16 support (OpenVINO capabilities: {', '.join(capabilities)}): "
            "use --precision fp32, or run on a CPU with AVX512-BF16 or AMX."
        )


def stores_fp16_weights(model) -> bool:
    """True when the IR keeps its weights as fp16 constants (``save_model(compress_to_fp16=True)``)."""
    import openvino as ov

    return any(op.get_type_name() == "Constant" and op.get_output_element_type(0) == ov.Type.f16
               for op in model.get_ops())
