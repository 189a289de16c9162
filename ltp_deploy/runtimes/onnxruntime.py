"""ONNX Runtime adapters: the CPU execution provider, and the CUDA provider with IO binding.

Example::

    rt = OnnxRuntimeCPU("out/model.onnx", threads=4)
    rt = OnnxRuntimeCUDA("out/model.onnx")          # LtpDeployError when onnxruntime-gpu/CUDA is missing
    logits, kept = rt.run(batch)
"""

from __future__ import annotations

import threading
from pathlib import Path

import numpy as np

from ltp_deploy.errors import LtpDeployError
from ltp_deploy.artifact import OUTPUT_NAMES
from ltp_deploy.runtimes.base import LoadTimer, Runtime, read_graph
from ltp_deploy.runtimes.tables import onnx_graph_limits

CUDA_PROVIDER = "CUDAExecutionProvider"
_OUTPUT_DTYPES = {"logits": np.float32, "kept_counts": np.int64}


class OnnxRuntimeCPU(Runtime):
    """An ``onnxruntime.InferenceSession`` on the CPU provider, all graph optimisations on.

    Thread-safe with no lock: ``InferenceSession.run`` may be called from several threads at once (ONNX Runtime's
    contract), each call returning new arrays; ``tests/test_threads.py`` checks it.

    Args:
        path: an ``.onnx`` file.
        threads: intra-op threads (default: ONNX Runtime's choice, one per physical core).
    """

    name = "onnxruntime-cpu"

    def __init__(self, path: str | Path, threads: int | None = None):
        with LoadTimer(self):
            self.session = _session(path, threads, ["CPUExecutionProvider"])
        self.input_names = tuple(i.name for i in self.session.get_inputs())
        self.single_sequence = takes_single_sequence(self.session)
        self.limits, self.dense_layers, self.weights = read_graph(path, (o.name for o in self.session.get_outputs()),
                                                                  lambda: onnx_graph_limits(path))

    def _infer(self, feed: dict[str, np.ndarray]) -> tuple[np.ndarray, np.ndarray | None]:
        outputs = self.session.run(list(self.output_names), feed)
        return outputs[0], (outputs[1] if len(outputs) > 1 else None)


class OnnxRuntimeCUDA(Runtime):
    """An ``InferenceSession`` on the CUDA provider; never falls back to the CPU silently.

    Inputs are copied to the GPU and the outputs are written into preallocated GPU buffers through IO
    binding (``IOBinder``: a binding per call, buffers per calling thread, so sharing the runtime between threads is
    safe): their shapes, ``logits`` (B, C) and ``kept_counts`` (B, L) (absent from a foreign dense graph,
    ``Runtime.dense_layers``), are known from the batch size alone even though the graph's inner shapes depend
    on the data. Shape subgraphs (NonZero's count, TopK's K) still run on the host; ONNX Runtime inserts the
    copies.

    Args:
        path: an ``.onnx`` file.
        threads: intra-op threads for the nodes ONNX Runtime places on the CPU.
        device_id: the CUDA device.

    Raises:
        LtpDeployError: ``onnxruntime`` lacks the CUDA provider, or the session came up without it (a CUDA or
            cuDNN library it needs is missing).
    """

    name = "onnxruntime-cuda"

    def __init__(self, path: str | Path, threads: int | None = None, device_id: int = 0):
        import onnxruntime as ort

        available = ort.get_available_providers()
        if CUDA_PROVIDER not in available:
            raise LtpDeployError(
                f"ONNX Runtime has no {CUDA_PROVIDER} (available: {', '.join(available)}): install onnxruntime-gpu "
                "with a CUDA-capable driver, or use --device cpu."
            )
        self.device = "cuda" if device_id == 0 else f"cuda:{device_id}"
        with LoadTimer(self):
            providers = [(CUDA_PROVIDER, {"device_id": device_id}), "CPUExecutionProvider"]
            self.session = _session(path, threads, providers)
        if CUDA_PROVIDER not in self.session.get_providers():  # ORT logs and falls back when CUDA libs fail
            raise LtpDeployError(
                f"ONNX Runtime could not start {CUDA_PROVIDER} for {path} (session providers: "
                f"{', '.join(self.session.get_providers())}): check that the CUDA and cuDNN versions match "
                "onnxruntime-gpu's requirements, or use --device cpu."
            )
        self.input_names = tuple(i.name for i in self.session.get_inputs())
        self.single_sequence = takes_single_sequence(self.session)
        self.limits, self.dense_layers, self.weights = read_graph(path, (o.name for o in self.session.get_outputs()),
                                                                  lambda: onnx_graph_limits(path))
        self._binder = IOBinder(self.session, "cuda", device_id, outputs=self.output_names)

    def _infer(self, feed: dict[str, np.ndarray]) -> tuple[np.ndarray, np.ndarray | None]:
        return self._binder.run(feed)


class IOBinder:
    """Runs a session through IO binding on one ORT device (``"cuda"``; ``"cpu"`` in tests).

    ``outputs``: the (batch, fixed width) outputs to bind, ``logits`` first (``Runtime.output_names``); ``run``
    returns ``(logits, kept_counts)``, kept counts None when only ``logits`` is bound. Each calling thread has its
    own output buffers, allocated for its current batch size and reused until that changes; with a fresh binding
    per call, concurrent ``run`` calls never write into each other's outputs (one shared set of buffers would be a
    race: two threads binding the same memory, or one replacing it for another batch size mid-call).
    """

    def __init__(self, session, device_type: str, device_id: int = 0, outputs: tuple[str, ...] = OUTPUT_NAMES):
        self.session, self.device, self.outputs = session, (device_type, device_id), outputs
        self.widths = {o.name: _fixed_width(o) for o in session.get_outputs() if o.name in outputs}
        missing = [n for n in outputs if n not in self.widths]
        if missing:
            raise LtpDeployError(f"The graph has no output {missing[0]!r}: it was not exported by ltp-deploy; "
                                 "export it with `ltp-deploy export`.")
        self._local = threading.local()  # per thread: batch_size and the output buffers for it

    def run(self, feed: dict[str, np.ndarray]) -> tuple[np.ndarray, np.ndarray | None]:
        from onnxruntime import OrtValue

        outputs = self._buffers(next(iter(feed.values())).shape[0])
        binding = self.session.io_binding()
        inputs = {n: OrtValue.ortvalue_from_numpy(a, *self.device) for n, a in feed.items()}  # alive until run ends
        for n, value in inputs.items():
            binding.bind_ortvalue_input(n, value)
        for n, value in outputs.items():
            binding.bind_ortvalue_output(n, value)
        self.session.run_with_iobinding(binding)
        # Copies: the buffers are reused by this thread's next call (on ORT's CPU device numpy() would alias them).
        kept = outputs.get("kept_counts")
        return outputs["logits"].numpy().copy(), None if kept is None else kept.numpy().copy()

    @property
    def _batch_size(self) -> int | None:
        """The batch size of the calling thread's buffers (None before its first call)."""
        return getattr(self._local, "batch_size", None)

    def _buffers(self, batch_size: int) -> dict:
        """This thread's output buffers for ``batch_size`` rows, reallocated when its batch size changes."""
        local = self._local
        if self._batch_size != batch_size:
            from onnxruntime import OrtValue

            local.outputs = {n: OrtValue.ortvalue_from_shape_and_type((batch_size, self.widths[n]),
                                                                      _OUTPUT_DTYPES[n], *self.device)
                             for n in self.outputs}
            local.batch_size = batch_size
        return local.outputs


def takes_single_sequence(session) -> bool:
    """True for a graph exported with ``--single-sequence``: its inputs' batch axis is the number 1."""
    return session.get_inputs()[0].shape[0] == 1


def _fixed_width(output) -> int:
    """The second dimension of a (batch, width) output, which must be a number in an ltp-deploy graph."""
    shape = output.shape
    if len(shape) != 2 or not isinstance(shape[1], int):
        raise LtpDeployError(f"Graph output {output.name!r} has shape {shape}, not (batch, fixed width): "
                             "re-export the model with `ltp-deploy export`.")
    return shape[1]


def _session(path: str | Path, threads: int | None, providers: list, profile_prefix: str | None = None):
    """The session every adapter runs; with ``profile_prefix`` ONNX Runtime's own profiler writes a trace there
    (``runtimes.profile``)."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    if profile_prefix is not None:
        options.enable_profiling = True
        options.profile_file_prefix = profile_prefix
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    options.log_severity_level = 3
    if threads:
        options.intra_op_num_threads = threads
    # Idle worker threads spin by default, stealing cores from any other session in the process: with two
    # models timed A B A B (bench --compare) that inflated both latencies 1.5-4x on a 2-core machine.
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    try:
        return ort.InferenceSession(str(path), options, providers=providers)
    except Exception as e:  # ORT raises its own untyped errors for unreadable graphs
        first = str(e).strip().splitlines()[0][:200] if str(e).strip() else type(e).__name__
        raise LtpDeployError(f"ONNX Runtime cannot load {path} ({first}): re-export it.") from None
