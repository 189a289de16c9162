"""LTP's soft stage: learned thresholds, the soft-mask forward, and what the masks cost (kept share, FLOPs)."""

from __future__ import annotations

import torch
from torch import nn

from ltp_deploy.flops import dense_flops, expected_flops
from ltp_deploy.model import PrunedClassifier
from ltp_deploy.pruner import learned_scores, token_scores
from ltp_deploy.packing import Padded
from ltp_deploy.spec import PruningSpec


class Thresholds(nn.Module):
    """LTP's learned thresholds: ``thr_l = final_token_threshold * l / L + delta_l``, one delta per layer.

    ``learned[l]`` is False for a layer whose threshold stays at its base value (layer 0 in LTP, base 0: that
    layer then prunes nothing and gets no soft mask).
    """

    def __init__(self, num_layers: int, final_token_threshold: float, learn_first_layer: bool):
        super().__init__()
        base = [final_token_threshold * i / num_layers for i in range(num_layers)]
        self.register_buffer("base", torch.tensor(base, dtype=torch.float32))
        self.register_buffer("learned", torch.tensor([learn_first_layer or i > 0 for i in range(num_layers)]))
        self.delta = nn.Parameter(torch.zeros(num_layers))

    def forward(self) -> torch.Tensor:  # (L,)
        return self.base + self.delta * self.learned

    @torch.no_grad()
    def clamp_(self) -> None:
        """Keep every threshold at or above 0: below it a layer drops nothing whatever the value, and the soft
        mask's gradient fades, so a threshold that wandered there could never come back."""
        self.delta.copy_(torch.maximum(self.delta, -self.base))

    def spec(self, n_ref: int, source: dict, scorer: str = "attention") -> PruningSpec:
        """The hard-rule spec; a threshold that ended at or below 0 becomes exactly 0 (that layer drops nothing)."""
        values = [max(0.0, float(v)) for v in self().detach()]
        return PruningSpec.threshold(values, n_ref=n_ref, source=source, reference_cls="kept", scorer=scorer)


class LearnedScorers(nn.Module):
    """One ``Linear(D, 1)`` per layer for ``--scorer learned`` (``pruner.TokenPruner``), trained in stage 1.

    The bias starts at 2, the weights near 0: every token's score starts at ``2 sigmoid(2) / n_ref`` (1.76x the
    mean attention score), above LTP's initial thresholds, so nothing is dropped before the budget asks for it;
    the task loss then tells the scorer which tokens matter.
    """

    def __init__(self, num_layers: int, hidden_size: int):
        super().__init__()
        self.layers = nn.ModuleList(nn.Linear(hidden_size, 1) for _ in range(num_layers))
        for linear in self.layers:
            nn.init.normal_(linear.weight, std=0.02)
            nn.init.constant_(linear.bias, 2.0)

    def state_for(self, model: PrunedClassifier) -> dict[str, torch.Tensor]:
        """The weights of ``model``'s pruners (only layers that prune have one), keyed as its state dict."""
        prefix = f"{model.config.arch}.encoder.layer"
        return {f"{prefix}.{i}.pruner.scorer.{name}": value.detach().clone()
                for i, layer in enumerate(model.backbone.encoder.layer) if layer.pruner is not None
                for name, value in self.layers[i].state_dict().items()}


SOFT_MASKING = ("attention", "outputs")


def soft_forward(model: PrunedClassifier, thresholds: torch.Tensor, learned: torch.Tensor, input_ids,
                 attention_mask, token_type_ids, temperature: float, n_ref: int, masking: str = "attention",
                 scorers: LearnedScorers | None = None, scores_out: list | None = None):
    """The soft-mask forward, run on the model's own modules; no token is dropped.

    Layer ``l``'s mask is ``sigmoid((s - thr_l) / T)`` on its scores ``s`` (CLS fixed at 1). ``masking`` says what
    the masks act on:

    * ``"attention"``: a token weighs in later layers by its *reach*, the product of its masks so far: as a key,
      ``log(reach)`` is added to its attention logits; as a query, its attention row counts ``reach`` times in the
      scores. With 0/1 masks this is exactly the hard rule (a dropped token is neither attended to nor scores), so
      what the weights learn here carries over to the deployed graph.
    * ``"outputs"``: LTP's soft stage: the layer's output rows are multiplied by the mask; masked tokens still sit
      in every later layer's attention as keys (with near-zero inputs) and queries.

    Args:
        model: a dense ``PrunedClassifier`` (its layers' pruners are not used).
        thresholds: (L,) current thresholds; ``learned``: (L,) bool, the layers that get a soft mask.
        input_ids, attention_mask, token_type_ids: (B, T) int64, right-padded.
        temperature: sigmoid width T, in score units.
        n_ref: the constant score normaliser.
        masking: ``"attention"`` or ``"outputs"`` (``SOFT_MASKING``).
        scorers: learned scorers (scores from the attention block's output rows), or None for attention scores.
        scores_out: when given, each masked layer's scores (B, T) are appended to it (``importance_loss``).
    Returns:
        ``logits`` (B, C) and ``masks`` (B, L', T): the soft keep mask of each masked layer (CLS fixed at 1).
    """
    backbone = model.backbone
    alive = attention_mask.bool()  # (B, T): padding only; soft masking never removes a token
    layout = Padded(alive)  # every slot is a row, padding included
    x = backbone.embeddings(input_ids, token_type_ids).flatten(0, 1)[None]  # (1, B*T, D)
    is_cls = torch.arange(alive.shape[1], device=x.device) == 0  # (T,): kept by the deployed rule, never masked
    log_reach = torch.zeros(alive.shape, dtype=x.dtype, device=x.device)  # (B, T): log of the masks' product
    masks = []
    for i, layer in enumerate(backbone.encoder.layer):
        a, probs = layer.attention(x, layout)  # (1, B*T, D), (B, H, T, T)
        x = layer.output(layer.intermediate(a), a)  # (1, B*T, D)
        if learned[i]:
            if scorers is None:
                queries = alive if masking == "outputs" else log_reach.exp() * alive  # (B, T) query weights
                scores = token_scores(probs, queries, n_ref)  # (B, T)
            else:
                scores = layout.pad(learned_scores(scorers.layers[i], a, n_ref))[..., 0]  # (B, T)
            if scores_out is not None:
                scores_out.append(scores)
            z = (scores - thresholds[i]) / temperature  # (B, T)
            mask = torch.sigmoid(z).masked_fill(is_cls, 1.0)
            masks.append(mask)
            if masking == "outputs":
                x = x * mask.reshape(1, -1, 1)
            else:
                log_reach = log_reach + nn.functional.logsigmoid(z).masked_fill(is_cls, 0.0)
                layout = Padded(alive, log_reach)
    masks = torch.stack(masks, dim=1) if masks else x.new_zeros(alive.shape[0], 0, alive.shape[1])
    return model.head(layout.firsts(x)), masks


def final_importance(teacher: PrunedClassifier, input_ids, attention_mask, token_type_ids, n_ref: int):
    """The dense ``teacher``'s last-layer token scores (B, T), without gradient: the ranking ToP distils."""
    layers = teacher.config.num_layers
    last = torch.arange(layers) == layers - 1
    scores: list = []
    with torch.no_grad():
        soft_forward(teacher, torch.zeros(layers), last, input_ids, attention_mask, token_type_ids, 1.0, n_ref,
                     scores_out=scores)
    return scores[0]


def importance_loss(scores: list, target, attention_mask):  # [(B, T)] * L', (B, T), (B, T) -> scalar
    """ToP's ranking distillation in listwise form: the mean over layers and sequences of
    ``KL(target / sum target || s_l / sum s_l)`` over each sequence's real tokens but CLS (always kept), so that
    every pruning layer's scores rank tokens as the dense model's last layer does. Scores must be positive."""
    real = attention_mask.bool().clone()
    real[:, 0] = False
    tiny = torch.finfo(target.dtype).tiny

    def log_share(x):
        x = torch.log(x.clamp_min(tiny)).masked_fill(~real, float("-inf"))
        return torch.log_softmax(x, dim=1).masked_fill(~real, 0.0)

    goal = log_share(target)
    losses = [((goal.exp() * (goal - log_share(s))).sum(dim=1)).mean() for s in scores]
    return torch.stack(losses).mean() if losses else target.new_zeros(())


def mask_penalty(masks, attention_mask):  # (B, L', T), (B, T) -> scalar
    """``sum over layers of mean(mask)``, the mean taken over the batch and real (unpadded) positions."""
    real = attention_mask.to(masks.dtype)[:, None, :]  # (B, 1, T)
    return ((masks * real).sum(dim=(0, 2)) / real.sum()).sum()


def hard_flops_ratio(config, masks, learned, attention_mask):  # (B, L', T), (L,) bool, (B, T) -> scalar
    """The hard rule's FLOPs over the dense FLOPs (a mask of 0.5 or more keeps its token: the score reaches the
    threshold), with the gradient of ``soft_flops_ratio`` (a straight-through estimate): the budget then steers
    the FLOPs that the deployed rule spends, in the direction the soft masks say."""
    soft = soft_flops_ratio(config, masks, learned, attention_mask)
    hard = soft_flops_ratio(config, (masks >= 0.5).to(masks.dtype), learned, attention_mask)
    return hard + soft - soft.detach()


def soft_flops_ratio(config, masks, learned, attention_mask):  # (B, L', T), (L,) bool, (B, T) -> scalar
    """Expected FLOPs of the soft masks over the dense FLOPs of the same batch, differentiable in the masks.

    A token's chance of reaching past layer ``l`` is the product of its masks up to ``l`` (the hard rule never
    brings a dropped token back); a layer without a mask keeps what reaches it. Counted by
    ``ltp_deploy.flops.expected_flops`` on real (unpadded) tokens.
    """
    real = attention_mask.to(masks.dtype)  # (B, T)
    per_layer, masked = [], iter(masks.unbind(dim=1))
    for is_learned in learned.tolist():
        per_layer.append(next(masked) if is_learned else torch.ones_like(real))
    reach = torch.cumprod(torch.stack(per_layer, dim=1), dim=1) * real[:, None, :]  # (B, L, T)
    n_orig = real.sum(dim=1)  # (B,)
    pruned = expected_flops(config, n_orig, reach.sum(dim=2)).sum()
    dense = float(dense_flops(config, n_orig.detach().numpy()).sum())
    return pruned / dense
