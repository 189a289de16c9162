"""``ltp-deploy serve EXPORT`` (Ray Serve, ``ltp_deploy.serving``) and ``ltp-deploy loadtest URL``."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated, Optional

import typer

from ltp_deploy.commands.options import Data, Overwrite, Task, TextColumn, TextPairColumn, column

HELP = ("Serve an export over HTTP with Ray Serve: POST /predict {\"texts\": [...]} answers labels, scores and "
        "kept tokens per layer; texts of concurrent requests are batched into one graph call; GET /health. Binds "
        "127.0.0.1 unless --host says otherwise; Ctrl-C stops. Needs the serve extra: pip install "
        "'ltp-deploy[serve]'.")
EXAMPLES = """\b
Examples:
  ltp-deploy serve out/sst2-onnx
  ltp-deploy serve out/sst2-ov --backend openvino --threads 2 --max-batch-size 32 --batch-wait-ms 5
  ltp-deploy serve out/mrpc-onnx --task mrpc --on-overlong reject --port 8001
  ltp-deploy serve out/sst2-onnx --replicas 4 --write-config serve.yaml   # then: serve deploy serve.yaml
"""
LOADTEST_HELP = ("Send real texts to a running server (loopback only), one per request, --concurrency at a time: "
                 "p50/p90/p99 latency, throughput, errors and dropped requests; --verify EXPORT checks every answer "
                 "against the graph run directly.")
LOADTEST_EXAMPLES = """\b
Examples:
  ltp-deploy loadtest http://127.0.0.1:8000 --task sst2 --concurrency 32 --requests 872
  ltp-deploy loadtest http://127.0.0.1:8000 --task sst2 --verify out/sst2-onnx --json load.json
"""


def serve(
    export: Annotated[Path, typer.Argument(help="Export folder (ltp-deploy export).")],
    backend: Annotated[Optional[str], typer.Option(
        "--backend", help="onnxruntime or openvino (default: the export's own).")] = None,
    replicas: Annotated[int, typer.Option("--replicas", help="Replicas of the model (one process each).")] = 1,
    threads: Annotated[Optional[int], typer.Option(
        "--threads", help="Intra-op threads per replica (default: the runtime's).")] = None,
    max_batch_size: Annotated[int, typer.Option(
        "--max-batch-size", help="Most texts per graph call (dynamic batching).")] = 32,
    batch_wait_ms: Annotated[float, typer.Option(
        "--batch-wait-ms", help="Longest wait for a batch to fill, in milliseconds.")] = 5.0,
    max_texts: Annotated[int, typer.Option("--max-texts", help="Most texts one request may send (else 413).")] = 64,
    max_body_mb: Annotated[float, typer.Option(
        "--max-body-mb", help="Largest request body in MiB (else 413).")] = 32.0,
    max_length: Annotated[Optional[int], typer.Option(
        "--max-length", help="Tokens per text (default: the model's maximum).")] = None,
    on_overlong: Annotated[str, typer.Option(
        "--on-overlong", help="A longer text is cut ('truncate', flagged in its answer) or refused ('reject', 413).",
    )] = "truncate",
    task: Task = None,
    host: Annotated[str, typer.Option("--host", help="Address to bind (0.0.0.0 exposes it to the network).")] =
    "127.0.0.1",
    port: Annotated[int, typer.Option("--port", help="HTTP port.")] = 8000,
    ingress: Annotated[str, typer.Option(
        "--ingress", help="'proxy' (Ray Serve's HTTP proxy) or 'haproxy' (Ray Serve's HAProxy ingress: about twice "
        "the throughput on 2 cores; HAProxy's stats and metrics ports listen on every interface).")] = "proxy",
    metrics_port: Annotated[Optional[int], typer.Option(
        "--metrics-port", help="Expose Ray's metrics (Serve's request counts and latencies) for Prometheus here.",
    )] = None,
    write_config: Annotated[Optional[Path], typer.Option(
        "--write-config", help="Write the Serve config (YAML) for `serve run` / `serve deploy` on a Ray cluster "
        "and exit.")] = None,
    overwrite: Overwrite = False,
) -> None:
    import os

    from ltp_deploy.outputs import check_output
    from ltp_deploy.serving.ingress import LOOPBACK_ENV, ingress_env

    for key, value in ingress_env(ingress).items():  # before Ray is imported: Serve reads these on import
        os.environ.setdefault(key, value)
    if write_config is None:
        os.environ.update(LOOPBACK_ENV)  # Ray's own processes on 127.0.0.1 (read on import, like the above)
    try:
        from ltp_deploy.serving.app import ServeOptions
        from ltp_deploy.serving.server import check_options, serve_forever, write_config as write
    except ImportError as e:
        from ltp_deploy.errors import LtpDeployError

        raise LtpDeployError(f"serve needs Ray Serve, which is not installed ({e.name}): pip install "
                             "'ltp-deploy[serve]'.") from None
    options = ServeOptions(export=str(export), backend=backend, threads=threads, replicas=replicas,
                           max_batch_size=max_batch_size, batch_wait_ms=batch_wait_ms, max_texts=max_texts,
                           max_length=max_length, on_overlong=on_overlong, task=task, max_body_mb=max_body_mb)
    check_options(options, host, port)
    if write_config is not None:
        check_output(write_config, "report", inputs=(export,), overwrite=overwrite, option="--write-config")
        env = " ".join(f"{k}={v}" for k, v in ingress_env(ingress).items())
        print(f"wrote {write(write_config, options, host, port)}: run it with `serve deploy {write_config}` on a "
              f"Ray cluster whose nodes can read the export" + (f", started with {env}" if env else ""))
        return
    serve_forever(options, host, port, metrics_port, log=lambda line: print(line, file=sys.stderr, flush=True))


def loadtest(
    url: Annotated[str, typer.Argument(help="The server's base URL, e.g. http://127.0.0.1:8000 (loopback only).")],
    data: Data = None,
    task: Task = None,
    text_column: TextColumn = None,
    text_pair_column: TextPairColumn = None,
    concurrency: Annotated[int, typer.Option("--concurrency", "-c", help="Requests in flight at once.")] = 32,
    requests: Annotated[Optional[int], typer.Option(
        "--requests", "-n", help="Requests to send, one text each (default: one per row of the data).")] = None,
    timeout_s: Annotated[float, typer.Option(
        "--timeout-s", help="No request starts after this many seconds.")] = 300.0,
    verify: Annotated[Optional[Path], typer.Option(
        "--verify", help="Check every answer against this export run directly (same backend and task).")] = None,
    backend: Annotated[Optional[str], typer.Option(
        "--backend", help="Backend of --verify (default: the export's own).")] = None,
    json_out: Annotated[Optional[Path], typer.Option("--json", help="Write the report (JSON) here.")] = None,
    overwrite: Overwrite = False,
) -> None:
    from ltp_deploy.data import load_examples
    from ltp_deploy.errors import LtpDeployError
    from ltp_deploy.outputs import check_output, write_json
    from ltp_deploy.serving.loadtest import check_loopback, run_loadtest
    from ltp_deploy.serving.loadtest import verify as check_answers

    check_loopback(url)
    if json_out is not None:
        check_output(json_out, "report", overwrite=overwrite, option="--json")
    if requests is not None and not 1 <= requests <= 1_000_000:
        raise LtpDeployError(f"--requests must lie in [1, 1000000], got {requests}.")
    if not 1 <= concurrency <= 1024:
        raise LtpDeployError(f"--concurrency must lie in [1, 1024], got {concurrency}.")
    examples = load_examples(data, task, text_column=column(text_column), text_pair_column=column(text_pair_column))
    pairs = examples.text_pairs
    texts = list(examples.texts) if pairs is None else [[a, b] for a, b in zip(examples.texts, pairs)]
    predictor = None
    if verify is not None:
        from ltp_deploy.serving.predictor import Predictor

        predictor = Predictor(verify, backend=backend, task=task)  # loaded first: a bad path fails before any load
    report = run_loadtest(url, texts, concurrency, requests or len(texts), timeout_s)
    if report["answered"] == 0 and report["dropped"]:
        raise LtpDeployError(f"Nothing answered at {url} (all {report['dropped']} requests dropped: no server "
                             "listening, or none within --timeout-s): start it with `ltp-deploy serve EXPORT`, or "
                             "check the URL.")
    if predictor is not None:
        check_answers(report, texts, predictor)
    report.pop("_answers")
    lat, v = report["latency_ms"], report["verify"]
    print(f"{report['requests_sent']} requests at concurrency {concurrency}: {report['throughput']['requests_per_s']:.1f}"
          f" requests/s, latency p50 {lat['p50']:.1f} ms, p90 {lat['p90']:.1f} ms, p99 {lat['p99']:.1f} ms; "
          f"errors {report['errors']} (dropped {report['dropped']}; status {json.dumps(report['status'])})"
          + (f"; verified {v['checked']} answers against {verify}: {v['wrong']} wrong" if v else ""))
    if json_out is not None:
        write_json(json_out, report)
    if report["errors"] or (v and v["wrong"]):
        raise typer.Exit(1)
