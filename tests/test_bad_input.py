"""Bad input, tried as a new user would: every case ends in exit 2, one ``error:`` line naming the problem and the
fix, no traceback, and a file system left exactly as it was (checkpoint intact, nothing new beside it, the
user's own files kept).

Each case builds its input in a fresh folder beside a shared, real checkpoint (a small random BERT with a
threshold spec and MiniLM's tokenizer) and a real ONNX export of it, runs the CLI through ``main()`` (its error
boundary included) with the current directory set to the test's folder, and compares a snapshot (every path,
its type, size and SHA-256) of both folders before and after.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import stat
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import pytest
import torch

from helpers import run_main
from ltp_deploy.spec import PruningSpec

SPEC = PruningSpec.threshold([0.0, 0.004, 0.008, 0.012])


@pytest.fixture(scope="module")
def base(make_bert, tmp_path_factory) -> Path:
    """``base/ckpt`` (a checkpoint with a spec), ``base/export`` (its ONNX export), ``base/other`` (a checkpoint of
    the same shape with other weights) and ``base/export-dense`` (the checkpoint exported with --dense)."""
    from ltp_deploy.checkpoint import load_checkpoint
    from ltp_deploy.exporters.onnx import export_onnx

    root = tmp_path_factory.mktemp("bad-input")
    shutil.copytree(make_bert(spec=SPEC, name="bad-ckpt"), root / "ckpt")
    shutil.copytree(make_bert(spec=SPEC, name="bad-other", seed=1), root / "other")
    export_onnx(load_checkpoint(root / "ckpt"), root / "export")
    export_onnx(load_checkpoint(root / "ckpt"), root / "export-dense", dense=True)
    return root


def snapshot(*roots: Path) -> dict[str, tuple]:
    """Every path under ``roots`` (roots included): file type, size and content hash."""
    seen = {}
    for root in roots:
        for path in [root, *sorted(root.rglob("*"))]:
            st = path.lstat()
            digest = hashlib.sha256(path.read_bytes()).hexdigest() if stat.S_ISREG(st.st_mode) else None
            seen[str(path)] = (stat.S_IFMT(st.st_mode), st.st_size if digest else 0, digest)
    return seen


def assert_refused(monkeypatch, capsys, roots, args, fragment: str) -> str:
    """Run ``ltp-deploy ARGS``; exit 2, one ``error:`` line holding ``fragment``, nothing changed under ``roots``."""
    before = snapshot(*roots)
    code, out, err = run_main(monkeypatch, capsys, *args)
    lines = err.strip().splitlines()
    assert code == 2, (code, out, err)
    assert "Traceback" not in out + err, err
    assert len(lines) == 1 and lines[0].startswith("error: "), err
    assert fragment in lines[0], lines[0]
    assert snapshot(*roots) == before, "the file system changed"
    return lines[0]


# --------------------------------------------------------------------------------------- the cases

@dataclass
class Case:
    """``setup(base, work) -> argv`` builds the input inside ``work`` (the current directory) and returns the
    command line; ``fragment`` must appear in the one error line."""

    id: str
    setup: Callable[[Path, Path], list]
    fragment: str
    needs_glue: bool = False


def _user_folder(work: Path) -> Path:
    folder = work / "mine"
    folder.mkdir()
    (folder / "thesis.tex").write_text("three years of work\n")
    return folder


def _user_file(work: Path, name: str = "notes.txt") -> Path:
    (work / name).write_text("do not delete\n")
    return work / name


def _copy(src: Path, work: Path, name: str) -> Path:
    return Path(shutil.copytree(src, work / name))


def _edit_json(path: Path, **changes) -> None:
    data = json.loads(path.read_text())
    data.update(changes)
    path.write_text(json.dumps(data))


def _spec_file(work: Path, thresholds) -> Path:
    path = work / "spec.json"
    path.write_text(json.dumps({"mode": "absolute_threshold", "thresholds": thresholds}))
    return path


def _export(*extra):
    return lambda b, w: ["export", b / "ckpt", *extra]


def _custom_code_tokenizer(b: Path, w: Path) -> list:
    folder = _copy(b / "ckpt", w, "remote")
    marker = w / "code-ran"
    (folder / "tokenization_evil.py").write_text(f"open({str(marker)!r}, 'w').write('pwned')\n")
    _edit_json(folder / "tokenizer_config.json",
               auto_map={"AutoTokenizer": ["tokenization_evil.EvilTokenizer", None]})
    return ["export", folder, "-o", w / "out"]


def _random_weights(b: Path, w: Path) -> list:
    folder = _copy(b / "ckpt", w, "random-bin")
    (folder / "model.safetensors").unlink()
    (folder / "pytorch_model.bin").write_bytes(bytes([0x80]) + torch.randint(0, 256, (4096,)).byte().numpy().tobytes())
    return ["export", folder, "-o", w / "out"]


def _big_tokenizer(b: Path, w: Path) -> list:
    folder = _copy(b / "ckpt", w, "big-vocab")
    _edit_json(folder / "config.json", vocab_size=20000)
    state_file = folder / "model.safetensors"
    from safetensors.torch import load_file, save_file

    state = load_file(str(state_file))
    state["bert.embeddings.word_embeddings.weight"] = state["bert.embeddings.word_embeddings.weight"][:20000].clone()
    save_file(state, str(state_file))
    return ["export", folder, "-o", w / "out"]


def _broken_metadata(command: str):
    def setup(b: Path, w: Path) -> list:
        folder = _copy(b / "export", w, "broken-export")
        (folder / "ltp_deploy_export.json").write_text("{not json")
        return [command, folder] + (["--task", "sst2"] if command == "check" else [])
    return setup


def _metadata_edit(**changes):
    def setup(b: Path, w: Path) -> list:
        folder = _copy(b / "export", w, "edited-export")
        _edit_json(folder / "ltp_deploy_export.json", **changes)
        return ["inspect", folder]
    return setup


def _truncated_graph(command: str):
    def setup(b: Path, w: Path) -> list:
        folder = _copy(b / "export", w, "truncated-export")
        graph = folder / "model.onnx"
        graph.write_bytes(graph.read_bytes()[:5000])
        return [command, folder]
    return setup


def _missing_batch1_graph(b: Path, w: Path) -> list:
    folder = _copy(b / "export", w, "export-without-b1")
    (folder / "model-b1.onnx").unlink()
    return ["bench", folder, "--batch-size", "1"]


def _config_edit(**changes):
    def setup(b: Path, w: Path) -> list:
        folder = _copy(b / "ckpt", w, "edited-ckpt")
        _edit_json(folder / "config.json", **changes)
        return ["export", folder, "-o", w / "out"]
    return setup


def _unwritable(b: Path, w: Path) -> list:
    target = Path("/sys/ltp-deploy-test-out")
    try:  # root writes through chmod; /sys refuses even root. Skip where it does not.
        target.mkdir()
    except OSError:
        return ["export", b / "ckpt", "-o", target]
    target.rmdir()
    pytest.skip("no unwritable folder on this machine (/sys accepted a new folder)")


def _check_args(*extra):
    return lambda b, w: ["check", b / "export", "--task", "sst2", "--max-examples", "8", *extra]


CASES = [
    # data loss: -o may not destroy the input or the user's files
    Case("export-o-is-the-checkpoint", lambda b, w: ["export", b / "ckpt", "-o", b / "ckpt"], "is the input"),
    Case("export-o-inside-the-checkpoint", lambda b, w: ["export", b / "ckpt", "-o", b / "ckpt" / "onnx"],
         "lies inside the input"),
    Case("export-o-contains-the-checkpoint", lambda b, w: ["export", b / "ckpt", "-o", b], "contains the input"),
    Case("export-o-is-a-user-file", lambda b, w: ["export", b / "ckpt", "-o", _user_file(w)],
         "not an ltp-deploy export folder"),
    Case("export-o-is-a-user-folder", lambda b, w: ["export", b / "ckpt", "-o", _user_folder(w)],
         "add --overwrite"),
    Case("export-o-is-the-current-directory", lambda b, w: (_user_file(w), ["export", b / "ckpt", "-o", "."])[1],
         "current directory"),
    Case("export-o-is-an-ancestor-of-cwd", lambda b, w: ["export", b / "ckpt", "-o", ".."], "current directory"),
    Case("export-o-is-a-symlink-to-the-checkpoint",
         lambda b, w: ((w / "link").symlink_to(b / "ckpt"), ["export", b / "ckpt", "-o", w / "link"])[1],
         "is the input"),
    Case("export-o-is-the-spec-file",
         lambda b, w: ["export", b / "ckpt", "--spec", _spec_file(w, [0, 0.01, 0.01, 0.01]), "-o", w / "spec.json"],
         "is the input"),
    Case("export-o-under-a-regular-file", lambda b, w: ["export", b / "ckpt", "-o", _user_file(w) / "out"],
         "which is a file, not a folder"),
    Case("export-o-in-an-unwritable-folder", _unwritable, "not a writable folder"),
    Case("train-o-is-its-input-model",
         lambda b, w: ["train", "--model", b / "ckpt", "--task", "sst2", "-o", b / "ckpt"], "is the input"),
    Case("train-dense-output-is-o",
         lambda b, w: ["train", "--model", b / "ckpt", "--task", "sst2", "-o", w / "a", "--dense-output", w / "a"],
         "is the input"),
    Case("calibrate-o-is-a-user-folder",
         lambda b, w: ["calibrate", b / "ckpt", "--task", "sst2", "--target-flops-reduction", "1.5", "-o",
                       _user_folder(w)], "add --overwrite"),
    Case("calibrate-o-inside-its-input",
         lambda b, w: ["calibrate", b / "ckpt", "--task", "sst2", "--target-flops-reduction", "1.5", "-o",
                       b / "ckpt" / "cal"], "lies inside the input"),
    Case("sweep-json-is-a-user-file",
         lambda b, w: ["sweep", b / "ckpt", "--task", "sst2", "--json", _user_file(w, "data.json")],
         "not an ltp-deploy JSON report"),
    Case("sweep-plot-is-a-user-png",
         lambda b, w: ["sweep", b / "ckpt", "--task", "sst2", "--json", w / "s.json", "--plot",
                       _user_file(w, "holiday.png")], "not an ltp-deploy PNG plot"),
    Case("bench-json-is-a-folder", lambda b, w: ["bench", b / "export", "--json", _user_folder(w)],
         "is a folder: name a file"),
    Case("bench-json-is-the-graph", lambda b, w: ["bench", b / "export", "--json", b / "export" / "model.onnx"],
         "the input"),
    Case("bench-plot-is-a-user-png",
         lambda b, w: ["bench", b / "export", "--plot", _user_file(w, "photo.png")], "add --overwrite"),
    Case("check-junit-is-a-user-file",
         lambda b, w: _check_args("--junit", _user_file(w, "results.xml"))(b, w), "not an ltp-deploy JUnit report",
         needs_glue=True),
    Case("check-json-and-junit-are-one-file", _check_args("--json", "r.out", "--junit", "r.out"),
         "is the input", needs_glue=True),
    # code execution
    Case("tokenizer-with-custom-code", _custom_code_tokenizer, "refuses to run"),
    # tracebacks before
    Case("random-bytes-weights", _random_weights, "cannot be loaded as a state dict of tensors"),
    Case("tokenizer-larger-than-the-vocabulary", _big_tokenizer, "has 30522 tokens but the model's vocabulary"),
    Case("spec-thresholds-as-strings",
         lambda b, w: ["export", b / "ckpt", "--spec", _spec_file(w, ["0", "0.01", "0.01", "0.01"]), "-o", w / "o"],
         "must be a list of finite numbers"),
    Case("spec-negative-thresholds",
         lambda b, w: ["export", b / "ckpt", "--spec", _spec_file(w, [0, -0.01, 0.01, 0.01]), "-o", w / "o"],
         "must be 0 or more"),
    Case("bench-broken-metadata", _broken_metadata("bench"), "is not readable JSON"),
    Case("inspect-broken-metadata", _broken_metadata("inspect"), "is not readable JSON"),
    Case("check-broken-metadata", _broken_metadata("check"), "is not readable JSON"),
    Case("inspect-truncated-graph", _truncated_graph("inspect"), "damaged or truncated"),
    Case("bench-truncated-graph", _truncated_graph("bench"), "cannot load"),
    # silent wrong answers before
    Case("check-reference-with-other-weights", _check_args("--reference", "{other}"), "holds other weights",
         needs_glue=True),
    Case("check-reference-with-another-spec",
         lambda b, w: ["check", b / "export-dense", "--task", "sst2", "--reference", b / "ckpt"],
         "was exported with the spec dense", needs_glue=True),
    Case("check-min-metric-above-1", _check_args("--min-metric", "2"), "outside the range of accuracy",
         needs_glue=True),
    Case("check-min-metric-below-0", _check_args("--min-metric", "-1"), "outside the range of accuracy",
         needs_glue=True),
    # further bad input of our own
    Case("config-vocab-size-a-string", _config_edit(vocab_size="many"), "vocab_size must be a positive integer"),
    Case("config-heads-do-not-divide-hidden", _config_edit(num_attention_heads=5), "not a multiple"),
    Case("config-id2label-a-list", _config_edit(id2label=["neg", "pos"]), "id2label must map"),
    Case("config-a-json-list", lambda b, w: (_copy(b / "ckpt", w, "l"), (w / "l" / "config.json").write_text("[1]"),
                                             ["export", w / "l", "-o", w / "o"])[2], "does not hold a JSON object"),
    Case("spec-n-ref-a-string",
         lambda b, w: ((w / "s.json").write_text(json.dumps({"mode": "absolute_threshold", "n_ref": "128",
                                                             "thresholds": [0, 0.01, 0.01, 0.01]})),
                       ["export", b / "ckpt", "--spec", w / "s.json", "-o", w / "o"])[1], "n_ref must be a positive"),
    Case("spec-thresholds-a-string",
         lambda b, w: ["export", b / "ckpt", "--spec", _spec_file(w, "0.01"), "-o", w / "o"], "list of finite"),
    Case("spec-wrong-layer-count",
         lambda b, w: ["export", b / "ckpt", "--spec", _spec_file(w, [0, 0.01]), "-o", w / "o"], "per layer"),
    Case("metadata-a-json-list",
         lambda b, w: (_copy(b / "export", w, "e"), (w / "e" / "ltp_deploy_export.json").write_text("[]"),
                       ["bench", w / "e"])[2], "does not hold a JSON object"),
    Case("metadata-without-config", _metadata_edit(config=None), "lacks a valid"),
    Case("metadata-graph-outside-the-folder", _metadata_edit(graph="../model.onnx"), "is not a .onnx/.xml file"),
    Case("metadata-batch1-graph-outside-the-folder", _metadata_edit(batch1_graph="../model-b1.onnx"),
         "as its batch1 graph, which is not a .onnx/.xml file"),
    Case("export-batch1-graph-missing", _missing_batch1_graph,
         "model-b1.onnx named by ltp_deploy_export.json is missing"),
    Case("metadata-config-incomplete", _metadata_edit(config={"arch": "bert"}), "is incomplete"),
    Case("inspect-a-weights-file", lambda b, w: ["inspect", b / "ckpt" / "model.safetensors"], "not a graph file"),
    Case("bench-batch-size-zero", lambda b, w: ["bench", b / "export", "--batch-size", "0"], "at least 1"),
    Case("bench-threads-zero", lambda b, w: ["bench", b / "export", "--threads", "0", "--seq-len", "8"],
         "at least 1"),
    Case("bench-seq-len-beyond-the-model", lambda b, w: ["bench", b / "export", "--seq-len", "100000"], "100000"),
    Case("bench-json-under-a-file", lambda b, w: ["bench", b / "export", "--json", _user_file(w) / "r.json"],
         "which is a file"),
    Case("export-atol-negative", _export("--atol", "-1", "-o", "out"), "atol must be a finite number"),
    Case("export-opset-unknown", _export("--opset", "1", "-o", "out"), "--opset 1"),
    Case("export-empty-data-file",
         lambda b, w: ((w / "empty.tsv").write_text(""), ["export", b / "ckpt", "--data", w / "empty.tsv",
                                                          "--text-column", "sentence", "-o", w / "o"])[1], "empty"),
    Case("export-data-without-the-column",
         lambda b, w: ((w / "d.tsv").write_text("text\tlabel\nfine film\t1\n"),
                       ["export", b / "ckpt", "--data", w / "d.tsv", "--text-column", "sentence", "-o", w / "o"])[1],
         "sentence"),
    Case("check-batch-size-zero", _check_args("--batch-size", "0"), "at least 1", needs_glue=True),
    Case("check-max-length-beyond-the-model", _check_args("--max-length", "100000"), "exceeds", needs_glue=True),
    Case("sweep-one-point",
         lambda b, w: ["sweep", b / "ckpt", "--task", "sst2", "--json", w / "s.json", "--points", "1"],
         "at least 2"),
    Case("calibrate-target-below-1",
         lambda b, w: ["calibrate", b / "ckpt", "--task", "sst2", "--target-flops-reduction", "0.5", "-o", w / "c"],
         "flops"),
    Case("train-batch-size-zero",
         lambda b, w: ["train", "--model", b / "ckpt", "--task", "sst2", "-o", w / "t", "--batch-size", "0"],
         "--batch-size must be positive"),
    Case("ltp-threshold-not-a-scalar",
         lambda b, w: ["export", _ltp_with_vector_threshold(w), "-o", w / "o"], "is not a single float"),
    Case("ltp-keep-rate-above-1",
         lambda b, w: ["export", _ltp_edit(w, prune_mode="topk", token_keep_rate=2), "-o", w / "o"],
         "token_keep_rate must be a fraction"),
]


# --- finite or refused; data-file faults as sentences

def _stsb_file(work: Path, score: str) -> Path:
    """An STS-B-layout file whose third pair has ``score``."""
    path = work / "stsb.tsv"
    rows = [("a plane is taking off .", "an air plane is taking off .", "5.000"),
            ("a man plays a flute .", "a man plays a large flute .", "3.800"),
            ("a dog runs .", "a cat sleeps .", score)]
    path.write_text("sentence1\tsentence2\tscore\n" + "".join("\t".join(r) + "\n" for r in rows))
    return path


def _nan_weights(command: str):
    def setup(b: Path, w: Path) -> list:
        folder = _copy(b / "ckpt", w, "nan-ckpt")
        from safetensors.torch import load_file, save_file

        state = load_file(str(folder / "model.safetensors"))
        state["bert.encoder.layer.1.intermediate.dense.weight"][0, 0] = float("nan")
        save_file(state, str(folder / "model.safetensors"))
        return [command, folder] + (["-o", w / "out"] if command == "export" else [])
    return setup


def _data_file(name: str, payload: bytes | str):
    def setup(b: Path, w: Path) -> list:
        path = w / name
        path.write_bytes(payload if isinstance(payload, bytes) else payload.encode("utf-8"))
        column = "text" if name.endswith(".jsonl") else "sentence"
        return ["export", b / "ckpt", "--data", path, "--text-column", column, "-o", w / "o"]
    return setup


def _loop(w: Path, name: str) -> Path:
    (w / name).symlink_to(w / f"{name}-2")
    (w / f"{name}-2").symlink_to(w / name)
    return w / name


def _disagreeing_weights(b: Path, w: Path) -> list:
    from safetensors.torch import load_file

    folder = _copy(b / "ckpt", w, "two-files")
    state = load_file(str(folder / "model.safetensors"))
    state["classifier.bias"] = state["classifier.bias"] + 1.0
    torch.save(state, folder / "pytorch_model.bin")
    return ["export", folder, "-o", w / "out"]


_B = "sentence\tlabel\nfine film\t1\n"
FINITE_AND_FILE_CASES = [
    Case("train-stsb-nan-score",
         lambda b, w: ["train", "--model", b / "ckpt", "--task", "stsb", "--train-data", _stsb_file(w, "nan"),
                       "--dev-data", _stsb_file(w, "nan"), "-o", w / "t"], "stsb.tsv line 4 is not a finite number"),
    Case("train-stsb-inf-score",
         lambda b, w: ["train", "--model", b / "ckpt", "--task", "stsb", "--train-data", _stsb_file(w, "inf"),
                       "-o", w / "t"], "is not a finite number"),
    Case("check-nan-score", lambda b, w: ["check", b / "export", "--task", "stsb", "--data", _stsb_file(w, "nan")],
         "line 4 is not a finite number"),
    Case("check-inf-score", lambda b, w: ["check", b / "export", "--task", "stsb", "--data", _stsb_file(w, "-inf")],
         "line 4 is not a finite number"),
    Case("export-nan-weights", _nan_weights("export"), "the checkpoint holds NaN/inf weights: retrain or restore it"),
    Case("inspect-nan-weights", _nan_weights("inspect"), "'bert.encoder.layer.1.intermediate.dense.weight'"),
    Case("data-latin1", _data_file("latin.tsv", (_B + "caf\u00e9 cr\u00e8me\t0\n").encode("latin1")),
         "iconv -f latin1 -t utf-8"),
    Case("data-utf16", _data_file("wide.tsv", (_B + "caf\u00e9\t0\n").encode("utf-16")), "iconv -f utf-16 -t utf-8"),
    Case("data-zero-width-text", _data_file("zw.tsv", _B + "\u200b\u200b\t0\n"),
         "zw.tsv line 3 has an empty text in column 'sentence' (only invisible characters: U+200B)"),
    Case("data-jsonl-number-text", _data_file("n.jsonl", '{"text": "fine", "label": 1}\n{"text": 42, "label": 0}\n'),
         "n.jsonl line 2 has a number (42)"),
    Case("data-jsonl-list-text", _data_file("l.jsonl", '{"text": ["a", "b"], "label": 1}\n'), "has a list"),
    Case("data-field-beyond-16-mi-characters",
         _data_file("broken.csv", 'sentence,label\nfine,1\n"' + "x" * (1 << 24) + "\n"), "line 3 holds a field of over"),
    Case("data-without-text-column",
         lambda b, w: ((w / "d.tsv").write_text(_B), ["export", b / "ckpt", "--data", w / "d.tsv", "-o", w / "o"])[1],
         "--text-column sentence"),
    Case("data-symlink-loop",
         lambda b, w: ["export", b / "ckpt", "--data", _loop(w, "d.tsv"), "--text-column", "sentence", "-o", w / "o"],
         "is a symbolic link that leads back to itself"),
    Case("export-checkpoint-symlink-loop", lambda b, w: ["export", _loop(w, "ckpt-link"), "-o", w / "o"],
         "ckpt-link is a symbolic link that leads back to itself"),
    Case("inspect-symlink-loop", lambda b, w: ["inspect", _loop(w, "ckpt-link")], "symlink loop"),
    Case("train-model-symlink-loop",
         lambda b, w: ["train", "--model", _loop(w, "m"), "--task", "sst2", "-o", w / "t"], "symlink loop"),
    Case("check-reference-symlink-loop",
         lambda b, w: ["check", b / "export", "--task", "sst2", "--reference", _loop(w, "ref")], "symlink loop"),
    Case("weights-files-disagree", _disagreeing_weights, "two weight files that disagree"),
    Case("data-is-a-folder",
         lambda b, w: ((w / "dev").mkdir(), ["check", b / "export", "--task", "sst2", "--data", w / "dev"])[1],
         "dev is a folder: name a .csv, .tsv or .jsonl file inside it"),
    Case("data-is-a-pipe",
         lambda b, w: (os.mkfifo(w / "feed.tsv"), ["check", b / "export", "--task", "sst2", "--data",
                                                   w / "feed.tsv"])[1], "is not a regular file (a pipe or a device)"),
]
CASES += FINITE_AND_FILE_CASES

_LTP_SOURCE: dict[str, Path] = {}


def _ltp_folder(work: Path) -> Path:
    return _copy(_LTP_SOURCE["folder"], work, "ltp")


def _ltp_with_vector_threshold(work: Path) -> Path:
    folder = _ltp_folder(work)
    state = torch.load(folder / "pytorch_model.bin", weights_only=True)
    state["ibert.encoder.layer.1.attention.self.pruner.keep_threshold"] = torch.zeros(3)
    torch.save(state, folder / "pytorch_model.bin")
    return folder


def _ltp_edit(work: Path, **changes) -> Path:
    folder = _ltp_folder(work)
    _edit_json(folder / "config.json", **changes)
    return folder


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
@pytest.mark.slow
def test_bad_input_is_refused_and_changes_nothing(case, base, make_ltp, tmp_path, monkeypatch, capsys, request):
    if case.needs_glue:
        request.getfixturevalue("glue")
    _LTP_SOURCE.setdefault("folder", make_ltp(name="bad-ltp"))
    work = tmp_path / "work"
    work.mkdir()
    monkeypatch.chdir(work)
    args = [str(a).format(other=base / "other") for a in case.setup(base, work)]
    assert_refused(monkeypatch, capsys, [base, tmp_path], args, case.fragment)


def test_case_count_is_stated():
    """The closing note states how many cases the suite holds; this keeps the figure honest."""
    assert len(CASES) == len({c.id for c in CASES}) >= 50


# --------------------------------------------------------------------------------------- beside the cases

@pytest.mark.slow
def test_custom_tokenizer_code_never_runs(base, tmp_path, monkeypatch, capsys):
    """The refusal comes before transformers could prompt or import the file: the code leaves no marker."""
    monkeypatch.chdir(tmp_path)
    args = _custom_code_tokenizer(base, tmp_path)
    assert_refused(monkeypatch, capsys, [base], args, "auto_map")
    assert not (tmp_path / "code-ran").exists() and not (tmp_path / "out").exists()


def test_every_first_byte_of_a_random_weights_file_is_one_sentence(make_ltp, tmp_path):
    """All 256 first bytes (17 used to escape as IndexError): each is an LtpDeployError, never a raw error."""
    from ltp_deploy.checkpoint import load_checkpoint
    from ltp_deploy.errors import LtpDeployError

    folder = _copy(make_ltp(name="bytes-ltp"), tmp_path, "ltp")
    tail = torch.randint(0, 256, (2048,), generator=torch.Generator().manual_seed(0)).byte().numpy().tobytes()
    for first in range(256):
        (folder / "pytorch_model.bin").write_bytes(bytes([first]) + tail)
        with pytest.raises(LtpDeployError) as info:
            load_checkpoint(folder)
        assert "\n" not in str(info.value) and "pytorch_model.bin" in str(info.value), (first, info.value)


@pytest.mark.slow
def test_an_earlier_export_is_replaced(base, tmp_path, monkeypatch, capsys):
    """The rule's other side: an earlier ltp-deploy export is replaced in place (no --overwrite needed)."""
    out = _copy(base / "export", tmp_path, "again")
    (out / "stale.txt").write_text("from an older export\n")
    code, _, err = run_main(monkeypatch, capsys, "export", base / "ckpt", "-o", out)
    assert code == 0, err
    assert (out / "model.onnx").is_file() and not (out / "stale.txt").exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["again"]  # no temporary folder left beside it


@pytest.mark.slow
def test_overwrite_replaces_a_user_folder(base, tmp_path, monkeypatch, capsys):
    user = _user_folder(tmp_path)
    code, _, err = run_main(monkeypatch, capsys, "export", base / "ckpt", "-o", user, "--overwrite")
    assert code == 0, err
    assert (user / "model.onnx").is_file() and not (user / "thesis.tex").exists()


def test_missing_parent_folders_are_made_and_removed_on_failure(tmp_path):
    """An output at a/b/c creates a and b; when the work then fails, a and b go again."""
    from ltp_deploy.outputs import atomic_dir

    with pytest.raises(RuntimeError):
        with atomic_dir(tmp_path / "a" / "b" / "c", "export") as tmp:
            assert tmp.parent == tmp_path / "a" / "b"
            raise RuntimeError("the export failed")
    assert list(tmp_path.iterdir()) == []


@pytest.mark.slow
def test_reports_and_plots_we_wrote_are_replaced(base, tmp_path, monkeypatch, capsys):
    """bench --json/--plot into files an earlier bench wrote: replaced without --overwrite."""
    args = ["bench", base / "export", "--seq-len", "8", "--batch-size", "1", "--iterations", "2", "--warmup", "0",
            "--json", tmp_path / "b.json", "--plot", tmp_path / "b.png"]
    for _ in range(2):
        code, _, err = run_main(monkeypatch, capsys, *args)
        assert code == 0, err
    from ltp_deploy.outputs import written_by_ltp_deploy

    assert written_by_ltp_deploy(tmp_path / "b.json", "report") and written_by_ltp_deploy(tmp_path / "b.png", "plot")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["b.json", "b.png"]
