"""The HTTP contract of ``ltp-deploy serve``: what ``POST /predict`` takes, and the 4xx answer to anything else.

A request is a JSON object ``{"texts": [...]}``: strings for a single-text task, ``[text, text_pair]`` lists for
a pair task (MRPC, STS-B). ``parse_predict`` checks it before any token is computed and raises ``BadRequest``
(status and one sentence naming the problem and the fix) for: a body that is not JSON or not an object, JSON
nested deeper than ``MAX_DEPTH``, an integer longer than ``MAX_DIGITS`` digits anywhere in the body, a missing or
mistyped ``texts``, an empty list, more texts than the server takes (413), an item of the wrong shape, a text that
is not valid Unicode (a lone surrogate such as ``"\\ud800"``), and a text that is empty once whitespace and
invisible characters (``INVISIBLE``) are removed. The body's size is checked by whoever reads it (``app``), and
over-long texts by the tokenizer's side (``predictor``).

Example::

    items = parse_predict(b'{"texts": ["a gripping film", "dull"]}', pairs=False, max_texts=64)
    items[0].text, items[0].pair          # "a gripping film", None
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from itertools import accumulate

# A request is 3 levels deep (object, list, pair); deeper JSON is refused before it is parsed, because Python's
# parser recurses once per level and a body of 100,000 "[" would exhaust the interpreter's stack.
MAX_DEPTH = 32
# No number is part of a request; an integer of thousands of digits costs quadratic time to convert, which is why
# Python itself refuses more than 4300. This server refuses more than MAX_DIGITS, with a 400.
MAX_DIGITS = 64
# Characters that leave a text empty: whitespace (``str.isspace``) and the zero-width space, non-joiner and joiner,
# the word joiner and the byte-order mark.
INVISIBLE = "\u200b\u200c\u200d\u2060\ufeff"
_VISIBLE = re.compile(rf"[^\s{INVISIBLE}]")
_SURROGATE = re.compile("[\ud800-\udfff]")
_JSON_STRING = re.compile(rb'"[^"\\]*(?:\\.[^"\\]*)*"')  # a JSON string literal, escapes included
_BRACKETS = {ord("["): 1, ord("{"): 1, ord("]"): -1, ord("}"): -1}
_NOT_BRACKETS = bytes(b for b in range(256) if b not in _BRACKETS)


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
    """The items of a ``POST /predict`` body; ``pairs``: the model's task takes text pairs.

    Raises:
        BadRequest: 400 or 413, for every rule of the module docstring.
    """
    shape = '{"texts": [["first", "second"], ...]}' if pairs else '{"texts": ["a sentence", ...]}'
    payload = _load_json(body, shape)
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


def _load_json(body: bytes, shape: str):
    """``json.loads`` within this server's limits of depth and number size."""
    if _depth(body) > MAX_DEPTH:
        raise BadRequest(400, f"The request body nests JSON deeper than {MAX_DEPTH} levels: send {shape}.")
    try:
        return json.loads(body, parse_int=_int)
    except (json.JSONDecodeError, UnicodeDecodeError):
        raise BadRequest(400, f"The request body is not valid JSON: send {shape}.") from None
    except RecursionError:  # not reached while _depth holds the limit: the stack is the parser's own bound
        raise BadRequest(400, f"The request body nests JSON deeper than {MAX_DEPTH} levels: send {shape}.") from None


def _depth(body: bytes) -> int:
    """How deep the JSON of ``body`` nests (an upper bound for a body that is not valid JSON)."""
    if body.count(b"[") + body.count(b"{") <= MAX_DEPTH:  # the common case: too few brackets to matter
        return 0
    skeleton = _JSON_STRING.sub(b"", body).translate(None, _NOT_BRACKETS)  # brackets outside strings, in order
    return max(accumulate(_BRACKETS[b] for b in skeleton), default=0)


def _int(digits: str) -> int:
    if len(digits.lstrip("-")) > MAX_DIGITS:
        raise BadRequest(400, f"The request body holds a number of {len(digits.lstrip('-'))} digits, more than "
                              f"this server reads ({MAX_DIGITS}): send texts as strings.")
    return int(digits)


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
    for part in (text, pair) if pair is not None else (text,):
        if _SURROGATE.search(part):
            raise BadRequest(400, f"texts[{index}] is not valid Unicode (it holds a lone surrogate such as "
                                  "\\ud800): send UTF-8 text.")
        if not _VISIBLE.search(part):
            raise BadRequest(400, f"texts[{index}] is empty (nothing but whitespace or invisible characters): "
                                  "send non-blank text.")
    return Item(text, pair)


def error_body(error: BadRequest) -> dict:
    """The JSON answer to a refused request."""
    return {"error": error.message, "status": error.status}
