"""One-parameter families of pruning specs, ordered by a ``strength`` (0 = dense, larger = more dropping).

* ``absolute_threshold``: LTP's rising thresholds ``thr_l = alpha * l / L`` (layer 0 drops nothing), except that
  the last layer drops every token but CLS (``LAST_LAYER_THRESHOLD``): the classifier reads only CLS, and a token's
  feed-forward touches no other token, so that drop saves the last feed-forward at no cost in accuracy (MiniLM:
  1.12x on SST-2 with identical predictions). strength = ``alpha``, the ``final_token_threshold`` of LTP's
  initialisation, in score units (n_ref scale).
* ``topk``: LTP's top-k schedule (``spec.ltp_keep_rates``): rate 1 for the first ``max(3, ceil(0.15 L))`` layers,
  then linear to ``token_keep_rate`` at the last layer; strength = ``1 - token_keep_rate``.
* ``rank_bins``: ToP's rule with gates chosen, not learned: each of layers 1 .. L - 2 (ToP's pruning locations 2 ..
  L - 1) keeps the best-ranked ``layer_keep_fraction`` of its alive tokens (the first ``ceil(q * RANK_BINS)`` of
  ``RANK_BINS`` bins on), and the last layer keeps only CLS, as above; strength = ``1 - layer_keep_fraction``.

Example::

    family("absolute_threshold").spec(0.006, num_layers=6, n_ref=128).thresholds   # (0.0, 0.001, ..., 0.004, 1e4)
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from ltp_deploy.errors import LtpDeployError
from ltp_deploy.spec import PruningSpec, ltp_keep_rates

# Above any score (attention received / (heads * n_ref) <= length / n_ref): the layer keeps only CLS.
LAST_LAYER_THRESHOLD = 1e4
RANK_BINS = 20  # ToP's bin_num ranges 20..100; 20 gives keep fractions in steps of 0.05


@dataclass(frozen=True)
class Family:
    mode: str
    parameter: str  # the name users know: final_token_threshold or token_keep_rate
    max_strength: float  # the strongest setting the family allows (None: unbounded)

    def value(self, strength: float) -> float:
        """The user-facing parameter (final_token_threshold or token_keep_rate) of a strength."""
        return strength if self.mode == "absolute_threshold" else 1.0 - strength  # keep rate or fraction

    def spec(self, strength: float, num_layers: int, n_ref: int = 128,
             source: dict | None = None) -> PruningSpec | None:
        """The spec of ``strength``; None (dense) at strength 0."""
        if strength <= 0:
            return None
        source = {"family": self.mode, self.parameter: self.value(strength), **(source or {})}
        if self.mode == "absolute_threshold":
            thresholds = [strength * i / num_layers for i in range(num_layers - 1)] + [LAST_LAYER_THRESHOLD]
            return PruningSpec.threshold(thresholds, n_ref=n_ref, source=source, reference_cls="kept")
        if self.mode == "rank_bins":
            on = min(RANK_BINS, math.ceil(self.value(strength) * RANK_BINS - 1e-9))
            kept_bins = (1,) * on + (0,) * (RANK_BINS - on)
            gates = [None] + [kept_bins] * (num_layers - 2) + [(0,) * RANK_BINS]
            return PruningSpec.rank_bins(gates, source=source)
        return PruningSpec.topk(ltp_keep_rates(self.value(strength), num_layers), n_ref=n_ref, source=source,
                                reference_cls="kept")


_FAMILIES = {
    "absolute_threshold": Family("absolute_threshold", "final_token_threshold", float("inf")),
    "topk": Family("topk", "token_keep_rate", 0.99),  # keep rates are clamped at 0.01 anyway
    "rank_bins": Family("rank_bins", "layer_keep_fraction", 1.0 - 1.0 / RANK_BINS),
}


FAMILY_MODES = tuple(_FAMILIES)  # the modes calibrate and sweep search (ToP's rank bins come from its folders)


def family(mode: str) -> Family:
    """The family of a prune mode.

    Raises:
        LtpDeployError: an unknown mode.
    """
    if mode not in _FAMILIES:
        raise LtpDeployError(f"Unknown --mode {mode!r}: use one of {', '.join(FAMILY_MODES)}.")
    return _FAMILIES[mode]
