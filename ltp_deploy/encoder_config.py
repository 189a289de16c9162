"""``EncoderConfig``: a BERT/RoBERTa encoder's shapes, read from a Hugging Face ``config.json``.

Example::

    cfg = EncoderConfig.from_hf(json.loads(Path("ckpt/config.json").read_text()))
    cfg.arch, cfg.num_layers, cfg.hidden_size, cfg.max_length, cfg.input_names
"""

from __future__ import annotations

from dataclasses import dataclass

from ltp_deploy.errors import LtpDeployError

ACTIVATIONS = ("gelu", "gelu_new", "relu")  # the hidden_act values model.py builds
ARCHS = ("bert", "roberta")


@dataclass(frozen=True)
class EncoderConfig:
    """The architecture, read from a Hugging Face ``config.json``; the single source of truth for shapes."""

    arch: str  # "bert" (pooler + linear head, position ids 0..T-1) or "roberta" (dense+tanh head, padded positions)
    vocab_size: int
    hidden_size: int
    num_layers: int
    num_heads: int
    intermediate_size: int
    max_position_embeddings: int
    type_vocab_size: int
    layer_norm_eps: float
    pad_token_id: int
    num_labels: int
    hidden_act: str = "gelu"
    hidden_dropout_prob: float = 0.1  # used only while training
    id2label: tuple[str, ...] | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.arch, str) or self.arch not in ARCHS:
            raise LtpDeployError(
                f"Unknown model type {self.arch!r}: ltp-deploy supports BERT and RoBERTa encoders "
                "(config.json model_type 'bert', 'roberta' or 'ltp')."
            )
        if not isinstance(self.hidden_act, str) or self.hidden_act not in ACTIVATIONS:
            raise LtpDeployError(f"Unsupported hidden_act {self.hidden_act!r} in config.json: use one of "
                                 f"{sorted(ACTIVATIONS)}.")
        for name in ("vocab_size", "hidden_size", "num_layers", "num_heads", "intermediate_size",
                     "max_position_embeddings", "type_vocab_size", "num_labels"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise LtpDeployError(f"config {name} must be a positive integer, got {value!r}: restore config.json "
                                     "from the model's own files.")
        if isinstance(self.pad_token_id, bool) or not isinstance(self.pad_token_id, int) \
                or not 0 <= self.pad_token_id < self.vocab_size:
            raise LtpDeployError(f"config pad_token_id must be a token id below vocab_size {self.vocab_size}, got "
                                 f"{self.pad_token_id!r}: restore config.json from the model's own files.")
        if self.hidden_size % self.num_heads:
            raise LtpDeployError(f"config hidden_size {self.hidden_size} is not a multiple of num_attention_heads "
                                 f"{self.num_heads}: restore config.json from the model's own files.")
        if not isinstance(self.layer_norm_eps, (int, float)) or not 0 < self.layer_norm_eps < 1:
            raise LtpDeployError(f"config layer_norm_eps must be a small positive number, got "
                                 f"{self.layer_norm_eps!r}: restore config.json.")
        if self.arch == "roberta" and self.max_position_embeddings <= self.pad_token_id + 2:
            raise LtpDeployError(f"config max_position_embeddings {self.max_position_embeddings} leaves no room for "
                                 f"tokens after RoBERTa's pad offset {self.pad_token_id + 1}: restore config.json.")
        if self.id2label is not None and len(self.id2label) != self.num_labels:
            raise LtpDeployError(f"config id2label names {len(self.id2label)} labels but num_labels is "
                                 f"{self.num_labels}: make them agree in config.json.")

    @classmethod
    def from_hf(cls, config: dict, arch: str | None = None) -> EncoderConfig:
        """Build from a parsed ``config.json``; ``arch`` overrides ``model_type`` (LTP folders say "ltp")."""
        arch = arch or config.get("model_type")
        id2label = config.get("id2label")
        if id2label is not None and not isinstance(id2label, dict):
            raise LtpDeployError(f"config.json id2label must map class ids to names, got {type(id2label).__name__}: "
                                 "write it as {\"0\": \"negative\", \"1\": \"positive\"}.")
        num_labels = config.get("num_labels") or (len(id2label) if id2label else 2)
        labels = None
        if id2label and isinstance(num_labels, int):
            labels = tuple(str(id2label.get(str(i), id2label.get(i, i))) for i in range(num_labels))
        try:
            return cls(
                arch=arch,
                vocab_size=config["vocab_size"],
                hidden_size=config["hidden_size"],
                num_layers=config["num_hidden_layers"],
                num_heads=config["num_attention_heads"],
                intermediate_size=config["intermediate_size"],
                max_position_embeddings=config["max_position_embeddings"],
                type_vocab_size=_default(config.get("type_vocab_size"), 2),
                layer_norm_eps=_default(config.get("layer_norm_eps"), 1e-12),
                pad_token_id=_default(config.get("pad_token_id"), 1 if arch == "roberta" else 0),
                num_labels=num_labels,
                hidden_act=config.get("hidden_act", "gelu"),
                hidden_dropout_prob=_default(config.get("hidden_dropout_prob"), 0.1),
                id2label=labels,
            )
        except KeyError as e:
            raise LtpDeployError(f"config.json lacks the key {e.args[0]!r}: it is not a BERT/RoBERTa config.") from None

    @property
    def max_length(self) -> int:
        """Longest input the position table allows (RoBERTa reserves pad_token_id + 1 slots)."""
        return self.max_position_embeddings - (self.pad_token_id + 1 if self.arch == "roberta" else 0)

    @property
    def uses_token_type_ids(self) -> bool:
        return self.type_vocab_size > 1

    @property
    def input_names(self) -> tuple[str, ...]:
        """The inputs of an exported graph: BERT takes token_type_ids, RoBERTa (one token type) does not."""
        return ("input_ids", "attention_mask") + (("token_type_ids",) if self.uses_token_type_ids else ())


def _default(value, default):
    """A config.json value, or ``default`` where the key is absent or null."""
    return default if value is None else value
