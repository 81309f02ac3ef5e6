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

A strategy that needs a better and a worse response (different rewards) skips prompts whose
candidates all tie; the caller counts them (``select_lists`` returns the count).
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
    """The entries of one ranked list that ``strategy`` trains on, or None when the prompt
    has no better/worse split (all rewards tie) or too few candidates."""
    if strategy not in STRATEGIES:
        raise ValueError(f"unknown selection strategy {strategy!r}; valid: {', '.join(STRATEGIES)}")
    t, r = ranked.texts, ranked.rewards
    if len(t) < 2 or r[0] == r[-1]:
        return None
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
        idx = [0, len(t) - 3, len(t) - 2, len(t) - 1]
    elif strategy == "top2_bottom2":
        if len(t) < 4:
            return None
        idx = [0, 1, len(t) - 2, len(t) - 1]
    else:
        idx = list(range(len(t)))
    return RankedList(ranked.prompt, [t[i] for i in idx], [r[i] for i in idx])


def select_lists(ranked: Sequence[Ranked], strategy: str, seed: int = 0
                 ) -> tuple[list[RankedList], int]:
    """Apply ``select`` to every prompt; returns the lists and the number of skipped prompts."""
    rng = random.Random(seed)
    out, skipped = [], 0
    for r in ranked:
        got = select(r, strategy, rng)
        if got is None:
            skipped += 1
        else:
            out.append(got)
    return out, skipped


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
