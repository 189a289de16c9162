"""Where examples come from: a task's own split (GLUE from ``GLUE_DIR``, IMDB from ``IMDB_DIR``), a table file
(.tsv/.csv/.jsonl), or ``hub:NAME`` (the optional ``datasets`` package). Rows and their faults: ``readers``.

GLUE files are read as published (tab-separated, no quoting, optional UTF-8 BOM) from
``$GLUE_DIR/<TASK>/{train,dev}.tsv``. Every loader returns an ``Examples``; texts are stripped.
"""

from __future__ import annotations

import os
from dataclasses import replace
from pathlib import Path
from typing import Sequence

import numpy as np

from ltp_deploy.data.examples import Examples
from ltp_deploy.data.readers import Column, build, read_rows
from ltp_deploy.data.tasks import TASKS, Task, get_task
from ltp_deploy.errors import LtpDeployError
from ltp_deploy.paths import refuse_symlink_loop


def _read_glue_file(spec: Task, path: Path) -> Examples:
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
    layout = f"<GLUE_DIR>/{spec.folder}/{{train,dev}}.tsv"
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

    ``dev`` is a seeded slice of ``Task.dev_slice`` reviews (seed ``Task.dev_seed``), ``train`` every other review;
    both in that seeded order (the file itself is grouped by label). ``imdb_dir`` defaults to ``IMDB_DIR``.

    Raises:
        LtpDeployError: unknown split, file missing or malformed, too few reviews to hold a dev slice out.
    """
    if split not in ("train", "dev"):
        raise LtpDeployError(f"Unknown split {split!r} for IMDB: use train or dev (a held-out slice of train.tsv).")
    path, imdb = _imdb_file(imdb_dir), TASKS["imdb"]
    every = _read_glue_file(imdb, path)
    if len(every) <= imdb.dev_slice:
        raise LtpDeployError(f"{path} holds {len(every)} reviews, too few to hold {imdb.dev_slice} out as dev: "
                             "point IMDB_DIR at the full train.tsv (25,000 reviews).")
    order = np.random.default_rng(imdb.dev_seed).permutation(len(every))
    return every.select(order[:imdb.dev_slice] if split == "dev" else order[imdb.dev_slice:])


def _imdb_file(imdb_dir: str | os.PathLike | None) -> Path:
    given = imdb_dir if imdb_dir is not None else os.environ.get("IMDB_DIR")
    if not given:
        raise LtpDeployError("IMDB_DIR is not set, so the IMDB reviews cannot be found: set IMDB_DIR to the folder "
                             "holding the IMDB train.tsv (header sentence<TAB>label).")
    path = Path(given) / "train.tsv"
    refuse_symlink_loop(path, "Data file")
    if not path.is_file():
        raise LtpDeployError(f"IMDB data not found at {path}: set IMDB_DIR to the folder holding the IMDB train.tsv "
                             "(header sentence<TAB>label).")
    return path


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


def _looks_like_glue(spec: Task, path: Path) -> bool:
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


def _load_hub(ref: str, spec: Task | None, split: str, text_column: Column | None,
              text_pair_column: Column | None, label_column: Column | None) -> Examples:
    """Load ``NAME[:CONFIG]`` with the optional ``datasets`` package (``dev`` means ``validation``)."""
    name, _, config = ref.partition(":")
    if spec is not None and spec.hub_columns and text_column is None and name in ("glue", "nyu-mll/glue"):
        text_column, text_pair_column = spec.hub_columns
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
