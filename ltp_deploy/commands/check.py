"""``ltp-deploy check MODEL --task T [--reference CKPT] [gates]``: the CI gate on an exported graph's accuracy
(the library is ltp_deploy.check). Exit 0: every gate passed; 1: a gate failed (one FAIL line each on stderr);
2: bad input (cli.main's error boundary)."""

from __future__ import annotations

import sys
from enum import Enum
from pathlib import Path
from typing import Annotated, Optional

import typer

from ltp_deploy.commands.options import (
    Data,
    LabelColumn,
    Task,
    TextColumn,
    Overwrite,
    TextPairColumn,
    column,
)
from ltp_deploy.runtimes import COMPUTE_PRECISIONS

HELP = ("Gate an exported graph's accuracy in CI: run it over the whole evaluation set (default: the task's GLUE "
        "dev split), compute the task metrics and, with --reference, compare it with the checkpoint's masked "
        "rule and dense model (metrics, prediction agreement, per-layer kept-token agreement, FLOPs). Each failed "
        "gate prints one FAIL line and the exit code is 1.")
EXAMPLES = """\b
Examples:
  ltp-deploy check out/sst2-onnx --task sst2 --reference runs/sst2-ltp --max-drop 0.01
  ltp-deploy check out/sst2-ov/model.xml --task sst2 --min-metric 0.90 --junit check.xml
  ltp-deploy check out/mrpc-onnx --task mrpc --metric f1 --reference runs/mrpc-ltp --json check.json
  ltp-deploy check out/reviews-onnx --data reviews.tsv --text-column text --label-column stars --min-metric 0.8
"""


# Compute precisions of the graph runtimes, from their adapters' table
Precision = Enum("Precision", {p: p for p in COMPUTE_PRECISIONS}, type=str)


def check(
    model: Annotated[Path, typer.Argument(help="Export folder, or its graph file (.onnx/.xml).")],
    task: Task = None,
    data: Data = None,
    text_column: TextColumn = None,
    text_pair_column: TextPairColumn = None,
    label_column: LabelColumn = None,
    reference: Annotated[Optional[Path], typer.Option(
        "--reference", help="The checkpoint folder the graph was exported from: adds the masked-rule and dense "
                            "comparisons and the max-decision-mismatch gate (default 0.01).")] = None,
    metric: Annotated[Optional[str], typer.Option(
        "--metric", help="Metric the gates use (default: the task's primary, e.g. accuracy; pearson for stsb).")
    ] = None,
    min_metric: Annotated[Optional[float], typer.Option(
        "--min-metric", help="Fail unless the graph's metric >= M (a fraction: 0.9 = 90%).")] = None,
    max_drop: Annotated[Optional[float], typer.Option(
        "--max-drop", help="Fail when reference metric - graph metric > D (0.01 = 1 point); the reference is the "
                           "checkpoint under its masked pruning rule. Needs --reference.")] = None,
    max_decision_mismatch: Annotated[Optional[float], typer.Option(
        "--max-decision-mismatch", help="Fail when more than this fraction of sequences keep other token counts "
                                        "than the reference in some layer (default 0.01 with --reference).")] = None,
    device: Annotated[str, typer.Option("--device", help="cpu or cuda (the graph's device).")] = "cpu",
    backend: Annotated[Optional[str], typer.Option(
        "--backend", help="onnxruntime or openvino (default: from the file type).")] = None,
    precision: Annotated[Precision, typer.Option(
        "--precision", help="Compute precision; OpenVINO runs f32 unless bf16 is asked for.")] = Precision.fp32,
    batch_size: Annotated[int, typer.Option("--batch-size", "-b", help="Sequences per batch.")] = 32,
    max_examples: Annotated[Optional[int], typer.Option(
        "--max-examples", help="Evaluate only the first N examples (default: all).")] = None,
    max_length: Annotated[Optional[int], typer.Option(
        "--max-length", help="Truncation length (default: the graph's maximum, capped at 128).")] = None,
    json_out: Annotated[Optional[Path], typer.Option("--json", help="Write the full report (JSON) here.")] = None,
    junit: Annotated[Optional[Path], typer.Option("--junit", help="Write a JUnit XML report here.")] = None,
    overwrite: Overwrite = False,
) -> None:
    from ltp_deploy.check import (
        CheckSettings,
        failure_lines,
        run_check,
        summary_lines,
        write_junit,
    )
    from ltp_deploy.outputs import check_outputs, write_json
    from ltp_deploy.progress import interactive

    settings = CheckSettings(
        model=model, task=task, data=data, text_column=column(text_column),
        text_pair_column=column(text_pair_column), label_column=column(label_column), reference=reference,
        metric=metric, min_metric=min_metric, max_drop=max_drop, max_decision_mismatch=max_decision_mismatch,
        device=device, backend=backend, precision=Precision(precision).value, batch_size=batch_size,
        max_examples=max_examples, max_length=max_length,
    )
    rules = {"inputs": (model, reference, data), "overwrite": overwrite}
    check_outputs([(json_out, "report", "--json"), (junit, "junit", "--junit")], **rules)
    report = run_check(settings)
    if interactive():  # the results first: a report that cannot be written (a full disk) does not hide them
        _print_table(report)
    else:
        for line in summary_lines(report):
            print(line, flush=True)
    if json_out is not None:
        write_json(json_out, report, **rules)
    if junit is not None:
        write_junit(junit, report, **rules)
    for label, path in (("report", json_out), ("JUnit report", junit)):
        if path is not None:
            print(f"wrote {label} {path}")
    failures = failure_lines(report)
    for line in failures:
        print(line, file=sys.stderr)
    if failures:
        raise typer.Exit(code=1)


def _print_table(report: dict) -> None:
    from rich.console import Console
    from rich.table import Table

    from ltp_deploy.check.report import agreement_text
    from ltp_deploy.check.report import fmt as _fmt

    d, m = report["data"], report["model"]
    console = Console()
    models = [role for role in ("graph", "reference", "dense") if report["results"][role] is not None]
    names = list(report["results"]["graph"]["metrics"])
    table = Table(title=f"{m['path']} ({m['runtime']}, {m['precision']}) on {d['source']}: {d['examples']} "
                        f"examples, max_length {d['max_length']}")
    for name in ("model", *names, "FLOPs red.", "kept (last layer)"):
        table.add_column(name, justify="left" if name == "model" else "right")
    for role in models:
        r = report["results"][role]
        table.add_row(role, *(_fmt(r["metrics"][k]) for k in names), f"x{r['flops_reduction']:.2f}",
                      f"{r['mean_kept_per_layer'][-1]:.1f} / {d['mean_tokens']:.1f}")
    console.print(table)
    if report["agreement"] is not None:
        console.print(f"agreement with the masked rule: {agreement_text(report)}", highlight=False)
    if report["gates"]:
        gates = Table(show_header=True)
        for name in ("gate", "measured", "bound", "result"):
            gates.add_column(name, justify="left" if name in ("gate", "result") else "right")
        for g in report["gates"]:
            gates.add_row(g["name"], _fmt(g["value"]), f"{g['op']} {_fmt(g['bound'])}",
                          "[green]PASS[/green]" if g["passed"] else "[red]FAIL[/red]")
        console.print(gates)
