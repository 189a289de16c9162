"""Executed OpenVINO nodes (PERF_COUNT) of graphs at batch 1, on one 25-token sentence, with a node-type histogram.

    python scripts/ov_nodes.py GRAPH.xml [GRAPH.xml ...]

The count is what OpenVINO's CPU plugin runs per inference (``EXECUTED`` status, fused and no-op nodes excluded),
read after 20 warm-up inferences. It moves by a few percent from one process to the next (the first inference's
count by more), so docs/results/openvino.md gives ranges over several runs.
"""

from __future__ import annotations

import collections
import sys

import numpy as np
import openvino as ov


def executed(path: str, tokens: int = 25) -> list:
    core = ov.Core()
    compiled = core.compile_model(core.read_model(path), "CPU", {"PERF_COUNT": True, "INFERENCE_NUM_THREADS": 2,
                                                                 "INFERENCE_PRECISION_HINT": "f32"})
    request = compiled.create_infer_request()
    feeds = {}
    for inp in compiled.inputs:
        name = inp.get_any_name()
        if name == "input_ids":
            feeds[name] = np.random.default_rng(0).integers(1000, 5000, (1, tokens)).astype(np.int64)
        else:
            feeds[name] = (np.ones if name == "attention_mask" else np.zeros)((1, tokens), np.int64)
    for _ in range(20):  # the first inferences still settle (memory reuse); the count is read after them
        request.infer(feeds)
    return [p for p in request.profiling_info if p.status == p.Status.EXECUTED]


if __name__ == "__main__":
    for graph in sys.argv[1:]:
        nodes = executed(graph)
        types = collections.Counter(p.node_type for p in nodes)
        print(graph, "executed", len(nodes), dict(types.most_common(12)))
