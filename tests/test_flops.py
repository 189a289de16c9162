"""Tests of ltp_deploy.flops against a hand computation written out plainly, layer by layer."""

import numpy as np
import pytest

from ltp_deploy import flops as F
from ltp_deploy.errors import LtpDeployError
from ltp_deploy.encoder_config import EncoderConfig

TINY = EncoderConfig(arch="bert", vocab_size=100, hidden_size=8, num_layers=3, num_heads=2, intermediate_size=32,
                     max_position_embeddings=64, type_vocab_size=2, layer_norm_eps=1e-12, pad_token_id=0,
                     num_labels=2)


def by_hand(n_orig: int, kept: list[int]) -> int:
    """LTP's accounting for TINY (D=8, I=32), one term at a time, in exact integers."""
    D, I = 8, 32
    total = 0
    n_in = n_orig
    for n_out in kept:
        total += 3 * 2 * n_in * D * D  # Q, K, V projections
        total += 2 * n_in * n_in * D  # scores Q K^T
        total += 2 * n_in * n_in * D  # context P V
        total += 2 * n_in * D * D  # attention output projection
        total += 2 * n_out * D * I  # feed-forward up
        total += 2 * n_out * I * D  # feed-forward down
        n_in = n_out
    return total


def test_layer_flops_by_hand():
    # n_in=5, n_out=3: 6*5*64 + 4*25*8 + 2*5*64 + 4*3*8*32 = 1920 + 800 + 640 + 3072
    assert F.layer_flops(TINY, 5, 3) == 6432.0
    assert F.layer_flops(TINY, 5, 3) == by_hand(5, [3])  # one layer of the hand loop


@pytest.mark.parametrize("n_orig,kept", [(10, [10, 9, 6]), (7, [7, 7, 7]), (12, [12, 4, 1]), (1, [1, 1, 1])])
def test_sequence_flops_matches_hand_loop(n_orig, kept):
    assert F.sequence_flops(TINY, n_orig, kept) == by_hand(n_orig, kept)


def test_dense_equals_pruned_when_nothing_dropped():
    for n in (1, 5, 17, 64):
        assert F.sequence_flops(TINY, n, [n] * 3) == F.dense_flops(TINY, n) == by_hand(n, [n] * 3)
    n = np.array([4, 9, 13])
    assert F.flops_reduction(TINY, n, np.repeat(n[:, None], 3, axis=1)) == 1.0


def test_reduction_above_one_when_tokens_drop():
    n_orig = np.array([10, 12])
    kept = np.array([[10, 9, 6], [12, 4, 1]])
    expected = (by_hand(10, [10] * 3) + by_hand(12, [12] * 3)) / (by_hand(10, [10, 9, 6]) + by_hand(12, [12, 4, 1]))
    assert F.flops_reduction(TINY, n_orig, kept) == pytest.approx(expected, rel=1e-12)
    assert expected > 1


def test_vectorised_equals_per_sequence():
    rng = np.random.default_rng(0)
    n_orig = rng.integers(1, 64, size=50)
    # Cumulative pruning: each layer keeps a random number of the previous layer's tokens (at least 1).
    kept = np.empty((50, 3), dtype=np.int64)
    prev = n_orig
    for layer in range(3):
        prev = rng.integers(1, prev + 1)
        kept[:, layer] = prev
    batch = F.flops_from_kept(TINY, n_orig, kept)
    assert batch.shape == (50,) and batch.dtype == np.float64
    assert batch.tolist() == [F.sequence_flops(TINY, n, row) for n, row in zip(n_orig, kept)]
    assert batch.tolist() == [by_hand(int(n), row.tolist()) for n, row in zip(n_orig, kept)]
    assert F.dense_flops(TINY, n_orig).tolist() == [by_hand(int(n), [int(n)] * 3) for n in n_orig]


def test_config_dicts_accepted():
    from dataclasses import asdict

    export_config = asdict(TINY)  # what export metadata stores
    hf_config = {"num_hidden_layers": 3, "hidden_size": 8, "intermediate_size": 32}  # a config.json
    for cfg in (export_config, hf_config):
        assert F.sequence_flops(cfg, 10, [10, 9, 6]) == by_hand(10, [10, 9, 6])
    with pytest.raises(LtpDeployError, match="intermediate_size"):
        F.dense_flops({"hidden_size": 8, "num_layers": 3}, 10)


def test_wrong_kept_shape_is_a_clear_error():
    with pytest.raises(LtpDeployError, match="one row of 3 counts per sequence"):
        F.flops_from_kept(TINY, [10, 12], [[10, 9], [12, 4]])


def test_minilm_magnitude():
    """MiniLM-L6 (D=384, I=1536) on 25 tokens: about 0.53 GFLOPs, the usual ~2*params*tokens ballpark."""
    cfg = {"num_layers": 6, "hidden_size": 384, "intermediate_size": 1536}
    per_layer = 8 * 25 * 384**2 + 4 * 25**2 * 384 + 4 * 25 * 384 * 1536
    assert F.dense_flops(cfg, 25) == 6 * per_layer
    assert 0.5e9 < F.dense_flops(cfg, 25) < 0.56e9
