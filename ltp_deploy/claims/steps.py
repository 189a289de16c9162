"""The steps of a claims run: each one command with its outputs, skipped on a rerun when those are complete.

A step is a command line (``ltp-deploy export ...``, ``check``, ``bench``, ``optimum-cli export onnx``, ``train``)
run as a child process, so every figure comes from the same command a user types, in a fresh process (no
runtime state shared between timings). Its log goes to ``OUT/logs/<name>.log``. Outcomes:

* ``done``: it ran and exited 0; ``skipped``: its outputs were already complete and valid (resuming): made by the
  same command, after the last change to its ``sources`` (the checkpoints it reads), from inputs that were not
  remade in this run;
* ``gate-failed``: ``check`` wrote its report but a gate failed (exit 1): shown as failed in the table;
* ``failed``: it exited non-zero without its outputs (the log's last line says why);
* ``blocked``: a step it needs did not produce its outputs.
"""

from __future__ import annotations

import json
import os
import shlex
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

from ltp_deploy.check import KIND as CHECK_KIND

STATUSES = ("done", "skipped", "gate-failed", "failed", "blocked")
GATE_FAILED_EXIT = 1  # check's exit code when it wrote its report and a gate failed


@dataclass
class Step:
    """One command: ``argv`` as a user types it (``ltp-deploy ...``), the ``output`` it writes, the steps it needs.

    ``output`` is complete when it is an export or checkpoint folder with its marker file, a file graph, or a JSON
    report of ``report_kind``.
    """

    name: str
    argv: list[str]
    output: Path
    needs: list[str] = field(default_factory=list)
    report_kind: str | None = None  # a JSON report of this kind (None: a folder or graph)
    marker: str | None = None  # the file inside a folder output that marks it complete
    env: dict[str, str] = field(default_factory=dict)
    sources: list[Path] = field(default_factory=list)  # input folders/files: a change after the run makes it stale
    force: bool = False  # run even when complete (reproduce --rebench: time again)
    log: Path | None = None  # OUT/logs/<name>.log, set by run_steps: "$ command", the output, "# exit N"
    status: str = "pending"
    seconds: float = 0.0
    message: str = ""

    @property
    def command(self) -> str:
        prefix = " ".join(f"{k}={shlex.quote(v)}" for k, v in self.env.items())
        return (prefix + " " if prefix else "") + shlex.join(self.argv)

    def complete(self) -> bool:
        """Whether the output is there, whole, of the right kind and made by this same command from the sources
        as they are now (what a rerun skips on: a changed option, or a retrained checkpoint, runs the step again)."""
        if self.log is not None and not _ran_to_the_end(self.log, f"$ {self.command}"):
            return False
        if self.log is not None and _newest_mtime(self.sources) > self.log.stat().st_mtime:
            return False
        if self.report_kind is not None:
            return read_report(self.output, self.report_kind) is not None
        if self.marker is not None:
            return (self.output / self.marker).is_file()
        return self.output.is_file()

    def record(self) -> dict:
        return {"name": self.name, "command": self.command, "output": str(self.output), "status": self.status,
                "seconds": round(self.seconds, 1), "message": self.message}


def read_report(path: Path, kind: str | None = None) -> dict | None:
    """The JSON report at ``path`` when it is one of ltp-deploy's (of ``kind``, when given); else None."""
    try:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    if not isinstance(data, dict) or not str(data.get("kind", "")).startswith("ltp-deploy-"):
        return None
    return data if kind is None or data["kind"] == kind else None


def ltp_deploy(*args: str | Path) -> list[str]:
    return ["ltp-deploy", *map(str, args)]


def run_steps(steps: list[Step], logs: Path, log=print, advance=lambda n=1, description=None: None) -> None:
    """Run each step in order (skipping complete ones, blocking those whose needs failed); never raises for a
    failing command: its outcome is recorded on the step."""
    by_name = {s.name: s for s in steps}
    for i, step in enumerate(steps, 1):
        step.log = logs / f"{step.name}.log"
        blockers = [n for n in step.needs if by_name[n].status not in ("done", "skipped", "gate-failed")]
        redone = any(by_name[n].status in ("done", "gate-failed") for n in step.needs)  # its inputs are new
        if blockers:  # even when an earlier run left its output: that output measured another input
            step.status, step.message = "blocked", f"needs {', '.join(blockers)}"
        elif step.complete() and not step.force and not redone:
            step.status = "skipped"
        else:
            _run(step)
        log(f"[{i}/{len(steps)}] {step.name}: {step.status}"
            + (f" ({step.seconds:.0f} s)" if step.status in ("done", "gate-failed", "failed") else "")
            + (f": {step.message}" if step.message else ""))
        advance(1, description=step.name)


def _run(step: Step) -> None:
    log_file = step.log
    log_file.parent.mkdir(parents=True, exist_ok=True)
    argv = step.argv
    if argv[0] == "ltp-deploy":  # the same interpreter as this process, whatever is on PATH
        argv = [sys.executable, "-m", "ltp_deploy.cli", *argv[1:]]
    env = {**os.environ, **step.env, "LTP_DEPLOY_QUIET": "1"}
    start = time.perf_counter()
    with open(log_file, "w", encoding="utf-8") as out:
        out.write(f"$ {step.command}\n")
        out.flush()
        try:
            code = subprocess.run(argv, stdout=out, stderr=subprocess.STDOUT, env=env).returncode
        except OSError as e:
            code, step.message = 127, f"{argv[0]} could not start: {e}"
        out.write(f"\n# exit {code}\n")
    step.seconds = time.perf_counter() - start
    if code == 0 and step.complete():
        step.status = "done"
    elif code == GATE_FAILED_EXIT and step.report_kind == CHECK_KIND and step.complete():
        step.status, step.message = "gate-failed", _last_line(log_file, "FAIL")
    else:
        step.status = "failed"
        step.message = step.message or f"exit {code}: {_last_line(log_file)} (log: {log_file})"


def _ran_to_the_end(log: Path, header: str) -> bool:
    """Whether ``log`` records this command (its first line) run to an exit of 0, or 1 (check's failed gate):
    an output left by an earlier command, or by a run that failed or was cut off, does not count."""
    try:
        lines = log.read_text(encoding="utf-8", errors="replace").strip().splitlines()
    except OSError:
        return False
    return bool(lines) and lines[0] == header and lines[-1] in ("# exit 0", f"# exit {GATE_FAILED_EXIT}")


def _newest_mtime(paths: list[Path]) -> float:
    """The latest modification time of the files in ``paths`` (a folder counts its direct files); 0 for none."""
    times = [0.0]
    for path in paths:
        files = [f for f in path.iterdir() if f.is_file()] if path.is_dir() else [path] if path.is_file() else []
        times += [f.stat().st_mtime for f in files]
    return max(times)


def _last_line(path: Path, starting: str = "") -> str:
    lines = [ln.strip() for ln in path.read_text(encoding="utf-8", errors="replace").splitlines() if ln.strip()]
    lines = [ln for ln in lines if not ln.startswith("# exit ")]
    chosen = [ln for ln in lines if ln.startswith(starting)] if starting else lines
    return (chosen or lines or [""])[-1][:300]
