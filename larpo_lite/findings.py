"""Findings in words: a notebook's closing paragraph, generated from this run's numbers.

Every notebook ends with "What we saw", written by these functions from the paired statistics
of its comparisons (:func:`larpo_lite.metrics.paired_stats`), so the words can never go stale:
what moved, by how much, against its noise (the paired standard error), and what that means
for the paper's claim. The rule is the project's one rule: a difference beyond two paired
standard errors in the paper's direction *reproduces* a claim, beyond two the other way
*contradicts* it, and anything within two is *inconclusive* (this run can neither show nor
rule out an effect smaller than its minimum detectable effect, 2 SE).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from .metrics import BETTER, INCONCLUSIVE, WORSE, PairedStats, paired_stats

CLAIM_VERDICT = {BETTER: "reproduced", WORSE: "contradicted", INCONCLUSIVE: "inconclusive"}


def claim_verdict(stats: PairedStats, paper_direction: int = 1) -> str:
    """``"reproduced"``, ``"contradicted"`` or ``"inconclusive"`` for a paper claim that the
    treatment is better (``paper_direction=1``) or worse (``-1``) than the baseline."""
    if paper_direction not in (1, -1):
        raise ValueError(f"paper_direction must be 1 or -1, got {paper_direction!r}")
    v = stats.verdict
    if paper_direction == -1 and v != INCONCLUSIVE:
        v = WORSE if v == BETTER else BETTER
    return CLAIM_VERDICT[v]


def _num(x: float, digits: int = 3) -> str:
    return f"{x:.{digits}f}"


def comparison_sentence(treatment: str, baseline: str, stats: PairedStats,
                        score_baseline: float, score_treatment: float,
                        metric: str = "greedy accuracy", digits: int = 3) -> str:
    """One sentence: what moved and by how much against its noise.

    ``score_*`` are the two means on the ``stats.n`` shared problems (for 0/1 scores:
    accuracies); ``stats`` compares them per problem.
    """
    treatment = treatment[:1].upper() + treatment[1:]  # it opens the sentence
    sign = "+" if stats.diff >= 0 else "-"
    moved = ("left" if stats.diff == 0 else "moved")
    flips = f"{stats.gained} problems gained, {stats.lost} lost"
    noise = (f"paired SE {_num(stats.se, digits)}, minimum detectable effect "
             f"{_num(stats.mde, digits)}")
    if stats.diff == 0:
        return (f"{treatment} {moved} {metric} on {stats.n} problems where {baseline} had it, "
                f"at {_num(score_baseline, digits)} ({flips}; {noise}).")
    return (f"{treatment} {moved} {metric} on {stats.n} problems from {_num(score_baseline, digits)} "
            f"({baseline}) to {_num(score_treatment, digits)} ({sign}{_num(abs(stats.diff), digits)}; "
            f"{noise}; {flips}).")


def verdict_sentence(stats: PairedStats, claim: str, paper_direction: int = 1,
                     digits: int = 3) -> str:
    """One sentence: what the comparison means for the paper's ``claim`` (a clause such as
    "DPO after SFT improves greedy accuracy")."""
    v = claim_verdict(stats, paper_direction)
    ratio = abs(stats.diff) / stats.se if stats.se > 0 else float("inf")
    if v == "inconclusive" and stats.gained == stats.lost == 0:
        return (f"No problem changed, so this run says nothing for or against the paper's claim "
                f"that {claim}.")
    if v == "inconclusive":
        return (f"That is within two standard errors, so the paper's claim that {claim} is "
                f"inconclusive here: this run can neither show nor rule out an effect smaller "
                f"than {_num(stats.mde, digits)}.")
    size = "every problem flipped the same way" if ratio == float("inf") else f"{ratio:.1f} standard errors"
    if v == "reproduced":
        return f"That is {size} in the paper's direction: the claim that {claim} is reproduced here."
    return (f"That is {size} against the paper's direction: the claim that {claim} is "
            f"contradicted here.")


def finding(treatment: str, baseline: str, stats: PairedStats, score_baseline: float,
            score_treatment: float, claim: str, paper_direction: int = 1,
            metric: str = "greedy accuracy", digits: int = 3) -> str:
    """:func:`comparison_sentence` followed by :func:`verdict_sentence`."""
    return " ".join([
        comparison_sentence(treatment, baseline, stats, score_baseline, score_treatment, metric,
                            digits),
        verdict_sentence(stats, claim, paper_direction, digits),
    ])


def paragraph(sentences: Sequence[str]) -> str:
    """The sentences of a "What we saw" paragraph, joined (empty ones dropped)."""
    return " ".join(s.strip() for s in sentences if s and s.strip())


def flipped_examples(questions: Sequence[str], golds: Sequence[str],
                     before: Sequence[str], after: Sequence[str],
                     before_ok: Sequence[bool], after_ok: Sequence[bool],
                     n: int = 2, width: int = 90) -> str:
    """Up to ``n`` test problems that flipped each way, the two responses side by side.

    All sequences are ``[P]`` over the same problems in the same order (``before``/``after``:
    the greedy responses of the baseline and the treatment). Returns printable text: first
    the problems gained (wrong before, right after), then those lost, in problem order.
    """
    lengths = {len(questions), len(golds), len(before), len(after), len(before_ok), len(after_ok)}
    if len(lengths) != 1:
        raise ValueError(f"flipped_examples needs sequences of one length, got {sorted(lengths)}")

    def clip(text: str) -> str:
        one = " ".join(text.split())
        return one if len(one) <= width else one[: width - 3] + "..."

    blocks = []
    for label, want in (("gained", (False, True)), ("lost", (True, False))):
        idx = [i for i in range(len(questions)) if (bool(before_ok[i]), bool(after_ok[i])) == want]
        blocks.append(f"-- {len(idx)} problems {label}; the first {min(n, len(idx))}:")
        for i in idx[:n]:
            blocks.append(f"[{i}] {clip(questions[i])}  (gold {golds[i]})\n"
                          f"    before: {clip(before[i])}\n    after:  {clip(after[i])}")
    return "\n".join(blocks)


def comparison_rows(scores: Mapping[str, Sequence[float]],
                    pairs: Sequence[tuple[str, str]]) -> list[dict[str, Any]]:
    """One ``metrics.comparisons`` row per ``(treatment, baseline)`` pair of names in
    ``scores`` (``{name: [P] per-problem scores}``, same problems): treatment minus baseline
    (``diff``), its paired SE (``se``), ``mde`` = 2.8 se (80% power), problems ``gained``/``lost``, verdict."""
    return [paired_stats(scores[b], scores[a]).row(a, b) for a, b in pairs]


def finding_from_scores(scores: Mapping[str, Sequence[float]], a: str, b: str, claim: str,
                        names: Mapping[str, str] | None = None,
                        metric: str = "greedy accuracy") -> tuple[PairedStats, str]:
    """:func:`finding` for treatment ``a`` against baseline ``b`` from their per-problem
    ``scores``, as a sentence that starts with a capital; ``names`` gives display names."""
    names = names or {}
    s = paired_stats(scores[b], scores[a])
    text = finding(names.get(a, a), names.get(b, b), s, float(np.mean(scores[b])),
                   float(np.mean(scores[a])), claim, metric=metric)
    return s, text[:1].upper() + text[1:]
