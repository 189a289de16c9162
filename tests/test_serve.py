"""``ltp-deploy serve`` and ``loadtest``: a real Ray Serve instance on loopback, started by the command itself.

The answers are checked against the graph run directly with ONNX Runtime and the tokenizer (not through the
serving code); bad requests must get 4xx while good traffic, sent at the same time, is all answered; hostile
bodies (deep nesting, huge numbers, lone surrogates, invisible texts, 20 MB texts, 40 MB bodies) get a 4xx JSON
answer and the next good request is still answered; no process of the server listens off loopback; Ctrl-C must
stop the server with exit 0 and free its port.
"""

from __future__ import annotations

import ipaddress
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path

import numpy as np
import pytest

from ltp_deploy.serving.requests import BadRequest

from helpers import run_main

SERVE_EXTRA = "Ray Serve is an optional extra: pip install 'ltp-deploy[serve]'"
MAX_TEXTS = 8
MAX_LENGTH = 48


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _post(url: str, body: bytes | str, method: str = "POST") -> tuple[int, dict]:
    data = body.encode() if isinstance(body, str) else body
    request = urllib.request.Request(url, data=data if method == "POST" else None, method=method,
                                     headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=60) as answer:
            return answer.status, json.loads(answer.read())
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read())


@pytest.fixture(scope="module")
def export(tiny) -> Path:
    return tiny["pruned"]


@pytest.fixture(scope="module")
def sentences(glue) -> list[str]:
    from ltp_deploy.data import load_glue

    return load_glue("sst2", "dev", glue).texts[:64]


@pytest.fixture(scope="module", params=["proxy", "haproxy"])
def server(export, request):
    """``ltp-deploy serve`` in its own process (over-long texts refused), behind each ingress; yields (url, process,
    ingress)."""
    pytest.importorskip("ray.serve", reason=SERVE_EXTRA)
    port = _free_port()
    cmd = [sys.executable, "-m", "ltp_deploy.cli", "serve", str(export), "--port", str(port), "--threads", "1",
           "--ingress", request.param,
           "--max-texts", str(MAX_TEXTS), "--max-length", str(MAX_LENGTH), "--on-overlong", "reject",
           "--batch-wait-ms", "10"]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env={**os.environ, "CI": "true", "RAY_USAGE_STATS_ENABLED": "0"})
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 240
    while True:
        try:
            if _post(f"{url}/health", b"", method="GET")[0] == 200:
                break
        except (OSError, ValueError):  # not listening yet, or an ingress page that is not ours (HAProxy's 503)
            pass
        if proc.poll() is not None or time.monotonic() > deadline:
            proc.kill()
            pytest.fail(f"serve did not come up: {proc.communicate()[1][-2000:]}")
        time.sleep(1)
    yield url, proc, request.param
    if proc.poll() is None:
        proc.kill()
        proc.wait()


def _graph_answers(export: Path, texts: list[str]) -> tuple[np.ndarray, np.ndarray]:
    """Labels and kept counts of the graph itself, one text at a time (ONNX Runtime, the export's tokenizer)."""
    import onnxruntime as ort
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(str(export))
    session = ort.InferenceSession(str(export / "model.onnx"), providers=["CPUExecutionProvider"])
    labels, kept = [], []
    for text in texts:
        enc = tokenizer([text], truncation=True, max_length=MAX_LENGTH, return_tensors="np")
        feed = {i.name: enc[i.name].astype(np.int64) for i in session.get_inputs()}
        logits, counts = session.run(["logits", "kept_counts"], feed)
        labels.append(int(np.argmax(logits[0])))
        kept.append(counts[0])
    return np.array(labels), np.array(kept)


@pytest.mark.slow
def test_answers_equal_the_graph(server, export, sentences):
    url, *_ = server
    status, body = _post(f"{url}/predict", json.dumps({"texts": sentences[:MAX_TEXTS]}))
    assert status == 200, body
    labels, kept = _graph_answers(export, sentences)
    answers = body["predictions"]
    assert [a["label_id"] for a in answers] == labels[:MAX_TEXTS].tolist()
    assert [a["kept_tokens"] for a in answers] == kept[:MAX_TEXTS].tolist()
    assert all(abs(sum(a["scores"]) - 1) < 1e-5 and not a["truncated"] for a in answers)
    assert any(a["kept_tokens"][-1] < a["tokens"] for a in answers)  # the graph prunes: decisions are compared

    # Concurrent one-text requests (dynamically batched together) give the same answers.
    from ltp_deploy.serving.loadtest import run_loadtest

    report = run_loadtest(url, sentences, concurrency=16, requests=len(sentences))
    assert report["errors"] == 0 and report["dropped"] == 0 and report["status"] == {"200": len(sentences)}
    got = report["_answers"]
    assert [got[i]["label_id"] for i in range(len(sentences))] == labels.tolist()
    assert [got[i]["kept_tokens"] for i in range(len(sentences))] == kept.tolist()


BAD_REQUESTS = [
    ("POST", "/predict", "{not json", 400, "not valid JSON"),
    ("POST", "/predict", "[1, 2]", 400, "needs a 'texts' field"),
    ("POST", "/predict", '{"text": ["a"]}', 400, "needs a 'texts' field"),
    ("POST", "/predict", '{"texts": "a film"}', 400, "must be a list"),
    ("POST", "/predict", '{"texts": []}', 400, "is empty"),
    ("POST", "/predict", '{"texts": ["fine", 3]}', 400, "texts[1] must be a string"),
    ("POST", "/predict", '{"texts": ["fine", "   "]}', 400, "texts[1] is empty"),
    ("POST", "/predict", json.dumps({"texts": ["a film"] * (MAX_TEXTS + 1)}), 413, "split the request"),
    ("POST", "/predict", json.dumps({"texts": ["word " * 200]}), 413, "more than the model's"),
    ("GET", "/predict", "", 405, "use POST"),
    ("PUT", "/health", "", 405, "use GET or HEAD"),
    ("POST", "/nowhere", "{}", 404, "No route"),
]


@pytest.mark.slow
def test_bad_requests_get_4xx_while_good_traffic_goes_on(server, sentences):
    from ltp_deploy.serving.loadtest import run_loadtest

    url, *_ = server
    result = {}
    good = threading.Thread(target=lambda: result.update(run_loadtest(url, sentences, concurrency=4, requests=96)))
    good.start()
    for method, route, body, want, fragment in BAD_REQUESTS:
        status, answer = _post(f"{url}{route}", body, method=method)
        assert status == want and fragment in answer["error"], (route, body[:40], status, answer)
        assert "\n" not in answer["error"]
    good.join(timeout=300)
    assert result["errors"] == 0 and result["dropped"] == 0 and result["answered"] == 96
    status, health = _post(f"{url}/health", b"", method="GET")
    assert status == 200 and health["status"] == "ok" and health["model"]["pruning"] == "absolute_threshold"


@pytest.mark.slow
def test_loadtest_command_verifies_every_answer(server, export, glue, tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("GLUE_DIR", str(glue))
    url, *_ = server
    report_file = tmp_path / "load.json"
    code, out, err = run_main(monkeypatch, capsys, "loadtest", url, "--task", "sst2", "--requests", 40,
                              "--concurrency", 8, "--verify", export, "--json", report_file)
    assert code == 0, err
    report = json.loads(report_file.read_text())
    assert report["verify"]["checked"] == 40 and report["verify"]["wrong"] == 0
    assert report["latency_ms"]["p50"] <= report["latency_ms"]["p99"] and report["throughput"]["requests_per_s"] > 0
    assert "40 requests at concurrency 8" in out


# Bodies meant to break a server, each with the 4xx its answer must have and a fragment of the sentence. Every one
# is followed by a good request, which must still be answered.
DIGITS = "9" * 5000
HOSTILE_BODIES = {
    "deep-nesting": ("[" * 100_000, 400, "deeper than 32 levels"),
    "deep-nesting-beside-texts": ('{"texts": ["a"], "x": ' + "[" * 40 + "]" * 40 + "}", 400, "deeper than 32"),
    "huge-integer-as-text": ('{"texts": [' + DIGITS + "]}", 400, "number of 5000 digits"),
    "huge-integer-elsewhere": ('{"texts": ["a film"], "n": -' + DIGITS + "}", 400, "number of 5000 digits"),
    "lone-surrogate": ('{"texts": ["fine", "bad \\ud800 text"]}', 400, "texts[1] is not valid Unicode"),
    "invisible-text": (json.dumps({"texts": ["\u200b\u200c\u200d\u2060\ufeff \t\n"]}), 400, "texts[0] is empty"),
    "bool-text": ('{"texts": [true]}', 400, "texts[0] must be a string, got bool"),
    "null-text": ('{"texts": ["a", null]}', 400, "texts[1] must be a string, got NoneType"),
    "object-text": ('{"texts": [{"text": "a"}]}', 400, "texts[0] must be a string, got dict"),
    "number-text": ('{"texts": [1.5]}', 400, "texts[0] must be a string, got float"),
    # Cut to max_length * 64 characters before it is tokenised (in full it takes ~13 s): refused at once.
    "20MB-text": (json.dumps({"texts": ["word " * 4_000_000]}), 413, "at least"),
    "40MB-body": ('{"texts": ["' + "a" * (40 * 2**20) + '"]}', 413, "larger than this server's 32 MiB"),
}


@pytest.mark.parametrize("case", list(HOSTILE_BODIES))
@pytest.mark.slow
def test_hostile_body_gets_4xx_json_and_the_server_goes_on(server, case):
    url, *_ = server
    body, want, fragment = HOSTILE_BODIES[case]
    started = time.monotonic()
    status, answer = _post(f"{url}/predict", body)
    took = time.monotonic() - started
    assert (status, answer.get("status")) == (want, want) and fragment in answer["error"], (status, answer)
    assert set(answer) == {"error", "status"} and "\n" not in answer["error"]
    assert took < 6, f"{case} took {took:.1f} s to refuse"  # a 20 MB text tokenised in full: ~13 s
    status, good = _post(f"{url}/predict", json.dumps({"texts": ["a gripping film"]}))
    assert status == 200 and len(good["predictions"]) == 1, good


@pytest.mark.slow
def test_huge_requests_do_not_hold_up_the_others(server):
    """Short requests sent while three 20 MB requests are in flight are each answered within seconds (a 20 MB text
    tokenised in full on the replica's event loop would hold each of them up for as long as it takes, ~13 s)."""
    url, *_ = server
    body, *_ = HOSTILE_BODIES["20MB-text"]
    huge = [threading.Thread(target=_post, args=(f"{url}/predict", body)) for _ in range(3)]
    for thread in huge:
        thread.start()
    statuses, waits = [], []
    for i in range(10):
        started = time.monotonic()
        statuses.append(_post(f"{url}/predict", json.dumps({"texts": [f"film number {i}"]}))[0])
        waits.append(time.monotonic() - started)
    for thread in huge:
        thread.join(timeout=120)
    assert statuses == [200] * 10 and max(waits) < 6, waits


@pytest.mark.slow
def test_head_health_answers_200(server):
    url, *_ = server
    request = urllib.request.Request(f"{url}/health", method="HEAD")
    with urllib.request.urlopen(request, timeout=60) as answer:
        assert answer.status == 200 and answer.read() == b""


def _is_loopback(ip: str) -> bool:
    address = ipaddress.ip_address(ip.split("%")[0])
    mapped = getattr(address, "ipv4_mapped", None)  # "::ffff:127.0.0.1": a dual-stack socket bound to 127.0.0.1
    return (mapped or address).is_loopback


# HAProxy's stats page and Prometheus frontend are written as ``bind *:8404`` / ``bind :9101`` in Ray's
# ray/serve/_private/haproxy_templates.py, with no option to bind one address: the one known exception, and the
# reason ``--ingress haproxy`` is opt-in.
HAPROXY_ALL_INTERFACES = {("haproxy", 8404), ("haproxy", 9101)}


@pytest.mark.slow
def test_no_process_of_the_server_listens_off_loopback(server):
    import psutil

    url, proc, ingress = server
    root = psutil.Process(proc.pid)
    listening, exposed = set(), set()
    for process in [root, *root.children(recursive=True)]:
        try:
            sockets = process.net_connections(kind="inet")
            name = process.name()
        except psutil.NoSuchProcess:  # a worker that exited meanwhile
            continue
        for s in sockets:
            if s.status == psutil.CONN_LISTEN:
                listening.add((name, s.laddr.port))
                if not _is_loopback(s.laddr.ip):
                    exposed.add((name, s.laddr.port))
    assert ("gcs_server" in {name for name, _ in listening} and any(name == "raylet" for name, _ in listening)
            and int(url.rsplit(":", 1)[1]) in {port for _, port in listening})  # the tree was seen whole
    allowed = HAPROXY_ALL_INTERFACES if ingress == "haproxy" else set()
    assert exposed <= allowed, f"listening off loopback: {sorted(exposed - allowed)}"


def test_serve_refuses_a_busy_port_before_starting_ray(export, monkeypatch, capsys):
    pytest.importorskip("ray.serve", reason=SERVE_EXTRA)
    import ray

    monkeypatch.setenv("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")  # what the command sets, undone after the test
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        code, _, err = run_main(monkeypatch, capsys, "serve", export, "--port", port)
    assert code == 2 and f"port {port} on 127.0.0.1 is already in use" in err and "--port" in err
    assert len(err.strip().splitlines()) == 1 and not ray.is_initialized()


@pytest.mark.slow
def test_ctrl_c_stops_the_server(server):
    url, proc, _ = server
    proc.send_signal(signal.SIGINT)
    _, stderr = proc.communicate(timeout=120)
    assert proc.returncode == 0, stderr[-2000:]
    assert "stopping" in stderr and "stopped" in stderr
    with pytest.raises(OSError):
        _post(f"{url}/health", b"", method="GET")


# ------------------------------------------------------------------------------------------- without Ray

def test_predictor_truncates_or_refuses_overlong_texts(export):
    from ltp_deploy.serving.predictor import Predictor
    from ltp_deploy.serving.requests import Item

    long_text = "a long and winding review " * 20
    cut = Predictor(export, max_length=16)
    encoded = cut.encode(Item(long_text))
    assert encoded.truncated and len(encoded.input_ids) == 16
    answer = cut.predict([encoded, cut.encode(Item("short"))])
    assert answer[0]["truncated"] and answer[0]["tokens"] == 16 and not answer[1]["truncated"]
    with pytest.raises(BadRequest) as e:
        Predictor(export, max_length=16, on_overlong="reject").encode(Item(long_text))
    assert e.value.status == 413


def test_predictor_cuts_huge_texts_before_tokenising(export, sentences):
    from ltp_deploy.serving.predictor import CHARS_PER_TOKEN, Predictor
    from ltp_deploy.serving.requests import Item

    predictor = Predictor(export, max_length=16)
    bound = 16 * CHARS_PER_TOKEN
    tokenizer, seen = predictor.classifier.tokenizer, []
    predictor.classifier.tokenizer = lambda text, pair=None, **kw: seen.append((len(text), len(pair or ""))) or \
        tokenizer(text, pair, **kw)
    review = " ".join(sentences)  # real text, several times the bound: cut, and answered as if tokenised in full
    assert len(review) > 2 * bound
    for item in (Item(review), Item(review, review[::-1]), Item("short", review)):
        encoded = predictor.encode(item)
        full = tokenizer(item.text, item.pair, truncation=True, max_length=16)
        assert encoded.input_ids == tuple(full["input_ids"]) and encoded.truncated
    huge = predictor.encode(Item("word " * 4_000_000))  # 20 MB
    assert huge.truncated and len(huge.input_ids) == 16
    assert max(max(lengths) for lengths in seen) == bound
    blank_run = predictor.encode(Item(" " * (bound + 10) + "late words"))  # cut where tokenising would not cut
    assert blank_run.truncated and len(blank_run.input_ids) == 2
    with pytest.raises(BadRequest) as e:
        Predictor(export, max_length=16, on_overlong="reject").encode(Item(" " * (bound + 10) + "late words"))
    assert e.value.status == 413 and f"more than {bound} characters" in e.value.message


@pytest.mark.parametrize("url", ["http://10.0.0.1:8000", "http://example.com", "ftp://127.0.0.1:8000"])
def test_loadtest_refuses_addresses_off_this_machine(url, monkeypatch, capsys):
    code, _, err = run_main(monkeypatch, capsys, "loadtest", url, "--task", "sst2")
    assert code == 2 and "loopback addresses only" in err and len(err.strip().splitlines()) == 1


def test_loadtest_against_no_server_is_one_sentence(glue, tmp_path, monkeypatch, capsys):
    import socket

    with socket.socket() as s:  # a port nothing listens on: bound, never listened to, during the run
        s.bind(("127.0.0.1", 0))
        url = f"http://127.0.0.1:{s.getsockname()[1]}"
        code, _, err = run_main(monkeypatch, capsys, "loadtest", url, "--task", "sst2", "--requests", 5,
                                "--json", tmp_path / "load.json")
    assert code == 2 and len(err.strip().splitlines()) == 1, err
    assert f"Nothing answered at {url} (all 5 requests dropped" in err and not (tmp_path / "load.json").exists()


@pytest.mark.parametrize("args, fragment", [
    (["--on-overlong", "cut"], "--on-overlong must be one of"),
    (["--replicas", "0"], "--replicas must be at least 1"),
    (["--port", "70000"], "--port must be a TCP port"),
    (["--backend", "torch"], "--backend must be onnxruntime or openvino"),
    (["--task", "nope"], "Unknown task"),
    (["--ingress", "nginx"], "--ingress must be one of"),
    (["--max-body-mb", "0"], "--max-body-mb must lie in"),
    (["--host", "198.51.100.7"], "--host 198.51.100.7 is not an address of this machine"),
])
def test_serve_refuses_bad_options_before_starting(export, args, fragment, monkeypatch, capsys):
    pytest.importorskip("ray.serve", reason=SERVE_EXTRA)
    monkeypatch.setenv("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")  # what the command sets, undone after the test
    code, _, err = run_main(monkeypatch, capsys, "serve", export, *args)
    assert code == 2 and fragment in err and len(err.strip().splitlines()) == 1


def test_write_config_names_the_application(export, tmp_path, monkeypatch, capsys):
    pytest.importorskip("ray.serve", reason=SERVE_EXTRA)
    import yaml

    config = tmp_path / "serve.yaml"
    code, out, err = run_main(monkeypatch, capsys, "serve", export, "--replicas", 3, "--task", "sst2",
                              "--write-config", config)
    assert code == 0, err
    written = yaml.safe_load(config.read_text())
    application = written["applications"][0]
    assert application["import_path"] == "ltp_deploy.serving.app:build_app"
    assert application["args"]["replicas"] == 3 and Path(application["args"]["export"]).is_absolute()
    assert written["http_options"] == {"host": "127.0.0.1", "port": 8000}
    from ltp_deploy.serving.app import build_app

    assert build_app(application["args"]) is not None  # the builder takes exactly these args
