"""The pruning spec: which tokens a layer keeps, in one small frozen dataclass.

The spec travels with a checkpoint as ``pruning_spec.json`` beside ``config.json`` and inside every exported
artifact's metadata. A folder without one is a dense model.

Example::

    spec = PruningSpec.threshold([0.0, 0.002, 0.004, 0.006, 0.008, 0.01])
    spec.save("ckpt/")                       # writes ckpt/pruning_spec.json
    assert PruningSpec.load("ckpt/") == spec
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass, field
from pathlib import Path

from ltp_deploy.errors import LtpDeployError

SPEC_FILE = "pruning_spec.json"
SPEC_VERSION = 1
MODES = ("absolute_threshold", "topk", "rank_bins")
# What a layer's score is: "attention" (LTP: the attention each token receives) or "learned" (a linear scorer on
# the attention block's output rows, trained with the thresholds: ``pruner.TokenPruner``).
SCORERS = ("attention", "learned")
REFERENCE_CLS = ("prunable", "kept")

# LTP's score floor: a token whose score is below max(SCORE_FLOOR, thr) is pruned in a layer with thr > 0.
SCORE_FLOOR = 1e-5


@dataclass(frozen=True)
class PruningSpec:
    """How each encoder layer decides which tokens survive its attention block.

    The decision from layer ``l``'s attention takes effect right after that attention block, before the
    layer's feed-forward; a dropped token never comes back.
    """

    # "absolute_threshold" (LTP): drop token j when its score s_j < max(1e-5, thresholds[l]); a layer whose
    # threshold is exactly 0 drops nothing. "topk": keep round(n_unpadded * keep_rates[l]) highest scores.
    mode: str
    # Effective per-layer thresholds (LTP: final_token_threshold * l / L + learned delta_l). Mode
    # absolute_threshold only.
    thresholds: tuple[float, ...] | None = None
    # Per-layer fraction of the *original unpadded* length to keep. Mode topk only.
    keep_rates: tuple[float, ...] | None = None
    # ToP's rule (mode rank_bins only), one entry per layer: None where the layer drops nothing, else its bin
    # gates (0/1, ``bin_num`` of them). Alive tokens other than CLS are ranked by score, rank r of n falls in bin
    # floor(min(r / (n + 1e-6), 1) * bin_num) in float32 (ToP's arithmetic), and a token stays when its bin's gate
    # is 1: a learned fraction of the alive length, whatever the scores' scale.
    bin_gates: tuple[tuple[int, ...] | None, ...] | None = None
    # Score normaliser: s_j = sum_heads sum_alive_queries P[h, i, j] / (num_heads * n_ref). A constant, the
    # padded length used in training (128 in every LTP GLUE run). Dividing by the current length instead
    # changes the decisions, so it is a setting, never derived from the input.
    n_ref: int = 128
    # The classifier reads position 0, so the dropping model always keeps it. LTP's masked rule does not
    # protect it; the reference reports how often it would have dropped it.
    cls_policy: str = "keep"
    # How the masked reference treats CLS: "prunable" is LTP's code (its checkpoints were trained so);
    # "kept" is how `ltp-deploy train` and `calibrate` learn a spec (CLS's soft mask fixed at 1), so the
    # reference keeps it too and every sequence can be compared with the dropping model.
    reference_cls: str = field(default="prunable", compare=False)
    # "attention" or "learned" (``SCORERS``). A learned score is ``2 * sigmoid(w_l . h_j + b_l) / n_ref``, in the
    # attention score's units (its midpoint is the mean attention score 1 / n_ref), so thresholds, temperatures
    # and learning rates mean the same for both; ``w_l, b_l`` are weights of the checkpoint, not of the spec.
    scorer: str = "attention"
    # Where the spec came from (LTP config, calibration, training); free-form, for provenance only.
    source: dict = field(default_factory=dict, compare=False)

    def __post_init__(self) -> None:
        if self.mode not in MODES:
            raise LtpDeployError(
                f"Unsupported prune mode {self.mode!r}: use one of {', '.join(MODES)} "
                "(or remove the pruning spec for a dense model)."
            )
        if self.mode == "rank_bins":
            object.__setattr__(self, "bin_gates", _gates(self.bin_gates))
        values = self.layer_values
        name = {"absolute_threshold": "thresholds", "topk": "keep_rates", "rank_bins": "bin_gates"}[self.mode]
        if self.mode == "rank_bins" and self.scorer != "attention":
            raise LtpDeployError("A rank_bins spec ranks by the attention score (ToP's): set scorer to 'attention'.")
        if not values:
            raise LtpDeployError(f"Pruning spec in mode {self.mode!r} has no {name}: give one value per layer.")
        if self.mode != "rank_bins" and (not isinstance(values, (list, tuple)) or any(
                isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v) for v in values)):
            raise LtpDeployError(f"Pruning spec {name} must be a list of finite numbers, one per layer, got "
                                 f"{values!r}: fix {SPEC_FILE}.")
        if self.mode == "absolute_threshold" and any(v < 0 for v in values):
            raise LtpDeployError(
                f"Pruning spec thresholds must be 0 or more, got {list(values)}: a negative threshold prunes like "
                f"LTP's floor {SCORE_FLOOR:g}, so write {SCORE_FLOOR:g} (or 0 to keep every token) instead."
            )
        if self.mode == "topk" and any(not 0.0 < v <= 1.0 for v in values):
            raise LtpDeployError(
                f"Top-k keep rates must lie in (0, 1], got {list(values)}: give each layer's kept fraction of the "
                "unpadded length, e.g. 0.5."
            )
        if isinstance(self.n_ref, bool) or not isinstance(self.n_ref, int) or self.n_ref <= 0:
            raise LtpDeployError(
                f"Pruning spec n_ref must be a positive length, got {self.n_ref}: use the padded training length (128)."
            )
        if self.cls_policy != "keep":
            raise LtpDeployError(f"Unsupported cls_policy {self.cls_policy!r}: only 'keep' is supported.")
        if self.scorer not in SCORERS:
            raise LtpDeployError(f"Unsupported scorer {self.scorer!r}: use one of {', '.join(SCORERS)}.")
        if self.reference_cls not in REFERENCE_CLS:
            raise LtpDeployError(f"Unsupported reference_cls {self.reference_cls!r}: use one of {', '.join(REFERENCE_CLS)}.")
        object.__setattr__(self, "thresholds", _tuple(self.thresholds))
        object.__setattr__(self, "keep_rates", _tuple(self.keep_rates))

    @property
    def layer_values(self) -> tuple | None:
        """The per-layer values of this spec's mode: thresholds, keep rates or bin gates."""
        return {"absolute_threshold": self.thresholds, "topk": self.keep_rates,
                "rank_bins": self.bin_gates}[self.mode]

    def pruning_layers(self) -> list[int]:
        """The layers whose rule can drop a token (LTP: threshold above 0; top-k: rate below 1; rank bins: a gate
        at 0)."""
        if self.mode == "rank_bins":
            return [i for i, gates in enumerate(self.bin_gates) if gates is not None and not all(gates)]
        values = self.layer_values
        return [i for i, v in enumerate(values) if (v > 0 if self.mode == "absolute_threshold" else v < 1)]

    @property
    def num_layers(self) -> int:
        return len(self.layer_values)

    @classmethod
    def threshold(cls, thresholds, n_ref: int = 128, source: dict | None = None,
                  reference_cls: str = "prunable", scorer: str = "attention") -> PruningSpec:
        """A learned-threshold (LTP) spec from effective per-layer thresholds."""
        return cls(mode="absolute_threshold", thresholds=tuple(thresholds), n_ref=n_ref, source=source or {},
                   reference_cls=reference_cls, scorer=scorer)

    @classmethod
    def topk(cls, keep_rates, n_ref: int = 128, source: dict | None = None,
             reference_cls: str = "prunable", scorer: str = "attention") -> PruningSpec:
        """A top-k spec from per-layer keep rates (fractions of the unpadded length)."""
        return cls(mode="topk", keep_rates=tuple(keep_rates), n_ref=n_ref, source=source or {},
                   reference_cls=reference_cls, scorer=scorer)

    @classmethod
    def rank_bins(cls, bin_gates, source: dict | None = None) -> PruningSpec:
        """A ToP spec from per-layer bin gates (None where a layer drops nothing); CLS is never pruned."""
        return cls(mode="rank_bins", bin_gates=tuple(bin_gates), source=source or {}, reference_cls="kept")

    def to_dict(self) -> dict:
        d = asdict(self)
        d["version"] = SPEC_VERSION
        d["thresholds"] = list(self.thresholds) if self.thresholds else None
        d["keep_rates"] = list(self.keep_rates) if self.keep_rates else None
        if self.bin_gates is None:
            del d["bin_gates"]  # the threshold and top-k files stay as they were
        else:
            d["bin_gates"] = [None if g is None else list(g) for g in self.bin_gates]
        return d

    @classmethod
    def from_dict(cls, d: dict, where: str = "pruning spec") -> PruningSpec:
        known = {"mode", "thresholds", "keep_rates", "bin_gates", "n_ref", "cls_policy", "reference_cls", "scorer",
                 "source"}
        if not isinstance(d, dict) or "mode" not in d:
            raise LtpDeployError(f"{where} is not a pruning spec: it needs a 'mode' key ({' or '.join(MODES)}).")
        return cls(**{k: v for k, v in d.items() if k in known})

    def save(self, folder: str | Path) -> Path:
        """Write ``folder/pruning_spec.json`` atomically and return its path."""
        path = Path(folder) / SPEC_FILE
        tmp = path.with_suffix(".json.tmp")
        tmp.write_text(json.dumps(self.to_dict(), indent=2) + "\n")
        tmp.replace(path)
        return path

    @classmethod
    def load(cls, folder: str | Path) -> PruningSpec | None:
        """Read ``folder/pruning_spec.json``; None when the folder has none (a dense model)."""
        path = Path(folder) / SPEC_FILE
        return cls.read(path) if path.is_file() else None

    @classmethod
    def read(cls, path: str | Path) -> PruningSpec:
        """Read a spec file (or the ``pruning_spec.json`` inside a folder); raise if there is none."""
        path = Path(path)
        if path.is_dir():
            path = path / SPEC_FILE
        if not path.is_file():
            raise LtpDeployError(f"Pruning spec {path} does not exist: pass a {SPEC_FILE} file or its folder.")
        try:
            d = json.loads(path.read_text())
        except (json.JSONDecodeError, UnicodeDecodeError) as e:
            raise LtpDeployError(f"{path} is not valid JSON ({e}): rewrite it or delete it for a dense model.")
        return cls.from_dict(d, where=str(path))


def ltp_thresholds(final_token_threshold: float, deltas) -> tuple[float, ...]:
    """LTP's effective thresholds: ``final_token_threshold * i / L + delta_i`` (layer 0 gets delta_0 only)."""
    num_layers = len(deltas)
    return tuple(final_token_threshold * i / num_layers + float(d) for i, d in enumerate(deltas))


def ltp_keep_rates(token_keep_rate: float, num_layers: int) -> tuple[float, ...]:
    """LTP's top-k schedule: rate 1 for the first max(3, ceil(0.15 L)) layers, then linear to the last layer."""
    first = max(3, math.ceil(0.15 * num_layers))
    rates = []
    for i in range(num_layers):
        if i < first or num_layers == first:
            rates.append(1.0)
        else:
            rate = 1 + (token_keep_rate - 1) * (i - first + 1) / (num_layers - first)
            rates.append(max(rate, 0.01))
    return tuple(rates)


def _tuple(values) -> tuple[float, ...] | None:
    return None if values is None else tuple(float(v) for v in values)


def _gates(layers) -> tuple[tuple[int, ...] | None, ...] | None:
    """Bin gates as tuples of 0/1 ints, one entry per layer (None: no pruning); raise on anything else."""
    if layers is None:
        return None
    fix = f"give one list of 0/1 bin gates (or null) per layer in {SPEC_FILE}"
    if not isinstance(layers, (list, tuple)) or any(g is not None and not isinstance(g, (list, tuple)) for g in layers):
        raise LtpDeployError(f"Pruning spec bin_gates must be a list with one entry per layer, got {layers!r}: {fix}.")
    sizes = {len(g) for g in layers if g is not None}
    if len(sizes) > 1 or 0 in sizes or any(v not in (0, 1) for g in layers if g is not None for v in g):
        raise LtpDeployError(f"Pruning spec bin_gates must hold 0/1 gates, the same number per pruning layer, got "
                             f"{[None if g is None else list(g) for g in layers]}: {fix}.")
    return tuple(None if g is None else tuple(int(v) for v in g) for g in layers)
