"""The peer a user would otherwise deploy: the dense ONNX graph Hugging Face Optimum exports from the same dense
checkpoint (``optimum-cli export onnx --model DENSE --task text-classification OUT``), opened, run and benched.

Optimum is not installed here nor in CI (it pins transformers<4.58), so the peer is built without it, as an
independent dense graph: transformers' own ``BertForSequenceClassification`` (eager attention) exported by
``torch.onnx.export`` (the TorchScript exporter, as Optimum does), in the layout Optimum writes. Checked against a
real export (optimum-onnx 0.1.0, optimum 2.1.0, transformers 4.57.6, torch 2.13.0): the folder holds
``config.json``, ``model.onnx``, ``special_tokens_map.json``, ``tokenizer.json``, ``tokenizer_config.json`` and
``vocab.txt``, no weights and no ltp-deploy metadata; the graph (opset 18) takes int64 ``input_ids``,
``attention_mask``, ``token_type_ids`` of shape ``(batch_size, sequence_length)`` and gives float32 ``logits``
of shape ``(batch_size, num_labels)``, and nothing else. ``test_real_optimum_export`` runs against a real export
where Optimum can be run (``LTP_OPTIMUM_CLI`` names its CLI, e.g. from a separate venv; see docs/benchmarking.md).
"""

from __future__ import annotations

import importlib.util
import json
import os
import shutil
import subprocess
import sys
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch

from helpers import SENTENCES, run_main as cli
from test_bench import check_schema
from ltp_deploy.artifact import FOREIGN_OUTPUTS, is_foreign, open_model_artifact
from ltp_deploy.bench import describe_model
from ltp_deploy.tokenizer import TOKENIZER_FILES
from ltp_deploy.errors import LtpDeployError
from ltp_deploy.runtimes import open_runtime, resolve_model

THRESHOLDS = [0, 0.002, 0.004, 0.006, 0.008, 0.01]
INPUTS = ("input_ids", "attention_mask", "token_type_ids")
OPTIMUM_FILES = {"config.json", "model.onnx", "special_tokens_map.json", "tokenizer.json", "tokenizer_config.json",
                 "vocab.txt"}  # what optimum-cli wrote for MiniLM
ATOL = 1e-4


@pytest.fixture(scope="module")
def dense(minilm_dir, tmp_path_factory):
    """The dense checkpoint both sides come from: MiniLM with a seeded std-1 head (logits of order 1, so that
    1e-4 really checks the graph), saved with ``save_pretrained`` beside MiniLM's own tokenizer files; returns
    (folder, model, tokenizer)."""
    from transformers import AutoTokenizer, BertForSequenceClassification

    folder = tmp_path_factory.mktemp("peer") / "dense"
    model = BertForSequenceClassification.from_pretrained(str(minilm_dir), num_labels=2,
                                                          attn_implementation="eager").eval()
    with torch.no_grad():
        w = model.classifier.weight
        w.copy_(torch.randn(w.shape, generator=torch.Generator().manual_seed(0)))
    model.save_pretrained(str(folder))
    for name in TOKENIZER_FILES:
        if (minilm_dir / name).is_file():
            shutil.copyfile(minilm_dir / name, folder / name)
    return folder, model, AutoTokenizer.from_pretrained(str(folder))


@pytest.fixture(scope="module")
def peer(dense) -> Path:
    """An Optimum-like export of ``dense``: ``model.onnx`` (logits only, dynamic batch and length axes) with its
    config.json and tokenizer files beside it, no weights (the layout of the module docstring)."""
    folder, model, _ = dense
    out = folder.parent / "peer"
    out.mkdir()
    ids = torch.tensor([[101, 2023, 2003, 102, 0], [101, 2023, 2003, 1037, 102]])
    axes = {n: {0: "batch_size", 1: "sequence_length"} for n in INPUTS} | {"logits": {0: "batch_size"}}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # TracerWarnings of transformers' mask code, the exporter's deprecation
        torch.onnx.export(model, (ids, (ids != 0).long(), torch.zeros_like(ids)), str(out / "model.onnx"),
                          input_names=list(INPUTS), output_names=["logits"], dynamic_axes=axes, opset_version=18,
                          dynamo=False)
    model.config.save_pretrained(str(out))
    for name in TOKENIZER_FILES:
        if (folder / name).is_file():
            shutil.copyfile(folder / name, out / name)
    return out


@pytest.fixture(scope="module")
def pruned(dense) -> Path:
    """The same dense checkpoint under a threshold spec, exported by ltp-deploy (drops tokens)."""
    from ltp_deploy.checkpoint import load_checkpoint
    from ltp_deploy.exporters.onnx import export_onnx
    from ltp_deploy.spec import PruningSpec

    folder = dense[0]
    return export_onnx(load_checkpoint(folder, spec=PruningSpec.threshold(THRESHOLDS)),
                       folder.parent / "pruned").folder


@pytest.fixture(scope="module")
def sentences(dense) -> Path:
    """A TSV of sentences of very different lengths (``conftest.SENTENCES``: 8 sentences, 8 times over)."""
    path = dense[0].parent / "sentences.tsv"
    path.write_text("sentence\n" + "".join(f"{s}\n" for s in SENTENCES))
    return path


def _batch(tokenizer) -> dict[str, np.ndarray]:
    enc = tokenizer(SENTENCES[:8], padding=True, truncation=True, max_length=128, return_tensors="np")
    return {k: enc[k].astype(np.int64) for k in INPUTS}


def _expected(model, batch) -> np.ndarray:
    with torch.no_grad():
        return model(**{k: torch.from_numpy(v) for k, v in batch.items()}).logits.numpy()


def graph_io(path: Path) -> tuple:
    """(opset, inputs, outputs) of an ONNX graph, each input/output as (name, element type, dims)."""
    import onnx

    def values(vs):
        return [(v.name, v.type.tensor_type.elem_type,
                 [d.dim_param or d.dim_value for d in v.type.tensor_type.shape.dim]) for v in vs]

    graph = onnx.load(str(path), load_external_data=False)
    return graph.opset_import[0].version, values(graph.graph.input), values(graph.graph.output)


def assert_runs_dense(path: Path, backend: str, dense) -> None:
    """``open_runtime(path)`` gives transformers' logits (1e-4) and every real token kept at every layer."""
    _, model, tokenizer = dense
    batch = _batch(tokenizer)
    runtime = open_runtime(path, backend=backend)
    logits, kept = runtime.run(batch)
    assert runtime.dense_layers == 6 and runtime.limits.max_length == 512
    np.testing.assert_allclose(logits, _expected(model, batch), rtol=0, atol=ATOL)
    lengths = batch["attention_mask"].sum(axis=1)
    assert kept.dtype == np.int64 and np.array_equal(kept, np.repeat(lengths[:, None], 6, axis=1))
    assert len(set(lengths.tolist())) > 3  # rows of really different lengths


# ------------------------------------------------------------------------------------------------ the graph

@pytest.mark.slow
def test_peer_layout_is_a_foreign_dense_graph(peer):
    assert {p.name for p in peer.iterdir()} == OPTIMUM_FILES
    axes = ["batch_size", "sequence_length"]
    int64, float32 = 7, 1  # onnx.TensorProto element types
    assert graph_io(peer / "model.onnx") == (18, [(n, int64, axes) for n in INPUTS],
                                             [("logits", float32, ["batch_size", 2])])
    for path in (peer, peer / "model.onnx"):
        assert is_foreign(path)
        art = open_model_artifact(path)
        assert art.foreign and art.outputs == FOREIGN_OUTPUTS and art.spec is None and art.pruning == "dense"
        assert art.graph == peer / "model.onnx" and art.folder == peer and art.config.num_layers == 6
        assert resolve_model(path)[:2] == (".onnx", peer / "model.onnx")
        info = describe_model(path)
        assert info.kind == "foreign-onnx" and info.pruning == "dense" and info.spec is None and info.folder == peer


@pytest.mark.parametrize("backend", ["onnxruntime", "openvino"])
@pytest.mark.slow
def test_peer_runs_with_kept_counts_of_a_dense_model(peer, dense, backend):
    assert_runs_dense(peer, backend, dense)


@pytest.mark.slow
def test_single_sequence_foreign_graph_is_called_per_row(peer, dense):
    """A foreign graph with a fixed batch axis of 1 is called once per row; kept counts are still each row's."""
    import onnx

    folder = peer.parent / "peer-b1"
    shutil.copytree(peer, folder)
    graph = onnx.load(str(folder / "model.onnx"))
    for value in list(graph.graph.input) + list(graph.graph.output):
        value.type.tensor_type.shape.dim[0].dim_value = 1
    onnx.save(graph, str(folder / "model.onnx"))
    runtime = open_runtime(folder)
    assert runtime.single_sequence
    assert_runs_dense(folder, "onnxruntime", dense)


@pytest.mark.slow
def test_which_folder_is_what(peer, dense, tmp_path):
    """The rule of runtimes.resolve_model: weights make a folder a checkpoint unless a graph backend is asked."""
    both = tmp_path / "checkpoint-with-graph"
    both.mkdir()
    for f in list(dense[0].iterdir()) + [peer / "model.onnx"]:
        (both / f.name).symlink_to(f)
    assert not is_foreign(both) and is_foreign(both, prefer_graph=True)
    assert resolve_model(both)[0] == "checkpoint" and resolve_model(both, "torch")[0] == "checkpoint"
    for backend in ("onnxruntime", "openvino"):
        assert resolve_model(both, backend)[:2] == (".onnx", both / "model.onnx")
        assert describe_model(both, backend).kind == "foreign-onnx"
    assert describe_model(both).kind == "checkpoint"
    assert resolve_model(dense[0], "onnxruntime")[0] == "checkpoint"  # no model.onnx: the checkpoint it stays
    with pytest.raises(LtpDeployError, match="runs with backend onnxruntime or openvino, not torch"):
        open_runtime(peer, backend="torch")


@pytest.mark.slow
def test_bare_logits_graph_without_config_is_one_error(peer, tmp_path):
    (tmp_path / "model.onnx").symlink_to(peer / "model.onnx")
    for backend in ("onnxruntime", "openvino"):
        with pytest.raises(LtpDeployError) as err:
            open_runtime(tmp_path / "model.onnx", backend=backend)
        assert "no output 'kept_counts'" in str(err.value) and "config.json" in str(err.value)
        assert "\n" not in str(err.value)
    with pytest.raises(LtpDeployError, match="neither an ltp-deploy export nor a checkpoint folder"):
        describe_model(tmp_path / "model.onnx")


# ------------------------------------------------------------------------------------------------ bench

def _bench(monkeypatch, capsys, report: Path, *args) -> dict:
    code, _, err = cli(monkeypatch, capsys, "bench", *args, "--warmup", 0, "--json", report)
    assert code == 0, err
    return json.loads(report.read_text())


@pytest.mark.slow
def test_bench_against_the_peer(pruned, peer, sentences, tmp_path, monkeypatch, capsys):
    """One pass (8 batches of 8) over 64 sentences in dataset and in length order: the same real tokens,
    fewer padded slots when length-sorted; the peer is described as a dense foreign graph."""
    data = ["--data", sentences, "--text-column", "sentence", "--batch-size", 8, "--iterations", 8]
    reports = {order: _bench(monkeypatch, capsys, tmp_path / f"{order}.json", pruned, "--compare", peer, *data,
                             *(["--order", order] if order else []))
               for order in (None, "length")}
    reports["alias"] = _bench(monkeypatch, capsys, tmp_path / "alias.json", pruned, "--compare", peer, *data,
                              "--sort-by-length")
    for name, report in reports.items():
        check_schema(report, complete=True)
        order = "dataset" if name is None else "length"
        assert report["settings"]["order"] == order and report["settings"]["sort_by_length"] == (order == "length")
        other = report["models"]["other"]
        assert other["path"] == str(peer) and other["kind"] == "foreign-onnx" and other["pruning"] == "dense"
        assert other["spec"] is None and other["runtime"] == "onnxruntime-cpu"
        assert report["models"]["model"]["kind"] == "export"
        r = report["results"][0]
        m, o, c = r["model"], r["other"], r["comparison"]
        assert m["sequences"] == o["sequences"] == 64
        assert m["real_tokens"] == o["real_tokens"] and m["padded_tokens"] == o["padded_tokens"] >= m["real_tokens"]
        assert m["mean_padded_tokens"] == pytest.approx(m["padded_tokens"] / 64, abs=1e-4)
        assert o["flops_reduction"] == 1.0 and o["kept_tokens_per_layer"] == [o["mean_tokens"]] * 6
        assert o["gflops_per_sequence"] == o["dense_gflops_per_sequence"]
        assert m["kept_tokens_per_layer"][-1] < m["mean_tokens"] and m["flops_reduction"] > 1.0
        assert c["pairs"] == 8 and c["speedup"] > 0
        assert c["flops_reduction"] == pytest.approx(m["flops_reduction"], rel=1e-3)  # the peer is dense
        assert c["efficiency"] == pytest.approx(c["speedup"] / c["flops_reduction"], rel=1e-3)
    dataset, length = reports[None]["results"][0]["model"], reports["length"]["results"][0]["model"]
    assert length["real_tokens"] == dataset["real_tokens"]
    assert length["padded_tokens"] < dataset["padded_tokens"]
    assert reports["alias"]["results"][0]["model"]["padded_tokens"] == length["padded_tokens"]


@pytest.mark.slow
def test_bench_against_the_peer_in_openvino(pruned, peer, sentences, tmp_path, monkeypatch, capsys):
    report = _bench(monkeypatch, capsys, tmp_path / "ov.json", pruned, "--compare", peer, "--backend", "openvino",
                    "--data", sentences, "--text-column", "sentence", "--batch-size", 4, "--iterations", 2)
    check_schema(report, complete=True)
    other = report["models"]["other"]
    assert other["runtime"] == "openvino-cpu" and other["kind"] == "foreign-onnx"
    o = report["results"][0]["other"]
    assert o["flops_reduction"] == 1.0 and o["kept_tokens_per_layer"] == [o["mean_tokens"]] * 6


# ------------------------------------------------------------------------------------------------ real Optimum

def _optimum_cli() -> list[str] | None:
    """The Optimum CLI: ``LTP_OPTIMUM_CLI`` (e.g. .venv-optimum/bin/optimum-cli), or this Python's ``optimum``."""
    if os.environ.get("LTP_OPTIMUM_CLI"):
        return [os.environ["LTP_OPTIMUM_CLI"]]
    if importlib.util.find_spec("optimum") is not None:
        return [sys.executable, "-m", "optimum.commands.optimum_cli"]
    return None


@pytest.mark.slow
@pytest.mark.skipif(_optimum_cli() is None, reason="optimum is not importable (it pins transformers<4.58; install "
                    "optimum-onnx[onnxruntime] in a separate venv and set LTP_OPTIMUM_CLI to its optimum-cli)")
def test_real_optimum_export(dense, peer, tmp_path):
    out = tmp_path / "optimum"
    done = subprocess.run([*_optimum_cli(), "export", "onnx", "--model", str(dense[0]), "--task",
                           "text-classification", str(out)], capture_output=True, text=True, timeout=600,
                          env={**os.environ, "HF_HUB_OFFLINE": "1"}, check=False)
    assert done.returncode == 0, done.stderr[-2000:]
    assert {p.name for p in out.iterdir()} == {p.name for p in peer.iterdir()} == OPTIMUM_FILES
    assert is_foreign(out) and not is_foreign(dense[0])
    assert graph_io(out / "model.onnx") == graph_io(peer / "model.onnx")
    for backend in ("onnxruntime", "openvino"):
        assert_runs_dense(out, backend, dense)


def _accuracy(run, tokenizer, examples, names) -> float:
    """Accuracy of a logits-only graph computed here, batch by batch, from ``run(feed) -> logits``."""
    correct = 0
    for start in range(0, len(examples), 16):
        texts = examples.texts[start:start + 16]
        enc = tokenizer(texts, padding=True, truncation=True, max_length=128, return_tensors="np")
        logits = run({k: enc[k].astype(np.int64) for k in names})
        correct += int((np.argmax(logits, axis=-1) == np.asarray(examples.labels[start:start + 16])).sum())
    return correct / len(examples)


@pytest.mark.slow
def test_int8_peers_are_checked_and_benched_as_foreign_graphs(peer, dense, pruned, glue, tmp_path, monkeypatch,
                                                              capsys):
    """The INT8 peers of a claims run (``claims.peers``): NNCF's INT8 of the Optimum-layout graph for OpenVINO, and
    ONNX Runtime's dynamic quantization of it with the settings of ``optimum-cli onnxruntime quantize --avx2``
    (uint8 weights and activations, per tensor). ``check`` opens each as a foreign dense graph; its accuracy is
    computed again here by running the graph file directly in its runtime."""
    import openvino as ov
    import onnxruntime as ort
    from onnxruntime.quantization import QuantType, quantize_dynamic

    from ltp_deploy.claims.peers import ORT_PEER_GRAPH, OV_PEER_GRAPH, main
    from ltp_deploy.data import load_examples

    ov_peer = tmp_path / "optimum-int8-openvino"
    assert main([str(peer), str(ov_peer), "--task", "sst2"]) == 0
    assert {OV_PEER_GRAPH, "config.json", "tokenizer.json"} <= {p.name for p in ov_peer.iterdir()}
    assert any(op.get_type_name() == "FakeQuantize" for op in ov.Core().read_model(ov_peer / OV_PEER_GRAPH).get_ops())
    ort_peer = tmp_path / "optimum-int8-onnxruntime"
    shutil.copytree(peer, ort_peer, ignore=shutil.ignore_patterns("model.onnx"))
    quantize_dynamic(str(peer / "model.onnx"), str(ort_peer / ORT_PEER_GRAPH), weight_type=QuantType.QUInt8,
                     per_channel=False, op_types_to_quantize=["MatMul", "Attention"])

    dev = load_examples(glue / "SST-2" / "dev.tsv", "sst2").take(48)
    tokenizer = dense[2]
    session = ort.InferenceSession(str(ort_peer / ORT_PEER_GRAPH), providers=["CPUExecutionProvider"])
    compiled = ov.Core().compile_model(str(ov_peer / OV_PEER_GRAPH), "CPU", {"INFERENCE_PRECISION_HINT": "f32"})
    direct = {"onnxruntime": lambda feed: session.run(["logits"], feed)[0],
              "openvino": lambda feed: compiled(feed)[compiled.output(0)]}
    for backend, graph in (("onnxruntime", ort_peer / ORT_PEER_GRAPH), ("openvino", ov_peer / OV_PEER_GRAPH)):
        out = tmp_path / f"check-{backend}.json"
        code, _, err = cli(monkeypatch, capsys, "check", graph, "--backend", backend, "--data", glue / "SST-2" /
                           "dev.tsv", "--task", "sst2", "--max-examples", 48, "--json", out)
        assert code == 0, err
        report = json.loads(out.read_text())
        assert report["model"]["pruning"] == "dense" and report["model"]["weights"] is None
        assert report["results"]["graph"]["value"] == pytest.approx(_accuracy(direct[backend], tokenizer, dev, INPUTS),
                                                                    abs=1 / 48 + 1e-9)
    code, _, err = cli(monkeypatch, capsys, "check", ov_peer / OV_PEER_GRAPH, "--task", "sst2", "--reference",
                       dense[0], "--json", tmp_path / "x.json")
    assert code == 2 and "no pruning to compare with a --reference" in err and len(err.strip().splitlines()) == 1
    report = _bench(monkeypatch, capsys, tmp_path / "vs-int8.json", pruned, "--compare", ov_peer / OV_PEER_GRAPH,
                    "--backend", "openvino", "--data", glue / "SST-2" / "dev.tsv", "--text-column", "sentence",
                    "--batch-size", 8, "--iterations", 2)
    assert report["models"]["other"]["pruning"] == "dense" and report["results"][0]["comparison"]["speedup"] > 0
