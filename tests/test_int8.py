"""INT8 exports on real graphs (``exporters.int8``): ONNX Runtime static (QDQ) and dynamic quantization and OpenVINO
NNCF, each gated on the task metric against the fp32 torch model (the metric recomputed here from the labels);
a graph outside its gate fails with one line and writes nothing.

Subjects as in ``tests/test_runtimes.py``: the pretrained MiniLM and a small random RoBERTa, both with threshold
specs that drop tokens. Validation sentences: SST-2 dev rows (real text); calibration: SST-2 train rows.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from ltp_deploy.artifact import read_metadata
from ltp_deploy.data import encode, load_examples
from ltp_deploy.errors import LtpDeployError
from ltp_deploy.exporters.int8 import KINDS, Int8Options, fp32_scope, label_projections, scope_trials
from ltp_deploy.exporters.onnx import ExportValidationError, export_onnx
from ltp_deploy.exporters.openvino import BATCHED_BUCKETS, export_openvino
from ltp_deploy.exporters.validate import INT8_MAX_METRIC_DROP, OutcomeReport
from ltp_deploy.encoder_config import EncoderConfig
from ltp_deploy.runtimes import open_runtime
from ltp_deploy.spec import PruningSpec

from helpers import subject_for
from helpers import run_main as run_cli

VALIDATION_ROWS = 120
CALIBRATION_ROWS = 64


@pytest.fixture(scope="module")
def minilm(tmp_path_factory, minilm_dir, make_roberta):
    return subject_for("minilm", tmp_path_factory, minilm_dir, make_roberta)


@pytest.fixture(scope="module")
def sentences(glue):
    return load_examples(glue / "SST-2" / "dev.tsv", "sst2").take(VALIDATION_ROWS)


@pytest.fixture(scope="module")
def calibration(glue):
    return load_examples(glue / "SST-2" / "train.tsv", "sst2", "train").subset(CALIBRATION_ROWS, seed=0)


def leftovers(folder):
    return [p.name for p in folder.iterdir() if ".partial-" in p.name]


def _outcomes_hold(meta, subject, graph, sentences):
    """The export's own verdict, and the same outcomes measured again here: accuracy of the INT8 graph and of the
    fp32 torch model from the labels, with sklearn-free arithmetic (counts of correct answers)."""
    v = meta["validation"]
    assert v["rule"] == "int8-outcomes" and v["passed"] and v["sentences"] == len(sentences)
    assert v["metric"] == "accuracy" and v["max_metric_drop"] == INT8_MAX_METRIC_DROP
    assert len(v["kept_agreement"]) == subject.ckpt.config.num_layers
    runtime = open_runtime(graph)
    assert runtime.weights == "int8"
    correct = {"int8": 0, "fp32": 0}
    for start in range(0, len(sentences), 32):
        rows = list(range(start, min(start + 32, len(sentences))))
        batch = encode(subject.tokenizer, sentences, subject.ckpt.config.max_length, indices=rows)
        labels = np.asarray(sentences.labels)[rows]
        correct["int8"] += int((runtime.run(batch)[0].argmax(-1) == labels).sum())
        correct["fp32"] += int((subject.expected(batch)[0].argmax(-1) == labels).sum())
    assert correct["fp32"] / len(sentences) == pytest.approx(v["metric_fp32"])
    assert correct["int8"] / len(sentences) == pytest.approx(v["metric_int8"])
    assert 100 * (correct["fp32"] - correct["int8"]) / len(sentences) <= INT8_MAX_METRIC_DROP
    batch = subject.batch(list(range(8)))
    logits, kept = runtime.run(batch)
    want_logits, want_kept = subject.expected(batch)
    assert np.abs(logits - want_logits).max() > 0, "INT8 logits should move"
    assert kept.shape == want_kept.shape


def _trials_recorded(q, spec):
    """Every scope tried is in the metadata, in order, and the graph is the first that passed."""
    tried = [t["scope"] for t in q["trials"]]
    assert tried == list(scope_trials("auto", spec))[:len(tried)] and q["requested_scope"] == "auto"
    assert [t["passed"] for t in q["trials"]] == [False] * (len(tried) - 1) + [True]
    assert q["scope"] == tried[-1]


@pytest.mark.slow
def test_onnx_int8_is_static_and_quantizes_what_passes(subject, sentences, calibration, tmp_path):
    import onnx

    result = export_onnx(subject.ckpt, tmp_path / "int8", precision="int8", examples=sentences,
                         int8=Int8Options(calibration=calibration, calibration_note={"split": "train", "seed": 0}))
    meta = read_metadata(result.folder)
    assert meta["precision"] == "int8"
    q = meta["quantization"]
    _trials_recorded(q, subject.ckpt.spec)
    pruning = [i for i, t in enumerate(subject.ckpt.spec.thresholds) if t > 0]
    prefix = [f"layer {i} {k}" for i in range(pruning[0]) for k in KINDS]
    kept_fp32 = {"all": [], "prefix": prefix, "decisions": prefix + [f"layer {i} qkv" for i in pruning]}[q["scope"]]
    assert [f for f in q["fp32"][1:] if f != "head"] == kept_fp32
    assert "NNCF" in q["scheme"] and "onnxruntime" in q["scheme"] and q["calibration"]["rows"] == CALIBRATION_ROWS
    layers = subject.ckpt.config.num_layers
    assert q["quantized_matmuls"] == 4 * layers - len(kept_fp32)
    for graph in (result.graph, result.folder / "model-b1.onnx"):
        nodes = onnx.load(str(graph)).graph.node
        # QDQ: a quantized projection reads its weight through a DequantizeLinear; the attention core (QK^T, PV)
        # reads fp32 activations
        producers = {o: n for n in nodes for o in n.output}
        matmuls = [n for n in nodes if n.op_type == "MatMul"]
        quantized = [n for n in matmuls if producers.get(n.input[1]) is not None
                     and producers[n.input[1]].op_type == "DequantizeLinear"]
        assert len(quantized) == q["quantized_matmuls"]
        core = [n for n in matmuls if n.input[1] in producers and producers[n.input[1]].op_type != "DequantizeLinear"]
        assert core and not any(producers[n.input[0]].op_type == "DequantizeLinear" for n in core)
    _outcomes_hold(meta, subject, result.graph, sentences)


@pytest.mark.slow
def test_onnx_dynamic_int8_needs_no_calibration(subject, sentences, tmp_path):
    import onnx

    result = export_onnx(subject.ckpt, tmp_path / "int8", precision="int8", examples=sentences,
                         int8=Int8Options(activations="dynamic"), batch1_graph=False)
    q = read_metadata(result.folder)["quantization"]
    assert q["calibration"] is None and "dynamic" in q["scheme"]
    ops = [n.op_type for n in onnx.load(str(result.graph)).graph.node]
    assert ops.count("MatMulInteger") == q["quantized_matmuls"]
    _outcomes_hold(read_metadata(result.folder), subject, result.graph, sentences)


@pytest.mark.slow
def test_openvino_int8_is_calibrated_on_training_sentences(subject, sentences, calibration, tmp_path):
    import openvino as ov

    result = export_openvino(subject.ckpt, tmp_path / "ov-int8", precision="int8", examples=sentences,
                             int8=Int8Options(calibration=calibration,
                                              calibration_note={"split": "train", "seed": 0}))
    meta = read_metadata(result.folder)
    q = meta["quantization"]
    assert meta["precision"] == "int8" and "NNCF" in q["scheme"]
    assert meta["shape_buckets"] == BATCHED_BUCKETS.describe()  # the batched graph rounds its sizes up
    assert q["calibration"] == {"source": calibration.source, "rows": CALIBRATION_ROWS, "split": "train", "seed": 0}
    _trials_recorded(q, subject.ckpt.spec)
    model = ov.Core().read_model(str(result.graph))
    assert any(op.get_type_name() == "FakeQuantize" for op in model.get_ops())
    _outcomes_hold(meta, subject, result.graph, sentences)


@pytest.mark.parametrize("target", ["onnx", "openvino"])
@pytest.mark.slow
def test_outcomes_out_of_bounds_fail_and_write_nothing(minilm, sentences, calibration, tmp_path, target):
    """The gate on a real INT8 graph: a bound no INT8 graph meets (no logit may move by 1e-3) fails the export with
    one sentence naming both scopes tried, and writes nothing."""
    out = tmp_path / "strict"
    export = export_openvino if target == "openvino" else export_onnx
    with pytest.raises(ExportValidationError, match=r"max \|logit diff\| .* above 0.001") as info:
        export(minilm.ckpt, out, precision="int8", examples=sentences,
               int8=Int8Options(calibration=calibration, atol=1e-3))
    message = str(info.value)
    assert len(message.splitlines()) == 1 and "nothing was written" in message
    assert f"tried --int8-scope {', '.join(scope_trials('auto', minilm.ckpt.spec))})" in message
    assert not out.exists() and not leftovers(tmp_path)


def test_outcome_rule():
    def report(fp32, int8, drop=0.5, agreement=1.0, worst=0.4, **gates):
        return OutcomeReport("onnxruntime-cpu", 32, 200, "accuracy", fp32, int8, drop, agreement, worst, [1.0, 0.9],
                             **gates)

    assert report(0.90, 0.895).passed and report(0.90, 0.92).passed  # 0.5 points lost; INT8 better
    r = report(0.90, 0.894)
    assert not r.passed and r.failures() == ["accuracy 89.40 is 0.60 points below fp32's 90.00 (at most 0.5 allowed)"]
    r = report(0.90, 0.90, agreement=0.985, min_agreement=0.99)
    assert r.failures() == ["predictions agree on 98.50% of 200 sentences, below 99%"]
    assert report(0.90, 0.90, agreement=0.985).passed, "agreement is recorded, gated only when asked"
    assert report(0.90, 0.90, worst=2.0, atol=1.5).failures() == ["max |logit diff| 2.00 above 1.5"]
    assert report(0.90, 0.90, worst=float("nan")).failures() == ["NaN/inf logits"]
    unlabelled = OutcomeReport("openvino-cpu", 32, 200, None, None, None, None, 0.995, 0.3, [1.0], 0.99)
    assert unlabelled.passed and unlabelled.metric_drop is None


def test_scope_and_labels():
    cfg = EncoderConfig(arch="bert", vocab_size=100, hidden_size=8, num_layers=3, num_heads=2, intermediate_size=16,
                        max_position_embeddings=32, type_vocab_size=2, layer_norm_eps=1e-12, pad_token_id=0,
                        num_labels=2)
    spec = PruningSpec.threshold([0.0, 0.0, 0.01])
    assert fp32_scope(cfg, spec) == {(None, "head"), *((l, k) for l in range(2) for k in KINDS), (2, "qkv")}
    spec = PruningSpec.threshold([0.0, 0.01, 0.0])
    assert fp32_scope(cfg, spec) == {(None, "head"), *((0, k) for k in KINDS), (1, "qkv")}
    assert fp32_scope(cfg, None) == fp32_scope(cfg, spec, "all") == {(None, "head")}
    idle = dataclasses.replace(cfg, num_layers=5)
    spec = PruningSpec.threshold([0.0, 0.01, 0.0, 0.02, 0.0])  # layer 2 idle between pruning layers 1 and 3
    assert fp32_scope(idle, spec) == {(None, "head"), *((0, k) for k in KINDS), (1, "qkv"), (2, "qkv"), (3, "qkv")}
    assert fp32_scope(idle, spec, "prefix") == {(None, "head"), *((0, k) for k in KINDS)}
    assert scope_trials("auto", spec) == ("all", "prefix", "decisions") and scope_trials("prefix", spec) == ("prefix",)
    assert scope_trials("auto", PruningSpec.threshold([0.01, 0.0, 0.0])) == ("all", "decisions"), "no prefix"
    assert scope_trials("auto", None) == scope_trials("decisions", None) == ("all",), "dense: nothing to protect"
    with pytest.raises(LtpDeployError, match="Unknown --int8-scope 'some': use auto, all, prefix, decisions"):
        scope_trials("some", spec)
    shapes = [(8, 24), (8, 8), (8, 16), (16, 8)] * 3 + [(8, 8), (8, 2)]
    labelled = label_projections([(f"m{i}", *s) for i, s in enumerate(shapes)], cfg)
    assert [(p.layer, p.kind) for p in labelled[:5]] == [(0, "qkv"), (0, "out"), (0, "ffn_in"), (0, "ffn_out"),
                                                        (1, "qkv")]
    assert [p.kind for p in labelled[-2:]] == ["head", "head"]
    with pytest.raises(LtpDeployError, match="does not have the encoder's layout"):
        label_projections([(f"m{i}", *s) for i, s in enumerate(shapes[1:])], cfg)
    # The OpenVINO graph's form: Q, K and V as three D x D GEMMs where a layer's attention is fused (layers 0 and
    # 2, a learned scorer's D x 1 after layer 0's output), one D x 3D GEMM where a score reads it (layer 1).
    apart = [(8, 8)] * 4 + [(8, 16), (16, 8)]
    mixed = apart[:4] + [(8, 1)] + apart[4:] + [(8, 24), (8, 8), (8, 16), (16, 8)] + apart + [(8, 8), (8, 2)]
    labelled = label_projections([(f"m{i}", *s) for i, s in enumerate(mixed)], cfg)
    assert [(p.layer, p.kind) for p in labelled] == [
        (0, "qkv"), (0, "qkv"), (0, "qkv"), (0, "out"), (0, "scorer"), (0, "ffn_in"), (0, "ffn_out"),
        (1, "qkv"), (1, "out"), (1, "ffn_in"), (1, "ffn_out"),
        (2, "qkv"), (2, "qkv"), (2, "qkv"), (2, "out"), (2, "ffn_in"), (2, "ffn_out"), (None, "head"), (None, "head")]
    with pytest.raises(LtpDeployError, match="layer 2's qkv projection should be 8x8"):
        label_projections([(f"m{i}", *s) for i, s in enumerate(mixed[:12] + [(8, 24)] + mixed[13:])], cfg)


@pytest.mark.parametrize("args, fragment", [
    (["--target", "onnx", "--precision", "int8", "--int8-activations", "dynamic"], "validated on real sentences"),
    (["--target", "openvino", "--precision", "int8", "--data", "DEV", "--text-column", "sentence"],
     "calibrated on training sentences"),
    (["--target", "onnx", "--precision", "int8", "--data", "DEV", "--text-column", "sentence"],
     "Static INT8 (OpenVINO's, and ONNX Runtime's unless --int8-activations dynamic) is calibrated on training"),
    (["--target", "onnx", "--precision", "int8", "--task", "sst2", "--int8-activations", "dynamic",
      "--calibration-data", "DEV"], "--calibration-data is for static INT8"),
    (["--target", "onnx", "--precision", "int8", "--int8-activations", "perhaps", "--task", "sst2"],
     "Unknown --int8-activations 'perhaps': use dynamic or static"),
    (["--target", "onnx", "--precision", "int8", "--int8-scope", "most", "--task", "sst2"],
     "Unknown --int8-scope 'most': use auto, all, prefix, decisions"),
    (["--target", "onnx", "--precision", "int8", "--max-metric-drop", "-1", "--task", "sst2"],
     "--max-metric-drop must be a finite number of points >= 0"),
    (["--target", "onnx", "--precision", "int8", "--min-agreement", "99", "--task", "sst2"],
     "--min-agreement 99.0 is a fraction in (0, 1]"),
    (["--target", "openvino", "--precision", "int8", "--int8-activations", "static", "--task", "sst2"],
     "--int8-activations applies to --precision int8 --target onnx (OpenVINO's INT8 is always calibrated)"),
    (["--target", "onnx", "--int8-activations", "static"], "--int8-activations applies to --precision int8"),
    (["--target", "onnx", "--max-metric-drop", "1"], "--max-metric-drop applies to --precision int8"),
    (["--target", "onnx", "--precision", "int8", "--int8-activations", "dynamic", "--data", "DEV_UNLABELLED",
      "--text-column", "sentence"], "gated on its task metric, and these sentences have no labels"),
])
@pytest.mark.slow
def test_cli_refuses_int8_without_its_data(roberta, glue, tmp_path, monkeypatch, capsys, args, fragment):
    unlabelled = tmp_path / "unlabelled.tsv"
    unlabelled.write_text("sentence\n" + "".join(f"{t}\n" for t in ["a fine film .", "dull ."] * 20))
    args = [str(glue / "SST-2" / "dev.tsv") if a == "DEV" else str(unlabelled) if a == "DEV_UNLABELLED" else a
            for a in args]
    code, _, err = run_cli(monkeypatch, capsys, "export", roberta.folder, *args, "-o", tmp_path / "x")
    assert code == 2 and fragment in err and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "x").exists()


BATCH_INVARIANCE_ROWS, BATCH = 200, 32


def _alone_and_in_batches(runtime, tokenizer, examples) -> tuple[list, list]:
    """Each sentence of ``examples`` run alone, and the same sentences run in consecutive batches of 32."""
    alone = [runtime.run(encode(tokenizer, examples, 128, indices=[i])) for i in range(len(examples))]
    batched = []
    for start in range(0, len(examples), BATCH):
        rows = list(range(start, min(start + BATCH, len(examples))))
        logits, kept = runtime.run(encode(tokenizer, examples, 128, indices=rows))
        batched += [(logits[j:j + 1], kept[j:j + 1]) for j in range(len(rows))]
    return alone, batched


@pytest.mark.parametrize("target", ["onnx", "openvino"])
@pytest.mark.slow
def test_static_int8_answers_do_not_depend_on_the_batch(minilm, glue, sentences, calibration, tmp_path, target):
    """With calibrated (static) activation scales, 200 dev sentences get the same predictions and kept counts
    alone and inside batches of 32; on ONNX Runtime the very same logits. (OpenVINO's logits still move by up to
    ~2e-3 with the batch shape: its CPU kernels differ by shape.) Dynamic INT8 scales each batch by its own range:
    its logits move with the batchmates (measured alongside, the contrast that makes this test able to fail)."""
    dev = load_examples(glue / "SST-2" / "dev.tsv", "sst2").take(BATCH_INVARIANCE_ROWS)
    kwargs = {"precision": "int8", "examples": sentences, "batch1_graph": False,
              "int8": Int8Options(calibration=calibration, max_metric_drop=100.0)}  # the default scheme; the batch,
    # not the gate, is under test
    if target == "openvino":
        graph = export_openvino(minilm.ckpt, tmp_path / "int8", **kwargs).graph
    else:
        graph = export_onnx(minilm.ckpt, tmp_path / "int8", **kwargs).graph
        meta = read_metadata(graph.parent)["quantization"]
        assert "NNCF" in meta["scheme"] and meta["calibration"]["rows"] == len(calibration)
    alone, batched = _alone_and_in_batches(open_runtime(graph), minilm.tokenizer, dev)
    for i, ((a_logits, a_kept), (b_logits, b_kept)) in enumerate(zip(alone, batched)):
        assert np.array_equal(a_kept, b_kept), f"sentence {i}: kept {a_kept} alone, {b_kept} in its batch"
        assert np.argmax(a_logits) == np.argmax(b_logits), f"sentence {i}: logits {a_logits} vs {b_logits}"
    if target == "onnx":  # integer kernels and fixed scales: bit for bit
        assert max(np.abs(a[0] - b[0]).max() for a, b in zip(alone, batched)) == 0
    if target == "onnx":
        dynamic = export_onnx(minilm.ckpt, tmp_path / "dyn", precision="int8", examples=sentences,
                              batch1_graph=False, int8=Int8Options(activations="dynamic")).graph
        alone, batched = _alone_and_in_batches(open_runtime(dynamic), minilm.tokenizer, dev)
        assert max(np.abs(a[0] - b[0]).max() for a, b in zip(alone, batched)) > 1e-5


@pytest.mark.slow
def test_cli_int8_export_check_and_inspect(minilm, glue, tmp_path, monkeypatch, capsys):
    out = tmp_path / "cli-int8"
    code, stdout, err = run_cli(monkeypatch, capsys, "export", minilm.folder, "--precision", "int8", "--data",
                                glue / "SST-2" / "dev.tsv", "--task", "sst2", "--max-examples", 100, "-o", out)
    assert code == 0, err
    assert "int8" in stdout and "predictions agree on" in stdout and "100 real sentences" in stdout
    code, stdout, err = run_cli(monkeypatch, capsys, "inspect", out)
    assert code == 0 and "int8" in stdout
    report = tmp_path / "check.json"
    code, stdout, err = run_cli(monkeypatch, capsys, "check", out, "--task", "sst2", "--reference", minilm.folder,
                                "--max-examples", 64, "--json", report)
    import json

    r = json.loads(report.read_text())
    assert r["model"]["weights"] == "int8" and r["model"]["quantization"]["fp32"]
    assert [g["name"] for g in r["gates"]] == [], "INT8: the decision gate is off unless asked for"
    assert r["agreement"]["predictions"] >= 0.9 and code == 0
