"""ONNX export: validated graphs for every checkpoint layout, any length, no half-written output."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from ltp_deploy.checkpoint import load_checkpoint
from ltp_deploy.data import batches, encode, load_glue
from ltp_deploy.artifact import METADATA_FILE, read_metadata
from ltp_deploy.exporters.onnx import ExportValidationError, export_onnx
from ltp_deploy.runtimes import open_runtime
from ltp_deploy.spec import PruningSpec
from helpers import run_process as cli

MINILM_SPEC = PruningSpec.threshold([0.0, 0.002, 0.003, 0.004, 0.005, 0.006])


@pytest.fixture(scope="module")
def minilm_export(minilm_dir, tmp_path_factory):
    ckpt = load_checkpoint(minilm_dir, spec=MINILM_SPEC)
    out = tmp_path_factory.mktemp("exports") / "minilm"
    export_onnx(ckpt, out)
    return ckpt, out


@pytest.mark.slow
def test_ltp_folder_exports_and_validates(make_ltp, tmp_path):
    out = tmp_path / "ltp-onnx"
    result = cli("export", make_ltp(name="ltp-export"), "--target", "onnx", "-o", out)
    assert result.returncode == 0, result.stderr
    meta = json.loads((out / METADATA_FILE).read_text())
    assert meta["validation"]["passed"] and meta["source"]["format"] == "ltp"
    assert meta["inputs"] == ["input_ids", "attention_mask"]  # RoBERTa: one token type, no token_type_ids input
    assert meta["pruning"] == "absolute_threshold" and meta["opset"] >= 17
    assert {"torch", "onnx", "onnxruntime", "transformers"} <= meta["versions"].keys()
    assert {"vocab.json", "merges.txt"} & {p.name for p in out.iterdir()} or (out / "tokenizer.json").exists()
    names = {c["name"] for c in meta["validation"]["cases"]}
    assert {"real b1", "random b1 len1", "random b2 max"} <= names
    assert meta["reference"]["sequences"] > 0


@pytest.mark.slow
def test_hf_bert_with_spec_exports_with_real_data(make_bert, glue, tmp_path):
    spec = PruningSpec.topk([1.0, 1.0, 0.6, 0.4])
    out = tmp_path / "bert-onnx"
    result = cli("export", make_bert(spec=spec, name="bert-export"), "-o", out,
                 "--data", glue / "SST-2" / "dev.tsv", "--text-column", "sentence", "--max-examples", 16)
    assert result.returncode == 0, result.stderr
    assert "validated" in result.stdout
    meta = read_metadata(out / "model.onnx")
    assert meta["spec"]["keep_rates"] == [1.0, 1.0, 0.6, 0.4]
    assert meta["validation"]["cases"][1]["batch_size"] == 8  # real sentences, mixed lengths


@pytest.mark.slow
def test_spec_option_overrides_the_folder(make_bert, tmp_path):
    spec = PruningSpec.threshold([0.0, 0.001, 0.002, 0.003])
    spec_file = spec.save(tmp_path)
    out = tmp_path / "bert-spec-option"
    result = cli("export", make_bert(name="bert-no-spec"), "--spec", spec_file, "-o", out)
    assert result.returncode == 0, result.stderr
    assert PruningSpec.from_dict(read_metadata(out)["spec"]) == spec


def _run_both(ckpt, runtime, batch):
    with torch.no_grad():
        logits, kept = ckpt.model(*(torch.from_numpy(batch[k]) for k in ("input_ids", "attention_mask",
                                                                         "token_type_ids")))
    got_logits, got_kept = runtime.run(batch)
    return np.abs(got_logits - logits.numpy()).max(), np.array_equal(got_kept, kept.numpy()), got_kept


@pytest.mark.parametrize("batch_size", [1, 8])
@pytest.mark.slow
def test_graph_runs_at_every_length(minilm_export, batch_size):
    """No fixed-size assumption: lengths 1..512, mixed within a batch, same logits and kept counts as torch."""
    ckpt, out = minilm_export
    runtime = open_runtime(out / "model.onnx")
    rng = np.random.default_rng(batch_size)
    for length in (1, 2, 3, 7, 16, 33, 64, 127, 128, 129, 200, 256, 383, 511, 512):
        lengths = np.clip(rng.integers(1, length + 1, batch_size), 1, length)
        lengths[0] = length
        ids = rng.integers(1000, 29000, (batch_size, length))
        mask = (np.arange(length)[None, :] < lengths[:, None]).astype(np.int64)
        ids = np.where(mask == 1, ids, 0)
        ids[:, 0] = 101
        batch = {"input_ids": ids, "attention_mask": mask, "token_type_ids": np.zeros_like(ids)}
        diff, same_kept, kept = _run_both(ckpt, runtime, batch)
        assert diff <= 1e-4, f"length {length}: |logit diff| {diff:.2e}"
        assert same_kept, f"length {length}: kept counts differ"
        assert (kept[:, -1] <= lengths).all()


@pytest.mark.slow
def test_sst2_dev_drops_tokens_in_the_graph(minilm_export, glue):
    ckpt, out = minilm_export
    runtime = open_runtime(out)
    dev = load_glue("sst2", "dev", glue)
    tokenizer = ckpt.tokenizer()
    kept, lengths = [], []
    for indices in batches(dev, 32):
        batch = encode(tokenizer, dev, 128, indices=indices)
        kept.append(runtime.run(batch)[1])
        lengths.append(batch["attention_mask"].sum(1))
    kept, lengths = np.concatenate(kept), np.concatenate(lengths)
    mean_kept = kept.mean(axis=0)
    print("SST-2 dev mean length", lengths.mean().round(2), "mean kept per layer", mean_kept.round(2).tolist())
    assert len(kept) == 872
    assert np.all(np.diff(mean_kept) <= 0), "pruning is cumulative: counts never grow"
    assert mean_kept[-1] < 0.6 * lengths.mean(), "the threshold spec should drop most tokens by the last layer"
    assert mean_kept[-1] >= 1.0


@pytest.mark.slow
def test_dense_export_keeps_every_token(minilm_dir, tmp_path):
    out = tmp_path / "dense"
    result = cli("export", minilm_dir, "--dense", "-o", out)
    assert result.returncode == 0, result.stderr
    meta = read_metadata(out)
    assert meta["pruning"] == "dense" and meta["spec"] is None and meta["reference"] is None
    ids = np.array([[101, 2023, 2003, 1037, 3231, 102, 0, 0], [101, 2204, 102, 0, 0, 0, 0, 0]])
    mask = (ids != 0).astype(np.int64)
    _, kept = open_runtime(out).run({"input_ids": ids, "attention_mask": mask, "token_type_ids": np.zeros_like(ids)})
    assert (kept == mask.sum(1, keepdims=True)).all()


@pytest.mark.slow
def test_failed_validation_leaves_no_output(minilm_dir, tmp_path):
    """atol=0 demands bit-identical logits, which ONNX Runtime does not give: the export must fail cleanly."""
    ckpt = load_checkpoint(minilm_dir, spec=MINILM_SPEC)
    out = tmp_path / "strict"
    with pytest.raises(ExportValidationError, match="nothing was written"):
        export_onnx(ckpt, out, atol=0.0)
    assert not out.exists() and not list(tmp_path.iterdir())


def test_bad_input_is_one_line_and_writes_nothing(tmp_path):
    out = tmp_path / "out"
    result = cli("export", tmp_path / "missing-ckpt", "-o", out)
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "does not exist" in lines[0]
    assert not out.exists()
    result = cli("export", tmp_path / "ckpt", "--target", "tensorrt", "-o", out)
    assert result.returncode == 2 and "tensorrt" in result.stderr and not out.exists()
    result = cli("export", tmp_path / "ckpt", "--spec", tmp_path / "nope.json", "-o", out)
    assert result.returncode == 2 and "nope.json does not exist" in result.stderr and not out.exists()


def test_inspect_shows_checkpoint_and_graph(tiny, make_ltp):
    graph = json.loads(cli("inspect", tiny["pruned"] / "model.onnx", "--json").stdout)
    assert graph["thresholds"] == list(PruningSpec.load(tiny["hf"]).thresholds) and graph["opset"] >= 17
    assert graph["graph_io"]["inputs"]["input_ids"] == ["batch", "sequence"]
    assert graph["graph_io"]["outputs"]["kept_counts"][1] == tiny["layers"]
    ckpt = json.loads(cli("inspect", make_ltp(name="ltp-inspect"), "--json").stdout)
    assert ckpt["format"] == "ltp" and ckpt["pruning"]["mode"] == "absolute_threshold" and ckpt["layers"] == 4
