"""Shape buckets (``packing.Ladder``, ``take_rows``): sizes rounded up to few recurring rungs, filler rows after
the real ones, checked against plain Python arithmetic."""

from __future__ import annotations

import pytest
import torch

from ltp_deploy.packing import Ladder, take_rows


@pytest.mark.parametrize("granule, bits", [(16, 3), (8, 3), (3, 1)])
def test_ladder_rounds_up_by_at_most_its_step(granule, bits):
    ladder = Ladder(granule, bits, top=4096)
    rungs = set(ladder.sizes.tolist())
    assert 4096 - ladder.widest_step < max(rungs) <= 4096
    for n in range(1, 5000):
        up = int(ladder.round_up(torch.tensor(n)))
        if n > max(rungs):
            assert up == n  # above the last rung a size is left as it is
            continue
        assert up in rungs and up >= n and up - n < ladder.widest_step
        assert up - n < max(granule, n / 2 ** bits)  # at most 1 / 2**bits more, or one granule
        assert all(r < n for r in rungs if r < up)  # the lowest rung at or above n


def test_take_rows_puts_filler_after_the_real_rows():
    ladder = Ladder(4, 1)
    generator = torch.Generator().manual_seed(0)
    for size in (1, 5, 17, 40):
        mask = torch.rand(size, generator=generator) < 0.5
        mask[0] = True
        rows = take_rows(mask, ladder).tolist()
        real = [i for i, m in enumerate(mask.tolist()) if m]
        assert rows[:len(real)] == real and set(rows[len(real):]) <= {0}
        assert len(rows) == int(ladder.round_up(torch.tensor(len(real))))
        assert take_rows(mask, None).tolist() == real
