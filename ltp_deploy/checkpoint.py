"""Checkpoint folders in, ``PrunedClassifier`` + ``PruningSpec`` out; and the folder format the project writes.

Three layouts load:

* **Original LTP** (``config.json`` with ``model_type: "ltp"``): RoBERTa weights under ``ibert.``, I-BERT
  quantisation buffers (dropped), per-layer ``...pruner.keep_threshold`` deltas; thresholds are rebuilt as
  ``final_token_threshold * i / L + delta_i``, or the top-k schedule from ``token_keep_rate``.
* **Hugging Face** ``BertForSequenceClassification`` / ``RobertaForSequenceClassification`` (or the bare
  ``BertModel`` / ``RobertaModel`` encoder, whose head is then freshly initialised), weights in safetensors or
  ``pytorch_model.bin``, plus an optional ``pruning_spec.json``. Without one the model is dense.
* **ToP** (``ToPBertForSequenceClassification`` with its ``zs.pt`` gates): BERT weights and a ``rank_bins`` spec
  (``ltp_deploy.top_folder``); its pickled ``l0_module.pt`` is never opened.

Pickled weights load with ``torch.load(weights_only=True)``: no code in a checkpoint ever runs. Weights are read
and checked by ``ltp_deploy.weights`` (NaN/inf refused, two weight files that disagree refused).

Example::

    ckpt = load_checkpoint("runs/sst2-ltp")
    logits, kept = ckpt.model(input_ids, attention_mask, token_type_ids)
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path

import torch

from ltp_deploy.artifact import GRAPH_SUFFIXES
from ltp_deploy.outputs import FOLDER_MARKERS, atomic_dir
from ltp_deploy.errors import LtpDeployError
from ltp_deploy.encoder_config import ARCHS, EncoderConfig
from ltp_deploy.model import PrunedClassifier
from ltp_deploy.paths import read_json, refuse_symlink_loop
from ltp_deploy.tokenizer import load_tokenizer, save_tokenizer
from ltp_deploy.spec import SCORE_FLOOR, PruningSpec, ltp_keep_rates, ltp_thresholds
from ltp_deploy.top_folder import is_top_folder, top_state_and_spec
from ltp_deploy.weights import read_weights, refuse_non_finite

CONFIG_FILE = "config.json"
WEIGHTS_FILE = "model.safetensors"
WEIGHT_FILES = (WEIGHTS_FILE, "model.safetensors.index.json", "pytorch_model.bin")  # any of them: a checkpoint
# The tokenizer files copied into checkpoints and exports; anything else (code above all) stays behind.
METADATA_FILE = FOLDER_MARKERS["checkpoint"]  # provenance written by train / calibrate; marks our folders
SUPPORTED_ARCHITECTURES = {
    "BertForSequenceClassification": ("bert", True),
    "RobertaForSequenceClassification": ("roberta", True),
    "LTPForSequenceClassification": ("roberta", True),
    "BertModel": ("bert", False),  # encoder only: the classification head starts untrained
    "RobertaModel": ("roberta", False),
}
# I-BERT buffers in LTP checkpoints that a float model does not use.
_LTP_DROP_SUFFIXES = (
    ".weight_integer", ".bias_integer", ".fc_scaling_factor", ".weight_scaling_factor", ".x_min", ".x_max",
    ".act_scaling_factor", "LayerNorm.shift", "embeddings.position_ids",
)
_LTP_THRESHOLD_KEY = "roberta.encoder.layer.{}.attention.self.pruner.keep_threshold"
_BUFFER_SUFFIXES = ("embeddings.position_ids", "embeddings.token_type_ids")


@dataclass
class Checkpoint:
    """A loaded checkpoint: the network (in eval mode), its pruning spec, and where it came from."""

    model: PrunedClassifier
    spec: PruningSpec | None
    path: Path
    format: str  # "ltp", "top" or "hf"
    hf_config: dict  # the parsed config.json, kept to write it back
    head_initialized: bool = False  # True when the folder held an encoder only and the head is untrained
    metadata: dict = field(default_factory=dict)  # ltp_deploy.json written by train/calibrate, if any

    @property
    def config(self) -> EncoderConfig:
        return self.model.config

    def tokenizer(self):
        """The tokenizer saved beside the weights (see ``load_tokenizer``)."""
        return load_tokenizer(self.path, vocab_size=self.config.vocab_size)

    def describe(self) -> dict:
        """What ``ltp-deploy inspect`` prints for a checkpoint."""
        cfg = self.config
        return {
            "path": str(self.path),
            "format": self.format,
            "architecture": cfg.arch,
            "layers": cfg.num_layers,
            "hidden_size": cfg.hidden_size,
            "heads": cfg.num_heads,
            "num_labels": cfg.num_labels,
            "labels": list(cfg.id2label) if cfg.id2label else None,
            "max_length": cfg.max_length,
            "parameters": sum(p.numel() for p in self.model.parameters()),
            "head": "untrained (encoder-only checkpoint)" if self.head_initialized else "trained",
            "pruning_layers": self.spec.pruning_layers() if self.spec else [],
            "pruning": self.spec.to_dict() if self.spec else "dense",
        }


def load_checkpoint(path: str | Path, spec: PruningSpec | None = None, dense: bool = False) -> Checkpoint:
    """Load an LTP or Hugging Face checkpoint folder.

    Args:
        path: the checkpoint folder (``config.json`` + weights).
        spec: overrides the folder's own pruning spec.
        dense: ignore any pruning spec (the A/B baseline with the same weights). Learned scorer weights belong to
            the spec: a dense twin, or a ``spec`` that does not use them, leaves them out.

    Returns:
        A ``Checkpoint`` whose model is in eval mode on the CPU.

    Raises:
        LtpDeployError: missing folder or files, unknown model type or architecture, unsupported prune mode,
            weights that do not match the config (the key and shapes are named), a file that is not a checkpoint,
            a symlink loop, NaN/inf weights (the tensor named), two weight files that disagree.
    """
    folder = _checkpoint_folder(path)
    hf_config = read_config(folder)
    state = read_weights(folder)
    is_ltp = hf_config.get("model_type") == "ltp"
    refuse_non_finite(state, folder, skip=_LTP_DROP_SUFFIXES if is_ltp else ())
    if is_ltp:
        cfg = EncoderConfig.from_hf(hf_config, arch="roberta")
        state, folder_spec = _ltp_state_and_spec(state, hf_config, cfg.num_layers)
        fmt, has_head = "ltp", True
    elif is_top_folder(hf_config, folder):
        cfg = EncoderConfig.from_hf(hf_config, arch="bert")
        state, folder_spec = top_state_and_spec(_hf_state(state, "bert"), folder, cfg.num_layers)
        fmt, has_head = "top", True
    else:
        arch, has_head = _architecture(hf_config)
        cfg = EncoderConfig.from_hf(hf_config, arch=arch)
        state = _hf_state(state, arch)
        folder_spec = PruningSpec.load(folder)
        fmt = "hf"
    chosen = None if dense else (spec or folder_spec)
    model = PrunedClassifier(cfg, chosen)
    head_initialized = _load_state(model, state, has_head, folder)
    metadata_file = folder / METADATA_FILE
    metadata = read_json(metadata_file) if metadata_file.is_file() else {}
    return Checkpoint(model.eval(), chosen, folder, fmt, hf_config, head_initialized, metadata)


def save_checkpoint(model: PrunedClassifier, folder: str | Path, hf_config: dict, tokenizer=None,
                    metadata: dict | None = None, inputs=(), overwrite: bool = False) -> Path:
    """Write a Hugging Face folder (config.json, model.safetensors, pruning_spec.json, ltp_deploy.json) atomically.

    The folder loads back with ``load_checkpoint`` and, spec aside, with ``transformers`` as
    ``BertForSequenceClassification`` / ``RobertaForSequenceClassification``. ``inputs`` and ``overwrite``: the
    output rules of ``outputs.check_output`` (an existing folder is replaced only when ltp-deploy wrote it).
    """
    from safetensors.torch import save_file

    weights = {k: v.detach().contiguous() for k, v in model.state_dict().items()}
    refuse_non_finite(weights, Path(folder))  # never write a checkpoint that no command could load
    cfg = model.config
    config = {k: v for k, v in hf_config.items() if k not in {"prune_mode", "final_token_threshold",
                                                                "token_keep_rate", "prune_kwargs", "quant_mode"}}
    config.update(
        model_type=cfg.arch,
        architectures=["BertForSequenceClassification" if cfg.arch == "bert" else "RobertaForSequenceClassification"],
        num_labels=cfg.num_labels,
    )
    if cfg.id2label:
        config["id2label"] = {str(i): name for i, name in enumerate(cfg.id2label)}
        config["label2id"] = {name: i for i, name in enumerate(cfg.id2label)}
    with atomic_dir(folder, "checkpoint", inputs=inputs, overwrite=overwrite) as tmp:
        (tmp / CONFIG_FILE).write_text(json.dumps(config, indent=2) + "\n")
        save_file(weights, str(tmp / WEIGHTS_FILE))
        if model.spec is not None:
            model.spec.save(tmp)
        if tokenizer is not None:
            save_tokenizer(tokenizer, tmp)
        (tmp / METADATA_FILE).write_text(json.dumps(metadata or {}, indent=2) + "\n")
    return Path(folder)


def _checkpoint_folder(path: str | Path) -> Path:
    folder = Path(path)
    refuse_symlink_loop(folder, "Checkpoint")
    if not folder.exists():
        raise LtpDeployError(f"Checkpoint {folder} does not exist: pass a folder holding config.json and weights.")
    if folder.is_file():
        if folder.suffix in GRAPH_SUFFIXES:
            raise LtpDeployError(f"{folder} is an exported graph, not a checkpoint: pass the checkpoint folder.")
        raise LtpDeployError(f"{folder} is a file: pass the checkpoint folder that holds config.json and weights.")
    if not (folder / CONFIG_FILE).is_file():
        raise LtpDeployError(f"{folder} has no config.json: pass a Hugging Face or LTP checkpoint folder.")
    return folder


def read_config(folder: str | Path) -> dict:
    """The parsed ``config.json`` of a checkpoint folder (a one-sentence error when it is not a JSON object)."""
    return read_json(Path(folder) / CONFIG_FILE)


def read_encoder_config(folder: str | Path) -> tuple[dict, EncoderConfig]:
    """The parsed ``config.json`` of ``folder`` and its ``EncoderConfig`` (an LTP ``model_type`` is RoBERTa).

    Raises:
        LtpDeployError: unreadable JSON, or not a BERT/RoBERTa config.
    """
    hf = read_config(folder)
    return hf, EncoderConfig.from_hf(hf, arch="roberta" if hf.get("model_type") == "ltp" else None)


def has_weights(folder: str | Path) -> bool:
    """Whether ``folder`` holds checkpoint weights (any of ``WEIGHT_FILES``)."""
    return any((Path(folder) / name).is_file() for name in WEIGHT_FILES)


def _architecture(hf_config: dict) -> tuple[str, bool]:
    names = hf_config.get("architectures") or []
    for name in names:
        if name in SUPPORTED_ARCHITECTURES:
            return SUPPORTED_ARCHITECTURES[name]
    if not names and hf_config.get("model_type") in ARCHS:  # no architectures key: trust model_type
        return hf_config["model_type"], True
    raise LtpDeployError(
        f"Unknown architecture {names or hf_config.get('model_type')!r}: supported are "
        f"{', '.join(SUPPORTED_ARCHITECTURES)}."
    )


def _ltp_state_and_spec(state: dict, hf_config: dict, num_layers: int):
    state = {("roberta." + k[len("ibert."):] if k.startswith("ibert.") else k): v for k, v in state.items()}
    state = {k: v for k, v in state.items() if not k.endswith(_LTP_DROP_SUFFIXES)}
    keys = [_LTP_THRESHOLD_KEY.format(i) for i in range(num_layers)]
    deltas = [state.pop(k, None) for k in keys]
    mode = hf_config.get("prune_mode")
    source = {"format": "ltp", "prune_mode": mode}
    if mode == "absolute_threshold":
        missing = [k for k, d in zip(keys, deltas) if d is None]
        if missing:
            raise LtpDeployError(
                f"LTP checkpoint lacks the learned threshold {missing[0]!r} ({len(missing)} of {num_layers} "
                "missing): it is not a trained absolute_threshold checkpoint, or its weights file is incomplete."
            )
        wrong = next((k for k, d in zip(keys, deltas) if d.numel() != 1 or not d.is_floating_point()), None)
        if wrong is not None:
            raise LtpDeployError(f"LTP threshold {wrong!r} is not a single float: the weights file is damaged or "
                                 "not an LTP checkpoint.")
        final = hf_config.get("final_token_threshold", 0.0)
        if isinstance(final, bool) or not isinstance(final, (int, float)) or not math.isfinite(final):
            raise LtpDeployError(f"config.json final_token_threshold must be a number, got {final!r}: restore it "
                                 "from the LTP run (e.g. 0.01).")
        source["final_token_threshold"] = final
        thresholds = ltp_thresholds(float(final), [float(d) for d in deltas])
        # LTP prunes below max(1e-5, thr) at any nonzero thr, so a negative one acts as the floor itself.
        source["floored_layers"] = [i for i, t in enumerate(thresholds) if t < 0]
        spec = PruningSpec.threshold([SCORE_FLOOR if t < 0 else t for t in thresholds], source=source)
    elif mode == "topk":
        rate = hf_config.get("token_keep_rate")
        if rate is None:
            raise LtpDeployError("LTP topk checkpoint has no token_keep_rate in config.json: add it (e.g. 0.5).")
        if isinstance(rate, bool) or not isinstance(rate, (int, float)) or not 0 < rate <= 1:
            raise LtpDeployError(f"config.json token_keep_rate must be a fraction in (0, 1], got {rate!r}: fix it "
                                 "(e.g. 0.5).")
        source["token_keep_rate"] = rate
        spec = PruningSpec.topk(ltp_keep_rates(float(rate), num_layers), source=source)
    else:
        raise LtpDeployError(
            f"Unsupported LTP prune_mode {mode!r} in config.json: ltp-deploy exports 'absolute_threshold' and 'topk'."
        )
    return state, spec


def _hf_state(state: dict, arch: str) -> dict:
    state = {k: v for k, v in state.items() if not k.endswith(_BUFFER_SUFFIXES)}
    if not any(k.startswith(arch + ".") for k in state):  # a bare encoder saved without its prefix
        state = {(f"{arch}.{k}" if k.split(".")[0] in {"embeddings", "encoder", "pooler"} else k): v
                 for k, v in state.items()}
    if arch == "roberta":  # RobertaModel's pooler is unused by the RoBERTa classification head
        state = {k: v for k, v in state.items() if not k.startswith("roberta.pooler.")}
    return state


def _load_state(model: PrunedClassifier, state: dict, has_head: bool, folder: Path) -> bool:
    """Load with per-key shape checks; an encoder-only folder gets a seeded, freshly initialised head."""
    expected = model.state_dict()
    # A learned scorer belongs to the pruning spec: the dense twin (or a spec scoring by attention, or pruning fewer
    # layers) leaves the scorers it does not use behind, as ``PrunedClassifier.with_spec`` does.
    state = {k: v for k, v in state.items() if k in expected or ".pruner.scorer." not in k}
    unexpected = [k for k in state if k not in expected]
    if unexpected:
        raise LtpDeployError(
            f"Weights in {folder} hold {len(unexpected)} key(s) the {model.config.arch} model does not have, "
            f"first {unexpected[0]!r}: the weights do not belong to this architecture or config.json."
        )
    for k, v in state.items():
        if tuple(v.shape) != tuple(expected[k].shape):
            raise LtpDeployError(
                f"Weight {k!r} has shape {tuple(v.shape)} but config.json implies {tuple(expected[k].shape)}: "
                "the weights and config.json come from different models."
            )
    missing = [k for k in expected if k not in state]
    if missing and all(".pruner.scorer." in k for k in missing):
        raise LtpDeployError(
            f"The pruning spec asks for a learned scorer but the weights in {folder} hold none for {missing[0]!r}: "
            "use the checkpoint that `ltp-deploy train --scorer learned` wrote, or a spec with scorer 'attention'."
        )
    head_keys = [k for k in missing if k.startswith(("classifier.", f"{model.config.arch}.pooler."))]
    body_missing = [k for k in missing if k not in head_keys]
    if body_missing or (head_keys and has_head):
        first = (body_missing or head_keys)[0]
        raise LtpDeployError(
            f"Weights in {folder} lack {len(missing)} key(s), first {first!r}: the weights file is incomplete "
            "or from another architecture."
        )
    if head_keys:
        generator = torch.Generator().manual_seed(0)
        for k in head_keys:
            tensor = torch.empty_like(expected[k])
            state[k] = tensor.normal_(0.0, 0.02, generator=generator) if k.endswith("weight") else tensor.zero_()
    model.load_state_dict({k: v.float() for k, v in state.items()}, strict=True)
    return bool(head_keys)
