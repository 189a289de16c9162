"""Where a command may write, and how: an output never destroys a user's files and never appears half-written.

The rules (``check_output``), applied by every command that writes and by the library functions behind them:

* an output may not be, contain, or lie inside one of the command's inputs (a checkpoint, a graph, a data
  file), nor be the current directory or one of its ancestors;
* an existing output is replaced only when ltp-deploy wrote it, as the same kind of output (an export folder
  holds ``ltp_deploy_export.json``, a checkpoint ``ltp_deploy.json``, a report is JSON whose ``kind`` starts
  with ``ltp-deploy-``, a plot carries ``Software: ltp-deploy``, a JUnit file is the ``ltp-deploy check`` suite),
  or when ``overwrite`` is given; a folder is never replaced by a file;
* the nearest existing folder above the output must be a folder this process can write to;
* no other ltp-deploy process may be writing the same output (``output_locks``: one writer per output).

Writing goes through a temporary sibling (given the mode a plain ``mkdir`` or ``open`` would, under the umask) and a
rename, holding the output's lock (``.NAME.lock``) from the check to the rename: on any error (or SIGINT/SIGTERM,
see ``ltp_deploy.interrupts``) nothing appears at the output, folders created on the way to it are removed again,
and a file-system fault while writing (a full disk, a read-only one) is one ``LtpDeployError`` sentence naming the
output. What runs killed outright (SIGKILL, power loss) left beside the output, and their scratch folders in TMPDIR,
are removed by the next write of that output, with one notice line (``progress.notice``).

Example::

    check_output("out/model", "export", inputs=[ckpt_dir])      # up front, before any work
    with atomic_dir("out/model", "export", inputs=[ckpt_dir]) as tmp:   # tmp is out/.model.partial-PID-XXXXXXXX
        export_into(tmp)                                         # raise here and nothing appears at out/model
    write_json("out/bench.json", report)                         # temp file + rename
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import Iterable

from ltp_deploy.errors import WRITE_FAULTS, LtpDeployError, os_error_message
from ltp_deploy.interrupts import raise_if_received
from ltp_deploy.output_locks import (busy_message, claim, describe_removed, lock_path, remove_stale,
                                     remove_stale_scratch, temp_prefix, writer_of)
from ltp_deploy.paths import is_symlink_loop
from ltp_deploy.progress import notice

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
    target = _resolve(path, option)
    for inp in inputs:
        if inp is None:
            continue
        source = _resolve(Path(inp), "the input")
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
    pid = writer_of(path)
    if pid is not None:
        raise LtpDeployError(busy_message(path, pid, option))
    return path


def _resolve(path: Path, option: str) -> Path:
    """``path.resolve()``, with a symbolic link loop (or another OS error) as one sentence."""
    loop = LtpDeployError(f"{option} {path} runs into a symbolic link loop (a link that leads back to itself): fix or "
                          "remove that link, or choose another path.")
    if is_symlink_loop(path):  # Python >= 3.13 resolves a loop without an error, leaving the link in place
        raise loop
    try:
        return path.resolve()
    except RuntimeError:  # Python < 3.13: "Symlink loop from ..." (a loop made since the check above)
        raise loop from None
    except OSError as e:
        raise LtpDeployError(f"{option} {path} cannot be used: {os_error_message(e)}") from None


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


def _make_parents(folder: Path, made: list[Path]) -> None:
    """Create ``folder`` and its missing ancestors; append those created to ``made``, outermost first."""
    missing = []
    while not folder.exists():
        missing.append(folder)
        folder = folder.parent
    for f in reversed(missing):
        try:
            f.mkdir()
            made.append(f)
        except FileExistsError:  # another process made it meanwhile: not ours to remove
            pass


def _remove_made(made: list[Path]) -> None:
    for f in reversed(made):
        try:
            f.rmdir()
        except OSError:
            break


@contextmanager
def reserved(*paths: str | Path | None):
    """Hold the locks of outputs ``paths`` (None skipped) for a long run that writes them at its end.

    A second run naming one of them is then refused from its start (``check_output``), not after both have done
    the work. Missing parent folders are made for the lock files, and removed again if nothing was written there.

    Raises:
        OutputBusyError: another live process holds one of the locks.
    """
    made: list[Path] = []
    try:
        with ExitStack() as stack:
            for path in paths:
                if path is not None:
                    _make_parents(Path(path).absolute().parent, made)
                    stack.enter_context(claim(path))
            yield
    finally:
        _remove_made(made)


@contextmanager
def atomic_dir(final: str | Path, kind: str = "export", *, inputs: Iterable[str | Path | None] = (),
               overwrite: bool = False):
    """Yield a temporary sibling folder; on success it replaces ``final``, on any error it is deleted.

    ``check_output`` runs before the folder is made and again just before the rename; the output's lock is held
    in between (``output_locks.claim``), and what dead runs left beside ``final`` or in TMPDIR is removed first.

    Raises:
        LtpDeployError: a rule of ``check_output`` is broken, another process is writing ``final``, or the disk
            failed while writing (full, read-only, over a size limit): one sentence naming ``final``.
    """
    final = Path(final)
    inputs = tuple(inputs)
    check_output(final, kind, inputs=inputs, overwrite=overwrite)
    made, tmp = [], None
    try:
        _make_parents(final.parent, made)
        with claim(final):
            _remove_leftovers(final, scratch=True)
            tmp = Path(tempfile.mkdtemp(prefix=temp_prefix(final), dir=final.parent))
            try:
                os.chmod(tmp, 0o777 & ~_umask())  # mkdtemp makes it 0700: the output gets mkdir's usual mode
                yield tmp
                raise_if_received()
                check_output(final, kind, inputs=inputs, overwrite=overwrite)
                _replace(tmp, final)
                made = []
            finally:
                if tmp.exists():
                    shutil.rmtree(tmp, ignore_errors=True)
    except OSError as e:
        fault = _write_fault(e, final, tmp)
        if fault is None:
            raise
        raise fault from e
    finally:
        _remove_made(made)


def _umask() -> int:
    """This process's umask, read without changing it (``/proc``), else by setting and restoring it."""
    try:
        with open("/proc/self/status", encoding="ascii") as f:
            return next(int(line.split()[1], 8) for line in f if line.startswith("Umask:"))
    except (OSError, StopIteration, ValueError, IndexError):
        mask = os.umask(0o022)
        os.umask(mask)
        return mask


def _remove_leftovers(final: Path, scratch: bool = False) -> None:
    """Remove what dead runs left beside ``final`` (and in TMPDIR with ``scratch``); one notice line if any."""
    removed = remove_stale(final) + (remove_stale_scratch() if scratch else [])
    if removed:
        notice(describe_removed(removed))


def _write_fault(e: OSError, final: Path, tmp: Path | None) -> LtpDeployError | None:
    """One sentence naming ``final`` when ``e`` is a fault of writing it (no file name and a write-only errno,
    or a file name that is the output, its lock, or inside its temporary), else None."""
    if e.filename is None:
        ours = e.errno in WRITE_FAULTS
    elif isinstance(e.filename, (str, bytes, os.PathLike)):
        name = Path(os.fsdecode(e.filename)).absolute()
        ours = name in {final.absolute(), lock_path(final), final.absolute().parent} or (
            tmp is not None and (name == tmp.absolute() or tmp.absolute() in name.parents))
    else:
        ours = False
    return LtpDeployError(os_error_message(e, path=final, action="writing")) if ours else None


def _replace(tmp: Path, final: Path) -> None:
    """Move ``tmp`` to ``final``; an existing ``final`` is moved aside first and deleted only afterwards."""
    if not (final.exists() or final.is_symlink()):
        tmp.rename(final)
        return
    aside = Path(tempfile.mkdtemp(prefix=temp_prefix(final, "old"), dir=final.parent)) / "old"
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
    """Call ``write(tmp_path)`` on a temporary sibling of ``path``, then rename it to ``path``.

    The output's lock is held from the check to the rename, as in ``atomic_dir``; a disk fault while writing is
    one ``LtpDeployError`` sentence naming ``path``.
    """
    path = Path(path)
    inputs = tuple(inputs)
    check_output(path, kind, inputs=inputs, overwrite=overwrite)
    made, tmp = [], None
    try:
        _make_parents(path.parent, made)
        with claim(path):
            _remove_leftovers(path)
            fd, tmp = tempfile.mkstemp(prefix=temp_prefix(path), suffix=path.suffix, dir=path.parent)
            try:
                try:
                    os.fchmod(fd, 0o666 & ~_umask())  # mkstemp makes it 0600: give it open()'s usual mode
                finally:
                    os.close(fd)
                write(tmp)
                raise_if_received()
                check_output(path, kind, inputs=inputs, overwrite=overwrite)
                os.replace(tmp, path)
                made = []
            finally:
                if os.path.exists(tmp):
                    os.unlink(tmp)
    except OSError as e:
        fault = _write_fault(e, path, None if tmp is None else Path(tmp))
        if fault is None:
            raise
        raise fault from e
    finally:
        _remove_made(made)
    return path


@contextmanager
def writing(path: str | Path):
    """Name ``path`` in an ``OSError`` that the block raises without a file name (``onnx.save`` and plain
    ``write`` calls give none), so that the error says which file could not be written."""
    try:
        yield
    except OSError as e:
        if e.filename is None:
            e.filename = os.fspath(path)
        raise


def remove(path: str | Path) -> None:
    """Delete a file or a folder tree if it exists."""
    path = Path(path)
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path)
    elif path.exists() or path.is_symlink():
        path.unlink()


def save_figure(fig, path: str | Path, **rules) -> Path:
    """Write ``fig`` as a PNG marked ``Software: ltp-deploy`` through a temp file and a rename (no half-written
    plot; ``rules`` as ``outputs.check_output``), then close it."""
    import matplotlib.pyplot as plt

    fig.tight_layout()
    try:
        return write_file(path, lambda tmp: fig.savefig(tmp, dpi=120, format="png",
                                                        metadata={"Software": PNG_SOFTWARE}), "plot", **rules)
    finally:
        plt.close(fig)
