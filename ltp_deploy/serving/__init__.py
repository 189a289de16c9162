"""Serving an export: ``ltp-deploy serve`` (Ray Serve) and ``ltp-deploy loadtest``.

Modules, in request order: ``requests`` (the HTTP contract and its 4xx answers), ``ingress`` (Ray's proxy or HAProxy),
``predictor`` (tokenise and run a
batch; no HTTP, no Ray), ``app`` (the Ray Serve deployment: dynamic batching, routes), ``server`` (start, stop,
the cluster config) and ``loadtest`` (concurrent real requests, latency and throughput, answers verified against
the graph). ``requests``, ``predictor`` and ``loadtest``'s URL rule need no Ray; ``app`` and ``server`` need the
serve extra (``pip install 'ltp-deploy[serve]'``).
"""
