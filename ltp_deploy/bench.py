"""Benchmark an exported model on real sentences: latency, throughput, kept tokens, FLOPs, and an A/B comparison.

What is timed: only ``runtime.run(batch)`` on batches tokenised beforehand (padded to each batch's longest
sequence, as a serving system would), after ``warmup`` untimed calls per batch size. The data is real text at
its real lengths (default: SST-2 dev from ``GLUE_DIR``) or, with ``seq_len``, synthetic batches of exactly that
many tokens. Each batch size cycles through the data's batches in a fixed order: the data's own (``order``
"dataset", the default: what a server sees) or sorted by length ("length": less padding, as a length-bucketing
server would). ``real_tokens`` and ``padded_tokens`` per result say what that padding cost.

MODEL and OTHER may be ltp-deploy exports, checkpoint folders, or a foreign dense ONNX graph such as the one
Hugging Face Optimum exports from the same dense checkpoint (``optimum-cli export onnx --task
text-classification``; see ``ltp_deploy.artifact.open_foreign``): that graph has no ``kept_counts``, so every real
token counts as kept at every layer, and its FLOPs reduction is 1.0.

With ``compare``, both models are loaded in this one process and run interleaved (MODEL, OTHER, MODEL, OTHER...)
on identical batches, so that drifting clocks, thermal state and noisy neighbours hit both alike:

* ``speedup`` = median latency of OTHER / median latency of MODEL (> 1: MODEL is faster); the spread of the
  per-pair ratios (OTHER / MODEL on the same batch) is given as p10 / p50 / p90.
* ``flops_reduction`` = FLOPs of OTHER / FLOPs of MODEL on the same batches (from each graph's own kept counts,
  see ``ltp_deploy.flops``); for MODEL = pruned and OTHER = dense, this is the pruning's FLOPs reduction.
* ``efficiency`` = speedup / flops_reduction: 1.0 means the saved FLOPs turned fully into saved time.

The JSON report (``schema_version`` 1) is described field by field in :data:`BENCH_SCHEMA`; fields are only ever
added within a schema version.

Example::

    report = run_bench(BenchSettings(model=Path("out/sst2-ltp"), compare=Path("out/sst2-dense"),
                                     batch_sizes=(1, 32), iterations=50))
    report["results"][0]["comparison"]["speedup"]
    write_json("bench.json", report)
"""

from __future__ import annotations

import datetime as dt
import math
import os
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ltp_deploy.errors import LtpDeployError
from ltp_deploy.runtimes import BACKENDS, DEVICES

SCHEMA_VERSION = 1
KIND = "ltp-deploy-bench"
DEFAULT_BATCH_SIZES = (1, 8, 32)
DEFAULT_TASK = "sst2"
ORDERS = ("dataset", "length")  # batch order: the data's own (default), or length-sorted
SYNTHETIC_SEQUENCES = 256  # sequences drawn for --seq-len when --max-examples is not given
MIN_DEFAULT_ITERATIONS = 10  # the default (one pass over the data) times at least this many batches
ROLES = ("model", "other")

# Every field of the JSON report: dotted path -> "type: meaning". "[]" marks the items of a list and "*" stands for
# either role ("model", "other"). Types: int, float, str, bool, list[...], "object" (its fields are listed here)
# and "map" (free-form keys, documented as a whole); "|null" where the value may be null.
BENCH_SCHEMA: dict[str, str] = {
    "schema_version": "int: version of this layout (1); fields are only added within a version",
    "kind": "str: always 'ltp-deploy-bench'",
    "created": "str: ISO 8601 UTC time the run finished",
    "settings": "object: the options of the run",
    "settings.device": "str: 'cpu', 'cuda' or 'cuda:N'",
    "settings.backend": "str|null: the backend asked for (null: chosen from the file type)",
    "settings.batch_sizes": "list[int]: batch sizes timed, in order",
    "settings.warmup": "int: untimed calls per model and batch size before timing",
    "settings.iterations": "int|null: timed batches per batch size (null: one pass over the data, or --duration)",
    "settings.duration_s": "float|null: seconds of timed runs per batch size (both models together)",
    "settings.threads": "int|null: intra-op threads asked for (null: the runtime's default)",
    "settings.sort_by_length": "bool: batches built from length-sorted sentences (order 'length')",
    "settings.order": "str: 'dataset' (the data's own order, what a server sees) or 'length' (length-sorted)",
    "settings.seq_len": "int|null: synthetic length (null: real sentences)",
    "settings.max_examples": "int|null: the data was cut to its first N examples",
    "settings.seed": "int: seed of the synthetic token ids",
    "settings.precision": "str|null: compute precision asked of the runtime (null: its default, fp32)",
    "settings.hint": "str|null: OpenVINO performance hint asked for (null: the runtime's default)",
    "data": "object: what was fed",
    "data.source": "str: data file, GLUE file, or 'synthetic'",
    "data.synthetic": "bool: random token ids (--seq-len) rather than real text",
    "data.sequences": "int: sequences in the data set cycled through",
    "data.max_length": "int: truncation length (the model's maximum)",
    "data.tokens": "object: real (unpadded) tokens per sequence over the data set",
    "data.tokens.mean": "float: mean",
    "data.tokens.p50": "float: median",
    "data.tokens.p90": "float: 90th percentile",
    "data.tokens.max": "int: longest",
    "environment": "object: where it ran",
    "environment.cpu": "str: CPU model name",
    "environment.logical_cores": "int: logical CPUs of the machine",
    "environment.usable_cores": "int: CPUs this process may run on (affinity)",
    "environment.platform": "str: OS and kernel",
    "environment.threads": "int|null: intra-op threads asked for (null: the runtime's default)",
    "environment.omp_num_threads": "str|null: the OMP_NUM_THREADS environment variable",
    "environment.device": "str: device of MODEL's runtime",
    "environment.backend": "str: runtime of MODEL (e.g. 'onnxruntime-cpu')",
    "environment.precision": "str|null: arithmetic precision of MODEL's runtime ('fp32', 'bf16'...)",
    "environment.versions": "map: library name -> installed version (python, torch, onnxruntime, ...)",
    "models": "object: the models timed, by role",
    "models.model": "object: MODEL (the positional argument)",
    "models.other": "object|null: OTHER (--compare); null without a comparison",
    "models.*.path": "str: the path given",
    "models.*.kind": "str: 'export' (ltp-deploy), 'checkpoint' (torch), or 'foreign-onnx' (a dense ONNX graph "
                     "without ltp-deploy metadata, e.g. an Optimum export: kept counts are the real lengths)",
    "models.*.runtime": "str: runtime adapter name",
    "models.*.device": "str: device it ran on",
    "models.*.precision": "str|null: arithmetic precision",
    "models.*.weights": "str|null: how the graph stores its weights ('fp32', 'fp16', 'int8')",
    "models.*.single_sequence": "bool: a batch-1 graph (export --single-sequence), called once per row of a batch",
    "models.*.batch1_graph": "bool: batches of one ran the export's separate batch-1 graph (model-b1.onnx/.xml)",
    "models.*.pruning": "str: 'dense', 'absolute_threshold' or 'topk'",
    "models.*.spec": "map|null: the pruning spec as in export metadata (mode, thresholds or keep rates, n_ref)",
    "models.*.load_s": "float: load and compile time in seconds (as the runtime measured it)",
    "models.*.first_inference_ms": "float: the very first run after loading, in ms (lazy initialisation)",
    "models.*.rss_after_load_mb": "float: process resident memory right after loading this model, MiB",
    "memory": "object: process memory",
    "memory.rss_start_mb": "float: resident memory before any model was loaded, MiB",
    "memory.peak_rss_mb": "float: peak resident memory of the whole run, MiB (both models with --compare)",
    "results": "list[object]: one entry per batch size",
    "results[].batch_size": "int: sequences per batch (the last batch of a pass may be smaller)",
    "results[].batches": "int: distinct batches the data gives at this size",
    "results[].peak_rss_mb": "float: process peak resident memory after this batch size, MiB",
    "results[].model": "object: MODEL's measurements at this batch size",
    "results[].other": "object|null: OTHER's measurements on the same batches (null without --compare)",
    "results[].*.iterations": "int: timed batches",
    "results[].*.sequences": "int: sequences in the timed batches",
    "results[].*.real_tokens": "int: real (unpadded) tokens in the timed batches",
    "results[].*.mean_tokens": "float: real tokens per sequence",
    "results[].*.padded_tokens": "int: token slots in the timed batches including padding (rows x padded length)",
    "results[].*.mean_padded_tokens": "float: tokens per sequence including batch padding",
    "results[].*.first_call_ms": "float|null: first (warm-up) call at this batch size, ms (null: no warm-up)",
    "results[].*.latency_ms": "object: latency of one batch in ms over the timed batches",
    "results[].*.latency_ms.mean": "float: mean",
    "results[].*.latency_ms.p10": "float: 10th percentile",
    "results[].*.latency_ms.p50": "float: median",
    "results[].*.latency_ms.p90": "float: 90th percentile",
    "results[].*.latency_ms.p99": "float: 99th percentile",
    "results[].*.latency_ms.min": "float: fastest",
    "results[].*.latency_ms.max": "float: slowest",
    "results[].*.latency_ms.stdev": "float: sample standard deviation (0 for one batch)",
    "results[].*.sequences_per_s": "float: timed sequences / summed batch latency",
    "results[].*.tokens_per_s": "float: real tokens / summed batch latency",
    "results[].*.kept_tokens_per_layer": "list[float]: mean tokens alive after each layer (kept_counts output)",
    "results[].*.gflops_per_sequence": "float: analytic GFLOPs per sequence from this graph's kept counts",
    "results[].*.dense_gflops_per_sequence": "float: GFLOPs per sequence of the dense model on the same inputs",
    "results[].*.flops_reduction": "float: dense FLOPs / this graph's FLOPs (1.0: nothing dropped)",
    "results[].*.executed_gflops_per_sequence": "float: GFLOPs the padded batch tensors cost (per sequence)",
    "results[].comparison": "object|null: MODEL against OTHER (null without --compare)",
    "results[].comparison.pairs": "int: interleaved (MODEL, OTHER) runs on identical batches",
    "results[].comparison.speedup": "float: median latency OTHER / median latency MODEL (> 1: MODEL faster)",
    "results[].comparison.ratio_p10": "float: 10th percentile of per-pair OTHER/MODEL latency ratios",
    "results[].comparison.ratio_p50": "float: median per-pair ratio",
    "results[].comparison.ratio_p90": "float: 90th percentile of per-pair ratios",
    "results[].comparison.flops_reduction": "float: FLOPs of OTHER / FLOPs of MODEL on the same batches",
    "results[].comparison.efficiency": "float: speedup / flops_reduction (1.0: FLOPs saved became time saved)",
}


@dataclass(frozen=True)
class BenchSettings:
    """One benchmark run; every option is checked when the settings are built, before anything loads."""

    model: Path
    device: str = "cpu"
    backend: str | None = None  # None: chosen from the file type (.onnx -> onnxruntime, .xml -> openvino)
    data: str | None = None  # a data file; None: the task's dev split (default SST-2)
    task: str | None = None
    text_column: str | int | None = None
    text_pair_column: str | int | None = None
    seq_len: int | None = None  # synthetic batches of exactly this many tokens instead of real sentences
    batch_sizes: tuple[int, ...] = DEFAULT_BATCH_SIZES
    order: str = "dataset"  # "dataset": the data's own order; "length": similar lengths batched together
    warmup: int = 3
    iterations: int | None = None  # None: one pass over the data (at least MIN_DEFAULT_ITERATIONS batches)
    duration: float | None = None  # seconds of timed runs per batch size; with iterations, whichever ends first
    threads: int | None = None
    compare: Path | None = None
    max_examples: int | None = None
    seed: int = 0
    precision: str | None = None  # passed to the runtime only when given ("fp32"; "bf16" with openvino)
    hint: str | None = None  # OpenVINO performance hint ("latency" or "throughput"), passed only when given

    def __post_init__(self) -> None:
        object.__setattr__(self, "model", Path(self.model))
        object.__setattr__(self, "batch_sizes", tuple(int(b) for b in self.batch_sizes))
        if self.compare is not None:
            object.__setattr__(self, "compare", Path(self.compare))
        _check_settings(self)

    @property
    def sort_by_length(self) -> bool:
        return self.order == "length"


def _check_settings(s: BenchSettings) -> None:
    if s.device.split(":")[0] not in DEVICES:
        raise LtpDeployError(f"Unknown device {s.device!r}: use one of {', '.join(DEVICES)} (or cuda:N).")
    if s.backend is not None and s.backend not in BACKENDS:
        raise LtpDeployError(f"Unknown backend {s.backend!r}: use one of {', '.join(BACKENDS)}.")
    if s.order not in ORDERS:
        raise LtpDeployError(f"Unknown order {s.order!r}: use dataset (the data's own order, what a server sees) "
                             "or length (length-sorted batches, less padding).")
    if not s.batch_sizes:
        raise LtpDeployError("No batch size given: pass at least one, e.g. --batch-size 1,8,32.")
    if any(b < 1 for b in s.batch_sizes):
        raise LtpDeployError(f"Batch sizes must be at least 1, got {list(s.batch_sizes)}.")
    if s.warmup < 0:
        raise LtpDeployError(f"Warm-up must be 0 or more calls, got {s.warmup}.")
    if s.iterations is not None and s.iterations < 0:
        raise LtpDeployError(f"Iterations must be positive, got {s.iterations}.")
    if s.duration is not None and not (s.duration > 0 and math.isfinite(s.duration)):
        raise LtpDeployError(f"Duration must be a positive number of seconds, got {s.duration}.")
    if s.iterations == 0 and s.duration is None:
        raise LtpDeployError("--iterations 0 times nothing: give a positive count, or a --duration in seconds.")
    if s.seq_len is not None and (s.data is not None or s.task is not None):
        raise LtpDeployError("Give either --seq-len (synthetic batches) or --data/--task (real text), not both.")
    if s.seq_len is not None and s.seq_len < 1:
        raise LtpDeployError(f"Sequence length must be at least 1 token, got {s.seq_len}.")
    if s.threads is not None and s.threads < 1:
        raise LtpDeployError(f"Threads must be at least 1, got {s.threads}.")
    if s.max_examples is not None and s.max_examples < 1:
        raise LtpDeployError(f"--max-examples must be at least 1, got {s.max_examples}.")
    for path in (s.model, s.compare):
        if path is not None and not path.exists():
            raise LtpDeployError(f"Model {path} does not exist: pass an exported graph, its folder, or a checkpoint.")


# ------------------------------------------------------------------------------------------------ the models

@dataclass
class ModelInfo:
    """What the benchmark needs to know about a model besides its runtime: shapes, pruning, tokenizer folder."""

    path: Path
    folder: Path  # holds the tokenizer files
    config: dict  # EncoderConfig fields (the export metadata's "config")
    max_length: int
    pruning: str
    spec: dict | None
    precision: str | None
    kind: str = "export"  # "export", "checkpoint" or "foreign-onnx" (models.*.kind)


def describe_model(path: str | Path, backend: str | None = None) -> ModelInfo:
    """What ``path`` is, by the rule ``open_runtime`` loads it by (``runtimes.resolve_model``, with ``backend``):
    the metadata of an ltp-deploy export, the ``config.json`` of a foreign dense ONNX graph (dense, no spec), or
    the ``config.json`` and pruning spec of a checkpoint folder.

    Raises:
        LtpDeployError: the path is missing, is none of these (a bare graph without metadata or config.json), or
            is a damaged export (``ltp_deploy.artifact.open_artifact``).
    """
    from dataclasses import asdict

    from ltp_deploy.checkpoint import read_encoder_config
    from ltp_deploy.runtimes import resolve_model
    from ltp_deploy.spec import PruningSpec

    path = Path(path)
    if not path.exists():
        raise LtpDeployError(f"Model {path} does not exist: pass an exported graph, its folder, or a checkpoint.")
    kind, _, art = resolve_model(path, backend)
    if art is not None:
        return ModelInfo(path, art.folder, asdict(art.config), art.config.max_length, art.pruning,
                         art.metadata.get("spec"), art.metadata.get("precision"),
                         "foreign-onnx" if art.foreign else "export")
    if kind == "checkpoint":  # run by the torch backend
        hf, cfg = read_encoder_config(path)
        spec = PruningSpec.load(path)
        pruning = hf.get("prune_mode") or (spec.mode if spec else "dense")
        return ModelInfo(path, path, asdict(cfg), cfg.max_length, pruning, spec.to_dict() if spec else None, None,
                         "checkpoint")
    raise LtpDeployError(f"{path} is neither an ltp-deploy export nor a checkpoint folder: export it with "
                         "`ltp-deploy export` first, or keep the model's config.json beside a dense ONNX graph.")


@dataclass
class _Loaded:
    role: str
    info: ModelInfo
    runtime: Any
    rss_after_load_mb: float
    first_inference_ms: float | None = None


def _open(role: str, info: ModelInfo, s: BenchSettings) -> _Loaded:
    from ltp_deploy.runtimes import open_runtime

    extra = {k: v for k, v in (("precision", s.precision), ("hint", s.hint)) if v is not None}
    runtime = open_runtime(info.path, device=s.device, backend=s.backend, threads=s.threads, **extra)
    return _Loaded(role, info, runtime, _rss_mb())


def _model_entry(m: _Loaded) -> dict:
    from ltp_deploy.runtimes.base import BatchOneRouter

    rt = m.runtime
    load_s = rt.load_seconds
    return {
        "path": str(m.info.path),
        "kind": m.info.kind,
        "runtime": rt.name,
        "device": rt.device,
        "precision": rt.precision,
        "weights": rt.weights,
        "single_sequence": rt.single_sequence,
        "batch1_graph": isinstance(rt, BatchOneRouter),
        "pruning": m.info.pruning,
        "spec": m.info.spec,
        "load_s": _r(load_s),
        "first_inference_ms": m.first_inference_ms,
        "rss_after_load_mb": m.rss_after_load_mb,
    }


# ------------------------------------------------------------------------------------------------ the data

@dataclass
class Workload:
    """The data one benchmark cycles through: real examples, or synthetic lengths."""

    source: str
    synthetic: bool
    examples: Any  # data.Examples, or None when synthetic
    lengths: np.ndarray  # (N,) real tokens per sequence
    max_length: int


def load_workload(s: BenchSettings, tokenizer, max_length: int) -> Workload:
    """Load and check the data named by the settings (the GLUE error surfaces when GLUE_DIR is missing)."""
    if s.seq_len is not None:
        if s.seq_len > max_length:
            raise LtpDeployError(f"--seq-len {s.seq_len} exceeds the model's maximum input length of {max_length} "
                                 "tokens: use a shorter length.")
        n = s.max_examples or SYNTHETIC_SEQUENCES
        return Workload("synthetic", True, None, np.full(n, s.seq_len, dtype=np.int64), max_length)
    from ltp_deploy.data import load_examples

    task = s.task or (None if s.data else DEFAULT_TASK)
    examples = load_examples(s.data, task, text_column=s.text_column, text_pair_column=s.text_pair_column)
    if s.max_examples is not None:
        examples = examples.take(s.max_examples)
    enc = tokenizer(examples.texts, examples.text_pairs, max_length=max_length, truncation=True)
    lengths = np.array([len(ids) for ids in enc["input_ids"]], dtype=np.int64)
    return Workload(examples.source, False, examples, lengths, max_length)


def make_batches(work: Workload, tokenizer, batch_size: int, order: str = "dataset",
                 seed: int = 0) -> list[dict[str, np.ndarray]]:
    """Tokenised batches, each padded to its longest sequence, in the data's order or (``order`` "length")
    length-sorted; synthetic ones are exactly ``seq_len`` long.

    Synthetic rows are [CLS] + random ordinary-token ids (+ [SEP] last), no padding, all batches full.
    """
    if work.synthetic:
        n, length = len(work.lengths), int(work.lengths[0])
        rng = np.random.default_rng(seed)
        vocab = int(getattr(tokenizer, "vocab_size", None) or len(tokenizer))
        low = min(1000, vocab // 2)  # skip the special and unused ids at the start of BERT/RoBERTa vocabularies
        cls = _first_id(tokenizer, "cls_token_id", "bos_token_id")
        sep = _first_id(tokenizer, "sep_token_id", "eos_token_id")
        out = []
        for _ in range(max(1, math.ceil(n / batch_size))):
            ids = rng.integers(low, vocab, size=(batch_size, length), dtype=np.int64)  # (B, T)
            ids[:, 0] = cls
            if length > 1 and sep is not None:
                ids[:, -1] = sep
            out.append({"input_ids": ids, "attention_mask": np.ones_like(ids), "token_type_ids": np.zeros_like(ids)})
        return out
    from ltp_deploy.data import batches, encode

    return [encode(tokenizer, work.examples, work.max_length, indices=idx)
            for idx in batches(work.examples, batch_size, sort_by_length=order == "length")]


def _first_id(tokenizer, *names: str) -> int | None:
    for name in names:
        value = getattr(tokenizer, name, None)
        if value is not None:
            return int(value)
    return None


# ------------------------------------------------------------------------------------------------ timing

@dataclass
class _Record:
    """Everything one model produced over the timed batches of one batch size."""

    ms: list
    n_orig: list  # arrays (B,)
    kept: list  # arrays (B, L)
    padded: list  # (B, T) of each batch
    executed_flops: float = 0.0
    first_call_ms: float | None = None


def _timed(runtime, batch) -> tuple[float, np.ndarray]:
    start = time.perf_counter()
    _, kept = runtime.run(batch)
    return (time.perf_counter() - start) * 1e3, np.asarray(kept)


def time_batch_size(models: list[_Loaded], batches: list[dict], s: BenchSettings, advance) -> list[_Record]:
    """Warm up, then run every model on the same batches, interleaved, until the iteration or time limit."""
    records = [_Record([], [], [], []) for _ in models]
    for i in range(s.warmup):
        for m, rec in zip(models, records):
            ms, _ = _timed(m.runtime, batches[i % len(batches)])
            if i == 0:
                rec.first_call_ms = ms
    limit = s.iterations if s.iterations else None
    if limit is None and s.duration is None:
        limit = max(len(batches), MIN_DEFAULT_ITERATIONS)
    start, i = time.perf_counter(), 0
    while True:
        batch = batches[i % len(batches)]
        n_orig = batch["attention_mask"].sum(axis=1)  # (B,)
        for m, rec in zip(models, records):
            ms, kept = _timed(m.runtime, batch)
            rec.ms.append(ms)
            rec.n_orig.append(n_orig)
            rec.kept.append(kept)
            rec.padded.append(batch["input_ids"].shape)
            rec.executed_flops += _executed_flops(m.info.config, batch["input_ids"].shape, kept)
        i += 1
        advance()
        if (limit is not None and i >= limit) or (s.duration is not None and time.perf_counter() - start >= s.duration):
            return records


def _executed_flops(cfg: dict, shape: tuple[int, int], kept: np.ndarray) -> float:
    """FLOPs the padded tensors cost: every row runs at the batch's length, which after a gather is the batch's
    largest kept count (the model pads survivors to the longest row)."""
    from ltp_deploy.flops import flops_from_kept

    b, t = shape
    return b * float(flops_from_kept(cfg, [t], kept.max(axis=0)[None, :])[0])


def _latency(ms: np.ndarray) -> dict:
    p10, p50, p90, p99 = np.percentile(ms, [10, 50, 90, 99])
    return {"mean": _r(ms.mean()), "p10": _r(p10), "p50": _r(p50), "p90": _r(p90), "p99": _r(p99),
            "min": _r(ms.min()), "max": _r(ms.max()), "stdev": _r(ms.std(ddof=1) if ms.size > 1 else 0.0)}


def _summary(rec: _Record, cfg: dict) -> dict:
    from ltp_deploy.flops import dense_flops, flops_from_kept

    ms = np.asarray(rec.ms)
    n_orig = np.concatenate(rec.n_orig)  # (N,)
    kept = np.concatenate(rec.kept, axis=0)  # (N, L)
    pruned, dense = flops_from_kept(cfg, n_orig, kept), dense_flops(cfg, n_orig)  # (N,), (N,)
    seconds = ms.sum() / 1e3
    padded = sum(b * t for b, t in rec.padded)
    return {
        "iterations": int(ms.size),
        "sequences": int(n_orig.size),
        "real_tokens": int(n_orig.sum()),
        "mean_tokens": _r(n_orig.mean()),
        "padded_tokens": int(padded),
        "mean_padded_tokens": _r(padded / n_orig.size),
        "first_call_ms": None if rec.first_call_ms is None else _r(rec.first_call_ms),
        "latency_ms": _latency(ms),
        "sequences_per_s": _r(n_orig.size / seconds),
        "tokens_per_s": _r(n_orig.sum() / seconds),
        "kept_tokens_per_layer": [_r(v) for v in kept.mean(axis=0)],
        "gflops_per_sequence": _r(pruned.mean() / 1e9, 6),
        "dense_gflops_per_sequence": _r(dense.mean() / 1e9, 6),
        "flops_reduction": _r(dense.sum() / pruned.sum()),
        "executed_gflops_per_sequence": _r(rec.executed_flops / n_orig.size / 1e9, 6),
    }


def compare(model: _Record, other: _Record, model_cfg: dict, other_cfg: dict) -> dict:
    """Speedup, its per-pair spread, FLOPs reduction and efficiency of MODEL over OTHER (module docstring)."""
    from ltp_deploy.flops import flops_from_kept

    a, b = np.asarray(model.ms), np.asarray(other.ms)
    ratios = b / a  # (pairs,): OTHER / MODEL on the same batch
    p10, p50, p90 = np.percentile(ratios, [10, 50, 90])
    flops_model = flops_from_kept(model_cfg, np.concatenate(model.n_orig), np.concatenate(model.kept)).sum()
    flops_other = flops_from_kept(other_cfg, np.concatenate(other.n_orig), np.concatenate(other.kept)).sum()
    speedup = float(np.median(b) / np.median(a))
    reduction = float(flops_other / flops_model)
    return {"pairs": int(a.size), "speedup": _r(speedup), "ratio_p10": _r(p10), "ratio_p50": _r(p50),
            "ratio_p90": _r(p90), "flops_reduction": _r(reduction), "efficiency": _r(speedup / reduction)}


# ------------------------------------------------------------------------------------------------ the run

def run_bench(s: BenchSettings) -> dict:
    """Load the model(s) and the data, time every batch size, and return the report (see ``BENCH_SCHEMA``).

    Raises:
        LtpDeployError: unreadable model, incompatible --compare model, missing data, --seq-len too long.
    """
    from ltp_deploy.checkpoint import load_tokenizer
    from ltp_deploy.progress import progress_bar

    rss_start = _rss_mb()
    infos = [describe_model(p, s.backend) for p in (s.model, s.compare) if p is not None]
    if len(infos) == 2:
        _check_comparable(*infos)
    max_length = min(i.max_length for i in infos)
    tokenizer = load_tokenizer(infos[0].folder)  # AutoTokenizer (or an LTP folder's bare BPE files)
    work = load_workload(s, tokenizer, max_length)  # data errors surface before any model loads
    models = [_open(role, info, s) for role, info in zip(ROLES, infos)]
    results = []
    for bs in s.batch_sizes:
        batches = make_batches(work, tokenizer, bs, s.order, s.seed)
        for m in models:
            if m.first_inference_ms is None:  # the very first call after loading, outside all statistics
                m.first_inference_ms, _ = _timed(m.runtime, batches[0])
                m.first_inference_ms = _r(m.first_inference_ms)
        total = s.iterations if s.iterations and s.duration is None else None
        if total is None and s.duration is None:
            total = max(len(batches), MIN_DEFAULT_ITERATIONS)
        with progress_bar(total=total, description=f"bench batch {bs}") as advance:
            records = time_batch_size(models, batches, s, advance)
        entry = {"batch_size": bs, "batches": len(batches), "peak_rss_mb": _peak_rss_mb()}
        for m, rec in zip(models, records):
            entry[m.role] = _summary(rec, m.info.config)
        entry.setdefault("other", None)
        entry["comparison"] = (compare(records[0], records[1], models[0].info.config, models[1].info.config)
                               if len(models) == 2 else None)
        results.append(entry)
    return _report(s, work, models, results, rss_start)


def _check_comparable(a: ModelInfo, b: ModelInfo) -> None:
    keys = ("arch", "vocab_size")
    if any(a.config.get(k) != b.config.get(k) for k in keys):
        raise LtpDeployError(
            f"Cannot compare {a.path} ({a.config.get('arch')}, vocabulary {a.config.get('vocab_size')}) with "
            f"{b.path} ({b.config.get('arch')}, vocabulary {b.config.get('vocab_size')}): --compare needs a model "
            "that takes the same token ids, such as the dense export of the same checkpoint."
        )


def _report(s: BenchSettings, work: Workload, models: list[_Loaded], results: list[dict], rss_start: float) -> dict:
    from ltp_deploy.environment import library_versions, machine

    main = _model_entry(models[0])
    lengths = work.lengths
    return {
        "schema_version": SCHEMA_VERSION,
        "kind": KIND,
        "created": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        "settings": {
            "device": s.device, "backend": s.backend, "batch_sizes": list(s.batch_sizes), "warmup": s.warmup,
            "iterations": s.iterations, "duration_s": s.duration, "threads": s.threads, "order": s.order,
            "sort_by_length": s.sort_by_length, "seq_len": s.seq_len, "max_examples": s.max_examples,
            "seed": s.seed, "precision": s.precision, "hint": s.hint,
        },
        "data": {
            "source": work.source, "synthetic": work.synthetic, "sequences": int(lengths.size),
            "max_length": work.max_length,
            "tokens": {"mean": _r(lengths.mean()), "p50": _r(np.percentile(lengths, 50)),
                       "p90": _r(np.percentile(lengths, 90)), "max": int(lengths.max())},
        },
        "environment": {
            **machine(), "threads": s.threads, "omp_num_threads": os.environ.get("OMP_NUM_THREADS"),
            "device": main["device"], "backend": main["runtime"], "precision": main["precision"],
            "versions": library_versions(),
        },
        "models": {"model": main, "other": _model_entry(models[1]) if len(models) == 2 else None},
        "memory": {"rss_start_mb": rss_start, "peak_rss_mb": _peak_rss_mb()},
        "results": results,
    }


def summary_lines(report: dict) -> list[str]:
    """One concise plain-text line per batch size and model (for CI logs and piped output)."""
    lines = []
    for r in report["results"]:
        for role in ROLES:
            m = r.get(role)
            if not m:
                continue
            lat = m["latency_ms"]
            lines.append(
                f"{role:5s} batch {r['batch_size']:>3}: p50 {lat['p50']:.2f} ms (p90 {lat['p90']:.2f}), "
                f"{m['sequences_per_s']:.1f} seq/s, {m['tokens_per_s']:.0f} tok/s, "
                f"{m['gflops_per_sequence']:.3f} GFLOPs/seq (x{m['flops_reduction']:.2f} fewer than dense), "
                f"kept {m['kept_tokens_per_layer'][-1]:.1f}/{m['mean_tokens']:.1f} tokens at the last layer"
            )
        c = r.get("comparison")
        if c:
            lines.append(
                f"      batch {r['batch_size']:>3}: speedup x{c['speedup']:.2f} (pairs p10-p90 x{c['ratio_p10']:.2f}-"
                f"x{c['ratio_p90']:.2f}), FLOPs reduction x{c['flops_reduction']:.2f}, "
                f"efficiency {c['efficiency']:.2f}"
            )
    return lines


# ------------------------------------------------------------------------------------------------ helpers

def _r(x, digits: int = 4) -> float:
    return round(float(x), digits)


def _rss_mb() -> float:
    import psutil

    return _r(psutil.Process().memory_info().rss / 2**20, 1)


def _peak_rss_mb() -> float:
    """Peak resident memory of this process (getrusage; psutil's current RSS where getrusage is missing)."""
    try:
        import resource
    except ImportError:  # Windows
        return _rss_mb()
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return _r(peak / (2**20 if sys.platform == "darwin" else 2**10), 1)  # bytes on macOS, KiB on Linux
