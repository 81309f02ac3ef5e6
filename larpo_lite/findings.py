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


# --------------------------------------------------------------------------- notebooks 01 and 02
def ir_sentence(ir_recall: Mapping[str, Mapping[int, float]], base: str = "BM25",
                reranked: str = "BM25 + reranker") -> str:
    """Notebook 01's IR side in one sentence: ``base``'s Recall@N at the smallest and largest
    N of its curve (``{name: {N: recall}}``), and what the reranker does to the smallest."""
    curve = ir_recall[base]
    lo, hi = min(curve), max(curve)
    first = "first" if lo == 1 else f"within its top {lo}"
    text = (f"On the IR side, {base} ranks a relevant passage {first} for {curve[lo]:.0%} of the "
            f"queries and within its top {hi} for {curve[hi]:.0%} ({curve[hi] - curve[lo]:+.2f})")
    if reranked in ir_recall:
        text += (f"; the reranker moves Recall@{lo} from {curve[lo]:.2f} to "
                 f"{ir_recall[reranked][lo]:.2f}")
    return text + "."


def best_of_n_vs_pass(best_of_n: Mapping[int, float], unbiased: Mapping[int, float],
                      draw_ses: Mapping[int, float], n_draws: int,
                      many: Mapping[int, float] | None = None, many_draws: int = 0) -> str:
    """Why best-of-N with the verifier and the unbiased pass@N differ (notebook 01): both
    count a subset of N samples as right when it holds a correct one; best-of-N draws
    ``n_draws`` random subsets per problem, the estimator averages over all of them. The
    gap is measured against :func:`larpo_lite.metrics.draw_se` (``draw_ses``: ``{N: SE}``);
    ``many``: the best-of-N curve again with ``many_draws`` draws."""
    gaps = {n: best_of_n[n] - unbiased[n] for n in unbiased}
    n = max(gaps, key=lambda m: (abs(gaps[m]), -m))
    k = max(unbiased)
    if gaps[n] == 0 and all(se == 0 for se in draw_ses.values()):
        return ("Best-of-N with the verifier equals the unbiased pass@N at every N here, as it "
                "must: each problem's samples are all right or all wrong, so no draw can differ "
                "from another.")
    if gaps[n] == 0:
        return (f"Best-of-N with the verifier happens to equal the unbiased pass@N at every N here "
                f"(the draw noise, up to {max(draw_ses.values()):.3f}, came out at zero).")
    text = (f"Best-of-N with the verifier and the unbiased pass@N measure the same thing (a subset "
            f"of N samples counts as right when it holds a correct one), but best-of-N draws "
            f"{n_draws} random subsets per problem where the estimator averages over all of them: "
            f"the largest gap, {gaps[n]:+.3f} at N={n} ({best_of_n[n]:.3f} against "
            f"{unbiased[n]:.3f}), is {abs(gaps[n]) / draw_ses[n]:.1f} standard errors of that draw "
            f"noise ({draw_ses[n]:.3f})")
    if draw_ses.get(k) == 0:
        text += f", and at N={k}, where the one subset is the whole list, both read {unbiased[k]:.3f}"
    if many is not None and many_draws:
        text += (f". With {many_draws} draws per problem the gap at N={n} shrinks to "
                 f"{many[n] - unbiased[n]:+.3f}")
    return text + "."


def majority_sentence(majority: Mapping[int, float], verifier: Mapping[int, float],
                      greedy: float) -> str:
    """Majority vote against the verifier and greedy decoding at the largest N (notebook 01)."""
    n = max(majority)
    return (f"Majority vote, which needs no label, scores {majority[n]:.3f} at N={n} against "
            f"greedy decoding's {greedy:.3f} ({majority[n] - greedy:+.3f}): the gap to the "
            f"verifier's {verifier[n]:.3f} is what a better reranker could recover.")


def greedy_sentence(correct: Sequence[float]) -> str:
    """``"Greedy decoding solved 94 of 300 test problems (0.313, binomial SE 0.027)."``"""
    c = np.asarray(correct, dtype=float)
    acc = float(c.mean())
    return (f"Greedy decoding solved {int(c.sum())} of {c.size} test problems ({acc:.3f}, "
            f"binomial SE {np.sqrt(acc * (1 - acc) / c.size):.3f}).")


def crossover(halves: Mapping[str, tuple[float, float, int, PairedStats]],
              per_problem: Mapping[float, Mapping[int, Any]], best_small: float, best_large: float
              ) -> tuple[list[str], dict[str, str]]:
    """Notebook 02's temperature crossover in words: a sentence per half
    (:func:`larpo_lite.metrics.crossover_halves`), then one verdict. Reproduced only when both
    halves are beyond two paired standard errors in the paper's direction.

    Returns:
        ``(sentences, {"small": verdict, "large": verdict})``; no sentence without halves.
    """
    sentences, verdicts = [], {}
    for key, (a, b, n, s) in halves.items():
        sentences.append(comparison_sentence(
            f"T={a}", f"T={b}", s, float(np.mean(per_problem[b][n])),
            float(np.mean(per_problem[a][n])), metric=f"pass@{n}"))
        verdicts[key] = claim_verdict(s)
    if halves:
        n_small, n_large = halves["small"][2], halves["large"][2]
        both = verdicts["small"] == verdicts["large"] == "reproduced"
        sentences.append(
            f"For the paper's crossover (a lower temperature best at small N, a higher one at "
            f"large N), this run's best temperature is {best_small} at N={n_small} and "
            f"{best_large} at N={n_large}; by the 2-SE rule the small-N half is "
            f"{verdicts['small']} and the large-N half {verdicts['large']}, so the crossover is "
            + ("reproduced here." if both else
               "not shown by this run: that needs both halves beyond two paired standard errors."))
    return sentences, verdicts


def figure_title(label: str, before: float, after: float, stats: PairedStats | None = None) -> str:
    """A figure title that states the finding, on two lines: ``label``, then
    ``"0.28 -> 0.59 (+0.31, 2 SE = 0.19)"``; with ``stats`` (a paired comparison) the
    difference, its 2 SE and, within them, "inconclusive" (the 2-SE rule)."""
    text = f"{label}\n{before:.2f} \u2192 {after:.2f}"
    if stats is None:
        return text
    word = "" if stats.verdict != INCONCLUSIVE else ", inconclusive"
    return f"{text} ({stats.diff:+.2f}, 2 SE = {2 * stats.se:.2f}{word})"
