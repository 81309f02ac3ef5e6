"""``reports/REPRODUCTION.md``: which of the paper's findings hold on our small model.

Built from the metrics files the notebooks write (``<reports_dir>/0X_*.json``), never by hand:
one row per finding of REFERENCE.md section 4, with the paper's number, ours, the difference
(ours, signed so that positive is the paper's direction), its standard error, the minimum
detectable effect (2 SE) and a verdict computed from them. Called at the end of
notebooks/07_larpo_loop; also ``python -m larpo_lite.reproduction [reports_dir]``.

Verdicts (:func:`verdict`): *reproduced* when the difference is in the paper's direction and
beyond 2 standard errors; *contradicted* when beyond 2 standard errors the other way;
*inconclusive* otherwise; *not run* when the notebook has not written its metrics yet. Mean
rewards (a reward-scored alignment task) without per-problem rewards have no error bar: *same
direction (no error bar)* or *opposite direction (no error bar)*.

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
VERDICTS = (REPRODUCED, CONTRADICTED, INCONCLUSIVE, DIRECTION, OPPOSITE, NOT_RUN)

PAIRED, FROM_FILE, UNPAIRED, NO_ERROR = ("paired", "paired, from the metrics file",
                                          "binomial, unpaired", "no error bar")


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
    if diff > 2 * se:
        return REPRODUCED
    if diff < -2 * se:
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


def findings(folder: str | Path) -> list[dict[str, str]]:
    """One dict per finding: finding, paper, ours, diff, se, mde, verdict (all strings)."""
    folder = Path(folder)
    rows: list[dict[str, str]] = []

    def add(finding: str, paper: str, ours: str, c: Comparison | None = None,
            v: str | None = None) -> None:
        """A row; the verdict is ``verdict(c.diff, c.se)`` unless ``v`` is given."""
        row = {"finding": finding, "paper": paper, "ours": ours, "diff": "-", "se": "-",
               "mde": "-", "verdict": NOT_RUN if c is None else v or verdict(c.diff, c.se)}
        if c is not None:
            row["diff"] = f"{c.diff:+.3f}"
            if c.se is not None:
                row["se"] = f"{c.se:.3f} ({c.kind})"
                row["mde"] = f"{2 * c.se:.3f}"
        rows.append(row)

    # ---- 02: Recall@N shape and temperature crossover
    r02 = _load(folder, "02_recall_at_n")
    paper_shape = "pass@N rises steeply with N (GSM8K, Mistral-7B-it: R@20 .83 vs greedy .47)"
    paper_cross = "lower T best at small N, higher T best at N > 10"
    if r02:
        m, n_test = r02["metrics"], r02["params"]["n_test"]
        per = m.get("per_problem_recall") or {}
        t_top = max(m["recall"], key=lambda t: m["recall"][t][max(m["recall"][t], key=int)])
        rec = m["recall"][t_top]
        n1, nmax = "1", max(rec, key=int)

        def recall_cmp(ta: str, na: str, tb: str, nb: str) -> Comparison:
            """pass@na at T=ta minus pass@nb at T=tb: paired over problems when 02 wrote them."""
            if ta in per and tb in per and na in per[ta] and nb in per[tb]:
                s = paired_stats(per[tb][nb], per[ta][na])
                return Comparison(s.diff, s.se, PAIRED)
            pa, pb = rec_at(m, ta, na), rec_at(m, tb, nb)
            return Comparison(pa - pb, _diff_se(pa, pb, n_test), UNPAIRED)

        add("Recall@N rises steeply with N", paper_shape,
            f"pass@1 {rec[n1]:.3f} -> pass@{nmax} {rec[nmax]:.3f} at T={t_top} ({n_test} test problems)",
            recall_cmp(t_top, nmax, t_top, n1))
        best = m["best_temperature_by_n"]
        ts, tl = str(best[min(best, key=int)]), str(best[max(best, key=int)])
        if ts == tl:  # one T best at both ends: test it against its strongest rival at N=nmax
            others = [t for t in m["recall"] if t != ts]
            if others:
                tl = max(others, key=lambda t: rec_at(m, t, nmax))
        low, high = sorted({ts, tl}, key=float) if ts != tl else (ts, tl)
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
        add("Temperature crossover", paper_cross, ours, head, v)
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
                compare(r03, "SFT", "init", sft, init, n))
        if dpo is not None and sft is not None:
            add("DPO after SFT raises it further", "SFT .768 -> SFT+DPO .799",
                f"SFT {sft:.3f} -> SFT+DPO {dpo:.3f}", compare(r03, "SFT -> DPO", "SFT", dpo, sft, n))
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
                add(f"Listwise beats pairwise: {obj} (one round, 04)", paper_list,
                    f"{obj} {avg[obj]:.3f} vs pairwise {avg['pairwise']:.3f} (mean of {seeds} seeds)",
                    compare(r04, obj, "pairwise", avg[obj], avg["pairwise"], n * seeds))
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
            compare(r05, hardest, easiest, acc[hardest], acc[easiest], n))
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
            c = _compare_06(r06, key, gain, n)
            add(finding, paper, f"{what}: {gain:+.3f} {unit}", c)
        else:
            add(finding, paper, "-")

    # ---- 07: LARPO against iterative DPO
    r07 = _load(folder, "07_larpo_loop")
    paper_main = "LARPO beats iterative DPO (Mistral-7B-it LC 32.7-43.0 vs 20.4, Table 2)"
    if r07:
        acc = r07["metrics"]["test_greedy"]
        n = _n_eval(r07)
        larpo = {k: v for k, v in acc.items() if k not in ("iterative DPO", "offline DPO", "init")}
        if larpo and "iterative DPO" in acc:
            for obj in larpo:  # every objective, none picked on test
                add(f"LARPO beats iterative DPO: {obj}", paper_main,
                    f"LARPO ({obj}) {larpo[obj]:.3f} vs iterative DPO {acc['iterative DPO']:.3f}",
                    compare(r07, obj, "iterative DPO", larpo[obj], acc["iterative DPO"], n))
    else:
        add("LARPO beats iterative DPO", paper_main, "-")
    return rows


def _compare_06(record: dict[str, Any], key: str, gain: float, n: int) -> Comparison:
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
        return compare(record, f"{section}/{a}", f"{section}/{b}", acc_a, acc_b, n)
    return compare(record, f"{section}/?", f"{section}/?", 0.5 + gain / 2, 0.5 - gain / 2, n)


def rec_at(m: dict[str, Any], t: str, n: str) -> float:
    return float(m["recall"][t][n])


def _fmt_ci(ci: list[float]) -> str:
    return f"[{ci[0]:.3f}, {ci[1]:.3f}]"


def render(rows: list[dict[str, str]], folder: Path) -> str:
    """The markdown text of the report."""
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
    lines = [
        "# Reproduction report",
        "",
        "Generated by `larpo_lite.reproduction` from the metrics files "
        f"({', '.join(sources) or 'none yet'}); do not edit by hand. The paper's numbers come from "
        "REFERENCE.md section 4 (7B models, GSM8K / AlpacaEval 2); ours from "
        f"{'; '.join(setups) or 'no run yet'}. Only directions are compared, never magnitudes.",
        "",
        "Verdict rule: *diff* is ours, signed so that positive is the paper's direction; *SE* its "
        "standard error, paired (the same test problems: only those that changed carry noise) "
        "where the metrics file has per-problem scores, else binomial on two accuracies treated as "
        "independent (labelled unpaired); *MDE* the minimum detectable effect, 2 SE. Beyond 2 SE "
        "in the paper's direction: *reproduced*; beyond 2 SE the other way: *contradicted*; "
        "otherwise *inconclusive*. The temperature crossover needs both ends beyond 2 SE (the "
        "higher T ahead at the largest N, behind at N=1); its row shows the largest N. Mean "
        "rewards without per-problem scores have no error bar: *same direction* or *opposite "
        "direction (no error bar)*.",
        "",
        f"Summary: {counts[REPRODUCED]} reproduced, {counts[CONTRADICTED]} contradicted, "
        f"{counts[INCONCLUSIVE]} inconclusive, "
        + (f"{no_bar} without error bar, " if no_bar else "")
        + f"{counts[NOT_RUN]} not run.",
        "",
        "| finding | paper | ours | diff | SE | MDE | verdict |",
        "|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        lines.append(f"| {r['finding']} | {r['paper']} | {r['ours']} | {r['diff']} | {r['se']} "
                     f"| {r['mde']} | {r['verdict']} |")
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
