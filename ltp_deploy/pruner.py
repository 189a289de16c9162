"""One pruning layer's keep/drop decision: LTP's attention score or a learned score, and the spec's rule.

``TokenPruner`` holds the rule of one layer (``absolute_threshold``: keep a token whose score reaches the threshold;
``topk``: keep the ``round(n * rate)`` best-scoring alive tokens; ``rank_bins``: ToP's gates over rank bins) and
returns the kept mask; CLS is always kept.
``layer_pruner`` builds it from a ``PruningSpec`` (None where the layer provably keeps every token).

Example::

    pruner = layer_pruner(spec, 2, max_tokens=512, hidden_size=384)
    keep = pruner(pruner.scores(probs, rows, layout), layout.alive, n_orig)   # (B, T) bool
"""

from __future__ import annotations

import torch
from torch import nn

from ltp_deploy.spec import SCORE_FLOOR, PruningSpec


def token_scores(probs, alive, n_ref: int):  # (B, H, T, T), (B, T) or None -> (B, T)
    """LTP importance: attention each key receives from alive queries, summed over heads, / (H * n_ref).

    ``alive=None``: every query is alive (a single sequence without padding).
    """
    if alive is not None:
        probs = probs * alive[:, None, :, None].to(probs.dtype)
    return probs.sum(dim=(1, 2)) / (probs.shape[1] * n_ref)


class TokenPruner(nn.Module):
    """One layer's keep/drop decision: a constant from the spec (threshold or keep rate) and the layer's score.

    ``scorer="attention"``: LTP's score, the attention each token receives (``token_scores``); no parameter.
    ``scorer="learned"``: ``learned_scores``, from the attention block's output rows through ``self.scorer``, a
    ``Linear(D, 1)`` trained with the thresholds (``training.soft``), saved as ``...layer.<l>.pruner.scorer.*``.
    """

    def __init__(self, mode: str, value, n_ref: int, max_tokens: int, scorer: str = "attention",
                 hidden_size: int | None = None):
        super().__init__()
        self.mode, self.value, self.n_ref = mode, value, n_ref
        self.scorer = nn.Linear(hidden_size, 1) if scorer == "learned" else None
        if mode == "rank_bins":  # value: the bin gates; keep_table[n, r]: does rank r of n alive tokens stay?
            self.register_buffer("keep_table", rank_bin_table(value, max_tokens), persistent=False)
        if mode == "topk":
            # k = round(n * rate) for every possible unpadded length n, in Python's float64 arithmetic: the
            # graph then looks k up instead of rounding n * rate in float32, which differs at .5 boundaries.
            table = torch.tensor([round(n * value) for n in range(max_tokens + 1)], dtype=torch.long)
            self.register_buffer("keep_table", table, persistent=False)

    def extra_repr(self) -> str:
        value = "".join(map(str, self.value)) if self.mode == "rank_bins" else f"{self.value:g}"
        return f"mode={self.mode}, value={value}, n_ref={self.n_ref}"

    def scores(self, probs, rows, layout):  # (B, H, T, T), (1, N, D), a layout -> (B, T)
        """This layer's token scores in the layout's slots."""
        if self.scorer is None:
            return token_scores(probs, layout.alive, self.n_ref)
        return layout.pad(learned_scores(self.scorer, rows, self.n_ref))[..., 0]

    def forward(self, scores, alive, n_orig):  # (B, T), (B, T) or None, (B,) -> keep (B, T)
        """The tokens that survive: alive ones that pass the rule, and CLS. ``alive=None``: all are alive."""
        if self.mode == "absolute_threshold":
            keep = scores >= max(SCORE_FLOOR, self.value)
        elif self.mode == "rank_bins":
            keep = _rank_bin_keep(self.keep_table, scores, alive)
        else:
            k = self.keep_table[n_orig]  # (B,)
            keep = _rank_among_alive(scores, alive) < k[:, None]
        if alive is None:
            keep[:, 0] = True  # CLS is read by the head: always kept (one ScatterElements in the graph)
            return keep
        is_cls = torch.arange(alive.shape[1], device=alive.device) == 0
        return alive & (keep | is_cls)


def learned_scores(scorer: nn.Linear, rows, n_ref: int):  # (..., D) -> (..., 1)
    """A learned scorer's scores, ``2 * sigmoid(scorer(rows)) / n_ref``: in (0, 2 / n_ref), the attention score's
    units (``spec.PruningSpec.scorer``)."""
    return torch.sigmoid(scorer(rows)) * (2.0 / n_ref)


def rank_bin_table(gates, max_tokens: int):  # -> (max_tokens, max_tokens) bool
    """Whether rank ``r`` (0-based, by descending score) among ``n`` alive tokens other than CLS stays under ToP's
    bin gates: bin ``floor(min(r / (n + 1e-6), 1) * len(gates))`` in float32, ToP's arithmetic. A table, computed
    here once, so that no runtime's division (OpenVINO's may multiply by a reciprocal) moves a rank across a bin
    edge; ranks at or past ``n`` land on bin ``len(gates)``, which drops."""
    n = torch.arange(max_tokens, dtype=torch.float32)[:, None]
    rank = torch.arange(max_tokens)[None, :]
    bins = ((rank / (n + 1e-6)).clamp(0.0, 1.0) * len(gates)).long()
    return torch.tensor([*gates, 0], dtype=torch.bool)[bins]


def _rank_bin_keep(table, scores, alive):  # (N, N), (B, T), (B, T) or None -> (B, T) bool
    others = torch.arange(scores.shape[1], device=scores.device) > 0  # (T,): CLS is neither ranked nor pruned
    others = others[None, :] if alive is None else alive & others
    n = others.sum(dim=1, keepdim=True)  # (B, 1)
    rank = _rank_among_alive(scores, others)  # (B, T)
    return table.flatten()[n * table.shape[1] + rank]


def _rank_among_alive(scores, alive):  # (B, T), (B, T) or None -> (B, T) int64
    """0-based rank of each token by descending score among alive tokens; ties go to the earlier position.

    Written as a pairwise count instead of a sort so every runtime breaks ties the same way.
    """
    s_i, s_j = scores[:, :, None], scores[:, None, :]  # i: the other token, j: the ranked token
    pos = torch.arange(scores.shape[1], device=scores.device)
    earlier = pos[:, None] < pos[None, :]  # (T, T): i before j
    beats = (s_i > s_j) | ((s_i == s_j) & earlier)  # (B, T, T)
    if alive is not None:
        beats = alive[:, :, None] & beats
    return beats.sum(dim=1)


def layer_pruner(spec: PruningSpec | None, i: int, max_tokens: int, hidden_size: int) -> TokenPruner | None:
    """A layer that provably keeps every alive token gets no pruner (LTP: threshold 0; top-k: rate 1)."""
    if spec is None:
        return None
    if i not in spec.pruning_layers():
        return None
    value = spec.layer_values[i]
    return TokenPruner(spec.mode, value, spec.n_ref, max_tokens, spec.scorer, hidden_size)
