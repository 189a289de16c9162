"""The one data loader: GLUE task folders, generic CSV/TSV/JSONL tables, metrics and tokenisation.

GLUE files are read as published (tab-separated, no quoting, optional UTF-8 BOM) from
``$GLUE_DIR/<TASK>/{train,dev}.tsv``. Every loader returns an :class:`Examples`; texts are stripped.
"""

from __future__ import annotations

import csv
import json
import math
import os
import re
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Iterator, Sequence

import numpy as np

from ltp_deploy.errors import LtpDeployError

Column = str | int


@dataclass(frozen=True)
class TaskSpec:
    """Layout and metrics of one GLUE task; ``metrics[0]`` is the primary metric."""

    name: str
    folder: str
    text_column: Column
    text_pair_column: Column | None
    label_column: Column
    label_names: tuple[str, ...] | None
    is_regression: bool
    metrics: tuple[str, ...]
    dev_file: str = "dev.tsv"
    has_header: bool = True
    n_columns: int | None = None  # only checked for headerless files
    skip_short_rows: bool = False  # QQP's train.tsv has a few truncated rows; they are dropped


_BIN = ("0", "1")
_NLI2 = ("entailment", "not_entailment")
TASKS: dict[str, TaskSpec] = {
    "sst2": TaskSpec("sst2", "SST-2", "sentence", None, "label", _BIN, False, ("accuracy",)),
    "mrpc": TaskSpec("mrpc", "MRPC", "#1 String", "#2 String", "Quality", _BIN, False, ("accuracy", "f1")),
    "stsb": TaskSpec("stsb", "STS-B", "sentence1", "sentence2", "score", None, True, ("pearson", "spearman")),
    "qnli": TaskSpec("qnli", "QNLI", "question", "sentence", "label", _NLI2, False, ("accuracy",)),
    "rte": TaskSpec("rte", "RTE", "sentence1", "sentence2", "label", _NLI2, False, ("accuracy",)),
    "cola": TaskSpec("cola", "CoLA", 3, None, 1, _BIN, False, ("matthews",), has_header=False, n_columns=4),
    "qqp": TaskSpec("qqp", "QQP", "question1", "question2", "is_duplicate", _BIN, False, ("accuracy", "f1"),
                    skip_short_rows=True),
    "mnli": TaskSpec("mnli", "MNLI", "sentence1", "sentence2", "gold_label",
                     ("contradiction", "entailment", "neutral"), False, ("accuracy",), dev_file="dev_matched.tsv"),
}
# Column names of the GLUE tasks on the Hugging Face hub ("glue" / "nyu-mll/glue"), for ``hub:`` data.
_HUB_COLUMNS = {"sst2": ("sentence", None), "cola": ("sentence", None), "mrpc": ("sentence1", "sentence2"),
                "stsb": ("sentence1", "sentence2"), "rte": ("sentence1", "sentence2"),
                "qnli": ("question", "sentence"), "qqp": ("question1", "question2"), "mnli": ("premise", "hypothesis")}


def get_task(name: str) -> TaskSpec:
    """Return the spec of a GLUE task; ``"SST-2"``, ``"sst_2"`` and ``"sst2"`` are the same task.

    Raises:
        LtpDeployError: the name is not a known task.
    """
    key = re.sub(r"[-_\s]", "", str(name)).lower()
    if key not in TASKS:
        raise LtpDeployError(f"Unknown GLUE task {name!r}: use one of {', '.join(TASKS)}.")
    return TASKS[key]


@dataclass
class Examples:
    """Texts (and optional second texts) with labels: int64 class ids, float32 scores, or None when unlabelled."""

    texts: list[str]
    text_pairs: list[str] | None
    labels: np.ndarray | None
    label_names: list[str] | None = None
    task: str | None = None
    is_regression: bool = False
    source: str = ""

    def __post_init__(self) -> None:
        n = len(self.texts)
        if self.text_pairs is not None and len(self.text_pairs) != n:
            raise ValueError(f"{len(self.text_pairs)} text pairs for {n} texts")
        if self.labels is not None and len(self.labels) != n:
            raise ValueError(f"{len(self.labels)} labels for {n} texts")

    def __len__(self) -> int:
        return len(self.texts)

    @property
    def has_labels(self) -> bool:
        return self.labels is not None

    def select(self, indices: Sequence[int]) -> Examples:
        """Return the rows at ``indices``, in that order."""
        idx = [int(i) for i in indices]
        return replace(self, texts=[self.texts[i] for i in idx],
                       text_pairs=None if self.text_pairs is None else [self.text_pairs[i] for i in idx],
                       labels=None if self.labels is None else self.labels[np.asarray(idx, dtype=np.int64)])

    def take(self, n: int) -> Examples:
        """Return the first ``n`` rows (all of them if there are fewer)."""
        return self.select(range(min(n, len(self))))

    def subset(self, n: int, seed: int = 0) -> Examples:
        """Return ``n`` rows drawn at random without replacement (reproducible by ``seed``), kept in file order."""
        if n >= len(self):
            return self.select(range(len(self)))
        return self.select(np.sort(np.random.default_rng(seed).choice(len(self), size=n, replace=False)))


# ----------------------------------------------------------------------------------------------- reading

def _read_rows(path: Path) -> list[tuple[int, list[Any]]]:
    """(line number, fields) of every non-blank record; .tsv is GLUE-style (no quoting), .csv standard CSV."""
    suffix = path.suffix.lower()
    if suffix not in (".csv", ".tsv", ".jsonl"):
        raise LtpDeployError(f"Cannot read {path}: unknown file type {suffix or '(none)'!r}; "
                             "use a .csv, .tsv or .jsonl file.")
    if not path.is_file():
        raise LtpDeployError(f"Data file {path} not found: check the path.")
    rows: list[tuple[int, list[Any]]] = []
    with open(path, encoding="utf-8-sig", newline="") as f:
        if suffix == ".jsonl":
            keys: list[str] | None = None
            for n, line in enumerate(f, 1):
                if not line.strip():
                    continue
                try:
                    obj = json.loads(line)
                except json.JSONDecodeError as e:
                    raise LtpDeployError(f"{path} line {n} is not valid JSON ({e.msg}): fix or remove it.") from None
                if not isinstance(obj, dict):
                    raise LtpDeployError(f"{path} line {n} is not a JSON object: write one object per line.")
                if keys is None:
                    keys = list(obj)
                    rows.append((0, keys))
                rows.append((n, [obj.get(k) for k in keys]))
        else:
            kw = {"delimiter": "\t", "quoting": csv.QUOTE_NONE} if suffix == ".tsv" else {}
            reader = csv.reader(f, **kw)
            for fields in reader:
                if fields and any(x.strip() for x in fields):
                    rows.append((reader.line_num, fields))
    if not rows:
        raise LtpDeployError(f"Data file {path} is empty: point to a file with examples.")
    return rows


def _column_index(col: Column, header: list[str] | None, n_fields: int, path: Path) -> int:
    if isinstance(col, int) and not isinstance(col, bool):
        if -n_fields <= col < n_fields:
            return col % n_fields
    elif header is not None and col in header:
        return header.index(col)
    have = ", ".join(repr(h) for h in header) if header is not None else f"indices 0..{n_fields - 1}"
    raise LtpDeployError(f"{path} has no column {col!r}: use one of its columns ({have}).")


def _label_id(value: Any, names: Sequence[str] | None, regression: bool, where: str) -> float | int:
    if value is None or (isinstance(value, str) and not value.strip()):
        raise LtpDeployError(f"Missing label at {where}: fill in the label or drop the row.")
    text = value.strip() if isinstance(value, str) else value
    try:
        if regression:
            return float(text)
        if names is not None and str(text) in names:
            return list(names).index(str(text))
        as_int = int(text) if not isinstance(text, float) or text.is_integer() else None
        if as_int is not None and (names is None or 0 <= as_int < len(names)):
            return as_int
    except (TypeError, ValueError):
        pass
    expected = "a number" if regression else ("one of " + ", ".join(names) if names else "an integer class id")
    raise LtpDeployError(f"Bad label {value!r} at {where}: expected {expected}.")


def _build(rows: list[tuple[int, list[Any]]], header: list[str] | None, path: Path, text_column: Column,
           text_pair_column: Column | None, label_column: Column | None, label_names: Sequence[str] | None,
           regression: bool, task: str | None, n_columns: int | None = None, skip_short: bool = False) -> Examples:
    """Turn parsed rows into Examples; string labels without ``label_names`` become sorted unique names."""
    if not rows:
        raise LtpDeployError(f"Data file {path} has no data rows: point to a file with examples.")
    width = len(header) if header is not None else (n_columns or len(rows[0][1]))
    ti = _column_index(text_column, header, width, path)
    pi = None if text_pair_column is None else _column_index(text_pair_column, header, width, path)
    li = None if label_column is None else _column_index(label_column, header, width, path)
    texts, pairs, raw = [], [], []
    for line, fields in rows:
        if len(fields) != width:
            if skip_short and len(fields) < width:
                continue
            raise LtpDeployError(f"Malformed row in {path} line {line}: expected {width} fields, found "
                                 f"{len(fields)}; fix or remove the row (TSV files are tab-separated, unquoted).")
        for i in (ti, pi):
            if i is not None and fields[i] is None:
                raise LtpDeployError(f"Missing text in {path} line {line}: fill it in or drop the row.")
        texts.append(str(fields[ti]).strip())
        if pi is not None:
            pairs.append(str(fields[pi]).strip())
        if li is not None:
            raw.append((fields[li], f"{path} line {line}"))
    labels = None
    names = None if label_names is None else list(label_names)
    if li is not None:
        if not regression and names is None and any(isinstance(v, str) and not re.fullmatch(r"\s*-?\d+\s*", v)
                                                     for v, _ in raw):
            names = sorted({str(v).strip() for v, _ in raw if v is not None and str(v).strip()})
        ids = [_label_id(v, names, regression, where) for v, where in raw]
        labels = np.asarray(ids, dtype=np.float32 if regression else np.int64)
    return Examples(texts, pairs if pi is not None else None, labels, names, task, regression, str(path))


def _read_glue_file(spec: TaskSpec, path: Path) -> Examples:
    rows = _read_rows(path)
    header = [h.strip() for h in rows.pop(0)[1]] if spec.has_header else None
    return _build(rows, header, path, spec.text_column, spec.text_pair_column, spec.label_column,
                  spec.label_names, spec.is_regression, spec.name, spec.n_columns, spec.skip_short_rows)


def load_glue(task: str, split: str = "dev", glue_dir: str | os.PathLike | None = None) -> Examples:
    """Load a GLUE split from ``<glue_dir>/<TASK>/<split>.tsv``.

    Args:
        task: task name (``sst2``, ``SST-2``, ``sts-b``...).
        split: ``train`` or ``dev`` (MNLI also ``dev_mismatched``; its ``dev`` is ``dev_matched``).
        glue_dir: GLUE folder; defaults to the ``GLUE_DIR`` environment variable.
    Raises:
        LtpDeployError: unknown task or split, GLUE_DIR unset, file missing or malformed.
    """
    spec = get_task(task)
    files = {"train": "train.tsv", "dev": spec.dev_file}
    if spec.name == "mnli":
        files.update(dev_matched="dev_matched.tsv", dev_mismatched="dev_mismatched.tsv")
    if split not in files:
        raise LtpDeployError(f"Unknown split {split!r} for {spec.folder}: use one of {', '.join(files)}.")
    layout = f"<GLUE_DIR>/{spec.folder}/{{train,dev}}.tsv (for this project, ../shared/data/glue)"
    glue_dir = glue_dir if glue_dir is not None else os.environ.get("GLUE_DIR")
    if not glue_dir:
        raise LtpDeployError(f"GLUE_DIR is not set, so GLUE data for {spec.folder} cannot be found: "
                             f"set GLUE_DIR to a folder laid out as {layout}.")
    path = Path(glue_dir) / spec.folder / files[split]
    if not path.is_file():
        raise LtpDeployError(f"GLUE data for {spec.folder} not found at {path}: "
                             f"set GLUE_DIR to a folder laid out as {layout}.")
    return _read_glue_file(spec, path)


def load_table(path: str | os.PathLike, text_column: Column, text_pair_column: Column | None = None,
               label_column: Column | None = None, label_names: Sequence[str] | None = None,
               regression: bool = False, has_header: bool = True) -> Examples:
    """Load a .csv, .tsv (unquoted, GLUE-style) or .jsonl table.

    Columns are header names or 0-based indices (JSONL: keys, or indices into the first object's keys).
    Labels are ints, or strings mapped to ``label_names`` (default: sorted unique values); with
    ``label_column=None`` the examples are unlabelled (``labels is None``).
    Raises:
        LtpDeployError: missing/empty file, unknown suffix, missing column, malformed row or bad label.
    """
    path = Path(path)
    rows = _read_rows(path)
    header = None
    if has_header or path.suffix.lower() == ".jsonl":
        header = [str(h).strip() for h in rows.pop(0)[1]]
    return _build(rows, header, path, text_column, text_pair_column, label_column, label_names, regression, None)


def _looks_like_glue(spec: TaskSpec, path: Path) -> bool:
    if path.suffix.lower() != ".tsv" or not path.is_file():
        return False
    with open(path, encoding="utf-8-sig") as f:
        first = f.readline().rstrip("\r\n").split("\t")
    if spec.has_header:
        cols = (spec.text_column, spec.text_pair_column, spec.label_column)
        return all(c in [h.strip() for h in first] for c in cols if c is not None)
    return len(first) == spec.n_columns and first[spec.label_column].strip() in (spec.label_names or ())


def load_examples(data: str | os.PathLike | None, task: str | None, split: str = "dev", *,
                  text_column: Column | None = None, text_pair_column: Column | None = None,
                  label_column: Column | None = None, label_names: Sequence[str] | None = None,
                  regression: bool | None = None, has_header: bool = True) -> Examples:
    """The CLI entry point: a file path, ``hub:NAME[:CONFIG]``, or (``data=None``) the task's GLUE split.

    With a task and a GLUE-layout .tsv, the task's columns are used; otherwise the given columns, falling
    back to the task's column names. Integer labels of a task's file are class ids in the task's label order.
    Raises:
        LtpDeployError: nothing to load, or any error of the loader used.
    """
    spec = get_task(task) if task else None
    if data is None:
        if spec is None:
            raise LtpDeployError("No data given: pass a data file or a GLUE task name (read from GLUE_DIR).")
        return load_glue(spec.name, split)
    if str(data).startswith("hub:"):
        return _load_hub(str(data)[4:], spec, split, text_column, text_pair_column, label_column)
    path = Path(data)
    if spec is not None and text_column is None and _looks_like_glue(spec, path):
        return _read_glue_file(spec, path)
    if text_column is None and spec is None:
        raise LtpDeployError(f"No text column given for {path}: name it (for example text_column='sentence').")
    if spec is not None:
        if text_column is None:
            text_column, text_pair_column, label_column = spec.text_column, spec.text_pair_column, spec.label_column
        label_names = label_names if label_names is not None else spec.label_names
        regression = spec.is_regression if regression is None else regression
    ex = load_table(path, text_column, text_pair_column, label_column, label_names, bool(regression), has_header)
    return replace(ex, task=spec.name if spec else None)


def _load_hub(ref: str, spec: TaskSpec | None, split: str, text_column: Column | None,
              text_pair_column: Column | None, label_column: Column | None) -> Examples:
    """Load ``NAME[:CONFIG]`` with the optional ``datasets`` package (``dev`` means ``validation``)."""
    name, _, config = ref.partition(":")
    if spec is not None and text_column is None and name in ("glue", "nyu-mll/glue"):
        text_column, text_pair_column = _HUB_COLUMNS[spec.name]
        config = config or spec.name
    text_column = text_column or "text"
    label_column = label_column or "label"
    hub_split = {"dev": "validation_matched" if spec and spec.name == "mnli" else "validation",
                 "dev_matched": "validation_matched", "dev_mismatched": "validation_mismatched"}.get(split, split)
    try:
        import datasets  # optional, imported only here

        ds = datasets.load_dataset(name, config or None, split=hub_split)
        cols = ds.column_names
        raw_labels = ds[label_column] if label_column in cols else None
        hub_names = getattr(ds.features.get(label_column), "names", None)
        texts, pairs = ds[text_column], ds[text_pair_column] if text_pair_column else None
    except Exception as e:
        raise LtpDeployError(f"Could not load hub:{ref} ({type(e).__name__}: {e}): loading hub data needs "
                             "network access and the `datasets` package (pip install datasets).") from None
    regression = spec.is_regression if spec else False
    names = list(spec.label_names) if spec and spec.label_names else hub_names
    labels = None
    if raw_labels is not None:
        if spec and spec.label_names and hub_names and set(hub_names) <= set(spec.label_names):
            raw_labels = [names.index(hub_names[v]) if v >= 0 else v for v in raw_labels]
        labels = np.asarray(raw_labels, dtype=np.float32 if regression else np.int64)
    return Examples([str(t).strip() for t in texts], None if pairs is None else [str(t).strip() for t in pairs],
                    labels, names, spec.name if spec else None, regression, f"hub:{ref}/{hub_split}")


# ----------------------------------------------------------------------------------------------- metrics

def _pair(labels: Any, preds: Any) -> tuple[np.ndarray, np.ndarray]:
    y, p = np.asarray(labels).ravel(), np.asarray(preds).ravel()
    if y.shape != p.shape or y.size == 0:
        raise ValueError(f"need equally many labels and predictions, got {y.size} and {p.size}")
    return y, p


def accuracy(labels: Any, predictions: Any) -> float:
    """Fraction of exact matches."""
    y, p = _pair(labels, predictions)
    return float(np.mean(y == p))


def f1(labels: Any, predictions: Any) -> float:
    """Binary F1 of the positive class 1 (0.0 when there are no true or predicted positives)."""
    y, p = _pair(labels, predictions)
    tp, fp, fn = np.sum((p == 1) & (y == 1)), np.sum((p == 1) & (y != 1)), np.sum((p != 1) & (y == 1))
    return float(2 * tp / (2 * tp + fp + fn)) if tp else 0.0


def matthews(labels: Any, predictions: Any) -> float:
    """Matthews correlation coefficient (multi-class form; 0.0 when undefined)."""
    y, p = _pair(labels, predictions)
    classes, inv = np.unique(np.concatenate([y, p]), return_inverse=True)
    cm = np.zeros((len(classes), len(classes)), dtype=np.float64)
    np.add.at(cm, (inv[: y.size], inv[y.size:]), 1)
    t, q, c, s = cm.sum(axis=1), cm.sum(axis=0), np.trace(cm), cm.sum()
    denom = math.sqrt((s * s - q @ q) * (s * s - t @ t))
    return float((c * s - t @ q) / denom) if denom else 0.0


def _correlation(kind: str, labels: Any, predictions: Any) -> float:
    from scipy import stats  # imported only when a correlation is asked for

    y, p = _pair(labels, predictions)
    fn = stats.pearsonr if kind == "pearson" else stats.spearmanr
    return float(fn(y.astype(np.float64), p.astype(np.float64))[0])


def pearson(labels: Any, predictions: Any) -> float:
    """Pearson correlation (scipy; nan when an input is constant)."""
    return _correlation("pearson", labels, predictions)


def spearman(labels: Any, predictions: Any) -> float:
    """Spearman rank correlation (scipy; nan when an input is constant)."""
    return _correlation("spearman", labels, predictions)


METRICS = {"accuracy": accuracy, "f1": f1, "matthews": matthews, "pearson": pearson, "spearman": spearman}
# The values each metric can take: a bound outside them is a mistake (e.g. 90 for 90% accuracy).
METRIC_RANGES = {"accuracy": (0.0, 1.0), "f1": (0.0, 1.0), "matthews": (-1.0, 1.0), "pearson": (-1.0, 1.0),
                 "spearman": (-1.0, 1.0)}


def _metric_names(task_or_examples: str | Examples | None) -> tuple[str, ...]:
    task = task_or_examples.task if isinstance(task_or_examples, Examples) else task_or_examples
    if task:
        return get_task(task).metrics
    regression = isinstance(task_or_examples, Examples) and task_or_examples.is_regression
    return ("pearson", "spearman") if regression else ("accuracy",)


def primary_metric(task_or_examples: str | Examples | None) -> str:
    """Name of the headline metric: accuracy (MRPC/QQP too), pearson for STS-B, matthews for CoLA."""
    return _metric_names(task_or_examples)[0]


def compute_metrics(task_or_examples: str | Examples, predictions: Any, labels: Any = None) -> dict[str, float]:
    """Compute the task's metrics; labels come from the Examples, or ``labels`` with a task name.

    Predictions are class ids (classification) or floats (regression); see :func:`predictions_from_logits`.
    Raises:
        LtpDeployError: no labels, or predictions not one per example.
    """
    if labels is None and isinstance(task_or_examples, Examples):
        labels = task_or_examples.labels
    if labels is None:
        raise LtpDeployError("Cannot compute metrics without labels: use labelled data (give a label column).")
    preds = np.asarray(predictions)
    if preds.ndim != 1 or preds.shape[0] != len(labels):
        raise LtpDeployError(f"Got predictions of shape {preds.shape} for {len(labels)} examples: pass one "
                             "prediction per example (predictions_from_logits turns logits into them).")
    return {name: METRICS[name](labels, preds) for name in _metric_names(task_or_examples)}


def predictions_from_logits(logits: Any, is_regression: bool) -> np.ndarray:
    """Class ids (argmax, int64) or, for regression, the float32 scores of ``(n,)``/``(n, 1)`` logits."""
    x = np.asarray(logits)
    if is_regression:
        return x.reshape(x.shape[0], -1)[:, 0].astype(np.float32)
    return np.argmax(x, axis=-1).astype(np.int64)


# ----------------------------------------------------------------------------------------------- tokenising

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
        if not examples.texts[i].strip() or (all_pairs is not None and not all_pairs[i].strip()):
            raise LtpDeployError(f"Row {i} of {examples.source or 'the data'} has an empty text: "
                                 "drop or fill in empty rows before encoding.")
    if not idx:
        raise LtpDeployError("Nothing to encode: pass at least one example.")
    texts = [examples.texts[i] for i in idx]
    pairs = None if examples.text_pairs is None else [examples.text_pairs[i] for i in idx]
    enc = tokenizer(texts, pairs, max_length=max_length, truncation=True, padding=padding, return_tensors="np")
    out = {k: np.asarray(enc[k], dtype=np.int64) for k in ("input_ids", "attention_mask")}
    tt = enc.get("token_type_ids")
    out["token_type_ids"] = np.zeros_like(out["input_ids"]) if tt is None else np.asarray(tt, dtype=np.int64)
    return out
