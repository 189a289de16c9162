"""``ltp-deploy serve`` and ``loadtest``: a real Ray Serve instance on loopback, started by the command itself.

The answers are checked against the graph run directly with ONNX Runtime and the tokenizer (not through the
serving code); bad requests must get 4xx while good traffic, sent at the same time, is all answered; Ctrl-C must
stop the server with exit 0 and free its port.
"""

from __future__ import annotations

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

from ltp_deploy.serving.requests import BadRequest, parse_predict

from conftest import run_main

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
def export(make_bert, tmp_path_factory) -> Path:
    from ltp_deploy.checkpoint import load_checkpoint
    from ltp_deploy.exporters.onnx import export_onnx
    from ltp_deploy.spec import PruningSpec

    ckpt = load_checkpoint(make_bert(name="serve-bert"), spec=PruningSpec.threshold([0.0, 0.004, 0.006, 0.008]))
    out = tmp_path_factory.mktemp("serve") / "export"
    export_onnx(ckpt, out)
    return out


@pytest.fixture(scope="module")
def sentences(glue) -> list[str]:
    from ltp_deploy.data import load_glue

    return load_glue("sst2", "dev", glue).texts[:64]


@pytest.fixture(scope="module", params=["proxy", "haproxy"])
def server(export, request):
    """``ltp-deploy serve`` in its own process (over-long texts refused), behind each ingress; yields (url, process)."""
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
    yield url, proc
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


def test_answers_equal_the_graph(server, export, sentences):
    url, _ = server
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
    ("POST", "/nowhere", "{}", 404, "No route"),
]


def test_bad_requests_get_4xx_while_good_traffic_goes_on(server, sentences):
    from ltp_deploy.serving.loadtest import run_loadtest

    url, _ = server
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


def test_loadtest_command_verifies_every_answer(server, export, glue, tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("GLUE_DIR", str(glue))
    url, _ = server
    report_file = tmp_path / "load.json"
    code, out, err = run_main(monkeypatch, capsys, "loadtest", url, "--task", "sst2", "--requests", 40,
                              "--concurrency", 8, "--verify", export, "--json", report_file)
    assert code == 0, err
    report = json.loads(report_file.read_text())
    assert report["verify"]["checked"] == 40 and report["verify"]["wrong"] == 0
    assert report["latency_ms"]["p50"] <= report["latency_ms"]["p99"] and report["throughput"]["requests_per_s"] > 0
    assert "40 requests at concurrency 8" in out


def test_ctrl_c_stops_the_server(server):
    url, proc = server
    proc.send_signal(signal.SIGINT)
    _, stderr = proc.communicate(timeout=120)
    assert proc.returncode == 0, stderr[-2000:]
    assert "stopping" in stderr and "stopped" in stderr
    with pytest.raises(OSError):
        _post(f"{url}/health", b"", method="GET")


# ------------------------------------------------------------------------------------------- without Ray

@pytest.mark.parametrize("body, pairs, fragment", [
    (b"\xff", False, "not valid JSON"),
    (b'{"texts": [["a", "b"]]}', False, "must be a string"),
    (b'{"texts": ["a"]}', True, "pair of strings"),
    (b'{"texts": [["a", ""]]}', True, "is empty"),
])
def test_request_rules(body, pairs, fragment):
    with pytest.raises(BadRequest) as e:
        parse_predict(body, pairs=pairs, max_texts=4)
    assert e.value.status == 400 and fragment in e.value.message
    assert parse_predict(b'{"texts": [["a", "b"]]}', pairs=True, max_texts=4)[0].pair == "b"


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


@pytest.mark.parametrize("url", ["http://10.0.0.1:8000", "http://example.com", "ftp://127.0.0.1:8000"])
def test_loadtest_refuses_addresses_off_this_machine(url, monkeypatch, capsys):
    code, _, err = run_main(monkeypatch, capsys, "loadtest", url, "--task", "sst2")
    assert code == 2 and "loopback addresses only" in err and len(err.strip().splitlines()) == 1


@pytest.mark.parametrize("args, fragment", [
    (["--on-overlong", "cut"], "--on-overlong must be one of"),
    (["--replicas", "0"], "--replicas must be at least 1"),
    (["--port", "70000"], "--port must be a TCP port"),
    (["--backend", "torch"], "--backend must be onnxruntime or openvino"),
    (["--task", "nope"], "Unknown task"),
    (["--ingress", "nginx"], "--ingress must be one of"),
])
def test_serve_refuses_bad_options_before_starting(export, args, fragment, monkeypatch, capsys):
    pytest.importorskip("ray.serve", reason=SERVE_EXTRA)
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
