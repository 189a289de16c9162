"""Analytic FLOPs of a token-pruned encoder: the one FLOPs module of the project (bench, training, calibration).

Convention (LTP's accounting, Kim et al. KDD'22). Per sequence and per encoder layer ``l``, with ``n_in`` the
tokens entering the layer (before its decision) and ``n_out`` the tokens surviving it (after the drop)::

    QKV projections              3 * 2 * n_in * D * D
    attention scores + context   2 * 2 * n_in^2 * D       (Q K^T and P V, all heads together)
    attention output projection  2 * n_in * D * D
    feed-forward (two matmuls)   2 * 2 * n_out * D * I

* A multiply-add counts as 2 FLOPs. ``D`` is ``hidden_size``, ``I`` is ``intermediate_size``.
* The attention block runs at the pre-drop length and the feed-forward at the post-drop length, because the
  decision made from layer ``l``'s attention takes effect right after that attention block.
* ``n_in`` of layer 0 is the real, unpadded length ``n_orig``; ``n_in`` of layer ``l > 0`` is the kept count
  after layer ``l - 1``. A dense model keeps ``n_orig`` everywhere.
* **Ignored** (the same for dense and pruned runs, and well under 1% of the total for BERT-base at length 128):
  embedding lookups, LayerNorm, softmax, the activation, bias adds, residual adds, the pruning score
  (attention column sums, or a learned scorer's D-wide dot product per token) and gather themselves, BERT's pooler and the classification head. Padding is not counted: these are the FLOPs of the
  real tokens. (``ltp_deploy.bench`` separately reports what the padded batch tensors cost.)

The model dimensions come from an ``EncoderConfig``, the ``config`` dict stored in export metadata
(``hidden_size``, ``num_layers``, ``intermediate_size``) or a Hugging Face ``config.json`` dict
(``num_hidden_layers``).

Example::

    cfg = read_metadata("out/sst2-onnx")["config"]
    logits, kept = runtime.run(batch)                          # kept: (B, L)
    n_orig = batch["attention_mask"].sum(axis=1)               # (B,)
    flops_reduction(cfg, n_orig, kept)                         # e.g. 1.8 (dense FLOPs / pruned FLOPs)
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ltp_deploy.errors import LtpDeployError

__all__ = ["layer_flops", "sequence_flops", "flops_from_kept", "expected_flops", "dense_flops", "flops_reduction",
           "dimensions"]


def dimensions(cfg: Any) -> tuple[int, int, int]:
    """``(num_layers, hidden_size, intermediate_size)`` of an ``EncoderConfig`` or a config dict.

    Raises:
        LtpDeployError: the config lacks one of the sizes.
    """
    get = cfg.get if isinstance(cfg, dict) else (lambda key, default=None: getattr(cfg, key, default))
    layers = get("num_layers", None)
    if layers is None:
        layers = get("num_hidden_layers", None)
    hidden, inter = get("hidden_size", None), get("intermediate_size", None)
    if layers is None or hidden is None or inter is None:
        raise LtpDeployError(
            "Cannot count FLOPs: the config lacks num_layers (or num_hidden_layers), hidden_size or "
            "intermediate_size; pass an EncoderConfig or the config dict of an export's metadata."
        )
    return int(layers), int(hidden), int(inter)


def layer_flops(cfg: Any, n_in, n_out):
    """FLOPs of one encoder layer for ``n_in`` tokens entering it and ``n_out`` surviving its decision.

    Scalars give a float; numpy arrays broadcast and give an array.

    Example::

        layer_flops(cfg, 25, 25)      # a dense layer on 25 tokens
        layer_flops(cfg, 25, 12)      # attention on 25, feed-forward on the 12 survivors
    """
    _, d, i = dimensions(cfg)
    if not (_is_tensor(n_in) or _is_tensor(n_out)):
        n_in = np.asarray(n_in, dtype=np.float64)
        n_out = np.asarray(n_out, dtype=np.float64)
    qkv = 3 * 2 * n_in * d * d
    scores_and_context = 2 * 2 * n_in**2 * d
    attention_output = 2 * n_in * d * d
    feed_forward = 2 * 2 * n_out * d * i
    total = qkv + scores_and_context + attention_output + feed_forward
    if _is_tensor(total):
        return total
    return float(total) if total.ndim == 0 else total


def _is_tensor(x) -> bool:
    return type(x).__module__.startswith("torch")


def expected_flops(cfg: Any, n_orig, kept):
    """Differentiable FLOPs per sequence from fractional kept counts (torch tensors): the FLOPs budget of training.

    The same accounting as :func:`flops_from_kept`, on expected counts, e.g. the sums of LTP's soft masks.

    Args:
        n_orig: ``(N,)`` float tensor of real lengths; kept: ``(N, L)`` float tensor of expected survivors.
    Returns:
        ``(N,)`` tensor; gradients flow to ``kept``.
    """
    import torch

    n_in = torch.cat([n_orig[:, None], kept[:, :-1]], dim=1)  # (N, L)
    return layer_flops(cfg, n_in, kept).sum(dim=1)


def flops_from_kept(cfg: Any, n_orig, kept) -> np.ndarray:
    """FLOPs per sequence of a batch of ``N`` sequences, vectorised.

    Args:
        cfg: ``EncoderConfig`` or config dict.
        n_orig: ``(N,)`` real (unpadded) lengths, the attention mask's row sums.
        kept: ``(N, L)`` tokens alive after each layer's decision (the graph's ``kept_counts`` output).
    Returns:
        ``(N,)`` float64 FLOPs.
    Raises:
        LtpDeployError: ``kept`` does not have one column per layer or one row per length.
    Example::

        flops_from_kept(cfg, [10, 7], [[10, 9, 8, 6, 5, 4], [7, 7, 6, 5, 4, 3]])
    """
    layers, _, _ = dimensions(cfg)
    n_orig = np.asarray(n_orig, dtype=np.float64).reshape(-1)  # (N,)
    kept = np.asarray(kept, dtype=np.float64)  # (N, L)
    if kept.ndim != 2 or kept.shape != (n_orig.shape[0], layers):
        raise LtpDeployError(
            f"Kept counts of shape {kept.shape} do not fit {n_orig.shape[0]} sequences of a {layers}-layer model: "
            f"pass one row of {layers} counts per sequence (the graph's kept_counts output)."
        )
    n_in = np.concatenate([n_orig[:, None], kept[:, :-1]], axis=1)  # (N, L): what enters each layer
    return layer_flops(cfg, n_in, kept).sum(axis=1)  # (N,)


def sequence_flops(cfg: Any, n_orig: int, kept_counts_row) -> float:
    """FLOPs of one sequence of real length ``n_orig`` whose kept counts per layer are ``kept_counts_row`` (L,).

    Example::

        sequence_flops(cfg, 10, [10, 9, 8, 6, 5, 4])
    """
    return float(flops_from_kept(cfg, [n_orig], np.asarray(kept_counts_row)[None, :])[0])


def dense_flops(cfg: Any, n_orig):
    """FLOPs of the dense model on real length(s) ``n_orig``: a float for a scalar, ``(N,)`` for an array."""
    layers, _, _ = dimensions(cfg)
    n = np.asarray(n_orig, dtype=np.float64)
    return layers * layer_flops(cfg, n, n)


def flops_reduction(cfg: Any, n_orig, kept) -> float:
    """``sum(dense FLOPs) / sum(pruned FLOPs)`` over a set of sequences (1.0 when nothing is dropped).

    Args:
        n_orig: ``(N,)`` real lengths; kept: ``(N, L)`` kept counts, as in :func:`flops_from_kept`.
    """
    pruned = flops_from_kept(cfg, n_orig, kept).sum()
    dense = np.sum(dense_flops(cfg, np.asarray(n_orig).reshape(-1)))
    return float(dense / pruned)
