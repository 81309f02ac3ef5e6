"""Ranking losses over a list of scored responses (pairwise, contrastive, LambdaRank, ListMLE).

Introduced in notebooks/04_ranking_losses.

Every loss takes ``gamma``, a float tensor ``[B, K]`` of scores
``gamma(y|x) = beta * (log pi_theta(y|x) - log pi_ref(y|x))``; each row is one prompt's list of
candidates sorted best-first (column 0 is the best-ranked response). An optional ``mask``
``[B, K]`` (bool, True for real candidates) marks padding, which may only sit at the end of a
row. Formulas, for a row with ``m`` real candidates:

- pairwise (DPO):  ``-log sigmoid(gamma_1 - gamma_m)``  (first vs last real entry)
- contrastive:     ``logsumexp(gamma_1..m) - gamma_1``; with ``labels``, the softmax holds the
  best and only the entries of strictly lower label: ``logsumexp_{j=1 or l_j < l_1} gamma_j -
  gamma_1``
- LambdaRank:      ``- sum_{i<j} w_ij * log sigmoid(gamma_i - gamma_j)``
  with ``w_ij = 1`` (``weighting="none"``) or the LiPO weights (``weighting="lipo"``)
  ``w_ij = |G_i - G_j| * |1/D(tau_i) - 1/D(tau_j)|``, ``G = 2**psi - 1``,
  ``D(tau) = ln(1 + tau)``, ``tau`` the 1-based rank under the detached scores
- ListMLE:         ``sum_{i=1..m} [ logsumexp_{j>=i} gamma_j - gamma_i ]``  (-log Plackett-Luce);
  with ``labels`` ``l`` (Plackett-Luce over label groups, see :func:`listmle_loss`):
  ``sum_{i=1..m} [ logsumexp_{j=i or l_j < l_i} gamma_j - gamma_i ]``: no order is trained
  between equally labelled responses

Conventions shared by all losses:

- Padded entries change neither the loss nor the gradients of real entries, and receive a
  gradient of exactly 0, whatever values they hold (even inf or NaN).
- A row with no real candidate (all padding) is allowed: its per-row loss is 0 and it is left
  out of the mean, so ``reduction="mean"`` averages over rows with at least 2 real candidates.
  If no row has any, the loss is 0 (still attached to the graph, so ``backward()`` works and
  gives zero gradients).
- A row with exactly 1 real candidate, a mask with holes, mismatched shapes or a non-2-D
  ``gamma`` raise ``ValueError``.
- ``float16``/``bfloat16`` scores are computed in ``float32`` (the loss is returned in float32).
- Padding is replaced, inside the computation, by a finite value far below the row's smallest
  real score (never ``-inf``: ``-inf`` turns the backward of ``logsumexp``/``logcumsumexp``
  into NaN on all-padding rows), so ``exp`` of it is exactly 0.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F

__all__ = [
    "LOSSES",
    "REDUCTIONS",
    "WEIGHTINGS",
    "contrastive_loss",
    "get_loss",
    "lambdarank_loss",
    "lambdarank_weights",
    "listmle_loss",
    "margins",
    "pairwise_loss",
    "ranking_accuracy",
]

REDUCTIONS = ("mean", "sum", "none")
WEIGHTINGS = ("none", "lipo")

# How far below a row's smallest real score padded entries are placed (plus |min| for scale).
# exp(-1000) is exactly 0 in float32 and float64.
_PAD_GAP = 1000.0


# --------------------------------------------------------------------------- validation


def _check_inputs(
    gamma: torch.Tensor,
    mask: torch.Tensor | None,
    rewards: torch.Tensor | None = None,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]:
    """Validate inputs; return (g, mask, rewards) with g in a float dtype, padding set to 0.

    g: [B, K] float32/float64, padded entries replaced by 0 (gradient 0 there).
    mask: [B, K] bool.
    rewards: [B, K] float (padded entries set to 0) or None.
    """
    if not isinstance(gamma, torch.Tensor):
        raise ValueError(f"gamma must be a torch.Tensor, got {type(gamma).__name__}")
    if gamma.dim() != 2:
        raise ValueError(
            f"gamma must be 2-D [batch, candidates], got shape {tuple(gamma.shape)} "
            f"({gamma.dim()}-D)"
        )
    if not gamma.is_floating_point():
        raise ValueError(f"gamma must be a floating-point tensor, got dtype {gamma.dtype}")
    if gamma.dtype in (torch.float16, torch.bfloat16):
        gamma = gamma.float()

    if mask is None:
        mask = torch.ones(gamma.shape, dtype=torch.bool, device=gamma.device)
    else:
        if not isinstance(mask, torch.Tensor):
            raise ValueError(f"mask must be a torch.Tensor or None, got {type(mask).__name__}")
        if mask.shape != gamma.shape:
            raise ValueError(
                f"mask shape {tuple(mask.shape)} does not match gamma shape {tuple(gamma.shape)}"
            )
        if mask.dtype != torch.bool:
            mask = mask != 0
        if mask.shape[1] > 1:
            holes = (~mask[:, :-1]) & mask[:, 1:]
            if bool(holes.any()):
                rows = holes.any(dim=1).nonzero().flatten().tolist()
                raise ValueError(
                    "mask has holes (a False followed by a True); padding must sit only at the "
                    f"end of each row. Offending rows: {rows[:10]}"
                )

    counts = mask.sum(dim=1)
    single = counts == 1
    if bool(single.any()):
        rows = single.nonzero().flatten().tolist()
        raise ValueError(
            "every list needs at least 2 real candidates (or 0, an all-padding row); "
            f"rows with exactly 1 real candidate: {rows[:10]}"
        )

    if rewards is not None:
        if not isinstance(rewards, torch.Tensor):
            raise ValueError(
                f"rewards must be a torch.Tensor or None, got {type(rewards).__name__}"
            )
        if rewards.shape != gamma.shape:
            raise ValueError(
                f"rewards shape {tuple(rewards.shape)} does not match gamma shape "
                f"{tuple(gamma.shape)}"
            )
        rewards = rewards.detach().to(dtype=gamma.dtype).masked_fill(~mask, 0.0)
        if not bool(torch.isfinite(rewards).all()):
            raise ValueError("rewards must be finite at every real (unmasked) candidate")

    g = gamma.masked_fill(~mask, 0.0)
    return g, mask, rewards


def _check_labels(
    gamma: torch.Tensor, mask: torch.Tensor | None, labels: torch.Tensor | None, name: str
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]:
    """:func:`_check_inputs` for a loss taking labels ``[B, K]`` (called ``name`` in errors),
    which must also be non-increasing along each row's real entries (lists sorted best-first)."""
    try:
        g, mask, labels = _check_inputs(gamma, mask, labels)
    except ValueError as e:  # name the argument as the caller knows it
        raise ValueError(str(e).replace("rewards", name)) from None
    if labels is not None and g.shape[1] > 1:
        both = mask[:, :-1] & mask[:, 1:]
        rising = both & (labels[:, 1:] > labels[:, :-1])
        if bool(rising.any()):
            rows = rising.any(dim=1).nonzero().flatten().tolist()
            raise ValueError(
                f"{name} must be non-increasing along each row (lists are sorted best-first); "
                f"offending rows: {rows[:10]}"
            )
    return g, mask, labels


def _check_reduction(reduction: str) -> None:
    if reduction not in REDUCTIONS:
        raise ValueError(f"unknown reduction {reduction!r}; valid: {', '.join(REDUCTIONS)}")


def _reduce(per_row: torch.Tensor, mask: torch.Tensor, reduction: str) -> torch.Tensor:
    """per_row [B] (0 on all-padding rows) -> [B] ('none') or scalar ('sum' / 'mean')."""
    if reduction == "none":
        return per_row
    total = per_row.sum()
    if reduction == "sum":
        return total
    n_valid = (mask.sum(dim=1) >= 2).sum().clamp(min=1)
    return total / n_valid.to(per_row.dtype)


def _low_fill(g: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """g with padded entries set to a finite value far below the row's smallest real score.

    The fill is computed from detached values, so it carries no gradient; exp(fill - max) is
    exactly 0 in float32/float64. Shapes: g [B, K], mask [B, K] -> [B, K].
    """
    return torch.where(mask, g, _fill_value(g, mask))


def _fill_value(g: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """[B, 1], no gradient: a finite value far below each row's smallest real score (0 - gap on
    rows with no real entry), where ``exp(fill - any real score)`` is exactly 0."""
    with torch.no_grad():
        big = torch.finfo(g.dtype).max
        row_min = g.masked_fill(~mask, big).amin(dim=1, keepdim=True)
        row_min = torch.where(mask.any(dim=1, keepdim=True), row_min, torch.zeros_like(row_min))
        return (row_min - (_PAD_GAP + row_min.abs())).clamp(min=torch.finfo(g.dtype).min)


def _valid_rows(mask: torch.Tensor) -> torch.Tensor:
    """[B] bool: rows with at least 2 real candidates."""
    return mask.sum(dim=1) >= 2


# --------------------------------------------------------------------------- losses


def pairwise_loss(
    gamma: torch.Tensor,
    mask: torch.Tensor | None = None,
    reduction: str = "mean",
) -> torch.Tensor:
    """DPO loss ``-log sigmoid(gamma_w - gamma_l)`` on the first and last real entry of each row.

    Args:
        gamma: [B, K] float scores, column 0 the best-ranked response.
        mask: [B, K] bool, True for real candidates (padding only at the end), or None.
        reduction: "mean" (over rows with >= 2 real candidates), "sum", or "none".

    Returns:
        scalar tensor, or [B] per-row losses when ``reduction="none"`` (0 on all-padding rows).
    """
    _check_reduction(reduction)
    g, mask, _ = _check_inputs(gamma, mask)
    if g.numel() == 0:
        return _reduce(g.sum(dim=1), mask, reduction)
    last = (mask.sum(dim=1) - 1).clamp(min=0)  # [B]
    g_w = g[:, 0]
    g_l = g.gather(1, last.unsqueeze(1)).squeeze(1)
    per_row = -F.logsigmoid(g_w - g_l)
    per_row = per_row.masked_fill(~_valid_rows(mask), 0.0)
    return _reduce(per_row, mask, reduction)


def contrastive_loss(
    gamma: torch.Tensor,
    mask: torch.Tensor | None = None,
    labels: torch.Tensor | None = None,
    reduction: str = "mean",
) -> torch.Tensor:
    """Contrastive (InfoNCE) loss ``logsumexp(gamma) - gamma_1``: the best vs all the others.

    With ``labels`` (higher is better), the negatives are only the entries whose label is
    strictly below the best's: ``logsumexp_{j in {1} + {j : l_j < l_1}} gamma_j - gamma_1``, so
    a response tied with the best is never pushed down (its gradient is 0). Without labels, or
    when every label after the first is lower, it is the formula above.

    Args:
        gamma: [B, K] float scores, column 0 the best-ranked (positive) response.
        mask: [B, K] bool, True for real candidates (padding only at the end), or None.
        labels: [B, K] float labels (e.g. rewards), non-increasing along each row, or None.
        reduction: "mean" (over rows with >= 2 real candidates), "sum", or "none".

    Returns:
        scalar tensor, or [B] per-row losses when ``reduction="none"``.
    """
    _check_reduction(reduction)
    g, mask, labels = _check_labels(gamma, mask, labels, "labels")
    if g.numel() == 0:
        return _reduce(g.sum(dim=1), mask, reduction)
    keep = mask
    if labels is not None:  # the best and the strictly worse entries: [B, K]
        first = torch.zeros_like(mask)
        first[:, 0] = True
        keep = mask & (first | (labels < labels[:, :1]))
    per_row = torch.logsumexp(_low_fill(g, keep), dim=1) - g[:, 0]
    per_row = per_row.masked_fill(~_valid_rows(mask), 0.0)
    return _reduce(per_row, mask, reduction)


def lambdarank_weights(
    gamma: torch.Tensor,
    mask: torch.Tensor | None = None,
    rewards: torch.Tensor | None = None,
    weighting: str = "none",
) -> torch.Tensor:
    """Pair weights ``w_ij`` of the LambdaRank loss (no gradient).

    ``w_ij`` is 0 unless ``i < j`` and both entries are real; when ``rewards`` is given, tied
    rewards also give 0. ``weighting="none"``: ``w_ij = 1`` on the remaining pairs.
    ``weighting="lipo"``: ``w_ij = |G_i - G_j| * |1/D(tau_i) - 1/D(tau_j)|`` with
    ``G = 2**psi - 1`` (``psi`` the reward, expected in [0, 1]), ``D(tau) = ln(1 + tau)`` and
    ``tau`` the 1-based rank of the entry among the row's real entries under the detached
    scores ``gamma`` (higher score = better rank; ties broken by position, earlier first).

    Args:
        gamma: [B, K] float scores.
        mask: [B, K] bool or None.
        rewards: [B, K] float rewards/labels, or None (required for "lipo").
        weighting: "none" or "lipo".

    Returns:
        [B, K, K] float weights, ``w[b, i, j]`` for the pair (i, j).
    """
    if weighting not in WEIGHTINGS:
        raise ValueError(f"unknown weighting {weighting!r}; valid: {', '.join(WEIGHTINGS)}")
    if weighting == "lipo" and rewards is None:
        raise ValueError('weighting="lipo" needs rewards (the labels psi) of shape [B, K]')
    g, mask, rewards = _check_inputs(gamma, mask, rewards)
    return _pair_weights(g, mask, rewards, weighting)


def _pair_weights(
    g: torch.Tensor, mask: torch.Tensor, rewards: torch.Tensor | None, weighting: str
) -> torch.Tensor:
    """[B, K, K] weights from validated inputs (see lambdarank_weights)."""
    with torch.no_grad():
        B, K = g.shape
        upper = torch.ones(K, K, dtype=torch.bool, device=g.device).triu(diagonal=1)
        pairs = upper.unsqueeze(0) & mask.unsqueeze(2) & mask.unsqueeze(1)  # [B, K, K]
        if rewards is not None:
            pairs = pairs & (rewards.unsqueeze(2) != rewards.unsqueeze(1))
        if weighting == "none":
            return pairs.to(g.dtype)
        assert rewards is not None
        gain = torch.exp2(rewards) - 1.0  # G = 2^psi - 1, [B, K]
        order = torch.sort(_low_fill(g.detach(), mask), dim=1, descending=True, stable=True)[1]
        tau = torch.empty_like(order)
        ranks = torch.arange(1, K + 1, device=g.device).expand(B, K)
        tau.scatter_(1, order, ranks)  # tau[b, order[b, r]] = r + 1
        inv_disc = 1.0 / torch.log1p(tau.to(g.dtype))  # 1 / D(tau), D(tau) = ln(1 + tau)
        w = (gain.unsqueeze(2) - gain.unsqueeze(1)).abs() * (
            inv_disc.unsqueeze(2) - inv_disc.unsqueeze(1)
        ).abs()
        return w * pairs.to(g.dtype)


def lambdarank_loss(
    gamma: torch.Tensor,
    mask: torch.Tensor | None = None,
    rewards: torch.Tensor | None = None,
    weighting: str = "none",
    reduction: str = "mean",
) -> torch.Tensor:
    """LambdaRank loss ``- sum_{i<j} w_ij * log sigmoid(gamma_i - gamma_j)``, summed over pairs.

    See :func:`lambdarank_weights` for ``w_ij``. With ``rewards=None`` and ``weighting="none"``
    every real pair ``i < j`` counts; ``weighting="lipo"`` requires ``rewards``. ``rewards``
    must be non-increasing along each row's real entries (the list is sorted best-first).

    Args:
        gamma: [B, K] float scores, column 0 the best-ranked response.
        mask: [B, K] bool, True for real candidates (padding only at the end), or None.
        rewards: [B, K] float rewards (labels psi, in [0, 1] for "lipo"), or None.
        weighting: "none" (w_ij = 1) or "lipo".
        reduction: "mean" (over rows with >= 2 real candidates), "sum", or "none".

    Returns:
        scalar tensor, or [B] per-row losses when ``reduction="none"``.
    """
    _check_reduction(reduction)
    if weighting not in WEIGHTINGS:
        raise ValueError(f"unknown weighting {weighting!r}; valid: {', '.join(WEIGHTINGS)}")
    if weighting == "lipo" and rewards is None:
        raise ValueError('weighting="lipo" needs rewards (the labels psi) of shape [B, K]')
    g, mask, rewards = _check_labels(gamma, mask, rewards, "rewards")
    if g.numel() == 0:
        return _reduce(g.sum(dim=1), mask, reduction)
    w = _pair_weights(g, mask, rewards, weighting)  # [B, K, K]
    pair_loss = -F.logsigmoid(g.unsqueeze(2) - g.unsqueeze(1))  # [B, K, K]
    per_row = (w * pair_loss).sum(dim=(1, 2))
    return _reduce(per_row, mask, reduction)


def listmle_loss(
    gamma: torch.Tensor,
    mask: torch.Tensor | None = None,
    labels: torch.Tensor | None = None,
    reduction: str = "mean",
) -> torch.Tensor:
    """ListMLE loss ``sum_i [logsumexp_{j>=i} gamma_j - gamma_i]`` (-log Plackett-Luce prob.).

    Without labels the suffix log-sum-exp is computed with ``torch.logcumsumexp`` on the
    flipped row: the list's order is the one trained, ties or not.

    With ``labels`` ``l`` (higher is better, non-increasing along the row), Plackett-Luce over
    label groups: each response competes only with itself and the responses of strictly lower
    label,

        ``L = sum_{i=1..m} [ log( exp(gamma_i) + sum_{j : l_j < l_i} exp(gamma_j) ) - gamma_i ]``,

    the negative log-likelihood that each response is picked first among itself and everything
    labelled worse. Permuting equally labelled responses permutes the terms, so it changes
    neither the loss nor its gradient; the worst group's terms are 0 (they only compete). When
    all labels differ, ``{j : l_j < l_i} = {j > i}`` and it is the unlabelled loss. Binary
    labels ``[1, 1, 0, 0]`` give ``sum_{i=1,2} [lse(gamma_i, gamma_3, gamma_4) - gamma_i]``,
    ``2 ln 3`` at zero scores (instead of ``ln 4! = ln 24``).

    Args:
        gamma: [B, K] float scores, column 0 the best-ranked response.
        mask: [B, K] bool, True for real candidates (padding only at the end), or None.
        labels: [B, K] float labels (e.g. rewards), non-increasing along each row, or None.
        reduction: "mean" (over rows with >= 2 real candidates), "sum", or "none".

    Returns:
        scalar tensor, or [B] per-row losses when ``reduction="none"``.
    """
    _check_reduction(reduction)
    g, mask, labels = _check_labels(gamma, mask, labels, "labels")
    if g.numel() == 0:
        return _reduce(g.sum(dim=1), mask, reduction)
    if labels is None:
        filled = _low_fill(g, mask)
        suffix = torch.logcumsumexp(filled.flip(1), dim=1).flip(1)  # [B, K]: lse_{j>=i} gamma_j
    else:
        K = g.shape[1]
        eye = torch.eye(K, dtype=torch.bool, device=g.device).unsqueeze(0)
        # pool[b, i, j]: response j competes in term i (itself, or a strictly lower label)
        pool = mask.unsqueeze(1) & (eye | (labels.unsqueeze(1) < labels.unsqueeze(2)))
        fill = _fill_value(g, mask).unsqueeze(2)  # [B, 1, 1], far below every real score
        suffix = torch.logsumexp(torch.where(pool, g.unsqueeze(1), fill), dim=2)  # [B, K]
    terms = (suffix - g).masked_fill(~mask, 0.0)
    per_row = terms.sum(dim=1).masked_fill(~_valid_rows(mask), 0.0)
    return _reduce(per_row, mask, reduction)


LOSSES: dict[str, Callable[..., torch.Tensor]] = {
    "pairwise": pairwise_loss,
    "contrastive": contrastive_loss,
    "lambdarank": lambdarank_loss,
    "listmle": listmle_loss,
}


def get_loss(name: str) -> Callable[..., torch.Tensor]:
    """Loss function by name: one of "pairwise", "contrastive", "lambdarank", "listmle"."""
    try:
        return LOSSES[name]
    except (KeyError, TypeError):
        raise ValueError(
            f"unknown loss {name!r}; valid names: {', '.join(sorted(LOSSES))}"
        ) from None


# --------------------------------------------------------------------------- diagnostics


def ranking_accuracy(
    gamma: torch.Tensor,
    mask: torch.Tensor | None = None,
    rewards: torch.Tensor | None = None,
) -> torch.Tensor:
    """Share of real pairs ``i < j`` ranked correctly by the scores (``gamma_i > gamma_j``).

    Pooled over the whole batch (every pair counts once). If ``rewards`` is given, pairs with
    tied rewards are skipped. Returns 0.0 when there is no pair. No gradient.

    Args:
        gamma: [B, K] float scores, column 0 the best-ranked response.
        mask: [B, K] bool or None.
        rewards: [B, K] float or None.

    Returns:
        float scalar tensor in [0, 1] (float32 for half-precision inputs, else gamma's dtype).
    """
    with torch.no_grad():
        g, mask, rewards = _check_inputs(gamma, mask, rewards)
        pairs = _pair_weights(g, mask, rewards, "none").bool()
        correct = (g.unsqueeze(2) > g.unsqueeze(1)) & pairs
        n_pairs = pairs.sum()
        return (correct.sum().to(g.dtype) / n_pairs.clamp(min=1).to(g.dtype)).detach()


def margins(gamma: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
    """Per-row margin: score of the first real entry minus that of the last real entry.

    Args:
        gamma: [B, K] float scores.
        mask: [B, K] bool or None.

    Returns:
        [B] tensor (0 on all-padding rows); differentiable.
    """
    g, mask, _ = _check_inputs(gamma, mask)
    if g.numel() == 0:
        return g.sum(dim=1)
    last = (mask.sum(dim=1) - 1).clamp(min=0)
    return g[:, 0] - g.gather(1, last.unsqueeze(1)).squeeze(1)


# --------------------------------------------------------------------------- one list, by hand


def loss_and_push(
    log_ratios: list[float] | torch.Tensor,
    beta: float = 1.0,
    rewards: list[float] | torch.Tensor | None = None,
    names: list[str] | None = None,
) -> dict[str, tuple[float, list[float]]]:
    """Each loss's value on one list, and how hard it pushes each response (autograd).

    The list's scores are ``gamma = beta * log_ratios``, ``log_ratios[i] = log pi_theta(y_i|x) -
    log pi_ref(y_i|x)``, best-ranked response first. The push on response ``i`` is
    ``-dL/dlog_ratios[i] = -beta * dL/dgamma_i``: positive when a gradient step raises that
    response's log-probability, negative when it lowers it. Model-free (no policy is loaded);
    the widget of notebooks/04_ranking_losses calls it on the sliders' values.

    Args:
        log_ratios: ``[K]`` floats, ``K >= 2``, best first.
        beta: ``> 0``, the scale of ``gamma``.
        rewards: ``[K]`` non-increasing rewards, or None: LambdaRank's (tied rewards give no
            pair) and the labels of ListMLE and contrastive (no order trained between tied
            responses), as the trainer passes them. Pairwise ignores them.
        names: losses to compute (default: all of :data:`LOSSES`, in its order).

    Returns:
        ``{name: (loss, push)}`` with ``loss`` a float and ``push`` a list of ``K`` floats.
    """
    r = torch.as_tensor(log_ratios, dtype=torch.float64).detach()
    if r.dim() != 1 or r.numel() < 2:
        raise ValueError(f"log_ratios must be one list of at least 2 scores, got shape "
                         f"{tuple(r.shape)}")
    if not beta > 0:
        raise ValueError(f"beta must be > 0, got {beta}")
    rw = None if rewards is None else torch.as_tensor(rewards, dtype=torch.float64).reshape(1, -1)
    if rw is not None and rw.shape[1] != r.numel():
        raise ValueError(f"{rw.shape[1]} rewards for {r.numel()} scores")
    out: dict[str, tuple[float, list[float]]] = {}
    for name in names or list(LOSSES):
        x = r.clone().requires_grad_(True)
        gamma = (beta * x).unsqueeze(0)  # [1, K]
        fn = get_loss(name)
        loss = fn(gamma) if name == "pairwise" else fn(gamma, None, rw)
        loss.backward()
        assert x.grad is not None
        out[name] = (float(loss.detach()), (0.0 - x.grad).tolist())  # 0.0 - g: no -0.0
    return out
