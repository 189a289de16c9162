"""The environment Ray is started with for ``ltp-deploy serve``: Ray's own processes on loopback, and what sits
between the clients and the replicas (``--ingress``). No Ray import here, because Ray reads these settings from
the environment when it is first imported."""

from __future__ import annotations

from ltp_deploy.errors import LtpDeployError

# Ray's own processes (GCS, raylet, object manager, dashboard and runtime-env agents, metrics, workers) bind the
# node's address. ``ray.init(_node_ip_address="127.0.0.1")`` alone does not keep them there: Ray replaces a loopback
# address with this machine's outward one (``services.resolve_ip_for_localhost``), unless it believes it runs on a
# laptop that takes no cluster (``RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER=0``, read once on import, despite its name the
# switch on Linux too). Then every one of them binds 127.0.0.1: the server is a single-machine Ray instance, so
# nothing but the HTTP port needs to be reachable from elsewhere.
LOOPBACK_ENV = {"RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER": "0"}

# What sits between the clients and the replicas (``--ingress``):
# * "proxy": Ray Serve's own HTTP proxy (Python), bound to --host only. On 2 cores it tops out near 130 one-text
#   requests/s for the 2x SST-2 export, far below what the replica computes (docs/serving.md).
# * "haproxy": Ray Serve's HAProxy ingress (``RAY_SERVE_ENABLE_HA_PROXY``, with the throughput-optimised settings):
#   HAProxy on --host:--port forwards to each replica's own HTTP server (also on --host): about twice the
#   throughput. It is opt-in because HAProxy opens two more ports, on every interface whatever --host says: its stats
#   page (8404) and its Prometheus metrics (9101), fixed as ``bind *:PORT`` / ``bind :PORT`` in Ray's
#   ``ray/serve/_private/haproxy_templates.py`` (``RAY_SERVE_HAPROXY_STATS_PORT`` / ``_METRICS_PORT`` move them;
#   nothing binds them to one address or turns them off).
INGRESS_ENV = {"proxy": {}, "haproxy": {"RAY_SERVE_ENABLE_HA_PROXY": "1", "RAY_SERVE_THROUGHPUT_OPTIMIZED": "1"}}


def ingress_env(ingress: str) -> dict[str, str]:
    """The environment Ray's processes need for ``ingress``; set it before Ray is imported (Serve reads it then)."""
    if ingress not in INGRESS_ENV:
        raise LtpDeployError(f"--ingress must be one of {', '.join(INGRESS_ENV)}, got {ingress!r}.")
    return INGRESS_ENV[ingress]
