"""``ltp-deploy calibrate`` and ``ltp-deploy sweep`` on real SST-2 sentences with small models.

The classifier is the small random BERT of ``make_bert`` (sharpened attention, so thresholds really drop tokens):
its accuracy is meaningless, but FLOPs, kept tokens and the search behave as with a trained model.
"""

from __future__ import annotations

import json

import pytest
import torch

from ltp_deploy.evaluation import EncodedData, evaluate, predict
from ltp_deploy.calibration.families import family
from ltp_deploy.calibration.search import TOLERANCE, search
from ltp_deploy.checkpoint import METADATA_FILE, load_checkpoint
from ltp_deploy.data import load_glue
from ltp_deploy.errors import LtpDeployError
from ltp_deploy.spec import PruningSpec, ltp_keep_rates
from helpers import run_main as cli


@pytest.fixture(scope="module")
def bert_dir(make_bert):
    return make_bert(name="calib-bert", seed=3)


@pytest.fixture()
def glue_env(glue, monkeypatch):
    monkeypatch.setenv("GLUE_DIR", str(glue))
    return glue


# ------------------------------------------------------------------------------------------------ families

def test_families():
    thr = family("absolute_threshold")
    assert thr.spec(0.0, 6) is None
    assert thr.spec(0.012, 6, n_ref=64).thresholds == pytest.approx((0.0, 0.002, 0.004, 0.006, 0.008, 1e4))
    assert thr.spec(0.012, 6, n_ref=64).n_ref == 64
    topk = family("topk")
    assert topk.value(0.7) == pytest.approx(0.3)
    assert topk.spec(0.7, 12).keep_rates == pytest.approx(ltp_keep_rates(0.3, 12))
    with pytest.raises(LtpDeployError, match="Unknown --mode"):
        family("random")


def test_the_last_layer_drop_is_free(bert_dir, glue):
    """The threshold family's last layer keeps only CLS: fewer FLOPs, the same logits as the dense model."""
    ckpt = load_checkpoint(bert_dir)
    data = EncodedData.build(ckpt.tokenizer(), load_glue("sst2", "dev", glue).take(64), 64)
    spec = family("absolute_threshold").spec(1e-9, ckpt.config.num_layers)  # only the last layer drops
    dense_logits, _ = predict(ckpt.model.with_spec(None), data)
    logits, kept = predict(ckpt.model.with_spec(spec), data)
    assert (kept[:, -1] == 1).all() and (kept[:, :-1] == data.lengths[:, None]).all()
    assert abs(logits - dense_logits).max() < 1e-5
    assert evaluate(ckpt.model.with_spec(spec), data).flops_reduction > 1.05


# ------------------------------------------------------------------------------------------------ calibrate

def test_search_meets_a_flops_target_on_real_sentences(bert_dir, glue):
    ckpt = load_checkpoint(bert_dir)
    data = EncodedData.build(ckpt.tokenizer(), load_glue("sst2", "train", glue).subset(300, seed=0), 64)
    for target in (1.3, 1.8):
        result = search(ckpt.model, data, "absolute_threshold", target_flops_reduction=target)
        assert result.met and abs(result.calibration.flops_reduction / target - 1) <= TOLERANCE
        # the spec really gives that reduction when evaluated again
        again = evaluate(ckpt.model.with_spec(result.spec), data).flops_reduction
        assert again == pytest.approx(result.calibration.flops_reduction)
        assert result.spec.thresholds[0] == 0.0 and list(result.spec.thresholds) == sorted(result.spec.thresholds)


def test_search_on_an_ltp_roberta_folder(make_ltp, glue):
    ckpt = load_checkpoint(make_ltp(name="calib-ltp"))  # RoBERTa, BPE tokenizer, its own LTP spec (ignored)
    data = EncodedData.build(ckpt.tokenizer(), load_glue("sst2", "train", glue).subset(200, seed=0), 64)
    result = search(ckpt.model, data, "absolute_threshold", target_flops_reduction=1.3)
    assert result.met and result.dense_calibration.flops_reduction == 1.0
    assert abs(result.calibration.flops_reduction / 1.3 - 1) <= TOLERANCE


def test_calibrate_command_writes_the_spec_and_keeps_the_weights(bert_dir, glue_env, tmp_path, monkeypatch,
                                                                 capsys):
    out = tmp_path / "cal"
    code, stdout, stderr = cli(monkeypatch, capsys, "calibrate", bert_dir, "--task", "sst2",
                               "--target-flops-reduction", 1.5, "--calibration-examples", 300,
                               "--max-eval-examples", 100, "--max-length", 64, "-o", out)
    assert code == 0, stderr
    assert "within 1%: met" in stdout and f"wrote {out}" in stdout
    calibrated, original = load_checkpoint(out), load_checkpoint(bert_dir)
    assert calibrated.spec.mode == "absolute_threshold" and calibrated.spec.source["method"] == "ltp-deploy calibrate"
    for (name, a), b in zip(calibrated.model.state_dict().items(), original.model.state_dict().values()):
        assert torch.equal(a, b), name
    meta = json.loads((out / METADATA_FILE).read_text())
    assert meta["met_on_calibration"] and meta["calibration"]["examples"] == 300
    assert abs(meta["calibration"]["pruned"]["flops_reduction"] / 1.5 - 1) <= TOLERANCE
    assert meta["dev"]["examples"] == 100 and meta["dev"]["flops_reduction"] > 1.2
    assert meta["dense"]["dev"]["flops_reduction"] == 1.0


def test_topk_mode_and_metric_drop_budget(bert_dir, glue):
    ckpt = load_checkpoint(bert_dir)
    data = EncodedData.build(ckpt.tokenizer(), load_glue("sst2", "train", glue).subset(200, seed=0), 64)
    result = search(ckpt.model, data, "topk", target_flops_reduction=1.1)
    assert result.met and result.spec.mode == "topk"
    assert result.spec.keep_rates[:3] == (1.0, 1.0, 1.0)  # LTP's schedule keeps the first 3 layers whole
    budget = search(ckpt.model, data, "absolute_threshold", max_metric_drop=2.0)
    assert budget.metric_drop_points <= 2.0 + 1e-9
    tried = [t for t in budget.trials if 100 * (budget.dense_calibration.value - t.evaluation.value) <= 2.0]
    assert budget.calibration.flops_reduction == max(t.evaluation.flops_reduction for t in tried)
    assert search(ckpt.model, data, "absolute_threshold", max_metric_drop=0.0).metric_drop_points <= 0.0


def test_rank_bins_family_reaches_a_target(bert_dir, glue):
    """ToP's rule with chosen gates: layers 1 .. L - 2 keep a fraction of their alive tokens, the last only CLS."""
    gates = family("rank_bins").spec(0.5, 4).bin_gates
    assert gates[0] is None and gates[1] == gates[2] == (1,) * 10 + (0,) * 10 and gates[3] == (0,) * 20
    ckpt = load_checkpoint(bert_dir)
    data = EncodedData.build(ckpt.tokenizer(), load_glue("sst2", "train", glue).subset(200, seed=0), 64)
    result = search(ckpt.model, data, "rank_bins", target_flops_reduction=1.5)
    assert result.met and result.spec.mode == "rank_bins"
    assert abs(result.calibration.flops_reduction / 1.5 - 1) <= TOLERANCE


@pytest.mark.parametrize("args, message", [
    ([], "Give exactly one of --target-flops-reduction and --max-metric-drop"),
    (["--target-flops-reduction", 1.5, "--max-metric-drop", 1], "Give exactly one of"),
    (["--target-flops-reduction", 0.9], "--target-flops-reduction must be above 1.0"),
    (["--target-flops-reduction", 1.0], "--target-flops-reduction must be above 1.0"),
    (["--max-metric-drop", -1], "--max-metric-drop must be zero or more"),
    (["--target-flops-reduction", 1.5, "--calibration-examples", 0], "--calibration-examples must be at least 1"),
    (["--target-flops-reduction", 1.5, "--task", "nope"], "Unknown task 'nope'"),
])
def test_bad_calibrate_options_exit_2_with_one_line(bert_dir, tmp_path, monkeypatch, capsys, args, message):
    out = tmp_path / "never"
    code, _, err = cli(monkeypatch, capsys, "calibrate", bert_dir, "--task", "sst2", "-o", out, *args)
    assert code == 2 and err.startswith("error: ") and message in err and len(err.strip().splitlines()) == 1
    assert list(tmp_path.iterdir()) == []


def test_unreachable_target_and_untrained_head_write_nothing(bert_dir, minilm_dir, glue_env, tmp_path, monkeypatch,
                                                            capsys):
    code, _, err = cli(monkeypatch, capsys, "calibrate", bert_dir, "--task", "sst2", "--mode", "topk",
                       "--target-flops-reduction", 5, "--calibration-examples", 50, "-o", tmp_path / "o")
    assert code == 2 and "reaches at most" in err and len(err.strip().splitlines()) == 1
    code, _, err = cli(monkeypatch, capsys, "calibrate", minilm_dir, "--task", "sst2",
                       "--target-flops-reduction", 1.5, "-o", tmp_path / "o")
    assert code == 2 and "no trained classification head" in err
    assert list(tmp_path.iterdir()) == []


# ------------------------------------------------------------------------------------------------ sweep

def test_sweep_json_has_the_dense_point_and_rising_flops(make_bert, glue_env, tmp_path, monkeypatch, capsys):
    spec = PruningSpec.threshold([0.0, 0.002, 0.004, 0.006])
    folder = make_bert(spec=spec, name="sweep-bert", seed=3)
    code, _, stderr = cli(monkeypatch, capsys, "sweep", folder, "--task", "sst2", "--points", 5,
                               "--max-eval-examples", 120, "--json", tmp_path / "s.json", "--plot", tmp_path / "s.png")
    assert code == 0, stderr
    report = json.loads((tmp_path / "s.json").read_text())
    points = report["points"]
    assert points[0]["dense"] and points[0]["flops_reduction"] == 1.0 and points[0]["spec"] is None
    family_points = [p for p in points if p["kind"] in ("dense", "family")]
    assert len(family_points) == 5
    flops = [p["flops_reduction"] for p in family_points]
    assert all(b >= a - 0.02 for a, b in zip(flops, flops[1:])) and flops[-1] > 1.5  # monotone, up to ~3x
    assert [p["kind"] for p in points][-1] == "checkpoint" and points[-1]["spec"]["thresholds"] == list(spec.thresholds)
    assert (tmp_path / "s.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["s.json", "s.png"]  # no temporary files left


def test_sweep_topk(bert_dir, glue_env, tmp_path, monkeypatch, capsys):
    code, _, stderr = cli(monkeypatch, capsys, "sweep", bert_dir, "--task", "sst2", "--mode", "topk", "--points", 3,
                          "--max-eval-examples", 40, "--json", tmp_path / "t.json")
    assert code == 0, stderr
    points = json.loads((tmp_path / "t.json").read_text())["points"]
    assert [p["value"] for p in points] == pytest.approx([1.0, 0.55, 0.1])


@pytest.mark.parametrize("args, message", [
    (["--points", 1], "--points must be at least 2"),
    (["--plot", "sweep.pdf"], "must end in .png"),
    (["--max-flops-reduction", 1.0], "--max-flops-reduction must be above 1.0"),
    (["--train-targets", "2.0,1.0", "--train-dir", "never"], "--train-targets must be FLOPs reductions above 1"),
    (["--train-targets", "2.0,x", "--train-dir", "never"], "is not a list of numbers"),
    (["--train-targets", "2,2.0", "--train-dir", "never"], "lists a budget twice"),
    (["--train-targets", "2.0"], "--train-targets needs --train-dir"),
    (["--train-dir", "never"], "--train-dir given without --train-targets"),
])
def test_bad_sweep_options_exit_2_with_one_line(bert_dir, tmp_path, monkeypatch, capsys, args, message):
    code, _, err = cli(monkeypatch, capsys, "sweep", bert_dir, "--task", "sst2", "--json", tmp_path / "s.json", *args)
    assert code == 2 and message in err and len(err.strip().splitlines()) == 1
    assert list(tmp_path.iterdir()) == []


# ------------------------------------------------------------------------------------------------ sweep: trained points

def _with_budget(folder, budget):
    """Record, as ``ltp-deploy train`` does, the FLOPs budget a folder was trained to."""
    (folder / METADATA_FILE).write_text(json.dumps({"kind": "ltp", "settings": {"target_flops_reduction": budget}}))
    return folder


def test_sweep_adds_a_trained_point_with_its_own_weights_and_spec(make_bert, glue_env, tmp_path, monkeypatch,
                                                                   capsys):
    dense_dir = make_bert(name="sweep-dense", seed=3)
    trained_dir = _with_budget(make_bert(spec=PruningSpec.threshold([0.0, 0.003, 0.006, 0.009]),
                                         name="sweep-trained", seed=5), 1.8)
    code, stdout, stderr = cli(monkeypatch, capsys, "sweep", dense_dir, "--task", "sst2", "--points", 3,
                               "--max-eval-examples", 60, "--trained", trained_dir, "--json", tmp_path / "s.json",
                               "--plot", tmp_path / "s.png")
    assert code == 0, stderr
    points = json.loads((tmp_path / "s.json").read_text())["points"]
    assert [p["kind"] for p in points] == ["dense", "family", "family", "trained"]
    point = points[-1]
    # The trained checkpoint's own weights and spec on the same 60 dev sentences, computed here independently.
    dense, trained = load_checkpoint(dense_dir), load_checkpoint(trained_dir)
    data = EncodedData.build(dense.tokenizer(), load_glue("sst2", "dev", glue_env).take(60), 64)
    ev, dense_ev = evaluate(trained.model, data), evaluate(dense.model, data)
    # Its own weights, not the dense weights under its spec: the two keep other tokens (the test tells them apart).
    assert evaluate(dense.model.with_spec(trained.spec), data).mean_kept != pytest.approx(ev.mean_kept)
    assert point["metric"] == pytest.approx(ev.value) and point["flops_reduction"] == pytest.approx(ev.flops_reduction)
    assert point["mean_kept_per_layer"] == pytest.approx(ev.mean_kept) and ev.flops_reduction > 1.05
    assert point["metric_drop_points"] == pytest.approx(100 * (dense_ev.value - ev.value))
    assert point["spec"]["thresholds"] == [0.0, 0.003, 0.006, 0.009] and point["budget"] == 1.8
    assert point["checkpoint"] == str(trained_dir.resolve()) and point["origin"] == "given"
    assert "trained 1.8x" in stdout
    assert sorted(p.name for p in tmp_path.iterdir()) == ["s.json", "s.png"]


def _two_layer_bert(folder, tokenizer_from):
    from transformers import AutoTokenizer, BertConfig, BertForSequenceClassification

    config = BertConfig(hidden_size=64, num_hidden_layers=2, num_attention_heads=4, intermediate_size=128,
                        vocab_size=30522, num_labels=2)
    BertForSequenceClassification(config).save_pretrained(str(folder))
    AutoTokenizer.from_pretrained(str(tokenizer_from)).save_pretrained(str(folder))
    PruningSpec.threshold([0.0, 0.004]).save(folder)
    return folder


@pytest.mark.parametrize("case, message", [
    ("layers", "is not the architecture of the dense checkpoint"),
    ("roberta", "is not the architecture of the dense checkpoint"),
    ("no-spec", "has no pruning spec"),
])
def test_sweep_refuses_a_trained_checkpoint_that_does_not_fit(case, message, bert_dir, make_bert, make_roberta,
                                                              minilm_dir, glue_env, tmp_path_factory, tmp_path,
                                                              monkeypatch, capsys):
    spec = PruningSpec.threshold([0.0, 0.002, 0.004, 0.006])
    other = {"layers": lambda: _two_layer_bert(tmp_path_factory.mktemp("two-layer"), minilm_dir),
             "roberta": lambda: make_roberta(spec=spec, name="sweep-roberta", num_labels=2),
             "no-spec": lambda: make_bert(name="sweep-no-spec", seed=4)}[case]()
    code, _, err = cli(monkeypatch, capsys, "sweep", bert_dir, "--task", "sst2", "--max-eval-examples", 20,
                       "--trained", other, "--json", tmp_path / "s.json", "--plot", tmp_path / "s.png")
    assert code == 2 and err.startswith("error: ") and message in err and len(err.strip().splitlines()) == 1
    assert ("num_layers 2, not 4" in err) == (case == "layers")
    assert list(tmp_path.iterdir()) == []


def test_sweep_trains_each_target_once_and_reuses_it(bert_dir, glue_env, tmp_path, monkeypatch):
    import ltp_deploy.training
    from ltp_deploy.sweep import SweepSettings, sweep

    tiny = {"max_examples": 128, "batch_size": 32, "soft_steps": 4, "hard_steps": 3, "threshold_lr": 2e-4}
    settings = SweepSettings(bert_dir, "sst2", tmp_path / "s.json", points=2, max_eval_examples=48,
                             train_targets=(1.5,), train_dir=tmp_path / "trained", train_options=tiny)
    lines = []
    report = sweep(settings, log=lines.append)
    folder = tmp_path / "trained" / "target-1.5"
    point = report["points"][-1]
    assert point["kind"] == "trained" and point["origin"] == "trained" and point["budget"] == 1.5
    assert point["checkpoint"] == str(folder.resolve()) and point["spec"]["source"]["method"] == "ltp-deploy train"
    trained = load_checkpoint(folder)
    data = EncodedData.build(trained.tokenizer(), load_glue("sst2", "dev", glue_env).take(48), 64)
    ev = evaluate(trained.model, data)
    assert point["metric"] == pytest.approx(ev.value) and point["flops_reduction"] == pytest.approx(ev.flops_reduction)
    assert point["flops_reduction"] >= 1.5  # the budget is met on the dev inputs the sweep measures
    meta = json.loads((folder / METADATA_FILE).read_text())
    assert meta["settings"]["soft_steps"] == 4 and meta["dev_examples"] == 48
    assert any(line.startswith("target 1.5x: hard:") for line in lines)

    before = {p.name: p.stat().st_mtime_ns for p in folder.iterdir()}, folder.stat().st_mtime_ns

    def no_training(*args, **kwargs):
        raise AssertionError("trained again instead of reusing the folder")

    monkeypatch.setattr(ltp_deploy.training, "train", no_training)
    again = sweep(settings, log=lines.append)
    assert again["points"][-1]["origin"] == "reused" and again["points"][-1]["metric"] == point["metric"]
    assert ({p.name: p.stat().st_mtime_ns for p in folder.iterdir()}, folder.stat().st_mtime_ns) == before
    assert json.loads((folder / METADATA_FILE).read_text()) == meta
    assert lines[-1].startswith("target 1.5x: reusing")


def test_reusable_needs_the_same_budget_task_and_dense_model(bert_dir, tmp_path):
    from ltp_deploy.sweep.trained import reusable

    folder = tmp_path / "target-2"
    folder.mkdir()
    meta = {"kind": "ltp", "task": "sst2", "source_model": str(bert_dir.resolve()),
            "settings": {"target_flops_reduction": None}, "budget": {"target": 2.0}}
    (folder / METADATA_FILE).write_text(json.dumps(meta))
    assert reusable(folder, bert_dir, "sst2", 2.0)  # the default budget, recorded only in "budget"
    assert not reusable(folder, bert_dir, "sst2", 2.5)
    assert not reusable(folder, bert_dir, "mrpc", 2.0)
    assert not reusable(folder, tmp_path, "sst2", 2.0)
    (folder / METADATA_FILE).write_text(json.dumps({**meta, "kind": "dense"}))
    assert not reusable(folder, bert_dir, "sst2", 2.0)
    assert not reusable(tmp_path / "missing", bert_dir, "sst2", 2.0)


def test_sweep_will_not_train_over_a_user_folder(bert_dir, glue_env, tmp_path, monkeypatch, capsys):
    mine = tmp_path / "trained" / "target-2"
    mine.mkdir(parents=True)
    (mine / "notes.txt").write_text("mine")
    code, _, err = cli(monkeypatch, capsys, "sweep", bert_dir, "--task", "sst2", "--train-targets", "2",
                       "--train-dir", tmp_path / "trained", "--json", tmp_path / "s.json")
    assert code == 2 and "--train-dir" in err and "not an ltp-deploy checkpoint folder" in err
    assert len(err.strip().splitlines()) == 1
    assert sorted(p.name for p in tmp_path.rglob("*")) == ["notes.txt", "target-2", "trained"]


def test_sweep_checks_the_training_options_up_front(bert_dir, tmp_path):
    from ltp_deploy.sweep import SweepSettings, sweep

    for options, message in [({"soft_steps": -1}, "--soft-steps must be zero"),
                             ({"output": "x"}, "Unknown or sweep-set training options output"),
                             ({"nope": 1}, "Unknown or sweep-set training options nope")]:
        with pytest.raises(LtpDeployError, match=message):
            sweep(SweepSettings(bert_dir, "sst2", tmp_path / "s.json", train_targets=(2.0,),
                                train_dir=tmp_path / "t", train_options=options))
    assert list(tmp_path.iterdir()) == []
