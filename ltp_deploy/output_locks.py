"""One writer per output, and the leftovers of writers that died (used by ``ltp_deploy.outputs``).

* **The lock.** A process writing an output holds an exclusive ``flock`` on ``.NAME.lock`` beside it from the
  start of the write to the final rename (``claim``); a second writer is refused with one sentence naming the
  holder's pid (``busy_message``), and ``outputs.check_output`` refuses early when it sees the lock held
  (``writer_of``). The kernel drops a flock when its process dies, SIGKILL included, so a dead writer never
  blocks anyone. The holder removes the lock file when done; one left by a killed writer is reused.
* **Leftovers beside an output.** Every live writer of NAME holds its lock, so whoever holds it knows that the
  temporaries beside it (``.NAME.partial-*`` being written, ``.NAME.old-*`` moved aside) belong to runs that are
  gone: ``remove_stale`` deletes them, after putting back an ``.old`` copy when its run died between moving the
  previous output aside and renaming the new one in.
* **Scratch folders in TMPDIR** (``scratch_dir``) are named ``ltp-deploy-KIND-PID-XXXXXXXX`` and flocked while in
  use; ``remove_stale_scratch`` deletes those whose process is gone and whose lock is free (folders without a
  pid, from older versions, are left alone: their owner cannot be told).

Example::

    with claim("out/model"):                    # OutputBusyError if another process is writing out/model
        notes = remove_stale("out/model")       # [(path, bytes), ...] of dead runs' temporaries, now removed
        ...                                     # write out/.model.partial-PID-XXXXXXXX, rename it to out/model
"""

from __future__ import annotations

import fcntl
import os
import re
import shutil
import tempfile
import time
from contextlib import ExitStack, contextmanager
from pathlib import Path

from ltp_deploy.errors import LtpDeployError, os_error_message

SCRATCH_PREFIX = "ltp-deploy-"
_RANDOM = r"[a-z0-9_]{8}"  # tempfile's random part
_SCRATCH = re.compile(rf"{SCRATCH_PREFIX}[a-z0-9]+-(\d+)-{_RANDOM}")
_BUSY_TRIES, _BUSY_WAIT_S = 6, 0.05  # a momentary probe (writer_of) is not a writer: retry for 0.3 s
_held: dict[str, int] = {}  # lock file -> descriptor, for the locks this process holds


class OutputBusyError(LtpDeployError):
    """Another live process is writing the same output."""


def lock_path(path: str | Path) -> Path:
    """The lock file of an output: ``.NAME.lock`` in the output's (resolved) folder."""
    path = Path(path)
    return Path(os.path.realpath(path.absolute().parent)) / f".{path.name}.lock"


def temp_prefix(path: str | Path, what: str = "partial") -> str:
    """The name prefix of a temporary beside ``path``: ``.NAME.partial-PID-`` (``what``: "partial" or "old")."""
    return f".{Path(path).name}.{what}-{os.getpid()}-"


def busy_message(path: str | Path, pid: int | None, option: str | None = None) -> str:
    """The sentence refusing a second writer of ``path``."""
    holder = f" (pid {pid})" if pid else ""
    name = f"{option} {path}" if option else str(path)
    return (f"{name} is being written by another ltp-deploy process{holder}: wait for it to finish, or choose "
            f"another {option or 'output'}.")


def writer_of(path: str | Path) -> int | None:
    """The pid of another process writing ``path`` now (0 when its pid is unknown), else None; changes nothing."""
    lock = lock_path(path)
    if str(lock) in _held:
        return None
    try:
        fd = os.open(lock, os.O_RDONLY | os.O_CLOEXEC)
    except OSError:
        return None
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except BlockingIOError:
            return _pid_in(fd)
        fcntl.flock(fd, fcntl.LOCK_UN)
        return None
    finally:
        os.close(fd)


@contextmanager
def claim(path: str | Path):
    """Hold the lock of output ``path`` for the block (re-entrant within this process); its folder must exist.

    Raises:
        OutputBusyError: another live process holds it.
    """
    lock = lock_path(path)
    key = str(lock)
    if key in _held:
        yield
        return
    fd = _acquire(lock, path)
    _held[key] = fd
    try:
        yield
    finally:
        del _held[key]
        try:
            if _same_file(fd, lock):
                os.unlink(lock)  # unlinked while still locked: a waiting opener then sees another file
        except OSError:
            pass
        finally:
            os.close(fd)


def _acquire(lock: Path, path) -> int:
    busy = 0
    while True:
        fd = os.open(lock, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            busy += 1
            if busy >= _BUSY_TRIES:
                pid = _pid_in(fd)
                os.close(fd)
                raise OutputBusyError(busy_message(path, pid)) from None
            os.close(fd)
            time.sleep(_BUSY_WAIT_S)
            continue
        except BaseException:
            os.close(fd)
            raise
        if _same_file(fd, lock):
            os.ftruncate(fd, 0)
            os.write(fd, f"{os.getpid()}\n".encode())
            return fd
        os.close(fd)  # its holder removed it between our open and flock: take the new one


def _same_file(fd: int, path: Path) -> bool:
    try:
        a, b = os.fstat(fd), os.stat(path)
    except OSError:
        return False
    return (a.st_dev, a.st_ino) == (b.st_dev, b.st_ino)


def _pid_in(fd: int) -> int:
    try:
        return int(os.pread(fd, 32, 0).decode().strip() or 0)
    except (OSError, ValueError):
        return 0


def remove_stale(path: str | Path) -> list[tuple[Path, int]]:
    """Remove the temporaries that dead runs left beside output ``path``; call it holding ``claim(path)``.

    An ``.old`` copy is first moved back to ``path`` when ``path`` is missing (its run died mid-replace).
    Returns ``(path, bytes)`` for each entry removed; entries that cannot be removed are left alone.
    """
    path = Path(path)
    pattern = re.compile(rf"\.{re.escape(path.name)}\.(partial|old)-(?:\d+-)?{_RANDOM}(?:\.[A-Za-z0-9]+)?")
    removed = []
    try:
        found = [(p, m.group(1)) for p in path.parent.iterdir() if (m := pattern.fullmatch(p.name))]
        found.sort(key=lambda e: e[0].lstat().st_mtime, reverse=True)  # the newest .old copy first
    except OSError:
        return []
    for entry, what in found:
        if what == "old" and not os.path.lexists(path) and os.path.lexists(entry / "old"):
            try:
                os.rename(entry / "old", path)
            except OSError:
                continue
        _delete_into(removed, entry)
    return removed


@contextmanager
def scratch_dir(kind: str):
    """Yield a new folder ``TMPDIR/ltp-deploy-KIND-PID-XXXXXXXX``, flocked while in use and removed afterwards.

    An ``OSError`` naming a file in it (see ``outputs.writing``) becomes one ``LtpDeployError`` sentence that
    names TMPDIR and the fix.
    """
    tmp = Path(tempfile.mkdtemp(prefix=f"{SCRATCH_PREFIX}{kind}-{os.getpid()}-"))
    fd = os.open(tmp, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield tmp
    except OSError as e:
        if not _inside(e.filename, tmp):
            raise
        sentence = os_error_message(e, path=f"temporary files in {tmp.parent}", action="writing")
        raise LtpDeployError(f"{sentence[:-1]}, e.g. set TMPDIR to a folder with room.") from e
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
        os.close(fd)


@contextmanager
def scratch_on_demand(kind: str):
    """Yield ``get() -> Path``: one ``scratch_dir(kind)``, made on the first call (where the work starts: after
    the output's partial folder) and removed when the block ends."""
    with ExitStack() as stack:
        made: list[Path] = []

        def get() -> Path:
            if not made:
                made.append(stack.enter_context(scratch_dir(kind)))
            return made[0]

        yield get


def remove_stale_scratch() -> list[tuple[Path, int]]:
    """Remove the scratch folders of processes that are gone from TMPDIR; returns ``(path, bytes)`` removed."""
    root = Path(tempfile.gettempdir())
    removed = []
    try:
        entries = list(root.iterdir())
    except OSError:
        return []
    for entry in entries:
        match = _SCRATCH.fullmatch(entry.name)
        if not match or _alive(int(match.group(1))):
            continue
        try:
            st = entry.lstat()
            if not entry.is_dir() or entry.is_symlink() or st.st_uid != os.geteuid() or not _unlocked(entry):
                continue
        except OSError:
            continue
        _delete_into(removed, entry)
    return removed


def _inside(name, folder: Path) -> bool:
    if not isinstance(name, (str, bytes, os.PathLike)):
        return False
    name = Path(os.fsdecode(name)).absolute()
    return name == folder or folder in name.parents


def _alive(pid: int) -> bool:
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # someone else's process
    return True


def _unlocked(folder: Path) -> bool:
    fd = os.open(folder, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        return True
    except BlockingIOError:
        return False
    finally:
        os.close(fd)


def _size(path: Path) -> int:
    try:
        if path.is_symlink() or not path.is_dir():
            return path.lstat().st_size
        return sum(p.lstat().st_size for p in path.rglob("*") if not p.is_dir() or p.is_symlink())
    except OSError:
        return 0


def _delete_into(removed: list[tuple[Path, int]], entry: Path) -> None:
    """Delete ``entry``; on success append ``(entry, bytes it held)`` to ``removed``."""
    size = _size(entry)
    if _delete(entry):
        removed.append((entry, size))


def _delete(path: Path) -> bool:
    try:
        if path.is_dir() and not path.is_symlink():
            shutil.rmtree(path)
        else:
            path.unlink()
        return True
    except OSError:
        return False


def describe_removed(removed: list[tuple[Path, int]]) -> str:
    """One line for the user: how many leftovers were removed, their size, and where."""
    total = sum(size for _, size in removed)
    where = ", ".join(str(p) for p, _ in removed[:3]) + (f" and {len(removed) - 3} more" if len(removed) > 3 else "")
    noun = "leftover" if len(removed) == 1 else "leftovers"
    size = f"{total / 1e6:.1f} MB" if total >= 1e5 else f"{total / 1e3:.1f} kB"
    return f"removed {len(removed)} {noun} of interrupted ltp-deploy runs ({size}): {where}"
