"""``ltp-deploy profile MODEL [MODEL ...]``: where each graph's time goes, operator by operator."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

HELP = ("Profile real batches on ONNX Runtime or OpenVINO with the runtime's own profiler (ONNX Runtime's trace, "
        "OpenVINO's PERF_COUNT): time per operator type and kernel, and how much of the run the counters explain.")
EXAMPLES = """\b
Examples:
  ltp-deploy profile out/sst2-onnx-int8 out/sst2-dense-onnx-int8 --task sst2 --batch-size 32 --threads 2
  ltp-deploy profile out/sst2-ov-int8 --backend openvino --task sst2 --batch-size 1 --batches 50 --json prof.json
"""


def profile(
    models: Annotated[list[Path], typer.Argument(metavar="MODEL", help="Export folders, dense ONNX folders or .onnx/.xml graphs.")],
    backend: Annotated[Optional[str], typer.Option(
        "--backend", help="onnxruntime or openvino (default: openvino for .xml, else onnxruntime).")] = None,
    task: Annotated[Optional[str], typer.Option("--task", help="Profile the task's dev sentences (default sst2).")] = None,
    data: Annotated[Optional[Path], typer.Option("--data", help="A task-layout TSV instead of the task's dev.")] = None,
    batch_size: Annotated[int, typer.Option("--batch-size", help="Sentences per call, in dataset order.")] = 32,
    batches: Annotated[int, typer.Option("--batches", help="Calls profiled (after 2 warm-up calls).")] = 4,
    threads: Annotated[Optional[int], typer.Option("--threads", help="Intra-op threads.")] = None,
    json_out: Annotated[Optional[Path], typer.Option("--json", help="Write the profiles as JSON.")] = None,
) -> None:
    from ltp_deploy.bench import describe_model
    from ltp_deploy.tokenizer import load_tokenizer
    from ltp_deploy.data import batches as index_batches
    from ltp_deploy.data import encode, load_examples
    from ltp_deploy.environment import library_versions
    from ltp_deploy.errors import LtpDeployError
    from ltp_deploy.outputs import check_output, write_json
    from ltp_deploy.runtimes.profile import PROFILE_SCHEMA_VERSION, profile_graph, summary_lines

    if batch_size < 1 or batches < 1 or (threads is not None and threads < 1):
        raise LtpDeployError("--batch-size, --batches and --threads must be at least 1: fix the option.")
    if json_out is not None:
        check_output(json_out, "report", inputs=models)
    examples = load_examples(data, task or (None if data else "sst2")).take(batch_size * batches)
    if len(examples) < batch_size * batches:
        raise LtpDeployError(f"The data holds {len(examples)} examples, fewer than --batch-size x --batches = "
                             f"{batch_size * batches}: lower one of them.")
    reports = []
    for path in models:
        info = describe_model(path, backend)
        tokenizer = load_tokenizer(info.folder)
        feeds = [encode(tokenizer, examples, info.max_length, indices=idx)
                 for idx in index_batches(examples, batch_size, sort_by_length=False)]
        report = profile_graph(path, feeds, backend=backend, threads=threads)
        reports.append(report)
        print("\n".join(summary_lines(report)))
    if json_out is not None:
        write_json(json_out, {"schema": PROFILE_SCHEMA_VERSION, "data": examples.source,
                              "threads": threads, "profiles": reports, "versions": library_versions()},
                   inputs=models)
