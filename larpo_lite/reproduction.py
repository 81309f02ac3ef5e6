"""``reports/REPRODUCTION.md``: which of the paper's findings hold on our small model.

Built from the metrics files the notebooks write (``<reports_dir>/0X_*.json``), never by hand:
one row per finding of REFERENCE.md section 4, with the paper's number, ours and a verdict
computed from the numbers. Called at the end of notebooks/07_larpo_loop; also
``python -m larpo_lite.reproduction [reports_dir]``.

Verdicts: a difference in the paper's direction larger than twice its standard error is
"reproduced"; in the paper's direction but within that noise, "partly (within noise)"; the
other way, "not reproduced"; a notebook that has not run yet, "not run". Findings measured
in mean reward (the alignment notebooks on a reward-scored task such as UltraFeedback) have no
binomial error: they get "same direction (no error bar)" or "not reproduced".
"""

from __future__ import annotations

import json
import math
import sys
from pathlib import Path
from typing import Any

from .paths import repo_root

REPRODUCED, PARTLY, NOT, NOT_RUN = "reproduced", "partly (within noise)", "not reproduced", "not run"
DIRECTION = "same direction (no error bar)"
VERDICTS = (REPRODUCED, PARTLY, DIRECTION, NOT, NOT_RUN)


def reward_scored(record: dict[str, Any]) -> bool:
    """Whether an alignment notebook's metrics are mean rewards (its preset set a reward-scored
    ``alignment_task``) rather than accuracies."""
    from .tasks import has_verifier

    task = record["params"].get("alignment_task") or ""
    return bool(task) and not has_verifier(task)


def _judge(record: dict[str, Any], diff: float, se: float) -> str:
    """:func:`verdict`, or for mean rewards the direction alone."""
    if reward_scored(record):
        return DIRECTION if diff > 0 else NOT
    return verdict(diff, se)


def _load(folder: Path, name: str) -> dict[str, Any] | None:
    path = folder / f"{name}.json"
    if not path.is_file():
        return None
    return json.loads(path.read_text())


def binomial_se(p: float, n: int) -> float:
    """Standard error of an accuracy ``p`` measured on ``n`` problems."""
    return math.sqrt(max(p * (1 - p), 1e-12) / max(n, 1))


def verdict(diff: float, se: float) -> str:
    """Reproduced if ``diff`` (ours, in the paper's direction) exceeds 2 standard errors."""
    if diff > 2 * se:
        return REPRODUCED
    if diff > 0:
        return PARTLY
    return NOT


def _diff_se(a: float, b: float, n: int) -> float:
    """Standard error of the difference of two accuracies on the same ``n`` problems
    (treated as independent: an upper bound for paired runs)."""
    return math.sqrt(binomial_se(a, n) ** 2 + binomial_se(b, n) ** 2)


def findings(folder: str | Path) -> list[dict[str, str]]:
    """One dict per finding: finding, paper, ours, verdict."""
    folder = Path(folder)
    rows: list[dict[str, str]] = []

    def add(finding: str, paper: str, ours: str, v: str) -> None:
        rows.append({"finding": finding, "paper": paper, "ours": ours, "verdict": v})

    # ---- 02: Recall@N shape and temperature crossover
    r02 = _load(folder, "02_recall_at_n")
    paper_shape = "pass@N rises steeply with N (GSM8K, Mistral-7B-it: R@20 .83 vs greedy .47)"
    paper_cross = "lower T best at small N, higher T best at N > 10"
    if r02:
        m, n_test = r02["metrics"], r02["params"]["n_test"]
        rec = m["recall"][max(m["recall"], key=lambda t: m["recall"][t][max(m["recall"][t], key=int)])]
        n1, nmax = "1", max(rec, key=int)
        diff = rec[nmax] - rec[n1]
        add("Recall@N rises steeply with N", paper_shape,
            f"pass@1 {rec[n1]:.3f} -> pass@{nmax} {rec[nmax]:.3f} ({n_test} test problems)",
            verdict(diff, _diff_se(rec[nmax], rec[n1], n_test)))
        best = m["best_temperature_by_n"]
        small, large = best[min(best, key=int)], best[max(best, key=int)]
        ci = m["recall_ci90"]
        tl, ts = str(large), str(small)
        if m.get("crossover"):
            lo_large = ci[tl][nmax][0]
            hi_small = ci[ts][nmax][1]
            v = REPRODUCED if lo_large > hi_small else PARTLY
        else:
            v = NOT
        add("Temperature crossover", paper_cross,
            f"best T at N=1: {small}; at N={nmax}: {large}; pass@{nmax} {rec_at(m, tl, nmax):.3f} (T={tl}) "
            f"vs {rec_at(m, ts, nmax):.3f} (T={ts}), 90% intervals "
            f"{_fmt_ci(ci[tl][nmax])} vs {_fmt_ci(ci[ts][nmax])}", v)
    else:
        add("Recall@N rises steeply with N", paper_shape, "-", NOT_RUN)
        add("Temperature crossover", paper_cross, "-", NOT_RUN)

    # ---- 03: SFT, then DPO
    r03 = _load(folder, "03_training_stage")
    paper_stage = "GSM8K greedy .466 -> SFT .768 -> SFT+DPO .799 (Table 6)"
    if r03:
        t = {row["stage"]: row for row in r03["metrics"]["table"]}
        n = r03["params"]["n_test"]
        init, sft = t["init"]["greedy"], t.get("SFT", {}).get("greedy")
        dpo = t.get("SFT -> DPO", {}).get("greedy")
        if sft is not None:
            add("SFT raises greedy accuracy", "init .466 -> SFT .768", f"init {init:.3f} -> SFT {sft:.3f}",
                verdict(sft - init, _diff_se(sft, init, n)))
        if dpo is not None and sft is not None:
            add("DPO after SFT raises it further", "SFT .768 -> SFT+DPO .799",
                f"SFT {sft:.3f} -> SFT+DPO {dpo:.3f}", verdict(dpo - sft, _diff_se(dpo, sft, n)))
    else:
        add("SFT, then DPO, raise greedy accuracy", paper_stage, "-", NOT_RUN)

    # ---- 04 / 07: listwise against pairwise
    r04 = _load(folder, "04_ranking_losses")
    paper_list = "listwise beats pairwise (Gemma2-2b LC: pairwise 55.1, contrastive 60.4, ListMLE 63.1, LambdaRank 58.7)"
    if r04:
        res = [r for r in r04["metrics"]["results"] if r["objective"] != "init"]
        n = r04["params"]["n_test"]
        means: dict[str, list[float]] = {}
        for r in res:
            means.setdefault(r["objective"], []).append(r["greedy"])
        if "pairwise" in means and len(means) > 1:
            avg = {k: sum(v) / len(v) for k, v in means.items()}
            best = max((k for k in avg if k != "pairwise"), key=lambda k: avg[k])
            seeds = len(means[best])
            se = _diff_se(avg[best], avg["pairwise"], n * seeds)
            add("Listwise beats pairwise (one round, 04)", paper_list,
                f"best listwise {best} {avg[best]:.3f} vs pairwise {avg['pairwise']:.3f} "
                f"(mean of {seeds} seeds; " + ", ".join(f"{k} {v:.3f}" for k, v in avg.items()) + ")",
                _judge(r04, avg[best] - avg["pairwise"], se))
    else:
        add("Listwise beats pairwise (one round, 04)", paper_list, "-", NOT_RUN)

    # ---- 05: hard negatives
    r05 = _load(folder, "05_hard_negatives")
    paper_tiers = "accuracy orders tier (4) > (3) > (2) > (1) (Fig. 4a)"
    if r05:
        acc = r05["metrics"]["test_greedy"]
        n = r05["params"]["n_test"]
        order = sorted(acc, key=lambda k: -acc[k])
        hardest, easiest = "incorrect_low_t", "unrelated"
        ours = ", ".join(f"{k} {v:.3f}" for k, v in acc.items())
        if r05["metrics"]["order_reproduced"]:
            v = verdict(acc[hardest] - acc[easiest], _diff_se(acc[hardest], acc[easiest], n))
        else:
            v = PARTLY if acc.get(hardest, 0) > acc.get(easiest, 0) else NOT
        chain = order[0]
        for a, b in zip(order, order[1:], strict=False):
            chain += (" > " if acc[a] > acc[b] else " = ") + b
        add("Harder negatives help more", paper_tiers, f"{ours}; order {chain}", v)
    else:
        add("Harder negatives help more", paper_tiers, "-", NOT_RUN)

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
            n = r06["params"]["n_test"]
            unit = "test mean reward" if reward_scored(r06) else "test greedy"
            add(finding, paper, f"{what}: {gain:+.3f} {unit}", _judge(r06, gain, _diff_se(0.5, 0.5, n)))
        else:
            add(finding, paper, "-", NOT_RUN)

    # ---- 07: LARPO against iterative DPO
    r07 = _load(folder, "07_larpo_loop")
    paper_main = "LARPO beats iterative DPO (Mistral-7B-it LC 32.7-43.0 vs 20.4, Table 2)"
    if r07:
        acc = r07["metrics"]["test_greedy"]
        n = r07["params"]["n_test"]
        larpo = {k: v for k, v in acc.items() if k not in ("iterative DPO", "offline DPO", "init")}
        if larpo and "iterative DPO" in acc:
            best = max(larpo, key=lambda k: larpo[k])
            add("LARPO beats iterative DPO", paper_main,
                f"best LARPO ({best}) {larpo[best]:.3f} vs iterative DPO {acc['iterative DPO']:.3f}; "
                + ", ".join(f"{k} {v:.3f}" for k, v in acc.items()),
                _judge(r07, larpo[best] - acc["iterative DPO"], _diff_se(larpo[best], acc["iterative DPO"], n)))
    else:
        add("LARPO beats iterative DPO", paper_main, "-", NOT_RUN)
    return rows


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
    lines = [
        "# Reproduction report",
        "",
        "Generated by `larpo_lite.reproduction` from the metrics files "
        f"({', '.join(sources) or 'none yet'}); do not edit by hand. The paper's numbers come from "
        "REFERENCE.md section 4 (7B models, GSM8K / AlpacaEval 2); ours from "
        f"{'; '.join(setups) or 'no run yet'}. Only directions are compared, never magnitudes.",
        "",
        "Verdict rule: a difference in the paper's direction larger than twice its standard error "
        "(binomial, on the test problems) is *reproduced*; in the paper's direction but within that "
        "noise, *partly (within noise)*; the other way, *not reproduced*. Mean rewards (a reward-scored "
        "alignment task) have no binomial error: *same direction (no error bar)* or *not reproduced*.",
        "",
        f"Summary: {counts[REPRODUCED]} reproduced, {counts[PARTLY]} partly, "
        + (f"{counts[DIRECTION]} same direction without error bar, " if counts[DIRECTION] else "")
        + f"{counts[NOT]} not reproduced, {counts[NOT_RUN]} not run.",
        "",
        "| finding | paper | ours | verdict |",
        "|---|---|---|---|",
    ]
    for r in rows:
        lines.append(f"| {r['finding']} | {r['paper']} | {r['ours']} | {r['verdict']} |")
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
