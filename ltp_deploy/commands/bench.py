"""``ltp-deploy bench MODEL [--compare OTHER]``: time a model on real sentences (the library is ltp_deploy.bench)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from ltp_deploy.commands.options import Data, Overwrite, Task, TextColumn, TextPairColumn, column

HELP = ("Time an exported model on real sentences at their real lengths (default: SST-2 dev from GLUE_DIR): "
        "latency percentiles, throughput, kept tokens and FLOPs per batch size; with --compare, an interleaved "
        "A/B run against another model on identical batches (speedup, FLOPs reduction, efficiency).")
EXAMPLES = """\b
Examples:
  ltp-deploy bench out/sst2-ltp --compare out/sst2-dense --batch-size 1,32 --json bench.json --plot bench.png
  ltp-deploy bench out/sst2-ltp/model.onnx --seq-len 128 --batch-size 8 --duration 10
  ltp-deploy bench out/sst2-ltp --data reviews.tsv --text-column text --order length --threads 4
  ltp-deploy bench out/sst2-ltp --compare out/sst2-optimum --batch-size 1,32   # vs an Optimum ONNX export
"""


def bench(
    model: Annotated[Path, typer.Argument(
        help="Exported graph (.onnx/.xml), its export folder, a dense ONNX folder (Optimum), or a checkpoint.")],
    device: Annotated[str, typer.Option("--device", help="cpu or cuda.")] = "cpu",
    backend: Annotated[Optional[str], typer.Option(
        "--backend", help="onnxruntime, openvino or torch (default: from the file type).")] = None,
    data: Data = None,
    task: Task = None,
    text_column: TextColumn = None,
    text_pair_column: TextPairColumn = None,
    seq_len: Annotated[Optional[int], typer.Option(
        "--seq-len", help="Synthetic batches of exactly N tokens (random ids) instead of real sentences.")] = None,
    batch_size: Annotated[str, typer.Option(
        "--batch-size", "-b", help="Comma-separated batch sizes to time.")] = "1,8,32",
    order: Annotated[Optional[str], typer.Option(
        "--order", help="Batch order: dataset (default: the data's own, what a server sees) or length "
                        "(length-sorted: less padding).")] = None,
    sort_by_length: Annotated[bool, typer.Option("--sort-by-length", hidden=True)] = False,  # = --order length
    warmup: Annotated[int, typer.Option("--warmup", help="Untimed calls per model and batch size.")] = 3,
    iterations: Annotated[Optional[int], typer.Option(
        "--iterations", "-n", help="Timed batches per batch size (default: one pass over the data, at least 10).")
    ] = None,
    duration: Annotated[Optional[float], typer.Option(
        "--duration", help="Seconds of timed runs per batch size (with --iterations: whichever ends first).")] = None,
    threads: Annotated[Optional[int], typer.Option("--threads", help="Intra-op threads (default: runtime's).")] = None,
    precision: Annotated[Optional[str], typer.Option(
        "--precision", help="Compute precision: fp32 (default) or, with openvino, bf16.")] = None,
    hint: Annotated[Optional[str], typer.Option(
        "--hint", help="OpenVINO performance hint: latency (default) or throughput.")] = None,
    compare: Annotated[Optional[Path], typer.Option(
        "--compare", help="A second model run interleaved on the same batches: e.g. the dense export, or "
                          "the Optimum ONNX export (optimum-cli export onnx) of the dense checkpoint.")] = None,
    max_examples: Annotated[Optional[int], typer.Option(
        "--max-examples", help="Use only the first N examples (synthetic: N random sequences, default 256).")] = None,
    json_out: Annotated[Optional[Path], typer.Option("--json", help="Write the full report (JSON) here.")] = None,
    plot: Annotated[Optional[Path], typer.Option("--plot", help="Write a latency plot (PNG) here.")] = None,
    overwrite: Overwrite = False,
) -> None:
    from ltp_deploy.bench import BenchSettings, run_bench, summary_lines
    from ltp_deploy.outputs import check_outputs, write_json
    from ltp_deploy.progress import interactive

    settings = BenchSettings(
        model=model, device=device, backend=backend, data=data, task=task, text_column=column(text_column),
        text_pair_column=column(text_pair_column), seq_len=seq_len, batch_sizes=parse_batch_sizes(batch_size),
        order=_order(order, sort_by_length), warmup=warmup, iterations=iterations, duration=duration, threads=threads,
        compare=compare, max_examples=max_examples, precision=precision, hint=hint,
    )
    if plot is not None and plot.suffix.lower() != ".png":
        from ltp_deploy.errors import LtpDeployError

        raise LtpDeployError(f"Plot file {plot} must end in .png: name it, for example, bench.png.")
    rules = {"inputs": (model, compare, data), "overwrite": overwrite}
    check_outputs([(json_out, "report", "--json"), (plot, "plot", "--plot")], **rules)
    report = run_bench(settings)
    if json_out is not None:
        write_json(json_out, report, **rules)
    if plot is not None:
        from ltp_deploy.bench.plots import plot_latency

        plot_latency(report, plot, **rules)
    if interactive():
        _print_table(report)
    else:
        for line in summary_lines(report):
            print(line)
    for label, path in (("report", json_out), ("plot", plot)):
        if path is not None:
            print(f"wrote {label} {path}")


def _order(order: str | None, sort_by_length: bool) -> str:
    """``--order``, with the old ``--sort-by-length`` flag meaning ``--order length``."""
    if sort_by_length and order not in (None, "length"):
        from ltp_deploy.errors import LtpDeployError

        raise LtpDeployError(f"--sort-by-length means --order length, not --order {order}: give only --order.")
    return "length" if sort_by_length else order or "dataset"


def parse_batch_sizes(text: str) -> tuple[int, ...]:
    """``"1,8,32"`` -> ``(1, 8, 32)``; a bad list raises the one-sentence error."""
    from ltp_deploy.errors import LtpDeployError

    try:
        sizes = tuple(int(part) for part in text.split(",") if part.strip())
    except ValueError:
        raise LtpDeployError(f"--batch-size {text!r} is not a list of integers: write e.g. 1,8,32.") from None
    if not sizes or any(b < 1 for b in sizes):
        raise LtpDeployError(f"--batch-size {text!r} must list batch sizes of at least 1, e.g. 1,8,32.")
    return sizes


def _print_table(report: dict) -> None:
    from rich.console import Console
    from rich.table import Table

    env = report["environment"]
    table = Table(title=f"{env['backend']} on {env['device']}, {env['cpu']} ({report['data']['source']})")
    for name in ("batch", "model", "p50 ms", "p90 ms", "seq/s", "tok/s", "kept (last layer)", "GFLOPs/seq",
                 "FLOPs red.", "speedup", "efficiency"):
        table.add_column(name, justify="left" if name == "model" else "right")
    for r in report["results"]:
        c = r.get("comparison")
        for role in ("model", "other"):
            m = r.get(role)
            if not m:
                continue
            lat = m["latency_ms"]
            first = role == "model"
            table.add_row(
                str(r["batch_size"]) if first else "", f"{role}: {Path(report['models'][role]['path']).name}",
                f"{lat['p50']:.2f}", f"{lat['p90']:.2f}", f"{m['sequences_per_s']:.1f}", f"{m['tokens_per_s']:.0f}",
                f"{m['kept_tokens_per_layer'][-1]:.1f} / {m['mean_tokens']:.1f}", f"{m['gflops_per_sequence']:.3f}",
                f"x{m['flops_reduction']:.2f}",
                f"x{c['speedup']:.2f} ({c['ratio_p10']:.2f}-{c['ratio_p90']:.2f})" if c and first else "",
                f"{c['efficiency']:.2f}" if c and first else "",
            )
    Console().print(table)
