"""Examples into model inputs: index batches (dataset order or by length) and tokenisation."""

from __future__ import annotations

from typing import Any, Iterator, Sequence

import numpy as np

from ltp_deploy.data.examples import Examples
from ltp_deploy.data.readers import is_blank
from ltp_deploy.errors import LtpDeployError


def batches(examples: Examples, batch_size: int, sort_by_length: bool = False) -> Iterator[list[int]]:
    """Yield row-index lists of at most ``batch_size``; sorted by character length (shortest first) if asked."""
    if batch_size < 1:
        raise LtpDeployError(f"Batch size {batch_size} is not positive: use a batch size of at least 1.")
    order = np.arange(len(examples))
    if sort_by_length:
        pairs = examples.text_pairs or [""] * len(examples)
        lengths = np.array([len(t) + len(q) for t, q in zip(examples.texts, pairs)], dtype=np.int64)
        order = np.argsort(lengths, kind="stable")
    for start in range(0, len(order), batch_size):
        yield order[start:start + batch_size].tolist()


def encode(tokenizer: Any, examples: Examples, max_length: int, padding: str = "longest",
           indices: Sequence[int] | None = None) -> dict[str, np.ndarray]:
    """Tokenise (truncating to ``max_length``) into int64 ``input_ids``, ``attention_mask``, ``token_type_ids``.

    Args:
        tokenizer: a Hugging Face tokenizer (``AutoTokenizer``).
        examples: the texts (and text pairs).
        max_length: maximum tokens per row, special tokens included.
        padding: ``"longest"`` (pad to the batch) or ``"max_length"``.
        indices: encode only these rows (e.g. one list from :func:`batches`); default all.
    Raises:
        LtpDeployError: an empty text (its row index named), bad ``max_length`` or ``padding``.
    """
    if padding not in ("longest", "max_length"):
        raise LtpDeployError(f"Unknown padding {padding!r}: use 'longest' or 'max_length'.")
    if not isinstance(max_length, int) or max_length < 2:
        raise LtpDeployError(f"max_length {max_length!r} is too small: use an integer of at least 2.")
    idx = list(range(len(examples))) if indices is None else [int(i) for i in indices]
    all_pairs = examples.text_pairs
    for i in idx:
        if is_blank(examples.texts[i]) or (all_pairs is not None and is_blank(all_pairs[i])):
            raise LtpDeployError(f"Row {i} of {examples.source or 'the data'} has an empty text (nothing but "
                                 "whitespace or invisible characters): drop or fill in empty rows before encoding.")
    if not idx:
        raise LtpDeployError("Nothing to encode: pass at least one example.")
    texts = [examples.texts[i] for i in idx]
    pairs = None if examples.text_pairs is None else [examples.text_pairs[i] for i in idx]
    enc = tokenizer(texts, pairs, max_length=max_length, truncation=True, padding=padding, return_tensors="np")
    out = {k: np.asarray(enc[k], dtype=np.int64) for k in ("input_ids", "attention_mask")}
    tt = enc.get("token_type_ids")
    out["token_type_ids"] = np.zeros_like(out["input_ids"]) if tt is None else np.asarray(tt, dtype=np.int64)
    return out
