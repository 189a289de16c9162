"""The Ray Serve application of ``ltp-deploy serve``: one deployment, dynamic batching, JSON over HTTP.

Routes (relative to the route prefix, ``/`` by default):

* ``POST /predict``: ``{"texts": [...]}`` (``requests.parse_predict``) -> ``{"predictions": [...]}``, one answer per
  text (``predictor.Predictor.predict``). Each text enters Ray Serve's batcher (``@serve.batch``) on its own, so
  texts of concurrent requests share one graph call of up to ``max_batch_size`` texts, waiting at most
  ``batch_wait_ms`` for company. A refused request gets its 4xx answer before it reaches the batcher, so it never
  holds up or spoils anyone else's batch.
* ``GET /health`` (or ``HEAD``): ``{"status": "ok", ...}`` with the model, runtime and batching settings.

Every refusal is a JSON ``{"error": sentence, "status": code}`` (``requests.error_body``): 400 for a body that breaks
the request rules (``requests.parse_predict``), 404/405 for a wrong route or method, 413 for a body over
``max_body_mb`` (``_read_body``), too many texts, or an over-long text
under ``on_overlong="reject"``; an unexpected fault is a 500 in the same shape, logged by the replica. Parsing and
tokenising run in a worker thread and the graph in another, so the replica's event loop only moves bytes: one
huge or slow request cannot hold up the others.

``build_app(args)`` is a Ray Serve application builder: ``ltp-deploy serve`` calls it in process, and the config
that ``serve --write-config`` emits names it (``import_path``), so ``serve run`` / ``serve deploy`` start the same
application on a Ray cluster. Ray is an optional extra: ``pip install ltp-deploy[serve]``.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import asdict, dataclass, fields

from ray import serve
from starlette.requests import Request
from starlette.responses import JSONResponse

from ltp_deploy.serving.predictor import Encoded, Predictor
from ltp_deploy.serving.requests import BadRequest, error_body, parse_predict

APP_NAME = "ltp-deploy"
IMPORT_PATH = "ltp_deploy.serving.app:build_app"
ROUTES = {"predict": ("POST",), "health": ("GET", "HEAD")}
DRAIN_FACTOR = 4  # a body over the limit is read (and dropped) up to this many times the limit: see _read_body
logger = logging.getLogger("ray.serve")


@dataclass(frozen=True)
class ServeOptions:
    """What one replica needs (the ``args`` of ``build_app`` and of the written config)."""

    export: str
    backend: str | None = None
    threads: int | None = None
    replicas: int = 1
    max_batch_size: int = 32
    batch_wait_ms: float = 5.0
    max_texts: int = 64
    max_length: int | None = None
    on_overlong: str = "truncate"
    task: str | None = None
    max_body_mb: float = 32.0  # a larger request body is refused (413)

    @classmethod
    def from_args(cls, args: dict) -> ServeOptions:
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(args) - known)
        if unknown:
            raise ValueError(f"unknown ltp-deploy serve option {unknown[0]!r}: use {', '.join(sorted(known))}")
        return cls(**args)


@serve.deployment(name="PrunedClassifier")
class PredictServer:
    """One replica: the export's runtime and tokenizer (``Predictor``) behind Ray Serve's batcher."""

    def __init__(self, options: dict):
        _keep_replica_grpc_on_loopback()  # before Serve starts that server, which it does once this returns
        self.options = ServeOptions.from_args(options)
        o = self.options
        self.predictor = Predictor(o.export, backend=o.backend, threads=o.threads, max_length=o.max_length,
                                   on_overlong=o.on_overlong, task=o.task)
        self.batched.set_max_batch_size(o.max_batch_size)
        self.batched.set_batch_wait_timeout_s(o.batch_wait_ms / 1000.0)

    @serve.batch(max_batch_size=32, batch_wait_timeout_s=0.005)
    async def batched(self, items: list[Encoded]) -> list[dict]:
        # In a worker thread: the runtime releases the GIL, so the replica goes on parsing and tokenising requests.
        return await asyncio.to_thread(self.predictor.predict, items)

    async def __call__(self, request: Request) -> JSONResponse:
        """Answer one HTTP request (the routes and refusals of the module docstring); never raises."""
        route = request.url.path.rstrip("/").rsplit("/", 1)[-1]
        if route not in ROUTES:
            return _refuse(BadRequest(404, f"No route {request.url.path!r}: use POST /predict or GET /health."))
        if request.method not in ROUTES[route]:
            allowed = " or ".join(ROUTES[route])
            return _refuse(BadRequest(405, f"{request.method} {request.url.path} is not served: use {allowed}."),
                           headers={"Allow": ", ".join(ROUTES[route])})
        if route == "health":
            return JSONResponse({"status": "ok", "model": self.predictor.describe(),
                                 "batching": {"max_batch_size": self.options.max_batch_size,
                                              "batch_wait_ms": self.options.batch_wait_ms,
                                              "max_texts": self.options.max_texts}})
        try:
            body = await _read_body(request, int(self.options.max_body_mb * 2**20))
            encoded = await asyncio.to_thread(self._encode, body)
            answers = await asyncio.gather(*(self.batched(e) for e in encoded))
        except BadRequest as e:
            return _refuse(e)
        except Exception as e:  # noqa: BLE001 - a fault of ours: logged, and answered in the documented shape
            logger.exception("POST /predict failed")
            return _refuse(BadRequest(500, f"The server failed on this request ({type(e).__name__}): see the "
                                           "replica's log, and report it if it recurs."))
        return JSONResponse({"predictions": list(answers)})

    def _encode(self, body: bytes) -> list[Encoded]:
        """Parse and tokenise a ``/predict`` body (in a worker thread). Raises ``BadRequest``."""
        items = parse_predict(body, self.predictor.pairs, self.options.max_texts)
        return [self.predictor.encode(item) for item in items]


async def _read_body(request: Request, limit: int) -> bytes:
    """The request's body; ``BadRequest`` (413) for one of more than ``limit`` bytes. A larger body is still read to
    its end (and dropped) so that the client, which sends it all before it reads the answer, gets the 413 rather
    than a reset connection; past ``DRAIN_FACTOR * limit`` bytes (declared or received) the server stops reading."""
    too_big = BadRequest(413, f"The request body is larger than this server's {limit / 2**20:g} MiB: send fewer "
                              "or shorter texts per request.")
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > DRAIN_FACTOR * limit:
        raise too_big
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > DRAIN_FACTOR * limit:
            raise too_big
        if size <= limit:
            chunks.append(chunk)
    if size > limit:
        raise too_big
    return b"".join(chunks)


def _keep_replica_grpc_on_loopback() -> None:
    """Bind the replica's inter-deployment gRPC server to 127.0.0.1 when this Ray node's address is loopback
    (``ltp-deploy serve``, ``ingress.LOOPBACK_ENV``); on a cluster, leave it as Ray has it.

    Workaround: Ray Serve binds that server to ``[::]:0``, every interface, written into
    ``ray/serve/_private/replica.py`` with no option to change it. Its clients reach it at the node's address, so on
    a loopback node 127.0.0.1 serves them all. If Ray renames the helper this does nothing, and ``test_serve``'s
    loopback test fails.
    """
    import ipaddress

    import ray
    from ray.serve._private import replica

    bind = getattr(replica, "add_port_to_grpc_server", None)
    if bind is None or getattr(bind, "loopback_only", False):
        return
    if not ipaddress.ip_address(ray.util.get_node_ip_address()).is_loopback:
        return

    def bind_loopback(server, address: str):
        return bind(server, "127.0.0.1:0" if address == "[::]:0" else address)

    bind_loopback.loopback_only = True
    replica.add_port_to_grpc_server = bind_loopback


def _refuse(error: BadRequest, headers: dict | None = None) -> JSONResponse:
    return JSONResponse(error_body(error), status_code=error.status, headers=headers)


def build_app(args: dict):
    """Ray Serve application builder: ``args`` are ``ServeOptions`` fields (``export`` required)."""
    o = ServeOptions.from_args(dict(args))
    # One CPU per replica is a scheduling token (replicas fit the machine's cores); the runtime's own threads are
    # set by ``threads``.
    # Ray Serve's default of 5 requests in flight per replica would cap every batch at 5 texts and leave the rest
    # in the proxy's retry loop (measured: 9 requests/s at concurrency 32, against 85 at concurrency 4); a replica
    # takes enough requests to fill ``max_batch_size`` twice over, one filling while the other runs.
    return PredictServer.options(num_replicas=o.replicas, ray_actor_options={"num_cpus": 1},
                                 max_ongoing_requests=max(2 * o.max_batch_size, 8)).bind(asdict(o))
