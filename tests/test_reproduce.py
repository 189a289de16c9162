"""``ltp-deploy reproduce`` end to end on a tiny budget: a random BERT with a threshold spec and its dense twin,
16 SST-2 dev sentences, ONNX Runtime fp32, batch 1 and 4. Checks the claims schema, that the rows are the check and
bench reports' figures, that a rerun skips every step, and that a failed check gate shows as failed in the table.
The Optimum column runs only where LTP_OPTIMUM_CLI names an optimum-cli (as in test_peer.py)."""

from __future__ import annotations

import json
import os

import pytest

from conftest import glue_dir, run_process
from ltp_deploy.claims.table import CLAIMS_SCHEMA
from ltp_deploy.spec import PruningSpec

pytestmark = [pytest.mark.slow,
              pytest.mark.skipif(not (glue_dir() / "SST-2" / "dev.tsv").is_file(), reason="no GLUE SST-2 data")]

BATCHES = (1, 4)


@pytest.fixture(scope="module")
def claims(make_bert, tmp_path_factory):
    """The first run: (its process, the run folder, common options)."""
    pruned = make_bert(spec=PruningSpec.threshold([0.0, 0.004, 0.008, 0.012], reference_cls="kept"),
                       name="claims-pruned")
    dense = make_bert(name="claims-dense")
    out = tmp_path_factory.mktemp("claims") / "run"
    options = ["--out", out, "--checkpoints", f"sst2={pruned}", "--dense-checkpoints", f"sst2={dense}", "--runtimes",
               "onnxruntime", "--precisions", "fp32", "--batch-size", ",".join(map(str, BATCHES)), "--warmup", "1",
               "--max-examples", "16", "--optimum-cli", os.environ.get("LTP_OPTIMUM_CLI", "none")]
    return run_process("reproduce", *options, env={"GLUE_DIR": str(glue_dir())}), out, options


def _report(out):
    return json.loads((out / "claims.json").read_text())


def test_schema_and_rows_come_from_the_reports(claims):
    proc, out, _ = claims
    assert proc.returncode == 0, proc.stderr[-2000:]
    report = _report(out)
    documented = {k.split(".", 1)[1] for k in CLAIMS_SCHEMA if k.startswith("rows[].")}
    top = {k for k in CLAIMS_SCHEMA if "." not in k and "[" not in k}
    assert set(report) == top
    assert report["kind"] == "ltp-deploy-claims"
    assert [(r["graph"], r["batch_size"]) for r in report["rows"]] == [(g, b) for g in ("pruned", "dense")
                                                                        for b in BATCHES]
    assert all(set(r) == documented for r in report["rows"])
    assert all(st["status"] == "done" for st in report["steps"])
    task = out / "sst2"
    dense_check = json.loads((task / "check-dense-onnx.json").read_text())
    bench = json.loads((task / "bench-pruned-onnx-vs-dense-onnx.json").read_text())
    for row in report["rows"]:
        assert row["metric_dense"] == dense_check["results"]["graph"]["value"]
        assert row["check_passed"] is True and row["status"] == "ok"
        assert row["commands"] and all(c.startswith("ltp-deploy ") for c in row["commands"])
        assert row["environment"]["cpu"]
        if row["graph"] == "pruned":
            timed = next(r for r in bench["results"] if r["batch_size"] == row["batch_size"])
            assert row["speedup_vs_dense"] == timed["comparison"]["speedup"]
            assert row["flops_reduction"] == timed["model"]["flops_reduction"] > 1.0  # the spec drops tokens
            assert row["efficiency"] == pytest.approx(row["speedup_vs_dense"] / row["flops_reduction"])
            assert row["spread_vs_dense"] == [timed["comparison"]["ratio_p10"], timed["comparison"]["ratio_p90"]]
    md = (out / "claims.md").read_text()
    assert "| sst2 | pruned | onnxruntime | fp32 | 1 |" in md and "quoted, not measured" in md
    for png in ("speedup-vs-flops.png", "metric-vs-speedup.png"):
        assert (out / png).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_rerun_skips_complete_steps(claims):
    proc, out, options = claims
    assert proc.returncode == 0
    before = {p: p.stat().st_mtime_ns for p in (out / "sst2").glob("*.json")}
    again = run_process("reproduce", *options, env={"GLUE_DIR": str(glue_dir())})
    assert again.returncode == 0, again.stderr[-2000:]
    assert {st["status"] for st in _report(out)["steps"]} == {"skipped"}
    assert {p: p.stat().st_mtime_ns for p in before} == before
    old = {(r["graph"], r["batch_size"]): r for r in _report(out)["rows"]}
    rebench = run_process("reproduce", *options, "--rebench", env={"GLUE_DIR": str(glue_dir())})
    assert rebench.returncode == 0, rebench.stderr[-2000:]
    report = _report(out)
    assert {st["name"]: st["status"] for st in report["steps"]} == {
        st["name"]: "done" if "/bench/" in st["name"] else "skipped" for st in report["steps"]}
    for row in report["rows"]:
        before = old[row["graph"], row["batch_size"]]
        assert row["previous"]["speedup_vs_dense"] == before["speedup_vs_dense"]
        within = [row[f"spread_{peer}"][0] <= before[f"speedup_{peer}"] <= row[f"spread_{peer}"][1]
                  for peer in ("vs_dense", "vs_optimum") if row[f"spread_{peer}"]]  # dense vs itself: no spread
        assert row["previous"]["within_spread"] == (all(within) if within else None)


def test_failed_check_is_shown_failed(claims):
    """A changed gate reruns only the checks (the exports and benches are complete), and the failure shows."""
    proc, out, options = claims
    assert proc.returncode == 0
    failing = run_process("reproduce", *options, "--min-metric", "0.999", env={"GLUE_DIR": str(glue_dir())})
    assert failing.returncode == 1
    report = _report(out)
    status = {st["name"]: st["status"] for st in report["steps"]}
    assert status["sst2/check/pruned-onnx"] == "gate-failed" and status["sst2/export/pruned-onnx"] == "skipped"
    assert status["sst2/bench/pruned-onnx-vs-dense-onnx"] == "skipped"
    assert all(r["check_passed"] is False for r in report["rows"])
    md = (out / "claims.md").read_text()
    assert "**FAILED**" in md and "sst2/check/pruned-onnx` gate-failed" in md


@pytest.mark.parametrize("args, words", [
    (["--checkpoints", "sst2"], "is not TASK=PATH"),
    (["--checkpoints", "nosuchtask=."], "nosuchtask"),
    (["--checkpoints", "sst2=/no/such/ckpt"], "does not exist"),
    (["--runtimes", "tensorrt", "--checkpoints", "sst2=."], "choose from onnxruntime, openvino"),
    (["--tasks", "sst2"], "--tasks is for --train"),
    (["--warmup", "-1", "--checkpoints", "sst2=."], "--warmup -1: give an integer of at least 0"),
    ([], "No task to reproduce"),
])
def test_bad_options_are_one_sentence(args, words, tmp_path):
    proc = run_process("reproduce", "--out", tmp_path / "run", *args)
    assert proc.returncode == 2
    assert words in proc.stderr and len(proc.stderr.strip().splitlines()) == 1
    assert not (tmp_path / "run").exists()


def test_an_output_counts_only_after_its_command_ran_to_the_end(tmp_path):
    """A report left by another command, or by a run that was cut off or failed, is not skipped on a rerun."""
    from ltp_deploy.claims.steps import Step

    report = tmp_path / "check.json"
    report.write_text(json.dumps({"kind": "ltp-deploy-check"}))
    step = Step("t/check", ["ltp-deploy", "check", "x"], report, report_kind="ltp-deploy-check",
                log=tmp_path / "check.log")
    for log, complete in [("", False), ("$ ltp-deploy check x\nrunning\n", False),
                          ("$ ltp-deploy check y\n# exit 0\n", False), ("$ ltp-deploy check x\n# exit 2\n", False),
                          ("$ ltp-deploy check x\n...\n# exit 0\n", True), ("$ ltp-deploy check x\n# exit 1\n", True)]:
        step.log.write_text(log)
        assert step.complete() is complete, log
    report.write_text("{")  # a torn report
    assert not step.complete()
