"""Where a command may write, and how: an output never destroys a user's files and never appears half-written.

The rules (``check_output``), applied by every command that writes and by the library functions behind them:

* an output may not be, contain, or lie inside one of the command's inputs (a checkpoint, a graph, a data
  file), nor be the current directory or one of its ancestors;
* an existing output is replaced only when ltp-deploy wrote it, as the same kind of output (an export folder
  holds ``ltp_deploy_export.json``, a checkpoint ``ltp_deploy.json``, a report is JSON whose ``kind`` starts
  with ``ltp-deploy-``, a plot carries ``Software: ltp-deploy``, a JUnit file is the ``ltp-deploy check`` suite),
  or when ``overwrite`` is given; a folder is never replaced by a file;
* the nearest existing folder above the output must be a folder this process can write to.

Writing goes through a temporary sibling and a rename: on any error nothing appears at the output, and folders
created on the way to it are removed again.

Example::

    check_output("out/model", "export", inputs=[ckpt_dir])      # up front, before any work
    with atomic_dir("out/model", "export", inputs=[ckpt_dir]) as tmp:   # tmp is out/.model.partial-XXXX
        export_into(tmp)                                         # raise here and nothing appears at out/model
    write_json("out/bench.json", report)                         # temp file + rename
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from contextlib import contextmanager
from pathlib import Path
from typing import Iterable

from ltp_deploy.errors import LtpDeployError

# The file that marks a folder written by ltp-deploy, per kind of folder output.
FOLDER_MARKERS = {"export": "ltp_deploy_export.json", "checkpoint": "ltp_deploy.json"}
FILE_KINDS = ("report", "plot", "junit", "markdown")
PNG_SOFTWARE = "ltp-deploy"  # the PNG text chunk that marks our plots
JUNIT_SUITE = "ltp-deploy check"
MARKDOWN_MARK = "<!-- written by ltp-deploy -->"  # the first line of our Markdown tables
_SUFFIX = {"report": "json", "plot": "png", "junit": "xml", "markdown": "md"}
_WHAT = {"export": "export folder", "checkpoint": "checkpoint folder", "report": "JSON report", "plot": "PNG plot",
         "junit": "JUnit report",
         "markdown": "Markdown table"}


def check_output(path: str | Path, kind: str, *, inputs: Iterable[str | Path | None] = (), overwrite: bool = False,
                 option: str = "--output") -> Path:
    """Refuse an output that would destroy something, with one sentence naming the fix; return the path.

    Args:
        path: the output folder (kinds "export", "checkpoint") or file (kinds "report", "plot", "junit").
        inputs: the paths the command reads (None entries are skipped); the output may not overlap any of them.
        overwrite: replace an existing output that ltp-deploy did not write (never a folder by a file).
        option: the command-line option that named ``path``, for the message.

    Raises:
        LtpDeployError: one of the rules in the module docstring is broken.
    """
    if kind not in FOLDER_MARKERS and kind not in FILE_KINDS:
        raise ValueError(f"unknown output kind {kind!r}")
    path = Path(path)
    target = path.resolve()
    for inp in inputs:
        if inp is None:
            continue
        source = Path(inp).resolve()
        if target == source or target in source.parents or source in target.parents:
            relation = "is" if target == source else ("contains" if target in source.parents else "lies inside")
            raise LtpDeployError(f"{option} {path} {relation} the input {inp}: write the output somewhere else, "
                                 "so that the input stays as it is.")
    cwd = Path.cwd().resolve()
    if target == cwd or target in cwd.parents:
        raise LtpDeployError(f"{option} {path} is the current directory or one of its ancestors, which would be "
                             "replaced: name a new folder, e.g. out/model.")
    if path.exists() or path.is_symlink():
        _check_existing(path, kind, overwrite, option)
    _check_parent(path, option)
    return path


def check_outputs(outputs: Iterable[tuple[str | Path | None, str, str]], *,
                  inputs: Iterable[str | Path | None] = (), overwrite: bool = False) -> None:
    """``check_output`` for each ``(path, kind, option)`` (None paths skipped); no two may overlap either."""
    given = [(Path(p), kind, option) for p, kind, option in outputs if p is not None]
    inputs = tuple(inputs)
    for i, (path, kind, option) in enumerate(given):
        others = [p for p, _, _ in given[:i]]
        check_output(path, kind, inputs=inputs + tuple(others), overwrite=overwrite, option=option)


def _check_existing(path: Path, kind: str, overwrite: bool, option: str) -> None:
    folder_kind = kind in FOLDER_MARKERS
    if path.is_dir() and not path.is_symlink() and not folder_kind:
        raise LtpDeployError(f"{option} {path} is a folder: name a file inside it, e.g. "
                             f"{path / ('ltp-deploy.' + _SUFFIX[kind])}.")
    if overwrite or written_by_ltp_deploy(path, kind):
        return
    what = "a folder" if path.is_dir() else "a file"
    raise LtpDeployError(f"{option} {path} already exists and is {what} that is not an ltp-deploy "
                         f"{_WHAT[kind]}: choose a new path, or add --overwrite to replace it.")


def _check_parent(path: Path, option: str) -> None:
    """The nearest existing folder above ``path`` must be a folder we can create files in."""
    parent = path.absolute().parent
    while not parent.exists() and not parent.is_symlink():
        parent = parent.parent
    if not parent.is_dir():
        raise LtpDeployError(f"{option} {path} lies under {parent}, which is a file, not a folder: choose a path "
                             "inside a folder.")
    try:
        fd, probe = tempfile.mkstemp(prefix=".ltp-deploy-write-test-", dir=parent)
    except OSError as e:
        raise LtpDeployError(f"{option} {path} cannot be written: {parent} is not a writable folder "
                             f"({e.strerror or type(e).__name__}); choose a folder you can write to.") from None
    os.close(fd)
    os.unlink(probe)


def written_by_ltp_deploy(path: str | Path, kind: str) -> bool:
    """Whether ``path`` is an output of this ``kind`` that ltp-deploy wrote (so it may be replaced)."""
    path = Path(path)
    if kind in FOLDER_MARKERS:
        return path.is_dir() and (path / FOLDER_MARKERS[kind]).is_file()
    if not path.is_file():
        return False
    try:
        if kind == "report":
            data = json.loads(path.read_text(encoding="utf-8"))
            return isinstance(data, dict) and str(data.get("kind", "")).startswith("ltp-deploy-")
        if kind == "markdown":
            with open(path, encoding="utf-8") as f:
                return f.readline().strip() == MARKDOWN_MARK
        if kind == "plot":
            from PIL import Image

            with Image.open(path) as image:
                return image.format == "PNG" and image.info.get("Software") == PNG_SOFTWARE
        import xml.etree.ElementTree as ET

        root = ET.parse(path).getroot()
        return root.tag == "testsuites" and root.get("name") == JUNIT_SUITE
    except Exception:  # noqa: BLE001 - any unreadable file is simply not one of ours
        return False


def _make_parents(folder: Path) -> list[Path]:
    """Create ``folder`` and its missing ancestors; return those created, outermost first."""
    missing = []
    while not folder.exists():
        missing.append(folder)
        folder = folder.parent
    for f in reversed(missing):
        f.mkdir()
    return list(reversed(missing))


def _remove_made(made: list[Path]) -> None:
    for f in reversed(made):
        try:
            f.rmdir()
        except OSError:
            break


@contextmanager
def atomic_dir(final: str | Path, kind: str = "export", *, inputs: Iterable[str | Path | None] = (),
               overwrite: bool = False):
    """Yield a temporary sibling folder; on success it replaces ``final``, on any error it is deleted.

    ``check_output`` runs before the folder is made and again just before the rename.
    """
    final = Path(final)
    inputs = tuple(inputs)
    check_output(final, kind, inputs=inputs, overwrite=overwrite)
    made = _make_parents(final.parent)
    tmp = Path(tempfile.mkdtemp(prefix=f".{final.name}.partial-", dir=final.parent))
    try:
        yield tmp
        check_output(final, kind, inputs=inputs, overwrite=overwrite)
        _replace(tmp, final)
        made = []
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
        _remove_made(made)


def _replace(tmp: Path, final: Path) -> None:
    """Move ``tmp`` to ``final``; an existing ``final`` is moved aside first and deleted only afterwards."""
    if not (final.exists() or final.is_symlink()):
        tmp.rename(final)
        return
    aside = Path(tempfile.mkdtemp(prefix=f".{final.name}.old-", dir=final.parent)) / "old"
    final.rename(aside)
    try:
        tmp.rename(final)
    except BaseException:
        aside.rename(final)
        raise
    finally:
        remove(aside.parent)


def write_json(path: str | Path, data, kind: str = "report", **rules) -> Path:
    """Write ``data`` as indented JSON through a temp file and a rename (``rules``: as ``check_output``)."""
    return write_text(path, json.dumps(data, indent=2, default=str) + "\n", kind, **rules)


def write_text(path: str | Path, text: str, kind: str = "report", **rules) -> Path:
    """Write ``text`` through a temp file and a rename, after ``check_output(path, kind, **rules)``."""
    return write_file(path, lambda tmp: Path(tmp).write_text(text, encoding="utf-8"), kind, **rules)


def write_file(path: str | Path, write, kind: str, *, inputs: Iterable[str | Path | None] = (),
               overwrite: bool = False) -> Path:
    """Call ``write(tmp_path)`` on a temporary sibling of ``path``, then rename it to ``path``."""
    path = Path(path)
    inputs = tuple(inputs)
    check_output(path, kind, inputs=inputs, overwrite=overwrite)
    made = _make_parents(path.parent)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.stem}.", suffix=path.suffix, dir=path.parent)
    os.close(fd)
    try:
        write(tmp)
        check_output(path, kind, inputs=inputs, overwrite=overwrite)
        os.replace(tmp, path)
        made = []
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
        _remove_made(made)
    return path


def remove(path: str | Path) -> None:
    """Delete a file or a folder tree if it exists."""
    path = Path(path)
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path)
    elif path.exists() or path.is_symlink():
        path.unlink()
