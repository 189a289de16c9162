"""kept_freed_memory: training steps on long texts stop paying fresh page faults for their attention tensors."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

# Three training steps of a random two-layer MiniLM-shaped model on 8 x 384 tokens: each attention tensor is
# 8 x 12 x 384 x 384 floats (57 MB), above glibc's largest mmap threshold (32 MiB).
_PROBE = """
import resource, sys, torch
from ltp_deploy.model import EncoderConfig, PrunedClassifier
import contextlib
from ltp_deploy.allocator import kept_freed_memory
scope = kept_freed_memory() if sys.argv[1] == "keep" else contextlib.nullcontext()
torch.manual_seed(0)
cfg = EncoderConfig(arch="bert", vocab_size=1000, hidden_size=384, num_layers=2, num_heads=12,
                    intermediate_size=1536, max_position_embeddings=512, type_vocab_size=2, layer_norm_eps=1e-12,
                    pad_token_id=0, num_labels=2)
model = PrunedClassifier(cfg).train()
ids = torch.randint(1, 1000, (8, 384))
def step():
    model(ids, torch.ones_like(ids), torch.zeros_like(ids))[0].sum().backward()
with scope as took:
    step()
    before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    for _ in range(3):
        step()
    faults = resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before
print(took, faults)
"""


def _probe(code: str, *args: str) -> list[str]:
    """Run ``code`` in a fresh one-thread Python (the allocator setting is process-wide); its printed words."""
    return subprocess.run([sys.executable, "-c", code, *args], capture_output=True, text=True, check=True,
                          env={**os.environ, "OMP_NUM_THREADS": "1"}).stdout.split()


def _faults(mode: str) -> tuple[str, int]:
    took, faults = _probe(_PROBE, mode)
    return took, int(faults)


def _thp_always() -> bool:
    try:
        with open("/sys/kernel/mm/transparent_hugepage/enabled") as f:
            return "[always]" in f.read()
    except OSError:
        return False


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's mallopt: Linux only")
@pytest.mark.skipif(_thp_always(), reason="transparent huge pages set to 'always': fresh blocks fault in 2 MB pages, "
                    "so page faults no longer show whether freed memory is reused")
@pytest.mark.slow
def test_training_steps_on_long_texts_reuse_freed_memory():
    took, kept = _faults("keep")
    _, default = _faults("default")
    assert took == "True"
    assert kept < default / 4  # measured: 50,688 against 588,677 page faults


_RETURN_PROBE = """
import torch
from ltp_deploy.allocator import kept_freed_memory
def rss_mb():
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * 4096 // 2**20
base = rss_mb()
with kept_freed_memory():
    held = [torch.ones(25_000_000) for _ in range(8)]  # 800 MB on the heap
    del held
    inside = rss_mb()
print(inside - base, rss_mb() - base)
"""


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's mallopt: Linux only")
def test_the_heap_goes_back_to_the_system_on_leaving():
    inside, after = map(int, _probe(_RETURN_PROBE))
    assert inside > 600  # kept while inside: freed, not returned
    assert after < 100
