"""What sits between the clients and the replicas of ``ltp-deploy serve`` (``--ingress``); no Ray import here,
because Ray Serve reads these settings from the environment when it is first imported."""

from __future__ import annotations

from ltp_deploy.errors import LtpDeployError

# What sits between the clients and the replicas (``--ingress``):
# * "proxy": Ray Serve's own HTTP proxy (Python), bound to --host only. On 2 cores it tops out near 130 one-text
#   requests/s for the 2x SST-2 export, far below what the replica computes (README, serve).
# * "haproxy": Ray Serve's HAProxy ingress (``RAY_SERVE_ENABLE_HA_PROXY``, with the throughput-optimised settings):
#   HAProxy on --host:--port forwards to each replica's own HTTP server (on 127.0.0.1 here): about twice the
#   throughput. HAProxy also opens its stats (8404) and metrics (9101) ports on every interface, so it is opt-in.
INGRESS_ENV = {"proxy": {}, "haproxy": {"RAY_SERVE_ENABLE_HA_PROXY": "1", "RAY_SERVE_THROUGHPUT_OPTIMIZED": "1"}}


def ingress_env(ingress: str) -> dict[str, str]:
    """The environment Ray's processes need for ``ingress``; set it before Ray is imported (Serve reads it then)."""
    if ingress not in INGRESS_ENV:
        raise LtpDeployError(f"--ingress must be one of {', '.join(INGRESS_ENV)}, got {ingress!r}.")
    return INGRESS_ENV[ingress]
