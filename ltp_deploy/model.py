"""The token-dropping BERT/RoBERTa classifier, in one file of plain torch.

Module and attribute names mirror Hugging Face's ``BertForSequenceClassification`` and
``RobertaForSequenceClassification`` so their state dicts load with ``strict=True``.

The forward is packed (``ltp_deploy.packing``): right after the embeddings only the real tokens remain, as
rows ``(1, N, D)``; every token-wise op runs on those rows, and attention alone re-pads them per sequence, with
padding keys masked. A pruning layer decides, right after its attention block, which tokens survive
(``TokenPruner``) and keeps their rows before the feed-forward: one NonZero and one Gather, with no re-padding.
No Python loop over the batch, no ``.item()``, no branch on data: the graph exports with data-dependent shapes,
and one graph serves batch 1 and batch N.

``SingleSequenceClassifier`` is the batch-1 form of the same network: with one sequence there is nothing to
re-pad, so attention runs on the rows directly. Same weights, same decisions; fewer graph nodes.

Example::

    model = PrunedClassifier(EncoderConfig.from_hf(config_dict), spec)
    logits, kept = model(input_ids, attention_mask, token_type_ids)   # (B, C), (B, L)
    logits, kept = SingleSequenceClassifier(model)(ids[:1], mask[:1], types[:1])   # (1, C), (1, L)
"""

from __future__ import annotations

import hashlib
import math
from contextlib import contextmanager
from dataclasses import replace

import torch
from torch import nn

from ltp_deploy.errors import LtpDeployError
from ltp_deploy.packing import OneSequence, Packed, ShapeBuckets, take_rows
from ltp_deploy.encoder_config import EncoderConfig
from ltp_deploy.pruner import TokenPruner, layer_pruner
from ltp_deploy.spec import PruningSpec

_ACTIVATIONS = {"gelu": nn.GELU, "gelu_new": lambda: nn.GELU(approximate="tanh"), "relu": nn.ReLU}


class Embeddings(nn.Module):
    def __init__(self, cfg: EncoderConfig):
        super().__init__()
        self.cfg = cfg
        self.word_embeddings = nn.Embedding(cfg.vocab_size, cfg.hidden_size, padding_idx=cfg.pad_token_id)
        self.position_embeddings = nn.Embedding(cfg.max_position_embeddings, cfg.hidden_size)
        self.token_type_embeddings = nn.Embedding(cfg.type_vocab_size, cfg.hidden_size)
        self.LayerNorm = nn.LayerNorm(cfg.hidden_size, eps=cfg.layer_norm_eps)
        self.dropout = nn.Dropout(cfg.hidden_dropout_prob)

    def forward(self, input_ids, token_type_ids, rows=None):  # (B, T), (B, T), (N,) or None -> (B, T, D) or (1, N, D)
        """Embed every slot, or with ``rows`` (indices into the flattened (B*T) batch) those slots only."""
        if self.cfg.arch == "roberta":
            # RoBERTa numbers real tokens from pad_token_id + 1 and gives padding the pad position.
            real = (input_ids != self.cfg.pad_token_id).long()
            positions = torch.cumsum(real, dim=1) * real + self.cfg.pad_token_id  # (B, T)
        else:
            positions = torch.arange(input_ids.shape[1], device=input_ids.device).expand_as(input_ids)  # (B, T)
        if rows is not None:
            input_ids, positions, token_type_ids = (t.reshape(-1).index_select(0, rows)[None]
                                                    for t in (input_ids, positions, token_type_ids))
        x = self.word_embeddings(input_ids) + self.position_embeddings(positions)
        x = x + self.token_type_embeddings(token_type_ids)
        return self.dropout(self.LayerNorm(x))


class SelfAttention(nn.Module):
    separate_qkv = False  # set per module by ``separate_qkv_graph`` (the OpenVINO export); see ``forward``

    def __init__(self, cfg: EncoderConfig):
        super().__init__()
        self.num_heads = cfg.num_heads
        self.head_size = cfg.hidden_size // cfg.num_heads
        self.query = nn.Linear(cfg.hidden_size, cfg.hidden_size)
        self.key = nn.Linear(cfg.hidden_size, cfg.hidden_size)
        self.value = nn.Linear(cfg.hidden_size, cfg.hidden_size)

    def forward(self, x, layout):  # (1, N, D) rows -> (1, N, D), (B, H, T, T)
        """Q, K and V on the rows; the attention core on the rows re-padded by ``layout`` (``ltp_deploy.packing``).

        Two graph forms of the same arithmetic. By default one GEMM makes Q, K and V and one gather re-pads them
        (fewest nodes: ONNX Runtime's fastest, and OpenVINO's at batch 1). With ``separate_qkv``, three GEMMs,
        the 1/sqrt(d) scale folded into the query's weights, each head-split tensor feeding the attention MatMuls:
        the pattern OpenVINO's CPU plugin fuses whole, with no split, scale or extra transposes left
        (docs/results/openvino.md).
        """
        if self.separate_qkv:
            scale = 1.0 / math.sqrt(self.head_size)
            rows = (nn.functional.linear(x, self.query.weight * scale, self.query.bias * scale), self.key(x),
                    self.value(x))
            q, k, v = (self._heads(layout.pad(r)) for r in rows)
            logits = q @ k.transpose(-2, -1)
        else:
            weight = torch.cat([self.query.weight, self.key.weight, self.value.weight])
            bias = torch.cat([self.query.bias, self.key.bias, self.value.bias])
            q, k, v = self._heads(layout.pad(nn.functional.linear(x, weight, bias))).split(self.num_heads, dim=1)
            logits = q @ k.transpose(-2, -1) / math.sqrt(self.head_size)  # (B, H, T, T)
        key_bias = layout.key_bias
        probs = torch.softmax(logits if key_bias is None else logits + key_bias, dim=-1)
        y = (probs @ v).transpose(1, 2)  # (B, T, H, head)
        return layout.unpad(y.reshape(*y.shape[:2], self.num_heads * self.head_size)), probs

    def _heads(self, t):  # (B, T, k * D) -> (B, k * H, T, head)
        return t.view(t.shape[0], t.shape[1], -1, self.head_size).transpose(1, 2)


class SelfOutput(nn.Module):
    def __init__(self, cfg: EncoderConfig):
        super().__init__()
        self.dense = nn.Linear(cfg.hidden_size, cfg.hidden_size)
        self.LayerNorm = nn.LayerNorm(cfg.hidden_size, eps=cfg.layer_norm_eps)
        self.dropout = nn.Dropout(cfg.hidden_dropout_prob)

    def forward(self, y, x):
        return self.LayerNorm(self.dropout(self.dense(y)) + x)


class Attention(nn.Module):
    def __init__(self, cfg: EncoderConfig):
        super().__init__()
        self.self = SelfAttention(cfg)
        self.output = SelfOutput(cfg)

    def forward(self, x, layout):  # (1, N, D) -> (1, N, D), (B, H, T, T)
        y, probs = self.self(x, layout)
        return self.output(y, x), probs


class Intermediate(nn.Module):
    def __init__(self, cfg: EncoderConfig):
        super().__init__()
        self.dense = nn.Linear(cfg.hidden_size, cfg.intermediate_size)
        self.act = _ACTIVATIONS[cfg.hidden_act]()

    def forward(self, x):
        return self.act(self.dense(x))


class Output(nn.Module):
    def __init__(self, cfg: EncoderConfig):
        super().__init__()
        self.dense = nn.Linear(cfg.intermediate_size, cfg.hidden_size)
        self.LayerNorm = nn.LayerNorm(cfg.hidden_size, eps=cfg.layer_norm_eps)
        self.dropout = nn.Dropout(cfg.hidden_dropout_prob)

    def forward(self, h, x):
        return self.LayerNorm(self.dropout(self.dense(h)) + x)


class Layer(nn.Module):
    def __init__(self, cfg: EncoderConfig, pruner: TokenPruner | None):
        super().__init__()
        self.attention = Attention(cfg)
        self.intermediate = Intermediate(cfg)
        self.output = Output(cfg)
        self.pruner = pruner

    def forward(self, x, layout, n_orig):  # (1, N, D), a layout, (B,) -> (1, N', D), (B,) or None
        """Returns the output rows and the survivor count per sequence (None where this layer drops nothing).

        The kept rows are taken right after the attention block, before the feed-forward; they stay in order,
        so the next layout (``Packed``) follows from the counts alone.
        """
        a, probs = self.attention(x, layout)
        count = None
        if self.pruner is not None:
            keep = self.pruner(self.pruner.scores(probs, a, layout), layout.alive, n_orig)  # (B, T); padding False
            a, count = a.index_select(1, layout.kept_rows(keep)), keep.sum(dim=1)
        return self.output(self.intermediate(a), a), count


class Encoder(nn.Module):
    buckets: ShapeBuckets | None = None  # set by ``bucketed_graph`` (the OpenVINO export); see ``packing.Ladder``

    def __init__(self, cfg: EncoderConfig, spec: PruningSpec | None):
        super().__init__()
        self.layer = nn.ModuleList(Layer(cfg, layer_pruner(spec, i, cfg.max_position_embeddings, cfg.hidden_size))
                                   for i in range(cfg.num_layers))

    def forward(self, x, counts, n_orig, length=None):  # (1, N, D), (B,), (B,) -> (1, N', D), (B, L)
        """Run the layers on packed rows; ``length`` (an upper bound on tokens per sequence) packs a batch, and
        ``None`` runs one sequence (``OneSequence``). Returns the rows and the kept counts."""
        layout, kept = None, []
        for layer in self.layer:
            if layout is None:
                layout = OneSequence() if length is None else Packed(counts, x.shape[1], length, self.buckets)
            x, dropped = layer(x, layout, n_orig)
            if dropped is not None:
                counts, layout = dropped, (layout if length is None else None)
            kept.append(counts)
        return x, torch.stack(kept, dim=1)


class Pooler(nn.Module):
    def __init__(self, cfg: EncoderConfig):
        super().__init__()
        self.dense = nn.Linear(cfg.hidden_size, cfg.hidden_size)

    def forward(self, cls):
        return torch.tanh(self.dense(cls))


class Backbone(nn.Module):
    """Embeddings + encoder (+ BERT's pooler): the ``bert.`` / ``roberta.`` part of the state dict."""

    def __init__(self, cfg: EncoderConfig, spec: PruningSpec | None):
        super().__init__()
        self.embeddings = Embeddings(cfg)
        self.encoder = Encoder(cfg, spec)
        self.pooler = Pooler(cfg) if cfg.arch == "bert" else None


class RobertaClassificationHead(nn.Module):
    def __init__(self, cfg: EncoderConfig):
        super().__init__()
        self.dense = nn.Linear(cfg.hidden_size, cfg.hidden_size)
        self.dropout = nn.Dropout(cfg.hidden_dropout_prob)
        self.out_proj = nn.Linear(cfg.hidden_size, cfg.num_labels)

    def forward(self, cls):
        return self.out_proj(self.dropout(torch.tanh(self.dense(self.dropout(cls)))))


class PrunedClassifier(nn.Module):
    """BERT/RoBERTa sequence classifier that drops tokens by ``spec`` (dense when ``spec`` is None).

    ``forward(input_ids, attention_mask, token_type_ids=None)`` takes right-padded int64 batches (B, T) and
    returns ``logits`` (B, num_labels) and ``kept_counts`` (B, L): tokens alive after each layer's decision.
    """

    def __init__(self, cfg: EncoderConfig, spec: PruningSpec | None = None):
        super().__init__()
        if spec is not None and spec.num_layers != cfg.num_layers:
            raise LtpDeployError(
                f"Pruning spec has {spec.num_layers} layer values but the model has {cfg.num_layers} layers: "
                "give one threshold or keep rate per layer."
            )
        self.config, self.spec = cfg, spec
        self.add_module(cfg.arch, Backbone(cfg, spec))
        if cfg.arch == "bert":
            self.dropout = nn.Dropout(cfg.hidden_dropout_prob)
            self.classifier = nn.Linear(cfg.hidden_size, cfg.num_labels)
        else:
            self.classifier = RobertaClassificationHead(cfg)

    @property
    def backbone(self) -> Backbone:
        return getattr(self, self.config.arch)

    def forward(self, input_ids, attention_mask, token_type_ids=None):
        cls, kept_counts = self.encode(input_ids, attention_mask, token_type_ids)
        return self.head(cls), kept_counts

    def encode(self, input_ids, attention_mask, token_type_ids=None):  # -> (B, D), (B, L)
        """The last layer's CLS row of each sequence (what the head reads) and the kept counts."""
        if token_type_ids is None:
            token_type_ids = torch.zeros_like(input_ids)
        n_orig = attention_mask.sum(dim=1)  # (B,)
        buckets, real = self.backbone.encoder.buckets, attention_mask.reshape(-1)
        # (N,): the real tokens (then filler rows, with buckets); padding leaves here
        rows = torch.nonzero(real).squeeze(1) if buckets is None else take_rows(real > 0, buckets.rows)
        x = self.backbone.embeddings(input_ids, token_type_ids, rows)  # (1, N, D)
        x, kept_counts = self.backbone.encoder(x, n_orig, n_orig, input_ids.shape[1])
        return Packed.first_rows(x, kept_counts[:, -1]), kept_counts  # first rows: CLS, never dropped

    def head(self, cls):  # (B, D) -> (B, num_labels)
        if self.config.arch == "bert":
            return self.classifier(self.dropout(self.backbone.pooler(cls)))
        return self.classifier(cls)

    def with_spec(self, spec: PruningSpec | None) -> PrunedClassifier:
        """The same weights under another spec (``None``: dense). Shares parameters with ``self``; a learned scorer
        that ``spec`` no longer uses is left out, and one that it needs must be here (else an error names it)."""
        other = PrunedClassifier(self.config, spec)
        state = self.state_dict()
        missing = [k for k in other.state_dict() if k not in state]
        if missing:
            raise LtpDeployError(f"The model has no weight {missing[0]!r} that spec needs: a learned scorer exists "
                                 "only for the layers it was trained for; keep those layers' thresholds above 0.")
        other.load_state_dict({k: state[k] for k in other.state_dict()}, strict=True, assign=True)
        return other.train(self.training)

    def scale_thresholds(self, factor: float) -> None:
        """Multiply this threshold spec's thresholds by ``factor`` in place: the same layers prune (a threshold of
        0 stays 0), only their constants move. Training's FLOPs budget uses it; ``spec`` follows."""
        if self.spec is None or self.spec.mode != "absolute_threshold":
            mode = self.spec.mode if self.spec else "dense"
            raise LtpDeployError(f"Only a threshold spec can be scaled: this model is {mode}.")
        for layer in self.backbone.encoder.layer:
            if layer.pruner is not None:
                layer.pruner.value *= factor
        self.spec = replace(self.spec, thresholds=tuple(t * factor for t in self.spec.thresholds))

    def weights_fingerprint(self) -> str:
        """SHA-256 of the weights (names, shapes and float32 values, in name order), whatever the spec: what an
        export records so that ``check --reference`` can tell its own checkpoint from a look-alike."""
        digest = hashlib.sha256()
        for name, tensor in sorted(self.state_dict().items()):
            values = tensor.detach().to("cpu", torch.float32).contiguous()
            digest.update(f"{name}{tuple(values.shape)};".encode())
            digest.update(values.numpy().tobytes())
        return digest.hexdigest()


@contextmanager
def separate_qkv_graph(model: PrunedClassifier):
    """Within the block, the attention of every layer of ``model`` whose probabilities feed nothing but the
    attention itself computes Q, K and V with three GEMMs (``SelfAttention.forward``): the form an OpenVINO export
    traces, which its CPU plugin fuses whole. A layer whose score reads the probabilities (LTP's attention score)
    cannot be fused and keeps the one-GEMM form, which OpenVINO runs faster unfused. Same weights, same results to
    float rounding."""
    modules = [layer.attention.self for layer in model.backbone.encoder.layer
               if layer.pruner is None or layer.pruner.scorer is not None]
    for m in modules:
        m.separate_qkv = True
    try:
        yield model
    finally:
        for m in modules:
            del m.separate_qkv  # back to the class default


@contextmanager
def bucketed_graph(model: PrunedClassifier, buckets: ShapeBuckets | None):
    """Within the block, ``model``'s packed forward rounds its row count and attention length up to ``buckets``
    (``packing.ShapeBuckets``): the form an OpenVINO export traces, so that its CPU plugin meets shapes it has
    prepared kernels for. Same results to float rounding."""
    encoder = model.backbone.encoder
    encoder.buckets = buckets
    try:
        yield model
    finally:
        del encoder.buckets


class SingleSequenceClassifier(nn.Module):
    """The batch-1 form of a ``PrunedClassifier`` for latency serving: same weights, same decisions.

    ``forward(input_ids, attention_mask, token_type_ids=None)`` takes one sequence (1, T) and returns
    ``logits`` (1, num_labels) and ``kept_counts`` (1, L), equal to the batched model's row. Padding positions
    leave before the first layer; the rows then are the block attention needs (``OneSequence``), so the graph has
    no mask and no attention gathers, and each pruning step is a NonZero and a Gather: fewer nodes than the packed
    batched form, which OpenVINO pays for per call (the faster form at batch 1 on both runtimes).
    """

    def __init__(self, model: PrunedClassifier):
        super().__init__()
        self.model = model

    def forward(self, input_ids, attention_mask, token_type_ids=None):  # (1, T) each
        if token_type_ids is None:
            token_type_ids = torch.zeros_like(input_ids)
        m = self.model
        n_orig = attention_mask.sum(dim=1)  # (1,)
        x = m.backbone.embeddings(input_ids, token_type_ids, torch.nonzero(attention_mask[0]).squeeze(1))  # (1, n, D)
        x, kept_counts = m.backbone.encoder(x, n_orig, n_orig)
        return m.head(x[:, 0]), kept_counts

