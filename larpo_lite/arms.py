"""The arms of the full loop (notebook 07): Algorithm 1 over several rounds, every looping arm
on one sampling budget, seeds on the headline arms, and comparisons that carry the seeds'
spread.

Introduced in notebooks/07_larpo_loop.

The arms (:func:`equal_budget_arms`):

- **iterative DPO** (headline): pairwise on the best vs the worst of the same ``k`` responses
  per prompt that LARPO ranks (the RLHFlow recipe), from its own policy, every round;
- **LARPO, each listwise objective**: lists from the same ``k``; the objective with the best
  validation change in the study is the headline arm, the others run one seed;
- **offline DPO**: one training on the initial policy's samples for all rounds' prompts;
- optionally the paper's **k=2 iterative DPO**, marked ``unequal_budget`` (it samples fewer).

Every arm uses the preset's reference policy and its own step size chosen on validation
(:mod:`larpo_lite.tune`). Headline arms run every seed of ``seeds`` through every round; a
comparison of arms with seeds resamples both seeds and problems (:func:`seeded_comparison`,
``se_kind`` "bootstrap over seeds and problems"), so training noise enters its standard error.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from .loop import LoopConfig, iterative_dpo_config, offline_config, per_problem
from .metrics import MDE_Z, paired_stats, paired_verdict
from .tune import apply_choice

LISTWISE = ("contrastive", "lambdarank", "listmle")


@dataclass(frozen=True)
class Arm:
    """One arm of the loop comparison.

    Attributes:
        name: the arm's label ("iterative DPO", "LARPO listmle", "offline DPO", ...).
        config: its loop set-up (seed 0's; the other seeds replace ``seed``).
        seeds: the seeds it runs.
        headline: one of the two headline arms (iterative DPO and the listwise objective
            chosen on validation).
        unequal_budget: it samples fewer responses than the other looping arms (k=2).
        looping: it runs rounds of sample -> train (False for offline DPO).
    """

    name: str
    config: LoopConfig
    seeds: tuple[int, ...]
    headline: bool = False
    unequal_budget: bool = False
    looping: bool = True

    def configs(self) -> list[LoopConfig]:
        """One config per seed (seed replaces LoRA init, list order and sampling seeds). Only
        the first seed evaluates on validation (over-optimization is read there); the others
        skip it (``n_val=0``), which saves a greedy pass per round."""
        return [dataclasses.replace(self.config, seed=s,
                                    n_val=self.config.n_val if i == 0 else 0)
                for i, s in enumerate(self.seeds)]


def headline_objective(tuned: dict[str, dict[str, Any]], objectives: Sequence[str]) -> str:
    """The listwise objective with the largest validation change in the study's choices
    (``tune.chosen_settings``); the first listwise one of ``objectives`` without a study."""
    listwise = [o for o in objectives if o in LISTWISE]
    if not listwise:
        raise ValueError(f"no listwise objective among {list(objectives)}")
    scored = [o for o in listwise if "diff" in tuned.get(o, {})]
    return max(scored, key=lambda o: tuned[o]["diff"]) if scored else listwise[0]


def equal_budget_arms(base: LoopConfig, tuned: dict[str, dict[str, Any]],
                      objectives: Sequence[str], seeds: Sequence[int],
                      paper_k2: bool = True) -> list[Arm]:
    """The arms of notebook 07 (see the module doc), each at its lr chosen on validation.

    Args:
        base: the preset's loop set-up (``LoopConfig.from_params``): rounds, prompts per
            round, ``k``, temperatures, memory and reference shared by every looping arm.
        tuned: ``{objective: {"lr": ..., "beta": ..., "diff": ...}}`` from the study.
        objectives: the objectives of the preset; its listwise ones run as LARPO.
        seeds: the headline arms' seeds (the first one for the others).
        paper_k2: add the paper's iterative DPO at k=2 as an ``unequal_budget`` row.
    """
    if not seeds:
        raise ValueError("give at least one seed")
    seeds, one = tuple(seeds), (seeds[0],)
    head = headline_objective(tuned, objectives)
    dpo = apply_choice(dataclasses.replace(base, objective="pairwise", strategy="best_worst",
                                           negative_tier=None), tuned)
    arms = [Arm("iterative DPO", dpo, seeds, headline=True)]
    for o in objectives:
        if o in LISTWISE:
            cfg = apply_choice(dataclasses.replace(base, objective=o, strategy=None), tuned)
            arms.append(Arm(f"LARPO {o}", cfg, seeds if o == head else one, headline=o == head))
    arms.append(Arm("offline DPO", offline_config(dpo), one, looping=False))
    if paper_k2 and base.k != 2:
        arms.append(Arm("iterative DPO, k=2 (paper)", iterative_dpo_config(dpo), one,
                        unequal_budget=True))
    return arms


def for_params(params: Any) -> tuple[list[Arm], dict[str, dict[str, Any]]]:
    """The arms of notebooks 04 and 07 for a notebook's ``params`` and the study's choices
    they train at (:func:`larpo_lite.tune.read_choices`): every looping arm on the preset's
    rounds, prompts per round and ``k_train``, headline arms on ``train_seeds``, the paper's
    k=2 row when ``paper_k2``.

    04 reads round 1 of these runs (``loop.run_shared(cfg, preset, stop_after=1)``) and 07
    continues them in the same folders."""
    from .loop import LoopConfig
    from .tune import read_choices

    tuned = read_choices(params)
    base = LoopConfig.from_params(params, alignment=True)
    return (equal_budget_arms(base, tuned, params.objectives, params.train_seeds, params.paper_k2),
            tuned)


Runner = Callable[[LoopConfig], list[dict[str, Any]]]


def run_arms(arms: Sequence[Arm], runner: Runner) -> dict[str, list[list[dict[str, Any]]]]:
    """Every arm's runs, one per seed: ``{arm: [rows of seed 0, rows of seed 1, ...]}``.

    ``runner(cfg)`` runs (or reads back) one loop run and returns its rows, e.g.
    ``lambda cfg: loop.run_shared(cfg, preset)``."""
    return {a.name: [runner(cfg) for cfg in a.configs()] for a in arms}


def scores(runs: Sequence[Sequence[dict[str, Any]]], split: str = "test",
           round_: int = -1) -> np.ndarray:
    """``[seeds, problems]`` per-problem scores of each seed's run at ``round_`` (-1: last)."""
    return np.stack([per_problem(rows[round_], split) for rows in runs])


def seeded_comparison(a: np.ndarray, b: np.ndarray, n_boot: int = 2000, seed: int = 0
                      ) -> dict[str, Any]:
    """``a`` minus ``b`` on the same problems, each ``[seeds, problems]`` (one row per seed).

    ``diff`` is the difference of the seed-averaged accuracies. With one seed on both sides the
    standard error is the paired one over problems (``se_kind`` "paired over problems");
    otherwise a two-level bootstrap resamples the problems (the same draw for both arms:
    paired) and, within each arm, its seeds, so the seeds' spread enters ``se`` (``se_kind``
    "bootstrap over seeds and problems"). ``mde`` is the 80%-power minimum detectable effect,
    ``2.8 se``; the verdict is the 2-SE rule."""
    a, b = np.atleast_2d(np.asarray(a, float)), np.atleast_2d(np.asarray(b, float))
    if a.shape[1] != b.shape[1]:
        raise ValueError(f"the arms were scored on different problems: {a.shape} vs {b.shape}")
    n = a.shape[1]
    diff = float(a.mean() - b.mean())
    if a.shape[0] == 1 and b.shape[0] == 1:
        ps = paired_stats(b[0], a[0])
        se, kind = ps.se, "paired over problems"
        gained, lost = ps.gained, ps.lost
    else:
        rng = np.random.default_rng(seed)
        probs = rng.integers(0, n, size=(n_boot, n))
        sa = rng.integers(0, a.shape[0], size=(n_boot, a.shape[0]))
        sb = rng.integers(0, b.shape[0], size=(n_boot, b.shape[0]))
        boots = np.empty(n_boot)
        for i in range(n_boot):
            boots[i] = a[sa[i]][:, probs[i]].mean() - b[sb[i]][:, probs[i]].mean()
        se, kind = float(boots.std(ddof=1)), "bootstrap over seeds and problems"
        d = a.mean(axis=0) - b.mean(axis=0)
        gained, lost = int(np.sum(d > 0)), int(np.sum(d < 0))
    return {"diff": diff, "se": se, "se_kind": kind, "mde": MDE_Z * se, "n": n,
            "seeds": [int(a.shape[0]), int(b.shape[0])], "gained": gained, "lost": lost,
            "verdict": paired_verdict(diff, se)}


def curve(runs: Sequence[Sequence[dict[str, Any]]], split: str = "test") -> dict[str, list[float]]:
    """Per round (0 = the starting policy): the seed-averaged score and twice its standard
    error against round 0 (paired over problems, seeds resampled with them when there are
    several: :func:`seeded_comparison`)."""
    rounds = min(len(r) for r in runs)
    start = scores(runs, split, 0)
    means, bars = [], []
    for s in range(rounds):
        now = scores(runs, split, s)
        means.append(float(now.mean()))
        bars.append(0.0 if s == 0 else 2 * seeded_comparison(now, start)["se"])
    return {"mean": means, "two_se": bars}


def over_optimized_rounds(rows: Sequence[dict[str, Any]], split: str = "val") -> list[dict[str, Any]]:
    """Rounds whose score fell beyond 2 paired SE from the round before (one run)."""
    out = []
    for prev, now in zip(rows[:-1], rows[1:], strict=True):
        ps = paired_stats(per_problem(prev, split), per_problem(now, split))
        if ps.verdict == "worse":
            out.append({"round": now["iteration"], "diff": ps.diff, "se": ps.se, "split": split})
    return out


def arm_rows(arms: Sequence[Arm], runs: dict[str, list[list[dict[str, Any]]]]) -> list[dict[str, Any]]:
    """``metrics.arms`` of notebook 07: one row per arm (the initial policy is round 0 of
    ``test_greedy``, not a row of its own)."""
    out = []
    for a in arms:
        r = runs[a.name]
        c = curve(r, "test")
        row = {"arm": a.name, "objective": a.config.objective, "k": a.config.k,
               "lr": a.config.lr, "beta": a.config.beta, "reference": a.config.reference,
               "seeds": len(a.seeds), "seed_list": list(a.seeds),
               "rounds": len(r[0]) - 1, "headline": a.headline, "looping": a.looping,
               "prompts_per_round": a.config.prompts_per_iter,
               "sampled_per_round": a.config.prompts_per_iter * a.config.k,
               "test_greedy": c["mean"], "test_two_se": c["two_se"],
               "val_greedy_seed0": [x.get("val_greedy") for x in r[0]],
               "over_optimized_seed0": over_optimized_rounds(r[0]) if "val_correct" in r[0][0] else [],
               "lists_per_round_seed0": [x.get("lists") for x in r[0][1:]],
               "seconds": round(sum(x.get("seconds", 0.0) for rows in r for x in rows[1:]), 1)}
        if a.unequal_budget:
            row["unequal_budget"] = True
        out.append(row)
    return out


def compare(arms: Sequence[Arm], runs: dict[str, list[list[dict[str, Any]]]], a: str, b: str,
            split: str = "test") -> dict[str, Any]:
    """One ``metrics.comparisons`` row: arm ``a`` minus arm ``b`` after their last rounds
    (``b`` may be "init": round 0 of ``a``'s first seed), with the seeds' spread in ``se``."""
    names = {x.name for x in arms}
    for name in (a, b):
        if name != "init" and name not in names:
            raise ValueError(f"no arm {name!r}; arms: {sorted(names)}")
    sa = scores(runs[a], split)
    sb = scores(runs[a], split, 0)[:1] if b == "init" else scores(runs[b], split)
    row = {"a": a, "b": b, **seeded_comparison(sa, sb)}
    single = [x for x in (a, b) if x != "init" and len(runs[x]) == 1]
    if single and row["verdict"] != "inconclusive":
        row["note"] = f"single-seed: {', '.join(single)}"
    return row


def last_vs_first(runs: Sequence[Sequence[dict[str, Any]]], split: str = "test") -> dict[str, Any]:
    """The last round against round 1, paired (seeds resampled): what the later rounds added."""
    return seeded_comparison(scores(runs, split, -1), scores(runs, split, 1))


def _run_one(task: tuple[LoopConfig, str, int | None]) -> list[dict[str, Any]]:
    """One loop run in a worker process of :func:`run_parallel` (importable: spawned)."""
    from .loop import run_shared

    cfg, preset, stop_after = task
    return run_shared(cfg, preset, stop_after=stop_after)


def _worker_start(parent: int) -> None:
    """A worker of :func:`run_parallel`: one thread, and on Linux it ends with ``parent`` (the
    process that started it), even when that one is killed outright."""
    import os
    import signal
    import sys

    import torch

    torch.set_num_threads(1)
    if sys.platform.startswith("linux"):
        import ctypes

        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGTERM)  # 1: PR_SET_PDEATHSIG
        if os.getppid() != parent:  # the parent died before prctl ran
            os.kill(os.getpid(), signal.SIGTERM)


def run_parallel(arms: Sequence[Arm], preset: str, workers: int = 1,
                 stop_after: int | None = None) -> dict[str, list[list[dict[str, Any]]]]:
    """:func:`run_arms` with ``loop.run_shared`` as the runner, ``workers`` runs at a time,
    each in a one-thread process of its own (``workers=1``: in this process, one after the
    other). Runs are ordered seed by seed, so the arms that share a seed's first round (its
    samples of the initial policy, cached) start together; two notebooks asking for the same
    run meet at its folder's lock and the second reads back what the first ran.

    Returns ``{arm: [rows of seed 0, rows of seed 1, ...]}`` in the arms' order."""
    tasks = sorted(((a.name, i, cfg) for a in arms for i, cfg in enumerate(a.configs())),
                   key=lambda t: (t[2].seed, [a.name for a in arms].index(t[0])))
    done = in_workers(_run_one, {(name, i): (cfg, preset, stop_after) for name, i, cfg in tasks},
                      workers)
    return {a.name: [done[(a.name, i)] for i in range(len(a.seeds))] for a in arms}


def in_workers(fn: Any, tasks: dict[Any, Any], workers: int = 1) -> dict[Any, Any]:
    """``{key: fn(task)}`` for each of ``tasks`` (``{key: task}``, started in their order),
    ``workers`` at a time, each in a one-thread process of its own (spawned: ``fn`` must be
    importable); ``workers=1`` runs them here, one after the other."""
    if workers < 1:
        raise ValueError(f"workers must be >= 1, got {workers}")
    if workers == 1:
        return {key: fn(task) for key, task in tasks.items()}
    import multiprocessing as mp
    import os
    from concurrent.futures import ProcessPoolExecutor

    with ProcessPoolExecutor(workers, mp_context=mp.get_context("spawn"),
                             initializer=_worker_start, initargs=(os.getpid(),)) as pool:
        futures = {key: pool.submit(fn, task) for key, task in tasks.items()}
        return {key: f.result() for key, f in futures.items()}


# ------------------------------------------------------------------ notebook 07's one-call views


def score_name(arms: Sequence[Arm]) -> str:
    """"accuracy" on a task with a verifier, "mean reward" where a reward model scores it."""
    from .tasks import has_verifier

    return "accuracy" if has_verifier(arms[0].config.task) else "mean reward"


def run_line(params: Any, arms: Sequence[Arm], n_eval: int) -> str:
    """One line naming this run: preset, model, task, seeds and what "greedy" measures."""
    return (f"preset={params.preset} model={params.model_name} task={arms[0].config.task} "
            f"seeds={list(params.train_seeds)} test problems={n_eval} "
            f"greedy = {score_name(arms)}")


def arm_table(arms: Sequence[Arm]) -> list[dict[str, Any]]:
    """One row per arm for a notebook to show before running: what it trains and on what
    budget (the reference policy printed, as every arm shares it)."""
    return [{"arm": a.name, "objective": a.config.objective,
             "lists": a.config.selection, "k": a.config.k,
             "rounds": a.config.iterations if a.looping else 1,
             "prompts/round": a.config.prompts_per_iter, "lr": a.config.lr, "beta": a.config.beta,
             "reference": a.config.reference, "seeds": list(a.seeds), "headline": a.headline,
             **({"unequal budget": True} if a.unequal_budget else {})} for a in arms]


def comparisons(arms: Sequence[Arm], runs: dict[str, list[list[dict[str, Any]]]],
                split: str = "test") -> list[dict[str, Any]]:
    """``metrics.comparisons`` of notebook 07: the headline LARPO arm against iterative DPO
    first, then every other LARPO arm against iterative DPO, every arm against offline DPO and
    against the initial policy (round 0), each with ``se_kind``, ``mde`` (2.8 SE) and ``seeds``."""
    names = [a.name for a in arms]
    head = [a.name for a in arms if a.headline and a.name != "iterative DPO"]
    larpo = [n for n in names if n.startswith("LARPO")]
    pairs = [(h, "iterative DPO") for h in head]
    pairs += [(n, "iterative DPO") for n in larpo if n not in head]
    if "offline DPO" in names:
        pairs += [(n, "offline DPO") for n in names if n != "offline DPO"]
    pairs += [(n, "init") for n in names]
    return [compare(arms, runs, a, b, split) for a, b in pairs if a in runs and (b == "init" or b in runs)]


def rounds_figure(arms: Sequence[Arm], runs: dict[str, list[list[dict[str, Any]]]],
                  title: str, unit: str = "accuracy") -> Any:
    """Test greedy accuracy per round of every arm (seed-averaged, 2-SE bars against round 0)
    and validation greedy of seed 0 with its over-optimized rounds circled; legend below."""
    import matplotlib.pyplot as plt

    from .plotting import dodge, errorbar_series, palette

    fig, axes = plt.subplots(1, 2, figsize=(15, 4.8))
    colors = palette(len(arms))
    for i, (a, c) in enumerate(zip(arms, colors, strict=True)):
        r = runs[a.name]
        ls = "-" if a.headline else ":" if not a.looping else "--"
        t = curve(r, "test")
        xs = dodge(list(range(len(t["mean"]))), i, len(arms), width=0.3, log=False)
        errorbar_series(axes[0], xs, t["mean"], t["two_se"], color=c, ls=ls, marker="o", capsize=3,
                        label=f"{a.name} ({len(a.seeds)} seed{'s' if len(a.seeds) > 1 else ''})")
        if "val_correct" in r[0][0]:
            v = curve(r[:1], "val")
            errorbar_series(axes[1], xs, v["mean"], v["two_se"], color=c, ls=ls, marker="o",
                            capsize=3, label=f"{a.name}, seed {a.seeds[0]}")
            for o in over_optimized_rounds(r[0]):
                axes[1].plot(xs[o["round"]], v["mean"][o["round"]], "o", ms=14, mfc="none", color="red")
    n = len(per_problem(next(iter(runs.values()))[0][0], "test"))
    axes[0].set(title=f"test ({n} problems, seeds averaged)", xlabel="round (0 = initial policy)",
                ylabel=f"greedy {unit} (bars: 2 SE vs round 0)")
    axes[1].set(title="validation, seed 0 (red ring: fell beyond 2 SE, over-optimized)",
                xlabel="round (0 = initial policy)", ylabel=f"greedy {unit} (bars: 2 SE vs round 0)")
    for ax in axes:
        ax.xaxis.get_major_locator().set_params(integer=True)
    fig.suptitle(title)
    axes[1].legend(*axes[0].get_legend_handles_labels(), loc="upper left", fontsize=8,
                   bbox_to_anchor=(1.02, 1), title="arm (line: headline, dashed: one seed, dotted: offline)",
                   title_fontsize=7)
    fig.tight_layout()
    return fig


def _recall_one(task: tuple[Any, ...]) -> dict[int, list[float]]:
    """One policy's Recall@N for :func:`recall_after_arms` (importable: spawned workers)."""
    from .loop import recall_after, run_dir

    cfg, preset, n_problems, n_samples, n_grid, temperature, iteration = task
    curves = recall_after(cfg, run_dir(cfg, preset), n_problems, n_samples, n_grid, temperature,
                          iteration=iteration)
    return {int(n): [float(x) for x in v] for n, v in curves.items()}


def recall_after_arms(arms: Sequence[Arm], preset: str, n_problems: int, n_samples: int,
                      n_grid: Sequence[int], temperature: float, workers: int = 1
                      ) -> dict[str, dict[int, list[float]]]:
    """Recall@N (pass@N) on the first ``n_problems`` test problems of the initial policy and of
    each headline arm's seed-0 policy after its last round (``loop.recall_after``), ``workers``
    policies at a time (:func:`in_workers`; each sampling is seeded, so the answers do not
    depend on it): ``{name: {N: [P] per-problem pass@N}}`` (their means:
    ``metrics.recall_after`` of 07); ``{}`` on a reward-scored task (no right or wrong answers
    to recall)."""
    if score_name(arms) != "accuracy":  # Recall@N needs right and wrong answers
        return {}
    head = [a for a in arms if a.headline]
    if not head:
        raise ValueError("no headline arm: nothing to measure Recall@N after")
    policies = {"initial policy": (head[0].configs()[0], 0),
                **{a.name: (a.configs()[0], None) for a in head}}
    return in_workers(_recall_one, {name: (cfg, preset, n_problems, n_samples, list(n_grid),
                                           temperature, iteration)
                                    for name, (cfg, iteration) in policies.items()}, workers)


def recall_summary(per_problem: dict[str, dict[Any, Sequence[float]]]) -> dict[str, Any]:
    """From :func:`recall_after_arms`: ``curves`` ``{name: {N: pass@N}}``, ``two_se``
    ``{name: {N: 2 SE over problems}}`` and ``vs_initial`` (each trained policy minus the
    initial one at each N, paired over problems: diff, se, mde, verdict)."""
    from .metrics import se_over_problems

    if not per_problem:  # a reward-scored task: no Recall@N
        return {"curves": {}, "two_se": {}, "vs_initial": {}}
    curves = {k: {int(n): float(np.mean(v)) for n, v in c.items()} for k, c in per_problem.items()}
    bars = {k: {int(n): 2 * se_over_problems(v) for n, v in c.items()} for k, c in per_problem.items()}
    init = per_problem["initial policy"]
    vs = {k: {int(n): paired_stats(init[n], v).row(k, "initial policy") for n, v in c.items()}
          for k, c in per_problem.items() if k != "initial policy"}
    return {"curves": curves, "two_se": bars, "vs_initial": vs}


def recall_figure(summary: dict[str, Any], n_grid: Sequence[int]) -> Any:
    """Recall@N of each policy with 2-SE bars over problems, log-scaled N, legend beside; the
    title states each trained policy's change at the smallest and largest N."""
    import matplotlib.pyplot as plt

    from .plotting import errorbar_series

    fig, ax = plt.subplots(figsize=(8, 4.2))
    if not summary["curves"]:
        ax.text(0.5, 0.5, "no Recall@N: a reward-scored task has no right or wrong answers",
                ha="center", va="center", transform=ax.transAxes)
        ax.set_axis_off()
        return fig
    for name, curve in summary["curves"].items():
        errorbar_series(ax, list(curve), list(curve.values()), list(summary["two_se"][name].values()),
                        label=name, marker="o", capsize=3)
    ax.set(xscale="log", xlabel="N (samples)", ylabel="Recall@N (pass@N), bars: 2 SE",
           title=recall_title(summary["curves"]))
    ax.set_xticks(list(n_grid), [str(n) for n in n_grid])
    ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1), fontsize=8)
    fig.tight_layout()
    return fig


def sentence(row: dict[str, Any], claim: str, score_a: float | None = None,
             score_b: float | None = None) -> str:
    """A "What we saw" sentence for one :func:`compare` row: the difference, its SE (and what
    kind), the MDE, and the 2-SE verdict on ``claim`` ("inconclusive" within 2 SE either way);
    a single-seed row never reproduces a claim."""
    scores = (f" ({score_b:.3f} -> {score_a:.3f})" if score_a is not None and score_b is not None
              else "")
    head = (f"{row['a']} minus {row['b']}: {row['diff']:+.3f}{scores} on {row['n']} test problems "
            f"(SE {row['se']:.3f}, {row['se_kind']}, seeds {row['seeds'][0]} vs {row['seeds'][1]}; "
            f"minimum detectable effect {row['mde']:.3f} at 80% power).")
    v = row["verdict"]
    if v == "inconclusive":
        return (f"{head} That is within 2 SE: inconclusive on whether {claim}; an effect smaller "
                f"than {row['mde']:.3f} would likely not show here.")
    way = "supports" if v == "better" else "goes against"
    single = " (single-seed: an anecdote, not a reproduction)" if row.get("note") else ""
    return f"{head} Beyond 2 SE, it {way} the claim that {claim}{single}."


def over_optimized_text(rows: Sequence[dict[str, Any]]) -> str:
    """The over-optimized rounds of :func:`arm_rows` in words ("none" when no round fell)."""
    said = [f"{r['arm']} round {o['round']} ({o['diff']:+.3f}, SE {o['se']:.3f})"
            for r in rows for o in r.get("over_optimized_seed0") or []]
    return "; ".join(said) if said else "none (no round fell beyond 2 SE from the round before)"


def recall_title(recall: dict[str, dict[int, float]]) -> str:
    """A title that states the Recall@N finding: each trained policy's change at the smallest
    and the largest N against the initial policy."""
    init = recall["initial policy"]
    lo, hi = min(init), max(init)
    parts = [f"{name}: R@{lo} {curve[lo] - init[lo]:+.3f}, R@{hi} {curve[hi] - init[hi]:+.3f}"
             for name, curve in recall.items() if name != "initial policy"]
    return "Recall@N after training vs the initial policy\n" + "; ".join(parts)


def loop_findings(arms: Sequence[Arm], runs: dict[str, list[list[dict[str, Any]]]],
                  comparisons: Sequence[dict[str, Any]], later: dict[str, dict[str, Any]],
                  recall: dict[str, dict[int, float]]) -> str:
    """Notebook 07's "What we saw", every number from this run: the headline comparison, each
    headline arm against the initial policy, what the later rounds added, over-optimization
    and Recall@N at the largest N."""
    by = {(c["a"], c["b"]): c for c in comparisons}
    rows = {r["arm"]: r for r in arm_rows(arms, runs)}
    heads = [a.name for a in arms if a.headline]
    larpo = next((h for h in heads if h != "iterative DPO"), None)
    out = []
    for h in heads:
        c = by.get((h, "init"))
        if c:
            g = rows[h]["test_greedy"]
            out.append(sentence(c, f"{h} improves on the initial policy", g[-1], g[0]))
    if larpo and (larpo, "iterative DPO") in by:
        c = by[(larpo, "iterative DPO")]
        out.append(sentence(c, f"{larpo} beats iterative DPO on the same sampling budget "
                               "(the paper's Table 2)",
                            rows[larpo]["test_greedy"][-1], rows["iterative DPO"]["test_greedy"][-1]))
    for h in heads:
        if h in later and rows[h]["rounds"] > 1:
            c = {**later[h], "a": f"{h} after round {rows[h]['rounds']}", "b": "its round 1"}
            out.append(sentence(c, "the later rounds add to the first"))
    out.append(f"Over-optimized rounds on validation (seed 0): {over_optimized_text(list(rows.values()))}.")
    if recall:
        init = recall["initial policy"]
        hi = max(init)
        out.append("Recall@" + str(hi) + ": " + ", ".join(
            f"{name} {curve[hi]:.3f}" for name, curve in recall.items()) + ".")
    return " ".join(out)


def metrics_07(arms: Sequence[Arm], runs: dict[str, list[list[dict[str, Any]]]],
               comparisons: Sequence[dict[str, Any]], later: dict[str, dict[str, Any]],
               recall: dict[str, Any], tuned: dict[str, dict[str, Any]],
               what_we_saw: str) -> dict[str, Any]:
    """Notebook 07's metrics file: ``arms`` (:func:`arm_rows`), ``comparisons``,
    ``recall_after`` (``{arm: {N: pass@N}}``) with its 2-SE bars and paired changes from the
    initial policy (:func:`recall_summary`), ``last_vs_first``, the runs' rows, the final
    seed-averaged ``test_greedy`` per arm (``init`` = round 0) and its per-problem means."""
    rows = arm_rows(arms, runs)
    first = next(iter(runs.values()))[0]
    test = {"init": float(per_problem(first[0], "test").mean()),
            **{r["arm"]: r["test_greedy"][-1] for r in rows}}
    per = {"init": per_problem(first[0], "test").astype(int).tolist(),
           **{a.name: scores(runs[a.name]).tolist() for a in arms}}
    return {"arms": rows, "comparisons": list(comparisons), "recall_after": recall["curves"],
            "recall_after_two_se": recall["two_se"], "recall_after_vs_initial": recall["vs_initial"],
            "last_vs_first": later, "headline": [a.name for a in arms if a.headline],
            "test_greedy": test, "per_problem": per, "tuned": tuned, "runs": runs,
            "configs": {a.name: a.config.to_dict() for a in arms}, "what_we_saw": what_we_saw}


def save_figures(figures: dict[str, Any], folder: Any) -> list[Any]:
    """Each ``{name: figure}`` saved with :func:`larpo_lite.plotting.savefig`; their paths."""
    from .plotting import savefig

    return [savefig(fig, name, folder) for name, fig in figures.items()]


def read_runs(params: Any) -> tuple[list[Arm], dict[str, list[list[dict[str, Any]]]]]:
    """Notebook 07's arms and runs for another notebook (its solutions): under a replay preset
    the recorded runs (``replay/07_larpo_loop``), else the run folders, read back when 07 has
    run them (as in the default run: no training), run otherwise."""
    arms, _ = for_params(params)
    if params.replay:
        from .replay import Recorder

        def never() -> Any:
            raise AssertionError("a replay never runs")

        return arms, Recorder("07_larpo_loop", params)("runs", never)
    return arms, run_parallel(arms, params.preset, workers=params.loop_workers)
