"""``ltp-deploy reproduce`` end to end on a tiny budget: a random BERT with a threshold spec and its dense twin,
16 SST-2 dev sentences, ONNX Runtime fp32, batch 1 and 4. Checks the claims schema, that the rows are the check and
bench reports' figures, that a rerun skips every step, and that a failed check gate shows as failed in the table.
The Optimum column runs only where LTP_OPTIMUM_CLI names an optimum-cli (as in test_peer.py)."""

from __future__ import annotations

import json
import os

import pytest

from helpers import glue_dir, run_process
from ltp_deploy.claims.table import CLAIMS_SCHEMA
from ltp_deploy.spec import PruningSpec

pytestmark = [pytest.mark.skipif(not (glue_dir() / "SST-2" / "dev.tsv").is_file(), reason="no GLUE SST-2 data")]

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


@pytest.mark.slow
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


@pytest.mark.slow
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


@pytest.mark.slow
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


def test_a_changed_source_or_a_remade_input_runs_the_step_again(tmp_path):
    """A retrained checkpoint (newer than the step's log) makes its export stale, and a step whose input was
    remade in this run runs again, even though its own output and log are complete."""
    import sys

    from ltp_deploy.claims.steps import Step, run_steps

    ckpt = tmp_path / "ckpt"
    ckpt.mkdir()
    (ckpt / "model.safetensors").write_text("weights")

    def writer(name):
        out = tmp_path / name
        return Step(name, [sys.executable, "-c", f"open({str(out)!r}, 'w').write('x')"], out, sources=[ckpt])

    first = [writer("export"), writer("bench")]
    first[1].needs = ["export"]
    run_steps(first, tmp_path / "logs", log=lambda line: None)
    assert [s.status for s in first] == ["done", "done"]
    again = [writer("export"), writer("bench")]
    again[1].needs = ["export"]
    run_steps(again, tmp_path / "logs", log=lambda line: None)
    assert [s.status for s in again] == ["skipped", "skipped"]
    earlier = (ckpt / "model.safetensors").stat().st_mtime - 10
    os.utime(tmp_path / "logs" / "export.log", (earlier, earlier))  # the checkpoint was retrained since
    export = writer("export")
    retrained = [export, Step("bench", again[1].argv, tmp_path / "bench", needs=["export"])]  # no sources itself
    run_steps(retrained, tmp_path / "logs", log=lambda line: None)
    assert [s.status for s in retrained] == ["done", "done"]
    broken = [Step("export", [sys.executable, "-c", "raise SystemExit(2)"], tmp_path / "none"),
              Step("bench", again[1].argv, tmp_path / "bench", needs=["export"])]  # its output is still there
    run_steps(broken, tmp_path / "logs", log=lambda line: None)
    assert [s.status for s in broken] == ["failed", "blocked"]


@pytest.mark.slow
def test_a_failed_export_never_shows_an_earlier_runs_figures(claims):
    """When a graph's export fails on a rerun, the reports an earlier run left for it are stale: its rows show no
    figures and name the failure."""
    from pathlib import Path

    from ltp_deploy.claims.plan import ClaimsSettings, plan
    from ltp_deploy.claims.table import claims_report

    proc, out, options = claims
    assert proc.returncode == 0
    assert (out / "sst2" / "check-pruned-onnx.json").is_file()  # what the earlier run left
    ckpt = Path(options[options.index("--checkpoints") + 1].split("=", 1)[1])
    settings = ClaimsSettings(out=out, checkpoints={"sst2": ckpt}, runtimes=("onnxruntime",), precisions=("fp32",),
                              batch_sizes=BATCHES)
    steps = plan(settings)
    for st in steps:
        if st.name == "sst2/export/pruned-onnx":
            st.status = "failed"
        elif st.name.startswith(("sst2/check/pruned-onnx", "sst2/bench/pruned-onnx")):
            st.status = "blocked"
    rows = claims_report(settings, steps, "reproduce")["rows"]
    pruned = [r for r in rows if r["graph"] == "pruned"]
    assert pruned and all(r["metric_graph"] is None and r["speedup_vs_dense"] is None and r["p50_ms"] is None
                          and "sst2/export/pruned-onnx failed" in r["status"] for r in pruned)
    dense = [r for r in rows if r["graph"] == "dense"]
    assert all(r["metric_graph"] is not None and r["status"] == "ok" for r in dense)


def test_int8_peers_are_planned_and_tabled(tmp_path):
    """With an optimum-cli and INT8, each runtime gets its Optimum INT8 peer (made, checked, timed against Optimum's
    fp32 graph), every INT8 graph is timed against the peer of its runtime, and the table gains the peer's rows
    and a 'vs Optimum INT8' column (a plan only: the commands are not run here)."""
    import sys
    from pathlib import Path

    from ltp_deploy.claims.plan import ClaimsSettings, plan
    from ltp_deploy.claims.table import claims_report, markdown

    settings = ClaimsSettings(out=tmp_path, checkpoints={"sst2": Path("ckpt")}, runtimes=("onnxruntime", "openvino"),
                              precisions=("fp32", "int8"), batch_sizes=(1, 32), optimum_cli="optimum-cli")
    steps = {st.name: st for st in plan(settings)}
    task = tmp_path / "sst2"
    assert steps["sst2/optimum-int8-onnxruntime"].argv == [
        "optimum-cli", "onnxruntime", "quantize", "--onnx_model", str(task / "optimum"), "--avx2", "-o",
        str(task / "optimum-int8-onnxruntime")]
    assert steps["sst2/optimum-int8-openvino"].argv[:3] == [sys.executable, "-m", "ltp_deploy.claims.peers"]
    for runtime, graph in (("onnxruntime", "model_quantized.onnx"), ("openvino", "model.xml")):
        peer = f"optimum-int8-{runtime}"
        assert steps[f"sst2/{peer}"].needs == ["sst2/optimum"]
        assert f"sst2/check/{peer}" in steps and f"sst2/bench/{peer}-vs-optimum" in steps
        target = "onnx" if runtime == "onnxruntime" else "openvino"
        for name in (f"pruned-{target}-int8", f"dense-{target}-int8"):
            bench = steps[f"sst2/bench/{name}-vs-{peer}"]
            assert bench.argv[bench.argv.index("--compare") + 1] == str(task / peer / graph)
            assert f"sst2/{peer}" in bench.needs
        assert not any(n.startswith(f"sst2/bench/pruned-{target}-vs-optimum-int8") for n in steps), "fp32: no peer"
    rows = claims_report(settings, list(steps.values()), "reproduce")["rows"]
    assert [(r["runtime"], r["batch_size"]) for r in rows if r["graph"] == "optimum"] == [
        (rt, b) for rt in ("onnxruntime", "openvino") for b in (1, 32)]
    assert all(r["precision"] == "int8" for r in rows if r["graph"] == "optimum")
    assert "vs Optimum INT8" in markdown(claims_report(settings, list(steps.values()), "reproduce"))
