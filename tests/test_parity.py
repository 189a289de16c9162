"""The dropping model against LTP's masked rule run on Hugging Face's own network (``ltp_deploy.reference``).

Wherever the reference keeps CLS, both must keep the same token set in every layer and give the same logits; the
batch-1 form (``SingleSequenceClassifier``) must give the reference's kept counts and logits for every such row.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from ltp_deploy.checkpoint import load_checkpoint
from ltp_deploy.tokenizer import load_tokenizer
from ltp_deploy.data import encode, load_glue
from ltp_deploy.exporters.openvino import BATCHED_BUCKETS
from ltp_deploy.model import Encoder, PrunedClassifier, SelfAttention, SingleSequenceClassifier
from ltp_deploy.packing import Ladder, ShapeBuckets
from ltp_deploy.reference import dropping_kept, hf_twin, learned_scorers, masked_reference
from ltp_deploy.spec import PruningSpec, ltp_keep_rates

from helpers import SENTENCES

TINY_BUCKETS = ShapeBuckets(rows=Ladder(granule=3, bits=1), slots=Ladder(granule=5, bits=1))

BATCH_SIZES = (1, 2, 5, 16)


def random_batch(cfg, batch_size: int, seed: int, max_len: int = 48, cls_id: int | None = None):
    """Random ids (``cls_id`` first if given), mixed lengths (one row always full length), right padding."""
    g = torch.Generator().manual_seed(seed)
    lengths = torch.randint(1, max_len + 1, (batch_size,), generator=g)
    lengths[0] = max_len
    width = int(lengths.max())
    ids = torch.randint(5, cfg.vocab_size, (batch_size, width), generator=g)
    mask = (torch.arange(width)[None, :] < lengths[:, None]).long()
    ids = torch.where(mask.bool(), ids, torch.full_like(ids, cfg.pad_token_id))
    if cls_id is not None:
        ids[:, 0] = cls_id
    types = torch.zeros_like(ids)
    if cfg.uses_token_type_ids:
        types = ((torch.arange(width)[None, :] >= (lengths[:, None] // 2)) & mask.bool()).long()
    return ids, mask, types


def assert_parity(model, batch, stats):
    twin = hf_twin(model)
    ref = masked_reference(twin, model.spec, *batch, scorers=learned_scorers(model))
    logits, kept = dropping_kept(model, *batch)
    valid = ~ref.cls_pruned
    stats["sequences"] += len(valid)
    stats["cls_pruned"] += int(ref.cls_pruned.sum())
    stats["kept_last"] += int(kept[:, -1].sum())
    stats["tokens"] += int(batch[1].sum())
    assert kept[:, :, 0].all(), "the dropping model must always keep position 0"
    assert torch.equal(kept[valid], ref.kept[valid]), "kept token sets differ from the masked reference"
    if valid.any():
        diff = (logits[valid] - ref.logits[valid]).abs().max().item()
        assert diff <= 1e-4, f"logits differ by {diff:.2e} where the reference keeps CLS"
    # the exported outputs (counts) match the diagnostic sets
    _, counts = model(*batch)
    assert torch.equal(counts, kept.sum(dim=2))
    assert_single_sequence_rows(model, batch, ref, valid)


def assert_single_sequence_rows(model, batch, ref, rows):
    """The batch-1 form (export --single-sequence) on each selected row alone, trimmed to its own length (even
    rows) or with the batch's padding (odd rows): the reference's kept counts and logits."""
    single, ref_counts = SingleSequenceClassifier(model).eval(), ref.kept.sum(dim=2)
    for b in torch.nonzero(rows).squeeze(1).tolist():
        width = int(batch[1][b].sum()) if b % 2 == 0 else batch[1].shape[1]
        with torch.no_grad():
            row_logits, row_counts = single(*(t[b:b + 1, :width] for t in batch))
        assert torch.equal(row_counts[0], ref_counts[b]), f"single-sequence form, row {b}: kept counts differ"
        diff = (row_logits[0] - ref.logits[b]).abs().max().item()
        assert diff <= 1e-4, f"single-sequence form, row {b}: logits differ by {diff:.2e}"


def with_random_scorers(model, spec, seed: int = 0):
    """``model``'s weights under a learned-scorer ``spec``, its scorers seeded at random with a spread wide enough
    that scores straddle the thresholds (about half the tokens of a layer fall on each side of 1 / n_ref)."""
    torch.manual_seed(seed)
    pruned = PrunedClassifier(model.config, spec)
    for layer in pruned.backbone.encoder.layer:
        if layer.pruner is not None:
            torch.nn.init.normal_(layer.pruner.scorer.weight, std=2.0 / model.config.hidden_size ** 0.5)
            torch.nn.init.normal_(layer.pruner.scorer.bias, std=0.5)
    state = {**model.state_dict(), **{k: v for k, v in pruned.state_dict().items() if ".pruner." in k}}
    pruned.load_state_dict(state, strict=True)
    return pruned


def check_specs(model, specs, batches):
    for spec in specs:
        pruned = (with_random_scorers(model, spec) if spec.scorer == "learned" else model.with_spec(spec)).eval()
        stats = dict(sequences=0, cls_pruned=0, kept_last=0, tokens=0)
        for batch in batches:
            assert_parity(pruned, batch, stats)
        print(f"{spec.mode}: reference pruned CLS in {stats['cls_pruned']}/{stats['sequences']} sequences")
        compared = stats["sequences"] - stats["cls_pruned"]
        assert compared >= max(1, stats["sequences"] // 6), "the reference pruned CLS almost everywhere: nothing compared"
        assert stats["kept_last"] < 0.9 * stats["tokens"], "almost nothing was dropped: the test would prove little"


@pytest.mark.parametrize("arch, separate_qkv, buckets", [
    ("bert", False, None), ("roberta", False, None), ("bert", True, None), ("bert", True, BATCHED_BUCKETS),
    ("roberta", False, TINY_BUCKETS)])
def test_random_weights_match_masked_reference(arch, separate_qkv, buckets, make_bert, make_roberta, monkeypatch):
    """``separate_qkv``: attention in the three-GEMM form an OpenVINO export traces (``SelfAttention``); ``buckets``:
    row counts and attention lengths rounded up as the OpenVINO INT8 graph does (``Encoder.buckets``), with the
    shipped ladders and with ladders fine enough that every batch here is rounded."""
    monkeypatch.setattr(SelfAttention, "separate_qkv", separate_qkv)
    monkeypatch.setattr(Encoder, "buckets", buckets)
    ckpt = load_checkpoint((make_bert if arch == "bert" else make_roberta)())
    cfg = ckpt.config
    specs = [
        PruningSpec.threshold([0.0, 0.002, 0.003, 0.004] if arch == "bert" else [0.0, 0.001, 0.0015, 0.002]),
        PruningSpec.topk(ltp_keep_rates(0.6, cfg.num_layers)),
        PruningSpec.topk([1.0, 0.8, 0.7, 0.6]),
        PruningSpec.threshold([0.0, 1 / 128, 1 / 128, 0.0], scorer="learned", reference_cls="kept"),
        PruningSpec.topk([1.0, 0.7, 0.7, 0.7], scorer="learned", reference_cls="kept"),
        # ToP's rule: one active layer, where dropping and ToP's masking decide alike (tests/test_top.py: more)
        PruningSpec.rank_bins([None, (1, 1, 0, 1, 0, 1, 1, 0, 1, 0), None, None]),
    ]
    batches = [random_batch(cfg, b, seed=b) for b in BATCH_SIZES]
    check_specs(ckpt.model, specs, batches)


@pytest.mark.slow
def test_minilm_matches_masked_reference_on_real_sentences(minilm_dir, glue):
    ckpt = load_checkpoint(minilm_dir)
    tokenizer = load_tokenizer(minilm_dir)
    dev = load_glue("sst2", "dev", glue)
    batches = []
    for size, start in zip(BATCH_SIZES, (0, 1, 3, 8)):
        enc = encode(tokenizer, dev, 128, indices=range(start * 8, start * 8 + size))
        batches.append(tuple(torch.from_numpy(enc[k]) for k in ("input_ids", "attention_mask", "token_type_ids")))
    specs = [PruningSpec.threshold([0.0, 0.002, 0.003, 0.004, 0.005, 0.006]), PruningSpec.topk(ltp_keep_rates(0.4, 6))]
    check_specs(ckpt.model, specs, batches)


def test_minilm_random_inputs_and_pairs(minilm_dir):
    ckpt = load_checkpoint(minilm_dir)
    cfg = ckpt.config
    tokenizer = load_tokenizer(minilm_dir)
    enc = tokenizer(SENTENCES[:6], SENTENCES[6:12], padding=True, return_tensors="pt")
    pairs = (enc["input_ids"], enc["attention_mask"], enc["token_type_ids"])
    batches = [pairs] + [random_batch(cfg, b, seed=10 + b, cls_id=tokenizer.cls_token_id) for b in (1, 8)]
    check_specs(ckpt.model, [PruningSpec.topk(ltp_keep_rates(0.3, 6))], batches)


@pytest.mark.parametrize("arch", ["bert", "roberta"])
def test_dense_model_matches_transformers(arch, make_bert, make_roberta):
    """Without a spec the network is exactly the stock transformers classifier."""
    ckpt = load_checkpoint((make_bert if arch == "bert" else make_roberta)())
    twin = hf_twin(ckpt.model)
    ids, mask, types = random_batch(ckpt.config, 6, seed=3)
    with torch.no_grad():
        ours, kept = ckpt.model(ids, mask, types)
        theirs = twin(input_ids=ids, attention_mask=mask, token_type_ids=types).logits
    assert (ours - theirs).abs().max().item() <= 1e-5
    assert torch.equal(kept, mask.sum(1, keepdim=True).expand_as(kept))


def test_thresholds_drop_more_as_they_rise(make_bert):
    """Monotone in the threshold: a higher threshold never keeps more tokens (same weights, same inputs)."""
    ckpt = load_checkpoint(make_bert())
    batch = random_batch(ckpt.config, 16, seed=7)
    totals = []
    for scale in (0.0, 0.5, 1.0, 2.0):
        spec = PruningSpec.threshold([0.0] + [scale * 0.004] * 3)
        with torch.no_grad():
            _, kept = ckpt.model.with_spec(spec)(*batch)
        totals.append(int(kept.sum()))
    assert totals == sorted(totals, reverse=True) and totals[0] > totals[-1]


def test_reference_cls_rule_is_reported(minilm_dir):
    """High thresholds make LTP's unprotected rule drop CLS; the dropping model keeps it and counts it."""
    ckpt = load_checkpoint(minilm_dir)
    spec = PruningSpec.threshold([0.0, 0.01, 0.02, 0.03, 0.04, 0.05])
    model = ckpt.model.with_spec(spec)
    batch = random_batch(ckpt.config, 8, seed=1, max_len=24, cls_id=101)
    ref = masked_reference(hf_twin(model), spec, *batch)
    _, kept = dropping_kept(model, *batch)
    assert ref.cls_pruned.any()
    assert not ref.kept[ref.cls_pruned, -1, 0].any() and kept[:, -1, 0].all()
    assert np.all(kept.sum(dim=2).numpy() >= 1)


@pytest.mark.parametrize("mode", ["absolute_threshold", "topk"])
def test_reference_keeping_cls_matches_everywhere(minilm_dir, mode):
    """A spec learned with CLS kept (``reference_cls="kept"``, as ``train`` writes) is compared on every sequence,
    even at settings where LTP's unprotected rule would drop CLS in most of them."""
    ckpt = load_checkpoint(minilm_dir)
    if mode == "absolute_threshold":
        spec = PruningSpec.threshold([0.0, 0.01, 0.02, 0.03, 0.04, 0.05], reference_cls="kept")
    else:
        spec = PruningSpec.topk([1.0, 1.0, 1.0, 0.5, 0.2, 0.05], reference_cls="kept")
    model = ckpt.model.with_spec(spec).eval()
    batch = random_batch(ckpt.config, 8, seed=1, max_len=24, cls_id=101)
    unprotected = masked_reference(hf_twin(model), PruningSpec.from_dict({**spec.to_dict(), "reference_cls": "prunable"}),
                                   *batch)
    ref = masked_reference(hf_twin(model), spec, *batch)
    logits, kept = dropping_kept(model, *batch)
    if mode == "absolute_threshold":
        assert unprotected.cls_pruned.any(), "the setting must make LTP's own rule drop CLS somewhere"
    assert not ref.cls_pruned.any() and ref.kept[:, :, 0].all()
    assert torch.equal(kept, ref.kept)
    assert (logits - ref.logits).abs().max().item() <= 1e-4
    assert_single_sequence_rows(model, batch, ref, ~ref.cls_pruned)
