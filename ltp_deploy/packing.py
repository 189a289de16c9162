"""Where the tokens of a batch sit: the layouts the encoder's layers run on.

Every layer runs its token-wise ops (projections, feed-forward, LayerNorm) on rows ``(1, N, D)``, and its
attention core on those rows re-padded per sequence ``(B, T, D)``. The rows keep a leading axis of 1 so that
runtimes see the 3-D (batch, sequence, hidden) tensors their transformer fusions match (ONNX Runtime fuses
MatMul + bias + residual + LayerNorm into SkipLayerNormalization only then). A layout says which row goes where:

* ``Packed``: the real tokens only, sequence after sequence (the deployed forward; padding never reaches a GEMM).
* ``OneSequence``: one sequence without padding (batch 1: nothing to gather or mask).
* ``Padded``: every slot of a padded batch, padding included (the soft-mask training forward).

Example::

    layout = Packed(counts, rows=x.shape[1], length=input_ids.shape[1])
    q = layout.pad(x)            # (1, N, D) -> (B, T, D) for attention
    y = layout.unpad(context)    # back to (1, N, D)
"""

from __future__ import annotations

import torch


def key_bias(alive):  # (B, T) bool -> (B, 1, 1, T): 0 for a real key, float32's lowest for padding
    # A select, not cast-and-multiply: OpenVINO's INT8 transformations read Convert(u8) x constant as a
    # dequantization and, in an NNCF-quantized graph, turned every key's bias into the lowest float.
    lowest = torch.tensor(torch.finfo(torch.float32).min, device=alive.device)
    return torch.where(alive[:, None, None, :], torch.zeros((), device=alive.device), lowest)


def first_rows_index(counts):  # (B,) -> (B,): the row where each sequence starts
    return counts.cumsum(dim=0) - counts


class Packed:
    """The layout of a packed batch: its real tokens are rows ``(1, N, D)``, sequence by sequence, in order.

    Attention sees the rows re-padded per sequence to ``(B, T, D)``, ``T`` the largest count, with padding keys
    masked. ``counts`` (B,) are the rows per sequence; ``rows`` is N (a tensor dim, symbolic when exported). No
    Python int is read from data: ``T`` comes from a NonZero, so the graph exports with data-dependent shapes.
    """

    def __init__(self, counts, rows: int, length: int):  # (B,), N, an upper bound on T (the input length)
        slots = torch.nonzero(torch.arange(length, device=counts.device) < counts.max()).squeeze(1)  # (T,)
        self.alive = slots[None, :] < counts[:, None]  # (B, T)
        self.key_bias = key_bias(self.alive)
        last = torch.minimum(slots[None, :], counts[:, None] - 1)  # padding slots repeat the last row (masked)
        self.to_padded = (first_rows_index(counts)[:, None] + last).flatten()  # (B*T,)
        self.to_rows = torch.nonzero(self.alive.flatten()).squeeze(1)  # (N,): rows are the alive slots, in order
        torch._check(self.to_rows.shape[0] == rows)  # sum(counts) == N by construction; tell the tracer

    def pad(self, rows):  # (1, N, F) -> (B, T, F)
        return rows.index_select(1, self.to_padded).view(*self.alive.shape, rows.shape[-1])

    def unpad(self, padded):  # (B, T, F) -> (1, N, F)
        return padded.flatten(0, 1).index_select(0, self.to_rows)[None]

    @staticmethod
    def first_rows(rows, counts):  # (1, N, F), (B,) -> (B, F): each sequence's first row (CLS)
        return rows.index_select(1, first_rows_index(counts))[0]


class OneSequence:
    """The layout of one sequence without padding: its rows already are the (1, T, D) block attention needs."""

    alive = None
    key_bias = None

    @staticmethod
    def pad(rows):
        return rows

    @staticmethod
    def unpad(padded):
        return padded


class Padded:
    """The layout of a padded batch as rows ``(1, B*T, D)``, padding included (the soft-mask training forward,
    which never drops a token)."""

    def __init__(self, alive, log_key_weights=None):  # (B, T) bool, (B, T) float or None
        """``log_key_weights``: a log-weight per key added to the attention logits (soft dropping), or None."""
        self.alive = alive
        self.key_bias = key_bias(alive)
        if log_key_weights is not None:
            self.key_bias = self.key_bias + log_key_weights.masked_fill(~alive, 0.0)[:, None, None, :]

    def pad(self, rows):  # (1, B*T, F) -> (B, T, F)
        return rows.view(*self.alive.shape, rows.shape[-1])

    def unpad(self, padded):  # (B, T, F) -> (1, B*T, F)
        return padded.flatten(0, 1)[None]

    def firsts(self, rows):  # (1, B*T, F) -> (B, F)
        return self.pad(rows)[:, 0]
