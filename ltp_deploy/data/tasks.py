"""The tasks ltp-deploy knows: one ``Task`` record each (file layout, labels, metrics, default length, dev slice)."""

from __future__ import annotations

import re
from dataclasses import dataclass

from ltp_deploy.data.readers import Column
from ltp_deploy.errors import LtpDeployError


@dataclass(frozen=True)
class Task:
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
    hub_columns: tuple[str, str | None] | None = None  # text columns on the Hugging Face hub ("glue"), for hub: data
    dev_slice: int | None = None  # source "imdb": dev is this many seeded rows held out of train.tsv
    dev_seed: int | None = None


_BIN = ("0", "1")
_NLI2 = ("entailment", "not_entailment")
_SINGLE, _PAIR = ("sentence", None), ("sentence1", "sentence2")  # hub_columns of the hub's "glue" configs
TASKS: dict[str, Task] = {
    "sst2": Task("sst2", "SST-2", "sentence", None, "label", _BIN, False, ("accuracy",), max_length=64,
                 hub_columns=_SINGLE),
    "mrpc": Task("mrpc", "MRPC", "#1 String", "#2 String", "Quality", _BIN, False, ("accuracy", "f1"),
                 hub_columns=_PAIR),
    "stsb": Task("stsb", "STS-B", "sentence1", "sentence2", "score", None, True, ("pearson", "spearman"),
                 hub_columns=_PAIR),
    "qnli": Task("qnli", "QNLI", "question", "sentence", "label", _NLI2, False, ("accuracy",),
                 hub_columns=("question", "sentence")),
    "rte": Task("rte", "RTE", "sentence1", "sentence2", "label", _NLI2, False, ("accuracy",), hub_columns=_PAIR),
    "cola": Task("cola", "CoLA", 3, None, 1, _BIN, False, ("matthews",), has_header=False, n_columns=4,
                 hub_columns=_SINGLE),
    "qqp": Task("qqp", "QQP", "question1", "question2", "is_duplicate", _BIN, False, ("accuracy", "f1"),
                skip_short_rows=True, hub_columns=("question1", "question2")),
    "mnli": Task("mnli", "MNLI", "sentence1", "sentence2", "gold_label", ("contradiction", "entailment", "neutral"),
                 False, ("accuracy",), dev_file="dev_matched.tsv", hub_columns=("premise", "hypothesis")),
    # IMDB has no dev file: a seeded slice of its train.tsv is held out as dev and never trained on.
    "imdb": Task("imdb", "IMDB", "sentence", None, "label", _BIN, False, ("accuracy",), max_length=512,
                 source="imdb", dev_slice=2000, dev_seed=2011),
}


def get_task(name: str) -> Task:
    """Return the record of a task (GLUE or IMDB); ``"SST-2"``, ``"sst_2"`` and ``"sst2"`` are the same task.

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
