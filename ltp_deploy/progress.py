"""Progress bars for long work (shown on a terminal, silent in CI or when output is piped), and notices: one
line for the user about something the library did on its own, such as removing what an interrupted run left.

Library code never prints: it calls ``notice(line)``, which logs at INFO on the ``ltp_deploy`` logger. The CLI
shows those lines on stderr (``notices_to_stderr``); a program using the library sees them through its own
logging configuration.

Example::

    with progress_bar(total=len(batches), description="bench") as advance:
        for batch in batches:
            run(batch)
            advance()
    notice("removed 1 leftover of interrupted ltp-deploy runs (8.9 MB): out/.model.partial-4242-k2j3h4g5")
"""

from __future__ import annotations

import logging
import os
import sys
from contextlib import contextmanager

LOGGER = "ltp_deploy"


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


def notice(line: str) -> None:
    """Tell the user ``line`` (one line) through the ``ltp_deploy`` logger at INFO."""
    logging.getLogger(LOGGER).info(line)


class _Stderr(logging.Handler):
    """Writes each record's message as one line to the current ``sys.stderr`` (looked up at each line)."""

    def emit(self, record: logging.LogRecord) -> None:
        try:
            print(record.getMessage(), file=sys.stderr, flush=True)
        except Exception:  # noqa: BLE001 - logging's own rule: a failing handler reports, never raises
            self.handleError(record)


@contextmanager
def notices_to_stderr():
    """Within the block, ``notice`` lines go to stderr (and not on to the root logger); restored afterwards."""
    logger = logging.getLogger(LOGGER)
    handler, level, propagate = _Stderr(), logger.level, logger.propagate
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    logger.propagate = False
    try:
        yield
    finally:
        logger.removeHandler(handler)
        logger.setLevel(level)
        logger.propagate = propagate
