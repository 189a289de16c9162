"""The one interface every runtime adapter implements: load a model for a device, run a tokenised batch.

Every adapter's ``run`` goes through ``check_batch`` first, so a bad batch is one ``LtpDeployError`` sentence
naming the problem and the fix, whichever runtime would otherwise have failed (or silently read past a table).

Example::

    rt = open_runtime("out/model.onnx", device="cpu")
    logits, kept = rt.run({"input_ids": ids, "attention_mask": mask, "token_type_ids": types})
    rt.name, rt.device, rt.precision, rt.load_seconds   # what a benchmark row records
"""

from __future__ import annotations

import time
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path

import numpy as np

from ltp_deploy.artifact import FOREIGN_OUTPUTS, OUTPUT_NAMES
from ltp_deploy.errors import LtpDeployError
from ltp_deploy.runtimes.inputs import InputLimits, check_batch


class Runtime(ABC):
    """A loaded model that maps an int64 batch to ``(logits (B, C) float32, kept_counts (B, L) int64)``.

    Attributes a benchmark reads: ``name`` (backend and device, e.g. "onnxruntime-cuda"), ``device`` ("cpu" or
    "cuda"), ``precision`` (the arithmetic the runtime computes in: "fp32" or "bf16"; weights stored in fp16
    are widened on load, so ``weights`` says how they were stored) and ``load_seconds`` (wall time of loading
    and compiling, measured once in the constructor; the first ``run`` may still pay lazy initialisation).
    ``limits`` holds the model's input limits: from the export metadata or config, or, for a bare graph, read from
    the graph's embedding tables (``runtimes.tables``; ``None`` where no table is found).
    ``dense_layers`` is set for a graph without a ``kept_counts`` output (a foreign dense graph such as an Optimum
    export): ``run`` then reports each row's real length as its kept count at every one of these layers.

    Thread safety (every adapter, ``BatchOneRouter`` included): one loaded runtime may be shared by any number of
    threads. Concurrent ``run`` calls never see each other's batches: each returns the answer of its own batch,
    in arrays it owns, exactly as if the calls had been made one after the other. How each adapter keeps it:

    * ``OnnxRuntimeCPU``: ``InferenceSession.run`` is thread-safe (ONNX Runtime's documented contract); calls run
      concurrently, sharing the session's intra-op thread pool.
    * ``OnnxRuntimeCUDA``: a fresh IO binding per call, and each calling thread its own output buffers
      (``IOBinder``), so no call writes into another's outputs.
    * ``OpenVINOCPU``: a pool of ``InferRequest``s, one checked out per call, as many as the compiled model's
      ``OPTIMAL_NUMBER_OF_INFER_REQUESTS`` (1 with the latency hint: calls take turns; one per stream with the
      throughput hint: calls run in parallel); a caller waits while all are busy.
    * ``TorchRuntime``: the model's forward is stateless; with ``threads`` set, a process-wide lock guards the
      ``torch.set_num_threads`` / run / restore sequence (torch's thread count is global), so such calls take
      turns and the process's setting is restored afterwards.

    Attributes are set once at load and only read afterwards; ``load_seconds`` is not updated by ``run``.
    """

    name: str  # e.g. "onnxruntime-cpu"
    input_names: tuple[str, ...]
    device: str = "cpu"
    precision: str = "fp32"
    weights: str = "fp32"  # how the graph stores its weights ("fp16": an OpenVINO IR saved compressed; "int8")
    load_seconds: float = 0.0
    single_sequence: bool = False  # the graph takes (1, T) inputs (``export --single-sequence``)
    limits: InputLimits | None = None  # vocab, token-type and length limits checked by ``run``
    dense_layers: int | None = None  # the graph gives only logits; kept counts are the real lengths (``run``)

    def run(self, batch: Mapping[str, np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
        """Run one right-padded batch, checked before the runtime sees it (the contract: ``check_batch``).

        ``batch`` maps ``input_ids``, ``attention_mask`` and (optional, zeros by default) ``token_type_ids`` to
        integer (batch, length) arrays; keys not in ``input_names`` are ignored. A single-sequence graph is
        called once per row, and the rows' outputs are stacked.

        Raises:
            LtpDeployError: the batch breaks the contract: a required input missing; not a dict; an input not an
                integer array (the mask may be bool), not 2-D, of a different shape than the others, with no rows
                or no tokens; an id outside [0, vocab_size) or a token type outside [0, type_vocab_size); longer
                than the model's maximum input length; a mask value other than 0/1, an all-zero mask row or a
                left-padded row. Range and length are checked only when ``limits`` is known.
        """
        feed = self.feed(batch)
        size = next(iter(feed.values())).shape[0]
        if not self.single_sequence or size == 1:
            logits, kept = self._infer(feed)
        else:
            rows = [self._infer({n: a[i:i + 1] for n, a in feed.items()}) for i in range(size)]
            logits = np.concatenate([r[0] for r in rows])
            kept = None if self.dense_layers else np.concatenate([r[1] for r in rows])
        if self.dense_layers:  # a graph that takes no mask runs every token as real
            mask = feed.get("attention_mask")
            kept = dense_kept_counts(np.ones_like(feed["input_ids"]) if mask is None else mask, self.dense_layers)
        return logits, kept

    @abstractmethod
    def _infer(self, feed: dict[str, np.ndarray]) -> tuple[np.ndarray, np.ndarray | None]:
        """One call of the model on ``feed`` (the output of ``feed``); outputs must not alias runtime memory.
        The kept counts are None for a graph without them (``dense_layers`` set)."""

    @property
    def output_names(self) -> tuple[str, ...]:
        """The graph outputs ``_infer`` reads: ``logits`` and ``kept_counts``, or ``logits`` alone."""
        return FOREIGN_OUTPUTS if self.dense_layers else OUTPUT_NAMES

    def feed(self, batch: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        """The inputs this model takes, checked (``check_batch``), as contiguous int64 arrays in ``input_names``
        order."""
        return check_batch(batch, self.input_names, self.limits)

    def __repr__(self) -> str:
        return (f"{type(self).__name__}(name={self.name!r}, device={self.device!r}, precision={self.precision!r}, "
                f"load_seconds={self.load_seconds:.3f})")


def dense_kept_counts(attention_mask: np.ndarray, layers: int) -> np.ndarray:
    """``(B, layers)`` int64 kept counts of a dense model: each row's real length (mask sum) at every layer."""
    lengths = attention_mask.sum(axis=1, dtype=np.int64)  # (B,)
    return np.repeat(lengths[:, None], layers, axis=1)


def read_graph(path: str | Path, outputs: Iterable[str],
               graph_limits: Callable[[], InputLimits | None] | None = None
               ) -> tuple[InputLimits | None, int | None, str]:
    """``(limits, dense_layers, weights)`` of the graph file ``path`` whose outputs are named ``outputs``: what a
    graph adapter sets as ``limits``, ``dense_layers`` and ``weights``. The one place a runtime reads export
    metadata or config.json.

    ``limits`` come from the export metadata or, for a foreign dense graph, the ``config.json`` beside it
    (``artifact.open_model_artifact``); for a bare graph (neither beside it) from ``graph_limits()``, the adapter's
    reader of the graph's own embedding tables (``runtimes.tables``), called only then; ``None`` without it.
    ``dense_layers`` is None when the graph has ``kept_counts``; for a graph with only ``logits`` and a config,
    the config's layer count. ``weights`` is the export's stored precision ("fp32" without metadata).

    Raises:
        LtpDeployError: no ``logits`` output; no ``kept_counts`` and no ``config.json`` to count layers from (or
            an ltp-deploy export without it); damaged metadata or config.
    """
    from ltp_deploy.artifact import open_model_artifact

    names = set(outputs)
    art = open_model_artifact(path, prefer_graph=True)
    limits = InputLimits.of(art.config) if art else None
    weights = (art.metadata.get("precision") if art else None) or "fp32"
    if "kept_counts" in names and "logits" in names:
        if art is None and graph_limits is not None:
            limits = graph_limits()
        return limits, None, weights
    if "logits" not in names or art is None or not art.foreign:
        missing = "logits" if "logits" not in names else "kept_counts"
        raise LtpDeployError(f"{path} has no output {missing!r}: it was not exported by ltp-deploy; export it with "
                             "`ltp-deploy export`, or, for a dense classifier graph with a 'logits' output (e.g. "
                             "`optimum-cli export onnx`), keep its config.json beside it.")
    return limits, art.config.num_layers, weights


class LoadTimer:
    """Measures an adapter's load time: ``with LoadTimer(self): ...`` sets ``self.load_seconds`` on exit."""

    def __init__(self, runtime: Runtime):
        self.runtime = runtime

    def __enter__(self) -> LoadTimer:
        self.start = time.perf_counter()
        return self

    def __exit__(self, *exc) -> None:
        self.runtime.load_seconds = time.perf_counter() - self.start


class BatchOneRouter(Runtime):
    """An export's two graphs behind one ``Runtime``: batches of one run ``single`` (the batch-1 graph, fewer
    nodes), larger batches run ``batched``. Both are loaded by the same adapter with the same options; every
    attribute (``name``, ``precision``, ``weights``, ``limits``, an adapter's ``session`` or ``compiled``) is
    ``batched``'s, except ``load_seconds``: the sum of both loads. Thread-safe as its two runtimes are (``Runtime``):
    it holds no state of its own and only picks one of them per call."""

    def __init__(self, batched: Runtime, single: Runtime):
        self.batched, self.single = batched, single
        self.name, self.device, self.input_names = batched.name, batched.device, batched.input_names
        self.precision, self.weights, self.limits = batched.precision, batched.weights, batched.limits
        self.load_seconds = batched.load_seconds + single.load_seconds

    def _infer(self, feed: dict[str, np.ndarray]) -> tuple[np.ndarray, np.ndarray | None]:
        size = next(iter(feed.values())).shape[0]
        return (self.single if size == 1 else self.batched)._infer(feed)

    def __getattr__(self, name: str):  # only for attributes not set on the router itself
        if name in ("batched", "single"):
            raise AttributeError(name)
        return getattr(self.batched, name)

    def __repr__(self) -> str:
        return f"BatchOneRouter(batched={self.batched!r}, single={self.single!r})"
