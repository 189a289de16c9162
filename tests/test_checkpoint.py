"""Checkpoint loading: LTP and Hugging Face layouts, the pruning spec, and one clear error per bad input."""

from __future__ import annotations

import json
import math
import shutil

import pytest
import torch

from ltp_deploy.checkpoint import load_checkpoint, save_checkpoint
from ltp_deploy.errors import LtpDeployError
from ltp_deploy.reference import hf_twin
from ltp_deploy.spec import PruningSpec


def test_ltp_threshold_folder(make_ltp):
    deltas = (0.0, 0.001, -0.0005, 0.002)
    folder = make_ltp("absolute_threshold", deltas=deltas, final_token_threshold=0.01)
    ckpt = load_checkpoint(folder)
    assert ckpt.format == "ltp" and ckpt.config.arch == "roberta" and not ckpt.head_initialized
    # thr_i = final * i / L + delta_i; the last layer gets final * (L-1)/L, not final
    expected = [0.01 * i / 4 + d for i, d in enumerate(deltas)]
    assert ckpt.spec.mode == "absolute_threshold"
    assert all(math.isclose(a, b, abs_tol=1e-9) for a, b in zip(ckpt.spec.thresholds, expected))
    assert ckpt.spec.n_ref == 128 and ckpt.spec.cls_policy == "keep"


def test_ltp_weights_equal_the_roberta_they_came_from(make_ltp):
    """ibert.* renamed to roberta.*, quantisation buffers and thresholds dropped, nothing else changed."""
    folder = make_ltp()
    ltp_state = torch.load(folder / "pytorch_model.bin", weights_only=True)
    ckpt = load_checkpoint(folder)
    ours = ckpt.model.state_dict()
    for key, value in ltp_state.items():
        if key.startswith("ibert.") and key.replace("ibert.", "roberta.", 1) in ours:
            assert torch.equal(ours[key.replace("ibert.", "roberta.", 1)], value.float()), key
    assert ours.keys() == hf_twin(ckpt.model).state_dict().keys()


def test_ltp_topk_folder_uses_ltp_schedule(make_ltp):
    ckpt = load_checkpoint(make_ltp("topk", token_keep_rate=0.4))
    num_layers = 4
    first = max(3, math.ceil(0.15 * num_layers))
    expected = [1.0 if i < first else 1 + (0.4 - 1) * (i - first + 1) / (num_layers - first) for i in range(num_layers)]
    assert ckpt.spec.mode == "topk" and list(ckpt.spec.keep_rates) == pytest.approx(expected)


def test_ltp_tokenizer_from_bare_bpe_files(make_ltp):
    folder = make_ltp()
    assert not (folder / "tokenizer.json").exists() and (folder / "merges.txt").exists()
    tokenizer = load_checkpoint(folder).tokenizer()
    ids = tokenizer("a charming journey")["input_ids"]
    assert ids[0] == tokenizer.convert_tokens_to_ids("<s>") and ids[-1] == tokenizer.convert_tokens_to_ids("</s>")
    assert len(tokenizer) > 100 and tokenizer.unk_token_id not in ids


def test_hf_folder_with_and_without_spec(make_bert):
    spec = PruningSpec.threshold([0.0, 0.001, 0.002, 0.003], n_ref=64)
    pruned = load_checkpoint(make_bert(spec=spec, name="bert-spec"))
    assert pruned.spec == spec and pruned.format == "hf"
    dense = load_checkpoint(make_bert(name="bert-dense"))
    assert dense.spec is None and dense.describe()["pruning"] == "dense"
    assert load_checkpoint(make_bert(spec=spec, name="bert-spec2"), dense=True).spec is None


def test_encoder_only_minilm_gets_a_seeded_head(minilm_dir):
    a, b = load_checkpoint(minilm_dir), load_checkpoint(minilm_dir)
    assert a.head_initialized and a.config.num_layers == 6 and a.config.hidden_size == 384
    assert torch.equal(a.model.classifier.weight, b.model.classifier.weight)
    assert a.model.classifier.weight.std() > 0


def test_save_checkpoint_round_trip_loads_in_transformers(make_bert, tmp_path):
    from transformers import AutoModelForSequenceClassification

    spec = PruningSpec.topk([1.0, 1.0, 0.7, 0.5])
    ckpt = load_checkpoint(make_bert(spec=spec, name="bert-rt"))
    out = save_checkpoint(ckpt.model, tmp_path / "saved", ckpt.hf_config, tokenizer=ckpt.tokenizer(),
                          metadata={"note": "round trip"})
    again = load_checkpoint(out)
    assert again.spec == spec and again.metadata == {"note": "round trip"}
    ids = torch.randint(5, 1000, (3, 12))
    mask = torch.ones_like(ids)
    with torch.no_grad():
        assert torch.equal(again.model(ids, mask)[0], ckpt.model(ids, mask)[0])
        stock = AutoModelForSequenceClassification.from_pretrained(str(out)).eval()
        dense, _ = ckpt.model.with_spec(None)(ids, mask)
        assert (stock(input_ids=ids, attention_mask=mask).logits - dense).abs().max() < 1e-5
    assert not list(tmp_path.glob(".*partial*"))


# ----------------------------------------------------------------------------------------------- bad input

def _copy(folder, tmp_path):
    dst = tmp_path / "ckpt"
    shutil.copytree(folder, dst)
    return dst


def _edit_config(folder, **changes):
    config = json.loads((folder / "config.json").read_text())
    config.update(changes)
    (folder / "config.json").write_text(json.dumps(config))


def expect_error(folder, *fragments):
    with pytest.raises(LtpDeployError) as info:
        load_checkpoint(folder)
    message = str(info.value)
    assert "\n" not in message and ":" in message, message  # one sentence: the problem, then the fix
    for fragment in fragments:
        assert fragment in message, message
    return message


def test_missing_folder_config_and_weights(tmp_path, make_bert):
    expect_error(tmp_path / "nope", "does not exist")
    expect_error(tmp_path, "no config.json")
    folder = _copy(make_bert(name="bert-bad"), tmp_path)
    (folder / "model.safetensors").unlink()
    expect_error(folder, "has no weights")


def test_corrupt_files(tmp_path, make_bert, make_ltp):
    folder = _copy(make_bert(name="bert-corrupt"), tmp_path)
    (folder / "config.json").write_text("{not json")
    expect_error(folder, "not valid JSON")
    folder = make_ltp(name="ltp-corrupt")
    (folder / "pytorch_model.bin").write_bytes(b"\x80\x04garbage" * 10)
    expect_error(folder, "pytorch_model.bin", "cannot be loaded as a state dict of tensors")
    folder = make_ltp(name="ltp-st-corrupt")
    (folder / "pytorch_model.bin").unlink()
    (folder / "model.safetensors").write_bytes(b"12345678 not safetensors")
    expect_error(folder, "not a readable safetensors file")


class _Payload:  # an object a malicious pickle could carry; weights_only refuses it
    pass


def test_pickle_with_code_is_refused(make_ltp):
    folder = make_ltp(name="ltp-evil")
    torch.save({"ibert.embeddings.word_embeddings.weight": _Payload()}, folder / "pytorch_model.bin")
    message = expect_error(folder, "cannot be loaded as a state dict of tensors", "never unpickles")
    assert "weights_only" not in message  # torch's text nudges towards unsafe loading: never quoted


def test_unknown_model_type_and_architecture(tmp_path, make_bert):
    folder = _copy(make_bert(name="bert-unknown"), tmp_path)
    _edit_config(folder, model_type="gpt2", architectures=["GPT2LMHeadModel"])
    expect_error(folder, "Unknown architecture", "GPT2LMHeadModel")
    _edit_config(folder, model_type="gpt2", architectures=[])
    expect_error(folder, "gpt2")


def test_mismatched_and_missing_weights(tmp_path, make_bert):
    from safetensors.torch import load_file, save_file

    folder = _copy(make_bert(name="bert-mismatch"), tmp_path)
    _edit_config(folder, intermediate_size=96)
    expect_error(folder, "'bert.encoder.layer.0.intermediate.dense.", "(128", "(96")
    _edit_config(folder, intermediate_size=128)
    state = load_file(str(folder / "model.safetensors"))
    del state["bert.encoder.layer.1.output.dense.bias"]
    save_file(state, str(folder / "model.safetensors"))
    expect_error(folder, "lack 1 key", "bert.encoder.layer.1.output.dense.bias")


def test_ltp_bad_modes(make_ltp):
    folder = make_ltp(name="ltp-mode")
    _edit_config(folder, prune_mode="manual")
    expect_error(folder, "Unsupported LTP prune_mode 'manual'")
    folder = make_ltp(name="ltp-missing-thr")
    state = torch.load(folder / "pytorch_model.bin", weights_only=True)
    del state["ibert.encoder.layer.2.attention.self.pruner.keep_threshold"]
    torch.save(state, folder / "pytorch_model.bin")
    expect_error(folder, "encoder.layer.2.attention.self.pruner.keep_threshold")


def test_bad_spec_files(tmp_path, make_bert):
    folder = _copy(make_bert(name="bert-spec-bad"), tmp_path)
    (folder / "pruning_spec.json").write_text(json.dumps({"mode": "random_drop", "thresholds": [0.1] * 4}))
    expect_error(folder, "Unsupported prune mode 'random_drop'")
    (folder / "pruning_spec.json").write_text(json.dumps({"mode": "topk", "keep_rates": [1.0, 1.5, 0.5, 0.5]}))
    expect_error(folder, "keep rates must lie in (0, 1]")
    (folder / "pruning_spec.json").write_text(json.dumps({"mode": "topk", "keep_rates": [1.0, 0.5]}))
    expect_error(folder, "2 layer values", "4 layers")


def test_spec_round_trip(tmp_path):
    spec = PruningSpec.threshold([0.0, 0.001, 0.002], n_ref=64, source={"from": "test"})
    spec.save(tmp_path)
    assert PruningSpec.load(tmp_path) == spec
    assert PruningSpec.load(tmp_path / "nothing-here") is None


# ------------------------------------------------------------------------------------------ weights checked at load

@pytest.mark.parametrize("bad", [float("nan"), float("inf"), float("-inf")])
def test_non_finite_weights_are_named_at_load(tmp_path, make_bert, bad):
    from safetensors.torch import load_file, save_file

    folder = _copy(make_bert(name="bert-nan"), tmp_path)
    state = load_file(str(folder / "model.safetensors"))
    key = "bert.encoder.layer.2.attention.output.dense.weight"
    state[key][3, 5] = bad
    save_file(state, str(folder / "model.safetensors"))
    message = expect_error(folder, repr(key), "the checkpoint holds NaN/inf weights: retrain or restore it")
    assert ("1 NaN and 0 inf" if math.isnan(bad) else "0 NaN and 1 inf") in message
    with pytest.raises(LtpDeployError, match="NaN/inf weights"):  # the dense twin is no way around it
        load_checkpoint(folder, dense=True)


def test_non_finite_ltp_threshold_is_named_with_its_file_key(make_ltp):
    folder = make_ltp(name="ltp-nan")
    state = torch.load(folder / "pytorch_model.bin", weights_only=True)
    key = "ibert.encoder.layer.2.attention.self.pruner.keep_threshold"
    state[key] = torch.tensor(float("nan"))
    torch.save(state, folder / "pytorch_model.bin")
    expect_error(folder, repr(key), "NaN/inf weights")


def test_save_checkpoint_refuses_non_finite_weights_and_writes_nothing(make_bert, tmp_path):
    ckpt = load_checkpoint(make_bert(name="bert-save-nan"))
    with torch.no_grad():
        ckpt.model.classifier.bias[1] = float("nan")
    with pytest.raises(LtpDeployError, match="'classifier.bias'.*NaN/inf weights"):
        save_checkpoint(ckpt.model, tmp_path / "out", ckpt.hf_config)
    assert list(tmp_path.iterdir()) == []


def _with_pickle_twin(folder, change=None):
    from safetensors.torch import load_file

    state = load_file(str(folder / "model.safetensors"))
    if change is not None:
        change(state)
    torch.save(state, folder / "pytorch_model.bin")
    return state


def test_two_weight_files_that_agree_load_silently(tmp_path, make_bert):
    folder = _copy(make_bert(name="bert-two-same"), tmp_path)
    _with_pickle_twin(folder)  # save_pretrained's two formats, the same tensors
    alone = load_checkpoint(make_bert(name="bert-two-same-ref")).model.state_dict()
    both = load_checkpoint(folder).model.state_dict()
    assert both.keys() == alone.keys() and all(torch.equal(both[k], alone[k]) for k in alone)


@pytest.mark.parametrize("older", ["pytorch_model.bin", "model.safetensors"])
def test_two_weight_files_that_disagree_name_the_one_to_delete(tmp_path, make_bert, older):
    import os

    folder = _copy(make_bert(name="bert-two-differ"), tmp_path)
    key = "bert.encoder.layer.1.output.dense.bias"
    _with_pickle_twin(folder, lambda s: s[key].add_(0.5))
    newer = "model.safetensors" if older == "pytorch_model.bin" else "pytorch_model.bin"
    os.utime(folder / older, (1_600_000_000, 1_600_000_000))
    os.utime(folder / newer, (1_700_000_000, 1_700_000_000))
    expect_error(folder, "two weight files that disagree", f"values of {key!r}",
                 f"delete the stale one ({older} is the older file)")
    _with_pickle_twin(folder, lambda s: s.pop(key))  # a tensor in one file only
    expect_error(folder, "two weight files that disagree", repr(key))


def test_a_symlink_loop_as_the_checkpoint_is_one_sentence(tmp_path):
    (tmp_path / "a").symlink_to(tmp_path / "b")
    (tmp_path / "b").symlink_to(tmp_path / "a")
    expect_error(tmp_path / "a", "is a symbolic link that leads back to itself", "ls -l")
    (tmp_path / "c").symlink_to(tmp_path / "c")  # a link to itself
    expect_error(tmp_path / "c", "symlink loop")
