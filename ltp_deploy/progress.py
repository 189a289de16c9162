"""Progress bars for long work: shown on a terminal, silent in CI or when output is piped.

Example::

    with progress_bar(total=len(batches), description="bench") as advance:
        for batch in batches:
            run(batch)
            advance()
"""

from __future__ import annotations

import os
import sys
from contextlib import contextmanager


def interactive() -> bool:
    """True when stderr is a terminal and this is not a CI run (CI=true) or LTP_DEPLOY_QUIET is set."""
    if os.environ.get("CI", "").lower() in {"1", "true", "yes"} or os.environ.get("LTP_DEPLOY_QUIET"):
        return False
    return sys.stderr.isatty()


@contextmanager
def progress_bar(total: int | None, description: str):
    """Yield ``advance(n=1, description=None)``; draws a rich progress bar only when ``interactive()``."""
    if not interactive():
        yield lambda n=1, description=None: None
        return
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    columns = [TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn()]
    with Progress(*columns, console=Console(stderr=True), transient=True) as bar:
        task = bar.add_task(description, total=total)

        def advance(n: int = 1, description: str | None = None) -> None:
            bar.update(task, advance=n, **({"description": description} if description else {}))

        yield advance
