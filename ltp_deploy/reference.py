"""LTP's (and ToP's) masked rule on Hugging Face's own network: the independent reference for the dropping model.

This is how the training code runs: every layer computes all positions at full length; a pruned token only
stops being a *key* (additive -10000 mask) from the next layer on; nothing protects CLS (unless the spec
was learned with CLS kept: ``spec.reference_cls == "kept"``, as ``ltp-deploy train`` does). The network is
``transformers``' ``BertForSequenceClassification`` / ``RobertaForSequenceClassification`` with eager
attention, so it shares no code with ``ltp_deploy.model``; only the weights are copied.

Example::

    hf = hf_twin(ckpt.model)
    ref = masked_reference(hf, ckpt.spec, input_ids, attention_mask, token_type_ids)
    ref.logits, ref.kept  # (B, C), (B, L, T) bool
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from ltp_deploy.model import PrunedClassifier
from ltp_deploy.spec import PruningSpec

LTP_MASK_VALUE = -10000.0  # the additive key mask of the LTP code


@dataclass
class ReferenceOutput:
    logits: torch.Tensor  # (B, C)
    kept: torch.Tensor  # (B, L, T) bool: alive after each layer's decision, at full length
    cls_pruned: torch.Tensor  # (B,) bool: the rule dropped position 0 in some layer

    @property
    def kept_counts(self) -> torch.Tensor:  # (B, L)
        return self.kept.sum(dim=2)


def hf_twin(model: PrunedClassifier):
    """A ``transformers`` classifier (eager attention, eval mode) holding ``model``'s weights."""
    import transformers

    cfg = model.config
    kwargs = dict(
        vocab_size=cfg.vocab_size, hidden_size=cfg.hidden_size, num_hidden_layers=cfg.num_layers,
        num_attention_heads=cfg.num_heads, intermediate_size=cfg.intermediate_size,
        max_position_embeddings=cfg.max_position_embeddings, type_vocab_size=cfg.type_vocab_size,
        layer_norm_eps=cfg.layer_norm_eps, pad_token_id=cfg.pad_token_id, num_labels=cfg.num_labels,
        hidden_act=cfg.hidden_act,
    )
    if cfg.arch == "bert":
        config = transformers.BertConfig(**kwargs)
        twin_cls = transformers.BertForSequenceClassification
    else:
        config = transformers.RobertaConfig(**kwargs)
        twin_cls = transformers.RobertaForSequenceClassification
    config._attn_implementation = "eager"  # attention probabilities are needed for the scores
    twin = twin_cls(config)
    twin.load_state_dict({k: v for k, v in model.state_dict().items() if ".pruner." not in k}, strict=True)
    return twin.eval()


def learned_scorers(model: PrunedClassifier) -> dict[int, tuple[torch.Tensor, torch.Tensor]]:
    """Each pruning layer's learned scorer as plain tensors ``{layer: (weight (1, D), bias (1,))}``; empty for the
    attention score. ``masked_reference`` takes them beside the twin (Hugging Face's network has no scorer)."""
    return {i: (layer.pruner.scorer.weight.detach().clone(), layer.pruner.scorer.bias.detach().clone())
            for i, layer in enumerate(model.backbone.encoder.layer)
            if layer.pruner is not None and layer.pruner.scorer is not None}


@torch.no_grad()
def masked_reference(twin, spec: PruningSpec | None, input_ids, attention_mask, token_type_ids=None,
                     scorers: dict | None = None) -> ReferenceOutput:
    """Run LTP's masked rule (threshold or top-k), or ToP's (rank bins), on ``twin`` (from ``hf_twin``);
    ``spec=None`` is dense.

    A spec with a learned scorer scores layer ``l`` by ``2 * sigmoid(h @ w_l.T + b_l) / n_ref`` on the attention
    block's output ``h``, with ``scorers[l] = (w_l, b_l)`` (``learned_scorers``)."""
    if spec is not None and spec.scorer == "learned" and set(scorers or {}) != set(spec.pruning_layers()):
        raise ValueError("a learned-scorer spec needs one (weight, bias) per pruning layer: pass learned_scorers()")
    base = twin.bert if hasattr(twin, "bert") else twin.roberta
    if token_type_ids is None:
        token_type_ids = torch.zeros_like(input_ids)
    hidden = base.embeddings(input_ids=input_ids, token_type_ids=token_type_ids)
    alive = attention_mask.bool().clone()
    n_orig = attention_mask.sum(dim=1)
    num_heads = twin.config.num_attention_heads
    kept, cls_pruned = [], torch.zeros(input_ids.shape[0], dtype=torch.bool)
    for index, layer in enumerate(base.encoder.layer):
        key_mask = (~alive)[:, None, None, :].float() * LTP_MASK_VALUE
        out = layer.attention(hidden, key_mask, output_attentions=True)
        attention_output, probs = out[0], out[1]
        if spec is not None:
            if spec.scorer == "learned":
                scores = _learned_scores(attention_output, *scorers[index], spec.n_ref) if index in scorers else None
            elif spec.mode == "rank_bins":  # ToP: every real query votes, the ones it pruned too
                scores = _top_scores(probs, attention_mask.bool())
            else:
                scores = _attention_scores(probs, alive, num_heads, spec.n_ref)
            pruned = _pruned_by_rule(spec, index, scores, alive, n_orig)
            if spec.reference_cls == "kept":
                pruned[:, 0] = False
            cls_pruned |= pruned[:, 0]
            alive = alive & ~pruned
        hidden = layer.feed_forward_chunk(attention_output)
        kept.append(alive.clone())
    if hasattr(twin, "bert"):
        logits = twin.classifier(twin.dropout(base.pooler(hidden)))
    else:
        logits = twin.classifier(hidden)
    return ReferenceOutput(logits=logits, kept=torch.stack(kept, dim=1), cls_pruned=cls_pruned)


def _attention_scores(probs, alive, num_heads, n_ref):  # (B, H, T, T), (B, T) -> (B, T)
    """LTP's score, written the way the LTP code reads."""
    from_alive_queries = probs * alive[:, None, :, None]  # rows of dead queries count zero
    return from_alive_queries.sum(dim=1).sum(dim=1) / (num_heads * n_ref)


def _learned_scores(hidden, weight, bias, n_ref):  # (B, T, D), (1, D), (1,) -> (B, T)
    return 2.0 * torch.sigmoid(torch.einsum("btd,d->bt", hidden, weight[0]) + bias[0]) / n_ref


def _top_scores(probs, real):  # (B, H, T, T), (B, T) -> (B, T)
    """ToP's score: the attention probabilities averaged over heads and query rows (``pred_score`` in its
    ``ToPBertEncoder.forward``). ToP's code lets padding rows vote too, so its decisions change with how a batch is
    padded; here padding rows are left out, as in an unpadded run."""
    probs = probs * real[:, None, :, None]
    return probs.reshape(probs.shape[0], -1, probs.shape[-1]).mean(dim=1)


def _top_pruned(gates, scores, alive):  # ToP's get_new_attention_mask_for_inference, on one layer
    if gates is None:
        return torch.zeros_like(alive)
    others = alive[:, 1:].float()  # CLS is neither ranked nor pruned
    token_index = torch.argsort(scores[:, 1:] * others, dim=1, descending=True, stable=True)
    token_rank = torch.argsort(token_index, dim=1)
    effective_length = others.sum(dim=1)
    bins = ((token_rank / (effective_length + 1e-6).unsqueeze(-1)).clamp(0.0, 1.0) * len(gates)).long()
    keep = torch.tensor([*gates, 0], dtype=torch.float32)[bins] != 0
    pruned = torch.zeros_like(alive)
    pruned[:, 1:] = alive[:, 1:] & ~keep
    return pruned


def _pruned_by_rule(spec, index, scores, alive, n_orig):
    """Tokens the rule drops in this layer (among alive ones); ``scores`` (B, T), None where the layer keeps all."""
    if scores is None:
        return torch.zeros_like(alive)
    if spec.mode == "rank_bins":
        return _top_pruned(spec.bin_gates[index], scores, alive)
    if spec.mode == "absolute_threshold":
        threshold = spec.thresholds[index]
        if threshold == 0.0:
            return torch.zeros_like(alive)
        return alive & (scores < max(1e-5, threshold))
    pruned = torch.zeros_like(alive)
    for b in range(scores.shape[0]):  # the reference may loop: clarity over speed
        k = int(round(int(n_orig[b]) * spec.keep_rates[index]))
        alive_positions = torch.nonzero(alive[b]).squeeze(1)
        ranked = alive_positions[torch.argsort(scores[b, alive_positions], descending=True, stable=True)]
        pruned[b, ranked[k:]] = True
    return pruned


@torch.no_grad()
def dropping_kept(model: PrunedClassifier, input_ids, attention_mask, token_type_ids=None):
    """Run the dropping model; return ``(logits (B, C), kept (B, L, T) bool)`` with kept sets mapped back to
    original positions. Diagnostic only: hooks record each pruner's decision, the forward is unchanged."""
    decisions = {}
    layers = model.backbone.encoder.layer
    hooks = [layer.pruner.register_forward_hook(lambda _m, _a, keep, i=i: decisions.__setitem__(i, keep))
             for i, layer in enumerate(layers) if layer.pruner is not None]
    try:
        logits, _ = model(input_ids, attention_mask, token_type_ids)
    finally:
        for h in hooks:
            h.remove()
    batch, length = input_ids.shape
    alive = attention_mask.bool().clone()  # (B, T) at original positions
    origin = [torch.arange(length)[alive[b]] for b in range(batch)]  # original position of each current slot
    kept = []
    for i in range(len(layers)):
        if i in decisions:
            keep = decisions[i]  # (B, T_current): current slots, padding slots already False
            origin = [origin[b][keep[b, : len(origin[b])]] for b in range(batch)]
            alive = torch.zeros_like(alive)
            for b in range(batch):
                alive[b, origin[b]] = True
        kept.append(alive.clone())
    return logits, torch.stack(kept, dim=1)


def compare(model: PrunedClassifier, twin, spec, input_ids, attention_mask, token_type_ids=None) -> dict:
    """The dropping model against the masked reference on one batch.

    Returns counts over the batch: sequences, sequences where the reference pruned CLS, and over the others
    (where both rules must agree) sequences whose kept sets match in every layer, per-layer set agreement and
    the largest |logit difference|.
    """
    ref = masked_reference(twin, spec, input_ids, attention_mask, token_type_ids, learned_scorers(model))
    logits, kept = dropping_kept(model, input_ids, attention_mask, token_type_ids)
    valid = ~ref.cls_pruned
    same = (kept == ref.kept).all(dim=2)  # (B, L)
    return {
        "sequences": int(input_ids.shape[0]),
        "reference_cls_pruned": int(ref.cls_pruned.sum()),
        "compared": int(valid.sum()),
        "kept_sets_equal": int(same[valid].all(dim=1).sum()),
        "layer_sets_equal": same[valid].sum(dim=0).tolist(),
        "max_abs_diff": float((logits - ref.logits).abs()[valid].max()) if valid.any() else 0.0,
    }
