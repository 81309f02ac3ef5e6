"""Notebook 05's steps, one call each: one loop run per hard-negative tier and per temperature of
the hardest tier's negatives, their paired comparisons, figure and sentences; and the audit of
the reranker itself, the verifier, on the runs' own samples (how it reads them, how often it
can be fooled, and what that does to the pairs a run trains on).

Introduced in notebooks/05_hard_negatives. The tiers are :data:`larpo_lite.lists.TIERS`; each
run is a :class:`~larpo_lite.loop_config.LoopConfig` with ``negative_tier`` set, one round of
``sweep_prompts_per_iter`` prompts (a sweep: every comparison prints its minimum detectable
effect).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from . import lists, loop
from .findings import claim_verdict, comparison_rows, finding_from_scores
from .loop_config import HIGH_T, LoopConfig
from .rewards import StrictVerifierReranker, VerifierReranker, shows_answer, verifier_audit

ROUNDS = 1  # rounds of each run of the sweep


def tier_config(params: Any, tier: str, low_t: float) -> LoopConfig:
    """The loop run of one tier: pairwise on (correct, tier negative) pairs, ``k_train``
    samples per prompt at ``low_t`` and at 1.0, :data:`ROUNDS` round(s) of
    ``sweep_prompts_per_iter`` prompts, greedy on the first ``n_eval_sweep`` test problems."""
    return LoopConfig.from_params(params, objective="pairwise", negative_tier=tier,
                                  temperatures=[low_t], memory="current", iterations=ROUNDS,
                                  n_test=params.n_eval_sweep,
                                  prompts_per_iter=params.sweep_prompts_per_iter,
                                  show_progress=False)


def run(params: Any, tier: str, low_t: float) -> list[dict[str, Any]]:
    """The rows of one tier's run (row 0: the initial policy), run or read back."""
    return loop.run_shared(tier_config(params, tier, low_t), params.preset)


def short(tier: str) -> str:
    """``"tier (4)"``."""
    return "tier " + lists.TIER_LABELS[tier].split(" ", 1)[0]


def sweep_name(t: float) -> str:
    return f"negatives at T={t:g}"


def run_table(runs: Mapping[str, Sequence[Mapping[str, Any]]]) -> list[dict[str, Any]]:
    """One row per run: its pairs and skipped prompts per round, greedy accuracy after the
    last round on validation and test."""
    out = []
    for name, rows in runs.items():
        last = rows[-1]
        out.append({"run": lists.TIER_LABELS.get(name, name),
                    "pairs": [r.get("lists") for r in rows[1:]],
                    "skipped prompts": [r.get("skipped_prompts") for r in rows[1:]],
                    "loss first -> last": [f"{r['loss_first']:.3f} -> {r['loss_last']:.3f}"
                                           for r in rows[1:] if "loss_first" in r],
                    "val greedy": last.get("val_greedy"), "test greedy": last["test_greedy"]})
    return out


def first_pairs(params: Any, tier: str, low_t: float) -> list[dict[str, Any]]:
    """A run's round-1 pairs (``lists_iter1.jsonl``: prompt, [positive, negative], rewards)."""
    from .jsonl import read_jsonl

    return read_jsonl(loop.run_dir(tier_config(params, tier, low_t), params.preset) / "lists_iter1.jsonl")


def pair_examples(examples: Mapping[str, Sequence[Mapping[str, Any]]], width: int = 110) -> str:
    """One prompt of the first round, its positive, and each tier's negative for it (printable)."""
    shown = next((p["prompt"] for pairs in examples.values() for p in pairs), None)
    out = []
    for tier, pairs in examples.items():
        pair = next((p for p in pairs if p["prompt"] == shown), None)
        if pair is None:
            out.append(f"{lists.TIER_LABELS[tier]}: this prompt has no pair in this tier")
            continue
        pos, neg = pair["responses"][0], pair["responses"][1]
        out.append(f"{lists.TIER_LABELS[tier]}\n  + {pos[:width]!r}\n  - {neg[:width]!r}")
    return "\n".join(out)


def scores(runs: Mapping[str, Sequence[Mapping[str, Any]]],
           sweep: Mapping[float, Sequence[Mapping[str, Any]]]) -> dict[str, np.ndarray]:
    """Per-problem greedy test scores (``[n_eval_sweep]`` 0/1) after the last round: ``init``
    (round 0, shared by every run), each tier, and each sweep temperature
    (:func:`sweep_name`)."""
    first = next(iter(runs.values()))
    out = {"init": loop.per_problem(first[0], "test")}
    out.update({t: loop.per_problem(rows[-1], "test") for t, rows in runs.items()})
    out.update({sweep_name(t): loop.per_problem(rows[-1], "test") for t, rows in sweep.items()})
    return out


def tier_comparisons(scores_: Mapping[str, np.ndarray], ordered: Sequence[str]) -> list[dict[str, Any]]:
    """Each tier against the initial policy and against the easiest tier, and each tier against
    the next easier one (the paper's ordering, step by step): ``metrics.comparisons`` rows."""
    pairs = ([(t, "init") for t in ordered] + [(t, ordered[0]) for t in ordered[1:]]
             + [(a, b) for b, a in zip(ordered[1:], ordered[2:], strict=False)])
    return comparison_rows(scores_, pairs)


def sweep_comparisons(scores_: Mapping[str, np.ndarray], temps: Sequence[float]) -> list[dict[str, Any]]:
    """Each sweep temperature against the initial policy and against the highest one."""
    top = max(temps)
    return comparison_rows(scores_, [(sweep_name(t), "init") for t in temps]
                           + [(sweep_name(t), sweep_name(top)) for t in temps if t != top])


def greedy_before_after(params: Any, tier: str, low_t: float) -> dict[str, Any]:
    """The test problems and the greedy answers of the initial policy and of the run's last
    round (rebuilt from its checkpoints): texts and 0/1 correctness, ``[n_eval_sweep]`` each."""
    cfg = tier_config(params, tier, low_t)
    before, after = (loop.greedy_responses(cfg, loop.run_dir(cfg, params.preset), iteration=i)
                     for i in (0, None))
    return {"questions": [q.question for q in before.problems],
            "golds": [q.answer for q in before.problems],
            "before": [g.texts[0] for g in before.generations],
            "after": [g.texts[0] for g in after.generations],
            "before_ok": before.correct[:, 0].tolist(), "after_ok": after.correct[:, 0].tolist()}


def _row(rows: Sequence[Mapping[str, Any]], a: str, b: str) -> Mapping[str, Any]:
    return next(r for r in rows if r["a"] == a and r["b"] == b)


def figure(scores_: Mapping[str, np.ndarray], ordered: Sequence[str], temps: Sequence[float],
           cmp: Sequence[Mapping[str, Any]]) -> Any:
    """Left: test greedy accuracy per tier; right: per temperature of the hardest tier's
    negatives. Bars: 2 paired SE of each run against the initial policy (dashed line). Titles
    state the comparisons the paper makes; legends sit below the axes."""
    import matplotlib.pyplot as plt

    from .plotting import errorbar_series, n_axis, palette, zoom_y

    fig, axes = plt.subplots(1, 2, figsize=(12.5, 4.8))
    init = float(np.mean(scores_["init"]))
    n = len(scores_["init"])
    for ax, names, xs, labels in (
            (axes[0], list(ordered), list(range(len(ordered))), [short(t) for t in ordered]),
            (axes[1], [sweep_name(t) for t in temps], list(temps), [f"T={t:g}" for t in temps])):
        ys = [float(np.mean(scores_[k])) for k in names]
        errs = [2 * _row(cmp, k, "init")["se"] for k in names]
        for x, y, e, c, label in zip(xs, ys, errs, palette(len(names)), labels, strict=True):
            errorbar_series(ax, [x], [y], [e], label=label, ms=8, capsize=6, color=c, ls="none")
        ref = ax.axhline(init, color="black", ls="--", lw=1, label="initial policy")
        zoom_y(ax, [*np.add(ys, errs), *np.subtract(ys, errs), init])
        ax.legend(handles=[ref], loc="upper center", bbox_to_anchor=(0.5, -0.16), frameon=False)
        ax.set_xticks(xs, labels)
    axes[0].set_xlim(-0.5, len(ordered) - 0.5)
    n_axis(axes[1], list(temps), log=False)
    axes[1].margins(x=0.2)
    hard, easy = ordered[-1], ordered[0]
    if hard != easy:
        r = _row(cmp, hard, easy)
        axes[0].set_title(f"{short(hard)} vs {short(easy)}: {r['diff']:+.3f} ({r['verdict']}, "
                          f"2 SE = {2 * r['se']:.3f})", fontsize="medium")
    top = max(temps)
    lower = [t for t in temps if t != top]
    if lower:
        best = max(lower, key=lambda t: float(np.mean(scores_[sweep_name(t)])))
        r = _row(cmp, sweep_name(best), sweep_name(top))
        axes[1].set_title(f"T={best:g} vs T={top:g}: {r['diff']:+.3f} ({r['verdict']}, "
                          f"2 SE = {2 * r['se']:.3f})", fontsize="medium")
    axes[0].set(xlabel="negative tier, easiest to hardest",
                ylabel=f"test greedy accuracy ({n} problems)")
    axes[1].set(xlabel="sampling temperature of the negatives", ylabel="test greedy accuracy")
    fig.tight_layout()
    return fig


def tier_findings(scores_: Mapping[str, np.ndarray], ordered: Sequence[str],
                  temps: Sequence[float], cmp: Sequence[Mapping[str, Any]]) -> list[str]:
    """The sentences on the paper's claims: hardest against easiest tier, the ordering step by
    step, the best lower temperature against the highest, the hardest tier against the initial
    policy, and what the steps mean for the ordering (with the largest MDE where none holds)."""
    names = {"init": "the initial policy", **{t: short(t) for t in ordered},
             **{sweep_name(t): f"tier (4) at T={t:g}" for t in temps}}

    def say(a: str, b: str, claim: str) -> tuple[Any, str]:
        return finding_from_scores(scores_, a, b, claim, names=names)

    out = []
    hard, easy = ordered[-1], ordered[0]
    if hard != easy:
        out.append(say(hard, easy, "the hardest negatives teach more than the easiest")[1])
    steps = [(names[h], names[e], claim_verdict(say(h, e, "")[0]))
             for e, h in zip(ordered, ordered[1:], strict=False)]
    if steps:
        out.append("Step by step, " + "; ".join(f"{h} over {e}: {v}" for h, e, v in steps) + ".")
    top = max(temps)
    lower = [t for t in temps if t != top]
    if lower:
        best = max(lower, key=lambda t: float(np.mean(scores_[sweep_name(t)])))
        text = say(sweep_name(best), sweep_name(top), f"negatives sampled below T={top:g} teach more")[1]
        if len(lower) > 1:
            text += (f" (T={best:g} is the best of {len(lower)} lower temperatures, picked after "
                     "seeing them, so this verdict leans optimistic.)")
        out.append(text)
    out.append(say(hard, "init", "training on the hardest negatives improves on the initial policy")[1])
    if steps:
        v = [s[2] for s in steps]
        mde = max(r["mde"] for r in cmp if r["b"] != "init")
        if v.count("reproduced") == len(v):
            meaning = "every step of the paper's ordering (4) > (3) > (2) > (1) holds here beyond noise"
        elif "contradicted" in v:
            meaning = (f"{v.count('contradicted')} of its {len(v)} steps goes against the paper's "
                       "ordering (4) > (3) > (2) > (1) beyond noise, so this run contradicts it in part")
        else:
            meaning = (f"{v.count('reproduced')} of the {len(v)} steps of the paper's ordering hold "
                       f"beyond noise and none goes against it: with {len(scores_['init'])} problems "
                       f"this run would usually miss a difference between tiers smaller than "
                       f"{mde:.3f} (its largest MDE, 2.8 SE)")
        out.append(f"For the paper's claim that harder negatives teach more: {meaning}.")
    return out


# --------------------------------------------------------------------------- the verifier audit
def round1_samples(params: Any, tier: str, low_t: float) -> dict[str, Any]:
    """The samples of round 1 of a tier run (every tier shares them: the initial policy's, at
    ``low_t`` and at 1.0), grouped by problem: ``questions``, ``golds`` and ``prompts`` (chat
    templated, as in the run's pairs) [P], ``texts`` [P][2k] (the ``low_t`` samples first),
    ``temperatures`` [2k]."""
    from .jsonl import read_jsonl

    folder = loop.run_dir(tier_config(params, tier, low_t), params.preset)
    temps = list(dict.fromkeys([low_t, HIGH_T]))
    files = [read_jsonl(folder / f"candidates_iter1_T{t}.jsonl") for t in temps]
    return {"questions": [r["question"] for r in files[0]], "golds": [r["answer"] for r in files[0]],
            "prompts": [r["prompt"] for r in files[0]],
            "texts": [[x for f in files for x in f[i]["texts"]] for i in range(len(files[0]))],
            "temperatures": [t for t, f in zip(temps, files, strict=True) for _ in f[0]["texts"]]}


def read(params: Any, name: str) -> Any:
    """Notebook 05's round-1 material for another notebook (its solutions): ``"first_pairs"``
    (each tier's pairs) or ``"samples"`` (:func:`round1_samples`); under a replay preset the
    recorded ones (``replay/05_hard_negatives``), else read from the run folders (running the
    runs when 05 has not)."""
    if params.replay:
        from .replay import Recorder

        def never() -> Any:
            raise AssertionError("a replay never runs")

        return Recorder("05_hard_negatives", params)(name, never)
    for tier in params.tiers:
        run(params, tier, params.temperature)
    if name == "first_pairs":
        return {tier: first_pairs(params, tier, params.temperature) for tier in params.tiers}
    if name == "samples":
        return round1_samples(params, params.tiers[0], params.temperature)
    raise ValueError(f"unknown record {name!r}: first_pairs or samples")


def list_quality(samples: Mapping[str, Any], strict: bool) -> dict[str, Any]:
    """The pairs a binary verifier makes from ``samples`` (lenient, or ``strict``: only the
    ``####`` answer counts): per problem the first response it marks right against the last it
    marks wrong (``best_worst``), and how many of them a reader would call right or wrong
    (:func:`~larpo_lite.rewards.shows_answer`): ``lists``, ``top_shown`` (tops that show the
    gold), ``bottom_unshown`` (bottoms that do not), ``marked_right`` (responses)."""
    reranker = StrictVerifierReranker() if strict else VerifierReranker()
    tops, bottoms, marked = [], [], 0
    for texts, gold in zip(samples["texts"], samples["golds"], strict=True):
        s = reranker.score(texts, gold)
        marked += int(sum(s))
        pair = lists.select(lists.rank_candidates("", texts, s), "best_worst")
        if pair is not None:
            tops.append(shows_answer(pair.responses[0], gold))
            bottoms.append(not shows_answer(pair.responses[-1], gold))
    return {"lists": len(tops), "marked_right": marked,
            "top_shown": float(np.mean(tops)) if tops else None,
            "bottom_unshown": float(np.mean(bottoms)) if bottoms else None}


def audit(samples: Mapping[str, Any]) -> dict[str, Any]:
    """:func:`~larpo_lite.rewards.verifier_audit` of every sample against its own problem's
    gold and another problem's, with the lenient and the strict verifier's pairs
    (:func:`list_quality`), and one false positive of each kind (empty when there is none)."""
    flat = [x for texts in samples["texts"] for x in texts]
    golds = [g for g, texts in zip(samples["golds"], samples["texts"], strict=True) for _ in texts]
    questions = [q for q, texts in zip(samples["questions"], samples["texts"], strict=True) for _ in texts]
    a = verifier_audit(flat, golds)
    own = {}
    if a["fallback_right_unshown"]:
        i = a["fallback_right_unshown"][0]
        own = {"question": questions[i], "gold": golds[i], "response": flat[i]}
    other = {}
    if a["cross_prompt_hits"]:
        i, j = a["cross_prompt_hits"][0]
        other = {"question": questions[i], "response": flat[i], "other_question": questions[j],
                 "other_gold": golds[j]}
    return {**{k: v for k, v in a.items() if k not in ("fallback_right_unshown", "cross_prompt_hits")},
            "problems": len(samples["golds"]), "fallback_right_unshown": len(a["fallback_right_unshown"]),
            "cross_prompt_hits": len(a["cross_prompt_hits"]),
            "lenient": list_quality(samples, strict=False), "strict": list_quality(samples, strict=True),
            "example_own": own, "example_other": other}


def false_positives(a: Mapping[str, Any], width: int = 240) -> str:
    """The audit's two example false positives, printable."""
    def clip(text: str) -> str:
        one = " ".join(text.split())
        return one if len(one) <= width else one[: width - 3] + "..."

    def own(e: Mapping[str, Any]) -> str:
        return (f"Marked right for its own problem, by the last-number fallback only:\n"
                f"  problem: {clip(e['question'])}  (gold {e['gold']})\n  response: {clip(e['response'])}")

    def other(e: Mapping[str, Any]) -> str:
        return (f"Marked right for ANOTHER problem (gold {e['other_gold']}: {clip(e['other_question'])}):\n"
                f"  written for: {clip(e['question'])}\n  response: {clip(e['response'])}")

    shown = [(a["example_own"], own,
              "No response was marked right by the last-number fallback without showing the gold."),
             (a["example_other"], other, "No response was marked right against another problem's gold.")]
    return "\n".join(show(e) if e else none for e, show, none in shown)


def _binomial_se(p: float | None, n: int) -> float:
    return float(np.sqrt(p * (1 - p) / n)) if p is not None and n > 0 else 0.0


def audit_figure(a: Mapping[str, Any]) -> Any:
    """(a) how the verifier read the responses, and how many it marked right by each rule;
    (b) the share marked right against another problem's gold, lenient and strict; (c) the
    pairs each verifier makes: tops that show the gold, bottoms that do not. Bars 2 SE."""
    import matplotlib.pyplot as plt

    from .plotting import errorbar_series, palette

    fig, axes = plt.subplots(1, 3, figsize=(15, 4.6))
    ax = axes[0]
    rules = list(a["rules"])
    x = np.arange(len(rules))
    ax.bar(x - 0.2, [a["rules"][r] for r in rules], 0.4, label="read by this rule", color="0.7")
    ax.bar(x + 0.2, [a["right_by_rule"][r] for r in rules], 0.4, label="marked right", color="C0")
    ax.set_xticks(x, rules)
    ax.set(ylabel=f"responses (of {a['n']})")
    ax.set_title(f"{a['rules']['last number']} of {a['n']} read by the last-number fallback",
                 fontsize="medium")
    ax.legend(loc="upper center", bbox_to_anchor=(0.5, -0.12), ncol=2, frameon=False)
    ax = axes[1]
    ys = [a["cross_prompt_right"], a["cross_prompt_right_strict"]]
    errs = [2 * _binomial_se(y, a["cross_prompt_pairs"]) for y in ys]
    errorbar_series(ax, ["lenient", "strict (#### only)"], ys, errs, bar=True, capsize=6,
                    color=palette(2))
    ax.set(ylabel=f"marked right vs another gold ({a['cross_prompt_pairs']} responses)")
    ax.set_ylim(bottom=0)
    ax.set_title(f"another problem's gold: lenient {ys[0]:.1%}, strict {ys[1]:.1%}", fontsize="medium")
    ax = axes[2]
    kinds = ("lenient", "strict")
    for i, (key, label) in enumerate((("top_shown", "top shows the gold"),
                                      ("bottom_unshown", "bottom does not"))):
        ys = [a[k][key] or 0.0 for k in kinds]
        errs = [2 * _binomial_se(a[k][key], a[k]["lists"]) for k in kinds]
        errorbar_series(ax, list(np.arange(2) + (i - 0.5) * 0.4), ys, errs, label=label, bar=True,
                        width=0.4, capsize=5, color=palette(4)[2 + i])
    ax.set_xticks([0, 1], [f"{k} ({a[k]['lists']} pairs)" for k in kinds])
    ax.set(ylabel="share of the pairs", ylim=(0, 1.1))
    ax.set_title(f"pairs: lenient {a['lenient']['lists']}, strict {a['strict']['lists']}",
                 fontsize="medium")
    ax.legend(loc="upper center", bbox_to_anchor=(0.5, -0.12), ncol=2, frameon=False)
    fig.tight_layout()
    return fig


def _pairs_sentence(name: str, q: Mapping[str, Any]) -> str:
    if not q["lists"]:
        return f"Ranked by the {name} verifier, no problem gives a pair."
    return (f"Ranked by the {name} verifier, {q['lists']} problems give a pair; its top shows the "
            f"gold in {q['top_shown']:.0%} of them, and its bottom does not in "
            f"{q['bottom_unshown']:.0%} (so {1 - q['bottom_unshown']:.0%} of the negatives show "
            f"the gold).")


def audit_sentences(a: Mapping[str, Any]) -> list[str]:
    """The audit in words, from its numbers: how the responses were read, how many were right
    by the fallback only, the cross-problem false-positive rates, and the two verifiers' pairs."""
    r, rr = a["rules"], a["right_by_rule"]
    fb = rr["last number"]
    lo, st = a["lenient"], a["strict"]
    unshown = a["fallback_right_unshown"]
    out = [f"Of the {a['n']} responses sampled in round 1 ({a['problems']} problems), the verifier "
           f"read {r['####']} by their `####` line, {r['answer is']} after \"answer is\", "
           f"{r['last number']} by the last-number fallback, and {r['none']} held no number.",
           f"It marked {a['right']} right ({a['right_strict']} by the strict verifier, which reads "
           f"`####` only); {fb} of them through the fallback, "
           + (f"and {unshown} of those never show the gold as a result: right by the rule only."
              if unshown else "and every one of those shows the gold as a result.")
           if a["right"] else "It marked none right.",
           f"Checked against another problem's gold, the lenient verifier marks "
           f"{a['cross_prompt_right']:.1%} of the responses right and the strict one "
           f"{a['cross_prompt_right_strict']:.1%} ({a['cross_prompt_pairs']} responses).",
           " ".join(_pairs_sentence(name, q) for name, q in (("lenient", lo), ("strict", st)))]
    lesson = []
    if a["fallback_right_unshown"] or a["cross_prompt_right"] > a["cross_prompt_right_strict"]:
        lesson.append("the lenient verifier pays for a number that merely ends a response, a "
                      "shortcut a policy trained on it can learn")
    if st["bottom_unshown"] is not None and (lo["bottom_unshown"] is None
                                             or st["bottom_unshown"] < lo["bottom_unshown"]):
        lesson.append("the strict one cannot be fooled that way but calls right answers without "
                      "`####` wrong and trains them as negatives, so it rewards the format as much "
                      "as the arithmetic")
    if st["lists"] < lo["lists"]:
        lesson.append(f"and it leaves fewer pairs ({st['lists']} against {lo['lists']})")
    if lesson:
        out.append("So the reward can be gamed both ways: " + "; ".join(lesson) + ".")
    return out
