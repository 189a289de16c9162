"""Signals as exceptions: SIGTERM (what CI, docker and systemd send) cleans up exactly like Ctrl-C.

``handle_signals()`` (entered by ``cli.main``) makes SIGINT and SIGTERM raise ``Interrupted``, a
``KeyboardInterrupt``, in the main thread, so that every ``finally`` runs: temporary folders are removed and no
output is left half-written. It also remembers the signal (``received()``): some libraries catch the
``KeyboardInterrupt`` and raise something else in its place (torch's fake tensors turn it into a ``TypeError``
that the ONNX exporter wraps in a ``ConversionError``), and such an error is still an interruption. The exit
status is the shell's convention, 128 + the signal number: 130 for SIGINT, 143 for SIGTERM.

A signal that arrives while an extension module is being loaded is held back until it is loaded (the signal is
sent again every ``RETRY_S``): an exception raised inside an extension module's initialisation (onnx's, imported
lazily in the middle of an export) crashes the interpreter with a segmentation fault instead of unwinding.

Example::

    with handle_signals():
        run_command()           # SIGTERM here raises Interrupted; `finally` blocks run
    # after an exception: received() -> signal.SIGTERM, exit_code(signal.SIGTERM) -> 143
"""

from __future__ import annotations

import ctypes
import signal
import sys
import threading
from contextlib import contextmanager

SIGNALS = (signal.SIGINT, signal.SIGTERM)
RETRY_S = 0.05  # how often a signal held back while an extension module loads is sent again
_received: int | None = None  # the first signal seen since handle_signals() was entered
_active = False  # inside a handle_signals() block
_retry: threading.Timer | None = None  # set while a signal is held back (module docstring) and not yet raised
_lock = threading.Lock()


class Interrupted(KeyboardInterrupt):
    """Raised by the SIGINT/SIGTERM handler; ``signum`` is the signal."""

    def __init__(self, signum: int):
        super().__init__(signal.Signals(signum).name)
        self.signum = signum


def received() -> int | None:
    """The first signal that arrived inside the last ``handle_signals()`` block, or None."""
    return _received


def raise_if_received() -> None:
    """Raise ``Interrupted`` if a signal arrived inside the ``handle_signals()`` block running now.

    Called before an output is committed: a library may catch the ``KeyboardInterrupt`` and carry on (torch's
    exporter turns it into a ``TypeError`` and tries its next capture strategy), and the interrupted run must
    still end without its output. Outside a block it does nothing.
    """
    if _active and _received is not None:
        raise Interrupted(_received)


def exit_code(signum: int) -> int:
    """The shell's exit status for a process ended by ``signum``: 128 + its number (SIGINT 130, SIGTERM 143)."""
    return 128 + int(signum)


def describe(signum: int) -> str:
    """``SIGINT (Ctrl-C)`` or the signal's name."""
    name = signal.Signals(signum).name
    return f"{name} (Ctrl-C)" if signum == signal.SIGINT else name


def _loading_extension(frame) -> bool:
    """Whether ``frame`` runs inside the loading of an extension module (its C initialisation calls back into
    Python: an exception raised there is not unwound safely). Pure-Python imports unwind like any code."""
    while frame is not None:
        code = frame.f_code
        if code.co_name in ("create_module", "exec_module") and code.co_filename.startswith("<frozen importlib"):
            if type(frame.f_locals.get("self")).__name__ == "ExtensionFileLoader":
                return True
        frame = frame.f_back
    return False


def _hold_back(signum: int) -> None:
    """Send ``signum`` to the main thread again in ``RETRY_S``, unless ``_drop_resend`` comes first."""
    global _retry
    timer = threading.Timer(RETRY_S, _resend, (signum,))
    timer.daemon = True
    with _lock:
        if _retry is not None:
            _retry.cancel()
        _retry = timer
    timer.start()


def _resend(signum: int) -> None:
    with _lock:  # a resend that _drop_resend cancelled in the meantime is not sent
        if _retry is threading.current_thread():
            signal.pthread_kill(threading.main_thread().ident, signum)


def _drop_resend() -> bool:
    """Cancel the resend of a held-back signal; whether one was pending."""
    global _retry
    with _lock:
        pending, _retry = _retry, None
    if pending is not None:
        pending.cancel()
    return pending is not None


def _handler(signum, frame) -> None:
    global _received
    if _received is None:
        _received = signum
    if _loading_extension(frame):  # raising here may crash the module's init: try again once it is loaded
        _hold_back(signum)
        return
    _drop_resend()
    raise Interrupted(signum)


@contextmanager
def handle_signals():
    """Within the block, SIGINT and SIGTERM raise ``Interrupted``; the previous handlers return afterwards.

    A signal that was ignored when the block began (e.g. SIGINT under ``nohup``) stays ignored. Outside the main
    thread, where Python cannot install handlers, the block runs unchanged. A signal held back while an extension
    module loads (module docstring) that is still pending when the block ends raises ``Interrupted`` there.
    """
    global _received, _active
    _received = None
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = {s: signal.getsignal(s) for s in SIGNALS}
    for s, old in previous.items():
        if old is not signal.SIG_IGN:
            signal.signal(s, _handler)
            off_alternate_stack(s)
    _active = True
    try:
        yield
    finally:
        _active = False
        held = _drop_resend()
        _restore(previous, held)
    if held:
        raise Interrupted(_received)


def _restore(previous: dict, held: bool) -> None:
    """Put the previous handlers back; with a signal ``held`` back, a resend already in flight meets SIG_IGN (the
    caller raises ``Interrupted`` for it) rather than the previous handler."""
    try:
        if held:
            for s in previous:
                signal.signal(s, signal.SIG_IGN)
    finally:
        for s, old in previous.items():
            signal.signal(s, old if old is not None else signal.SIG_DFL)
            off_alternate_stack(s)


class _Sigaction(ctypes.Structure):
    """Linux's ``struct sigaction`` as glibc lays it out (x86-64 and aarch64)."""
    _fields_ = [("handler", ctypes.c_void_p), ("mask", ctypes.c_ulong * (128 // ctypes.sizeof(ctypes.c_ulong))),
                ("flags", ctypes.c_int), ("restorer", ctypes.c_void_p)]


_SA_ONSTACK = 0x08000000


def off_alternate_stack(signum: int) -> None:
    """Run ``signum``'s handler on the interrupted thread's own stack, not on its alternate signal stack.

    Python installs every handler with ``SA_ONSTACK``. OpenVINO's CPU plugin gives the thread that compiles a model
    an alternate signal stack and frees it when the compiled model goes; with two compiled models alive at once
    (an export's batch-1 graph, ``bench --compare``) the one freed last can leave the main thread pointing at freed
    memory, and the next Ctrl-C or SIGTERM then kills the process with SIGSEGV instead of running the handler.
    Clearing the flag keeps the same (Python's) handler. Linux only; elsewhere, or if libc refuses, nothing changes.
    """
    if not sys.platform.startswith("linux"):
        return
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        action = _Sigaction()
        if libc.sigaction(int(signum), None, ctypes.byref(action)) != 0 or not action.flags & _SA_ONSTACK:
            return
        action.flags &= ~_SA_ONSTACK
        libc.sigaction(int(signum), ctypes.byref(action), None)
    except (OSError, AttributeError):
        pass
