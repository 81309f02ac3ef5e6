"""Candidate lists: how many responses per prompt, how much memory, which temperatures.

Introduced in notebooks/06_candidate_lists (the paper's Fig. 4c and Table 4). Each study
changes one knob of a run of notebook 07 and compares paired on the same test problems:

- **list size**: iterative DPO's round 1 at each ``k`` of ``list_sizes`` (07's iterative DPO
  at ``k_train``, seed 0, is one of them);
- **memory**: the headline LARPO arm over ``memory_iterations`` rounds, training on the current
  round's lists (07's headline run at seed 0, when the rounds agree) or on all rounds' lists;
- **temperatures**: the headline arm's round 1 sampled at its single temperature (07's round 1)
  or at the mix ``mix_temperatures``.

A study whose config is one of 07's runs is that run (:func:`larpo_lite.loop.run_dir` names a
folder by its config), read at no cost here; the others run here, each a single seed, with
``n_val=0`` (no validation pass: the comparisons are on test). :func:`estimate_seconds` prices a
plan from the unit costs of the loop on the CPU the committed results came from, so a notebook
can say what it runs, what it reuses, and what an own sweep would have cost instead.
"""

from __future__ import annotations

import dataclasses
import textwrap
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from . import arms as A
from .lists import MEMORY
from .loop_config import LoopConfig


def _unit_costs() -> tuple[float, float, float]:
    """Unit costs of one loop round on the CPU the committed results came from, one thread per
    run, as the default run's plan measured them in the validation study's rounds
    (``benchmarks/results/default_run_plan.json``, ``benchmarks/default_run_plan.py``):
    sampling k=8 responses for one prompt, training one prompt's list (its share of the lists a
    round keeps, all epochs), and one greedy answer."""
    import json

    from .paths import repo_root

    path = repo_root() / "benchmarks" / "results" / "default_run_plan.json"
    try:
        plan = json.loads(path.read_text())
        u = plan["unit_costs"]
        prompts = float(plan.get("prompts_per_iter") or 64)
        return (8 * u["sample_per_seq"], u["train_per_list"] * plan["lists_per_round"] / prompts,
                u["greedy_per_problem"])
    except (OSError, ValueError, KeyError) as e:
        raise RuntimeError(f"{path} is missing or incomplete ({e!r}): run "
                           "benchmarks/default_run_plan.py after a validation study") from None


SAMPLE_S, TRAIN_S, EVAL_S = _unit_costs()  # seconds per prompt at k=8; per prompt's list; per problem
SECTIONS = ("list_size", "memory", "temperatures")
# the memorization modes 06 runs, the baseline first: "previous" (the current and the round
# before) lies between them and is priced, not run (cost_text)
MEMORY_COMPARED = ("current", "all")
Rows = list[dict[str, Any]]


@dataclass(frozen=True)
class Study:
    """One run of a study.

    Attributes:
        section: "list_size", "memory" or "temperatures".
        setting: the knob's value as a name ("4", "all", "mix [1.0, 0.5]").
        config: the run's loop set-up.
        stop_after: the last round read (1 for the round-1 studies; None: every round).
        shared: the arm and seed of notebook 07 whose run this is ("" when 06 runs it).
        round1_reused: its round 1 trains on the same lists as another run's round 1 (a memory
            mode only changes the later rounds), so that round is loaded: its samples come from
            the cache and its training is reused (``loop`` finds it by its training key).
    """

    section: str
    setting: str
    config: LoopConfig
    stop_after: int | None
    shared: str = ""
    round1_reused: bool = False

    @property
    def name(self) -> str:
        """``section/setting``, the name of its scores in the metrics file."""
        return f"{self.section}/{self.setting}"

    @property
    def rounds(self) -> int:
        return self.config.iterations if self.stop_after is None else min(self.stop_after, self.config.iterations)


def _shared(cfg: LoopConfig, arm_list: Sequence[A.Arm]) -> str:
    """The arm and seed of notebook 07 whose run has config ``cfg`` ("" if none)."""
    want = cfg.to_dict()
    for a in arm_list:
        for c in a.configs():
            if c.to_dict() == want:
                return f"{a.name}, seed {c.seed}"
    return ""


def _reuse_or_own(cfg: LoopConfig, arm_list: Sequence[A.Arm]) -> tuple[LoopConfig, str]:
    """``cfg`` when it is one of 07's runs, else ``cfg`` without its validation pass."""
    shared = _shared(cfg, arm_list)
    return (cfg, shared) if shared else (dataclasses.replace(cfg, n_val=0), "")


def temperature_setting(temps: Sequence[float]) -> str:
    return ("single " if len(temps) == 1 else "mix ") + str([float(t) for t in temps])


def plan(params: Any, arm_list: Sequence[A.Arm], memory_modes: Sequence[str]) -> list[Study]:
    """The runs of notebook 06 on top of 07's arms (``arms.for_params``): see the module doc.
    ``memory_modes`` are the memorization modes compared, the first the baseline."""
    bad = [m for m in memory_modes if m not in MEMORY]
    if bad or len(memory_modes) < 2:
        raise ValueError(f"memory_modes must be two or more of {MEMORY}, got {list(memory_modes)}")
    names = [a.name for a in arm_list]
    heads = [a for a in arm_list if a.headline and a.name != "iterative DPO"]
    if "iterative DPO" not in names or not heads:
        raise ValueError(f"06 builds on 07's iterative DPO and headline LARPO arms; got {names} "
                         "(objectives needs pairwise and a listwise objective)")
    dpo = next(a for a in arm_list if a.name == "iterative DPO").configs()[0]
    head = heads[0].configs()[0]
    out = []
    for k in params.list_sizes:
        cfg, shared = _reuse_or_own(dataclasses.replace(dpo, k=k), arm_list)
        out.append(Study("list_size", str(k), cfg, 1, shared))
    for mode in memory_modes:
        cfg, shared = _reuse_or_own(dataclasses.replace(
            head, memory=mode, iterations=params.memory_iterations), arm_list)
        out.append(Study("memory", mode, cfg, None, shared, round1_reused=mode != memory_modes[0]))
    for temps in (list(head.temperatures), list(params.mix_temperatures)):
        cfg, shared = _reuse_or_own(dataclasses.replace(head, temperatures=temps), arm_list)
        out.append(Study("temperatures", temperature_setting(temps), cfg, 1, shared))
    return out


def own_sweep(params: Any, memory_modes: Sequence[str] = MEMORY) -> list[Study]:
    """The same studies as a sweep of 06's own (its design before it read 07's runs), priced
    beside :func:`plan`: iterative DPO on ``sweep_prompts_per_iter`` prompts per round and
    ``n_eval_sweep`` test problems, every memory mode; the single temperature is its list-size
    run at ``k_train``. Nothing here runs it."""
    base = LoopConfig.from_params(params, alignment=True, objective="pairwise", strategy="best_worst",
                                  memory="current", iterations=1, n_test=params.n_eval_sweep,
                                  prompts_per_iter=params.sweep_prompts_per_iter)
    out = [Study("list_size", str(k), dataclasses.replace(base, k=k), 1) for k in params.list_sizes]
    reused = params.k_train in params.list_sizes  # round 1 as the list-size run's at k_train
    out += [Study("memory", m, dataclasses.replace(base, memory=m, iterations=params.memory_iterations),
                  None, round1_reused=reused or i > 0) for i, m in enumerate(memory_modes)]
    single = "list_size/" + str(params.k_train) if params.k_train in params.list_sizes else ""
    out += [Study("temperatures", temperature_setting(base.temperatures), base, 1, single),
            Study("temperatures", temperature_setting(params.mix_temperatures),
                  dataclasses.replace(base, temperatures=list(params.mix_temperatures)), 1)]
    return out


def estimate_seconds(study: Study) -> float:
    """Thread-seconds of ``study``'s rounds by the unit costs (0 for a run of 07's); a round 1
    that is loaded (``round1_reused``) costs its evaluation only."""
    if study.shared:
        return 0.0
    cfg = study.config
    kept = {"current": lambda s: 1, "previous": lambda s: min(s, 2), "all": lambda s: s}[cfg.memory]
    total = 0.0
    for s in range(1, study.rounds + 1):
        evaluate = EVAL_S * (cfg.n_test + cfg.n_val)
        if s == 1 and study.round1_reused:
            total += evaluate
            continue
        total += (SAMPLE_S * cfg.prompts_per_iter * cfg.k / 8
                  + TRAIN_S * cfg.prompts_per_iter * kept(s) + evaluate)
    return total


def plan_table(studies: Sequence[Study]) -> Any:
    """What each study runs: rounds, prompts, k, test problems, whose run it is, and the
    estimated thread-minutes it adds here."""
    import pandas as pd

    return pd.DataFrame([{"study": s.name, "objective": s.config.objective, "k": s.config.k,
                          "rounds": s.rounds, "prompts/round": s.config.prompts_per_iter,
                          "test problems": s.config.n_test, "run of": s.shared or "06 (its own)",
                          "est. minutes here": round(estimate_seconds(s) / 60, 1)}
                         for s in studies]).set_index("study")


def cost_text(params: Any, arm_list: Sequence[A.Arm], memory_modes: Sequence[str]) -> str:
    """Why 06 reads 07's runs, in numbers: the thread-minutes of its own runs (:func:`plan`)
    against those of a sweep of its own (:func:`own_sweep`), by the same unit costs, and what
    the memory modes it leaves out would add."""
    studies = plan(params, arm_list, memory_modes)
    sweep = own_sweep(params)
    rest = [m for m in MEMORY if m not in memory_modes]
    left_out = [s for s in plan(params, arm_list, [memory_modes[0], *rest]) if s.setting in rest]
    own = [s for s in studies if not s.shared]
    here = sum(map(estimate_seconds, studies)) / 60
    first = sweep[0].config
    alone = (sum(map(estimate_seconds, sweep)) + EVAL_S * (first.n_test + first.n_val)) / 60
    text = (f"Reading {len(studies) - len(own)} of its {len(studies)} runs from notebook 07, 06 runs "
            f"{len(own)} of its own: about {here:.0f} thread-minutes by the unit costs. The same "
            f"studies as a sweep of 06's own ({first.prompts_per_iter} prompts per round, "
            f"{first.n_test} test problems, iterative DPO, every memory mode) would take about "
            f"{alone:.0f}, so reading 07's runs costs {'less' if here < alone else 'more'} than a "
            f"sweep of its own, and every comparison here sits on {studies[0].config.n_test} test "
            f"problems at 07's round size.")
    if left_out:
        extra = sum(map(estimate_seconds, left_out)) / 60
        why = (" (with it, 06 would cost more than the sweep)" if here < alone < here + extra else "")
        text += (f" Memory {', '.join(s.setting for s in left_out)} is priced but not run: about "
                 f"{extra:.0f} thread-minutes more{why}.")
    return text


def unit_costs_text() -> str:
    """The unit costs :func:`estimate_seconds` uses, in words."""
    return (f"$s_{{\\text{{sample}}}}$ = {SAMPLE_S:.2f} s per prompt at k=8, $s_{{\\text{{train}}}}$ = "
            f"{TRAIN_S:.2f} s per prompt's list, $s_{{\\text{{eval}}}}$ = {EVAL_S:.3f} s per problem, "
            "one thread each, measured in the validation study's rounds "
            "(benchmarks/results/default_run_plan.json)")


def headline_arm(arm_list: Sequence[A.Arm]) -> str:
    """The headline LARPO arm of 07 (the listwise objective chosen on validation)."""
    return next(a.name for a in arm_list if a.headline and a.name != "iterative DPO")


def score_name(studies: Sequence[Study]) -> str:
    """"accuracy" on a task with a verifier, "mean reward" where a reward model scores it."""
    from .tasks import has_verifier

    return "accuracy" if has_verifier(studies[0].config.task) else "mean reward"


def run(studies: Sequence[Study], preset: str, workers: int = 1) -> dict[str, Rows]:
    """Every study's rows (``{name: rows}``, round 0 the initial policy): 07's runs read back
    from their folders when 07 has run them, run here otherwise (a folder's lock keeps two
    notebooks from running one run twice); ``workers`` runs at a time
    (:func:`larpo_lite.arms.run_parallel`)."""
    out: dict[str, Rows] = {}
    for stop in dict.fromkeys(s.stop_after for s in studies):
        group = [A.Arm(s.name, s.config, (s.config.seed,)) for s in studies if s.stop_after == stop]
        out.update({k: v[0] for k, v in A.run_parallel(group, preset, workers, stop_after=stop).items()})
    return {s.name: out[s.name] for s in studies}


def _scores(rows: Rows, round_: int = -1) -> np.ndarray:
    from .loop import per_problem

    return per_problem(rows[round_], "test")


def section_table(studies: Sequence[Study], runs: dict[str, Rows], section: str) -> Any:
    """One row per setting of ``section``: lists per round, greedy test score per round (round
    0: the initial policy), seconds of its rounds and whose run it is."""
    import pandas as pd

    return pd.DataFrame([{section: s.setting, "lists per round": [r.get("lists") for r in runs[s.name][1:]],
                          "trained on, per round": [r.get("train_lists") for r in runs[s.name][1:]],
                          "test greedy per round": [round(r["test_greedy"], 3) for r in runs[s.name]],
                          "seconds": round(sum(r.get("seconds", 0.0) for r in runs[s.name]), 1),
                          "run of": s.shared or "06"} for s in studies if s.section == section]
                        ).set_index(section)


CLAIMS = {"list_size": "more responses per prompt help",
          "memory": "training on earlier rounds' lists too helps",
          "temperatures": "sampling at a mix of temperatures helps"}


def comparisons(studies: Sequence[Study], runs: dict[str, Rows]) -> list[dict[str, Any]]:
    """06's ``metrics.comparisons``, after each run's last round read, one seed each (``label``
    single-seed; ``se_kind`` paired over problems; ``mde`` 2.8 SE): every list size against the
    smallest, each memory mode and the mix against the section's first setting, then every run
    against the initial policy."""
    by = {s.section: [x for x in studies if x.section == s.section] for s in studies}
    init = _scores(runs[studies[0].name], 0)
    pairs = []
    for section, group in by.items():
        base = min(group, key=lambda s: int(s.setting)) if section == "list_size" else group[0]
        pairs += [(s.name, base.name, CLAIMS[section]) for s in group if s is not base]
    pairs += [(s.name, "init", f"{s.name} improves on the initial policy") for s in studies]
    out = []
    for a, b, claim in pairs:
        sb = init if b == "init" else _scores(runs[b])
        out.append({**A.seeded_comparison(_scores(runs[a])[None], sb[None]), "a": a, "b": b,
                    "label": "single-seed", "claim": claim})
    return out


def comparison_table(rows: Sequence[dict[str, Any]]) -> Any:
    """The comparison rows to read: difference, paired SE, MDE (2.8 SE), verdict."""
    import pandas as pd

    cols = ["a", "b", "diff", "se", "mde", "se_kind", "label", "verdict"]
    return pd.DataFrame(rows)[cols].set_index(["a", "b"]).round(3)


# --------------------------------------------------------------------------- usable lists
def round1_correct(studies: Sequence[Study], preset: str) -> dict[str, list[list[int]]]:
    """``{k: [prompts, k] 0/1}``: the correctness of each list-size run's round-1 samples (the
    initial policy's), read from its candidates file; ``{}`` for a temperature mix."""
    from .jsonl import read_jsonl
    from .loop import run_dir

    out = {}
    for s in studies:
        if s.section == "list_size" and len(s.config.temperatures) == 1:
            path = run_dir(s.config, preset) / f"candidates_iter1_T{s.config.temperatures[0]}.jsonl"
            out[s.setting] = [[int(c) for c in r["correct"]] for r in read_jsonl(path)]
    return out


def usable_per_prompt(correct: np.ndarray, k: int) -> np.ndarray:
    """``[prompts]``: each prompt's chance that ``k`` of its ``n`` samples (drawn without
    replacement) hold a right and a wrong one, ``1 - C(c,k)/C(n,k) - C(n-c,k)/C(n,k)``, an
    unbiased ``1 - p^k - (1-p)^k`` from ``c`` right answers in ``n``."""
    from .metrics import pass_at_k

    n, c = correct.shape[1], correct.sum(axis=1)
    return np.asarray(pass_at_k(n, c, k) + pass_at_k(n, n - c, k) - 1, dtype=np.float64)


def usable_table(correct: dict[str, list[list[int]]], runs: dict[str, Rows]) -> Any:
    """Per list size: the observed share of round-1 prompts whose ``k`` samples hold a right
    and a wrong answer (with 2 binomial SE), predicted per prompt and with one overall ``p``
    from the largest ``k``'s samples, and the lists trained on."""
    import pandas as pd

    ks = sorted(int(k) for k in correct)
    ref = np.asarray(correct[str(ks[-1])], dtype=np.float64)
    p = float(ref.mean())
    rows = []
    for k in ks:
        arr = np.asarray(correct[str(k)], dtype=np.float64)
        obs = float(np.mean([0 < r.sum() < k for r in arr]))
        rows.append({"k": k, "observed": obs, "two_se": 2 * np.sqrt(obs * (1 - obs) / len(arr)),
                     "predicted, per prompt": float(usable_per_prompt(ref, k).mean()),
                     "predicted, overall p": 1 - p ** k - (1 - p) ** k,
                     "lists trained on": runs[f"list_size/{k}"][1].get("lists"), "p": p})
    return pd.DataFrame(rows).set_index("k")


def usable_text(table: Any) -> str:
    """The usable-list finding in words: observed at the smallest and largest ``k`` against both
    predictions."""
    if table is None:
        return ("No usable-list prediction here: the lists are ranked by a reward model or sampled "
                "at a temperature mix.")
    lo, hi = table.iloc[0], table.iloc[-1]
    return (f"With k={table.index[0]}, {lo['observed']:.2f} of the round-1 prompts held a right and a "
            f"wrong sample (per-prompt prediction {lo['predicted, per prompt']:.2f}; one overall "
            f"p={lo['p']:.3f} predicts {lo['predicted, overall p']:.2f}); with k={table.index[-1]}, "
            f"{hi['observed']:.2f}.")


# --------------------------------------------------------------------------- figure and words
def _row(rows: Sequence[dict[str, Any]], a: str, b: str) -> dict[str, Any] | None:
    return next((r for r in rows if r["a"] == a and r["b"] == b), None)


def display(name: str) -> str:
    """A study's name in words: ``list_size/4`` -> ``k=4``, ``memory/all`` -> ``memory all``,
    ``temperatures/mix [1.0, 0.5]`` -> ``mix [1.0, 0.5]``."""
    section, _, setting = name.partition("/")
    return {"list_size": f"k={setting}", "memory": f"memory {setting}"}.get(section, setting or name)


def finding(row: dict[str, Any] | None) -> str:
    """A panel title: ``a minus b: +0.013 (inconclusive, 2 SE = 0.050)``."""
    if row is None:
        return "not compared"
    return (f"{row['a'].split('/', 1)[1]} minus {row['b'].split('/', 1)[-1]}: {row['diff']:+.3f} "
            f"({row['verdict']}, 2 SE = {2 * row['se']:.3f})")


def headline_rows(studies: Sequence[Study], rows: Sequence[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """Per section, its claim's comparison: the largest list size against the smallest, the
    last memory mode and the mix against the section's first setting."""
    out = {}
    for section in SECTIONS:
        group = [s for s in studies if s.section == section]
        if len(group) < 2:
            continue
        if section == "list_size":
            group = sorted(group, key=lambda s: int(s.setting))
        row = _row(rows, group[-1].name, group[0].name)
        if row:
            out[section] = row
    return out


def figure(studies: Sequence[Study], runs: dict[str, Rows], rows: Sequence[dict[str, Any]],
           usable: Any, unit: str = "accuracy") -> Any:
    """Four panels, each titled by its finding: greedy test score after round 1 by list size;
    usable lists, observed and predicted; the memory modes round by round; one temperature or
    the mix. Score bars are 2 paired SE against the initial policy (usable lists: 2 binomial
    SE); legends below the panels."""
    import matplotlib.pyplot as plt

    from .plotting import dodge, errorbar_series, n_axis, palette, set_style, zoom_y

    set_style()
    fig, axes = plt.subplots(2, 2, figsize=(13, 9.5))
    heads = headline_rows(studies, rows)
    vs_init = {r["a"]: r for r in rows if r["b"] == "init"}
    init = float(_scores(runs[studies[0].name], 0).mean())
    limits = {} if unit == "accuracy" else {"lo": -np.inf, "hi": np.inf}

    def points(ax: Any, group: list[Study], xs: Sequence[Any]) -> None:
        ys = [float(_scores(runs[s.name]).mean()) for s in group]
        errs = [2 * vs_init[s.name]["se"] for s in group]
        for x, y, e, s, c in zip(xs, ys, errs, group, palette(len(group)), strict=True):
            errorbar_series(ax, [x], [y], [e], fmt="o", ms=8, capsize=5, color=c,
                            label=f"{display(s.name)} ({s.shared or '06'})")
        ax.axhline(init, color="black", ls="--", lw=1, label=f"initial policy {init:.3f}")
        zoom_y(ax, [*np.add(ys, errs), *np.subtract(ys, errs), init], **limits)
        ax.set_ylabel(f"greedy test {unit}")

    sizes = sorted((s for s in studies if s.section == "list_size"), key=lambda s: int(s.setting))
    points(axes[0, 0], sizes, [int(s.setting) for s in sizes])
    n_axis(axes[0, 0], [int(s.setting) for s in sizes])
    axes[0, 0].set_xlim(int(sizes[0].setting) / 1.3, int(sizes[-1].setting) * 1.3)
    axes[0, 0].set(xlabel="responses per prompt k (round 1, iterative DPO)",
                   title="list size: " + finding(heads.get("list_size")))
    ax = axes[0, 1]
    if usable is not None:
        ks = list(usable.index)
        errorbar_series(ax, dodge(ks, 0, 3, 0.04), usable["observed"], usable["two_se"], marker="o",
                        capsize=4, label="observed (round 1)")
        ax.plot(dodge(ks, 1, 3, 0.04), usable["predicted, per prompt"], marker="s", ls="--",
                label="predicted, per-prompt p")
        ax.plot(dodge(ks, 2, 3, 0.04), usable["predicted, overall p"], marker="^", ls=":",
                label=f"predicted, one overall p = {usable['p'].iloc[0]:.2f}")
        n_axis(ax, ks)
        ax.set_xlim(ks[0] / 1.3, ks[-1] * 1.3)
        ax.set(xlabel="responses per prompt k", ylabel="share of prompts: a right and a wrong answer",
               title=f"usable lists: observed {usable['observed'].iloc[0]:.2f} at k={ks[0]}, "
                     f"{usable['observed'].iloc[-1]:.2f} at k={ks[-1]}")
    else:
        ax.text(0.5, 0.5, "no usable-list prediction\n(reward-model ranking or a temperature mix)",
                ha="center", va="center", transform=ax.transAxes)
        ax.set_axis_off()
    ax = axes[1, 0]
    mem = [s for s in studies if s.section == "memory"]
    for i, (s, c) in enumerate(zip(mem, palette(len(mem)), strict=True)):
        cur = A.curve([runs[s.name]])
        errorbar_series(ax, dodge(range(len(cur["mean"])), i, len(mem), 0.2, log=False), cur["mean"],
                        cur["two_se"], marker="o", capsize=4, color=c, label=f"{s.setting} ({s.shared or '06'})")
    ax.xaxis.get_major_locator().set_params(integer=True)
    ax.set(xlabel="round (0 = initial policy)", ylabel=f"greedy test {unit}",
           title="memory, after the last round: " + finding(heads.get("memory")))
    temps = [s for s in studies if s.section == "temperatures"]
    points(axes[1, 1], temps, list(range(len(temps))))
    axes[1, 1].set_xticks(range(len(temps)), [s.setting for s in temps])
    axes[1, 1].set_xlim(-0.5, len(temps) - 0.5)
    axes[1, 1].set(xlabel="sampling temperatures (round 1)",
                   title="temperatures: " + finding(heads.get("temperatures")))
    for a in axes.ravel():
        a.set_title(textwrap.fill(a.get_title(), 60), fontsize=10)
        if a.has_data():
            a.legend(loc="upper center", bbox_to_anchor=(0.5, -0.16), ncol=2, fontsize=8)
    fig.tight_layout()
    return fig


def findings_text(studies: Sequence[Study], runs: dict[str, Rows], rows: Sequence[dict[str, Any]],
                  usable: Any) -> str:
    """06's "What we saw", every number from this run: each section's claim (single-seed,
    paired over problems, MDE beside it), the usable lists, and the tally."""
    heads = headline_rows(studies, rows)
    out, verdicts = [], []
    for r in heads.values():
        a, b = (float(_scores(runs[x]).mean()) for x in (r["a"], r["b"]))
        named = {**r, "a": display(r["a"]), "b": display(r["b"])}
        out.append("Single-seed: " + A.sentence(named, r["claim"], a, b))
        verdicts.append(r["verdict"])
    out.append(usable_text(usable))
    worse = verdicts.count("worse")
    better = verdicts.count("better")
    mdes = [r["mde"] for r in heads.values()]
    out.append(f"Of the paper's {len(verdicts)} claims about candidate lists tested here, {better} "
               f"moved the paper's way beyond 2 SE, {worse} the other way and "
               f"{len(verdicts) - better - worse} are inconclusive"
               + (f"; each rests on one seed, and an effect below about {max(mdes):.3f} could not "
                  "show (80% power)" if mdes else "") + ".")
    return " ".join(out)


def run_line(params: Any, studies: Sequence[Study], unit: str) -> str:
    """One line naming this run: preset, model, task, rounds and what "greedy" measures."""
    return (f"preset={params.preset} model={params.model_name} task={studies[0].config.task} "
            f"memory rounds={params.memory_iterations} test problems={studies[0].config.n_test} "
            f"greedy = {unit}")


def metrics_06(studies: Sequence[Study], runs: dict[str, Rows], rows: Sequence[dict[str, Any]],
               usable: Any, params: Any, what_we_saw: str, cost: str) -> dict[str, Any]:
    """06's metrics file: each section's rows by setting (``list_size``, ``memory``,
    ``temperatures``), ``gains`` (each section's claim: last minus first setting),
    ``per_problem`` (``section/setting`` and ``init``), ``comparisons``, ``plan`` (whose run each
    study is and its estimated seconds here) and ``usable_lists``."""
    heads = headline_rows(studies, rows)
    key = {"list_size": "k_largest_vs_smallest", "memory": "memory_all_vs_current",
           "temperatures": "mix_vs_single"}
    return {
        **{sec: {s.setting: runs[s.name] for s in studies if s.section == sec} for sec in SECTIONS},
        "memory_iterations": params.memory_iterations,
        "gains": {key[sec]: r["diff"] for sec, r in heads.items()},
        "per_problem": {"init": _scores(runs[studies[0].name], 0).tolist(),
                        **{s.name: _scores(runs[s.name]).tolist() for s in studies}},
        "comparisons": list(rows),
        "plan": [{"study": s.name, "run_of": s.shared or "06", "rounds": s.rounds,
                  "estimated_seconds": round(estimate_seconds(s), 1)} for s in studies],
        "usable_lists": None if usable is None else {str(k): r for k, r in usable.to_dict("index").items()},
        "n_test": studies[0].config.n_test, "cost": cost, "what_we_saw": what_we_saw}


def read_studies(params: Any) -> tuple[list[Study], dict[str, Rows], dict[str, list[list[int]]]]:
    """Notebook 06's studies, their rows and the list-size runs' round-1 correctness for another
    notebook (its solutions): under a replay preset the recorded ones (``replay/06_candidate_lists``,
    nothing runs), else the run folders, read back when 06 and 07 have run them (as in the default
    run), run otherwise."""
    studies = plan(params, A.for_params(params)[0], MEMORY_COMPARED)
    if params.replay:
        from .replay import Recorder

        def never() -> Any:
            raise AssertionError("a replay never runs")

        rec = Recorder("06_candidate_lists", params)
        return studies, rec("studies", never), rec("round1_correct", never)
    runs = run(studies, params.preset, params.loop_workers)
    return studies, runs, round1_correct(studies, params.preset)
