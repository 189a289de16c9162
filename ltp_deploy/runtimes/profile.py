"""Where a graph's time goes: per-operator time of real batches, read off the runtime's own profiler.

ONNX Runtime: the session's trace (``enable_profiling``; one ``Node`` event per executed kernel, and one
``model_run`` event per call). OpenVINO: ``PERF_COUNT`` (each infer request's ``profiling_info``: node type, the
kernel it executed, ``real_time``). Both sessions are made as the adapters make them (same threads, ONNX Runtime
without spinning, OpenVINO's latency hint), on the graph that batch size runs (an export's batch-1 graph for
batches of one). Times are summed per operator type over the profiled calls and divided by the calls; the run
time is the runtime's own (ONNX Runtime's ``model_run``) or the wall time of ``infer`` (OpenVINO), so that
``accounted`` (operator time / run time) and ``outside_ms`` show what the per-node counters leave out: shape
inference, allocation, scheduling. On a graph with data-dependent shapes (a pruning step's ``NonZero``), that
share grows with the number of such nodes: OpenVINO's CPU plugin re-infers shapes and re-prepares kernels after
each, before the nodes behind it can run (docs/results/openvino.md).

Example::

    report = profile_graph("out/sst2-onnx-int8", batches, backend="onnxruntime", threads=2)
    report["run_ms"], report["ops"][0]        # 52.1, {"op": "MatMulInteger", "ms": 21.3, "share": 0.41, ...}
"""

from __future__ import annotations

import json
import tempfile
import time
from collections import defaultdict
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from ltp_deploy.errors import LtpDeployError
from ltp_deploy.runtimes.inputs import check_batch

PROFILE_BACKENDS = ("onnxruntime", "openvino")  # the graph runtimes whose own profilers profile reads
DATA_DEPENDENT_OPS = ("NonZero",)  # output shape known only after the node ran (both runtimes name it so)
PROFILE_SCHEMA_VERSION = "ltp-deploy-profile/1"
# Every field ``ltp-deploy profile --json`` writes (``profiles[]`` is one ``profile_graph`` report each).
PROFILE_SCHEMA = {
    "schema": "str: PROFILE_SCHEMA_VERSION",
    "data": "str: where the sentences came from (the first batch_size x calls, dataset order)",
    "threads": "int|null: intra-op threads (null: the runtime's choice)",
    "versions": "map: library versions",
    "profiles": "list: one per model, in the order given",
    "profiles[].graph": "str: the graph file profiled (an export's batch-1 graph for batch 1)",
    "profiles[].backend": "str: onnxruntime or openvino",
    "profiles[].batch_size": "int: sentences per call",
    "profiles[].calls": "int: profiled calls (after the warm-up calls)",
    "profiles[].run_ms": "float: time per call (ONNX Runtime's model_run; OpenVINO's infer wall time)",
    "profiles[].op_ms": "float: the operators' time per call, summed",
    "profiles[].accounted": "float: op_ms / run_ms (the rest: shape inference, allocation, scheduling)",
    "profiles[].outside_ms": "float: run_ms - op_ms (0 when the counters cover the run): time between nodes",
    "profiles[].executed": "int: distinct nodes executed over the profiled calls (the sum of ops[].nodes)",
    "profiles[].data_dependent": "int: executed nodes whose output shape is known only once they ran (NonZero)",
    "profiles[].ops": "list: operator types, most time first",
    "profiles[].ops[].op": "str: the operator type as the runtime names it",
    "profiles[].ops[].ms": "float: its time per call",
    "profiles[].ops[].share": "float: its share of op_ms",
    "profiles[].ops[].nodes": "int: distinct executed nodes of that type",
    "profiles[].ops[].kernels": "map: executed kernel (OpenVINO) or provider (ONNX Runtime) -> ms per call",
}


def profile_graph(path: str | Path, batches: Sequence[dict[str, np.ndarray]], backend: str | None = None,
                  threads: int | None = None, warmup: int = 2) -> dict:
    """Profile ``batches`` (tokenised, right-padded, all of one batch size) on ``path``'s graph.

    Args:
        path: an export folder, a dense ONNX folder (Optimum's), or a ``.onnx`` / ``.xml`` file.
        batches: what to run, each once after ``warmup`` unprofiled calls of the first.
        backend: "onnxruntime" (``.onnx``) or "openvino" (``.onnx`` or ``.xml``); CPU only. Default: openvino
            for an ``.xml`` graph, else onnxruntime.
    Returns:
        ``{"graph", "backend", "batch_size", "calls", "run_ms", "op_ms", "accounted", "outside_ms", "executed",
        "data_dependent", "ops": [{"op", "ms", "share", "nodes", "kernels"}]}``: per call, ``ops`` sorted by
        time, ``share`` of the operator time, ``kernels`` the executed kernel names with their ms (OpenVINO) or
        the provider (ONNX Runtime); ``PROFILE_SCHEMA`` documents each field.
    Raises:
        LtpDeployError: an unknown backend, a graph the backend cannot open, no batches.
    """
    from ltp_deploy.runtimes import resolve_model

    if backend not in (None, *PROFILE_BACKENDS):
        raise LtpDeployError(f"Unknown backend {backend!r} to profile: use {' or '.join(PROFILE_BACKENDS)}.")
    if not batches:
        raise LtpDeployError("Nothing to profile: give at least one batch.")
    kind, graph, art = resolve_model(Path(path), backend)
    backend = backend or ("openvino" if kind == ".xml" else "onnxruntime")
    if kind == "checkpoint" or (kind == ".xml" and backend != "openvino"):
        raise LtpDeployError(f"{path} is not a graph {backend} runs: profile an export folder or a .onnx/.xml "
                             "file, with --backend openvino for .xml.")
    sizes = {next(iter(b.values())).shape[0] for b in batches}
    if len(sizes) != 1:
        raise LtpDeployError("Profile batches of one size: the graph and its kernels differ with it.")
    size = sizes.pop()
    if size == 1 and art is not None and art.batch1 is not None:
        graph = art.batch1
    run = _onnxruntime if backend == "onnxruntime" else _openvino
    run_ms, op_ms, kernels, nodes = run(graph, batches, threads, warmup)
    total = sum(op_ms.values()) or 1.0
    ops = [{"op": op, "ms": round(ms, 4), "share": round(ms / total, 4), "nodes": len(nodes[op]),
            "kernels": {k: round(v, 4) for k, v in sorted(kernels[op].items(), key=lambda kv: -kv[1])}}
           for op, ms in sorted(op_ms.items(), key=lambda kv: -kv[1])]
    return {"graph": str(graph), "backend": backend, "batch_size": size, "calls": len(batches),
            "run_ms": round(run_ms, 4), "op_ms": round(total, 4), "accounted": round(total / run_ms, 4),
            "outside_ms": round(max(0.0, run_ms - total), 4), "executed": sum(len(n) for n in nodes.values()),
            "data_dependent": sum(len(nodes[op]) for op in DATA_DEPENDENT_OPS if op in nodes), "ops": ops}


def _onnxruntime(graph, batches, threads, warmup):
    from ltp_deploy.runtimes.onnxruntime import _session

    with tempfile.TemporaryDirectory(prefix="ltp-profile-") as tmp:
        session = _session(graph, threads, ["CPUExecutionProvider"], profile_prefix=str(Path(tmp) / "ort"))
        names = tuple(i.name for i in session.get_inputs())
        feeds = [check_batch(b, names, None) for b in batches]
        for _ in range(warmup):
            session.run(None, feeds[0])
        for feed in feeds:
            session.run(None, feed)
        events = json.loads(Path(session.end_profiling()).read_text())
    # The warm-up calls are in the trace too: keep the events of the last len(batches) model runs.
    runs = sorted((e for e in events if e.get("name") == "model_run"), key=lambda e: e["ts"])[-len(feeds):]
    first = runs[0]["ts"]
    op_ms, kernels, nodes = defaultdict(float), defaultdict(lambda: defaultdict(float)), defaultdict(set)
    for e in events:
        if e.get("cat") != "Node" or not e.get("name", "").endswith("_kernel_time") or e["ts"] < first:
            continue
        op = e["args"].get("op_name", "?")
        ms = e["dur"] / 1e3 / len(feeds)
        op_ms[op] += ms
        kernels[op][e["args"].get("provider", "?")] += ms
        nodes[op].add(e["name"])
    return sum(r["dur"] for r in runs) / 1e3 / len(feeds), op_ms, kernels, nodes


def _openvino(graph, batches, threads, warmup):
    import openvino.properties as props

    from ltp_deploy.runtimes.openvino import compile_cpu

    _, compiled = compile_cpu(graph, threads, extra={props.enable_profiling: True})
    request = compiled.create_infer_request()
    names = tuple(p.get_any_name() for p in compiled.inputs)
    feeds = [check_batch(b, names, None) for b in batches]
    for _ in range(warmup):
        request.infer(feeds[0])
    wall, op_ms = 0.0, defaultdict(float)
    kernels, nodes = defaultdict(lambda: defaultdict(float)), defaultdict(set)
    for feed in feeds:
        t0 = time.perf_counter()
        request.infer(feed)
        wall += time.perf_counter() - t0
        for info in request.profiling_info:
            if info.status != info.Status.EXECUTED:
                continue
            ms = info.real_time.total_seconds() * 1e3 / len(feeds)
            op_ms[info.node_type] += ms
            kernels[info.node_type][info.exec_type] += ms
            nodes[info.node_type].add(info.node_name)
    return wall * 1e3 / len(feeds), op_ms, kernels, nodes


def summary_lines(report: dict, top: int = 8) -> list[str]:
    """A few lines for a terminal: run time, how much of it the counters account for, the top operators."""
    lines = [f"{report['graph']} ({report['backend']}, batch {report['batch_size']}, {report['calls']} calls): "
             f"{report['run_ms']:.2f} ms per call, operators {report['op_ms']:.2f} ms "
             f"({100 * report['accounted']:.0f}% of it) in {report['executed']} nodes "
             f"({report['data_dependent']} with data-dependent shapes), {report['outside_ms']:.2f} ms between them"]
    for op in report["ops"][:top]:
        kernel = next(iter(op["kernels"]), "")
        lines.append(f"  {op['op']:<24} {op['ms']:8.2f} ms  {100 * op['share']:5.1f}%  {op['nodes']:3d} nodes  {kernel}")
    return lines
