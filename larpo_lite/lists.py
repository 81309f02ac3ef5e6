"""Candidate lists: rank a prompt's sampled responses with a reranker and select the
entries a ranking objective trains on.

Introduced in notebooks/04_ranking_losses.

Ranking: by reward, best first. Binary verifier rewards tie often; ties keep the sampling
order (a stable sort), which is as good as random since samples are i.i.d., and repeatable.

Selection strategies (the paper's Table 2 set-ups):

- ``best_worst``: the first and last of the ranked list (pairwise/DPO);
- ``random_pair``: a random correct vs a random incorrect response (the paper's DPO of Table 6);
- ``top1_bottom3``: the best vs the three worst (contrastive);
- ``top2_bottom2``: the two best vs the two worst (LambdaRank, ListMLE);
- ``full``: the whole ranked list.

No label noise: every list has its best response strictly above the responses it is trained
against. A prompt whose candidates all tie has no better and no worse response and is skipped
(with the binary verifier: all right or all wrong). The negatives of ``top1_bottom3`` and the
bottom of ``top2_bottom2`` are taken among the responses *strictly worse* than the best (with
the binary verifier: wrong answers only), never among responses tied with it. Where fewer such
responses exist than the strategy takes, the list is **shortened** (never below 2 entries), not
skipped: ``top1_bottom3`` on 8 samples of which 7 are right is the best vs the one wrong answer
(the prompts the policy nearly solves still train). ``top2_bottom2``'s second entry is the
second best whatever its reward: when only one response is right it is a wrong one, tied with
the bottom, and the losses that read rewards (LambdaRank's tie skipping, ListMLE's and
contrastive's labels, see :mod:`larpo_lite.losses`; the trainer passes each list's rewards)
train no order between them. Strategies that take 4 entries skip prompts with fewer than 4
candidates. :func:`select_counted` returns how many prompts were skipped and how many lists
were shortened (:func:`select_lists` the skipped count only, as before).
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import dataclass

from .trainer import RankedList

STRATEGIES = ("best_worst", "random_pair", "top1_bottom3", "top2_bottom2", "full")


@dataclass
class Ranked:
    """A prompt's candidates sorted best-first, with their rewards (non-increasing)."""

    prompt: str
    texts: list[str]
    rewards: list[float]


def rank_candidates(prompt: str, texts: Sequence[str], rewards: Sequence[float]) -> Ranked:
    """Sort candidates by reward, best first; ties keep the sampling order."""
    if len(texts) != len(rewards):
        raise ValueError(f"{len(texts)} texts but {len(rewards)} rewards")
    order = sorted(range(len(texts)), key=lambda i: -rewards[i])
    return Ranked(prompt, [texts[i] for i in order], [float(rewards[i]) for i in order])


def select(ranked: Ranked, strategy: str, rng: random.Random | None = None) -> RankedList | None:
    """The entries of one ranked list that ``strategy`` trains on, best first, or None when the
    prompt has no better/worse split (all rewards tie) or too few candidates.

    Every entry the best is trained against has a reward strictly below the first's:
    ``top1_bottom3``'s negatives and ``top2_bottom2``'s bottom two are taken among the strictly
    worse responses (``top2_bottom2``'s second entry may tie either side; the labels keep the
    losses from ordering ties). When too few strictly worse responses exist, the list is
    shorter than the strategy's size (:data:`STRATEGY_SIZE`), at least 2 entries.
    """
    if strategy not in STRATEGIES:
        raise ValueError(f"unknown selection strategy {strategy!r}; valid: {', '.join(STRATEGIES)}")
    t, r = ranked.texts, ranked.rewards
    if len(t) < 2 or r[0] == r[-1]:
        return None
    # rewards are non-increasing: the strictly worse responses are a suffix, never empty here
    worse = [i for i in range(len(t)) if r[i] < r[0]]
    if strategy == "best_worst":
        idx = [0, len(t) - 1]
    elif strategy == "random_pair":
        rng = rng or random.Random(0)
        top, low = r[0], r[-1]
        idx = [rng.choice([i for i, x in enumerate(r) if x == top]),
               rng.choice([i for i, x in enumerate(r) if x == low])]
    elif strategy == "top1_bottom3":
        if len(t) < 4:
            return None
        idx = [0, *worse[-3:]]
    elif strategy == "top2_bottom2":
        if len(t) < 4:
            return None
        idx = [0, 1, *worse[-2:]]  # with 4+ candidates the bottom two sit at index 2 or later
    else:
        idx = list(range(len(t)))
    return RankedList(ranked.prompt, [t[i] for i in idx], [r[i] for i in idx])


# entries a strategy takes when enough candidates exist ("full": the whole list, never shortened)
STRATEGY_SIZE = {"best_worst": 2, "random_pair": 2, "top1_bottom3": 4, "top2_bottom2": 4}


def select_counted(ranked: Sequence[Ranked], strategy: str, seed: int = 0
                   ) -> tuple[list[RankedList], dict[str, int]]:
    """Apply :func:`select` to every prompt; returns the lists and the counts ``{"skipped":
    prompts without a list, "shortened": lists shorter than the strategy's size (too few
    strictly worse responses), "lists": lists kept}``."""
    rng = random.Random(seed)
    out: list[RankedList] = []
    skipped = shortened = 0
    size = STRATEGY_SIZE.get(strategy)
    for r in ranked:
        got = select(r, strategy, rng)
        if got is None:
            skipped += 1
            continue
        out.append(got)
        if size is not None and len(got.responses) < size:
            shortened += 1
    return out, {"skipped": skipped, "shortened": shortened, "lists": len(out)}


def select_lists(ranked: Sequence[Ranked], strategy: str, seed: int = 0
                 ) -> tuple[list[RankedList], int]:
    """Apply :func:`select` to every prompt; returns the lists and the number of skipped
    prompts (:func:`select_counted` also counts the shortened lists)."""
    out, counts = select_counted(ranked, strategy, seed)
    return out, counts["skipped"]


# --------------------------------------------------------------------------- hard negatives
# Introduced in notebooks/05_hard_negatives. The positive is always a correct response to the
# prompt; the tiers differ only in the negative (REFERENCE.md section 4, Fig. 4a):
TIERS = ("unrelated", "other_prompt", "incorrect_high_t", "incorrect_low_t")
TIER_LABELS = {
    "unrelated": "(1) response to an unrelated prompt",
    "other_prompt": "(2) response to another mini-GSM prompt",
    "incorrect_high_t": "(3) incorrect response, T=1.0",
    "incorrect_low_t": "(4) incorrect response, lower T",
}


@dataclass
class TierItem:
    """One prompt's material for the hard-negative tiers.

    Attributes:
        prompt: the chat-templated prompt.
        correct: correct responses to it (any temperature): the positives.
        incorrect_high: incorrect responses sampled at the high temperature (1.0).
        incorrect_low: incorrect responses sampled at the lower temperature.
        responses: every response to it (any correctness): tier (2) negatives for other prompts.
    """

    prompt: str
    correct: list[str]
    incorrect_high: list[str]
    incorrect_low: list[str]
    responses: list[str]


def hard_negative_pairs(items: Sequence[TierItem], tier: str, unrelated: Sequence[str] = (),
                        seed: int = 0) -> tuple[list[RankedList], int]:
    """(correct, negative) pairs for one hard-negative tier; returns the pairs and the number
    of prompts skipped (no correct response, or no negative of that tier).

    The positive of prompt ``i`` is drawn from its own random stream, so every tier trains on
    the same positives wherever it keeps the prompt. Tier (2) takes a response to the next
    prompt in the list (cyclically); tier (1) a response from ``unrelated``.
    """
    if tier not in TIERS:
        raise ValueError(f"unknown hard-negative tier {tier!r}; valid: {', '.join(TIERS)}")
    if tier == "unrelated" and not unrelated:
        raise ValueError("tier 'unrelated' needs responses to unrelated prompts")
    out, skipped = [], 0
    for i, it in enumerate(items):
        rng = random.Random(seed * 1_000_003 + i)
        if not it.correct:
            skipped += 1
            continue
        pos = rng.choice(it.correct)
        neg_rng = random.Random(seed * 1_000_003 + i + 500_000)
        if tier == "unrelated":
            neg = neg_rng.choice(list(unrelated))
        elif tier == "other_prompt":
            other = items[(i + 1) % len(items)].responses if len(items) > 1 else []
            if not other:
                skipped += 1
                continue
            neg = neg_rng.choice(other)
        else:
            pool = it.incorrect_high if tier == "incorrect_high_t" else it.incorrect_low
            if not pool:
                skipped += 1
                continue
            neg = neg_rng.choice(pool)
        out.append(RankedList(it.prompt, [pos, neg], [1.0, 0.0]))
    return out, skipped


# --------------------------------------------------------------------------- memorization
# Introduced in notebooks/06_candidate_lists (the paper's Table 4).
MEMORY = ("current", "previous", "all")


def merge_memory(history: Sequence[Sequence[RankedList]], memory: str) -> list[RankedList]:
    """The training set of the latest iteration from the lists of every iteration so far
    (``history[-1]`` is the current one): ``current`` only, ``previous`` (current and the one
    before) or ``all`` previous ones."""
    if memory not in MEMORY:
        raise ValueError(f"unknown memorization mode {memory!r}; valid: {', '.join(MEMORY)}")
    if not history:
        return []
    keep = {"current": 1, "previous": 2, "all": len(history)}[memory]
    return [x for lists in history[-keep:] for x in lists]


def split_k(k: int, temperatures: Sequence[float]) -> list[int]:
    """Samples per temperature for a mix: ``k`` split as evenly as possible, the first
    temperatures taking the remainder (e.g. k=5 over [1.0, 0.5] gives [3, 2])."""
    if not temperatures:
        raise ValueError("need at least one temperature")
    if k < len(temperatures):
        raise ValueError(f"k={k} is fewer than the {len(temperatures)} temperatures of the mix")
    base, extra = divmod(k, len(temperatures))
    return [base + (1 if i < extra else 0) for i in range(len(temperatures))]
