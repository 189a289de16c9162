"""Reading data files: rows from .tsv (GLUE-style, unquoted), .csv and .jsonl, and rows into ``Examples``.

Every fault of a file is one ``LtpDeployError`` naming the file (and the line, where there is one) and the fix:
text that is not UTF-8 (with the ``iconv`` command that converts it), a field longer than ``MAX_FIELD_CHARS``, a
symlink loop, a malformed row, a missing, empty or invisible text, a JSONL text that is not a string, a bad or
non-finite label. ``ltp_deploy.data`` builds its loaders on these.
"""

from __future__ import annotations

import codecs
import csv
import io
import json
import math
import re
import unicodedata
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator, Sequence

import numpy as np

from ltp_deploy.errors import LtpDeployError
from ltp_deploy.paths import refuse_symlink_loop

Column = str | int
Rows = list[tuple[int, list[Any]]]

# Longest CSV/TSV field read, in characters. csv's default (131,072) refuses a long review or a book chapter;
# 16 Mi characters is far past any text a classifier reads (IMDB's longest review: 13,593) and still bounds the
# memory one broken row (an unclosed quote swallowing the rest of a file) can take.
MAX_FIELD_CHARS = 1 << 24
# Characters that draw nothing but are neither whitespace nor format characters (Unicode category Cf, which holds
# U+200B..U+200F, U+2060, U+FEFF, U+00AD...): the Hangul fillers and the blank Braille pattern.
_INVISIBLE = frozenset("\u115f\u1160\u3164\uffa0\u2800")
_FLOAT32_MAX = float(np.finfo(np.float32).max)


def is_blank(text: str) -> bool:
    """Whether ``text`` shows nothing: only whitespace and invisible characters (zero-width spaces and joiners,
    byte-order marks, soft hyphens, direction marks, fillers). Such a text is refused like an empty one."""
    return all(ch.isspace() or ch in _INVISIBLE or unicodedata.category(ch) == "Cf" for ch in text)


def read_rows(path: Path) -> Rows:
    """(line number, fields) of every non-blank record; .tsv is GLUE-style (no quoting), .csv standard CSV, .jsonl
    one object per line (its first record is ``(0, keys)``, the header).

    Raises:
        LtpDeployError: unknown suffix, missing or looping path, text that is not UTF-8, a field over
            ``MAX_FIELD_CHARS``, a row that does not parse, an empty file.
    """
    suffix = path.suffix.lower()
    if path.is_dir():
        raise LtpDeployError(f"Data file {path} is a folder: name a .csv, .tsv or .jsonl file inside it.")
    if suffix not in (".csv", ".tsv", ".jsonl"):
        raise LtpDeployError(f"Cannot read {path}: unknown file type {suffix or '(none)'!r}; "
                             "use a .csv, .tsv or .jsonl file.")
    refuse_symlink_loop(path, "Data file")
    if not path.is_file():
        if path.exists():  # a FIFO, a socket or a device: reading it could block or never end
            raise LtpDeployError(f"Data file {path} is not a regular file (a pipe or a device): save the data to a "
                                 "file and pass that.")
        raise LtpDeployError(f"Data file {path} not found: check the path.")
    text = read_text(path)
    rows = _jsonl_rows(text, path) if suffix == ".jsonl" else _table_rows(text, path, suffix)
    if not rows:
        raise LtpDeployError(f"Data file {path} is empty: point to a file with examples.")
    return rows


def read_text(path: Path) -> str:
    """The file as text: UTF-8, an optional byte-order mark dropped; anything else is one sentence with the fix."""
    raw = path.read_bytes()
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as e:
        raise _not_utf8(path, raw, e.start) from None
    if "\x00" in text:  # UTF-16 without a byte-order mark decodes as UTF-8 with a NUL beside every ASCII letter
        raise _not_utf8(path, raw, raw.index(b"\x00"))
    return text


def _not_utf8(path: Path, raw: bytes, at: int) -> LtpDeployError:
    """The sentence for a file that is not UTF-8: where it fails, what it looks like, the iconv that converts it."""
    if raw.startswith((codecs.BOM_UTF32_LE, codecs.BOM_UTF32_BE)):
        encoding, looks = "utf-32", "UTF-32 with a byte-order mark"
    elif raw.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        encoding, looks = "utf-16", "UTF-16 with a byte-order mark"
    elif raw[:4096].count(0) > len(raw[:4096]) // 4:
        encoding = "utf-16le" if raw[1:4096:2].count(0) > raw[0:4096:2].count(0) else "utf-16be"
        looks = f"{encoding.upper()} without a byte-order mark, every other byte 0"
    else:
        cp1252 = any(0x80 <= b <= 0x9F for b in raw)  # Windows quotes and dashes: not Latin-1's control codes
        encoding = "cp1252" if cp1252 else "latin1"
        looks = "Windows-1252 (cp1252)" if cp1252 else "Latin-1 (ISO-8859-1)"
    line = raw.count(b"\n", 0, at) + 1
    converted = path.with_name(f"{path.stem}-utf8{path.suffix}")
    return LtpDeployError(f"{path} is not UTF-8 text (byte 0x{raw[at]:02x} on line {line}; it looks like {looks}), "
                          f"and ltp-deploy reads UTF-8 only: convert the file, e.g. "
                          f"`iconv -f {encoding} -t utf-8 {path} > {converted}`, and pass the converted file.")


@contextmanager
def _field_limit(limit: int) -> Iterator[None]:
    """csv's field size limit raised to ``limit`` while reading (it is process-wide: restored afterwards)."""
    old = csv.field_size_limit(limit)
    try:
        yield
    finally:
        csv.field_size_limit(old)


def _table_rows(text: str, path: Path, suffix: str) -> Rows:
    kw = {"delimiter": "\t", "quoting": csv.QUOTE_NONE} if suffix == ".tsv" else {}
    reader = csv.reader(io.StringIO(text, newline=""), **kw)
    rows: Rows = []
    with _field_limit(MAX_FIELD_CHARS):
        try:
            for fields in reader:
                if fields and any(x.strip() for x in fields):
                    rows.append((reader.line_num, fields))
        except csv.Error as e:
            line = reader.line_num
            if "field larger than field limit" in str(e):
                raise LtpDeployError(
                    f"{path} line {line} holds a field of over {MAX_FIELD_CHARS:,} characters, which is no text to "
                    "classify but a broken row (in a CSV file usually a quote that is never closed): fix the "
                    "quoting or remove the row.") from None
            kind = "TSV (tab-separated, unquoted)" if suffix == ".tsv" else "CSV"
            raise LtpDeployError(f"{path} line {line} cannot be read as {kind} ({e}): fix or remove the row.") from None
    return rows


def _jsonl_rows(text: str, path: Path) -> Rows:
    rows: Rows = []
    keys: list[str] | None = None
    for n, line in enumerate(io.StringIO(text, newline=""), 1):
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
    return rows


def column_index(col: Column, header: list[str] | None, n_fields: int, path: Path) -> int:
    """The 0-based index of ``col`` (a header name, or an index that may be negative)."""
    if isinstance(col, int) and not isinstance(col, bool):
        if -n_fields <= col < n_fields:
            return col % n_fields
    elif header is not None and col in header:
        return header.index(col)
    have = ", ".join(repr(h) for h in header) if header is not None else f"indices 0..{n_fields - 1}"
    raise LtpDeployError(f"{path} has no column {col!r}: use one of its columns ({have}).")


def label_id(value: Any, names: Sequence[str] | None, regression: bool, where: str) -> float | int:
    """A label as a class id (``names``' index, or an integer id) or, for regression, a finite score."""
    if value is None or (isinstance(value, str) and not value.strip()):
        raise LtpDeployError(f"Missing label at {where}: fill in the label or drop the row.")
    text = value.strip() if isinstance(value, str) else value
    try:
        if regression:
            score = float(text)
            if not (math.isfinite(score) and abs(score) <= _FLOAT32_MAX):  # scores are stored as float32
                span = " within float32's range" if math.isfinite(score) else ""
                raise LtpDeployError(f"Label {value!r} at {where} is not a finite number{span} (one such score turns "
                                     "every weight into NaN): write the real score or drop the row.")
            return score
        if names is not None and str(text) in names:
            return list(names).index(str(text))
        as_int = int(text) if not isinstance(text, float) or text.is_integer() else None
        if as_int is not None and (names is None or 0 <= as_int < len(names)):
            return as_int
    except (TypeError, ValueError):
        pass
    expected = "a number" if regression else ("one of " + ", ".join(names) if names else "an integer class id")
    raise LtpDeployError(f"Bad label {value!r} at {where}: expected {expected}.")


def _text(value: Any, path: Path, line: int, name: Column) -> str:
    """A row's text, stripped; missing, non-string (JSONL) and empty or invisible texts are refused."""
    if value is None:
        raise LtpDeployError(f"Missing text in {path} line {line}: fill it in or drop the row.")
    if not isinstance(value, str):
        kind = {bool: "a boolean", int: "a number", float: "a number", list: "a list", dict: "an object"}.get(
            type(value), f"a {type(value).__name__}")
        raise LtpDeployError(f"{path} line {line} has {kind} ({json.dumps(value)[:40]}) where column {name!r} needs a "
                             "text: write the text as a JSON string (in double quotes) or drop the row.")
    if is_blank(value):
        shown = sorted({f"U+{ord(c):04X}" for c in value if not c.isspace()})
        what = f" (only invisible characters: {', '.join(shown[:4])})" if shown else ""
        raise LtpDeployError(f"{path} line {line} has an empty text in column {name!r}{what}: fill it in or drop "
                             "the row.")
    return value.strip()


def build(rows: Rows, header: list[str] | None, path: Path, text_column: Column, text_pair_column: Column | None,
          label_column: Column | None, label_names: Sequence[str] | None, regression: bool, task: str | None,
          n_columns: int | None = None, skip_short: bool = False):
    """Turn parsed rows into ``Examples``; string labels without ``label_names`` become sorted unique names."""
    from ltp_deploy.data.examples import Examples

    if not rows:
        raise LtpDeployError(f"Data file {path} has no data rows: point to a file with examples.")
    width = len(header) if header is not None else (n_columns or len(rows[0][1]))
    ti = column_index(text_column, header, width, path)
    pi = None if text_pair_column is None else column_index(text_pair_column, header, width, path)
    li = None if label_column is None else column_index(label_column, header, width, path)
    texts, pairs, raw = [], [], []
    for line, fields in rows:
        if len(fields) != width:
            if skip_short and len(fields) < width:
                continue
            raise LtpDeployError(f"Malformed row in {path} line {line}: expected {width} fields, found "
                                 f"{len(fields)}; fix or remove the row (TSV files are tab-separated, unquoted).")
        texts.append(_text(fields[ti], path, line, header[ti] if header else ti))
        if pi is not None:
            pairs.append(_text(fields[pi], path, line, header[pi] if header else pi))
        if li is not None:
            raw.append((fields[li], f"{path} line {line}"))
    labels = None
    names = None if label_names is None else list(label_names)
    if li is not None:
        if not regression and names is None and any(isinstance(v, str) and not re.fullmatch(r"\s*-?\d+\s*", v)
                                                     for v, _ in raw):
            names = sorted({str(v).strip() for v, _ in raw if v is not None and str(v).strip()})
        ids = [label_id(v, names, regression, where) for v, where in raw]
        labels = np.asarray(ids, dtype=np.float32 if regression else np.int64)
    return Examples(texts, pairs if pi is not None else None, labels, names, task, regression, str(path))
