"""The Ray Serve application of ``ltp-deploy serve``: one deployment, dynamic batching, JSON over HTTP.

Routes (relative to the route prefix, ``/`` by default):

* ``POST /predict``: ``{"texts": [...]}`` (``requests.parse_predict``) -> ``{"predictions": [...]}``, one answer per
  text (``predictor.Predictor.predict``). Each text enters Ray Serve's batcher (``@serve.batch``) on its own, so
  texts of concurrent requests share one graph call of up to ``max_batch_size`` texts, waiting at most
  ``batch_wait_ms`` for company. A refused request gets its 4xx answer before it reaches the batcher, so it never
  holds up or spoils anyone else's batch.
* ``GET /health``: ``{"status": "ok", ...}`` with the model, runtime and batching settings.

``build_app(args)`` is a Ray Serve application builder: ``ltp-deploy serve`` calls it in process, and the config
that ``serve --write-config`` emits names it (``import_path``), so ``serve run`` / ``serve deploy`` start the same
application on a Ray cluster. Ray is an optional extra: ``pip install ltp-deploy[serve]``.
"""

from __future__ import annotations

import asyncio
from dataclasses import asdict, dataclass, fields

from ray import serve
from starlette.requests import Request
from starlette.responses import JSONResponse

from ltp_deploy.serving.predictor import Encoded, Predictor
from ltp_deploy.serving.requests import BadRequest, error_body, parse_predict

APP_NAME = "ltp-deploy"
IMPORT_PATH = "ltp_deploy.serving.app:build_app"


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
        route = request.url.path.rstrip("/").rsplit("/", 1)[-1]
        if route not in ("predict", "health"):
            return _refuse(BadRequest(404, f"No route {request.url.path!r}: use POST /predict or GET /health."))
        wanted = "POST" if route == "predict" else "GET"
        if request.method != wanted:
            return _refuse(BadRequest(405, f"{request.method} {request.url.path} is not served: use {wanted}."))
        if route == "health":
            return JSONResponse({"status": "ok", "model": self.predictor.describe(),
                                 "batching": {"max_batch_size": self.options.max_batch_size,
                                              "batch_wait_ms": self.options.batch_wait_ms,
                                              "max_texts": self.options.max_texts}})
        try:
            items = parse_predict(await request.body(), self.predictor.pairs, self.options.max_texts)
            encoded = [self.predictor.encode(item) for item in items]
        except BadRequest as e:
            return _refuse(e)
        answers = await asyncio.gather(*(self.batched(e) for e in encoded))
        return JSONResponse({"predictions": list(answers)})


def _refuse(error: BadRequest) -> JSONResponse:
    return JSONResponse(error_body(error), status_code=error.status)


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
