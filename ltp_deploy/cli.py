"""The ``ltp-deploy`` command line: this module only wires commands; each lives in ``ltp_deploy/commands/``.

One error boundary (``main``) ends every fault in one line on stderr: ``LtpDeployError`` and file-system faults
(``OSError``: a full or read-only disk, a permission, a symbolic link loop) exit 2; SIGINT (Ctrl-C) and SIGTERM
clean up (``ltp_deploy.interrupts``) and exit 130 and 143. Gate failures of ``check`` exit 1; usage errors are
typer's own (exit 2). Set ``LTP_DEPLOY_DEBUG=1`` for the traceback.
"""

from __future__ import annotations

import os
import sys

import typer

from ltp_deploy.commands import bench as bench_cmd
from ltp_deploy.commands import calibrate as calibrate_cmd
from ltp_deploy.commands import check as check_cmd
from ltp_deploy.commands import export as export_cmd
from ltp_deploy.commands import inspect as inspect_cmd
from ltp_deploy.commands import profile as profile_cmd
from ltp_deploy.commands import reproduce as reproduce_cmd
from ltp_deploy.commands import serve as serve_cmd
from ltp_deploy.commands import sweep as sweep_cmd
from ltp_deploy.commands import train as train_cmd
from ltp_deploy.errors import LtpDeployError, os_error_message
from ltp_deploy.interrupts import describe, exit_code, handle_signals, received
from ltp_deploy.progress import notices_to_stderr

app = typer.Typer(
    name="ltp-deploy",
    help="Export token-pruned BERT/RoBERTa classifiers with real token dropping, then run, time and gate them.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
app.command("export", help=export_cmd.HELP, epilog=export_cmd.EXAMPLES)(export_cmd.export)
app.command("inspect", help=inspect_cmd.HELP, epilog=inspect_cmd.EXAMPLES)(inspect_cmd.inspect)
app.command("bench", help=bench_cmd.HELP, epilog=bench_cmd.EXAMPLES)(bench_cmd.bench)
app.command("profile", help=profile_cmd.HELP, epilog=profile_cmd.EXAMPLES)(profile_cmd.profile)
app.command("train", help=train_cmd.HELP, epilog=train_cmd.EXAMPLES)(train_cmd.train)
app.command("calibrate", help=calibrate_cmd.HELP, epilog=calibrate_cmd.EXAMPLES)(calibrate_cmd.calibrate)
app.command("sweep", help=sweep_cmd.HELP, epilog=sweep_cmd.EXAMPLES)(sweep_cmd.sweep)
app.command("check", help=check_cmd.HELP, epilog=check_cmd.EXAMPLES)(check_cmd.check)
app.command("serve", help=serve_cmd.HELP, epilog=serve_cmd.EXAMPLES)(serve_cmd.serve)
app.command("reproduce", help=reproduce_cmd.HELP, epilog=reproduce_cmd.EXAMPLES)(reproduce_cmd.reproduce)
app.command("loadtest", help=serve_cmd.LOADTEST_HELP, epilog=serve_cmd.LOADTEST_EXAMPLES)(serve_cmd.loadtest)

EXIT_USAGE = 2


def main() -> None:
    """Entry point: run the command; every fault ends in one line on stderr and its exit code (module docstring).

    Notices (``progress.notice``, e.g. leftovers of interrupted runs removed) are shown on stderr.
    """
    debug = bool(os.environ.get("LTP_DEPLOY_DEBUG"))
    _printable_streams()
    try:
        with notices_to_stderr(), handle_signals():
            app()
    except SystemExit as e:
        if received() is None or e.code in (0, None):
            raise
        _stop(None, debug)
    except BaseException as e:  # noqa: BLE001 - the one error boundary: sorted below, the rest re-raised
        if received() is not None:  # whatever a library made of the KeyboardInterrupt, it was an interruption
            _stop(e, debug)
        if debug or not isinstance(e, (LtpDeployError, OSError)):
            raise
        message = str(e) if isinstance(e, LtpDeployError) else os_error_message(e)
        print(f"error: {message}", file=sys.stderr)
        sys.exit(EXIT_USAGE)


def _printable_streams() -> None:
    """A terminal or pipe that cannot encode a character (e.g. PYTHONIOENCODING=ascii and a non-ASCII path) shows
    it as an escape (``\\xe9``) instead of ending the run with UnicodeEncodeError."""
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.reconfigure(errors="backslashreplace")
        except (AttributeError, ValueError):  # replaced by a non-text stream, or already closed
            pass


def _stop(e: BaseException | None, debug: bool) -> None:
    """End an interrupted run: one line and 128 + the signal number (SIGINT 130, SIGTERM 143)."""
    signum = received()
    if debug and e is not None:
        raise e
    print(f"interrupted by {describe(signum)}: nothing half-written was left behind; run the command again to "
          "finish.", file=sys.stderr)
    sys.exit(exit_code(signum))


if __name__ == "__main__":
    main()
