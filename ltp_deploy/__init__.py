"""ltp-deploy: make token-pruned transformers fast in production.

The flow, one module or subpackage per step::

    checkpoint.py (load)  ->  model.py (pruned encoder, spec.py)  ->  exporters/  ->  runtimes/  ->  report
"""

__version__ = "0.1.0"
