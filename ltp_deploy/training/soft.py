"""LTP's soft stage: learned thresholds, the soft-mask forward, and what the masks cost (kept share, FLOPs)."""

from __future__ import annotations

import torch
from torch import nn

from ltp_deploy.flops import dense_flops, expected_flops
from ltp_deploy.model import PrunedClassifier, token_scores
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

    def spec(self, n_ref: int, source: dict) -> PruningSpec:
        """The hard-rule spec; a threshold that ended at or below 0 becomes exactly 0 (that layer drops nothing)."""
        values = [max(0.0, float(v)) for v in self().detach()]
        return PruningSpec.threshold(values, n_ref=n_ref, source=source, reference_cls="kept")


def soft_forward(model: PrunedClassifier, thresholds: torch.Tensor, learned: torch.Tensor, input_ids,
                 attention_mask, token_type_ids, temperature: float, n_ref: int):
    """LTP's soft-mask forward, run on the model's own modules; no token is dropped.

    Args:
        model: a dense ``PrunedClassifier`` (its layers' pruners are not used).
        thresholds: (L,) current thresholds; ``learned``: (L,) bool, the layers that get a soft mask.
        input_ids, attention_mask, token_type_ids: (B, T) int64, right-padded.
        temperature: sigmoid width T, in score units.
        n_ref: the constant score normaliser.
    Returns:
        ``logits`` (B, C) and ``masks`` (B, L', T): the soft keep mask of each masked layer (CLS fixed at 1).
    """
    backbone = model.backbone
    alive = attention_mask.bool()  # (B, T): padding only; soft masking never removes a token
    layout = Padded(alive)  # every slot is a row, padding included
    x = backbone.embeddings(input_ids, token_type_ids).flatten(0, 1)[None]  # (1, B*T, D)
    is_cls = torch.arange(alive.shape[1], device=x.device) == 0  # (T,): kept by the deployed rule, never masked
    masks = []
    for i, layer in enumerate(backbone.encoder.layer):
        a, probs = layer.attention(x, layout)  # (1, B*T, D), (B, H, T, T)
        x = layer.output(layer.intermediate(a), a)  # (1, B*T, D)
        if learned[i]:
            s = token_scores(probs, alive, n_ref)  # (B, T)
            mask = torch.sigmoid((s - thresholds[i]) / temperature).masked_fill(is_cls, 1.0)  # (B, T)
            x = x * mask.reshape(1, -1, 1)
            masks.append(mask)
    masks = torch.stack(masks, dim=1) if masks else x.new_zeros(alive.shape[0], 0, alive.shape[1])
    return model.head(layout.firsts(x)), masks


def mask_penalty(masks, attention_mask):  # (B, L', T), (B, T) -> scalar
    """``sum over layers of mean(mask)``, the mean taken over the batch and real (unpadded) positions."""
    real = attention_mask.to(masks.dtype)[:, None, :]  # (B, 1, T)
    return ((masks * real).sum(dim=(0, 2)) / real.sum()).sum()


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
