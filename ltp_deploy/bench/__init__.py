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


from ltp_deploy.bench.report import BENCH_SCHEMA, summary_lines
from ltp_deploy.bench.run import ModelInfo, describe_model, load_workload, make_batches, run_bench
from ltp_deploy.bench.settings import DEFAULT_BATCH_SIZES, KIND, ORDERS, SCHEMA_VERSION, BenchSettings
from ltp_deploy.bench.timing import compare

__all__ = ["BENCH_SCHEMA", "DEFAULT_BATCH_SIZES", "KIND", "ORDERS", "SCHEMA_VERSION", "BenchSettings", "ModelInfo",
           "compare", "describe_model", "load_workload", "make_batches", "run_bench", "summary_lines"]
