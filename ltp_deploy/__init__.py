"""ltp-deploy: make token-pruned transformers fast in production.

The flow, one module or subpackage per step::

    checkpoint.py (load)  ->  model.py + pruner.py (spec.py)  ->  exporters/  ->  runtimes/  ->  check/ bench/
    sweep/ claims/ (report)  and  serving/

    (data/ feeds every step; training/ and calibration/ make pruned checkpoints; docs/architecture.md maps it all.)

The Python API (``ltp_deploy.api``; imported on first use, so ``import ltp_deploy`` stays light):

* ``load(path, *, backend=None, device="cpu", threads=None, max_length=None) -> TextClassifier``
* ``TextClassifier(texts, *, batch_size=32) -> list[Prediction]``
* ``PrunedModelForSequenceClassification.from_pretrained(path)``: a model ``transformers.pipeline`` accepts.
* ``export(checkpoint, out, *, target="onnx", precision="fp32", task=None, **options) -> Path``: an export folder.

Example::

    import ltp_deploy
    clf = ltp_deploy.load("out/sst2-onnx")
    clf(["a gripping film"])[0].label
"""

__version__ = "0.1.0"
__all__ = ["load", "export", "TextClassifier", "Prediction", "PrunedModelForSequenceClassification",
           "__version__"]

_LAZY = {"load": "ltp_deploy.api", "export": "ltp_deploy.api", "TextClassifier": "ltp_deploy.api",
         "Prediction": "ltp_deploy.api", "PrunedModelForSequenceClassification": "ltp_deploy.pretrained"}


def __getattr__(name: str):
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'ltp_deploy' has no attribute {name!r}")
