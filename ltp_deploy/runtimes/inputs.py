"""The batch contract of ``Runtime.run``: what a tokenised batch must look like, checked before any runtime sees it.

Example::

    feed = check_batch({"input_ids": ids, "attention_mask": mask}, ("input_ids", "attention_mask"),
                       InputLimits(vocab_size=30522, type_vocab_size=2, max_length=512))
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np

from ltp_deploy.errors import LtpDeployError

REQUIRED_INPUTS = ("input_ids", "attention_mask")  # token_type_ids may be left out: it defaults to zeros


@dataclass(frozen=True)
class InputLimits:
    """What the model's tables allow: ids in [0, vocab_size), token types in [0, type_vocab_size), and at most
    ``max_length`` tokens per row (``EncoderConfig.max_length``). A limit is None when it is unknown (a bare graph
    whose table could not be found, ``runtimes.tables``): that rule is then not checked."""

    vocab_size: int | None
    type_vocab_size: int | None
    max_length: int | None

    @classmethod
    def of(cls, config) -> InputLimits:
        """The limits of an ``EncoderConfig``."""
        return cls(int(config.vocab_size), int(config.type_vocab_size), int(config.max_length))


def check_batch(batch: Mapping, input_names: tuple[str, ...],
                limits: InputLimits | None = None) -> dict[str, np.ndarray]:
    """Check a tokenised batch and return the model's inputs, in ``input_names`` order, as contiguous int64 arrays.

    The contract (what a Hugging Face tokenizer gives with ``padding=True, truncation=True, padding_side="right"``):

    * ``batch`` maps input names to integer arrays (numpy, or anything ``np.asarray`` turns into one); keys the
      model does not take are ignored. ``input_ids`` and ``attention_mask`` are required; ``token_type_ids``,
      when the model takes it, defaults to zeros.
    * every input is 2-D (batch, length), all of one shape, with at least one row and one token.
    * ids are integers (any integer dtype); the mask may also be bool. Its values are 0/1, every row holds at
      least one real token, and padding is on the right (1s, then 0s).
    * with ``limits`` (the model's config): ``0 <= input_ids < vocab_size``, ``0 <= token_type_ids <
      type_vocab_size`` and length ``<= max_length``. Without limits (or where one is None), only negative ids
      are refused.

    Vectorised: a few numpy reductions per input, no loop over rows.

    Raises:
        LtpDeployError: the first violated rule, in one sentence naming the input, the offending value or shape,
            and the fix.
    """
    if not isinstance(batch, Mapping):
        raise LtpDeployError(f"A batch is a dict of arrays keyed by input name, not {type(batch).__name__}: pass "
                             f"e.g. {{'input_ids': ids, 'attention_mask': mask}} (this model takes "
                             f"{', '.join(input_names)}).")
    feed: dict[str, np.ndarray] = {}
    for name in input_names:
        if name not in batch:
            if name == "token_type_ids":
                continue  # filled in with zeros below, once input_ids' shape is known
            given = ", ".join(map(str, batch)) or "nothing"
            raise LtpDeployError(f"The batch has no {name!r} (it has {given}): this model takes "
                                 f"{', '.join(input_names)}; pass the tokenizer's output (token_type_ids may be "
                                 "left out).")
        feed[name] = _int64_matrix(name, batch[name])
    first = next(iter(feed))
    shape = feed[first].shape
    for name, array in feed.items():
        if array.shape != shape:
            raise LtpDeployError(f"{name} has shape {array.shape} but {first} has {shape}: every input must be "
                                 "(batch, length) of the same shape; pad them together (tokenizer padding=True).")
    if "token_type_ids" in input_names and "token_type_ids" not in feed:
        feed["token_type_ids"] = np.zeros(shape, dtype=np.int64)
        feed = {n: feed[n] for n in input_names}
    if limits is not None and limits.max_length is not None and shape[1] > limits.max_length:
        raise LtpDeployError(f"The batch is {shape[1]} tokens long, longer than the model's maximum input length "
                             f"of {limits.max_length}: truncate to {limits.max_length} tokens (tokenizer "
                             f"truncation=True, max_length={limits.max_length}).")
    if "input_ids" in feed:
        _check_range("input_ids", feed["input_ids"], limits and limits.vocab_size, "the vocabulary size",
                     "encode with this model's own tokenizer")
    if "token_type_ids" in feed:
        _check_range("token_type_ids", feed["token_type_ids"], limits and limits.type_vocab_size,
                     "the number of token types", "use 0 for the first segment and 1 for the second")
    if "attention_mask" in feed:
        _check_mask(feed["attention_mask"])
    return feed


def _int64_matrix(name: str, value) -> np.ndarray:
    """``value`` as a contiguous int64 (batch, length) array with at least one row and one token."""
    try:
        array = value if isinstance(value, np.ndarray) else np.asarray(value)
    except (ValueError, TypeError):
        raise LtpDeployError(f"{name} is not a rectangular array (rows of different lengths?): pad every row to "
                             "the same length (tokenizer padding=True).") from None
    if array.ndim != 2:
        hint = (f"for one text pass a batch of one, e.g. {name}[None]" if array.ndim == 1 else
                "pass one (batch, length) array per input")
        raise LtpDeployError(f"{name} has shape {array.shape}, not (batch, length): {hint}.")
    if array.shape[0] == 0 or array.shape[1] == 0:
        what = "no rows" if array.shape[0] == 0 else "no tokens (length 0)"
        raise LtpDeployError(f"{name} has shape {array.shape}, {what}: pass at least one row of at least one "
                             "token.")
    kind = array.dtype.kind
    if not (kind in "iu" or (kind == "b" and name == "attention_mask")):
        allowed = "an integer or bool" if name == "attention_mask" else "an integer"
        raise LtpDeployError(f"{name} has dtype {array.dtype}, not {allowed} dtype: pass token ids as integers "
                             f"(e.g. np.asarray({name}, dtype=np.int64); tokenizer return_tensors='np').")
    return np.ascontiguousarray(array, dtype=np.int64)


def _check_range(name: str, array: np.ndarray, size: int | None, what: str, fix: str) -> None:
    """Values in [0, size), or only >= 0 when size is unknown; one reduction in the common case."""
    if size is None:
        low = array.min()
        if low < 0:
            raise LtpDeployError(f"{name} holds {int(low)}, but ids are never negative: {fix}.")
        return
    if array.view(np.uint64).max() < size:  # negatives wrap to huge values: one pass covers both ends
        return
    bad = int(array[(array < 0) | (array >= size)].flat[0])
    raise LtpDeployError(f"{name} holds {bad}, outside [0, {size}) ({what} is {size}): {fix}.")


def _check_mask(mask: np.ndarray) -> None:
    if mask.view(np.uint64).max() > 1:
        bad = int(mask[(mask < 0) | (mask > 1)].flat[0])
        raise LtpDeployError(f"attention_mask holds {bad}: its values are 1 for a real token and 0 for padding.")
    if mask.shape[1] > 1 and (mask[:, 1:] > mask[:, :-1]).any():
        row = int((mask[:, 1:] > mask[:, :-1]).any(axis=1).argmax())
        raise LtpDeployError(f"Row {row} of attention_mask has padding before a real token: ltp-deploy graphs expect "
                             "right padding (1s, then 0s); tokenize with padding_side=\"right\".")
    if not mask[:, 0].all():  # right-padded, so a row starting with 0 is all zeros
        row = int((mask[:, 0] == 0).argmax())
        raise LtpDeployError(f"Row {row} of attention_mask is all zeros, an empty text: drop empty texts from the "
                             "batch or give each row at least one real token.")
