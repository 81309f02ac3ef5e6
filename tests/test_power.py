"""The MDE of a seed-averaged paired comparison at another number of seeds."""

import math

import numpy as np
import pytest

from larpo_lite.metrics import paired_over_seeds
from larpo_lite.power import mde_with_seeds


def test_hand_example():
    # d = [1, .5, .5, 0]: Var(d) = 1/6; seed variances [0, .5, .5, 0], mean 1/4, so the seeds'
    # part at 2 seeds is 1/8 and the problems' part V = 1/6 - 1/8 = 1/24
    base = [0, 0, 0, 0]
    treat = [[1, 0, 1, 0], [1, 1, 0, 0]]
    assert mde_with_seeds(base, treat, 1) == pytest.approx(2.8 * math.sqrt((1 / 24 + 1 / 4) / 4))
    assert mde_with_seeds(base, treat, 4) == pytest.approx(2.8 * math.sqrt((1 / 24 + 1 / 16) / 4))
    assert mde_with_seeds(base, treat, 2) == pytest.approx(paired_over_seeds(base, treat).paired.mde)


@pytest.mark.parametrize("baseline_seeds", [0, 3])
def test_at_the_measured_seeds_it_is_the_measured_mde(baseline_seeds):
    rng = np.random.default_rng(0)
    p = rng.uniform(size=50)
    treat = (rng.uniform(size=(3, 50)) < p).astype(float)
    base = (rng.uniform(size=50) < 0.4).astype(float) if baseline_seeds == 0 else \
        (rng.uniform(size=(baseline_seeds, 50)) < 0.4).astype(float)
    measured = paired_over_seeds(base, treat).paired.mde
    assert mde_with_seeds(base, treat, 3) == pytest.approx(measured)
    more = [mde_with_seeds(base, treat, s) for s in (1, 2, 4, 8)]
    assert more == sorted(more, reverse=True) and more[0] > more[-1]  # more seeds, smaller MDE


def test_no_seed_noise_means_seeds_do_not_matter():
    base = [0, 1, 0, 1, 0]
    treat = [[1, 1, 0, 0, 1]] * 3  # every seed gives the same answers
    assert mde_with_seeds(base, treat, 1) == pytest.approx(mde_with_seeds(base, treat, 10))


def test_prediction_matches_a_brute_force_run_with_more_seeds():
    """Predicted from 2 seeds, checked against 8 simulated seeds on the same problems."""
    rng = np.random.default_rng(1)
    n = 4000
    p = rng.beta(0.5, 0.5, size=n)  # each problem's chance of being solved after training
    base = (rng.uniform(size=n) < 0.3).astype(float)
    two = (rng.uniform(size=(2, n)) < p).astype(float)
    eight = (rng.uniform(size=(8, n)) < p).astype(float)
    actual = paired_over_seeds(base, eight).paired.mde
    assert mde_with_seeds(base, two, 8) == pytest.approx(actual, rel=0.05)
    assert mde_with_seeds(base, two, 8) < paired_over_seeds(base, two).paired.mde * 0.95


def test_errors():
    with pytest.raises(ValueError, match="2 seeds"):
        mde_with_seeds([0, 1], [[0, 1]], 2)
    with pytest.raises(ValueError, match="seeds must be"):
        mde_with_seeds([0, 1], [[0, 1], [1, 1]], 0)
    with pytest.raises(ValueError, match="same problems"):
        mde_with_seeds([0, 1, 1], [[0, 1], [1, 1]], 2)
    with pytest.raises(ValueError, match="2 seeds"):  # a baseline with one seed row
        mde_with_seeds([[0, 1]], [[0, 1], [1, 1]], 2)
