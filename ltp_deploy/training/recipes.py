"""Per-task defaults of ``train``: what each option is when it is not given (``TrainSettings.resolved``).

The defaults are sized for 2 CPU cores and one hour. SST-2 and the other GLUE tasks use the whole training split;
IMDB reviews are ten times longer (265 MiniLM tokens on average at ``--max-length`` 512, 15% truncated), so one
training step costs about ten SST-2 steps and a pass over the 2,000 held-out reviews about 2 minutes: its recipe
trains on a seeded subset, with fewer, smaller steps, searches the budget's threshold scale on part of dev and holds
the metric on 2,000 held-out reviews (500 let the drop read 0.80 points where dev measured 2.85: too few to hold 1).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from ltp_deploy.data import get_task

# (epochs, steps) of each stage when neither --X-epochs nor --X-steps is given; steps win when both are set.
GLUE_STAGES = {"dense": (1.0, None), "soft": (None, 400), "hard": (None, 1000)}


@dataclass(frozen=True)
class Recipe:
    """The defaults of one task. Reasons and measurements beside each field in ``RECIPES``."""

    batch_size: int = 32
    max_examples: int | None = None  # train on a seeded subset of this many examples (None: all)
    stages: dict[str, tuple[float | None, int | None]] = field(default_factory=lambda: dict(GLUE_STAGES))
    target: float = 2.0  # the FLOPs budget unless --lambda or --target-flops-reduction is given
    threshold_lr: float = 1e-4  # 1e-4 x 400 steps reaches a 3x budget on SST-2
    budget_examples: int | None = None  # the dev inputs the final budget search runs on (None: all of dev)
    scorer: str = "attention"  # what scores a token (``--scorer``)
    # The default budget is an upper bound: the thresholds come down until the held-out tuning slice is within this
    # many points of the dense model (``budget.hold_metric``). A user asks "how fast at my accuracy".
    max_metric_drop: float | None = 1.0
    tune_examples: int = 2000  # the held-out slice that drop is measured on (``--tune-examples``)


RECIPES: dict[str, Recipe] = {
    # IMDB: a seeded subset and fewer, smaller steps (a step costs about ten SST-2 steps), thresholds learning 4x
    # faster, a 3x budget (long reviews carry more redundancy) and the learned scorer (docs/results/imdb.md,
    # docs/results/training-defaults.md).
    "imdb": Recipe(batch_size=16, max_examples=3000,
                   stages={"dense": (1.0, None), "soft": (None, 100), "hard": (None, 300)},
                   target=3.0, threshold_lr=4e-4, budget_examples=500, scorer="learned"),
    # MRPC and STS-B: one dense epoch is too few steps for these small sets; three (docs/results/training-defaults.md).
    "mrpc": Recipe(stages={"dense": (3.0, None), "soft": (None, 400), "hard": (None, 1000)}),
    "stsb": Recipe(stages={"dense": (3.0, None), "soft": (None, 400), "hard": (None, 1000)}),
}


def recipe(task: str) -> Recipe:
    """The defaults of ``task`` (GLUE tasks share one); raises ``LtpDeployError`` for an unknown task."""
    return RECIPES.get(get_task(task).name, Recipe())
