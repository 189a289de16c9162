"""The claims table (``ltp-deploy reproduce``): accuracy, FLOPs and measured speedup per task, runtime, precision
and batch size, against the dense exports users would deploy, from one resumable run.

    plan(settings) -> steps        (plan.py: what runs, where its output lands)
    run_steps(steps, logs)         (steps.py: child processes, skipped when their output is complete)
    claims_report(settings, steps) (table.py: rows from the check and bench reports; CLAIMS_SCHEMA)
    markdown(report), plot_claims(report, ...)
"""

from ltp_deploy.claims.plan import ClaimsSettings, plan
from ltp_deploy.claims.plots import plot_claims
from ltp_deploy.claims.steps import run_steps
from ltp_deploy.claims.table import CLAIMS_SCHEMA, claims_report, markdown

__all__ = ["CLAIMS_SCHEMA", "ClaimsSettings", "claims_report", "markdown", "plan", "plot_claims", "run_steps"]
