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
