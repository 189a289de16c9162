"""The Python API: texts in, labels out, from an export folder (or a checkpoint), with the export's own tokenizer.

Four entry points:

* ``load(path)`` returns a ``TextClassifier``: call it with strings (or ``(text, pair)`` tuples for pair tasks) and
  get one ``Prediction`` per input; tokenising, truncation, batching, padding and the softmax happen inside.
* ``PrunedModelForSequenceClassification.from_pretrained(path)``: a model object that ``transformers.pipeline``
  accepts, as Optimum's ``ORTModelForSequenceClassification`` is, with ``config.id2label`` from the export.
* ``export(checkpoint, out, target=..., precision=..., task=...)`` makes the export folder (``exporters``).

Example::

    import ltp_deploy
    clf = ltp_deploy.load("out/sst2-onnx", threads=2)
    clf(["a gripping, funny film", "tedious"])
    # [Prediction(label='1', label_id=1, scores=[0.03, 0.97], kept_tokens=[8, 5, 5, 5, 3, 1], tokens=8, ...), ...]

    from transformers import pipeline
    model = ltp_deploy.PrunedModelForSequenceClassification.from_pretrained("out/sst2-onnx")
    pipeline("text-classification", model=model, tokenizer=model.tokenizer)("a gripping film")
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ltp_deploy.errors import LtpDeployError

# A text is cut to max_length * CHARS_PER_TOKEN characters before it is tokenised. English averages 4-6 characters
# per WordPiece or BPE token; 64 leaves room for long words and runs of spaces, so only a text made mostly of
# whitespace, invisible characters or words of dozens of letters is cut where a full tokenisation would not cut it.
CHARS_PER_TOKEN = 64


@dataclass(frozen=True)
class Prediction:
    """One input's answer.

    ``label`` / ``label_id`` / ``scores`` (softmax probabilities) for a classifier; for a regression model
    (STS-B) ``label`` and ``label_id`` are None and ``scores`` holds the one predicted value. ``kept_tokens``: tokens
    alive after each layer (the real length at every layer for a dense graph); ``tokens``: the input's length with
    special tokens, after truncation; ``truncated``: whether the input was cut to the model's maximum length.
    """

    label: str | None
    label_id: int | None
    scores: list[float]
    kept_tokens: list[int]
    tokens: int
    truncated: bool


@dataclass(frozen=True)
class Encoded:
    """One input's token ids (unpadded), and whether it was cut to the maximum length."""

    input_ids: tuple[int, ...]
    token_type_ids: tuple[int, ...]
    truncated: bool
    tokens: int  # before truncation (at least that many when the text was cut by characters first)


class TextClassifier:
    """A loaded model with its tokenizer: ``clf(texts)`` -> one ``Prediction`` per text. Use ``load`` to make one.

    Thread-safe: any number of threads may call one classifier (the runtimes are, ``runtimes.base.Runtime``; the
    tokenizer runs under a lock).

    Attributes:
        runtime: the ``runtimes.Runtime`` that runs the graph; tokenizer: the model's own; config: its
        ``encoder_config.EncoderConfig``; labels: the label names, by id (None: regression); max_length: tokens per
        input, special tokens included.
    """

    def __init__(self, runtime, tokenizer, config, max_length: int, labels: tuple[str, ...] | None):
        self.runtime, self.tokenizer, self.config, self.max_length = runtime, tokenizer, config, max_length
        self.labels, self.pad_id = labels, config.pad_token_id
        self.max_chars = max_length * CHARS_PER_TOKEN
        self._lock = threading.Lock()

    def __call__(self, texts: str | tuple[str, str] | Sequence[str | tuple[str, str]], *,
                 batch_size: int = 32) -> list[Prediction]:
        """Classify ``texts`` (one text, one pair, or a list of either), ``batch_size`` at a time, in order.

        Raises:
            LtpDeployError: an empty list, an input that is not a string or a pair of strings, an empty text,
                a batch size below 1.
        """
        items = [texts] if isinstance(texts, (str, tuple)) else list(texts)
        if not items:
            raise LtpDeployError("No texts given: pass a string, a (text, pair) tuple, or a list of them.")
        if batch_size < 1:
            raise LtpDeployError(f"batch_size must be at least 1, got {batch_size}.")
        encoded = [self.encode(item) for item in items]
        out: list[Prediction] = []
        for start in range(0, len(encoded), batch_size):
            out += self.predict(encoded[start:start + batch_size])
        return out

    def encode(self, item: str | tuple[str, str]) -> Encoded:
        """Token ids of one input, cut to ``max_length`` tokens. A text longer than ``max_chars`` characters is cut
        to that many first, so a huge text costs no more than a long review (and is answered ``truncated``)."""
        text, pair = _text_and_pair(item)
        text, cut = self._cut(text)
        pair, pair_cut = self._cut(pair) if pair is not None else (None, False)
        with self._lock:
            full = self.tokenizer(text, pair, truncation=False)
            tokens = len(full["input_ids"])
            truncated = tokens > self.max_length or cut or pair_cut
            enc = self.tokenizer(text, pair, truncation=True, max_length=self.max_length) if truncated else full
        types = enc.get("token_type_ids") or [0] * len(enc["input_ids"])
        return Encoded(tuple(enc["input_ids"]), tuple(types), truncated, tokens)

    def _cut(self, text: str) -> tuple[str, bool]:
        return (text[:self.max_chars], True) if len(text) > self.max_chars else (text, False)

    def predict(self, items: Sequence[Encoded]) -> list[Prediction]:
        """Run ``items`` as one batch, right-padded to the longest (a pruned graph drops the padding)."""
        width = max(len(e.input_ids) for e in items)
        ids = np.full((len(items), width), self.pad_id, dtype=np.int64)
        types = np.zeros((len(items), width), dtype=np.int64)
        mask = np.zeros((len(items), width), dtype=np.int64)
        for row, e in enumerate(items):
            n = len(e.input_ids)
            ids[row, :n], types[row, :n], mask[row, :n] = e.input_ids, e.token_type_ids, 1
        logits, kept = self.runtime.run({"input_ids": ids, "attention_mask": mask, "token_type_ids": types})
        return [self._answer(logits[row], kept[row], items[row]) for row in range(len(items))]

    def _answer(self, logits: np.ndarray, kept: np.ndarray, item: Encoded) -> Prediction:
        common = {"kept_tokens": [int(k) for k in kept], "tokens": len(item.input_ids), "truncated": item.truncated}
        if self.labels is None:
            return Prediction(None, None, [float(logits[0])], **common)
        shifted = np.exp(logits - logits.max())
        label_id = int(np.argmax(logits))
        return Prediction(self.labels[label_id], label_id, [float(p) for p in shifted / shifted.sum()], **common)


def load(path: str | Path, *, backend: str | None = None, device: str = "cpu", threads: int | None = None,
         max_length: int | None = None, labels: Sequence[str] | None = None) -> TextClassifier:
    """A ``TextClassifier`` for an export folder (``ltp-deploy export``), a dense ONNX folder (Optimum's) or a
    checkpoint folder (run in torch with its own pruning spec).

    Args:
        path: the folder (or its graph file).
        backend: "onnxruntime", "openvino" or "torch" (default: the folder's own, as ``runtimes.open_runtime``).
        device: "cpu" or "cuda".
        threads: intra-op threads (default: the runtime's).
        max_length: tokens per input, special tokens included (default and ceiling: the model's maximum).
        labels: label names by id (default: the model's ``id2label``, else "0", "1", ...).
    Returns:
        The classifier; a model with one output is a regressor (``Prediction.scores`` holds its value).
    Raises:
        LtpDeployError: a missing or unreadable model, an unknown option, a ``max_length`` out of range, labels
            that do not match the model's outputs.
    Example::

        clf = ltp_deploy.load("out/sst2-onnx")
        clf("a gripping film")[0].label
    """
    from ltp_deploy.checkpoint import read_encoder_config
    from ltp_deploy.tokenizer import load_tokenizer
    from ltp_deploy.runtimes import open_runtime, resolve_model

    kind, graph, art = resolve_model(Path(path), backend)
    folder = art.folder if art is not None else Path(graph)
    cfg = art.config if art is not None else read_encoder_config(folder)[1]
    if max_length is not None and not 2 <= max_length <= cfg.max_length:
        raise LtpDeployError(f"max_length must lie in [2, {cfg.max_length}] (the model's maximum), got {max_length}.")
    names = tuple(labels) if labels is not None else (cfg.id2label or tuple(str(i) for i in range(cfg.num_labels)))
    if cfg.num_labels == 1:
        names = None
    elif len(names) != cfg.num_labels:
        raise LtpDeployError(f"{len(names)} label names given for a model with {cfg.num_labels} outputs: give one "
                             "name per output, in id order.")
    runtime = open_runtime(path, device=device, backend=backend, threads=threads)
    tokenizer = load_tokenizer(folder, vocab_size=cfg.vocab_size)
    return TextClassifier(runtime, tokenizer, cfg, max_length or cfg.max_length, names)



def export(checkpoint: str | Path, out: str | Path, *, target: str = "onnx", precision: str = "fp32",
           task: str | None = None, **options) -> Path:
    """Export a checkpoint for one target, validated against torch; the one entry for every target.

    Args:
        checkpoint: a checkpoint folder (``ltp-deploy train`` output, Hugging Face or original LTP layout).
        out: the export folder to write (written only when the graph passes its validation).
        target: "onnx" or "openvino" (``exporters.TARGETS``).
        precision: stored weights, "fp32", "fp16" (openvino) or "int8" (needs ``task`` or ``data`` and
            ``calibration_data``; gated on the task metric).
        task: the task whose dev sentences validate the graph (and whose train split calibrates INT8).
        **options: any other ``exporters.ExportSettings`` field (``dense``, ``spec``, ``data``, ``max_examples``,
            ``atol``, ``opset``, ``overwrite``, ``max_metric_drop``, ``int8_scope``, ...), as ``ltp-deploy export``'s
            options of the same names.
    Returns:
        The export folder, ready for ``load``.
    Raises:
        LtpDeployError: an invalid option, an unreadable checkpoint, or a graph that fails validation.
    Example::

        folder = ltp_deploy.export("runs/sst2-hold", "out/sst2-int8", precision="int8", task="sst2")
        ltp_deploy.load(folder)("a gripping film")
    """
    from ltp_deploy.exporters import ExportSettings, run_export

    settings = ExportSettings(checkpoint=checkpoint, output=out, target=target, precision=precision, task=task,
                              **options)
    return run_export(settings).folder


def _text_and_pair(item) -> tuple[str, str | None]:
    if isinstance(item, str):
        text, pair = item, None
    elif isinstance(item, tuple) and len(item) == 2 and all(isinstance(t, str) for t in item):
        text, pair = item
    else:
        raise LtpDeployError(f"An input is {type(item).__name__}, not a string or a (text, pair) tuple of strings: "
                             "pass texts as str.")
    if not text.strip() or (pair is not None and not pair.strip()):
        raise LtpDeployError("An input text is empty: give at least one visible character.")
    return text, pair
