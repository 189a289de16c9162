"""The whole user journey, as the README's main command runs it: ``scripts/demo.sh`` on the real MiniLM and SST-2.

train (a subset sized for minutes) -> export ONNX and OpenVINO (dense and pruned) -> ``check`` on the full SST-2
dev set -> ``bench --compare`` dense vs pruned -> summary. Its figures are printed (``pytest -s``) for the record;
the assertions are about what the journey promises, not about particular numbers: every gate passes, the graphs
agree with the reference, the model learned the task and really prunes, the benchmark measured both models.

Set ``DEMO_EXAMPLES`` / ``DEMO_STEPS`` to shrink the budget; ``LTP_SKIP_JOURNEY=1`` skips it.
"""

from __future__ import annotations

import json
import os
import subprocess

import pytest

from helpers import REPO

TARGETS = ("onnx", "openvino")
pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def journey(glue, minilm_dir, tmp_path_factory):
    if os.environ.get("LTP_SKIP_JOURNEY"):
        pytest.skip("LTP_SKIP_JOURNEY is set: the user journey (scripts/demo.sh, about 15 minutes) was not run")
    out = tmp_path_factory.mktemp("journey")
    env = {**os.environ, "CI": "true", "GLUE_DIR": str(glue), "DEMO_DIR": str(out)}
    run = subprocess.run(["bash", str(REPO / "scripts" / "demo.sh")], capture_output=True, text=True, env=env,
                         timeout=3600, check=False, cwd=REPO)
    print(run.stdout[-6000:])
    return run, out


def test_journey_runs_to_a_summary(journey):
    run, out = journey
    assert run.returncode == 0, f"scripts/demo.sh exited {run.returncode}:\n{run.stderr[-4000:]}"
    assert "summary" in run.stdout and all(f"{t:8s} check PASS" in run.stdout for t in TARGETS)
    for name in ("ckpt/model.safetensors", "ckpt/pruning_spec.json", "ckpt-dense/model.safetensors",
                 "pruned-onnx/model.onnx", "dense-onnx/model.onnx", "pruned-openvino/model.xml",
                 "dense-openvino/model.xml", "bench-onnx.png", "bench-openvino.png", "check-onnx.xml"):
        assert (out / name).is_file(), f"the journey did not write {name}"


@pytest.mark.parametrize("target", TARGETS)
def test_journey_graph_is_faithful_and_prunes(journey, target):
    _, out = journey
    check = json.loads((out / f"check-{target}.json").read_text())
    assert check["passed"] and all(g["passed"] for g in check["gates"])
    graph, ref = check["results"]["graph"], check["results"]["reference"]
    agreement = check["agreement"]
    # a spec learned by `train` keeps CLS in the reference too, so every dev sentence is compared
    assert agreement["reference_cls_pruned"] == 0 and agreement["compared"] == check["data"]["examples"]
    assert agreement["decision_mismatch_rate"] <= 0.01 and agreement["predictions"] >= 0.99
    assert abs(graph["value"] - ref["value"]) <= 0.01
    assert graph["value"] >= 0.75, f"the journey's pruned model scores {graph['value']:.3f} on SST-2: it did not learn"
    assert graph["flops_reduction"] > 1.2, "the learned thresholds barely prune"
    assert graph["mean_kept_per_layer"][-1] < graph["mean_kept_per_layer"][0]


@pytest.mark.parametrize("target", TARGETS)
def test_journey_benchmark_compares_both_models(journey, target):
    _, out = journey
    bench = json.loads((out / f"bench-{target}.json").read_text())
    assert [r["batch_size"] for r in bench["results"]] == [1, 32]
    for r in bench["results"]:
        c = r["comparison"]
        assert c["pairs"] > 0 and c["speedup"] > 0 and c["ratio_p10"] <= c["ratio_p50"] <= c["ratio_p90"]
        assert c["flops_reduction"] > 1.2


def test_readme_python_quickstart_runs_as_written(journey, tmp_path, monkeypatch):
    """The README's ``# quickstart`` block, unchanged, on the export the journey made (its runs/demo/pruned-onnx)."""
    import re

    run, out = journey
    assert run.returncode == 0
    (block,) = re.findall(r"```python\n(# quickstart\n.*?)```", (REPO / "README.md").read_text(), re.S)
    (tmp_path / "runs").mkdir()
    (tmp_path / "runs" / "demo").symlink_to(out, target_is_directory=True)
    monkeypatch.chdir(tmp_path)
    exec(compile(block, "README.md#quickstart", "exec"), {})


@pytest.mark.parametrize("target", TARGETS)
def test_load_pipeline_and_the_bare_graph_agree_on_dev(journey, glue, target):
    """``load``, ``transformers.pipeline`` over ``PrunedModelForSequenceClassification`` and the graph run directly
    in its runtime's own session (no ltp-deploy code between) give the same labels on 200 SST-2 dev sentences."""
    import numpy as np
    from transformers import AutoTokenizer, pipeline

    import ltp_deploy
    from ltp_deploy.data import load_glue

    _, out = journey
    folder = out / f"pruned-{target}"
    texts = load_glue("sst2", "dev", glue_dir=glue).texts[:200]
    by_load = [p.label_id for p in ltp_deploy.load(folder, threads=2)(texts)]
    model = ltp_deploy.PrunedModelForSequenceClassification.from_pretrained(folder)
    answers = pipeline("text-classification", model=model, tokenizer=model.tokenizer)(texts, batch_size=16)
    by_pipeline = [model.config.label2id[a["label"]] for a in answers]
    tokenizer = AutoTokenizer.from_pretrained(str(folder))
    by_graph = []
    for text in texts:  # one sentence per call: no padding, so any runtime's graph sees exactly the tokens
        enc = tokenizer(text, return_tensors="np", truncation=True, max_length=64)
        feeds = {k: v.astype(np.int64) for k, v in enc.items()}
        by_graph.append(int(np.argmax(_bare_logits(folder, target, feeds))))
    assert by_load == by_pipeline == by_graph
    assert 0.2 < np.mean(by_load) < 0.8  # both classes occur: the comparison is not vacuous


_SESSIONS: dict = {}


def _bare_logits(folder, target, feeds):
    key = (folder, target)
    if key not in _SESSIONS:
        if target == "onnx":
            import onnxruntime as ort

            _SESSIONS[key] = ort.InferenceSession(str(folder / "model.onnx"), providers=["CPUExecutionProvider"])
        else:
            import openvino as ov

            _SESSIONS[key] = ov.Core().compile_model(str(folder / "model.xml"), "CPU",
                                                     {"INFERENCE_PRECISION_HINT": "f32"})
    session = _SESSIONS[key]
    if target == "onnx":
        names = {i.name for i in session.get_inputs()}
        return session.run(["logits"], {k: v for k, v in feeds.items() if k in names})[0][0]
    names = {n for i in session.inputs for n in i.get_names()}
    return session({k: v for k, v in feeds.items() if k in names})["logits"][0]
