"""``sweep``: the dev metric against FLOPs reduction over a family of pruning settings, as JSON and a PNG.

The points (``report["points"]``, each with its ``kind``, ``spec``, ``metric``, ``metrics``, ``metric_drop_points``
against the dense point, ``flops_reduction`` and ``mean_kept_per_layer``) are:

* ``"dense"``: the checkpoint without pruning (strength 0), the reference of every ``metric_drop_points``;
* ``"family"``: evenly spaced strengths of the family of ``mode`` (see ``calibration.families``) up to the
  strength that reaches ``max_flops_reduction`` (thresholds) or a keep rate of 0.1 (top-k), all under the hard
  rule, with the checkpoint's weights: what each setting costs this model without retraining;
* ``"checkpoint"``: the checkpoint's own spec, when it has one;
* ``"trained"``: a checkpoint trained to a FLOPs budget, with its own weights and learned spec
  (``sweep.trained``): given (``trained``, ``--trained``) or trained here from the dense checkpoint to each of
  ``train_targets`` into ``train_dir`` (reused when already there). These points add ``checkpoint`` (its folder),
  ``budget`` (the FLOPs reduction it was trained to, from its ``ltp_deploy.json``; None when not recorded) and
  ``origin`` ("given", "trained" or "reused").

Example::

    report = sweep(SweepSettings("runs/sst2-dense", "sst2", json_out="sweep.json", plot_out="sweep.png",
                                 train_targets=(2.0, 3.0), train_dir="runs/sweep-trained"))
    [(p["kind"], p["flops_reduction"], p["metric"]) for p in report["points"]]
"""

from ltp_deploy.sweep.plots import plot_sweep
from ltp_deploy.sweep.run import SWEEP_VERSION, sweep
from ltp_deploy.sweep.settings import SweepSettings

__all__ = ["SWEEP_VERSION", "SweepSettings", "plot_sweep", "sweep"]
