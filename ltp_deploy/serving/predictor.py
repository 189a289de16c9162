"""What a serving replica does with texts: tokenise with the export's own tokenizer, run batches, answer per text.

``Predictor`` knows no HTTP and no Ray: it is the export's ``api.TextClassifier`` (the one place texts become
token ids and logits become answers) plus the serving rules: ``encode`` turns one ``Item`` into token ids (a huge
text cut to ``max_length * CHARS_PER_TOKEN`` characters first) and refuses an over-long text under
``on_overlong="reject"``, and ``predict`` answers a list of encoded items, run as one batch, as JSON-ready dicts.
The Ray Serve deployment (``app``) batches items across requests and calls ``predict``; ``loadtest --verify`` calls ``predict`` one item at a time to check the server's answers.

Example::

    p = Predictor("out/sst2-onnx", backend="onnxruntime", threads=2)
    p.predict([p.encode(Item("a gripping film"))])
    # [{"label": "1", "label_id": 1, "scores": [0.03, 0.97], "kept_tokens": [6, 4, ...], "tokens": 6, ...}]
"""

from __future__ import annotations

from pathlib import Path

from ltp_deploy.api import CHARS_PER_TOKEN, Encoded, Prediction
from ltp_deploy.errors import LtpDeployError
from ltp_deploy.runtimes import GRAPH_BACKENDS
from ltp_deploy.serving.requests import BadRequest, Item

__all__ = ["CHARS_PER_TOKEN", "Encoded", "OVERLONG", "Predictor"]

OVERLONG = ("truncate", "reject")


class Predictor:
    """An export's ``api.TextClassifier`` with the serving contract's input rules: one ``Item`` at a time in,
    JSON-ready answers out, an over-long text refused (413) under ``on_overlong="reject"``.

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
        from ltp_deploy.api import load
        from ltp_deploy.artifact import open_artifact
        from ltp_deploy.data import get_task

        if on_overlong not in OVERLONG:
            raise LtpDeployError(f"--on-overlong must be one of {', '.join(OVERLONG)}, got {on_overlong!r}.")
        if backend not in (None, *GRAPH_BACKENDS):
            raise LtpDeployError(f"serve runs exported graphs: --backend {' or '.join(GRAPH_BACKENDS)}, not "
                                 f"{backend!r}.")
        self.artifact = open_artifact(export)
        cfg = self.artifact.config
        if max_length is not None and not 2 <= max_length <= cfg.max_length:
            raise LtpDeployError(f"--max-length must lie in [2, {cfg.max_length}] (the model's maximum), got "
                                 f"{max_length}.")
        self.on_overlong = on_overlong
        spec = get_task(task) if task else None
        self.pairs = bool(spec and spec.text_pair_column is not None)
        names = (spec.label_names if spec else None) or cfg.id2label
        self.labels = tuple(names) if names else tuple(str(i) for i in range(cfg.num_labels))
        self.classifier = load(self.artifact.folder, backend=backend, threads=threads, max_length=max_length,
                               labels=None if cfg.num_labels == 1 else self.labels)
        self.runtime, self.max_length = self.classifier.runtime, self.classifier.max_length
        self.max_chars = self.classifier.max_chars

    def describe(self) -> dict:
        """What ``GET /health`` reports about the model."""
        a = self.artifact
        return {"export": str(a.folder), "pruning": a.pruning, "runtime": self.runtime.name,
                "weights": self.runtime.weights, "max_length": self.max_length, "pairs": self.pairs,
                "labels": list(self.labels)}

    def encode(self, item: Item) -> Encoded:
        """Token ids of one item (``api.TextClassifier.encode``: cut to ``max_length`` tokens, ``truncated`` says
        so). Raises ``BadRequest`` (413) for an over-long text under ``on_overlong="reject"``."""
        encoded = self.classifier.encode(item.text if item.pair is None else (item.text, item.pair))
        if encoded.truncated and self.on_overlong == "reject":
            cut = len(item.text) > self.max_chars or len(item.pair or "") > self.max_chars
            raise BadRequest(413, _overlong_message(encoded.tokens, self.max_length, self.max_chars, cut))
        return encoded

    def predict(self, items: list[Encoded]) -> list[dict]:
        """Run ``items`` as one batch (right-padded to the longest) and answer each as the server does."""
        return [_answer(p) for p in self.classifier.predict(items)]


def _answer(p: Prediction) -> dict:
    answer = {"kept_tokens": p.kept_tokens, "tokens": p.tokens, "truncated": p.truncated}
    if p.label is None:
        return {"score": p.scores[0], **answer}
    return {"label": p.label, "label_id": p.label_id, "scores": p.scores, **answer}


def _overlong_message(tokens: int, max_length: int, max_chars: int, cut: bool) -> str:
    if tokens > max_length:
        count = f"at least {tokens}" if cut else str(tokens)
        return (f"A text has {count} tokens, more than the model's {max_length}: shorten it (this server refuses "
                "over-long texts).")
    return (f"A text has more than {max_chars} characters, the most this server reads for the model's "
            f"{max_length} tokens: shorten it (this server refuses over-long texts).")
