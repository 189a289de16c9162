"""Timing one batch size: models run interleaved on identical batches; latency statistics and the A/B comparison."""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from ltp_deploy.bench.report import rounded
from ltp_deploy.bench.settings import MIN_DEFAULT_ITERATIONS, BenchSettings

if TYPE_CHECKING:
    from ltp_deploy.bench.run import _Loaded

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


def timed_call(runtime, batch) -> tuple[float, np.ndarray]:
    start = time.perf_counter()
    _, kept = runtime.run(batch)
    return (time.perf_counter() - start) * 1e3, np.asarray(kept)


def time_batch_size(models: list[_Loaded], batches: list[dict], s: BenchSettings, advance) -> list[_Record]:
    """Warm up, then run every model on the same batches, interleaved, until the iteration or time limit.

    The order alternates per batch (A B, B A, ...): a model run right after another on the same shapes finds the
    kernels that one prepared in the runtime's process-wide caches (OpenVINO INT8 at batch 1: a graph against
    itself measured x0.95 in a fixed order)."""
    records = [_Record([], [], [], []) for _ in models]
    for i in range(s.warmup):
        for m, rec in zip(models, records):
            ms, _ = timed_call(m.runtime, batches[i % len(batches)])
            if i == 0:
                rec.first_call_ms = ms
    limit = s.iterations if s.iterations else None
    if limit is None and s.duration is None:
        limit = max(len(batches), MIN_DEFAULT_ITERATIONS)
    start, i = time.perf_counter(), 0
    while True:
        batch = batches[i % len(batches)]
        n_orig = batch["attention_mask"].sum(axis=1)  # (B,)
        for m, rec in (zip(models, records) if i % 2 == 0 else reversed(list(zip(models, records)))):
            ms, kept = timed_call(m.runtime, batch)
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
    return {"mean": rounded(ms.mean()), "p10": rounded(p10), "p50": rounded(p50), "p90": rounded(p90), "p99": rounded(p99),
            "min": rounded(ms.min()), "max": rounded(ms.max()), "stdev": rounded(ms.std(ddof=1) if ms.size > 1 else 0.0)}


def summary(rec: _Record, cfg: dict) -> dict:
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
        "mean_tokens": rounded(n_orig.mean()),
        "padded_tokens": int(padded),
        "mean_padded_tokens": rounded(padded / n_orig.size),
        "first_call_ms": None if rec.first_call_ms is None else rounded(rec.first_call_ms),
        "latency_ms": _latency(ms),
        "sequences_per_s": rounded(n_orig.size / seconds),
        "tokens_per_s": rounded(n_orig.sum() / seconds),
        "kept_tokens_per_layer": [rounded(v) for v in kept.mean(axis=0)],
        "gflops_per_sequence": rounded(pruned.mean() / 1e9, 6),
        "dense_gflops_per_sequence": rounded(dense.mean() / 1e9, 6),
        "flops_reduction": rounded(dense.sum() / pruned.sum()),
        "executed_gflops_per_sequence": rounded(rec.executed_flops / n_orig.size / 1e9, 6),
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
    return {"pairs": int(a.size), "speedup": rounded(speedup), "ratio_p10": rounded(p10), "ratio_p50": rounded(p50),
            "ratio_p90": rounded(p90), "flops_reduction": rounded(reduction), "efficiency": rounded(speedup / reduction)}
