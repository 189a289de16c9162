"""The one data loader: GLUE task folders, IMDB, generic CSV/TSV/JSONL tables and tokenisation (metrics: ``metrics``).

GLUE files are read as published (tab-separated, no quoting, optional UTF-8 BOM) from
``$GLUE_DIR/<TASK>/{train,dev}.tsv``. Every loader returns an :class:`Examples`; texts are stripped.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Iterator, Sequence

import numpy as np

from ltp_deploy.errors import LtpDeployError
from ltp_deploy.paths import refuse_symlink_loop
from ltp_deploy.readers import Column, build, is_blank, read_rows  # noqa: F401 (Column: public here too)


@dataclass(frozen=True)
class TaskSpec:
    """Layout and metrics of one task (GLUE or IMDB); ``metrics[0]`` is the primary metric."""

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
    # Tokens per example unless --max-length says otherwise: past every SST-2 sentence (dev max 55); most GLUE
    # pairs; IMDB reviews are truncated at BERT's 512 positions.
    max_length: int = 128
    source: str = "glue"  # "glue": $GLUE_DIR/<folder>; "imdb": $IMDB_DIR/train.tsv with a held-out dev slice


_BIN = ("0", "1")
_NLI2 = ("entailment", "not_entailment")
TASKS: dict[str, TaskSpec] = {
    "sst2": TaskSpec("sst2", "SST-2", "sentence", None, "label", _BIN, False, ("accuracy",), max_length=64),
    "mrpc": TaskSpec("mrpc", "MRPC", "#1 String", "#2 String", "Quality", _BIN, False, ("accuracy", "f1")),
    "stsb": TaskSpec("stsb", "STS-B", "sentence1", "sentence2", "score", None, True, ("pearson", "spearman")),
    "qnli": TaskSpec("qnli", "QNLI", "question", "sentence", "label", _NLI2, False, ("accuracy",)),
    "rte": TaskSpec("rte", "RTE", "sentence1", "sentence2", "label", _NLI2, False, ("accuracy",)),
    "cola": TaskSpec("cola", "CoLA", 3, None, 1, _BIN, False, ("matthews",), has_header=False, n_columns=4),
    "qqp": TaskSpec("qqp", "QQP", "question1", "question2", "is_duplicate", _BIN, False, ("accuracy", "f1"),
                    skip_short_rows=True),
    "mnli": TaskSpec("mnli", "MNLI", "sentence1", "sentence2", "gold_label",
                     ("contradiction", "entailment", "neutral"), False, ("accuracy",), dev_file="dev_matched.tsv"),
    "imdb": TaskSpec("imdb", "IMDB", "sentence", None, "label", _BIN, False, ("accuracy",), max_length=512,
                     source="imdb"),
}
# IMDB has no dev file: a seeded slice of its train.tsv is held out as dev and never trained on.
IMDB_DEV_SIZE = 2000
IMDB_SEED = 2011
# Column names of the GLUE tasks on the Hugging Face hub ("glue" / "nyu-mll/glue"), for ``hub:`` data.
_HUB_COLUMNS = {"sst2": ("sentence", None), "cola": ("sentence", None), "mrpc": ("sentence1", "sentence2"),
                "stsb": ("sentence1", "sentence2"), "rte": ("sentence1", "sentence2"),
                "qnli": ("question", "sentence"), "qqp": ("question1", "question2"), "mnli": ("premise", "hypothesis")}


def get_task(name: str) -> TaskSpec:
    """Return the spec of a task (GLUE or IMDB); ``"SST-2"``, ``"sst_2"`` and ``"sst2"`` are the same task.

    Raises:
        LtpDeployError: the name is not a known task.
    """
    key = re.sub(r"[-_\s]", "", str(name)).lower()
    if key not in TASKS:
        raise LtpDeployError(f"Unknown task {name!r}: use one of {', '.join(TASKS)}.")
    return TASKS[key]


def default_max_length(task: str | None) -> int:
    """Tokens per example when no --max-length is given: the task's own (SST-2 64, IMDB 512), else 128 (LTP's)."""
    return get_task(task).max_length if task else 128


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

    def hold_out(self, n: int, seed) -> tuple[Examples, Examples]:
        """(the rest, ``n`` rows drawn at random without replacement), both kept in file order; ``seed`` is any
        ``numpy.random.default_rng`` seed (an int or a sequence of ints)."""
        picked = np.random.default_rng(seed).permutation(len(self))
        return self.select(np.sort(picked[n:])), self.select(np.sort(picked[:n]))

    def subset(self, n: int, seed: int = 0) -> Examples:
        """Return ``n`` rows drawn at random without replacement (reproducible by ``seed``), kept in file order."""
        if n >= len(self):
            return self.select(range(len(self)))
        return self.select(np.sort(np.random.default_rng(seed).choice(len(self), size=n, replace=False)))


# ----------------------------------------------------------------------------------------------- reading
# Rows and their faults (encoding, field size, missing or invisible texts, labels) live in ``readers``.

def _read_glue_file(spec: TaskSpec, path: Path) -> Examples:
    rows = read_rows(path)
    header = [h.strip() for h in rows.pop(0)[1]] if spec.has_header else None
    return build(rows, header, path, spec.text_column, spec.text_pair_column, spec.label_column,
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
    if spec.source != "glue":
        raise LtpDeployError(f"{spec.folder} is not a GLUE task: load it with load_split({spec.name!r}) "
                             f"(or --task {spec.name}), which reads IMDB_DIR.")
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
    refuse_symlink_loop(path, "Data file")
    if not path.is_file():
        raise LtpDeployError(f"GLUE data for {spec.folder} not found at {path}: "
                             f"set GLUE_DIR to a folder laid out as {layout}.")
    return _read_glue_file(spec, path)


def load_split(task: str, split: str = "dev") -> Examples:
    """A task's own split: GLUE's from ``GLUE_DIR`` (:func:`load_glue`), IMDB's from ``IMDB_DIR`` (:func:`load_imdb`)."""
    spec = get_task(task)
    return load_imdb(split) if spec.source == "imdb" else load_glue(spec.name, split)


def load_imdb(split: str = "dev", imdb_dir: str | os.PathLike | None = None) -> Examples:
    """IMDB reviews from ``<imdb_dir>/train.tsv`` (header ``sentence<TAB>label``, 1 positive).

    ``dev`` is a seeded slice of ``IMDB_DEV_SIZE`` reviews (seed ``IMDB_SEED``), ``train`` every other review;
    both in that seeded order (the file itself is grouped by label). ``imdb_dir`` defaults to ``IMDB_DIR``, else
    ``../shared/data/imdb`` beside the working directory or beside this repository.
    Raises:
        LtpDeployError: unknown split, file missing or malformed, too few reviews to hold a dev slice out.
    """
    if split not in ("train", "dev"):
        raise LtpDeployError(f"Unknown split {split!r} for IMDB: use train or dev (a held-out slice of train.tsv).")
    path = _imdb_file(imdb_dir)
    every = _read_glue_file(TASKS["imdb"], path)
    if len(every) <= IMDB_DEV_SIZE:
        raise LtpDeployError(f"{path} holds {len(every)} reviews, too few to hold {IMDB_DEV_SIZE} out as dev: "
                             "point IMDB_DIR at the full train.tsv (25,000 reviews).")
    order = np.random.default_rng(IMDB_SEED).permutation(len(every))
    return every.select(order[:IMDB_DEV_SIZE] if split == "dev" else order[IMDB_DEV_SIZE:])


def _imdb_file(imdb_dir: str | os.PathLike | None) -> Path:
    given = imdb_dir if imdb_dir is not None else os.environ.get("IMDB_DIR")
    if given:
        candidates = [Path(given)]
    else:
        candidates = [Path("../shared/data/imdb"), Path(__file__).resolve().parents[2] / "shared" / "data" / "imdb"]
    for folder in candidates:
        if (folder / "train.tsv").is_file():
            return folder / "train.tsv"
    raise LtpDeployError(f"IMDB data not found at {candidates[0] / 'train.tsv'}: set IMDB_DIR to the folder "
                         "holding train.tsv (for this project, ../shared/data/imdb).")


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
    rows = read_rows(path)
    header = None
    if has_header or path.suffix.lower() == ".jsonl":
        header = [str(h).strip() for h in rows.pop(0)[1]]
    return build(rows, header, path, text_column, text_pair_column, label_column, label_names, regression, None)


def _looks_like_glue(spec: TaskSpec, path: Path) -> bool:
    if path.suffix.lower() != ".tsv" or not path.is_file():
        return False
    with open(path, "rb") as f:
        try:  # a file that is not UTF-8 is named by the loader it then goes to (``readers.read_text``)
            first = f.readline().decode("utf-8-sig").rstrip("\r\n").split("\t")
        except UnicodeDecodeError:
            return False
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
            raise LtpDeployError("No data given: pass a data file or a task name (GLUE from GLUE_DIR, or imdb).")
        return load_split(spec.name, split)
    if str(data).startswith("hub:"):
        return _load_hub(str(data)[4:], spec, split, text_column, text_pair_column, label_column)
    path = Path(data)
    if spec is not None and text_column is None and _looks_like_glue(spec, path):
        return _read_glue_file(spec, path)
    if text_column is None and spec is None:
        raise LtpDeployError(f"No text column given for {path}: name it with --text-column (e.g. --text-column "
                             "sentence), or give --task for a file in that task's layout.")
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
        bad = np.flatnonzero(~np.isfinite(labels))
        if bad.size:
            raise LtpDeployError(f"hub:{ref} ({hub_split}) row {int(bad[0])} has the label {labels[bad[0]]}, not a "
                                 f"finite number ({bad.size} such rows): filter those rows out of the data set.")
    return Examples([str(t).strip() for t in texts], None if pairs is None else [str(t).strip() for t in pairs],
                    labels, names, spec.name if spec else None, regression, f"hub:{ref}/{hub_split}")


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
