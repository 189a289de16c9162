"""Tests of ``ltp-deploy bench``: tiny runs through the CLI on a small BERT's pruned and dense ONNX exports.

Only what a run produces is checked (schema, types, arithmetic, files, errors), never how fast it was: speed
lives in benchmarks, not in unit tests.
"""

import json
import os
from pathlib import Path

import numpy as np
import pytest

from ltp_deploy.bench import BENCH_SCHEMA, SCHEMA_VERSION, compare
from ltp_deploy.bench.timing import _Record
from ltp_deploy.commands.bench import parse_batch_sizes
from ltp_deploy.errors import LtpDeployError
from helpers import run_main as cli

GLUE = Path(os.environ.get("GLUE_DIR") or Path(__file__).resolve().parents[1].parent / "shared/data/glue")


@pytest.fixture(scope="module")
def exports(tiny) -> dict[str, Path]:
    """A small BERT exported twice to ONNX (conftest's ``tiny``): with a threshold spec (drops tokens) and dense."""
    return tiny


@pytest.fixture(scope="module")
def glue() -> Path:
    """The GLUE folder; module-scoped so that a missing folder skips before the exports are made."""
    if not (GLUE / "SST-2" / "dev.tsv").is_file():
        pytest.skip(f"GLUE data folder not found at {GLUE}: set GLUE_DIR to run bench on real SST-2 sentences")
    return GLUE


# ------------------------------------------------------------------------------------------------ the schema

def _schema_key(path: str) -> str:
    """models.model.load_s -> models.*.load_s; results[].other.latency_ms -> results[].*.latency_ms."""
    parts = path.split(".")
    for i in range(len(parts) - 1):
        if parts[i] in ("models", "results[]") and parts[i + 1] in ("model", "other") and i + 2 < len(parts):
            parts[i + 1] = "*"
    return ".".join(parts)


def _walk(value, path=""):
    """Yield (schema key, value) for every field, descending into objects and lists of objects, not maps."""
    if isinstance(value, dict):
        for k, v in value.items():
            child = f"{path}.{k}" if path else k
            key = _schema_key(child)
            yield key, v
            if not BENCH_SCHEMA.get(key, "").startswith("map"):
                yield from _walk(v, child)
    elif isinstance(value, list) and value and isinstance(value[0], dict):
        for item in value:
            yield from _walk(item, f"{path}[]")


_TYPES = {"int": int, "float": float, "str": str, "bool": bool, "object": dict, "map": dict}


def _type_ok(value, declared: str) -> bool:
    for t in declared.split("|"):
        if t == "null" and value is None:
            return True
        if t.startswith("list"):
            inner = t[5:-1] if t.startswith("list[") else None
            if isinstance(value, list) and (inner is None or all(_type_ok(v, inner) for v in value)):
                return True
        elif t in _TYPES and isinstance(value, _TYPES[t]) and not (t in ("int", "float") and isinstance(value, bool)):
            return True
    return False


def check_schema(report: dict, complete: bool) -> None:
    seen = set()
    for key, value in _walk(report):
        assert key in BENCH_SCHEMA, f"field {key} is not documented in BENCH_SCHEMA"
        declared = BENCH_SCHEMA[key].split(":", 1)[0]
        assert _type_ok(value, declared), f"{key} = {value!r} is not {declared}"
        seen.add(key)
    if complete:
        assert set(BENCH_SCHEMA) - seen == set(), "documented fields missing from the report"
    assert report["schema_version"] == SCHEMA_VERSION


# ------------------------------------------------------------------------------------------------ runs

def test_synthetic_seq_len_run(exports, tmp_path, monkeypatch, capsys):
    report_file, plot = tmp_path / "bench.json", tmp_path / "bench.png"
    code, out, err = cli(monkeypatch, capsys, "bench", exports["pruned"], "--seq-len", 8, "--batch-size", "1,2",
                         "--iterations", 2, "--warmup", 1, "--max-examples", 4, "--json", report_file, "--plot", plot)
    assert code == 0, err
    report = json.loads(report_file.read_text())
    check_schema(report, complete=False)
    assert report["data"]["synthetic"] and report["data"]["tokens"]["max"] == 8
    assert [r["batch_size"] for r in report["results"]] == [1, 2]
    assert report["models"]["other"] is None
    for r in report["results"]:
        m = r["model"]
        assert r["other"] is None and r["comparison"] is None
        assert m["iterations"] == 2 and m["sequences"] == 2 * r["batch_size"] and m["mean_tokens"] == 8.0
        assert m["mean_padded_tokens"] == 8.0 and m["padded_tokens"] == m["real_tokens"]  # no padding: synthetic
        assert len(m["kept_tokens_per_layer"]) == exports["layers"] and m["kept_tokens_per_layer"][0] == 8.0
        assert m["flops_reduction"] >= 1.0 and m["gflops_per_sequence"] <= m["dense_gflops_per_sequence"]
        lat = m["latency_ms"]
        assert 0 < lat["min"] <= lat["p10"] <= lat["p50"] <= lat["p90"] <= lat["p99"] <= lat["max"]
    assert report["environment"]["backend"] == "onnxruntime-cpu" and report["environment"]["versions"]["numpy"]
    assert plot.stat().st_size > 1000 and plot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert "model batch   1: p50" in out and f"wrote report {report_file}" in out
    assert not list(tmp_path.glob(".*"))  # no temporary files left behind


def test_duration_limit_and_no_warmup(exports, tmp_path, monkeypatch, capsys):
    report_file = tmp_path / "d.json"
    code, _, err = cli(monkeypatch, capsys, "bench", exports["dense"], "--seq-len", 4, "--batch-size", 1,
                       "--iterations", 0, "--duration", 0.05, "--warmup", 0, "--json", report_file)
    assert code == 0, err
    report = json.loads(report_file.read_text())
    check_schema(report, complete=False)
    m = report["results"][0]["model"]
    assert report["settings"]["duration_s"] == 0.05 and m["iterations"] >= 1 and m["first_call_ms"] is None
    assert m["flops_reduction"] == 1.0 and m["gflops_per_sequence"] == m["executed_gflops_per_sequence"]


def test_sst2_compare_run(glue, exports, tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("GLUE_DIR", str(glue))
    report_file, plot = tmp_path / "ab.json", tmp_path / "ab.png"
    code, out, err = cli(monkeypatch, capsys, "bench", exports["pruned"], "--compare", exports["dense"],
                         "--max-examples", 16, "--batch-size", "1,2", "--iterations", 2, "--warmup", 1,
                         "--json", report_file, "--plot", plot)
    assert code == 0, err
    report = json.loads(report_file.read_text())
    check_schema(report, complete=True)
    assert report["data"]["sequences"] == 16 and report["data"]["source"].endswith("dev.tsv")
    assert report["settings"]["order"] == "dataset" and report["settings"]["sort_by_length"] is False
    assert report["models"]["model"]["pruning"] == "absolute_threshold"
    assert report["models"]["other"]["pruning"] == "dense"
    for r in report["results"]:
        model, other, c = r["model"], r["other"], r["comparison"]
        # Identical batches for both models: the same sequences and real tokens.
        assert model["real_tokens"] == other["real_tokens"] and model["sequences"] == other["sequences"]
        assert other["flops_reduction"] == 1.0 and other["kept_tokens_per_layer"] == [other["mean_tokens"]] * exports["layers"]
        assert model["kept_tokens_per_layer"][-1] < model["mean_tokens"]  # these thresholds do drop tokens
        assert c["pairs"] == 2 and c["speedup"] > 0
        assert c["flops_reduction"] == pytest.approx(model["flops_reduction"], rel=1e-3)  # other is dense
        assert c["efficiency"] == pytest.approx(c["speedup"] / c["flops_reduction"], rel=1e-3)
        assert c["ratio_p10"] <= c["ratio_p50"] <= c["ratio_p90"]
    assert plot.stat().st_size > 1000
    assert "speedup x" in out and "efficiency" in out


def test_compare_alternates_which_model_runs_first(exports, tmp_path, monkeypatch, capsys):
    """Timed pairs run A B, B A, ...: a fixed order hands the second model kernels the first just prepared."""
    from ltp_deploy.bench import timing

    order, real_call = [], timing.timed_call

    def recording(runtime, batch):
        order.append(id(runtime))
        return real_call(runtime, batch)

    monkeypatch.setattr(timing, "timed_call", recording)
    code, _, err = cli(monkeypatch, capsys, "bench", exports["pruned"], "--compare", exports["dense"],
                       "--seq-len", 8, "--batch-size", "2", "--iterations", 4, "--warmup", 1)
    assert code == 0, err
    first, second = order[:2]  # the warm-up pair, in the given order
    assert order[2:] == [first, second, second, first, first, second, second, first]


# ------------------------------------------------------------------------------------------------ bad options

@pytest.mark.parametrize("args,message", [
    (["--batch-size", "0"], "--batch-size '0' must list batch sizes of at least 1"),
    (["--batch-size", "1,x"], "is not a list of integers"),
    (["--iterations", "0"], "--iterations 0 times nothing"),
    (["--seq-len", "8", "--data", "some.tsv"], "either --seq-len"),
    (["--seq-len", "100000"], "exceeds the model's maximum input length of 512"),
    (["--device", "tpu"], "Unknown device 'tpu'"),
    (["--compare", "no/such/dense"], "Model no/such/dense does not exist"),
    (["--plot", "out.svg"], "must end in .png"),
    (["--order", "foo"], "Unknown order 'foo': use dataset"),
    (["--order", "dataset", "--sort-by-length"], "--sort-by-length means --order length"),
])
def test_bad_options_exit_2_with_one_line(exports, args, message, monkeypatch, capsys):
    code, out, err = cli(monkeypatch, capsys, "bench", exports["pruned"], *args)
    assert code == 2
    assert err.startswith("error: ") and err.count("\n") == 1 and message in err, err


def test_missing_model_and_missing_glue(exports, monkeypatch, capsys):
    code, _, err = cli(monkeypatch, capsys, "bench", "no/such/model.onnx")
    assert code == 2 and err.startswith("error: Model no/such/model.onnx does not exist") and err.count("\n") == 1
    monkeypatch.delenv("GLUE_DIR", raising=False)
    code, _, err = cli(monkeypatch, capsys, "bench", exports["pruned"], "--iterations", 1)
    assert code == 2 and "GLUE_DIR is not set" in err and err.count("\n") == 1


# ------------------------------------------------------------------------------------------------ arithmetic

def test_compare_definitions():
    """speedup = median(OTHER) / median(MODEL); efficiency = speedup / (FLOPs OTHER / FLOPs MODEL)."""
    cfg = {"num_layers": 2, "hidden_size": 4, "intermediate_size": 8}
    n = [np.array([6, 6])] * 3
    model = _Record(ms=[1.0, 2.0, 4.0], n_orig=n, kept=[np.array([[6, 3], [6, 3]])] * 3, padded=[(2, 6)] * 3)
    other = _Record(ms=[3.0, 4.0, 4.0], n_orig=n, kept=[np.array([[6, 6], [6, 6]])] * 3, padded=[(2, 6)] * 3)
    c = compare(model, other, cfg, cfg)
    assert c["speedup"] == 2.0  # median 4 / median 2
    assert c["ratio_p50"] == 2.0 and c["ratio_p10"] == pytest.approx(1.2) and c["ratio_p90"] == pytest.approx(2.8)
    from ltp_deploy.flops import sequence_flops

    reduction = sequence_flops(cfg, 6, [6, 6]) / sequence_flops(cfg, 6, [6, 3])
    assert c["flops_reduction"] == round(reduction, 4) and c["efficiency"] == round(2.0 / reduction, 4)


def test_parse_batch_sizes():
    assert parse_batch_sizes("1,8,32") == (1, 8, 32) and parse_batch_sizes("4") == (4,)
    with pytest.raises(LtpDeployError):
        parse_batch_sizes("")
