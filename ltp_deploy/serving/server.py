"""The driver side of ``ltp-deploy serve``: start Ray and Serve on this machine, deploy, wait, shut down cleanly.

``start`` checks that ``host:port`` can be bound, brings up a local Ray instance (all its own processes bound to
``127.0.0.1``: ``ingress.LOOPBACK_ENV``), Serve's HTTP proxy on ``host:port`` and the application
(``app.build_app``), and returns once the replicas answer; ``stop`` shuts both down. ``serve_forever`` is what the
command runs: start, print where, wait for Ctrl-C (or SIGTERM), stop.
``write_config`` emits the Serve config file that runs the same application on a Ray cluster (``serve deploy``).
"""

from __future__ import annotations

import errno
import ipaddress
import json
import signal
import socket
import threading
import time
import urllib.request
from dataclasses import asdict
from pathlib import Path

from ltp_deploy.errors import LtpDeployError
from ltp_deploy.runtimes import GRAPH_BACKENDS
from ltp_deploy.serving.app import APP_NAME, IMPORT_PATH, ServeOptions



def check_options(options: ServeOptions, host: str, port: int) -> None:
    """Refuse bad options with one sentence before Ray starts (the replica would only fail in its log)."""
    from ltp_deploy.artifact import open_artifact
    from ltp_deploy.data import get_task
    from ltp_deploy.serving.predictor import OVERLONG

    open_artifact(options.export)
    if options.task:
        get_task(options.task)
    if options.backend not in (None, *GRAPH_BACKENDS):
        raise LtpDeployError(f"--backend must be {' or '.join(GRAPH_BACKENDS)}, got {options.backend!r}.")
    if options.on_overlong not in OVERLONG:
        raise LtpDeployError(f"--on-overlong must be one of {', '.join(OVERLONG)}, got {options.on_overlong!r}.")
    for name, value in {"--replicas": options.replicas, "--max-batch-size": options.max_batch_size,
                        "--max-texts": options.max_texts, "--threads": options.threads or 1}.items():
        if value < 1:
            raise LtpDeployError(f"{name} must be at least 1, got {value}.")
    if not 0 < options.max_body_mb <= 1024:
        raise LtpDeployError(f"--max-body-mb must lie in (0, 1024], got {options.max_body_mb:g}.")
    if not 0 <= options.batch_wait_ms <= 10_000:
        raise LtpDeployError(f"--batch-wait-ms must lie in [0, 10000], got {options.batch_wait_ms}.")
    if not 0 < port < 65536:
        raise LtpDeployError(f"--port must be a TCP port (1-65535), got {port}.")
    if not host:
        raise LtpDeployError("--host is empty: give an address to bind, e.g. 127.0.0.1.")



def start(options: ServeOptions, host: str = "127.0.0.1", port: int = 8000, metrics_port: int | None = None,
          timeout_s: float = 120.0) -> str:
    """Start Ray, Serve and the application; return the base URL once ``/health`` answers.

    Raises:
        LtpDeployError: a bad option, a port that is taken or a host that is not this machine's (before Ray
            starts), Ray's processes off loopback (``ingress.LOOPBACK_ENV`` not set before Ray was imported), or
            no answer within ``timeout_s``.
    """
    import ray
    from ray import serve

    from ltp_deploy.serving.app import build_app

    check_options(options, host, port)
    check_port(host, port)
    ray.init(include_dashboard=False, _node_ip_address="127.0.0.1", _metrics_export_port=metrics_port,
             log_to_driver=False, configure_logging=False)
    try:
        _check_ray_on_loopback()
        serve.start(http_options={"host": host, "port": port})
        serve.run(build_app(asdict(options)), name=APP_NAME, route_prefix="/", blocking=False)
        url = f"http://{'127.0.0.1' if host in ('0.0.0.0', '::') else host}:{port}"
        _wait_healthy(url, timeout_s)
    except BaseException:
        stop()
        raise
    return url


def stop() -> None:
    """Shut Serve and Ray down (safe to call twice)."""
    import ray
    from ray import serve

    if ray.is_initialized():
        try:
            serve.shutdown()
        finally:
            ray.shutdown()


def serve_forever(options: ServeOptions, host: str, port: int, metrics_port: int | None, log) -> None:
    """``ltp-deploy serve``: start, say where, serve until Ctrl-C or SIGTERM, stop (later signals are ignored
    while it stops, so that a second Ctrl-C cannot leave Ray's processes behind)."""
    url = start(options, host, port, metrics_port)
    stopping = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stopping.set())
    metrics = f"; Prometheus metrics at http://127.0.0.1:{metrics_port}/metrics" if metrics_port else ""
    log(f"serving {options.export} at {url}/predict ({options.replicas} replica(s), batches of up to "
        f"{options.max_batch_size}, {options.batch_wait_ms:g} ms wait){metrics}; health at {url}/health; "
        "Ctrl-C stops")
    try:
        while not stopping.wait(0.5):
            pass
        log("stopping")
    finally:
        for sig in (signal.SIGINT, signal.SIGTERM):
            signal.signal(sig, signal.SIG_IGN)
        stop()
    log("stopped")


def check_port(host: str, port: int) -> None:
    """Refuse a ``host:port`` that Serve could not bind, before Ray starts (binding it as uvicorn does, then
    letting go). Raises ``LtpDeployError``: the port is taken, the host is not this machine's, or it needs root."""
    try:
        family, kind, proto, _, address = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM,
                                                             flags=socket.AI_PASSIVE)[0]
    except socket.gaierror:
        raise LtpDeployError(f"--host {host} is not an address or a name this machine resolves: pass an address "
                             "to bind, e.g. 127.0.0.1.") from None
    with socket.socket(family, kind, proto) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind(address)
        except OSError as e:
            if e.errno == errno.EADDRINUSE:
                raise LtpDeployError(f"port {port} on {host} is already in use: stop the other server or pass "
                                     "--port with a free port.") from None
            if e.errno == errno.EADDRNOTAVAIL:
                raise LtpDeployError(f"--host {host} is not an address of this machine: pass one of its "
                                     "addresses, e.g. 127.0.0.1.") from None
            if e.errno == errno.EACCES:
                raise LtpDeployError(f"port {port} needs root privileges on this machine: pass --port 1024 or "
                                     "above.") from None
            raise


def _check_ray_on_loopback() -> None:
    """Ray's own processes must bind loopback (``ingress.LOOPBACK_ENV``); refuse to go on if they do not."""
    import ray

    node_ip = ray.util.get_node_ip_address()
    if not ipaddress.ip_address(node_ip).is_loopback:
        raise LtpDeployError(f"Ray bound its processes to {node_ip}, not to loopback: set "
                             "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER=0 before Ray is imported (ltp-deploy serve does).")


def _wait_healthy(url: str, timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            with urllib.request.urlopen(f"{url}/health", timeout=5) as answer:
                if answer.status == 200:
                    return
        except OSError:
            pass
        if time.monotonic() > deadline:
            raise LtpDeployError(f"The server at {url} did not answer /health within {timeout_s:.0f} s: see Ray's "
                                 "logs under /tmp/ray/session_latest/logs.")
        time.sleep(0.5)


def write_config(path: str | Path, options: ServeOptions, host: str, port: int) -> Path:
    """Write the Serve config file (YAML) that deploys this application on a Ray cluster; return its path."""
    import yaml

    args = {k: v for k, v in asdict(options).items() if v is not None}
    args["export"] = str(Path(options.export).resolve())
    config = {
        "proxy_location": "EveryNode",
        "http_options": {"host": host, "port": port},
        "applications": [{"name": APP_NAME, "route_prefix": "/", "import_path": IMPORT_PATH, "args": args}],
    }
    path = Path(path)
    tmp = path.with_name(path.name + ".partial")
    tmp.write_text("# ltp-deploy serve --write-config: run with `serve run FILE` or `serve deploy FILE`\n"
                   + yaml.safe_dump(json.loads(json.dumps(config)), sort_keys=False))
    tmp.replace(path)
    return path
