"""OpenVINO IR export: validated in OpenVINO (f32 forced), fp32 and fp16 weights, no output on failure, the CLI.

The subjects and their exports are shared with ``tests/test_runtimes.py`` (built once per session).
"""

from __future__ import annotations

import json

import pytest

from ltp_deploy.errors import LtpDeployError
from ltp_deploy.exporters import openvino as ov_export
from ltp_deploy.artifact import METADATA_FILE, read_metadata
from ltp_deploy.exporters.onnx import ExportValidationError
from ltp_deploy.exporters.validate import CaseResult, ValidationReport
from ltp_deploy.runtimes import open_runtime
from ltp_deploy.runtimes.openvino import stores_fp16_weights

from helpers import assert_agrees
from helpers import run_main as run_cli


def read_ir(path):
    import openvino as ov

    return ov.Core().read_model(str(path))


def leftovers(folder):
    """Temporary ``.NAME.partial-*`` folders an export left beside its output."""
    return [p.name for p in folder.iterdir() if ".partial-" in p.name]


# ---------------------------------------------------------------------------------------------------- fp32

def _square_weight_matmuls(model, d: int) -> int:
    """MatMuls of an ``openvino.Model`` whose weight is a D x D constant (through any Convert)."""
    count = 0
    for op in model.get_ordered_ops():
        if op.get_type_name() == "MatMul":
            weight = op.input_value(1).get_node()
            while weight.get_type_name() == "Convert":
                weight = weight.input_value(0).get_node()
            count += weight.get_type_name() == "Constant" and list(weight.get_output_shape(0)) == [d, d]
    return count


def test_attention_is_traced_as_three_projections(tiny):
    """The batched IR computes Q, K and V with three D x D GEMMs (the form OpenVINO fuses whole) in each layer whose
    attention probabilities feed nothing else, and one D x 3D GEMM in a pruning layer whose score reads them; the
    batch-1 IR and the ONNX target keep one GEMM everywhere. Counted: D x D weight MatMuls (Q, K, V and the
    output, or the output alone; plus BERT's pooler). The export leaves the model's own form alone."""
    import openvino as ov

    from ltp_deploy.checkpoint import load_checkpoint
    from ltp_deploy.model import SelfAttention, separate_qkv_graph

    ckpt = load_checkpoint(tiny["hf"])
    d, layers = ckpt.config.hidden_size, ckpt.config.num_layers
    scored = len(ckpt.spec.pruning_layers())  # attention-score pruning layers (the small BERT's spec)
    assert ckpt.spec.scorer == "attention" and 0 < scored < layers
    assert _square_weight_matmuls(read_ir(tiny["openvino"] / "model.xml"), d) == 4 * (layers - scored) + scored + 1
    assert _square_weight_matmuls(read_ir(tiny["openvino"] / "model-b1.xml"), d) == layers + 1
    assert _square_weight_matmuls(ov.Core().read_model(str(tiny["pruned"] / "model.onnx")), d) == layers + 1
    attentions = [layer.attention.self for layer in ckpt.model.backbone.encoder.layer]
    with separate_qkv_graph(ckpt.model):
        assert [m.separate_qkv for m in attentions] == [i not in ckpt.spec.pruning_layers() for i in range(layers)]
    assert not any(m.separate_qkv for m in attentions) and SelfAttention.separate_qkv is False


@pytest.mark.slow
def test_fp32_export_is_validated_with_full_metadata(subject):
    result = subject.ov_result
    folder, meta = result.folder, result.metadata
    assert result.graph == folder / "model.xml"
    assert {"model.xml", "model.bin", METADATA_FILE, "tokenizer_config.json"} <= {p.name for p in folder.iterdir()}
    assert read_metadata(folder) == json.loads(json.dumps(meta))
    assert (meta["target"], meta["graph"], meta["precision"]) == ("openvino", "model.xml", "fp32")
    onnx_meta = read_metadata(subject.onnx)
    assert meta["opset"] == onnx_meta["opset"] and meta["opset"] >= 17  # the intermediate ONNX graph's opset
    assert meta["inputs"] == onnx_meta["inputs"] and meta["outputs"] == ["logits", "kept_counts"]
    assert meta["spec"] == subject.ckpt.spec.to_dict() and meta["pruning"] == "absolute_threshold"
    assert "openvino" in meta["versions"]
    v = meta["validation"]
    assert v["passed"] and v["runtime"] == "openvino-cpu" and v["inference_precision_hint"] == "f32"
    assert v["atol"] == 1e-4 and v["max_abs_diff"] <= 1e-4
    assert all(c["kept_counts_equal"] for c in v["cases"]) and len(v["cases"]) >= 6
    assert not stores_fp16_weights(read_ir(result.graph)), "fp32 must be saved uncompressed"
    assert not leftovers(folder.parent)


@pytest.mark.slow
def test_fp32_export_tokenizer_round_trips(subject):
    from transformers import AutoTokenizer

    saved = AutoTokenizer.from_pretrained(str(subject.ov_result.folder))
    text = "the acting , costumes , music are all astounding ."
    assert saved(text)["input_ids"] == subject.tokenizer(text)["input_ids"]


# ---------------------------------------------------------------------------------------------------- fp16

@pytest.mark.slow
def test_fp16_export_stores_half_weights_and_passes_its_rule(subject):
    result = subject.ov16_result
    meta, v = result.metadata, result.metadata["validation"]
    assert meta["precision"] == "fp16" and v["passed"] and v["atol"] == 1e-2
    assert stores_fp16_weights(read_ir(result.graph))
    fp32_bin = (subject.ov_result.folder / "model.bin").stat().st_size
    assert (result.folder / "model.bin").stat().st_size < 0.6 * fp32_bin
    real = [c for c in v["cases"] if c["name"].startswith("real")]
    assert real and all(c["kept_counts_equal"] for c in real), "real sentences must keep identical counts"
    assert set(v["tolerated"]) == {c["name"] for c in v["cases"] if not c["kept_counts_equal"]}
    compared = [c for c in v["cases"] if c["kept_counts_equal"]]
    assert all(c["max_abs_diff"] <= 1e-2 for c in compared) and v["max_abs_diff"] > 0
    runtime = open_runtime(result.folder)
    assert (runtime.precision, runtime.weights) == ("fp32", "fp16")
    for batch in subject.batches.values():
        assert_agrees(subject, runtime, batch, atol=1e-2)


def _case(name, diff, equal):
    return CaseResult(name=name, real=name.startswith("real"), batch_size=1, length=8, max_abs_diff=diff,
                      argmax_agreement=1.0, kept_counts_equal=equal)


@pytest.mark.parametrize("cases, passed, tolerated", [
    ([_case("real b1", 5e-3, True), _case("random b2 max", 0.4, False)], True, ["random b2 max"]),
    ([_case("real b8 mixed", 5e-3, False), _case("random b1 len1", 0.0, True)], False, []),
    ([_case("real b1", 2e-2, True)], False, []),
    ([_case("random b3 mixed", 2e-2, True)], False, []),
])
def test_fp16_rule(cases, passed, tolerated):
    report = ValidationReport("openvino-cpu", 1e-2, cases, tolerate_random_flips=True)
    assert report.passed is passed and report.tolerated == tolerated
    assert len(report.failures()) == (0 if passed else 1)
    assert report.to_dict()["max_abs_diff"] == max(c.max_abs_diff for c in cases if c.kept_counts_equal)


# --------------------------------------------------------------------------------------------- failures

@pytest.mark.slow
def test_failed_validation_leaves_no_folder(roberta, tmp_path, monkeypatch):
    from ltp_deploy.exporters import validate as validate_module

    real_validate = validate_module.validate
    monkeypatch.setattr(validate_module, "validate", lambda runtime, model, cases, atol, tolerate=False:
                        real_validate(runtime, model, cases, -1.0))  # nothing can be within a negative tolerance
    out = tmp_path / "ov"
    with pytest.raises(ExportValidationError, match="disagrees with the torch model in openvino"):
        ov_export.export_openvino(roberta.ckpt, out)
    assert not out.exists() and not leftovers(tmp_path)
    out.mkdir()  # an earlier export (it may be replaced), which a failed export must leave as it was
    (out / "keep.txt").write_text("previous export")
    (out / METADATA_FILE).write_text("{}")
    with pytest.raises(ExportValidationError):
        ov_export.export_openvino(roberta.ckpt, out, precision="fp16")
    assert sorted(p.name for p in out.iterdir()) == ["keep.txt", METADATA_FILE] and not leftovers(tmp_path)


@pytest.mark.parametrize("options, fragment", [
    ({"precision": "int4"}, "use fp32, fp16 or int8"),
    ({"precision": "int8"}, "calibrated on training sentences"),
    ({"atol": -1.0}, "atol must be a finite number >= 0"),
    ({"atol": float("nan")}, "atol must be a finite number >= 0"),
])
def test_bad_options_fail_before_any_work(roberta, tmp_path, options, fragment):
    with pytest.raises(LtpDeployError, match=fragment):
        ov_export.export_openvino(roberta.ckpt, tmp_path / "ov", **options)
    assert not (tmp_path / "ov").exists()


# ------------------------------------------------------------------------------------------------------ CLI


@pytest.mark.slow
def test_cli_exports_openvino(roberta, tmp_path, monkeypatch, capsys):
    out = tmp_path / "cli-ov16"
    code, stdout, stderr = run_cli(monkeypatch, capsys, "export", roberta.folder, "--target", "openvino",
                                   "--precision", "fp16", "-o", out)
    assert code == 0, stderr
    assert "model.xml" in stdout and "fp16" in stdout and "openvino-cpu" in stdout and "atol 1e-02" in stdout
    meta = read_metadata(out)
    assert (meta["target"], meta["precision"], meta["single_sequence"]) == ("openvino", "fp16", False)


@pytest.mark.parametrize("target", ["onnx", "openvino"])
@pytest.mark.slow
def test_cli_exports_single_sequence(roberta, tmp_path, monkeypatch, capsys, target):
    out = tmp_path / f"cli-{target}-b1"
    code, stdout, stderr = run_cli(monkeypatch, capsys, "export", roberta.folder, "--target", target,
                                   "--single-sequence", "-o", out)
    assert code == 0, stderr
    assert "single sequence" in stdout
    assert read_metadata(out)["single_sequence"] is True


@pytest.mark.parametrize("args, fragment", [
    (["--target", "onnx", "--precision", "fp16"], "--precision fp16 is an OpenVINO IR option"),
    (["--precision", "fp16"], "add --target openvino"),
    (["--target", "openvino", "--opset", "17"], "--opset applies to --target onnx only: drop --opset for openvino."),
])
def test_cli_rejects_bad_combinations(roberta, tmp_path, monkeypatch, capsys, args, fragment):
    code, _, stderr = run_cli(monkeypatch, capsys, "export", roberta.folder, *args, "-o", tmp_path / "x")
    assert code == 2 and fragment in stderr and stderr.count("\n") == 1, stderr
    assert not (tmp_path / "x").exists()


def test_cli_rejects_unknown_precision(roberta, tmp_path, monkeypatch, capsys):
    code, _, stderr = run_cli(monkeypatch, capsys, "export", roberta.folder, "--target", "openvino",
                              "--precision", "int4", "-o", tmp_path / "x")
    assert code == 2 and "int4" in stderr and not (tmp_path / "x").exists()


def test_default_atol_by_precision():
    assert ov_export.default_atol("fp32") == 1e-4 and ov_export.default_atol("fp16") == 1e-2
    with pytest.raises(LtpDeployError):
        ov_export.default_atol("bf16")
