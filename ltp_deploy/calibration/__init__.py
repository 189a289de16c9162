"""Pruning specs for fine-tuned checkpoints without training (measured with ``ltp_deploy.evaluation``).

* ``families``: one-parameter spec families (LTP's rising thresholds, LTP's top-k schedule).
* ``search``: bisection / scan of a family on a calibration split for a FLOPs target or a metric-drop budget.
* ``calibrate``: the ``ltp-deploy calibrate`` library entry point (load, search, report on dev, write).
"""
