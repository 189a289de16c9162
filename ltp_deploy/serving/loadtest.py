"""``ltp-deploy loadtest``: real texts sent to a running server, one text per request, ``concurrency`` at a time.

Bounded in count (``requests``) and time (``timeout_s`` for the whole run; no new request starts after it), and
sent to loopback addresses only. The report (``LOADTEST_SCHEMA``) gives latency percentiles, throughput, answers by
HTTP status, and dropped requests (sent, never answered: a connection error or a timeout). With a ``Predictor``
(``--verify EXPORT``) every answer is checked against the graph run directly on the same text: the label, the
kept tokens per layer, and the scores within ``SCORE_ATOL``.

Example::

    report = run_loadtest("http://127.0.0.1:8000", texts, concurrency=32, requests=872)
    report["latency_ms"]["p99"], report["throughput"]["requests_per_s"], report["errors"]
"""

from __future__ import annotations

import asyncio
import ipaddress
import json
import time
from urllib.parse import urlparse

import numpy as np

from ltp_deploy.errors import LtpDeployError

SCORE_ATOL = 1e-4  # batched and one-by-one runs of the padding-free graph differ only in float rounding
LOADTEST_SCHEMA = {
    "url": "str: the server's /predict URL",
    "concurrency, requests_planned": "int: the settings",
    "requests_sent, answered, dropped": "int: requests started; answered with any status; sent but never answered",
    "status": "object: HTTP status -> count",
    "errors": "int: answers with a status other than 200, plus dropped requests",
    "wall_s": "float: from the first request to the last answer",
    "latency_ms": "object: p50, p90, p99, mean, max over the answered requests",
    "throughput": "object: requests_per_s and texts_per_s over wall_s (200 answers only)",
    "verify": "object or null: checked, wrong (label, kept tokens or scores differ), first_wrong",
}


def check_loopback(url: str) -> str:
    """The ``/predict`` URL of ``url``; raises unless its host is a loopback address."""
    parsed = urlparse(url)
    host = parsed.hostname or ""
    try:
        loopback = host == "localhost" or ipaddress.ip_address(host).is_loopback
    except ValueError:
        loopback = False
    if parsed.scheme not in ("http", "https") or not loopback:
        raise LtpDeployError(f"loadtest sends load to loopback addresses only (http://127.0.0.1:PORT, "
                             f"http://localhost:PORT, http://[::1]:PORT), not {url!r}: run it on the server's "
                             "machine.")
    base = url.rstrip("/")
    return base if base.endswith("/predict") else base + "/predict"


def run_loadtest(url: str, texts: list, concurrency: int, requests: int, timeout_s: float = 300.0,
                 request_timeout_s: float = 60.0) -> dict:
    """Send ``requests`` one-text requests (cycling over ``texts``: strings, or [text, pair] lists) and report.

    The answers themselves are kept under the report's private key ``_answers`` (index -> prediction) for
    ``verify``."""
    if concurrency < 1 or requests < 1:
        raise LtpDeployError(f"--concurrency and --requests must be at least 1, got {concurrency} and {requests}.")
    if not texts:
        raise LtpDeployError("No texts to send: give a data file with at least one row.")
    predict_url = check_loopback(url)
    results = asyncio.run(_send_all(predict_url, texts, concurrency, requests, timeout_s, request_timeout_s))
    return _report(predict_url, concurrency, requests, results)


async def _send_all(url, texts, concurrency, requests, timeout_s, request_timeout_s) -> list[dict]:
    import aiohttp

    next_index = iter(range(requests))
    deadline = time.monotonic() + timeout_s
    results: list[dict] = []
    timeout = aiohttp.ClientTimeout(total=request_timeout_s)
    connector = aiohttp.TCPConnector(limit=concurrency)

    async def worker(session):
        for i in next_index:
            if time.monotonic() > deadline:
                return
            body = json.dumps({"texts": [texts[i % len(texts)]]})
            start = time.perf_counter()
            record = {"index": i, "start": start}
            try:
                async with session.post(url, data=body, headers={"Content-Type": "application/json"}) as answer:
                    payload = await answer.read()
                    record["status"] = answer.status
                    if answer.status == 200:
                        record["prediction"] = json.loads(payload)["predictions"][0]
            except (aiohttp.ClientError, asyncio.TimeoutError, json.JSONDecodeError, KeyError, IndexError) as e:
                record["dropped"] = type(e).__name__
            record["end"] = time.perf_counter()
            results.append(record)

    async with aiohttp.ClientSession(connector=connector, timeout=timeout) as session:
        await asyncio.gather(*(worker(session) for _ in range(concurrency)))
    return results


def _report(url: str, concurrency: int, planned: int, results: list[dict]) -> dict:
    answered = [r for r in results if "status" in r]
    ok = [r for r in answered if r["status"] == 200]
    status: dict[str, int] = {}
    for r in answered:
        status[str(r["status"])] = status.get(str(r["status"]), 0) + 1
    latencies = np.array([1000 * (r["end"] - r["start"]) for r in answered]) if answered else np.zeros(1)
    wall = (max(r["end"] for r in results) - min(r["start"] for r in results)) if results else 0.0
    dropped = len(results) - len(answered)
    return {
        "url": url, "concurrency": concurrency, "requests_planned": planned, "requests_sent": len(results),
        "answered": len(answered), "dropped": dropped, "status": status,
        "errors": len(answered) - len(ok) + dropped, "wall_s": wall,
        "latency_ms": {f"p{q}": float(np.percentile(latencies, q)) for q in (50, 90, 99)}
        | {"mean": float(latencies.mean()), "max": float(latencies.max())},
        "throughput": {"requests_per_s": len(ok) / wall if wall else 0.0,
                       "texts_per_s": len(ok) / wall if wall else 0.0},
        "verify": None,
        "_answers": {r["index"]: r["prediction"] for r in ok},
    }


def verify(report: dict, texts: list, predictor) -> dict:
    """Check every 200 answer against ``predictor`` (the graph run directly, one text at a time); fills
    ``report["verify"]`` and returns it."""
    from ltp_deploy.serving.requests import Item

    wrong, first = 0, None
    answers = report["_answers"]
    for index, got in sorted(answers.items()):
        text = texts[index % len(texts)]
        item = Item(*text) if isinstance(text, list) else Item(text)
        want = predictor.predict([predictor.encode(item)])[0]
        same = got.get("label_id") == want.get("label_id") and got["kept_tokens"] == want["kept_tokens"]
        values = ("scores", "score")
        same = same and all(np.allclose(got[k], want[k], atol=SCORE_ATOL, rtol=0) for k in values if k in want)
        if not same:
            wrong += 1
            first = first or {"index": index, "server": got, "graph": want}
    report["verify"] = {"checked": len(answers), "wrong": wrong, "first_wrong": first}
    return report["verify"]
