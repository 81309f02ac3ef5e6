"""``reports/REPRODUCTION.md``: which of the paper's findings hold on our small model.

Built from the metrics files the notebooks write (``<reports_dir>/0X_*.json``), never by hand:
one row per finding of REFERENCE.md section 4, with the paper's number, ours, the difference
(ours, signed so that positive is the paper's direction), its standard error, the minimum
detectable effect at 80% power (:data:`MDE_SE`, 2.8 SE), a verdict by the 2-SE rule, the same
verdict after a Holm-Bonferroni correction over the table's rows (:func:`holm`), and the rows
it shares runs with (:func:`shared_runs`); below the table, the runs several notebooks share and
the choices that saw the test split (:func:`choices_that_saw_test`). Called at the end of
notebooks/07_larpo_loop; also ``python -m larpo_lite.reproduction [reports_dir]``.

Verdicts (:func:`verdict`): *reproduced* when the difference is in the paper's direction and
beyond 2 standard errors; *contradicted* when beyond 2 standard errors the other way;
*inconclusive* otherwise; *not run* when the notebook has not written its metrics yet. Mean
rewards (a reward-scored alignment task) without per-problem rewards have no error bar: *same
direction (no error bar)* or *opposite direction (no error bar)*. After Holm: a row keeps its
verdict when its Holm-adjusted two-sided p-value (normal approximation, from diff and SE) is at
most :data:`FAMILY_ALPHA` over every row with a standard error; else *inconclusive after Holm*.

The MDE column is computed from each row's SE (2.8 SE), never read from the reports' own
``mde`` fields (metrics files written before the 80%-power rule hold 2 SE there).

The standard error is paired whenever the metrics file lets it be (both policies scored on the
same test problems: only the problems that changed carry noise, see
:func:`larpo_lite.metrics.paired_stats`), else a binomial error of two accuracies treated as
independent, labelled "binomial, unpaired" in the report (an upper bound for paired runs).

Per-problem fields a notebook's metrics file (``record["metrics"]``) may hold, all on the test
problems in the test split's order:

- ``per_problem``: ``{name: scores}``; ``scores`` is a list of ``n_test`` numbers (1/0 for a
  correct greedy response, or its reward on a reward-scored task) or, for a run with several
  seeds, a list of such lists, one per seed (compared through each problem's mean over seeds,
  :func:`larpo_lite.metrics.paired_over_seeds`). Names: 03 its table's stages (``"init"``,
  ``"SFT"``, ``"SFT -> DPO"``); 04 ``"init"`` and each objective (seeds in ``train_seeds``
  order); 05 each tier of ``test_greedy``; 06 ``"<section>/<key>"`` for the runs of its
  sections (``"list_size/8"``, ``"memory/all"``, ``"temperatures/mix [1.0, 0.5]"``); 07 the
  keys of ``test_greedy`` (``"init"``, ``"iterative DPO"``, ``"offline DPO"``, the
  objectives).
- ``per_problem_recall``: ``{T: {N: [n_test unbiased pass@N estimates]}}``, the per-problem
  terms of 02's ``recall`` (same keys).
- ``comparisons``: rows ``{"a", "b", "diff", "se", "n"}`` (a minus b, paired SE, problems)
  with the names above; used for a pair when ``per_problem`` lacks one of its two vectors.
"""

from __future__ import annotations

import json
import math
import re
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from .metrics import paired_stats
from .paths import repo_root

REPRODUCED, CONTRADICTED, INCONCLUSIVE, NOT_RUN = "reproduced", "contradicted", "inconclusive", "not run"
DIRECTION, OPPOSITE = "same direction (no error bar)", "opposite direction (no error bar)"
SINGLE_SEED = "beyond 2 SE, single seed: not counted as reproduced"
VERDICTS = (REPRODUCED, CONTRADICTED, INCONCLUSIVE, DIRECTION, OPPOSITE, NOT_RUN)

PAIRED, FROM_FILE, UNPAIRED, NO_ERROR = ("paired", "paired, from the metrics file",
                                          "binomial, unpaired", "no error bar")

VERDICT_SE = 2.0  # the verdict rule: beyond 2 SE either way (two-sided p about 0.046)
# The minimum detectable effect at 80% power, two-sided alpha 0.05: z_0.975 + z_0.80 =
# 1.960 + 0.842 = 2.8 standard errors. A true effect of 2 SE is detected only half the time.
MDE_SE = 2.8
FAMILY_ALPHA = 0.05  # Holm-Bonferroni's family-wise error rate over the table's rows
AFTER_HOLM = "inconclusive after Holm"


def two_sided_p(diff: float, se: float) -> float:
    """Two-sided p-value of ``diff`` against 0 with standard error ``se`` (normal
    approximation, ``erfc(|diff| / se / sqrt 2)``). ``se == 0``: 1 for a zero difference, else 0."""
    if se <= 0:
        return 1.0 if diff == 0 else 0.0
    return math.erfc(abs(diff) / se / math.sqrt(2))


def holm(pvalues: Sequence[float], alpha: float = FAMILY_ALPHA) -> tuple[list[float], list[bool]]:
    """Holm-Bonferroni step-down over ``pvalues`` (``[m]``, one per hypothesis, any order).

    Sorted ascending, the k-th smallest (k = 1..m) is rejected while every one up to it is at
    most ``alpha / (m - k + 1)``; the first that is not stops the procedure. Returns the
    Holm-adjusted p-values (``max over j <= k of min(1, (m - j + 1) p_(j))``, in the input's
    order) and whether each hypothesis is rejected (adjusted p at most ``alpha``); the
    family-wise error rate is at most ``alpha`` under any dependence between the tests.
    """
    m = len(pvalues)
    for p in pvalues:
        if not 0.0 <= p <= 1.0 or math.isnan(p):
            raise ValueError(f"holm: p-values must lie in [0, 1]; got {p!r} in {list(pvalues)!r}")
    adjusted = [1.0] * m
    running = 0.0
    for rank, i in enumerate(sorted(range(m), key=lambda j: pvalues[j])):
        running = max(running, min(1.0, (m - rank) * pvalues[i]))
        adjusted[i] = running
    return adjusted, [a <= alpha for a in adjusted]


def reward_scored(record: dict[str, Any]) -> bool:
    """Whether an alignment notebook's metrics are mean rewards (its preset set a reward-scored
    ``alignment_task``) rather than accuracies."""
    from .tasks import has_verifier

    task = record["params"].get("alignment_task") or ""
    return bool(task) and not has_verifier(task)


def _load(folder: Path, name: str) -> dict[str, Any] | None:
    path = folder / f"{name}.json"
    if not path.is_file():
        return None
    return json.loads(path.read_text())


def _n_eval(record: dict[str, Any], sweep: bool = False) -> int:
    """Test problems a notebook's greedy accuracies were measured on (``n_eval`` /
    ``n_eval_sweep``; ``n_test`` in metrics files written before those parameters existed)."""
    p = record["params"]
    return int(p.get("n_eval_sweep" if sweep else "n_eval", p["n_test"]))


def binomial_se(p: float, n: int) -> float:
    """Standard error of an accuracy ``p`` measured on ``n`` problems."""
    return math.sqrt(max(p * (1 - p), 1e-12) / max(n, 1))


def verdict(diff: float, se: float | None) -> str:
    """The verdict of a difference ``diff`` (ours, positive in the paper's direction).

    ``diff > 2 se``: reproduced; ``diff < -2 se``: contradicted; otherwise inconclusive (a
    zero difference is inconclusive even when ``se`` is 0). ``se=None`` (mean rewards without
    per-problem scores): the direction alone.
    """
    if se is None:
        return DIRECTION if diff > 0 else OPPOSITE if diff < 0 else INCONCLUSIVE
    if diff > VERDICT_SE * se:
        return REPRODUCED
    if diff < -VERDICT_SE * se:
        return CONTRADICTED
    return INCONCLUSIVE


def _diff_se(a: float, b: float, n: int) -> float:
    """Standard error of the difference of two accuracies on ``n`` problems each, treated as
    independent (an upper bound for paired runs)."""
    return math.sqrt(binomial_se(a, n) ** 2 + binomial_se(b, n) ** 2)


@dataclass(frozen=True)
class Comparison:
    """``a`` minus ``b``: the difference, its standard error (None: no error bar) and its kind
    (``"paired"``, ``"paired, from the metrics file"``, ``"binomial, unpaired"``, ``"no error
    bar"``)."""

    diff: float
    se: float | None
    kind: str

    def flipped(self) -> Comparison:
        """``b`` minus ``a``."""
        return Comparison(-self.diff, self.se, self.kind)


def _per_problem_mean(scores: Sequence[Any]) -> np.ndarray:
    """``[P]`` scores, or each problem's mean over seeds for ``[S, P]``."""
    arr = np.asarray(scores, dtype=np.float64)
    return arr.mean(axis=0) if arr.ndim == 2 else arr


def compare(record: dict[str, Any], a: str, b: str, acc_a: float, acc_b: float, n: int) -> Comparison:
    """``a`` minus ``b`` from one notebook's metrics, with the best standard error it allows.

    In order: paired from ``metrics.per_problem`` when both vectors are there (runs with seeds:
    each problem's mean over seeds); the ``metrics.comparisons`` row of the pair; for mean
    rewards, no error bar; else the unpaired binomial error of ``acc_a`` and ``acc_b`` on ``n``
    problems.
    """
    m = record["metrics"]
    per = m.get("per_problem") or {}
    if a in per and b in per:
        s = paired_stats(_per_problem_mean(per[b]), _per_problem_mean(per[a]))
        return Comparison(s.diff, s.se, PAIRED)
    for row in m.get("comparisons") or []:
        if (row.get("a"), row.get("b")) == (a, b):
            return Comparison(float(row["diff"]), float(row["se"]), FROM_FILE)
        if (row.get("a"), row.get("b")) == (b, a):
            return Comparison(-float(row["diff"]), float(row["se"]), FROM_FILE)
    if reward_scored(record):
        return Comparison(acc_a - acc_b, None, NO_ERROR)
    return Comparison(acc_a - acc_b, _diff_se(acc_a, acc_b, n), UNPAIRED)


@dataclass(frozen=True)
class _RowTest:
    """What a row tested: the two-sided p-value behind its verdict (None: no standard error, or
    not run) and the arms it compares, ``(notebook, name)`` (names as in the metrics files)."""

    p: float | None
    arms: tuple[tuple[str, str], ...]


def findings(folder: str | Path) -> list[dict[str, str]]:
    """One dict per finding, all strings: finding, paper, ours, diff, se, mde (80% power,
    :data:`MDE_SE` x se), verdict (the 2-SE rule), p (two-sided), p_holm (Holm-adjusted over the
    rows with a standard error), holm (the verdict after Holm) and shared (the other rows whose
    runs this row's comparison uses, :func:`shared_runs`)."""
    folder = Path(folder)
    rows, tests = _findings(folder)
    family = [i for i, t in enumerate(tests) if t.p is not None]
    adjusted, rejected = holm([tests[i].p for i in family]) if family else ([], [])
    for i, a, r in zip(family, adjusted, rejected, strict=True):
        row = rows[i]
        row["p"], row["p_holm"] = _fmt_p(tests[i].p), _fmt_p(a)
        conclusive = row["verdict"] in (REPRODUCED, CONTRADICTED)
        row["holm"] = row["verdict"] if r or not conclusive else AFTER_HOLM
    notes = shared_runs(rows, tests, _RunIndex(folder))
    for row, note in zip(rows, notes, strict=True):
        row["shared"] = note
    return rows


def _fmt_p(p: float) -> str:
    return "<0.0001" if p < 1e-4 else f"{p:.2g}"


def _recall_choice(m: dict[str, Any]) -> tuple[str, str, str, str]:
    """02's choices, all made on its test problems: the temperature with the highest pass@N at
    the largest N (``t_top``), that N, and the two temperatures the crossover row tests
    (``low``, ``high``): the best at the smallest and at the largest N, or, when one is best at
    both, it and its strongest rival at the largest N."""
    t_top = max(m["recall"], key=lambda t: m["recall"][t][max(m["recall"][t], key=int)])
    nmax = max(m["recall"][t_top], key=int)
    best = m["best_temperature_by_n"]
    ts, tl = str(best[min(best, key=int)]), str(best[max(best, key=int)])
    if ts == tl:  # one T best at both ends: test it against its strongest rival at N=nmax
        others = [t for t in m["recall"] if t != ts]
        if others:
            tl = max(others, key=lambda t: rec_at(m, t, nmax))
    low, high = sorted({ts, tl}, key=float) if ts != tl else (ts, tl)
    return t_top, nmax, low, high


def _findings(folder: Path) -> tuple[list[dict[str, str]], list[_RowTest]]:
    """The rows (diff, SE, MDE, 2-SE verdict) and what each tested."""
    rows: list[dict[str, str]] = []
    tests: list[_RowTest] = []

    def add(finding: str, paper: str, ours: str, c: Comparison | None = None,
            v: str | None = None, arms: Sequence[tuple[str, str]] = (), p: float | None = None) -> None:
        """A row; the verdict is ``verdict(c.diff, c.se)`` unless ``v`` is given, its p-value
        ``two_sided_p(c.diff, c.se)`` unless ``p`` is given."""
        row = {"finding": finding, "paper": paper, "ours": ours, "diff": "-", "se": "-",
               "mde": "-", "verdict": NOT_RUN if c is None else v or verdict(c.diff, c.se),
               "p": "-", "p_holm": "-", "holm": "-", "shared": ""}
        if c is not None:
            row["diff"] = f"{c.diff:+.3f}"
            if c.se is not None:
                row["se"] = f"{c.se:.3f} ({c.kind})"
                row["mde"] = f"{MDE_SE * c.se:.3f}"
                if p is None:
                    p = two_sided_p(c.diff, c.se)
        rows.append(row)
        tests.append(_RowTest(p if c is not None and c.se is not None else None, tuple(arms)))

    # ---- 02: Recall@N shape and temperature crossover
    r02 = _load(folder, "02_recall_at_n")
    paper_shape = "pass@N rises steeply with N (GSM8K, Mistral-7B-it: R@20 .83 vs greedy .47)"
    paper_cross = "lower T best at small N, higher T best at N > 10"
    if r02:
        m, n_test = r02["metrics"], r02["params"]["n_test"]
        per = m.get("per_problem_recall") or {}
        t_top, nmax, low, high = _recall_choice(m)
        rec = m["recall"][t_top]
        n1 = "1"

        def recall_cmp(ta: str, na: str, tb: str, nb: str) -> Comparison:
            """pass@na at T=ta minus pass@nb at T=tb: paired over problems when 02 wrote them."""
            if ta in per and tb in per and na in per[ta] and nb in per[tb]:
                s = paired_stats(per[tb][nb], per[ta][na])
                return Comparison(s.diff, s.se, PAIRED)
            pa, pb = rec_at(m, ta, na), rec_at(m, tb, nb)
            return Comparison(pa - pb, _diff_se(pa, pb, n_test), UNPAIRED)

        add("Recall@N rises steeply with N", paper_shape,
            f"pass@1 {rec[n1]:.3f} -> pass@{nmax} {rec[nmax]:.3f} at T={t_top} ({n_test} test problems)",
            recall_cmp(t_top, nmax, t_top, n1), arms=[("02", f"T={t_top} samples")])
        best = m["best_temperature_by_n"]
        ci = m["recall_ci90"]
        at_n = recall_cmp(high, nmax, low, nmax)  # the claim: the higher T ahead at N=nmax
        at_1 = recall_cmp(low, n1, high, n1)      # ... and the lower T ahead at N=1
        ours = (f"best T at N=1: {str(best[min(best, key=int)])}; at N={nmax}: "
                f"{str(best[max(best, key=int)])}; pass@{nmax} T={high} minus T={low}: "
                f"{at_n.diff:+.3f} (SE {at_n.se:.3f}), 90% intervals {_fmt_ci(ci[high][nmax])} vs "
                f"{_fmt_ci(ci[low][nmax])}; pass@1 T={low} minus T={high}: {at_1.diff:+.3f} "
                f"(SE {at_1.se:.3f})")
        head = at_n
        ends = [verdict(at_n.diff, at_n.se), verdict(at_1.diff, at_1.se)]
        v = INCONCLUSIVE
        if low != high and ends == [REPRODUCED, REPRODUCED]:
            v = REPRODUCED
        elif low != high and ends[0] == CONTRADICTED:  # a lower T ahead at large N, beyond noise
            v = CONTRADICTED
        # its p-value: both halves must hold (the larger of the two), or the large-N half
        # against the paper; 1 when no pair of temperatures can show a crossover
        p_cross = 1.0
        if low != high and at_n.diff > 0 and at_1.diff > 0:
            p_cross = max(two_sided_p(at_n.diff, at_n.se or 0.0), two_sided_p(at_1.diff, at_1.se or 0.0))
        elif low != high and at_n.diff < 0:
            p_cross = two_sided_p(at_n.diff, at_n.se or 0.0)
        add("Temperature crossover", paper_cross, ours, head, v,
            arms=[("02", f"T={high} samples"), ("02", f"T={low} samples")], p=p_cross)
    else:
        add("Recall@N rises steeply with N", paper_shape, "-")
        add("Temperature crossover", paper_cross, "-")

    # ---- 03: SFT, then DPO
    r03 = _load(folder, "03_training_stage")
    paper_stage = "GSM8K greedy .466 -> SFT .768 -> SFT+DPO .799 (Table 6)"
    if r03:
        t = {row["stage"]: row for row in r03["metrics"]["table"]}
        n = _n_eval(r03)
        init, sft = t["init"]["greedy"], t.get("SFT", {}).get("greedy")
        dpo = t.get("SFT -> DPO", {}).get("greedy")
        if sft is not None:
            add("SFT raises greedy accuracy", "init .466 -> SFT .768", f"init {init:.3f} -> SFT {sft:.3f}",
                compare(r03, "SFT", "init", sft, init, n), arms=[("03", "SFT"), ("03", "init")])
        if dpo is not None and sft is not None:
            add("DPO after SFT raises it further", "SFT .768 -> SFT+DPO .799",
                f"SFT {sft:.3f} -> SFT+DPO {dpo:.3f}", compare(r03, "SFT -> DPO", "SFT", dpo, sft, n),
                arms=[("03", "SFT -> DPO"), ("03", "SFT")])
    else:
        add("SFT, then DPO, raise greedy accuracy", paper_stage, "-")

    # ---- 04 / 07: listwise against pairwise
    r04 = _load(folder, "04_ranking_losses")
    paper_list = "listwise beats pairwise (Gemma2-2b LC: pairwise 55.1, contrastive 60.4, ListMLE 63.1, LambdaRank 58.7)"
    if r04:
        res = [r for r in r04["metrics"]["results"] if r["objective"] != "init"]
        n = _n_eval(r04)
        means: dict[str, list[float]] = {}
        for r in res:
            means.setdefault(r["objective"], []).append(r["greedy"])
        if "pairwise" in means and len(means) > 1:
            avg = {k: sum(v) / len(v) for k, v in means.items()}
            # one row per listwise objective: picking the best one on the test numbers would
            # bias the comparison upward (a choice belongs on validation)
            for obj in (k for k in avg if k != "pairwise"):
                seeds = len(means[obj])
                c = compare(r04, obj, "pairwise", avg[obj], avg["pairwise"], n * seeds)
                v = verdict(c.diff, c.se)
                single = min(seeds, len(means["pairwise"])) < 2
                add(f"Listwise beats pairwise: {obj} (one round, 04)", paper_list,
                    f"{obj} {avg[obj]:.3f} vs pairwise {avg['pairwise']:.3f} "
                    f"(mean of {seeds} seed{'s' if seeds != 1 else ''})", c,
                    v=SINGLE_SEED if single and v == REPRODUCED else v,
                    arms=[("04", obj), ("04", "pairwise")])
    else:
        add("Listwise beats pairwise (one round, 04)", paper_list, "-")

    # ---- 05: hard negatives
    r05 = _load(folder, "05_hard_negatives")
    paper_tiers = "accuracy orders tier (4) > (3) > (2) > (1) (Fig. 4a)"
    if r05:
        acc = r05["metrics"]["test_greedy"]
        n = _n_eval(r05, sweep=True)
        order = sorted(acc, key=lambda k: -acc[k])
        hardest, easiest = "incorrect_low_t", "unrelated"
        ours = ", ".join(f"{k} {v:.3f}" for k, v in acc.items())
        chain = order[0]
        for a, b in zip(order, order[1:], strict=False):
            chain += (" > " if acc[a] > acc[b] else " = ") + b
        add("Harder negatives help more", paper_tiers,
            f"{ours}; order {chain}; tier (4) minus tier (1)",
            compare(r05, hardest, easiest, acc[hardest], acc[easiest], n),
            arms=[("05", hardest), ("05", easiest)])
    else:
        add("Harder negatives help more", paper_tiers, "-")

    # ---- 06: list size, memorization, diversity
    r06 = _load(folder, "06_candidate_lists")
    specs = [("More responses per prompt help", "k = 4, 6, 8, 10 rises, diminishing (Fig. 4c)",
              "k_largest_vs_smallest", "largest vs smallest k"),
             ("Memorizing earlier lists helps", "LC 55.06 current -> 56.02 all previous (Table 4)",
              "memory_all_vs_current", "all previous vs current only"),
             ("A temperature mix helps", "LC 55.06 single -> 59.36 mix 1.0/0.5 (Table 4)",
              "mix_vs_single", "mix vs single temperature")]
    for finding, paper, key, what in specs:
        if r06:
            gain = r06["metrics"]["gains"][key]
            n = _n_eval(r06, sweep=True)
            unit = "test mean reward" if reward_scored(r06) else "test greedy"
            c, names = _compare_06(r06, key, gain, n)
            add(finding, paper, f"{what}: {gain:+.3f} {unit}", c, arms=[("06", x) for x in names])
        else:
            add(finding, paper, "-")

    # ---- 07: LARPO against iterative DPO, on one sampling budget, over several rounds
    r07 = _load(folder, "07_larpo_loop")
    paper_main = "LARPO beats iterative DPO (Mistral-7B-it LC 32.7-43.0 vs 20.4, Table 2)"
    paper_off = "LARPO beats offline DPO (Mistral-7B-it LC 32.7-43.0 vs 26.8, Table 2)"
    m07 = (r07 or {}).get("metrics", {})
    if m07.get("arms") and m07.get("comparisons"):
        arms07 = {r["arm"]: r for r in m07["arms"]}
        rows07 = [c for c in m07["comparisons"] if str(c["a"]).startswith("LARPO")
                  and c["b"] in ("iterative DPO", "offline DPO")]
        for c in rows07:  # every objective, none picked on test; headline first
            a, b = arms07[c["a"]], arms07[c["b"]]
            single = min(c["seeds"]) < 2
            v = verdict(c["diff"], c["se"])
            if single and v == REPRODUCED:
                v = SINGLE_SEED
            add(f"LARPO beats {c['b']}: {c['a'].removeprefix('LARPO ')}"
                + (" (single seed)" if single else ""),
                paper_main if c["b"] == "iterative DPO" else paper_off,
                f"{c['a']} {a['test_greedy'][-1]:.3f} vs {c['b']} {b['test_greedy'][-1]:.3f} after "
                f"{a['rounds']} rounds, k={a['k']} each, seeds {c['seeds'][0]} vs {c['seeds'][1]}",
                Comparison(float(c["diff"]), float(c["se"]), str(c["se_kind"])), v=v,
                arms=[("07", c["a"]), ("07", c["b"])])
    elif r07:  # a metrics file of the one-round notebook
        acc = m07["test_greedy"]
        n = _n_eval(r07)
        larpo = {k: v for k, v in acc.items() if k not in ("iterative DPO", "offline DPO", "init")}
        for obj in larpo if "iterative DPO" in acc else ():
            add(f"LARPO beats iterative DPO: {obj}", paper_main,
                f"LARPO ({obj}) {larpo[obj]:.3f} vs iterative DPO {acc['iterative DPO']:.3f}",
                compare(r07, obj, "iterative DPO", larpo[obj], acc["iterative DPO"], n),
                arms=[("07", obj), ("07", "iterative DPO")])
    else:
        add("LARPO beats iterative DPO", paper_main, "-")
    return rows, tests


def _compare_06(record: dict[str, Any], key: str, gain: float, n: int) -> tuple[Comparison, list[str]]:
    """The runs behind one of 06's ``gains`` (``"<section>/<key>"`` names) and their comparison;
    the final test score of each run is read from its section, else ``gain`` around 0.5."""
    m = record["metrics"]
    section = {"k_largest_vs_smallest": "list_size", "memory_all_vs_current": "memory",
               "mix_vs_single": "temperatures"}[key]
    runs = m.get(section) or {}
    a = b = None
    if key == "k_largest_vs_smallest" and runs:
        a, b = max(runs, key=int), min(runs, key=int)
    elif key == "memory_all_vs_current":
        a, b = "all", "current"
    elif runs:
        a = next((k for k in runs if k.startswith("mix")), None)
        b = next((k for k in runs if k.startswith("single")), None)
    if a in runs and b in runs and runs[a] and runs[b]:
        acc_a, acc_b = runs[a][-1]["test_greedy"], runs[b][-1]["test_greedy"]
        names = [f"{section}/{a}", f"{section}/{b}"]
        return compare(record, names[0], names[1], acc_a, acc_b, n), names
    return compare(record, f"{section}/?", f"{section}/?", 0.5 + gain / 2, 0.5 - gain / 2, n), []


# ---- runs shared between rows and notebooks

INIT = "init"  # the initial policy: every row's starting point, no trained run


def _same_round(a: dict[str, Any], b: dict[str, Any]) -> bool:
    """Whether two loop rounds' rows are the same training: the same ``train_key`` (the
    round's settings, starting policy and lists, :func:`larpo_lite.loop.training_key`) when
    both have one; else the same training statistics (``train_seconds`` to 0.1 s and ``lists``),
    which a run that loaded another's training (``train_reused_from``) copies from it."""
    ka, kb = a.get("train_key"), b.get("train_key")
    if ka and kb:
        return bool(ka == kb)
    sa, sb = a.get("train_seconds"), b.get("train_seconds")
    return (sa is not None and sb is not None and round(float(sa), 1) == round(float(sb), 1)
            and a.get("lists") == b.get("lists"))


def _common_rounds(a: list[dict[str, Any]], b: list[dict[str, Any]]) -> int:
    """How many first rounds two runs (their trained rounds' rows, in order) share."""
    k = 0
    while k < min(len(a), len(b)) and _same_round(a[k], b[k]):
        k += 1
    return k


class _RunIndex:
    """The trained runs behind the arms the notebooks compare, read from their metrics files:
    04's ``results`` rows (one round per seed), 05's ``tiers`` and ``temperature_sweep``, 06's
    ``list_size``, ``memory`` and ``temperatures`` sections, 07's ``runs``."""

    def __init__(self, folder: Path) -> None:
        self.records = {nb: _load(folder, name) for nb, name in (
            ("04", "04_ranking_losses"), ("05", "05_hard_negatives"), ("06", "06_candidate_lists"),
            ("07", "07_larpo_loop"))}

    def _metrics(self, nb: str) -> dict[str, Any]:
        rec = self.records.get(nb)
        return rec["metrics"] if rec else {}

    def runs(self, nb: str, name: str) -> list[list[dict[str, Any]]]:
        """One list of trained rounds' rows (iteration >= 1) per seed; [] when the metrics
        files hold no rows for the arm (it then stands for itself)."""
        m = self._metrics(nb)

        def trained(rows: Any) -> list[list[dict[str, Any]]]:
            rounds = [r for r in rows or [] if isinstance(r, dict) and r.get("iteration", 1) >= 1
                      and ("train_key" in r or "train_seconds" in r)]
            return [rounds] if rounds else []

        if nb == "04":
            return [[r] for r in m.get("results") or []
                    if r.get("objective") == name and "train_seconds" in r]
        if nb == "05":
            if name.startswith("sweep T="):
                return trained((m.get("temperature_sweep") or {}).get(name.removeprefix("sweep T=")))
            return trained((m.get("tiers") or {}).get(name))
        if nb == "06" and "/" in name:
            section, key = name.split("/", 1)
            return trained((m.get(section) or {}).get(key))
        if nb == "07":
            got = (m.get("runs") or {}).get(name) or []
            if got and isinstance(got[0], list):  # one list of rows per seed
                return [t for rows in got for t in trained(rows)]
            return trained(got)
        return []

    def arms(self) -> list[tuple[str, str]]:
        """Every trained arm of 04-07 (rows of this report or not, such as 07's offline DPO)."""
        out = [("04", o) for o in dict.fromkeys(r.get("objective") for r in self._metrics("04").get("results") or [])
               if o and o != INIT]
        m05 = self._metrics("05")
        out += [("05", t) for t in m05.get("tiers") or {}]
        out += [("05", f"sweep T={t}") for t in m05.get("temperature_sweep") or {}]
        m06 = self._metrics("06")
        out += [("06", f"{sec}/{k}") for sec in ("list_size", "memory", "temperatures") for k in m06.get(sec) or {}]
        out += [("07", k) for k in self._metrics("07").get("runs") or {}]
        return [a for a in out if self.runs(*a)]

    def relation(self, x: tuple[str, str], y: tuple[str, str]) -> int:
        """-1 when ``x`` and ``y`` are the same run (or the same arm of one notebook), else how
        many first rounds their runs share (0: none)."""
        if x == y:
            return -1
        rx, ry = self.runs(*x), self.runs(*y)
        if not rx or not ry:
            return 0
        if len(rx) == len(ry) and all(len(a) == len(b) == _common_rounds(a, b) for a, b in zip(rx, ry, strict=True)):
            return -1
        return max(_common_rounds(a, b) for a in rx for b in ry)

    def label(self, arm: tuple[str, str]) -> str:
        nb, name = arm
        seeds = len(self.runs(nb, name))
        if name.endswith("samples"):
            return f"{nb}'s {name}"
        return f"{nb}'s {name} run" + (f"s ({seeds} seeds)" if seeds > 1 else "")

    def loaded_from(self, arm: tuple[str, str]) -> list[str]:
        """``train_reused_from`` of the arm's rounds: trainings it loaded from another run folder."""
        return [f"round {r.get('iteration')} from {r['train_reused_from']}"
                for run in self.runs(*arm) for r in run if r.get("train_reused_from")]


def _rounds(k: int) -> str:
    return "round 1" if k == 1 else f"rounds 1-{k}"


def shared_runs(rows: list[dict[str, str]], tests: list[_RowTest], index: _RunIndex) -> list[str]:
    """Per row, the other rows whose comparisons use one of its runs: the same arm of a notebook
    (04's pairwise run in each of 04's rows), the same run under another name (the same
    ``train_key`` chain or training statistics, :func:`_same_round`: 07's contrastive run is
    04's), or runs that share their first rounds (06's memory runs start from its k=8 run).
    A row whose arms all are another row's repeats that comparison. The initial policy is
    no trained run and is left out. "" when the row shares nothing."""
    arms = [[a for a in t.arms if a[1] != INIT] for t in tests]
    notes = []
    for i, mine in enumerate(arms):
        parts: list[str] = []
        for j, theirs in enumerate(arms):
            if j != i and len(mine) >= 2 and len(mine) == len(theirs) and all(
                    any(index.relation(x, y) == -1 for y in theirs) for x in mine) and all(
                    any(index.relation(x, y) == -1 for x in mine) for y in theirs):
                parts.append(f"repeats the comparison of *{rows[j]['finding']}*")
        for x in mine:
            same: dict[str, list[str]] = {}
            prefix: dict[int, list[str]] = {}
            for j, theirs in enumerate(arms):
                if j == i:
                    continue
                for y in theirs:
                    rel = index.relation(x, y)
                    where = f"*{rows[j]['finding']}*"
                    if rel == -1:
                        there = "" if index.label(y) == index.label(x) else f" (as {index.label(y)})"
                        same.setdefault(there, []).append(where)
                    elif rel > 0:
                        prefix.setdefault(rel, []).append(f"{index.label(y)} ({where})")
            said = [", ".join(dict.fromkeys(w)) + there for there, w in same.items()]
            if said:
                parts.append(f"{index.label(x)} also in " + "; ".join(said))
            for k, with_ in sorted(prefix.items(), reverse=True):
                parts.append(f"{index.label(x)} shares its {_rounds(k)} with " + " and ".join(dict.fromkeys(with_)))
        notes.append("; ".join(parts))
    return notes


Arm = tuple[str, str]  # (notebook, name as in its metrics file)


def _components(items: list[Arm], linked: Any) -> list[list[Arm]]:
    """The connected components of ``items`` (in order) under the pairwise relation
    ``linked(x, y) -> bool``."""
    parent = {a: a for a in items}

    def root(a: Arm) -> Arm:
        while parent[a] != a:
            a = parent[a]
        return a

    for i, x in enumerate(items):
        for y in items[i + 1:]:
            if linked(x, y):
                parent[root(y)] = root(x)
    comps: dict[Arm, list[Arm]] = {}
    for a in items:
        comps.setdefault(root(a), []).append(a)
    return list(comps.values())


def run_groups(index: _RunIndex) -> list[str]:
    """Sentences on the runs that appear under several names in the metrics files, whether or
    not a row here compares them: the same run (with the training it loaded,
    ``train_reused_from``), and runs that share their first rounds (the most rounds first; a
    group sharing fewer rounds only when it holds other runs)."""
    arms = index.arms()
    groups = _components(arms, lambda x, y: index.relation(x, y) == -1)
    out = []
    for members in groups:
        if len(members) > 1:
            loaded = [f"{index.label(a)} loaded {w}" for a in members for w in index.loaded_from(a)]
            out.append(" = ".join(index.label(a) for a in members) + " (one training"
                       + (": " + "; ".join(loaded) if loaded else "") + ")")
    reps = [g[0] for g in groups]
    depth = max((len(run) for a in arms for run in index.runs(*a)), default=0)
    said: set[frozenset[Arm]] = set()
    for k in range(depth, 0, -1):
        for comp in _components(reps, lambda x, y, k=k: index.relation(x, y) >= k):
            if len(comp) > 1 and frozenset(comp) not in said:
                said.add(frozenset(comp))
                out.append(", ".join(index.label(r) for r in comp) + f" share their {_rounds(k)}")
    return out


# ---- choices that saw the test split

TEST_RESULT = re.compile(r"\btest (greedy|accuracy|pass@)", re.IGNORECASE)
BASE_TO_PRESET = {"iterations": "iterations", "prompts_per_iter": "prompts_per_iter", "k": "k_train",
                  "temperatures": "loop_temperatures", "beta": "beta", "epochs": "epochs",
                  "lora_r": "lora_r", "gold_in_list": "gold_in_list"}  # LoopConfig.from_params


def _comment_paragraphs(text: str) -> list[str]:
    """The ``#`` comments of a YAML file, joined into paragraphs (a blank comment line, or a
    line without a comment, ends one); a comment after a value keeps its key: ``key: value:
    comment``."""
    paras: list[str] = []
    cur: list[str] = []
    for line in text.splitlines():
        code, _, comment = line.partition("#")
        comment = comment.strip()
        if code.strip() and comment:
            paras += [" ".join(cur)] if cur else []
            cur = []
            paras.append(f"`{code.strip()}`: {comment}")
        elif comment:
            cur.append(comment)
        else:
            paras += [" ".join(cur)] if cur else []
            cur = []
    return [p for p in paras + ([" ".join(cur)] if cur else []) if p]


def cited_test_results(text: str) -> list[str]:
    """The clauses of a YAML file's comments that cite a test-split result (``test greedy``,
    ``test accuracy``, ``test pass@``): the parenthesis holding it with the words before it up to
    the sentence's start, else its sentence. A sentence that says the test split is never read
    cites none."""
    out = []
    for para in _comment_paragraphs(text):
        for m in TEST_RESULT.finditer(para):
            open_at, close_at = para.rfind("(", 0, m.start()), para.find(")", m.end())
            if open_at >= 0 and close_at >= 0 and ")" not in para[open_at:m.start()]:
                start = max(para.rfind(". ", 0, open_at) + 2, 0) if ". " in para[:open_at] else 0
                clause = para[start:close_at + 1]
            else:
                start = para.rfind(". ", 0, m.start())
                end = para.find(". ", m.end())
                clause = para[start + 2 if start >= 0 else 0:end if end >= 0 else len(para)]
            if "never" not in clause and clause not in out:
                out.append(clause.strip())
    return out


def _fmt_value(v: Any) -> str:
    return json.dumps(v) if isinstance(v, (bool, list)) else str(v)


def choices_that_saw_test(folder: str | Path, root: Path | None = None) -> tuple[list[str], str]:
    """The items of "Choices that saw the test split" and a sentence on the choices made on
    validation (not listed), from the metrics files in ``folder``; the validation study's file
    and the preset's YAML (their comments' test-result citations,
    :func:`cited_test_results`) are read under ``root`` (default: the repository)."""
    folder, root = Path(folder), root or repo_root()
    items: list[str] = []
    r02 = _load(folder, "02_recall_at_n")
    if r02 and r02["metrics"].get("best_temperature_by_n") and r02["metrics"].get("recall"):
        m = r02["metrics"]
        t_top, nmax, low, high = _recall_choice(m)
        best = ", ".join(f"N={n}: T={t}" for n, t in sorted(m["best_temperature_by_n"].items(), key=lambda x: int(x[0])))
        items.append(
            f"02's best temperature at each N is picked by pass@N on its {r02['params']['n_test']} test "
            f"problems ({best}). *Recall@N rises steeply with N* is read at T={t_top}, the temperature "
            f"with the highest test pass@{nmax}, and *Temperature crossover* tests T={low} against "
            f"T={high}, picked the same way: both rows lean optimistic.")
    r05 = _load(folder, "05_hard_negatives")
    sweep = (r05 or {}).get("metrics", {}).get("temperature_sweep") or {}
    if len(sweep) > 2:  # 05 names the best of its lower temperatures after seeing them
        final = {t: rows[-1]["test_greedy"] for t, rows in sweep.items() if rows}
        t_top = max(final, key=float)
        lower = {t: v for t, v in final.items() if t != t_top}
        pick = max(lower, key=lambda t: lower[t])
        shown = ", ".join(f"T={t}: {v:.3f}" for t, v in sorted(lower.items(), key=lambda x: float(x[0])))
        items.append(
            f"05 names T={pick} the best of its {len(lower)} lower negative temperatures by test greedy "
            f"on {_n_eval(r05, sweep=True)} problems ({shown}), after seeing them (05's text says so); "
            "no row here rests on it.")
    tv = _load(folder, "tuning_validation")
    preset = next((r["params"] for r in (_load(folder, n) for n in (
        "07_larpo_loop", "04_ranking_losses", "03_training_stage")) if r), None)
    if tv:
        tm = tv["metrics"]
        study = str(tm.get("study") or "")
        path = Path(study) if Path(study).is_absolute() else root / study
        cited = cited_test_results(path.read_text()) if study and path.is_file() else []
        base = tm.get("base") or {}
        if cited and base:
            fixed = ", ".join(f"{k} {_fmt_value(v)}" for k, v in base.items())
            kept = [f"{BASE_TO_PRESET[k]} {_fmt_value(v)}" for k, v in base.items()
                    if preset and k in BASE_TO_PRESET and preset.get(BASE_TO_PRESET[k]) == v]
            items.append(
                f"The validation study's fixed settings ({fixed}) were not chosen on validation: "
                f"`{study}` takes its base and grid from a result on the test split: "
                f"\"{'; '.join(cited)}\""
                + (f". The preset {preset.get('preset', '?')} keeps {', '.join(kept)}." if kept else "."))
    if preset:
        yaml_path = root / "params" / f"{preset.get('preset', '')}.yaml"
        if yaml_path.is_file():
            for clause in cited_test_results(yaml_path.read_text()):
                items.append(f"`params/{yaml_path.name}`: {clause}")
    # not listed: what the validation study chose
    if tv:
        tm = tv["metrics"]
        chosen = {k: v for k, v in (tm.get("chosen") or {}).items() if isinstance(v, dict) and "lr" in v}
        lrs = ", ".join(f"{k} {v['lr']:g}" for k, v in chosen.items())
        r07 = _load(folder, "07_larpo_loop")
        best = (r07 or {}).get("metrics", {}).get("best_larpo_on_validation")
        r03 = _load(folder, "03_training_stage")
        dpo_lr = (chosen.get("pairwise") or {}).get("lr")
        note = (f"Not listed, chosen on validation: each objective's lr ({lrs}) by the validation "
                f"study on {tm.get('n_val', '?')} {tm.get('split', 'validation')} problems "
                "(`reports/tuning_validation.json`)")
        settings = ((_load(folder, "04_ranking_losses") or {}).get("metrics") or {}).get("settings") or {}
        configs = (r07 or {}).get("metrics", {}).get("configs") or {}
        trains = [nb for nb, ok in (
            ("04", settings and all(v.get("lr") == (chosen.get(k) or {}).get("lr") for k, v in settings.items())),
            ("07", any(k in chosen for k in configs) and all(
                v.get("lr") == chosen[k]["lr"] for k, v in configs.items() if k in chosen)))
            if ok]
        if trains:
            note += f", which {' and '.join(trains)} train{'s' if len(trains) == 1 else ''} at"
        if best:
            note += f"; 07's best LARPO objective ({best}), by validation greedy"
        if r03 and dpo_lr is not None and "pairwise_after_sft" not in chosen and r03["params"].get("lr") == dpo_lr:
            note += (f"; 03's DPO after SFT trains at pairwise's lr ({dpo_lr:g}), chosen on validation "
                     "from the initial policy, not from the SFT policy")
        return items, note + "."
    return items, "Not listed: no validation study report (`tuning_validation.json`) here."


def _reports_mde_ratio(folder: Path) -> float | None:
    """The ratio ``mde / se`` every comparison row of the metrics files shares (2 from
    :func:`larpo_lite.metrics.paired_stats` today), or None when they differ or there are none."""
    ratios = []
    for path in sorted(folder.glob("0*.json")):
        rows = json.loads(path.read_text()).get("metrics", {}).get("comparisons") or []
        ratios += [float(r["mde"]) / float(r["se"]) for r in rows
                   if isinstance(r, dict) and r.get("mde") is not None and r.get("se")]
    if not ratios or max(ratios) - min(ratios) > 1e-6 * max(ratios):
        return None
    return ratios[0]


def rec_at(m: dict[str, Any], t: str, n: str) -> float:
    return float(m["recall"][t][n])


def _fmt_ci(ci: list[float]) -> str:
    return f"[{ci[0]:.3f}, {ci[1]:.3f}]"


TABLE_HEADER = ("| finding | paper | ours | diff | SE | MDE (80% power, 2.8 SE) | verdict (2 SE) "
                "| verdict after Holm (adjusted p) | shares runs with |")


def render(rows: list[dict[str, str]], folder: Path, root: Path | None = None) -> str:
    """The markdown text of the report (``root``: where the validation study's file and the
    presets are read, default the repository)."""
    sources = sorted(p.name for p in folder.glob("0*.json"))
    counts = {v: sum(r["verdict"] == v for r in rows) for v in VERDICTS}
    setups = []
    for name in sources:
        rec = json.loads((folder / name).read_text())
        p = rec["params"]
        task = (p.get("alignment_task") or p.get("task", "?")) if name[:2] in ("04", "06", "07") else p.get("task", "?")
        setups.append(f"{p.get('model_name', '?')} on {task} (preset {p.get('preset', '?')})")
    setups = sorted(set(setups), key=setups.index)
    no_bar = counts[DIRECTION] + counts[OPPOSITE]
    family = [r for r in rows if r.get("p_holm", "-") != "-"]
    kept = {v: sum(r["holm"] == v for r in family) for v in (REPRODUCED, CONTRADICTED)}
    ratio = _reports_mde_ratio(folder)
    lines = [
        "# Reproduction report",
        "",
        "Generated by `larpo_lite.reproduction` from the metrics files "
        f"({', '.join(sources) or 'none yet'}); do not edit by hand. The paper's numbers come from "
        "REFERENCE.md section 4 (7B models, GSM8K / AlpacaEval 2); ours from "
        f"{'; '.join(setups) or 'no run yet'}. Only directions are compared, never magnitudes.",
        "",
        "*diff* is ours, signed so that positive is the paper's direction; *SE* its standard "
        "error, paired (the same test problems: only those that changed carry noise) where the "
        "metrics file has per-problem scores, else binomial on two accuracies treated as "
        "independent (labelled unpaired).",
        "",
        f"*Verdict (2 SE)*, the 2-SE threshold: beyond {VERDICT_SE:g} SE in the paper's direction: "
        f"*reproduced*; beyond {VERDICT_SE:g} SE the other way: *contradicted*; within 2 paired SE "
        "either way: inconclusive (unpaired rows use their binomial SE the same way). The "
        "temperature crossover needs both ends beyond 2 SE (the higher T ahead at the largest N, "
        "behind at N=1); its row shows the largest N. Mean rewards without per-problem scores "
        "have no error bar: *same direction* or *opposite direction (no error bar)*.",
        "",
        f"*MDE (80% power)*: the smallest true difference this comparison detects 80% of the time "
        f"at two-sided alpha 0.05, {MDE_SE:g} x SE (1.96 + 0.84); a true difference of 2 SE is "
        "detected only half the time."
        + (" The metrics files' own `mde` fields still hold 2 SE (the rule of the run that wrote "
           "them) until the next default run; this column is computed from each row's SE."
           if ratio is not None and abs(ratio - 2.0) < 1e-6 else ""),
        "",
        f"*Verdict after Holm*: each row's two-sided p-value (normal approximation from diff and "
        f"SE; the crossover's is the larger of its two halves', as both must hold) is adjusted by "
        f"Holm-Bonferroni over the {len(family)} rows with a standard error (family-wise alpha "
        f"{FAMILY_ALPHA:g}). A row keeps its 2-SE verdict when its adjusted p is at most "
        f"{FAMILY_ALPHA:g}, else it reads *{AFTER_HOLM}*.",
        "",
        "*Shares runs with*: the other rows whose comparisons use one of this row's runs (the "
        "same arm of a notebook, the same run under another name: the same `train_key` or "
        "training statistics, or `train_reused_from`), or runs that share their first rounds; "
        "such rows are not independent evidence. The initial policy is left out.",
        "",
        f"Summary: {counts[REPRODUCED]} reproduced, {counts[CONTRADICTED]} contradicted, "
        f"{counts[INCONCLUSIVE]} inconclusive, "
        + (f"{no_bar} without error bar, " if no_bar else "")
        + f"{counts[NOT_RUN]} not run. After Holm, {kept[REPRODUCED] + kept[CONTRADICTED]} of the "
        f"{counts[REPRODUCED] + counts[CONTRADICTED]} conclusive rows keep their verdict: "
        f"{kept[REPRODUCED]} of the {counts[REPRODUCED]} reproduced, {kept[CONTRADICTED]} of the "
        f"{counts[CONTRADICTED]} contradicted.",
        "",
        TABLE_HEADER,
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        holm_cell = "-" if r.get("p_holm", "-") == "-" else f"{r['holm']} ({r['p_holm']})"
        lines.append(f"| {r['finding']} | {r['paper']} | {r['ours']} | {r['diff']} | {r['se']} "
                     f"| {r['mde']} | {r['verdict']} | {holm_cell} | {r.get('shared') or '-'} |")
    groups = run_groups(_RunIndex(folder))
    if groups:
        lines += ["", "## Runs under several names", "",
                  "From the metrics files (rows of this table or not): one trained run read by "
                  "several notebooks or settings, and runs that start from the same rounds.", ""]
        lines += [f"- {g}" for g in groups]
    items, not_listed = choices_that_saw_test(folder, root)
    lines += ["", "## Choices that saw the test split", ""]
    lines += [f"- {x}" for x in items] or ["- none found in the metrics files."]
    lines += ["", not_listed]
    return "\n".join(lines) + "\n"


def write_report(folder: str | Path | None = None) -> Path:
    """Write ``<folder>/REPRODUCTION.md`` (default: the repository's ``reports/``)."""
    folder = Path(folder) if folder else repo_root() / "reports"
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "REPRODUCTION.md"
    path.write_text(render(findings(folder), folder))
    return path


if __name__ == "__main__":
    print(write_report(sys.argv[1] if len(sys.argv) > 1 else None))


# IR idea, its alignment counterpart, the notebook that measures it, and what to read there
ANALOGY = (
    ("query", "prompt", "01", None),
    ("retriever", "policy, sampling candidate answers", "01", "greedy_accuracy"),
    ("Recall@N", "pass@N (any of N samples right)", "02", "recall"),
    ("reranker", "verifier or reward model, ordering the samples", "01", "comparisons"),
    ("training on relevance labels", "SFT on worked solutions", "03", "comparisons:SFT"),
    ("distilling a reranker into the retriever", "DPO / LARPO: ranking losses on reranked lists",
     "04", "comparisons"),
    ("hard negatives", "wrong answers the policy itself finds likely", "05", "comparisons"),
    ("candidate-list construction", "list size, memory of earlier lists, temperature mix", "06",
     "comparisons"),
    ("iterative hard-negative mining (ANCE)", "Algorithm 1: sample, rank, train, repeat", "07",
     "comparisons"),
    ("the retrained retriever's recall", "pass@N after the last round", "07", "recall_after"),
)


def _measured(record: dict[str, Any] | None, what: str | None) -> str:
    """One cell of the analogy table: what ``record``'s metrics say for ``what``."""
    if record is None:
        return "not run"
    m, p = record.get("metrics", {}), record.get("params", {})
    if what is None:
        return f"{p.get('n_eval', '?')} test problems"
    if what == "greedy_accuracy" and isinstance(m.get(what), (int, float)):
        return f"greedy accuracy {m[what]:.3f}"
    if what == "recall" and m.get("recall"):
        t = str(p.get("temperature", next(iter(m["recall"]))))
        curve = m["recall"].get(t) or next(iter(m["recall"].values()))
        lo, hi = min(curve, key=int), max(curve, key=int)
        return f"pass@{lo} {curve[lo]:.3f} -> pass@{hi} {curve[hi]:.3f} (T={t})"
    if what == "recall_after" and m.get("recall_after"):
        parts = []
        for name, curve in m["recall_after"].items():
            hi = max(curve, key=int)
            parts.append(f"{name} pass@{hi} {curve[hi]:.3f}")
        return "; ".join(parts)
    if what.startswith("comparisons") and m.get("comparisons"):
        a = what.partition(":")[2]  # "comparisons:SFT": the first row whose a is SFT
        rows = m["comparisons"]
        c = next((r for r in rows if r.get("a") == a), None) if a else None
        c = c or next((r for r in rows if r.get("b") not in ("init", "initial")), rows[0])
        return f"{c['a']} minus {c['b']}: {float(c['diff']):+.3f} (SE {float(c['se']):.3f})"
    return "not measured in this run"


def analogy_table(folder: str | Path) -> str:
    """The IR analogy as a markdown table, each row with the notebook and the number that
    measured it in the reports of ``folder`` (notebook 07 closes with it)."""
    names = {p.stem[:2]: p.stem for p in Path(folder).glob("0*_*.json")}
    lines = ["| information retrieval | LLM alignment | notebook | measured in this run |",
             "|---|---|---|---|"]
    for ir, llm, nb, what in ANALOGY:
        record = _load(Path(folder), names[nb]) if nb in names else None
        lines.append(f"| {ir} | {llm} | {nb} | {_measured(record, what)} |")
    return "\n".join(lines)
