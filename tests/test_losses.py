"""Tests for larpo_lite.losses (pairwise, contrastive, LambdaRank, ListMLE)."""

from __future__ import annotations

import collections
import itertools
import math
import types

import pytest
import torch
import torch.nn.functional as F
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from larpo_lite import losses as L

pytestmark = pytest.mark.usefixtures("one_thread")


FAST = settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])

# (case id, loss name, uses rewards, extra kwargs)
CASES = [
    ("pairwise", "pairwise", False, {}),
    ("contrastive", "contrastive", False, {}),
    ("listmle", "listmle", False, {}),
    ("lambdarank", "lambdarank", False, {}),
    ("lambdarank_ties", "lambdarank", True, {"weighting": "none"}),
    ("lipo", "lambdarank", True, {"weighting": "lipo"}),
    ("listmle_labels", "listmle", True, {}),
    ("contrastive_labels", "contrastive", True, {}),
]
CASE_IDS = [c[0] for c in CASES]


def call(case, gamma, mask=None, rewards=None, **kw):
    _, name, uses_rewards, extra = case
    fn = L.get_loss(name)
    if uses_rewards and name in ("listmle", "contrastive"):  # the rewards as labels
        return fn(gamma, mask, labels=rewards, **extra, **kw)
    if uses_rewards:
        return fn(gamma, mask, rewards=rewards, **extra, **kw)
    return fn(gamma, mask, **kw)


def sorted_rewards(B, K, gen=None, levels=None, dtype=torch.float64):
    """[B, K] rewards in [0, 1], non-increasing along each row; `levels` forces ties."""
    if levels is None:
        r = torch.rand(B, K, generator=gen, dtype=dtype)
    else:
        idx = torch.randint(0, len(levels), (B, K), generator=gen)
        r = torch.tensor(levels, dtype=dtype)[idx]
    return r.sort(dim=1, descending=True).values


def lengths_to_mask(lengths, K):
    return torch.arange(K).unsqueeze(0) < torch.tensor(lengths).unsqueeze(1)


@st.composite
def batches(draw, max_abs=1e4, max_k=6, allow_empty_rows=True):
    """(gamma [B, K] float64, mask [B, K], rewards [B, K] sorted best-first, with ties)."""
    B = draw(st.integers(1, 4))
    K = draw(st.integers(2, max_k))
    choices = ([0] if allow_empty_rows else []) + list(range(2, K + 1))
    lengths = draw(st.lists(st.sampled_from(choices), min_size=B, max_size=B))
    vals = draw(
        st.lists(
            st.floats(-max_abs, max_abs, allow_nan=False, allow_infinity=False),
            min_size=B * K,
            max_size=B * K,
        )
    )
    levels = draw(
        st.lists(st.sampled_from([0.0, 0.25, 0.5, 0.75, 1.0]), min_size=B * K, max_size=B * K)
    )
    gamma = torch.tensor(vals, dtype=torch.float64).view(B, K)
    rewards = torch.tensor(levels, dtype=torch.float64).view(B, K)
    rewards = rewards.sort(dim=1, descending=True).values
    return gamma, lengths_to_mask(lengths, K), rewards


def loss_and_grad(case, gamma, mask, rewards, **kw):
    g = gamma.detach().clone().requires_grad_(True)
    loss = call(case, g, mask, rewards, **kw)
    (grad,) = torch.autograd.grad(loss.sum(), g)
    return loss.detach(), grad


# --------------------------------------------------------------------------- identities


def test_k2_all_losses_agree():
    gen = torch.Generator().manual_seed(0)
    gamma = torch.randn(16, 2, generator=gen, dtype=torch.float64) * 3
    ref = L.pairwise_loss(gamma, reduction="none")
    for name in ("contrastive", "listmle", "lambdarank"):
        torch.testing.assert_close(L.get_loss(name)(gamma, reduction="none"), ref)
    # Same identity when the 2 real entries sit in a padded K=4 row.
    padded = torch.cat([gamma, torch.randn(16, 2, generator=gen, dtype=torch.float64)], dim=1)
    mask = lengths_to_mask([2] * 16, 4)
    for name in ("pairwise", "contrastive", "listmle", "lambdarank"):
        torch.testing.assert_close(L.get_loss(name)(padded, mask, reduction="none"), ref)


@pytest.mark.parametrize("K", [2, 3, 4, 5, 7])
def test_zero_scores(K):
    gamma = torch.zeros(3, K, dtype=torch.float64)
    assert L.pairwise_loss(gamma).item() == pytest.approx(math.log(2))
    assert L.contrastive_loss(gamma).item() == pytest.approx(math.log(K))
    assert L.listmle_loss(gamma).item() == pytest.approx(math.log(math.factorial(K)))
    assert L.lambdarank_loss(gamma).item() == pytest.approx(K * (K - 1) / 2 * math.log(2))


def neg_log_plackett_luce(scores):
    """-log P(order) under Plackett-Luce, by an explicit product of softmaxes (float64)."""
    prob = 1.0
    for i in range(len(scores)):
        rest = scores[i:]
        prob *= math.exp(scores[i]) / sum(math.exp(s) for s in rest)
    return -math.log(prob)


@pytest.mark.parametrize("K", [2, 3, 4, 5, 6])
def test_listmle_equals_plackett_luce_brute_force(K):
    gen = torch.Generator().manual_seed(K)
    gamma = torch.randn(5, K, generator=gen, dtype=torch.float64) * 2
    got = L.listmle_loss(gamma, reduction="none")
    for b in range(5):
        assert got[b].item() == pytest.approx(neg_log_plackett_luce(gamma[b].tolist()), rel=1e-12)
    # Padded version: the real prefix only.
    lengths = [K, 2, 0, max(2, K - 1), K]
    mask = lengths_to_mask(lengths, K)
    got = L.listmle_loss(gamma, mask, reduction="none")
    for b, n in enumerate(lengths):
        want = neg_log_plackett_luce(gamma[b, :n].tolist()) if n else 0.0
        assert got[b].item() == pytest.approx(want, rel=1e-12, abs=1e-12)


def test_contrastive_and_pairwise_formulas():
    gen = torch.Generator().manual_seed(1)
    gamma = torch.randn(4, 5, generator=gen, dtype=torch.float64)
    want_c = torch.logsumexp(gamma, dim=1) - gamma[:, 0]
    torch.testing.assert_close(L.contrastive_loss(gamma, reduction="none"), want_c)
    torch.testing.assert_close(L.contrastive_loss(gamma), want_c.mean())


def test_lambdarank_none_matches_loop():
    gen = torch.Generator().manual_seed(2)
    gamma = torch.randn(3, 5, generator=gen, dtype=torch.float64)
    got = L.lambdarank_loss(gamma, reduction="none")
    for b in range(3):
        g = gamma[b].tolist()
        want = sum(math.log1p(math.exp(-(g[i] - g[j]))) for i in range(5) for j in range(i + 1, 5))
        assert got[b].item() == pytest.approx(want, rel=1e-12)


# --------------------------------------------------------------------------- pairwise


def test_pairwise_uses_first_and_last_real_entry():
    gen = torch.Generator().manual_seed(3)
    gamma = torch.randn(3, 5, generator=gen, dtype=torch.float64)
    want = -F.logsigmoid(gamma[:, 0] - gamma[:, -1])
    torch.testing.assert_close(L.pairwise_loss(gamma, reduction="none"), want)
    # Middle entries do not matter.
    other = gamma.clone()
    other[:, 1:-1] = torch.randn(3, 3, generator=gen, dtype=torch.float64) * 100
    torch.testing.assert_close(L.pairwise_loss(other, reduction="none"), want)
    # With a mask: the last REAL entry.
    lengths = [3, 5, 2]
    mask = lengths_to_mask(lengths, 5)
    want = torch.stack(
        [-F.logsigmoid(gamma[b, 0] - gamma[b, n - 1]) for b, n in enumerate(lengths)]
    )
    torch.testing.assert_close(L.pairwise_loss(gamma, mask, reduction="none"), want)
    torch.testing.assert_close(
        L.margins(gamma, mask),
        torch.stack([gamma[b, 0] - gamma[b, n - 1] for b, n in enumerate(lengths)]),
    )


# --------------------------------------------------------------------------- gradients


@pytest.mark.parametrize("case", CASES, ids=CASE_IDS)
@pytest.mark.parametrize("masked", [False, True], ids=["nomask", "mask"])
@pytest.mark.parametrize("reduction", ["mean", "none"])
def test_gradcheck(case, masked, reduction):
    gen = torch.Generator().manual_seed(4)
    B, K = 4, 5
    gamma = (torch.randn(B, K, generator=gen, dtype=torch.float64) * 2).requires_grad_(True)
    mask = lengths_to_mask([5, 3, 2, 0], K) if masked else None
    rewards = sorted_rewards(B, K, gen, levels=[0.0, 0.3, 0.6, 1.0])
    assert torch.autograd.gradcheck(
        lambda g: call(case, g, mask, rewards, reduction=reduction), (gamma,)
    )


# --------------------------------------------------------------------------- properties


@pytest.mark.parametrize("case", CASES, ids=CASE_IDS)
@FAST
@given(data=batches(max_abs=1e4))
def test_stability_large_scores(case, data):
    gamma64, mask, rewards = data
    for dtype in (torch.float32, torch.float64):
        gamma = gamma64.to(dtype)
        loss, grad = loss_and_grad(case, gamma, mask, rewards.to(dtype))
        assert torch.isfinite(loss).all()
        assert torch.isfinite(grad).all()
        assert loss.item() >= 0.0
        assert (grad[~mask] == 0).all()
        rows, _ = loss_and_grad(case, gamma, mask, rewards.to(dtype), reduction="none")
        assert torch.isfinite(rows).all() and (rows >= 0).all()
        assert (rows[mask.sum(1) == 0] == 0).all()


@pytest.mark.parametrize("case", CASES, ids=CASE_IDS)
@FAST
@given(
    data=batches(max_abs=1e3),
    pad=st.lists(st.floats(-1e6, 1e6, allow_nan=False), min_size=1, max_size=12),
)
def test_padding_invariance(case, data, pad):
    gamma, mask, rewards = data
    B, K = gamma.shape
    P = 1 + len(pad) % 3
    # Padded entries, the existing ones and P appended columns, get arbitrary values.
    gamma_pad = torch.cat([gamma, torch.zeros(B, P, dtype=torch.float64)], dim=1)
    mask_pad = torch.cat([mask, torch.zeros(B, P, dtype=torch.bool)], dim=1)
    n_pad = int((~mask_pad).sum())
    gamma_pad[~mask_pad] = torch.tensor((pad * n_pad)[:n_pad], dtype=torch.float64)
    rewards_pad = torch.cat([rewards, torch.rand(B, P, dtype=torch.float64)], dim=1)

    base_loss, base_grad = loss_and_grad(case, gamma.masked_fill(~mask, 0.0), mask, rewards)
    loss, grad = loss_and_grad(case, gamma_pad, mask_pad, rewards_pad)
    torch.testing.assert_close(loss, base_loss, rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(grad[:, :K][mask], base_grad[mask], rtol=1e-12, atol=1e-12)
    assert (grad[~mask_pad] == 0).all()


@pytest.mark.parametrize("bad", [math.inf, -math.inf, math.nan])
@pytest.mark.parametrize("case", CASES, ids=CASE_IDS)
def test_nonfinite_padding_is_ignored(case, bad):
    gen = torch.Generator().manual_seed(5)
    gamma = torch.randn(3, 4, generator=gen, dtype=torch.float64)
    mask = lengths_to_mask([4, 2, 0], 4)
    rewards = sorted_rewards(3, 4, gen)
    base_loss, base_grad = loss_and_grad(case, gamma, mask, rewards)
    loss, grad = loss_and_grad(
        case, gamma.masked_fill(~mask, bad), mask, rewards.masked_fill(~mask, bad)
    )
    torch.testing.assert_close(loss, base_loss)
    torch.testing.assert_close(grad, base_grad)
    assert (grad[~mask] == 0).all()


@pytest.mark.parametrize("case", CASES, ids=CASE_IDS)
@FAST
@given(data=batches(max_abs=1e3), shift=st.floats(-1e3, 1e3))
def test_shift_invariance(case, data, shift):
    """All losses depend only on score differences within a row."""
    gamma, mask, rewards = data
    if case[0] == "lipo":  # LiPO's ranks must survive the rounding of gamma + shift

        def order(x):
            return x.masked_fill(~mask, -math.inf).sort(dim=1, descending=True, stable=True)[1]

        assume(torch.equal(order(gamma), order(gamma + shift)))
    a = call(case, gamma, mask, rewards, reduction="none")
    b = call(case, gamma + shift, mask, rewards, reduction="none")
    torch.testing.assert_close(a, b, rtol=1e-9, atol=1e-7)


@pytest.mark.parametrize("case", CASES, ids=CASE_IDS)
@FAST
@given(data=batches(max_abs=50.0, allow_empty_rows=False), scale=st.floats(1.0, 20.0))
def test_scaling_sorted_scores_lowers_loss(case, data, scale):
    """If the model already ranks the list right, sharpening the scores never hurts."""
    gamma, mask, rewards = data
    gamma = gamma.masked_fill(~mask, -math.inf).sort(dim=1, descending=True).values
    gamma = gamma.masked_fill(~mask, 0.0)
    a = call(case, gamma, mask, rewards, reduction="none")
    b = call(case, gamma * scale, mask, rewards, reduction="none")
    assert (b <= a + 1e-9 * (1 + a.abs())).all()


@FAST
@given(data=batches(max_abs=20.0, max_k=5, allow_empty_rows=False))
def test_sorted_order_minimises_listwise_losses(data):
    """Plackett-Luce's mode and LambdaRank's optimum: the list sorted by the scores."""
    gamma, mask, _ = data
    for b in range(gamma.shape[0]):
        real = gamma[b, mask[b]]
        best = real.sort(descending=True).values.unsqueeze(0)
        perms = torch.tensor(list(itertools.permutations(range(real.numel()))))
        for name in ("listmle", "lambdarank"):
            fn = L.get_loss(name)
            lo = fn(best).item()
            every = fn(real[perms], reduction="none")  # one row per permutation
            assert (every >= lo - 1e-9 * (1 + abs(lo))).all()


@FAST
@given(data=batches(max_abs=1e3, allow_empty_rows=False), seed=st.integers(0, 2**16))
def test_permuting_negatives(data, seed):
    """Contrastive ignores the order of the negatives; pairwise ignores the middle entries."""
    gamma, mask, _ = data
    gen = torch.Generator().manual_seed(seed)
    neg_perm, mid_perm = gamma.clone(), gamma.clone()
    for b in range(gamma.shape[0]):
        n = int(mask[b].sum())
        neg_perm[b, 1:n] = gamma[b, 1 + torch.randperm(n - 1, generator=gen)]
        mid_perm[b, 1 : n - 1] = gamma[b, 1 + torch.randperm(n - 2, generator=gen)]
    torch.testing.assert_close(
        L.contrastive_loss(neg_perm, mask), L.contrastive_loss(gamma, mask), rtol=1e-12, atol=1e-9
    )
    torch.testing.assert_close(L.pairwise_loss(mid_perm, mask), L.pairwise_loss(gamma, mask))


def test_pairwise_ignores_middle_permutation():
    gen = torch.Generator().manual_seed(6)
    gamma = torch.randn(2, 6, generator=gen, dtype=torch.float64)
    perm = gamma[:, [0, 3, 1, 4, 2, 5]]
    torch.testing.assert_close(L.pairwise_loss(perm), L.pairwise_loss(gamma))


# --------------------------------------------------------------------------- padding rows


@pytest.mark.parametrize("case", CASES, ids=CASE_IDS)
def test_all_padding_rows_are_excluded_from_mean(case):
    gen = torch.Generator().manual_seed(7)
    gamma = torch.randn(4, 4, generator=gen, dtype=torch.float64)
    rewards = sorted_rewards(4, 4, gen)
    mask = lengths_to_mask([4, 0, 3, 0], 4)
    keep = torch.tensor([0, 2])
    with_empty = call(case, gamma, mask, rewards)
    without = call(case, gamma[keep], mask[keep], rewards[keep])
    torch.testing.assert_close(with_empty, without)
    rows = call(case, gamma, mask, rewards, reduction="none")
    assert rows[1].item() == 0.0 and rows[3].item() == 0.0
    torch.testing.assert_close(call(case, gamma, mask, rewards, reduction="sum"), rows.sum())


@pytest.mark.parametrize("case", CASES, ids=CASE_IDS)
def test_every_row_padding_gives_zero_with_grad(case):
    gamma = torch.randn(3, 4, dtype=torch.float64, requires_grad=True)
    mask = torch.zeros(3, 4, dtype=torch.bool)
    rewards = torch.zeros(3, 4, dtype=torch.float64)
    loss = call(case, gamma, mask, rewards)
    assert loss.item() == 0.0
    loss.backward()
    assert (gamma.grad == 0).all()


def test_half_precision_is_computed_in_float32():
    gamma = (torch.randn(2, 4) * 1e3).to(torch.bfloat16).requires_grad_(True)
    for name in L.LOSSES:
        loss = L.get_loss(name)(gamma)
        assert loss.dtype == torch.float32 and torch.isfinite(loss)
        loss.backward()
        assert torch.isfinite(gamma.grad).all()
        gamma.grad = None


# --------------------------------------------------------------------------- LiPO weights


def lipo_weights_loop(gamma_row, rewards_row):
    """Direct transcription of LiPO's w_ij for one unpadded row (plain Python)."""
    m = len(gamma_row)
    # 1-based rank under the scores, higher score first, ties broken by position.
    order = sorted(range(m), key=lambda i: (-gamma_row[i], i))
    tau = [0] * m
    for r, i in enumerate(order):
        tau[i] = r + 1
    G = [2.0**psi - 1.0 for psi in rewards_row]
    w = [[0.0] * m for _ in range(m)]
    for i in range(m):
        for j in range(i + 1, m):
            if rewards_row[i] == rewards_row[j]:
                continue
            w[i][j] = abs(G[i] - G[j]) * abs(1 / math.log(1 + tau[i]) - 1 / math.log(1 + tau[j]))
    return w


def test_lipo_hand_computed():
    # gamma = [0.5, 2.0, -1.0], psi = [1.0, 0.5, 0.0]
    # ranks under gamma: tau = [2, 1, 3]
    # G = 2^psi - 1 = [1, sqrt(2) - 1, 0] = [1, 0.41421356, 0]
    # 1/D(tau) = 1/ln(1 + tau) = [1/ln 3, 1/ln 2, 1/ln 4] = [0.91023923, 1.44269504, 0.72134752]
    # w01 = |1 - 0.41421356| * |0.91023923 - 1.44269504| = 0.58578644 * 0.53245581 = 0.31190539
    # w02 = |1 - 0|          * |0.91023923 - 0.72134752| = 1.0        * 0.18889171 = 0.18889171
    # w12 = |0.41421356 - 0| * |1.44269504 - 0.72134752| = 0.41421356 * 0.72134752 = 0.29879193
    # -log sigmoid(d) = log(1 + e^-d):
    #   d01 = -1.5 -> 1.70141328, d02 = 1.5 -> 0.20141328, d12 = 3.0 -> 0.04858735
    # L = 0.31190539*1.70141328 + 0.18889171*0.20141328 + 0.29879193*0.04858735 = 0.58324279
    gamma = torch.tensor([[0.5, 2.0, -1.0]], dtype=torch.float64)
    rewards = torch.tensor([[1.0, 0.5, 0.0]], dtype=torch.float64)
    w = L.lambdarank_weights(gamma, rewards=rewards, weighting="lipo")[0]
    want = torch.tensor(
        [[0.0, 0.31190539, 0.18889171], [0.0, 0.0, 0.29879193], [0.0, 0.0, 0.0]],
        dtype=torch.float64,
    )
    torch.testing.assert_close(w, want, rtol=0, atol=1e-8)
    torch.testing.assert_close(
        w, torch.tensor(lipo_weights_loop([0.5, 2.0, -1.0], [1.0, 0.5, 0.0]), dtype=torch.float64)
    )
    loss = L.lambdarank_loss(gamma, rewards=rewards, weighting="lipo")
    assert loss.item() == pytest.approx(0.58324279, abs=1e-8)


def test_lipo_tied_scores_ranked_by_position():
    # gamma ties: [1, 1, 0] -> tau = [1, 2, 3]
    gamma = torch.tensor([[1.0, 1.0, 0.0]], dtype=torch.float64)
    rewards = torch.tensor([[1.0, 0.5, 0.0]], dtype=torch.float64)
    w = L.lambdarank_weights(gamma, rewards=rewards, weighting="lipo")[0]
    want = lipo_weights_loop([1.0, 1.0, 0.0], [1.0, 0.5, 0.0])
    torch.testing.assert_close(w, torch.tensor(want, dtype=torch.float64))
    assert w[0, 1].item() == pytest.approx(
        (1 - (2**0.5 - 1)) * (1 / math.log(2) - 1 / math.log(3)), rel=1e-12
    )


@FAST
@given(data=batches(max_abs=5.0))
def test_lipo_weights_match_loop(data):
    gamma, mask, rewards = data
    w = L.lambdarank_weights(gamma, mask, rewards, weighting="lipo")
    for b in range(gamma.shape[0]):
        n = int(mask[b].sum())
        want = torch.zeros(gamma.shape[1], gamma.shape[1], dtype=torch.float64)
        if n:
            want[:n, :n] = torch.tensor(
                lipo_weights_loop(gamma[b, :n].tolist(), rewards[b, :n].tolist()),
                dtype=torch.float64,
            )
        torch.testing.assert_close(w[b], want, rtol=1e-12, atol=1e-15)
    # And the loss is the weighted sum of the pair losses.
    rows = L.lambdarank_loss(gamma, mask, rewards, weighting="lipo", reduction="none")
    pair = -F.logsigmoid(gamma.unsqueeze(2) - gamma.unsqueeze(1))
    torch.testing.assert_close(rows, (w * pair).sum(dim=(1, 2)))


def test_tied_rewards_give_no_pair():
    gamma = torch.tensor([[3.0, 1.0, -2.0, 0.5]], dtype=torch.float64)
    rewards = torch.tensor([[1.0, 1.0, 0.0, 0.0]], dtype=torch.float64)
    for weighting in ("none", "lipo"):
        w = L.lambdarank_weights(gamma, rewards=rewards, weighting=weighting)[0]
        assert w[0, 1].item() == 0.0 and w[2, 3].item() == 0.0
        assert (w[0, 2:] > 0).all() and (w[1, 2:] > 0).all()
    # weighting="none" with rewards: only the 4 untied pairs count.
    g = gamma[0].tolist()
    want = sum(math.log1p(math.exp(-(g[i] - g[j]))) for i in (0, 1) for j in (2, 3))
    got = L.lambdarank_loss(gamma, rewards=rewards)
    assert got.item() == pytest.approx(want, rel=1e-12)
    # All rewards tied: no pair at all.
    flat = torch.full_like(gamma, 0.5)
    assert L.lambdarank_loss(gamma, rewards=flat, weighting="lipo").item() == 0.0
    assert L.lambdarank_loss(gamma, rewards=flat).item() == 0.0


# --------------------------------------------------------------------------- diagnostics


def test_ranking_accuracy_and_margins():
    gamma = torch.tensor([[3.0, 1.0, 2.0], [0.0, 1.0, 9.0]])
    mask = torch.tensor([[True, True, True], [True, True, False]])
    # Row 0 pairs: (3>1) yes, (3>2) yes, (1>2) no; row 1: (0>1) no.  -> 2 / 4
    acc = L.ranking_accuracy(gamma, mask)
    assert acc.dtype == torch.float32 and acc.item() == pytest.approx(0.5)
    rewards = torch.tensor([[1.0, 0.5, 0.5], [1.0, 0.0, 0.0]])
    assert L.ranking_accuracy(gamma, mask, rewards).item() == pytest.approx(2 / 3)
    torch.testing.assert_close(L.margins(gamma, mask), torch.tensor([1.0, -1.0]))
    assert L.ranking_accuracy(gamma, torch.zeros_like(mask)).item() == 0.0


def test_get_loss_registry():
    assert set(L.LOSSES) == {"pairwise", "contrastive", "lambdarank", "listmle"}
    assert L.get_loss("listmle") is L.listmle_loss
    with pytest.raises(ValueError, match="contrastive, lambdarank, listmle, pairwise"):
        L.get_loss("dpo-ish")


# --------------------------------------------------------------------------- bad input


@pytest.mark.parametrize("name", sorted(L.LOSSES))
def test_bad_inputs_raise(name):
    fn = L.get_loss(name)
    g = torch.randn(2, 3)
    with pytest.raises(ValueError, match="2-D"):
        fn(torch.randn(3))
    with pytest.raises(ValueError, match="2-D"):
        fn(torch.randn(2, 3, 4))
    with pytest.raises(ValueError, match="floating-point"):
        fn(torch.ones(2, 3, dtype=torch.long))
    with pytest.raises(ValueError, match="mask shape"):
        fn(g, torch.ones(2, 4, dtype=torch.bool))
    with pytest.raises(ValueError, match="holes"):
        fn(g, torch.tensor([[True, False, True], [True, True, True]]))
    with pytest.raises(ValueError, match="exactly 1 real candidate"):
        fn(g, torch.tensor([[True, False, False], [True, True, True]]))
    with pytest.raises(ValueError, match="exactly 1 real candidate"):
        fn(torch.randn(2, 1))
    with pytest.raises(ValueError, match="reduction"):
        fn(g, reduction="average")


def test_bad_lambdarank_inputs_raise():
    g = torch.randn(2, 3)
    r = torch.tensor([[1.0, 0.5, 0.0], [0.9, 0.9, 0.1]])
    with pytest.raises(ValueError, match="weighting"):
        L.lambdarank_loss(g, weighting="ndcg")
    with pytest.raises(ValueError, match="needs rewards"):
        L.lambdarank_loss(g, weighting="lipo")
    with pytest.raises(ValueError, match="rewards shape"):
        L.lambdarank_loss(g, rewards=torch.zeros(2, 4), weighting="lipo")
    with pytest.raises(ValueError, match="non-increasing"):
        L.lambdarank_loss(g, rewards=r.flip(1), weighting="lipo")
    with pytest.raises(ValueError, match="finite"):
        L.lambdarank_loss(g, rewards=r.masked_fill(torch.eye(2, 3, dtype=torch.bool), math.nan))
    L.lambdarank_loss(g, rewards=r, weighting="lipo")  # fine


# --------------------------------------------------------------------------- TRL


def test_pairwise_matches_trl_dpo_sigmoid_loss():
    """Calls TRL's own DPOTrainer._compute_loss (loss_type="sigmoid") on a stub trainer.

    In trl 1.x the sigmoid DPO loss is inline in DPOTrainer._compute_loss
    (``per_sequence_loss = -F.logsigmoid(self.beta * delta_score)`` with
    ``delta_score = (chosen_logps - ref_chosen_logps) - (rejected_logps - ref_rejected_logps)``).
    We feed it a fake model whose per-token log-probs sum to the sequence log-probs
    (one completion token per sequence) and precomputed reference log-probs.
    """
    pytest.importorskip("trl")
    from trl import DPOTrainer

    B, beta = 6, 0.1
    gen = torch.Generator().manual_seed(8)
    logp_c, logp_r, ref_c, ref_r = (
        torch.randn(B, generator=gen, dtype=torch.float64) * 5 - 30 for _ in range(4)
    )
    logps = torch.cat([logp_c, logp_r]).requires_grad_(True)  # TRL batch = [chosen; rejected]

    class FakeModel:
        training = True

        def __call__(self, **kwargs):
            n = logps.shape[0]
            return types.SimpleNamespace(
                log_probs=logps.unsqueeze(1),  # [2B, 1] per-token log-probs
                entropy=torch.zeros(n, 1),
                mean_logits=torch.zeros(n, 1),
                is_top1=torch.zeros(n, 1, dtype=torch.bool),
                aux_loss=None,
            )

    class FakeAccelerator:
        device = torch.device("cpu")

        def gather_for_metrics(self, x):
            return x

        def gather(self, x):
            return x

    model = FakeModel()
    trainer = object.__new__(DPOTrainer)
    trainer.__dict__.update(
        model=model,
        accelerator=FakeAccelerator(),
        aux_loss_enabled=False,
        ld_alpha=None,
        precompute_ref_logps=True,
        f_divergence_type="reverse_kl",
        loss_types=["sigmoid"],
        loss_weights=[1.0],
        beta=beta,
        use_weighting=False,
        _metrics={"train": collections.defaultdict(list), "eval": collections.defaultdict(list)},
        _total_train_tokens=0,
        _tp_size=1,
    )
    ones = torch.ones(2 * B, 2, dtype=torch.long)
    inputs = {
        "input_ids": torch.zeros(2 * B, 2, dtype=torch.long),
        "attention_mask": ones,
        "completion_mask": ones,
        "ref_chosen_logps": ref_c,
        "ref_rejected_logps": ref_r,
    }
    trl_loss = trainer._compute_loss(model, inputs, return_outputs=False)
    (trl_grad,) = torch.autograd.grad(trl_loss, logps)

    ours_logps = torch.cat([logp_c, logp_r]).requires_grad_(True)
    oc, orj = ours_logps.chunk(2)
    gamma = beta * torch.stack([oc - ref_c, orj - ref_r], dim=1)  # [B, 2], chosen first
    ours = L.pairwise_loss(gamma)
    (our_grad,) = torch.autograd.grad(ours, ours_logps)

    torch.testing.assert_close(ours, trl_loss.to(ours.dtype), rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(our_grad, trl_grad, rtol=1e-12, atol=1e-12)


# --------------------------------------------------------------------------- labels (no label noise)


def _group_permutation(labels_row, gen):
    """A permutation of positions that only swaps entries of equal label ([K] long)."""
    perm = torch.arange(labels_row.numel())
    for v in labels_row.unique():
        idx = (labels_row == v).nonzero().flatten()
        perm[idx] = idx[torch.randperm(idx.numel(), generator=gen)]
    return perm


@pytest.mark.parametrize("name", ["listmle", "contrastive"])
@FAST
@given(data=batches(max_abs=30.0, allow_empty_rows=False), seed=st.integers(0, 2**16))
def test_labels_permuting_equally_labelled_responses_changes_nothing(name, data, seed):
    """Within a label group no order is trained: loss equal, gradient permuted along.
    (Contrastive's positive is column 0 by definition: its permutations keep it in place.)"""
    gamma, mask, labels = data
    gen = torch.Generator().manual_seed(seed)
    groups = labels.masked_fill(~mask, -1.0)  # padding is its own group
    if name == "contrastive":
        groups[:, 0] = 2.0
    perm = torch.stack([_group_permutation(groups[b], gen) for b in range(gamma.shape[0])])
    fn = L.get_loss(name)
    g1 = gamma.clone().requires_grad_(True)
    g2 = gamma.gather(1, perm).requires_grad_(True)
    l1, l2 = fn(g1, mask, labels, reduction="none"), fn(g2, mask, labels, reduction="none")
    torch.testing.assert_close(l2, l1, rtol=1e-12, atol=1e-12)
    l1.sum().backward()
    l2.sum().backward()
    torch.testing.assert_close(g2.grad, g1.grad.gather(1, perm), rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("name", ["listmle", "contrastive"])
def test_labels_all_different_give_the_unlabelled_loss(name):
    gen = torch.Generator().manual_seed(3)
    gamma = torch.randn(6, 5, generator=gen, dtype=torch.float64) * 2
    mask = lengths_to_mask([5, 4, 2, 3, 5, 0], 5)
    labels = torch.rand(6, 5, generator=gen, dtype=torch.float64).sort(1, descending=True).values
    fn = L.get_loss(name)
    torch.testing.assert_close(fn(gamma, mask, labels, reduction="none"),
                               fn(gamma, mask, reduction="none"), rtol=1e-12, atol=0)
    # contrastive only needs every label below the first's
    if name == "contrastive":
        ties_below = torch.tensor([[1.0, 0.5, 0.5, 0.0, 0.0]] * 6, dtype=torch.float64)
        torch.testing.assert_close(fn(gamma, mask, ties_below), fn(gamma, mask))


def test_listmle_labels_hand_computed():
    a, b, c, d = 1.0, -0.5, 0.3, 2.0
    gamma = torch.tensor([[a, b, c, d]], dtype=torch.float64, requires_grad=True)

    def lse(*x):
        return math.log(sum(math.exp(v) for v in x))

    # binary labels: each right answer against the two wrong ones, nothing among equals
    got = L.listmle_loss(gamma, labels=torch.tensor([[1.0, 1.0, 0.0, 0.0]]))
    assert got.item() == pytest.approx(lse(a, c, d) - a + lse(b, c, d) - b, rel=1e-12)
    # three levels: [1, .5, .5, 0]
    got3 = L.listmle_loss(gamma, labels=torch.tensor([[1.0, 0.5, 0.5, 0.0]]))
    want3 = (lse(a, b, c, d) - a) + (lse(b, d) - b) + (lse(c, d) - c)
    assert got3.item() == pytest.approx(want3, rel=1e-12)
    # gradient of the binary case by hand: d/dd = e^d/(e^a+e^c+e^d) + e^d/(e^b+e^c+e^d)
    got.backward()
    ea, eb, ec, ed = (math.exp(v) for v in (a, b, c, d))
    want_grad = [ea / (ea + ec + ed) - 1, eb / (eb + ec + ed) - 1,
                 ec / (ea + ec + ed) + ec / (eb + ec + ed), ed / (ea + ec + ed) + ed / (eb + ec + ed)]
    assert gamma.grad[0].tolist() == pytest.approx(want_grad, rel=1e-12)
    # at zero scores: 2 ln 3 with binary labels (ln 24 = every position trained, without)
    z = torch.zeros(1, 4, dtype=torch.float64)
    assert L.listmle_loss(z, labels=torch.tensor([[1.0, 1.0, 0.0, 0.0]])).item() == pytest.approx(
        2 * math.log(3))
    assert L.listmle_loss(z, labels=torch.tensor([[1.0, 0.0, 0.0, 0.0]])).item() == pytest.approx(
        math.log(4))
    assert L.listmle_loss(z).item() == pytest.approx(math.log(24))


def test_contrastive_labels_leave_ties_with_the_best_out_of_the_softmax():
    gamma = torch.tensor([[0.2, 1.5, -0.3, 0.4]], dtype=torch.float64, requires_grad=True)
    loss = L.contrastive_loss(gamma, labels=torch.tensor([[1.0, 1.0, 0.0, 0.0]]))
    want = math.log(math.exp(0.2) + math.exp(-0.3) + math.exp(0.4)) - 0.2
    assert loss.item() == pytest.approx(want, rel=1e-12)
    loss.backward()
    assert gamma.grad[0, 1].item() == 0.0  # a right answer is never a negative
    assert L.contrastive_loss(gamma.detach(), labels=torch.ones(1, 4)).item() == 0.0


def test_bad_labels_raise():
    g = torch.randn(2, 3)
    for fn in (L.listmle_loss, L.contrastive_loss):
        with pytest.raises(ValueError, match="labels must be non-increasing"):
            fn(g, labels=torch.tensor([[0.0, 1.0, 1.0], [1.0, 1.0, 0.0]]))
        with pytest.raises(ValueError, match="labels shape"):
            fn(g, labels=torch.zeros(2, 4))
        with pytest.raises(ValueError, match="labels must be finite"):
            fn(g, labels=torch.tensor([[math.nan, 0.0, 0.0], [1.0, 1.0, 0.0]]))
