"""``run_bench``: the models, the workload (real sentences or synthetic batches), and the timed loop over batch sizes."""

from __future__ import annotations

import datetime as dt
import math
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ltp_deploy.bench.report import rounded
from ltp_deploy.bench.settings import (
    DEFAULT_TASK,
    KIND,
    MIN_DEFAULT_ITERATIONS,
    ROLES,
    SCHEMA_VERSION,
    SYNTHETIC_SEQUENCES,
    BenchSettings,
)
from ltp_deploy.bench.timing import compare, summary, time_batch_size, timed_call
from ltp_deploy.environment import peak_rss_mb, rss_mb
from ltp_deploy.errors import LtpDeployError

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
    return _Loaded(role, info, runtime, rss_mb())


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
        "load_s": rounded(load_s),
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


# ------------------------------------------------------------------------------------------------ the run

def run_bench(s: BenchSettings) -> dict:
    """Load the model(s) and the data, time every batch size, and return the report (see ``BENCH_SCHEMA``).

    Raises:
        LtpDeployError: unreadable model, incompatible --compare model, missing data, --seq-len too long.
    """
    from ltp_deploy.tokenizer import load_tokenizer
    from ltp_deploy.progress import progress_bar

    rss_start = rss_mb()
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
                m.first_inference_ms, _ = timed_call(m.runtime, batches[0])
                m.first_inference_ms = rounded(m.first_inference_ms)
        total = s.iterations if s.iterations and s.duration is None else None
        if total is None and s.duration is None:
            total = max(len(batches), MIN_DEFAULT_ITERATIONS)
        with progress_bar(total=total, description=f"bench batch {bs}") as advance:
            records = time_batch_size(models, batches, s, advance)
        entry = {"batch_size": bs, "batches": len(batches), "peak_rss_mb": peak_rss_mb()}
        for m, rec in zip(models, records):
            entry[m.role] = summary(rec, m.info.config)
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
            "tokens": {"mean": rounded(lengths.mean()), "p50": rounded(np.percentile(lengths, 50)),
                       "p90": rounded(np.percentile(lengths, 90)), "max": int(lengths.max())},
        },
        "environment": {
            **machine(), "threads": s.threads, "omp_num_threads": os.environ.get("OMP_NUM_THREADS"),
            "device": main["device"], "backend": main["runtime"], "precision": main["precision"],
            "versions": library_versions(),
        },
        "models": {"model": main, "other": _model_entry(models[1]) if len(models) == 2 else None},
        "memory": {"rss_start_mb": rss_start, "peak_rss_mb": peak_rss_mb()},
        "results": results,
    }
