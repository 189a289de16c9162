"""The one exception type the CLI turns into a one-line message, and the sentence for a file or disk fault."""

from __future__ import annotations

import errno
import os


class LtpDeployError(Exception):
    """A problem with the user's input: the message names the problem and the fix, in one sentence."""


# What to do about each file-system fault (the errno's meaning comes from the OS: "No space left on device").
_FIXES = {
    errno.ENOSPC: "free some space on that disk, or write somewhere else",
    errno.EDQUOT: "free some of your quota, or write somewhere else",
    errno.EFBIG: "raise the file size limit (ulimit -f), or write somewhere else",
    errno.EROFS: "that file system is read-only: write somewhere else",
    errno.EACCES: "check the permissions there, or use another path",
    errno.EPERM: "check the permissions there, or use another path",
    errno.ELOOP: "a symbolic link on that path leads back to itself: fix or remove the link, or use another path",
    errno.ENAMETOOLONG: "use a shorter path",
    errno.EIO: "the disk reported an input/output error: check the disk, then run the command again",
    errno.ENOENT: "check that the path exists",
    errno.ENOTDIR: "a part of the path is a file, not a folder: fix the path",
    errno.EISDIR: "that is a folder: name a file",
    errno.EMFILE: "too many open files: raise the limit (ulimit -n) and run the command again",
    errno.ENFILE: "too many open files on this system: close some programs and run the command again",
    errno.ENOMEM: "not enough memory: close other programs or use a smaller batch",
}
# Faults that can only come from writing: an error of this kind without a file name is blamed on the output.
WRITE_FAULTS = frozenset({errno.ENOSPC, errno.EDQUOT, errno.EFBIG, errno.EROFS, errno.EIO})


def os_error_message(e: OSError, *, path: str | os.PathLike | None = None, action: str = "") -> str:
    """One sentence for a file-system fault: the errno's meaning, the path, and a fix.

    Args:
        e: the error.
        path: the path to name (default: the error's own file name, if it has one).
        action: what was being done, e.g. "writing" (then the sentence reads "... while writing PATH").

    Example::

        os_error_message(OSError(errno.ENOSPC, "No space left on device"), path="out/model", action="writing")
        # 'No space left on device while writing out/model: free some space on that disk, or write somewhere else.'
    """
    meaning = e.strerror or (os.strerror(e.errno) if e.errno else type(e).__name__)
    where = path if path is not None else e.filename
    if where is not None and e.filename2 is not None and path is None:
        where = f"{e.filename} -> {e.filename2}"
    place = f" while {action} {where}" if action and where is not None else f": {where}" if where is not None else ""
    fix = _FIXES.get(e.errno, "check the path and the disk, then run the command again")
    return f"{meaning}{place}: {fix}."
