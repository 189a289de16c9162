"""A learned-scorer checkpoint (what ``train --scorer learned`` writes, the IMDB default) has a dense twin and takes
other specs: ``export --dense`` and ``export --spec`` leave the scorer weights behind (they belong to the spec).

The checkpoint is built the way ``train`` writes one: a ``PrunedClassifier`` under a learned-scorer spec, its
scorers seeded at random, saved with ``save_checkpoint``. The references are independent of ltp-deploy's
network: ``transformers``' own ``BertForSequenceClassification`` loaded from the folder (dense), and LTP's masked
rule run on it (``--spec``).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from helpers import SENTENCES, run_main
from ltp_deploy.checkpoint import load_checkpoint, save_checkpoint
from ltp_deploy.model import PrunedClassifier
from ltp_deploy.reference import masked_reference
from ltp_deploy.spec import PruningSpec

LEARNED = PruningSpec.threshold([0.0, 1 / 128, 1 / 128, 1 / 128], scorer="learned", reference_cls="kept")
OTHER = PruningSpec.threshold([0.0, 0.004, 0.008, 0.012], reference_cls="kept")  # attention scores, no scorer


@pytest.fixture(scope="module")
def learned(make_bert, tmp_path_factory) -> Path:
    """A checkpoint folder as ``train --scorer learned`` writes it: scorer weights for layers 1..3 beside BERT's."""
    src = load_checkpoint(make_bert(name="twin-src", seed=2))
    model = PrunedClassifier(src.config, LEARNED)
    torch.manual_seed(0)
    state = dict(src.model.state_dict())
    for i, layer in enumerate(model.backbone.encoder.layer):
        if layer.pruner is not None:  # scores that straddle the thresholds: about half of each layer's tokens go
            state[f"bert.encoder.layer.{i}.pruner.scorer.weight"] = torch.randn(1, src.config.hidden_size) * 0.25
            state[f"bert.encoder.layer.{i}.pruner.scorer.bias"] = torch.randn(1) * 0.5
    model.load_state_dict(state, strict=True)
    folder = tmp_path_factory.mktemp("twin") / "learned"
    save_checkpoint(model.eval(), folder, src.hf_config, tokenizer=src.tokenizer(), metadata={"kind": "ltp"})
    return folder


def _batch(folder: Path) -> dict[str, np.ndarray]:
    tokenizer = load_checkpoint(folder).tokenizer()
    enc = tokenizer(SENTENCES[:8], padding=True, return_tensors="np")
    return {k: np.asarray(enc[k], dtype=np.int64) for k in ("input_ids", "attention_mask", "token_type_ids")}


def _graph_outputs(export: Path, batch: dict) -> tuple[np.ndarray, np.ndarray]:
    from ltp_deploy.runtimes import open_runtime

    return open_runtime(export / "model.onnx").run(batch)


def _transformers_model(folder: Path):
    from transformers import BertForSequenceClassification

    return BertForSequenceClassification.from_pretrained(str(folder), attn_implementation="eager").eval()


def test_the_checkpoint_holds_scorers(learned):
    from safetensors.torch import load_file

    keys = [k for k in load_file(str(learned / "model.safetensors")) if ".pruner.scorer." in k]
    assert len(keys) == 6  # weight and bias for layers 1..3: the keys the dense model lacks
    assert load_checkpoint(learned).spec.scorer == "learned"


@pytest.mark.slow
def test_export_dense_of_a_learned_scorer_checkpoint_is_transformers_own_network(learned, tmp_path, monkeypatch,
                                                                                  capsys):
    out = tmp_path / "dense"
    code, _, err = run_main(monkeypatch, capsys, "export", learned, "--dense", "--no-batch1-graph", "-o", out)
    assert code == 0, err
    assert json.loads((out / "ltp_deploy_export.json").read_text())["pruning"] == "dense"
    batch = _batch(learned)
    logits, kept = _graph_outputs(out, batch)
    with torch.no_grad():
        expected = _transformers_model(learned)(**{k: torch.from_numpy(v) for k, v in batch.items()}).logits
    # The random head's logits spread by ~1e-3 across sentences: 1e-5 tells one network from another.
    np.testing.assert_allclose(logits, expected.numpy(), atol=1e-5, rtol=0)
    assert (kept == batch["attention_mask"].sum(axis=1, keepdims=True)).all()  # dense: every token kept
    with torch.no_grad():
        _, pruned_kept = load_checkpoint(learned).model(*(torch.from_numpy(batch[k]) for k in batch))
    assert int(pruned_kept[:, -1].sum()) < int(batch["attention_mask"].sum())  # its own spec does prune


@pytest.mark.slow
def test_export_spec_of_a_learned_scorer_checkpoint_follows_ltps_rule(learned, tmp_path, monkeypatch, capsys):
    OTHER.save(tmp_path)
    spec_file = tmp_path / "pruning_spec.json"
    out = tmp_path / "other-spec"
    code, _, err = run_main(monkeypatch, capsys, "export", learned, "--spec", spec_file, "--no-batch1-graph", "-o", out)
    assert code == 0, err
    batch = _batch(learned)
    logits, kept = _graph_outputs(out, batch)
    inputs = [torch.from_numpy(batch[k]) for k in ("input_ids", "attention_mask", "token_type_ids")]
    ref = masked_reference(_transformers_model(learned), OTHER, *inputs)
    np.testing.assert_array_equal(kept, ref.kept_counts.numpy())
    assert kept[:, -1].sum() < batch["attention_mask"].sum()  # the spec drops tokens: the decisions were tested
    np.testing.assert_allclose(logits, ref.logits.numpy(), atol=1e-5, rtol=0)


def test_library_dense_twin_and_spec_override(learned):
    dense = load_checkpoint(learned, dense=True)
    assert dense.spec is None and not any(".pruner." in k for k in dense.model.state_dict())
    other = load_checkpoint(learned, spec=OTHER)
    assert other.spec == OTHER and not any(".pruner.scorer." in k for k in other.model.state_dict())
    fewer = PruningSpec.threshold([0.0, 1 / 128, 0.0, 0.0], scorer="learned")  # a learned spec on fewer layers
    assert load_checkpoint(learned, spec=fewer).model.backbone.encoder.layer[1].pruner.scorer is not None
    more = PruningSpec.threshold([0.01, 1 / 128, 1 / 128, 1 / 128], scorer="learned")  # layer 0 has no scorer
    with pytest.raises(Exception, match="learned scorer but the weights .* hold none"):
        load_checkpoint(learned, spec=more)


@pytest.mark.slow
def test_check_names_the_spec_of_a_dense_twin_against_its_checkpoint(learned, tmp_path, monkeypatch, capsys):
    """The dense twin leaves the scorers out, so its weights fingerprint differs from the checkpoint's: check must
    name the real difference (the spec), not claim other weights."""
    from ltp_deploy.exporters.onnx import export_onnx

    out = tmp_path / "dense"
    export_onnx(load_checkpoint(learned, dense=True), out, dense=True, batch1_graph=False)
    data = tmp_path / "d.tsv"
    data.write_text("sentence\tlabel\n" + "".join(f"{s}\t{i % 2}\n" for i, s in enumerate(SENTENCES[:8])))
    code, _, err = run_main(monkeypatch, capsys, "check", out, "--data", data, "--text-column", "sentence",
                            "--reference", learned)
    assert code == 2 and "was exported with the spec dense" in err, err
