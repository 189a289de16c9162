"""Tests of ``ltp-deploy check``, the CI gate: real SST-2 dev sentences, real ONNX/OpenVINO exports of a real
MiniLM whose head was fitted here, and graphs that are wrong in the ways a CI gate must catch.

The model: the pretrained MiniLM with a threshold spec; only its classification head is fitted (logistic
regression on the frozen pooled CLS features that the pruned model feeds its head, 1000 SST-2 training
sentences), so accuracy means something without training the encoder. Expected figures are never hard-coded:
the tests check the gates against the figures the run measured and against an independent computation.
"""

from __future__ import annotations

import json
import shutil
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import numpy as np
import pytest
import torch

from ltp_deploy.artifact import METADATA_FILE
from ltp_deploy.check import CHECK_SCHEMA, GITHUB_ACTIONS_EXAMPLE, SCHEMA_VERSION
from ltp_deploy.cli import main
from ltp_deploy.data import encode
from ltp_deploy.spec import PruningSpec
from helpers import run_main as cli
from helpers import run_process as cli_process

SPEC = PruningSpec.threshold([0.0, 0.002, 0.003, 0.004, 0.005, 0.006])
ALTERED = PruningSpec.threshold([0.0, 0.003, 0.0045, 0.006, 0.0075, 0.009])  # the same layers, 1.5x thresholds
INPUTS = ("input_ids", "attention_mask", "token_type_ids")
TRAIN_SENTENCES = 1000
FAST = 256  # examples for the checks that must fail (the passing check runs all 872)


# ------------------------------------------------------------------------------------------------ fixtures

def _fit_head(ckpt, tokenizer, examples) -> None:
    """Fit ``ckpt.model.classifier`` by L2-regularised logistic regression on the pruned model's frozen features
    (the classifier's own input: dropout(pooler(CLS)) in eval mode)."""
    model = ckpt.model.eval()
    captured = []
    hook = model.classifier.register_forward_hook(lambda _m, args, _out: captured.append(args[0].detach().clone()))
    try:
        with torch.no_grad():
            for start in range(0, len(examples), 64):
                idx = list(range(start, min(start + 64, len(examples))))
                batch = encode(tokenizer, examples, 64, indices=idx)
                model(*(torch.from_numpy(batch[k]) for k in INPUTS))
    finally:
        hook.remove()
    x, y = torch.cat(captured), torch.from_numpy(examples.labels)  # (N, D), (N,)
    mean, std = x.mean(0), x.std(0) + 1e-6
    z = (x - mean) / std
    torch.manual_seed(0)
    linear = torch.nn.Linear(x.shape[1], model.config.num_labels)
    optimizer = torch.optim.LBFGS(linear.parameters(), max_iter=100)

    def closure():
        optimizer.zero_grad()
        loss = torch.nn.functional.cross_entropy(linear(z), y) + 1e-3 * linear.weight.pow(2).sum()
        loss.backward()
        return loss

    optimizer.step(closure)
    with torch.no_grad():  # fold the standardisation into the head
        weight = linear.weight / std
        model.classifier.weight.copy_(weight)
        model.classifier.bias.copy_(linear.bias - weight @ mean)


@pytest.fixture(scope="module")
def trained(minilm_dir, glue, tmp_path_factory) -> Path:
    """The MiniLM + ``SPEC`` with a fitted head, saved as a checkpoint folder (the reference of every check)."""
    from ltp_deploy.checkpoint import load_checkpoint, save_checkpoint
    from ltp_deploy.data import load_glue

    ckpt = load_checkpoint(minilm_dir, spec=SPEC)
    tokenizer = ckpt.tokenizer()
    _fit_head(ckpt, tokenizer, load_glue("sst2", "train", glue).subset(TRAIN_SENTENCES, seed=0))
    return save_checkpoint(ckpt.model, tmp_path_factory.mktemp("check-ckpt") / "sst2-minilm", ckpt.hf_config,
                           tokenizer=tokenizer)


@pytest.fixture(scope="module")
def exports(trained, tmp_path_factory) -> dict[str, Path]:
    """ONNX exports, each made once: ``good`` (the checkpoint as it is), ``altered`` (same weights, 1.5x
    thresholds) and ``other`` (another checkpoint: random head, sharper attention in every layer)."""
    from ltp_deploy.checkpoint import load_checkpoint, save_checkpoint
    from ltp_deploy.exporters.onnx import export_onnx

    out = tmp_path_factory.mktemp("check-exports")
    export_onnx(load_checkpoint(trained), out / "good")
    export_onnx(load_checkpoint(trained, spec=ALTERED), out / "altered")
    other = load_checkpoint(trained)
    generator = torch.Generator().manual_seed(1)
    with torch.no_grad():
        for name, p in other.model.named_parameters():
            if name.endswith("attention.self.query.weight"):
                p.mul_(1.1)
        other.model.classifier.weight.copy_(torch.randn(other.model.classifier.weight.shape, generator=generator))
        other.model.classifier.bias.zero_()
    other_ckpt = save_checkpoint(other.model, out / "other-ckpt", other.hf_config, tokenizer=other.tokenizer())
    export_onnx(load_checkpoint(other_ckpt), out / "other")
    # Graphs that do not do what their metadata says (a broken exporter or runtime, which check exists to catch):
    # the altered and other graphs under the good export's metadata, which names the trained checkpoint's weights
    # and spec, so that check cannot refuse them up front and must find them out by running them.
    for name in ("altered", "other"):
        shutil.copytree(out / name, out / f"{name}-claims-good")
        shutil.copyfile(out / "good" / METADATA_FILE, out / f"{name}-claims-good" / METADATA_FILE)
    return {"good": out / "good", "altered": out / "altered-claims-good", "other": out / "other-claims-good",
            "altered-honest": out / "altered", "other-honest": out / "other"}


@pytest.fixture(scope="module")
def good_report(exports, trained, tmp_path_factory):
    """``check`` of the good export with --reference and the default gates, plus --max-drop 0.01: the JSON,
    the JUnit file and what was printed."""
    folder = tmp_path_factory.mktemp("check-good")
    mp = pytest.MonkeyPatch()
    try:
        mp.setenv("CI", "true")
        mp.setattr(sys, "argv", ["ltp-deploy", "check", str(exports["good"]), "--task", "sst2", "--reference",
                                 str(trained), "--max-drop", "0.01", "--json", str(folder / "check.json"),
                                 "--junit", str(folder / "check.xml")])
        code = 0
        try:
            main()
        except SystemExit as e:
            code = e.code
    finally:
        mp.undo()
    return code, json.loads((folder / "check.json").read_text()), folder


# ------------------------------------------------------------------------------------------------ schema helpers

def _schema_key(path: str) -> str:
    """results.graph.value -> results.*.value (the roles share one description)."""
    parts = path.split(".")
    if len(parts) > 2 and parts[0] == "results" and parts[1] in ("graph", "reference", "dense"):
        parts[1] = "*"
    return ".".join(parts)


def _walk(value, path=""):
    if isinstance(value, dict):
        for k, v in value.items():
            child = f"{path}.{k}" if path else k
            key = _schema_key(child)
            yield key, v
            if not CHECK_SCHEMA.get(key, "").startswith("map"):
                yield from _walk(v, child)
    elif isinstance(value, list) and value and isinstance(value[0], dict):
        for item in value:
            yield from _walk(item, f"{path}[]")


_TYPES = {"int": int, "float": float, "str": str, "bool": bool, "object": dict, "map": dict}


def _type_ok(value, declared: str) -> bool:
    for t in declared.split("|"):
        if t == "null" and value is None:
            return True
        if t.startswith("list"):
            inner = t[5:-1] if t.startswith("list[") else None
            if isinstance(value, list) and (inner is None or all(v is None or _type_ok(v, inner) for v in value)):
                return True
        elif t in _TYPES and isinstance(value, _TYPES[t]) and not (t in ("int", "float") and isinstance(value, bool)):
            return True
    return False


def check_schema(report: dict, complete: bool) -> None:
    seen = set()
    for key, value in _walk(report):
        assert key in CHECK_SCHEMA, f"field {key} is not documented in CHECK_SCHEMA"
        declared = CHECK_SCHEMA[key].split(":", 1)[0]
        assert _type_ok(value, declared), f"{key} = {value!r} is not {declared}"
        seen.add(key)
    if complete:
        assert set(CHECK_SCHEMA) - seen == set(), "documented fields missing from the report"
    assert report["schema_version"] == SCHEMA_VERSION and report["kind"] == "ltp-deploy-check"


def _junit(path: Path) -> tuple[ET.Element, dict[str, ET.Element]]:
    root = ET.parse(path).getroot()
    suites = root.findall("testsuite") if root.tag == "testsuites" else [root]
    assert len(suites) == 1 and suites[0].get("name") == "ltp-deploy check"
    return suites[0], {case.get("name"): case for case in suites[0].findall("testcase")}


def _independent_graph_run(export: Path, glue: Path, limit: int | None = None):
    """Accuracy, kept counts and real lengths of the graph on SST-2 dev (its first ``limit`` sentences), computed here
    without ltp_deploy.check."""
    from ltp_deploy.tokenizer import load_tokenizer
    from ltp_deploy.data import load_glue
    from ltp_deploy.runtimes import open_runtime

    dev = load_glue("sst2", "dev", glue)
    if limit is not None:
        dev = dev.select(range(limit))
    tokenizer, runtime = load_tokenizer(export), open_runtime(export)
    preds, kept, lengths = [], [], []
    for start in range(0, len(dev), 64):
        idx = list(range(start, min(start + 64, len(dev))))
        batch = encode(tokenizer, dev, 128, indices=idx)
        logits, counts = runtime.run(batch)
        preds.append(logits.argmax(1))
        kept.append(counts)
        lengths.append(batch["attention_mask"].sum(1))
    preds = np.concatenate(preds)
    return float(np.mean(preds == dev.labels)), np.concatenate(kept), np.concatenate(lengths), dev.labels


# ------------------------------------------------------------------------------------------------ passing

@pytest.mark.slow
def test_good_export_passes_with_reference(good_report, exports, glue):
    from ltp_deploy.flops import flops_reduction

    code, report, _ = good_report
    g, r, d, a = (report["results"]["graph"], report["results"]["reference"], report["results"]["dense"],
                  report["agreement"])
    print(f"\nSST-2 dev: graph {g['metrics']}, reference {r['metrics']}, dense {d['metrics']}; agreement "
          f"{a['predictions']}, decision mismatch {a['decision_mismatch_rate']} ({a['mismatched']}/{a['compared']}),"
          f" per layer {a['kept_counts_equal_per_layer']}, CLS pruned by the reference {a['reference_cls_pruned']};"
          f" FLOPs graph x{g['flops_reduction']} reference x{r['flops_reduction']}; {report['elapsed_s']} s")
    assert code == 0 and report["passed"]
    assert report["data"]["examples"] == 872 and report["data"]["max_length"] == 64  # whole dev split, SST-2 length
    assert [x["name"] for x in report["gates"]] == ["max-drop", "max-decision-mismatch"]
    assert report["gates"][1]["bound"] == 0.01  # the default decision gate with --reference
    assert all(x["passed"] and x["message"].startswith("PASS ") for x in report["gates"])
    accuracy, kept, lengths, labels = _independent_graph_run(exports["good"], glue)
    # the fitted head makes accuracy meaningful: clearly above the majority-class rate
    majority = max(np.mean(labels == 0), np.mean(labels == 1))
    assert r["value"] > majority + 0.03
    # the figures agree with each other and with an independent run of the graph
    assert abs(g["value"] - accuracy) <= 2 / 872
    assert g["flops_reduction"] == pytest.approx(flops_reduction(read_config(exports["good"]), lengths, kept), rel=1e-3)
    assert g["mean_kept_per_layer"] == pytest.approx(kept.mean(0).tolist(), abs=0.01)
    assert g["flops_reduction"] > 1.0 and d["flops_reduction"] == 1.0
    assert report["drop"]["vs_reference"] == pytest.approx(r["value"] - g["value"], abs=1e-6)
    assert report["drop"]["vs_dense"] == pytest.approx(d["value"] - g["value"], abs=1e-6)
    assert a["compared"] + a["reference_cls_pruned"] == 872
    assert a["mismatched"] == round(a["decision_mismatch_rate"] * a["compared"])
    assert a["kept_counts_equal_per_layer"][0] == 1.0  # threshold 0 in layer 0: nothing dropped by either
    assert a["max_abs_logit_diff"] is not None and a["max_abs_logit_diff"] < 1e-3


def read_config(export: Path) -> dict:
    from ltp_deploy.artifact import read_metadata

    return read_metadata(export)["config"]


@pytest.mark.slow
def test_json_schema_and_junit_of_a_pass(good_report):
    _, report, folder = good_report
    check_schema(report, complete=True)
    suite, cases = _junit(folder / "check.xml")
    assert list(cases) == ["max-drop", "max-decision-mismatch"]
    assert suite.get("tests") == "2" and suite.get("failures") == "0"
    assert all(case.find("failure") is None for case in cases.values())
    props = {p.get("name"): p.get("value") for p in suite.iter("property")}
    assert props["graph.accuracy"] == f"{report['results']['graph']['value']:.4f}"
    assert not list(folder.glob(".*"))  # atomic writes leave no temporary files


@pytest.mark.slow
def test_summary_lines_are_plain_and_concise(good_report, exports, trained, monkeypatch, capsys):
    code, out, err = cli(monkeypatch, capsys, "check", exports["good"], "--task", "sst2", "--reference", trained,
                         "--max-examples", 64)
    assert code == 0 and err == ""
    lines = out.strip().splitlines()
    assert lines[0].startswith(f"check {exports['good']} (onnxruntime-cpu, fp32)") and "64 examples" in lines[0]
    assert any(line.startswith("graph") and "accuracy" in line for line in lines)
    assert lines[-1].startswith("PASS max-decision-mismatch: decision mismatch rate")
    assert len(lines) <= 8 and "\x1b[" not in out  # no colours or tables when CI=true


@pytest.mark.parametrize("graph", ["pruned", "openvino"])
def test_small_export_against_its_checkpoint(tiny, glue, graph, tmp_path, monkeypatch, capsys):
    """The fast tier's check: a small BERT's ONNX and OpenVINO exports against their own checkpoint, on the first
    128 SST-2 dev sentences; the report's figures against an independent run of the graph."""
    from ltp_deploy.flops import flops_reduction

    monkeypatch.setenv("GLUE_DIR", str(glue))
    report_file, junit = tmp_path / "check.json", tmp_path / "check.xml"
    code, out, err = cli(monkeypatch, capsys, "check", tiny[graph], "--task", "sst2", "--reference", tiny["hf"],
                         "--max-examples", 128, "--json", report_file, "--junit", junit)
    report = json.loads(report_file.read_text())
    check_schema(report, complete=True)
    assert code == (0 if report["passed"] else 1), err
    g, a = report["results"]["graph"], report["agreement"]
    accuracy, kept, lengths, _ = _independent_graph_run(tiny[graph], glue, limit=128)
    assert abs(g["value"] - accuracy) <= 2 / 128
    assert g["flops_reduction"] == pytest.approx(flops_reduction(read_config(tiny[graph]), lengths, kept), rel=1e-3)
    assert a["compared"] + a["reference_cls_pruned"] == 128 and a["kept_counts_equal_per_layer"][0] == 1.0
    assert a["max_abs_logit_diff"] is not None and a["max_abs_logit_diff"] < 1e-3
    suite, cases = _junit(junit)
    assert list(cases) == [x["name"] for x in report["gates"]] and suite.get("tests") == str(len(cases))


# ------------------------------------------------------------------------------------------------ failing

def _fail_lines(err: str) -> list[str]:
    lines = err.strip().splitlines()
    assert lines and all(line.startswith("FAIL ") for line in lines), err
    return lines


@pytest.mark.slow
def test_graph_from_another_checkpoint_fails(exports, trained, tmp_path, monkeypatch, capsys):
    report_file = tmp_path / "check.json"
    code, _, err = cli(monkeypatch, capsys, "check", exports["other"], "--task", "sst2", "--reference", trained,
                       "--max-drop", "0.01", "--max-examples", FAST, "--json", report_file)
    report = json.loads(report_file.read_text())
    failed = {g["name"]: g for g in report["gates"] if not g["passed"]}
    print(f"\nother checkpoint: graph {report['results']['graph']['value']}, reference "
          f"{report['results']['reference']['value']}, mismatch {report['agreement']['decision_mismatch_rate']}, "
          f"agreement {report['agreement']['predictions']}")
    assert code == 1 and not report["passed"]
    assert set(failed) == {"max-drop", "max-decision-mismatch"}
    lines = _fail_lines(err)
    assert lines == [g["message"] for g in report["gates"] if not g["passed"]]  # one line per failed gate
    drop = failed["max-drop"]
    assert drop["value"] > 0.01
    assert lines[0].startswith(f"FAIL max-drop: accuracy drop {drop['value']:.4f} > 0.0100")
    mismatch = failed["max-decision-mismatch"]
    assert lines[1].startswith(f"FAIL max-decision-mismatch: decision mismatch rate {mismatch['value']:.4f} > 0.0100")
    assert report["agreement"]["predictions"] < 1.0


@pytest.mark.slow
def test_altered_thresholds_fail_the_decision_gate(exports, trained, tmp_path, monkeypatch, capsys):
    report_file, junit = tmp_path / "check.json", tmp_path / "check.xml"
    code, _, err = cli(monkeypatch, capsys, "check", exports["altered"], "--task", "sst2", "--reference", trained,
                       "--max-examples", FAST, "--json", report_file, "--junit", junit)
    report = json.loads(report_file.read_text())
    a = report["agreement"]
    print(f"\naltered thresholds: mismatch {a['decision_mismatch_rate']} per layer {a['kept_counts_equal_per_layer']}"
          f", graph {report['results']['graph']['value']} reference {report['results']['reference']['value']}")
    assert code == 1
    (line,) = _fail_lines(err)  # the only gate set: the default decision gate
    gate = report["gates"][0]
    assert gate["name"] == "max-decision-mismatch" and not gate["passed"] and gate["value"] > 0.01
    assert line == gate["message"]
    assert line.startswith(f"FAIL max-decision-mismatch: decision mismatch rate {gate['value']:.4f} > 0.0100")
    assert a["kept_counts_equal_per_layer"][0] == 1.0 and min(a["kept_counts_equal_per_layer"][1:]) < 1.0
    # higher thresholds drop more: the graph saves more FLOPs than the checkpoint's own rule
    assert report["results"]["graph"]["flops_reduction"] > report["results"]["reference"]["flops_reduction"]
    suite, cases = _junit(junit)
    assert list(cases) == ["max-decision-mismatch"] and suite.get("failures") == "1"
    failure = cases["max-decision-mismatch"].find("failure")
    assert failure is not None and failure.get("message") == line


@pytest.mark.slow
def test_min_metric_above_the_measured_metric_fails(exports, tmp_path):
    """In a fresh process, as CI runs it: exit code 1 and one FAIL line, also in the JUnit file."""
    report_file, junit = tmp_path / "check.json", tmp_path / "out" / "check.xml"
    result = cli_process("check", exports["good"], "--task", "sst2", "--min-metric", "0.999", "--json", report_file,
                         "--junit", junit)
    assert result.returncode == 1, result.stderr
    report = json.loads(report_file.read_text())
    check_schema(report, complete=False)
    assert report["reference"] is None and report["agreement"] is None and report["drop"] is None
    value = report["results"]["graph"]["value"]
    (line,) = _fail_lines(result.stderr)
    assert line == f"FAIL min-metric: accuracy {value:.4f} < 0.9990"
    _, cases = _junit(junit)
    assert cases["min-metric"].find("failure").get("message") == line


@pytest.mark.slow
def test_openvino_ir_runs_in_f32_and_passes(trained, glue, tmp_path, monkeypatch, capsys):
    pytest.importorskip("openvino")
    from ltp_deploy.checkpoint import load_checkpoint
    from ltp_deploy.exporters.openvino import export_openvino

    out = tmp_path / "ov"
    export_openvino(load_checkpoint(trained), out)
    report_file = tmp_path / "check.json"
    code, _, err = cli(monkeypatch, capsys, "check", out / "model.xml", "--task", "sst2", "--reference", trained,
                       "--max-examples", 256, "--json", report_file)
    report = json.loads(report_file.read_text())
    assert code == 0, err
    assert report["model"]["runtime"] == "openvino-cpu" and report["model"]["precision"] == "fp32"
    assert report["agreement"]["decision_mismatch_rate"] <= 0.01 and report["data"]["examples"] == 256


@pytest.mark.slow
def test_regression_task_and_an_unmeasurable_decision_gate(minilm_dir, glue, tmp_path, monkeypatch, capsys):
    """STS-B (sentence pairs, pearson/spearman) on a tiny regression BERT whose layer-1 threshold (0.5) is above
    any score a token can get: the masked rule prunes CLS in every sequence, so no decision can be compared and
    the decision gate fails as unmeasurable instead of passing vacuously."""
    from transformers import AutoTokenizer, BertConfig, BertForSequenceClassification

    from ltp_deploy.checkpoint import load_checkpoint
    from ltp_deploy.exporters.onnx import export_onnx

    torch.manual_seed(0)
    ckpt = tmp_path / "stsb-ckpt"
    BertForSequenceClassification(BertConfig(hidden_size=64, num_hidden_layers=4, num_attention_heads=4,
                                             intermediate_size=128, num_labels=1)).save_pretrained(str(ckpt))
    AutoTokenizer.from_pretrained(str(minilm_dir)).save_pretrained(str(ckpt))
    PruningSpec.threshold([0.0, 0.5, 0.0, 0.0]).save(ckpt)
    export_onnx(load_checkpoint(ckpt), tmp_path / "stsb-onnx")
    report_file = tmp_path / "check.json"
    code, _, err = cli(monkeypatch, capsys, "check", tmp_path / "stsb-onnx", "--task", "stsb", "--reference", ckpt,
                       "--max-examples", 64, "--json", report_file)
    report = json.loads(report_file.read_text())
    check_schema(report, complete=False)
    assert code == 1 and report["data"]["regression"] and report["settings"]["metric"] == "pearson"
    assert set(report["results"]["graph"]["metrics"]) == {"pearson", "spearman"}
    a = report["agreement"]
    assert a["predictions"] is None and a["reference_cls_pruned_rate"] == 1.0 and a["compared"] == 0
    assert a["decision_mismatch_rate"] is None and report["gates"][0]["value"] is None
    (line,) = _fail_lines(err)
    assert line.startswith("FAIL max-decision-mismatch: decision mismatch rate could not be measured")
    assert "64 with CLS pruned by the reference" in line and line.endswith("bound <= 0.0100")
    assert report["results"]["graph"]["mean_kept_per_layer"][-1] == 1.0  # the graph keeps CLS, only CLS


# ------------------------------------------------------------------------------------------------ bad input

@pytest.mark.parametrize("args, message", [
    (["{missing}", "--task", "sst2"], "does not exist"),
    (["{trained}", "--task", "sst2"], "is a checkpoint folder, not an exported graph"),
    (["{good}"], "No evaluation data given"),
    (["{good}", "--task", "sst7"], "Unknown task"),
    (["{good}", "--task", "sst2", "--max-drop", "0.01"], "add --reference CKPT"),
    (["{good}", "--task", "sst2", "--max-decision-mismatch", "0.05"], "add --reference CKPT"),
    (["{good}", "--task", "sst2", "--reference", "{trained}", "--max-drop", "1.5"], "0.01 = 1 point"),
    (["{good}", "--data", "{missing}.tsv", "--text-column", "sentence"], "not found"),
    (["{good}", "--task", "stsb"], "is a regression task"),
    (["{good}", "--task", "sst2", "--metric", "pearson"], "pass --metric accuracy"),
    (["{good}", "--task", "sst2", "--reference", "{good}"], "is an export folder, not a checkpoint"),
    (["{good}", "--task", "sst2", "--backend", "torch"], "cannot run an exported graph"),
    (["{other_honest}", "--task", "sst2", "--reference", "{trained}"], "holds other weights than"),
    (["{altered_honest}", "--task", "sst2", "--reference", "{trained}"], "was exported with the spec absolute_thr"),
    (["{good}", "--task", "sst2", "--min-metric", "90"], "outside the range of accuracy [0, 1]"),
])
@pytest.mark.slow
def test_bad_input_exits_2_with_one_line(exports, trained, tmp_path, monkeypatch, capsys, args, message):
    names = {**{k.replace("-", "_"): v for k, v in exports.items()}, "trained": trained, "missing": tmp_path / "missing"}
    report_file = tmp_path / "check.json"
    code, out, err = cli(monkeypatch, capsys, "check", *[a.format(**names) for a in args], "--json", report_file)
    assert code == 2, (out, err)
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and message in lines[0], err
    assert not report_file.exists()


def test_named_labels_follow_the_model_label_order():
    """A file's string labels are numbered in sorted order; check renumbers them by the model's id2label."""
    from ltp_deploy.check.run import _align_labels
    from ltp_deploy.data import Examples

    examples = Examples(["a", "b", "c"], None, np.array([0, 1, 0]), ["neg", "pos"])
    assert _align_labels(examples, {"id2label": ["pos", "neg"]}).labels.tolist() == [1, 0, 1]
    assert _align_labels(examples, {"id2label": ["LABEL_0", "LABEL_1"]}).labels.tolist() == [0, 1, 0]
    assert _align_labels(examples, {"id2label": None}).labels.tolist() == [0, 1, 0]


def test_github_actions_example_is_valid_yaml_calling_check():
    yaml = pytest.importorskip("yaml")
    workflow = yaml.safe_load(GITHUB_ACTIONS_EXAMPLE)
    runs = [step.get("run", "") for step in workflow["jobs"]["check"]["steps"]]
    assert any(r.startswith("ltp-deploy check") and "--junit" in r for r in runs)
