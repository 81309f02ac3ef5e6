"""losses.loss_and_push: one list's loss values and per-position pushes (notebook 04's widget)."""

import math

import pytest
import torch

from larpo_lite import losses as L


def test_at_zero_scores_the_values_and_pushes_are_the_hand_ones():
    got = L.loss_and_push([0.0] * 4, beta=1.0)
    assert list(got) == list(L.LOSSES)
    values = {k: v for k, (v, _) in got.items()}
    assert values == pytest.approx({"pairwise": math.log(2), "contrastive": math.log(4),
                                    "lambdarank": 6 * math.log(2), "listmle": math.log(24)})
    assert got["pairwise"][1] == pytest.approx([0.5, 0.0, 0.0, -0.5])  # the middle gets nothing
    assert got["contrastive"][1] == pytest.approx([0.75, -0.25, -0.25, -0.25])
    assert got["lambdarank"][1] == pytest.approx([1.5, 0.5, -0.5, -1.5])  # sum_j 1/2 - sum_i 1/2
    assert got["listmle"][1] == pytest.approx([0.75, 5 / 12, -1 / 12, -13 / 12])


@pytest.mark.parametrize("beta", [0.1, 0.5, 2.0])
def test_push_is_minus_the_finite_difference_of_the_loss(beta):
    r = [1.3, -0.2, 0.4, -2.0]
    rewards = [1.0, 0.6, 0.6, 0.0]
    got = L.loss_and_push(r, beta=beta, rewards=rewards)
    h = 1e-6
    for name, (value, push) in got.items():
        def loss_at(x, name=name):
            g = beta * torch.tensor([x], dtype=torch.float64)
            fn = L.get_loss(name)
            rw = torch.tensor([rewards], dtype=torch.float64)
            return float(fn(g) if name == "pairwise" else fn(g, None, rw))  # rewards as labels
        assert value == pytest.approx(loss_at(r))
        for i in range(len(r)):
            up, down = list(r), list(r)
            up[i] += h
            down[i] -= h
            fd = (loss_at(up) - loss_at(down)) / (2 * h)
            assert push[i] == pytest.approx(-fd, abs=1e-6), (name, i)


def test_tied_rewards_drop_lambdarank_pairs():
    r = [0.5, 0.1, -0.3, -0.4]
    (value, push), = L.loss_and_push(r, rewards=[1, 1, 0, 0], names=["lambdarank"]).values()
    by_hand = -sum(math.log(1 / (1 + math.exp(-(r[i] - r[j])))) for i in (0, 1) for j in (2, 3))
    assert value == pytest.approx(by_hand)
    assert L.loss_and_push(r, names=["lambdarank"])["lambdarank"][0] > value  # all 6 pairs


def test_bad_inputs():
    with pytest.raises(ValueError, match="at least 2"):
        L.loss_and_push([1.0])
    with pytest.raises(ValueError, match="beta"):
        L.loss_and_push([1.0, 0.0], beta=0.0)
    with pytest.raises(ValueError, match="rewards"):
        L.loss_and_push([1.0, 0.0], rewards=[1.0])
