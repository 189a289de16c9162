"""The ``ltp-deploy`` command line: this module only wires commands; each lives in ``ltp_deploy/commands/``.

One error boundary (``main``) turns ``LtpDeployError`` into a one-line message and exit code 2 (gate failures
of ``check`` exit 1); set ``LTP_DEPLOY_DEBUG=1`` for the traceback. Usage errors are typer's own (exit 2).
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
from ltp_deploy.commands import reproduce as reproduce_cmd
from ltp_deploy.commands import serve as serve_cmd
from ltp_deploy.commands import sweep as sweep_cmd
from ltp_deploy.commands import train as train_cmd
from ltp_deploy.errors import LtpDeployError

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
app.command("train", help=train_cmd.HELP, epilog=train_cmd.EXAMPLES)(train_cmd.train)
app.command("calibrate", help=calibrate_cmd.HELP, epilog=calibrate_cmd.EXAMPLES)(calibrate_cmd.calibrate)
app.command("sweep", help=sweep_cmd.HELP, epilog=sweep_cmd.EXAMPLES)(sweep_cmd.sweep)
app.command("check", help=check_cmd.HELP, epilog=check_cmd.EXAMPLES)(check_cmd.check)
app.command("serve", help=serve_cmd.HELP, epilog=serve_cmd.EXAMPLES)(serve_cmd.serve)
app.command("reproduce", help=reproduce_cmd.HELP, epilog=reproduce_cmd.EXAMPLES)(reproduce_cmd.reproduce)
app.command("loadtest", help=serve_cmd.LOADTEST_HELP, epilog=serve_cmd.LOADTEST_EXAMPLES)(serve_cmd.loadtest)

EXIT_USAGE = 2


def main() -> None:
    """Entry point: typer reports usage errors itself (exit 2); ``LtpDeployError`` becomes one line (exit 2)."""
    try:
        app()
    except LtpDeployError as e:
        if os.environ.get("LTP_DEPLOY_DEBUG"):
            raise
        print(f"error: {e}", file=sys.stderr)
        sys.exit(EXIT_USAGE)


if __name__ == "__main__":
    main()
