"""Time between OpenVINO nodes when a batch's shapes are new and when they recur.

    python scripts/ov_cold_shapes.py GRAPH.xml [GRAPH.xml ...] [--batches 20] [--batch-size 32]

Compiles each graph as ``OpenVINOCPU`` does (2 threads, f32) with ``PERF_COUNT``, runs the first
``--batches`` x ``--batch-size`` SST-2 dev sentences (``GLUE_DIR``, dataset order) twice, and prints per pass the
wall time per call, the node counters' sum and the difference (time between nodes: shape inference and kernel
preparation, which OpenVINO caches by shape). The first pass meets every shape for the first time; the second
finds them in the plugin's cache. docs/results/openvino.md reads the output.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from ltp_deploy.bench import describe_model
from ltp_deploy.data import batches as index_batches
from ltp_deploy.data import encode, load_examples
from ltp_deploy.runtimes.inputs import check_batch
from ltp_deploy.runtimes.openvino import compile_cpu
from ltp_deploy.tokenizer import load_tokenizer


def passes(graph: Path, batches: list[dict], rounds: int = 2) -> list[tuple[float, float]]:
    """``[(wall ms, counters ms)]`` per call, one entry per pass over ``batches`` (tokenised, right-padded)."""
    _, compiled = compile_cpu(graph, threads=2, extra={"PERF_COUNT": True})
    request = compiled.create_infer_request()
    feeds = [check_batch(b, tuple(p.get_any_name() for p in compiled.inputs), None) for b in batches]
    out = []
    for _ in range(rounds):
        wall = counters = 0.0
        for feed in feeds:
            start = time.perf_counter()
            request.infer(feed)
            wall += time.perf_counter() - start
            counters += sum(p.real_time.total_seconds() for p in request.profiling_info
                            if p.status == p.Status.EXECUTED)
        out.append((1e3 * wall / len(feeds), 1e3 * counters / len(feeds)))
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("graphs", nargs="+", type=Path)
    parser.add_argument("--batches", type=int, default=20)
    parser.add_argument("--batch-size", type=int, default=32)
    args = parser.parse_args()
    examples = load_examples(None, "sst2").take(args.batches * args.batch_size)
    for graph in args.graphs:
        info = describe_model(graph, "openvino")
        tokenizer = load_tokenizer(info.folder)
        batches = [encode(tokenizer, examples, info.max_length, indices=idx)
                   for idx in index_batches(examples, args.batch_size, sort_by_length=False)]
        for label, (wall, counters) in zip(("new shapes", "shapes again"), passes(graph, batches)):
            print(f"{graph} {label}: {wall:.2f} ms per call, nodes {counters:.2f} ms, between {wall - counters:.2f} ms")


if __name__ == "__main__":
    main()
