"""The CI gate on an exported graph's accuracy: run it over a whole evaluation set and hold it to bounds.

``run_check`` runs the exported graph (ONNX or OpenVINO IR) over every example of the evaluation set (default:
the task's GLUE dev split from ``GLUE_DIR``), in batches padded per batch, and computes the task's metrics. With
a reference checkpoint (the folder the graph should have been exported from) it also runs, on the same token
ids:

* the **masked reference**: LTP's training-time rule on Hugging Face's own network (``reference.masked_reference``)
  with the *checkpoint's* pruning spec, in torch on the CPU;
* the **dense** model: the checkpoint's weights with pruning off (``model.with_spec(None)``).

The reference must be the checkpoint the graph came from: its weights' SHA-256 must equal the ``weights_sha256``
the export recorded, and its spec the graph's (a graph exported with ``--spec`` or ``--dense`` is refused with
one sentence), so that the gates never compare the graph with a look-alike.

It then reports every metric of the three, how often graph and reference predict the same class, and how often
they make the same keep/drop decisions. Decisions are compared through the kept counts per layer (the graph's
only decision output), on the sequences where the reference kept CLS: that is the one place where the dropping
graph deliberately differs (it always keeps position 0). Both apply the same cumulative rule, so a flipped
decision shows as a different count in the layer where it happens; only two opposite flips within one layer of
one sequence could hide from the counts. (Under ``topk`` the counts are fixed by the length alone, so for top-k specs the decision
check only confirms the schedule and prediction agreement is the signal.)

Gates (each optional; a report passes when every gate that is set passes; a value that cannot be measured
fails its gate):

* ``min-metric M``: graph metric >= M. Needs labels.
* ``max-drop D``: reference metric - graph metric <= D, in metric units (for a fraction metric 0.01 is one
  point). The baseline is the reference checkpoint under its own *masked* rule, which is what training and
  calibration measured, so the gate isolates what export and runtime changed. Needs ``reference``.
* ``max-decision-mismatch R``: (compared sequences whose kept counts differ in any layer) / (compared sequences)
  <= R. Needs ``reference``; with a reference it is always on, default ``R = 0.01``, except on an INT8 export
  (metadata ``precision: int8``), whose kept sets may differ by a token near a threshold: there it is reported,
  and gated only when given.

The gated metric is the task's primary metric (accuracy; pearson for STS-B; matthews for CoLA) unless
``metric`` names another of the task's metrics (e.g. ``f1`` for MRPC). The drop against the dense model is
reported (``drop.vs_dense``) but not gated: it is the cost of pruning itself, which calibration decides.

OpenVINO graphs run with ``INFERENCE_PRECISION_HINT=f32`` unless bf16 is asked for: bf16 arithmetic moves token
scores and can flip decisions next to a threshold, which would fail the decision gate for the wrong reason.

The JSON report (``schema_version`` 1) is described field by field in :data:`CHECK_SCHEMA`; fields are only
ever added within a schema version. ``junit_xml`` gives the same gates as JUnit XML (one test case per gate).

Example::

    report = run_check(CheckSettings(model=Path("out/sst2-onnx"), task="sst2", reference=Path("runs/sst2-ltp"),
                                     max_drop=0.01))
    report["passed"], report["results"]["graph"]["value"], report["agreement"]["decision_mismatch_rate"]
    for line in failure_lines(report):
        print(line)                          # FAIL max-drop: accuracy drop 0.0312 > 0.0100 (...)
"""


from ltp_deploy.check.report import (
    CHECK_SCHEMA,
    GITHUB_ACTIONS_EXAMPLE,
    agreement_text,
    failure_lines,
    junit_xml,
    summary_lines,
    write_junit,
)
from ltp_deploy.check.run import evaluate_gates, run_check
from ltp_deploy.check.settings import (
    DEFAULT_BATCH_SIZE,
    DEFAULT_MAX_DECISION_MISMATCH,
    GATES,
    KIND,
    PRECISIONS,
    SCHEMA_VERSION,
    CheckSettings,
)

__all__ = [
    "CHECK_SCHEMA", "DEFAULT_BATCH_SIZE", "DEFAULT_MAX_DECISION_MISMATCH", "GATES", "GITHUB_ACTIONS_EXAMPLE", "KIND",
    "PRECISIONS", "SCHEMA_VERSION", "CheckSettings", "agreement_text", "evaluate_gates", "failure_lines", "junit_xml",
    "run_check", "summary_lines", "write_junit",
]
