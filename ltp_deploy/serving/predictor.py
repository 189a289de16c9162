"""What a serving replica does with texts: tokenise with the export's own tokenizer, run batches, answer per text.

``Predictor`` knows no HTTP and no Ray: ``encode`` turns one ``Item`` into token ids (cutting a huge text to
``max_length * CHARS_PER_TOKEN`` characters first, then refusing an over-long text under ``on_overlong="reject"``,
truncating it otherwise), and ``predict`` runs a list of encoded items as one
right-padded batch through the runtime (the padding-free pruned graph ignores the padding) and answers each with
its label, scores and kept tokens per layer. The Ray Serve deployment (``app``) batches items across requests and
calls ``predict``; ``loadtest --verify`` calls ``predict`` one item at a time to check the server's answers.

Example::

    p = Predictor("out/sst2-onnx", backend="onnxruntime", threads=2)
    p.predict([p.encode(Item("a gripping film"))])
    # [{"label": "1", "label_id": 1, "scores": [0.03, 0.97], "kept_tokens": [6, 4, ...], "tokens": 6, ...}]
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ltp_deploy.errors import LtpDeployError
from ltp_deploy.serving.requests import BadRequest, Item

OVERLONG = ("truncate", "reject")
# A text is cut to max_length * CHARS_PER_TOKEN characters before it is tokenised. English averages 4-6 characters
# per WordPiece or BPE token; 64 leaves room for long words and runs of spaces, so only a text made mostly of
# whitespace, invisible characters or words of dozens of letters is cut where a full tokenisation would not cut it.
CHARS_PER_TOKEN = 64


@dataclass(frozen=True)
class Encoded:
    """One item's token ids (unpadded) and whether it was cut to the model's maximum length."""

    input_ids: tuple[int, ...]
    token_type_ids: tuple[int, ...]
    truncated: bool


class Predictor:
    """An export's runtime and tokenizer, with the serving contract's input rules.

    Args:
        export: an export folder (``ltp-deploy export``).
        backend: "onnxruntime" or "openvino" (default: the export's own).
        threads: intra-op threads of the runtime (default: the runtime's).
        max_length: tokens per text, special tokens included (default and ceiling: the model's maximum).
        on_overlong: "truncate" (default) or "reject" (a 413 answer) for a longer text.
        task: a task name (``data.get_task``): whether texts come in pairs, and the label names; default: single
            texts, labels from the export's config.
    Raises:
        LtpDeployError: not an export, an unknown backend or task, a bad option.
    """

    def __init__(self, export: str | Path, backend: str | None = None, threads: int | None = None,
                 max_length: int | None = None, on_overlong: str = "truncate", task: str | None = None):
        from ltp_deploy.artifact import open_artifact
        from ltp_deploy.checkpoint import load_tokenizer
        from ltp_deploy.data import get_task
        from ltp_deploy.runtimes import open_runtime

        if on_overlong not in OVERLONG:
            raise LtpDeployError(f"--on-overlong must be one of {', '.join(OVERLONG)}, got {on_overlong!r}.")
        if backend not in (None, "onnxruntime", "openvino"):
            raise LtpDeployError(f"serve runs exported graphs: --backend onnxruntime or openvino, not {backend!r}.")
        self.artifact = open_artifact(export)
        cfg = self.artifact.config
        if max_length is not None and not 2 <= max_length <= cfg.max_length:
            raise LtpDeployError(f"--max-length must lie in [2, {cfg.max_length}] (the model's maximum), got "
                                 f"{max_length}.")
        self.max_length = max_length or cfg.max_length
        self.max_chars = self.max_length * CHARS_PER_TOKEN
        self.on_overlong = on_overlong
        spec = get_task(task) if task else None
        self.pairs = bool(spec and spec.text_pair_column is not None)
        self.regression = bool(spec and spec.is_regression) or cfg.num_labels == 1
        names = (spec.label_names if spec else None) or cfg.id2label
        self.labels = tuple(names) if names else tuple(str(i) for i in range(cfg.num_labels))
        self.tokenizer = load_tokenizer(self.artifact.folder, vocab_size=cfg.vocab_size)
        self.runtime = open_runtime(self.artifact.folder, backend=backend, threads=threads)
        self.pad_id = cfg.pad_token_id

    def describe(self) -> dict:
        """What ``GET /health`` reports about the model."""
        a = self.artifact
        return {"export": str(a.folder), "pruning": a.pruning, "runtime": self.runtime.name,
                "weights": self.runtime.weights, "max_length": self.max_length, "pairs": self.pairs,
                "labels": list(self.labels)}

    def encode(self, item: Item) -> Encoded:
        """Token ids of one item, cut to ``max_length`` tokens (``truncated`` says so).

        A text longer than ``max_chars`` characters is cut to that many before it is tokenised, so a 20 MB text
        costs no more than a long review; that is exact for any text of fewer than ``CHARS_PER_TOKEN`` characters
        per token (the cut prefix alone has more than ``max_length`` tokens), and a cut text is always answered
        ``truncated``. Raises ``BadRequest`` (413) for an over-long text under ``on_overlong="reject"``.
        """
        text, cut = self._cut(item.text)
        pair, pair_cut = self._cut(item.pair) if item.pair is not None else (None, False)
        full = self.tokenizer(text, pair, truncation=False)
        tokens = len(full["input_ids"])
        truncated = tokens > self.max_length or cut or pair_cut
        if truncated and self.on_overlong == "reject":
            raise BadRequest(413, _overlong_message(tokens, self.max_length, self.max_chars, cut or pair_cut))
        enc = self.tokenizer(text, pair, truncation=True, max_length=self.max_length) if truncated else full
        types = enc.get("token_type_ids") or [0] * len(enc["input_ids"])
        return Encoded(tuple(enc["input_ids"]), tuple(types), truncated)

    def _cut(self, text: str) -> tuple[str, bool]:
        """``text`` cut to ``max_chars`` characters, and whether it was."""
        return (text[:self.max_chars], True) if len(text) > self.max_chars else (text, False)

    def predict(self, items: list[Encoded]) -> list[dict]:
        """Run ``items`` as one batch (right-padded to the longest) and answer each."""
        width = max(len(e.input_ids) for e in items)
        ids = np.full((len(items), width), self.pad_id, dtype=np.int64)
        types = np.zeros((len(items), width), dtype=np.int64)
        mask = np.zeros((len(items), width), dtype=np.int64)
        for row, e in enumerate(items):
            n = len(e.input_ids)
            ids[row, :n], types[row, :n], mask[row, :n] = e.input_ids, e.token_type_ids, 1
        logits, kept = self.runtime.run({"input_ids": ids, "attention_mask": mask, "token_type_ids": types})
        return [self._answer(logits[row], kept[row], items[row]) for row in range(len(items))]

    def _answer(self, logits: np.ndarray, kept: np.ndarray, item: Encoded) -> dict:
        answer = {"kept_tokens": [int(k) for k in kept], "tokens": len(item.input_ids), "truncated": item.truncated}
        if self.regression:
            return {"score": float(logits[0]), **answer}
        shifted = np.exp(logits - logits.max())
        label_id = int(np.argmax(logits))
        return {"label": self.labels[label_id], "label_id": label_id,
                "scores": [float(p) for p in shifted / shifted.sum()], **answer}


def _overlong_message(tokens: int, max_length: int, max_chars: int, cut: bool) -> str:
    if tokens > max_length:
        count = f"at least {tokens}" if cut else str(tokens)
        return (f"A text has {count} tokens, more than the model's {max_length}: shorten it (this server refuses "
                "over-long texts).")
    return (f"A text has more than {max_chars} characters, the most this server reads for the model's "
            f"{max_length} tokens: shorten it (this server refuses over-long texts).")
