"""``ltp-deploy profile``: per-operator time from ONNX Runtime's trace and OpenVINO's PERF_COUNT, on a real export.

What is checked is what a profile says, against the graph as each runtime compiled it (read independently:
ONNX Runtime's saved optimised graph, OpenVINO's runtime model), never how fast anything ran.
"""

from __future__ import annotations

import json

import pytest

from ltp_deploy.runtimes.profile import PROFILE_SCHEMA, PROFILE_SCHEMA_VERSION
from helpers import run_main as cli


@pytest.fixture(scope="module")
def pruned(tiny):
    """A small BERT's pruned ONNX export (conftest's ``tiny``): profiling reads operators, not model size."""
    return tiny["pruned"]


def _ort_op_types(graph, tmp_path) -> dict[str, int]:
    """Nodes per operator type of the graph as ONNX Runtime optimised it."""
    import collections

    import onnx
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    options.optimized_model_filepath = str(tmp_path / "optimised.onnx")
    ort.InferenceSession(str(graph), options, providers=["CPUExecutionProvider"])
    return dict(collections.Counter(n.op_type for n in onnx.load(str(tmp_path / "optimised.onnx")).graph.node))


def _ov_executed_nodes(graph) -> dict[str, int]:
    """Nodes per type of the compiled model, as one plain PERF_COUNT inference lists them (executed or not: which
    nodes execute depends on the shapes)."""
    import numpy as np
    import openvino as ov

    compiled = ov.Core().compile_model(str(graph), "CPU", {"INFERENCE_PRECISION_HINT": "f32", "PERF_COUNT": True})
    request = compiled.create_infer_request()
    ids = np.full((8, 12), 2000, dtype=np.int64)
    ids[:, 0], ids[:, -1] = 101, 102
    request.infer({p.get_any_name(): (ids if "input_ids" in p.get_any_name() else
                                      np.ones_like(ids) if "mask" in p.get_any_name() else np.zeros_like(ids))
                   for p in compiled.inputs})
    counts: dict[str, set] = {}
    for info in request.profiling_info:
        counts.setdefault(info.node_type, set()).add(info.node_name)
    return {k: len(v) for k, v in counts.items()}


def _documented(report: dict) -> None:
    keys = set(report) | {f"profiles[].{k}" for p in report["profiles"] for k in p} | \
        {f"profiles[].ops[].{k}" for p in report["profiles"] for op in p["ops"] for k in op}
    assert keys == set(PROFILE_SCHEMA)


def test_profiles_name_the_compiled_graphs_operators(glue, pruned, tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("GLUE_DIR", str(glue))
    graph = pruned / "model.onnx"
    for backend, expected in (("onnxruntime", _ort_op_types(graph, tmp_path)), ("openvino", _ov_executed_nodes(graph))):
        out = tmp_path / f"{backend}.json"
        code, stdout, stderr = cli(monkeypatch, capsys, "profile", pruned, "--backend", backend, "--task", "sst2",
                                   "--batch-size", 8, "--batches", 2, "--threads", 1, "--json", out)
        assert code == 0, stderr
        report = json.loads(out.read_text())
        _documented(report)
        assert report["schema"] == PROFILE_SCHEMA_VERSION and report["threads"] == 1
        (prof,) = report["profiles"]
        assert (prof["backend"], prof["batch_size"], prof["calls"]) == (backend, 8, 2)
        if backend == "onnxruntime":  # every timed operator is one of the graph ONNX Runtime optimised
            assert prof["ops"] and {op["op"] for op in prof["ops"]} <= set(expected)
        else:  # every timed node type is one the compiled model holds, at most as many nodes as it holds
            assert prof["ops"] and all(op["nodes"] <= expected.get(op["op"], 0) for op in prof["ops"])
        assert sum(op["share"] for op in prof["ops"]) == pytest.approx(1.0, abs=1e-3)
        assert sum(op["ms"] for op in prof["ops"]) == pytest.approx(prof["op_ms"], rel=1e-3)
        # The counters sit inside the run, but each is timed on its own clock: on a loaded machine their sum has
        # exceeded the run's by 10%. A bound, not an equality.
        assert 0 < prof["op_ms"] and 0 < prof["accounted"] <= 1.25
        assert prof["outside_ms"] == pytest.approx(max(0.0, prof["run_ms"] - prof["op_ms"]), abs=1e-3)
        assert prof["executed"] == sum(op["nodes"] for op in prof["ops"])
        # A pruned graph: one NonZero drops the padding, one more per pruning step; all of them run every call.
        assert prof["data_dependent"] == expected["NonZero"] > 1
        assert [op["ms"] for op in prof["ops"]] == sorted((op["ms"] for op in prof["ops"]), reverse=True)
        assert "batch 8, 2 calls" in stdout


def test_batch_one_profiles_the_exports_batch_one_graph(glue, pruned, monkeypatch, capsys, tmp_path):
    from ltp_deploy.artifact import open_artifact

    monkeypatch.setenv("GLUE_DIR", str(glue))
    batch1 = open_artifact(pruned).batch1
    assert batch1 is not None
    out = tmp_path / "b1.json"
    code, _, stderr = cli(monkeypatch, capsys, "profile", pruned, "--task", "sst2", "--batch-size", 1,
                          "--batches", 3, "--json", out)
    assert code == 0, stderr
    assert json.loads(out.read_text())["profiles"][0]["graph"] == str(batch1)


@pytest.mark.parametrize("args, message", [
    (["--batches", 0], "--batch-size, --batches and --threads must be at least 1"),
    (["--batch-size", 1000, "--batches", 2], "fewer than --batch-size x --batches"),
    (["--backend", "torch"], "Unknown backend 'torch' to profile"),
])
def test_bad_options_exit_2_with_one_sentence(glue, pruned, args, message, monkeypatch, capsys, tmp_path):
    monkeypatch.setenv("GLUE_DIR", str(glue))
    code, _, stderr = cli(monkeypatch, capsys, "profile", pruned, "--task", "sst2", *args,
                          "--json", tmp_path / "p.json")
    assert code == 2 and message in stderr and not (tmp_path / "p.json").exists()
