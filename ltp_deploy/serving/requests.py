"""The HTTP contract of ``ltp-deploy serve``: what ``POST /predict`` takes, and the 4xx answer to anything else.

A request is a JSON object ``{"texts": [...]}``: strings for a single-text task, ``[text, text_pair]`` lists for
a pair task (MRPC, STS-B). ``parse_predict`` checks it before any token is computed and raises ``BadRequest``
(status and one sentence naming the problem and the fix) for: a body that is not JSON or not an object, a
missing or mistyped ``texts``, an empty list, more texts than the server takes, an item of the wrong shape, and an
empty (or whitespace-only) text. Over-long texts are found after tokenisation (``predictor``).

Example::

    items = parse_predict(b'{"texts": ["a gripping film", "dull"]}', pairs=False, max_texts=64)
    items[0].text, items[0].pair          # "a gripping film", None
"""

from __future__ import annotations

import json
from dataclasses import dataclass


class BadRequest(Exception):
    """A request the server refuses: ``status`` (4xx) and a one-sentence ``message``."""

    def __init__(self, status: int, message: str):
        super().__init__(message)
        self.status, self.message = status, message


@dataclass(frozen=True)
class Item:
    """One text to classify (and its pair, for a pair task)."""

    text: str
    pair: str | None = None


def parse_predict(body: bytes, pairs: bool, max_texts: int) -> list[Item]:
    """The items of a ``POST /predict`` body; ``pairs``: the model's task takes text pairs."""
    shape = '{"texts": [["first", "second"], ...]}' if pairs else '{"texts": ["a sentence", ...]}'
    try:
        payload = json.loads(body)
    except (json.JSONDecodeError, UnicodeDecodeError):
        raise BadRequest(400, f"The request body is not valid JSON: send {shape}.") from None
    if not isinstance(payload, dict) or "texts" not in payload:
        raise BadRequest(400, f"The request needs a 'texts' field: send {shape}.")
    texts = payload["texts"]
    if not isinstance(texts, list):
        raise BadRequest(400, f"'texts' must be a list, got {type(texts).__name__}: send {shape}.")
    if not texts:
        raise BadRequest(400, f"'texts' is empty: send at least one, as {shape}.")
    if len(texts) > max_texts:
        raise BadRequest(413, f"{len(texts)} texts in one request, more than this server's {max_texts}: split the "
                              "request.")
    return [_item(value, i, pairs, shape) for i, value in enumerate(texts)]


def _item(value, index: int, pairs: bool, shape: str) -> Item:
    if pairs:
        if not (isinstance(value, list) and len(value) == 2 and all(isinstance(v, str) for v in value)):
            raise BadRequest(400, f"texts[{index}] must be a pair of strings [first, second] for this model's "
                                  f"pair task: send {shape}.")
        text, pair = value
    else:
        if not isinstance(value, str):
            raise BadRequest(400, f"texts[{index}] must be a string, got {type(value).__name__}: send {shape}.")
        text, pair = value, None
    if not text.strip() or (pair is not None and not pair.strip()):
        raise BadRequest(400, f"texts[{index}] is empty: send non-blank text.")
    return Item(text, pair)


def error_body(error: BadRequest) -> dict:
    """The JSON answer to a refused request."""
    return {"error": error.message, "status": error.status}
