"""Test helpers shared by several test modules (fixtures live in ``conftest.py``).

* ``run_main`` / ``run_process``: the CLI in this process (through ``main()``) or in a fresh one;
* ``SENTENCES``, ``REPO``, ``glue_dir``;
* ``Subject`` / ``subject_for``: a checkpoint with a pruning spec and its exports, built on first use (the real
  graphs ``test_runtimes`` and ``test_runtime_inputs`` run).
"""

from __future__ import annotations

import os
import subprocess
import sys
from functools import cached_property
from pathlib import Path

import numpy as np
import torch

from ltp_deploy.checkpoint import load_checkpoint, save_checkpoint
from ltp_deploy.data import Examples, encode
from ltp_deploy.exporters.onnx import export_onnx
from ltp_deploy.exporters.openvino import export_openvino
from ltp_deploy.exporters.validate import BUILTIN_SENTENCES
from ltp_deploy.spec import PruningSpec

REPO = Path(__file__).resolve().parents[1]
SENTENCES = [
    "it 's a charming and often affecting journey .",
    "unflinchingly bleak and desperate",
    "the acting , costumes , music , cinematography and sound are all astounding .",
    "a sometimes tedious film .",
    "you do n't have to know about music to appreciate the film 's easygoing blend of comedy and romance .",
    "or doing last year 's taxes with your ex-wife .",
    "Wow!",
    "in exactly 89 minutes , most of which passed as slowly as if i 'd been sitting naked on an igloo .",
] * 8


def run_main(monkeypatch, capsys, *args) -> tuple[int, str, str]:
    """Run ``ltp-deploy ARGS`` in this process through ``main()`` (its error boundary and exit codes included);
    returns (exit code, stdout, stderr)."""
    from ltp_deploy.cli import main

    monkeypatch.setenv("CI", "true")  # plain lines, no progress bar
    monkeypatch.setattr(sys, "argv", ["ltp-deploy", *map(str, args)])
    capsys.readouterr()  # drop what the test printed before (e.g. transformers' save progress)
    code = 0
    try:
        main()
    except SystemExit as e:
        code = e.code
    out, err = capsys.readouterr()
    return code, out, err


def run_process(*args, env=None) -> subprocess.CompletedProcess:
    """Run the CLI as a user would, in a fresh process (CI=true)."""
    return subprocess.run([sys.executable, "-m", "ltp_deploy.cli", *map(str, args)], capture_output=True, text=True,
                          env={**os.environ, "CI": "true", **(env or {})}, timeout=600, check=False)


def glue_dir() -> Path:
    return Path(os.environ.get("GLUE_DIR") or REPO.parent / "shared" / "data" / "glue")


MINILM_SPEC = PruningSpec.threshold([0, 0.002, 0.004, 0.006, 0.008, 0.01])
ROBERTA_SPEC = PruningSpec.threshold([0, 0.004, 0.008, 0.012])
ATOL = 1e-4
MIXED = [0, 1, 2, 6, 10, 11]  # BUILTIN_SENTENCES rows of very different lengths ("Wow!" is 11)


class Subject:
    """One checkpoint folder (with its pruning_spec.json) and its exports, each built on first use."""

    def __init__(self, name: str, folder: Path, root: Path):
        self.name, self.folder, self.root = name, folder, root

    @cached_property
    def ckpt(self):
        return load_checkpoint(self.folder)

    @cached_property
    def tokenizer(self):
        return self.ckpt.tokenizer()

    @cached_property
    def onnx(self) -> Path:
        return export_onnx(self.ckpt, self.root / f"{self.name}-onnx").graph

    @cached_property
    def ov_result(self):
        return export_openvino(self.ckpt, self.root / f"{self.name}-ov")

    @property
    def xml(self) -> Path:
        return self.ov_result.graph

    @cached_property
    def single(self) -> dict[str, Path]:
        """The batch-1 form (``export --single-sequence``) for each target."""
        return {"onnx": export_onnx(self.ckpt, self.root / f"{self.name}-onnx-b1", single_sequence=True).graph,
                "openvino": export_openvino(self.ckpt, self.root / f"{self.name}-ov-b1", single_sequence=True).graph}

    @cached_property
    def ov16_result(self):
        return export_openvino(self.ckpt, self.root / f"{self.name}-ov16", precision="fp16")

    def batch(self, rows) -> dict[str, np.ndarray]:
        examples = Examples(texts=list(BUILTIN_SENTENCES), text_pairs=None, labels=None, source="built-in")
        return encode(self.tokenizer, examples, 128, indices=rows)

    @cached_property
    def batches(self) -> dict[str, dict[str, np.ndarray]]:
        return {"b1": self.batch([3]), "mixed": self.batch(MIXED)}

    def expected(self, batch) -> tuple[np.ndarray, np.ndarray]:
        with torch.no_grad():
            logits, kept = self.ckpt.model(*(torch.from_numpy(batch[k]) for k in
                                             ("input_ids", "attention_mask", "token_type_ids")))
        return logits.numpy(), kept.numpy()


_SUBJECTS: dict[str, Subject] = {}


def with_strong_head(ckpt, folder: Path) -> Path:
    """``ckpt`` saved to ``folder`` with its output projection redrawn at std 1 (seeded).

    Untrained heads (std 0.02) give logits of ~1e-2, which would make a 1e-4 tolerance a 1% relative one; a
    std-1 projection gives logits of order 1-10, so 1e-4 really checks the graph.
    """
    head = ckpt.model.classifier
    linear = getattr(head, "out_proj", head)  # RoBERTa: dense + tanh + out_proj; BERT: one Linear
    with torch.no_grad():
        linear.weight.copy_(torch.randn(linear.weight.shape, generator=torch.Generator().manual_seed(0)))
    return save_checkpoint(ckpt.model, folder, ckpt.hf_config, tokenizer=ckpt.tokenizer())


def subject_for(name: str, tmp_path_factory, minilm_dir, make_roberta) -> Subject:
    """The session-wide ``Subject`` called ``name`` ("minilm" or "roberta")."""
    if name not in _SUBJECTS:
        root = tmp_path_factory.mktemp(f"rt-{name}")
        if name == "minilm":  # the pretrained encoder; its classification head starts untrained
            ckpt = load_checkpoint(minilm_dir, spec=MINILM_SPEC)
        else:
            ckpt = load_checkpoint(make_roberta(spec=ROBERTA_SPEC, name="rt-roberta"))
        folder = with_strong_head(ckpt, root / "ckpt")
        _SUBJECTS[name] = Subject(name, folder, root)
    return _SUBJECTS[name]


def assert_agrees(subject: Subject, runtime, batch, atol: float = ATOL) -> None:
    want_logits, want_kept = subject.expected(batch)
    logits, kept = runtime.run(batch)
    assert logits.dtype == np.float32 and kept.dtype == np.int64
    assert logits.shape == want_logits.shape and kept.shape == want_kept.shape
    diff = float(np.abs(logits - want_logits).max())
    assert diff <= atol, f"{runtime.name}: max |logit diff| {diff:.2e} > {atol:.0e}"
    assert np.array_equal(kept, want_kept), f"{runtime.name}: kept counts {kept.tolist()} != {want_kept.tolist()}"
