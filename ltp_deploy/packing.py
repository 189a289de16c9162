"""Where the tokens of a batch sit: the layouts the encoder's layers run on.

Every layer runs its token-wise ops (projections, feed-forward, LayerNorm) on rows ``(1, N, D)``, and its
attention core on those rows re-padded per sequence ``(B, T, D)``. The rows keep a leading axis of 1 so that
runtimes see the 3-D (batch, sequence, hidden) tensors their transformer fusions match (ONNX Runtime fuses
MatMul + bias + residual + LayerNorm into SkipLayerNormalization only then). A layout says which row goes where:

* ``Packed``: the real tokens only, sequence after sequence (the deployed forward; padding never reaches a GEMM).
* ``OneSequence``: one sequence without padding (batch 1: nothing to gather or mask).
* ``Padded``: every slot of a padded batch, padding included (the soft-mask training forward).

With ``ShapeBuckets`` (the OpenVINO INT8 graph) a packed batch's row count and attention length are rounded up to
a few recurring sizes: filler rows (copies of row 0) follow the real ones and nothing reads them, extra attention
slots are masked keys; results are unchanged.

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


class Ladder:
    """Sizes a data-dependent dimension is rounded up to: multiples of ``granule``, then ``bits`` + 1 significant
    bits (at most 1 / 2**bits more), so that a runtime that prepares kernels per shape meets the same few shapes
    again. A size above the last rung (``top``) is left as it is."""

    def __init__(self, granule: int, bits: int, top: int = 1 << 14):
        sizes, size = [], granule
        while size <= top:
            sizes.append(size)
            size += max(granule, 1 << max(0, size.bit_length() - 1 - bits))
        self.granule, self.bits = granule, bits
        self.sizes = torch.tensor(sizes)
        self.widest_step = max(b - a for a, b in zip([0] + sizes, sizes))  # the most a size can grow

    def round_up(self, n):  # int64 scalar tensor -> int64 scalar tensor
        sizes = self.sizes.to(n.device)
        rung = sizes[(sizes < n).sum().clamp(max=len(sizes) - 1)]
        return torch.maximum(rung, n)

    def __repr__(self) -> str:
        return f"Ladder(granule={self.granule}, bits={self.bits})"


class ShapeBuckets:
    """How a packed graph rounds its row count N (``rows``) and its attention length T (``slots``) up: the
    extra rows are copies of row 0 that nothing reads, the extra slots are masked keys, so results do not change."""

    def __init__(self, rows: Ladder, slots: Ladder):
        self.rows, self.slots = rows, slots

    def describe(self) -> dict:
        return {name: {"granule": ladder.granule, "bits": ladder.bits}
                for name, ladder in (("rows", self.rows), ("slots", self.slots))}


def take_rows(mask, ladder: Ladder | None):  # (M,) bool -> (R,) int64
    """The positions of ``mask``'s True entries, in order; with a ``ladder``, followed by 0s (filler) up to the
    rung at or above their number. One NonZero either way."""
    if ladder is None:
        return torch.nonzero(mask).squeeze(1)
    n = mask.sum()
    # The filler's length is a constant: one read off the mask's length would double the tracer's bound on the
    # row count at every pruning layer, past what an int64 holds.
    filler = torch.arange(ladder.widest_step, device=mask.device) < ladder.round_up(n) - n
    torch._check(mask.shape[0] <= 1 << 62)  # tell the tracer: the rows' bound plus the filler's fits an int64
    found = torch.nonzero(torch.cat([mask, filler])).squeeze(1)
    return torch.where(found < mask.shape[0], found, torch.zeros_like(found))


class Packed:
    """The layout of a packed batch: its real tokens are rows ``(1, N, D)``, sequence by sequence, in order.

    Attention sees the rows re-padded per sequence to ``(B, T, D)``, ``T`` the largest count, with padding keys
    masked. ``counts`` (B,) are the rows per sequence; ``rows`` is N (a tensor dim, symbolic when exported). No
    Python int is read from data: ``T`` comes from a NonZero, so the graph exports with data-dependent shapes.
    """

    def __init__(self, counts, rows: int, length: int, buckets: ShapeBuckets | None = None):
        # (B,), N, an upper bound on T (the input length), and how N and T are rounded up (None: exact sizes)
        longest = counts.max() if buckets is None else buckets.slots.round_up(counts.max())
        slots = torch.nonzero(torch.arange(length, device=counts.device) < longest).squeeze(1)  # (T,)
        self.alive = slots[None, :] < counts[:, None]  # (B, T)
        self.key_bias = key_bias(self.alive)
        last = torch.minimum(slots[None, :], counts[:, None] - 1)  # padding slots repeat the last row (masked)
        self.to_padded = (first_rows_index(counts)[:, None] + last).flatten()  # (B*T,)
        self.row_ladder = None if buckets is None else buckets.rows
        self.to_rows = take_rows(self.alive.flatten(), self.row_ladder)  # (N,)
        torch._check(self.to_rows.shape[0] == rows)  # sum(counts) == N by construction; tell the tracer
        # (N,) bool: the real rows, ahead of the filler ones (None: no filler)
        self.real = None if buckets is None else torch.arange(rows, device=counts.device) < counts.sum()

    def kept_rows(self, keep):  # (B, T) bool -> (N',): the rows of the kept tokens, in order (then filler rows)
        flat = self.unpad(keep[..., None]).flatten()
        return take_rows(flat if self.real is None else flat & self.real, self.row_ladder)

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
    def kept_rows(keep):  # (1, T) bool -> (T',)
        return take_rows(keep.flatten(), None)

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
