"""Check an exported graph against the torch model it came from, on real sentences and random inputs.

Shared by every exporter: the same cases and the same pass rule (max |logit diff| <= atol and identical kept
counts per layer) whatever the target.
"""

from __future__ import annotations

import math

from dataclasses import asdict, dataclass

import numpy as np
import torch

from ltp_deploy.data import Examples, encode
from ltp_deploy.model import PrunedClassifier
from ltp_deploy.runtimes.base import Runtime

# Used when no --data is given: short and long, plain and odd, so that layers drop different counts.
BUILTIN_SENTENCES = (
    "it 's a charming and often affecting journey .",
    "unflinchingly bleak and desperate",
    "allows us to hope that nolan is poised to embark a major career as a commercial yet inventive filmmaker .",
    "the acting , costumes , music , cinematography and sound are all astounding given the production 's "
    "austere locales .",
    "it 's slow -- very , very slow .",
    "although laced with humor and a few fanciful touches , the film is a refreshingly serious look at young "
    "women .",
    "a sometimes tedious film .",
    "or doing last year 's taxes with your ex-wife .",
    "you do n't have to know about music to appreciate the film 's easygoing blend of comedy and romance .",
    "in exactly 89 minutes , most of which passed as slowly as if i 'd been sitting naked on an igloo , "
    "formula 51 sank from quirky to jerky to utter turkey .",
    "Wow!",
    "The quarterly report, released on 2024-03-01 at 09:30 UTC, showed revenue of $1.2bn (up 14%).",
)


@dataclass
class CaseResult:
    name: str
    real: bool  # real sentences (a kept-count change there is one users would see) or random ids
    batch_size: int
    length: int
    max_abs_diff: float
    argmax_agreement: float
    kept_counts_equal: bool


@dataclass
class ValidationReport:
    """Pass rule: every case has identical kept counts and max |logit diff| <= atol.

    With ``tolerate_random_flips`` (fp16 weights, whose rounding may move a score across a threshold), a
    random-ids case whose counts differ is tolerated and listed; its logits are not compared, since another
    token set gives other logits by design. Real-sentence cases must still keep identical counts.
    """

    runtime: str
    atol: float
    cases: list[CaseResult]
    tolerate_random_flips: bool = False

    def case_passed(self, c: CaseResult) -> bool:
        if c.kept_counts_equal:
            return c.max_abs_diff <= self.atol
        return self.tolerate_random_flips and not c.real

    @property
    def passed(self) -> bool:
        return all(self.case_passed(c) for c in self.cases)

    @property
    def max_abs_diff(self) -> float:
        """Over the cases whose logits were compared (kept counts identical)."""
        return max((c.max_abs_diff for c in self.cases if c.kept_counts_equal), default=0.0)

    @property
    def tolerated(self) -> list[str]:
        return [c.name for c in self.cases if not c.kept_counts_equal and self.case_passed(c)]

    def failures(self) -> list[str]:
        """One phrase per failed case; non-finite logits (a NaN/inf difference) are named as such, since no
        tolerance could pass them (weights are checked finite at load, so they come from the computation)."""
        def phrase(c: CaseResult) -> str:
            if not c.kept_counts_equal:
                return f"{c.name}: kept counts DIFFER"
            if not math.isfinite(c.max_abs_diff):
                return f"{c.name}: NaN/inf logits, which no --atol can pass"
            return f"{c.name}: max |diff| {c.max_abs_diff:.2e} (atol {self.atol:.0e})"

        return [phrase(c) for c in self.cases if not self.case_passed(c)]

    def to_dict(self) -> dict:
        return {"runtime": self.runtime, "atol": self.atol, "passed": self.passed,
                "max_abs_diff": self.max_abs_diff, "tolerated": self.tolerated,
                "tolerate_random_flips": self.tolerate_random_flips, "cases": [asdict(c) for c in self.cases]}


@dataclass
class Case:
    name: str
    real: bool
    batch: dict[str, np.ndarray]


def validation_cases(tokenizer, model: PrunedClassifier, examples: Examples | None = None,
                     max_length: int | None = None, seed: int = 0) -> list[Case]:
    """Real sentences at batch 1 and 8 (mixed lengths); random ids at length 1, mixed lengths with padding, and
    the maximum length."""
    cfg = model.config
    max_length = max_length or cfg.max_length
    if examples is None:
        examples = Examples(texts=list(BUILTIN_SENTENCES), text_pairs=None, labels=None, source="built-in")
    real = min(len(examples), 8)
    cases = [
        Case("real b1", True, encode(tokenizer, examples, min(max_length, 128), indices=[0])),
        Case(f"real b{real} mixed", True, encode(tokenizer, examples, min(max_length, 128), indices=range(real))),
    ]
    rng = np.random.default_rng(seed)
    for name, lengths in [("random b1 len1", [1]), ("random b4 mixed", [1, 7, 33, 64]),
                          ("random b3 mixed", [2, 17, 5]), ("random b2 max", [max_length, max_length // 2])]:
        cases.append(Case(name, False, random_batch(tokenizer, cfg, lengths, rng)))
    return cases


def random_batch(tokenizer, cfg, lengths, rng) -> dict[str, np.ndarray]:
    """Right-padded random token ids with CLS first; ``lengths`` real tokens per row."""
    width = max(lengths)
    special = set(tokenizer.all_special_ids)
    vocab = np.array([i for i in range(min(cfg.vocab_size, 30000)) if i not in special])
    ids = np.full((len(lengths), width), cfg.pad_token_id, dtype=np.int64)
    mask = np.zeros_like(ids)
    for row, n in enumerate(lengths):
        ids[row, :n] = rng.choice(vocab, size=n)
        ids[row, 0] = tokenizer.cls_token_id
        mask[row, :n] = 1
    types = np.zeros_like(ids)
    if cfg.uses_token_type_ids:  # a second segment in the back half of each row
        for row, n in enumerate(lengths):
            types[row, n // 2:n] = 1
    return {"input_ids": ids, "attention_mask": mask, "token_type_ids": types}


@torch.no_grad()
def torch_outputs(model: PrunedClassifier, batch: dict[str, np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    logits, kept = model(*(torch.from_numpy(batch[k]) for k in ("input_ids", "attention_mask", "token_type_ids")))
    return logits.numpy(), kept.numpy()


def validate(runtime: Runtime, model: PrunedClassifier, cases, atol: float,
             tolerate_random_flips: bool = False) -> ValidationReport:
    """Run every case through ``runtime`` and ``model`` and compare (pass rule: ``ValidationReport``)."""
    results = []
    for case in cases:
        want_logits, want_kept = torch_outputs(model, case.batch)
        logits, kept = runtime.run(case.batch)
        results.append(CaseResult(
            name=case.name,
            real=case.real,
            batch_size=int(case.batch["input_ids"].shape[0]),
            length=int(case.batch["input_ids"].shape[1]),
            max_abs_diff=float(np.abs(logits - want_logits).max()),
            argmax_agreement=float((logits.argmax(-1) == want_logits.argmax(-1)).mean()),
            kept_counts_equal=bool(np.array_equal(kept, want_kept)),
        ))
    return ValidationReport(runtime.name, atol, results, tolerate_random_flips)


def reference_agreement(model: PrunedClassifier, tokenizer, examples: Examples | None = None,
                        max_length: int = 128, batch_size: int = 16) -> dict | None:
    """The dropping model against LTP's masked rule (``ltp_deploy.reference``) on real sentences.

    Returns summed counts (see ``reference.compare``) plus ``cls_pruned_rate``; None for a dense model.
    """
    from ltp_deploy.data import batches
    from ltp_deploy.reference import compare, hf_twin

    if model.spec is None:
        return None
    if examples is None:
        examples = Examples(texts=list(BUILTIN_SENTENCES), text_pairs=None, labels=None, source="built-in")
    twin = hf_twin(model)
    total: dict = {}
    for indices in batches(examples, batch_size):
        batch = encode(tokenizer, examples, min(max_length, model.config.max_length), indices=indices)
        part = compare(model, twin, model.spec, *(torch.from_numpy(batch[k]) for k in
                                                  ("input_ids", "attention_mask", "token_type_ids")))
        for key, value in part.items():
            if key == "max_abs_diff":
                total[key] = max(total.get(key, 0.0), value)
            elif key == "layer_sets_equal":
                total[key] = [a + b for a, b in zip(total.get(key, [0] * len(value)), value)]
            else:
                total[key] = total.get(key, 0) + value
    total["cls_pruned_rate"] = total["reference_cls_pruned"] / max(total["sequences"], 1)
    return total


# INT8 graphs are gated on outcomes: kept sets may legitimately differ by a token near a threshold, and INT8 noise
# alone flips a few sentences near the decision boundary (the dense MiniLM's own INT8 graph agrees with its fp32
# graph on ~97.7% of SST-2 dev). What a user loses is task metric, so that is the gate, the same for pruned and
# dense graphs; agreement, logit movement and kept-count agreement are recorded, and gated only when asked.
INT8_MAX_METRIC_DROP = 0.5  # points of the task's primary metric (x100) below the fp32 model on the same sentences
INT8_SENTENCES = 1000  # real sentences the export validates on unless --max-examples says otherwise
# Dynamic INT8 quantizes each activation over the whole batch, so a sentence's outcome depends on its batch: the
# batched graph is validated at bench's batch 32, the batch-1 graph one sentence at a time.
INT8_BATCH = 32


@dataclass
class OutcomeReport:
    """The INT8 pass rule: finite logits, and the task's primary metric over the real sentences at most
    ``max_metric_drop`` points below the fp32 torch model's on the same sentences; optionally (when not None)
    prediction agreement >= ``min_agreement`` and max |logit diff| <= ``atol``. Kept-count agreement per layer is
    recorded, not gated. Metric values are fractions (accuracy 0.8693); the drop is in points (x100)."""

    runtime: str
    batch_size: int
    sentences: int
    metric: str | None  # the task's primary metric, None for unlabelled sentences
    metric_fp32: float | None
    metric_int8: float | None
    max_metric_drop: float | None
    agreement: float
    max_abs_diff: float
    kept_agreement: list[float]  # per layer: fraction of sentences whose kept count equals the fp32 model's
    min_agreement: float | None = None
    atol: float | None = None

    @property
    def metric_drop(self) -> float | None:
        """Points lost against fp32 (negative: INT8 scored higher); None without labels."""
        if self.metric_fp32 is None or self.metric_int8 is None:
            return None
        return 100 * (self.metric_fp32 - self.metric_int8)

    @property
    def passed(self) -> bool:
        return not self.failures()

    def failures(self) -> list[str]:
        out = []
        if not math.isfinite(self.max_abs_diff):
            out.append("NaN/inf logits")
        drop = self.metric_drop
        if self.max_metric_drop is not None and (drop is None or not drop <= self.max_metric_drop + 1e-9):
            out.append(f"{self.metric} {100 * self.metric_int8:.2f} is {drop:.2f} points below fp32's "
                       f"{100 * self.metric_fp32:.2f} (at most {self.max_metric_drop:g} allowed)"
                       if drop is not None else "no labels to measure the task metric on")
        if self.min_agreement is not None and self.agreement < self.min_agreement:
            out.append(f"predictions agree on {100 * self.agreement:.2f}% of {self.sentences} sentences, below "
                       f"{100 * self.min_agreement:g}%")
        if self.atol is not None and self.max_abs_diff > self.atol:
            out.append(f"max |logit diff| {self.max_abs_diff:.2f} above {self.atol:g}")
        return out

    def to_dict(self) -> dict:
        return {"rule": "int8-outcomes", **asdict(self), "metric_drop": self.metric_drop, "passed": self.passed}


def validate_outcomes(runtime: Runtime, model: PrunedClassifier, tokenizer, examples: Examples,
                      max_metric_drop: float | None = INT8_MAX_METRIC_DROP, min_agreement: float | None = None,
                      atol: float | None = None, batch_size: int = INT8_BATCH) -> OutcomeReport:
    """Run the real sentences through ``runtime`` and the fp32 ``model`` and compare outcomes (``OutcomeReport``;
    the metric needs ``examples.labels``)."""
    from ltp_deploy.data import batches
    from ltp_deploy.metrics import compute_metrics, predictions_from_logits, primary_metric

    agree, kept_same, worst, rows = 0, np.zeros(model.config.num_layers), 0.0, 0
    outputs: dict[str, list] = {"fp32": [], "int8": []}
    for indices in batches(examples, batch_size):
        batch = encode(tokenizer, examples, model.config.max_length, indices=indices)
        want_logits, want_kept = torch_outputs(model, batch)
        logits, kept = runtime.run(batch)
        agree += int((logits.argmax(-1) == want_logits.argmax(-1)).sum())
        kept_same += (kept == want_kept).sum(axis=0)
        worst = max(worst, float(np.abs(logits - want_logits).max()), key=lambda x: (math.isnan(x), x))
        rows += len(indices)
        outputs["fp32"].append(want_logits)
        outputs["int8"].append(logits)
    metric = scores = None
    if examples.labels is not None:
        metric = primary_metric(examples)
        scores = {k: compute_metrics(examples, predictions_from_logits(np.concatenate(v), examples.is_regression))
                  [metric] for k, v in outputs.items()}
    return OutcomeReport(runtime.name, batch_size, rows, metric, scores and scores["fp32"], scores and scores["int8"],
                         max_metric_drop, agree / rows, worst, [float(k) for k in kept_same / rows],
                         min_agreement, atol)
