"""Options shared by several commands, defined once."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

Data = Annotated[Optional[str], typer.Option(
    "--data", help="Data file (.tsv/.csv/.jsonl) or hub:NAME; default: the task's GLUE dev split from GLUE_DIR.")]
Task = Annotated[Optional[str], typer.Option(
    "--task", help="Task (GLUE: sst2, mrpc, stsb, qnli, rte, cola, qqp, mnli from GLUE_DIR; imdb from IMDB_DIR): "
    "columns, labels, metric and default length.")]
TextColumn = Annotated[Optional[str], typer.Option("--text-column", help="Column holding the text (name or index).")]
TextPairColumn = Annotated[Optional[str], typer.Option(
    "--text-pair-column", help="Column holding the second text of a pair.")]
LabelColumn = Annotated[Optional[str], typer.Option("--label-column", help="Column holding the label.")]
Output = Annotated[Path, typer.Option(
    "--output", "-o", help="Output folder: written only on success; an existing one is replaced only when "
                           "ltp-deploy wrote it (or with --overwrite); never an input or the current directory.")]
Overwrite = Annotated[bool, typer.Option(
    "--overwrite", help="Replace existing outputs even when ltp-deploy did not write them.")]


def column(value: str | None):
    """A column given on the command line: an integer index or a name."""
    if value is None:
        return None
    return int(value) if value.lstrip("-").isdigit() else value
