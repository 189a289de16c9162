"""What ``bench`` reports: the JSON report's schema (``BENCH_SCHEMA``; ``run._report`` builds it) and its plain-text lines."""

from __future__ import annotations

from ltp_deploy.bench.settings import ROLES

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


def rounded(x, digits: int = 4) -> float:
    return round(float(x), digits)
