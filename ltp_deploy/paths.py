"""Input paths that cannot be read for a reason worth one sentence of its own (today: symlink loops).

``Path.exists()`` answers False for a symbolic link that leads back to itself, so without this check a loop reads
as "does not exist", and ``Path.resolve()`` raises ``RuntimeError`` on it: neither names the problem.

Example::

    refuse_symlink_loop("runs/sst2-ltp", "Checkpoint")   # raises LtpDeployError when the link loops
"""

from __future__ import annotations

import errno
import json
import os
from pathlib import Path
from typing import Iterable

from ltp_deploy.errors import LtpDeployError


def is_symlink_loop(path: str | os.PathLike) -> bool:
    """Whether following ``path`` (or a link on the way to it) runs into a symlink loop (``ELOOP``)."""
    try:
        os.stat(path)
    except OSError as e:
        return e.errno == errno.ELOOP
    except ValueError:  # an embedded NUL byte: not a loop; the caller's own checks name it
        return False
    return False


def refuse_symlink_loop(path: str | os.PathLike | None, what: str) -> None:
    """Raise one sentence when ``path`` is a symlink loop; ``what`` names the input ("Checkpoint", "Data file").

    Raises:
        LtpDeployError: following ``path`` loops (``ELOOP``); None and readable paths pass.
    """
    if path is None or str(path).startswith("hub:") or not is_symlink_loop(path):
        return
    raise LtpDeployError(f"{what} {path} is a symbolic link that leads back to itself (a symlink loop, see "
                         f"`ls -l {Path(path)}`): point the link at the real {what.lower()} or pass the real path.")


def refuse_symlink_loops(inputs: Iterable[tuple[str | os.PathLike | None, str]]) -> None:
    """``refuse_symlink_loop`` for each ``(path, what)``; meant to run before any output rule resolves them."""
    for path, what in inputs:
        refuse_symlink_loop(path, what)


def read_json(path: Path) -> dict:
    """A JSON file that must hold an object (a checkpoint's config.json, metadata, index); one-sentence errors."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise LtpDeployError(f"{path} is not valid JSON ({e.__class__.__name__}): restore the file.") from None
    if not isinstance(data, dict):
        raise LtpDeployError(f"{path} does not hold a JSON object: restore the file.")
    return data
