"""The four ranking objectives side by side: what each loss pushes, and their first round of
the loop's runs.

Introduced in notebooks/04_ranking_losses. Notebook 04 reads round 1 of every looping arm of
:func:`larpo_lite.arms.for_params` (``loop.run_shared(cfg, preset, stop_after=1)`` for each
seed's config); notebook 07 continues the same run folders to the last round. So 04's
"pairwise" is iterative DPO's first round (the best against the worst of the same ``k``
samples that each LARPO objective ranks into its list), and each comparison is an
:func:`larpo_lite.arms.compare` row: the standard error resamples seeds and problems where
both arms have seeds (``se_kind``), the 80%-power minimum detectable effect ``2.8 SE`` sits
beside each difference, and a row with a one-seed arm is labelled single-seed.

Everything here is bookkeeping the notebook calls in one line: tables, figures whose titles
state the finding, the "What we saw" sentences and the metrics file.
"""

from __future__ import annotations

import math
import textwrap
from collections.abc import Sequence
from typing import Any

import numpy as np

from . import arms as A
from .arms import run_line, score_name  # noqa: F401  (ranking_round.run_line in 04)
from .losses import LOSSES, loss_and_push

NAMES = tuple(LOSSES)  # pairwise, contrastive, lambdarank, listmle
PAIRWISE_ARM = "iterative DPO"
Runs = dict[str, list[list[dict[str, Any]]]]


# --------------------------------------------------------------------------- the toy lists
def push_table(log_ratios: Sequence[float], beta: float = 1.0,
               labels: Sequence[float] | None = None,
               names: Sequence[str] = NAMES) -> Any:
    """``[losses, positions]`` DataFrame: the push ``-beta dL/dgamma_i`` of each loss on each
    response of one list (best first), with the ``labels`` the trainer passes (None: a strict
    order), from :func:`larpo_lite.losses.loss_and_push`."""
    import pandas as pd

    got = loss_and_push(list(log_ratios), beta, rewards=labels, names=list(names))
    cols = [f"rank {i + 1}" for i in range(len(log_ratios))]
    return pd.DataFrame({n: push for n, (_, push) in got.items()}, index=cols).T


def start_values(k: int, labels: Sequence[float]) -> Any:
    """Each loss at ``gamma = 0`` on a list of ``k`` responses, without labels and with
    ``labels`` (non-increasing), beside the closed forms: ``ln 2``, ``ln k``,
    ``k(k-1)/2 ln 2`` and ``ln k!`` for a strict order; with ``p`` responses above ``n``
    strictly worse ones (binary labels), ``ln 2``, ``ln(1+n)``, ``p n ln 2`` and
    ``p ln(1+n)``."""
    import pandas as pd

    if len(labels) != k:
        raise ValueError(f"{len(labels)} labels for a list of {k}")
    top = labels[0]
    p = sum(1 for x in labels if x == top)
    n = k - p
    strict = {m: v for m, (v, _) in loss_and_push([0.0] * k, 1.0, names=list(NAMES)).items()}
    lab = {m: v for m, (v, _) in loss_and_push([0.0] * k, 1.0, rewards=list(labels),
                                              names=list(NAMES)).items()}
    forms = {"pairwise": (math.log(2), math.log(2)),
             "contrastive": (math.log(k), math.log(1 + n)),
             "lambdarank": (k * (k - 1) / 2 * math.log(2), p * n * math.log(2)),
             "listmle": (math.lgamma(k + 1), p * math.log(1 + n))}
    return pd.DataFrame({"strict order": strict, "closed form": {m: f[0] for m, f in forms.items()},
                         f"labels {list(labels)}": lab,
                         "closed form, labels": {m: f[1] for m, f in forms.items()}})


def _ranks(idx: Sequence[int]) -> str:
    if len(idx) == 1:
        return f"rank {idx[0] + 1}"
    return "ranks " + (" and ".join(str(i + 1) for i in idx) if len(idx) == 2
                       else f"{idx[0] + 1}-{idx[-1] + 1}")


def push_finding(table: Any) -> str:
    """Which losses leave which ranks unpushed in a :func:`push_table` (a title that states
    what the table shows)."""
    idle, busy = [], []
    for name, row in table.iterrows():
        zero = [i for i, v in enumerate(row.to_numpy()) if abs(v) < 1e-12]
        (idle if zero else busy).append((name, zero))
    said = [f"{n} leaves {_ranks(z)} unpushed" for n, z in idle]
    if busy:
        said.append(f"{', '.join(n for n, _ in busy)} push all {table.shape[1]} ranks")
    return "; ".join(said)


def push_left(before: Any, after: Any) -> dict[str, float]:
    """Per loss: its total push ``sum_i |push_i|`` on ``after``'s list as a share of that on
    ``before``'s (how much a loss still pushes once the list is ranked)."""
    return {n: float(np.abs(after.loc[n]).sum() / max(np.abs(before.loc[n]).sum(), 1e-12))
            for n in before.index}


def push_titles(tables: dict[str, Any]) -> dict[str, str]:
    """A title per :func:`push_table` stating what it shows: the unpushed ranks of each
    (:func:`push_finding`), and for the last, how much of the first table's push is left
    (:func:`push_left`: the first list unranked, the last one ranked)."""
    names = list(tables)
    out = {n: push_finding(t) for n, t in tables.items()}
    left = push_left(tables[names[0]], tables[names[-1]])
    out[names[-1]] = "of its push at zero scores each keeps " + ", ".join(f"{n} {v:.1%}" for n, v in left.items())
    return out


def push_figure(tables: dict[str, Any], titles: dict[str, str]) -> Any:
    """One bar panel per ``{label: push_table}`` (positions on x, one bar per loss), each titled
    by ``titles[label]`` (its finding); the legend sits right of the last panel."""
    import matplotlib.pyplot as plt

    from .plotting import set_style

    set_style()
    fig, axes = plt.subplots(1, len(tables), figsize=(5.2 * len(tables), 4.3), sharey=True,
                             squeeze=False)
    for ax, (label, table) in zip(axes[0], tables.items(), strict=True):
        table.T.plot.bar(ax=ax, rot=0, legend=False)
        ax.axhline(0, color="black", lw=0.8)
        ax.set(title=label + "\n" + textwrap.fill(titles[label], 48), ylabel="push, -dL/dgamma")
        ax.title.set_fontsize(9)
    axes[0][-1].legend(loc="upper left", bbox_to_anchor=(1.01, 1), fontsize=9)
    fig.tight_layout()
    return fig


def draw_losses(log_ratios: Sequence[float], beta: float,
                labels: Sequence[float] | None = None, names: Sequence[str] = NAMES) -> Any:
    """Each loss's value (left) and its push on each position (right) for one list of
    log-ratios (best first) at ``beta``; the title names the hardest push."""
    import matplotlib.pyplot as plt

    from .plotting import palette

    got = loss_and_push(list(log_ratios), beta, rewards=labels, names=list(names))
    table = push_table(log_ratios, beta, labels, names)
    fig, (ax_v, ax_p) = plt.subplots(1, 2, figsize=(11, 3.8), gridspec_kw={"width_ratios": [1, 2]})
    ax_v.bar(list(got), [v for v, _ in got.values()], color=palette(len(got)))
    ax_v.set(title="loss", ylabel="L")
    ax_v.tick_params(axis="x", rotation=30)
    table.T.plot.bar(ax=ax_p, rot=0)
    ax_p.axhline(0, color="black", lw=0.8)
    name, col = np.unravel_index(np.abs(table.to_numpy()).argmax(), table.shape)
    ax_p.set(title=f"hardest push: {table.index[name]} on rank {col + 1} "
                   f"({table.iat[name, col]:+.2f}); beta {beta:g}", ylabel="-dL/d log-ratio")
    ax_p.legend(loc="upper left", bbox_to_anchor=(1.01, 1), fontsize=9)
    fig.tight_layout()
    return fig


def loss_widget(log_ratios: Sequence[float], beta: float, names: Sequence[str] = NAMES) -> None:
    """Sliders for the four log-ratios and ``beta`` redrawing :func:`draw_losses`, shown when
    a person is looking (:func:`larpo_lite.plotting.live_frontend`); headless, one line
    saying that the static figure stands for it."""
    from .plotting import live_frontend

    if not live_frontend():
        print("No interactive front end here: the figure above is the static view of the widget.")
        return
    import ipywidgets as widgets
    import matplotlib.pyplot as plt
    from IPython.display import display

    sliders = [widgets.FloatSlider(value=v, min=-10, max=10, step=0.5, description=f"rank {i + 1}")
               for i, v in enumerate(log_ratios)]
    beta_slider = widgets.FloatLogSlider(value=beta, base=10, min=-2, max=1, step=0.05,
                                         description="beta")
    out = widgets.Output()

    def redraw(_change: Any = None) -> None:
        with out:
            out.clear_output(wait=True)
            fig = draw_losses([s.value for s in sliders], beta_slider.value, names=names)
            plt.show(fig)
            plt.close(fig)

    for w in [*sliders, beta_slider]:
        w.observe(redraw, names="value")
    redraw()
    display(widgets.VBox([widgets.HBox(sliders[:2] + [beta_slider]), widgets.HBox(sliders[2:]), out]))


# --------------------------------------------------------------------------- round 1 of the runs
def looping(arm_list: Sequence[A.Arm]) -> list[A.Arm]:
    """The arms 04 runs: every looping arm on the shared sampling budget (offline DPO trains
    once, on all rounds' prompts, so it has no round 1 of its own; the paper's k=2 row, when
    the preset asks for it, samples less and is no objective of this comparison: 07's)."""
    return [a for a in arm_list if a.looping and not a.unequal_budget]


def objective_of(arm: A.Arm) -> str:
    return arm.config.objective


def round_one_rows(arm_list: Sequence[A.Arm], runs: Runs) -> list[dict[str, Any]]:
    """One row per arm and seed: the round-1 row's lists, training and greedy score (the
    ``results`` of 04's metrics file, ``objective`` naming the loss)."""
    out = []
    for a in arm_list:
        for seed, rows in zip(a.seeds, runs[a.name], strict=True):
            r = rows[1] if len(rows) > 1 else {}
            out.append({"arm": a.name, "objective": objective_of(a), "seed": seed,
                        "lr": a.config.lr, "beta": a.config.beta, "selection": a.config.selection,
                        "greedy": r.get("test_greedy"), "lists": r.get("lists"),
                        "skipped_prompts": r.get("skipped_prompts"),
                        "train_steps": r.get("train_steps"), "loss_first": r.get("loss_first"),
                        "loss_last": r.get("loss_last"), "train_seconds": r.get("train_seconds"),
                        "train_key": r.get("train_key"),
                        "train_reused_from": r.get("train_reused_from"),
                        "seconds": round(sum(x.get("seconds", 0.0) for x in rows), 1)})
    return out


def init_row(runs: Runs) -> dict[str, Any]:
    """The initial policy (round 0, the same in every run): greedy score and, when the runs
    sampled it, pass@N (reward@N) on test."""
    r0 = next(iter(runs.values()))[0][0]
    curve = {k.removeprefix("test_"): v for k, v in r0.items()
             if k.startswith(("test_pass@", "test_reward@"))}
    return {"arm": "initial policy", "objective": "init", "seed": None,
            "greedy": r0["test_greedy"], **curve}


def round_one_table(rows: Sequence[dict[str, Any]]) -> Any:
    """The rows of :func:`round_one_rows` to read: arm, seed, lists, loss, greedy score."""
    import pandas as pd

    cols = ["arm", "seed", "lr", "selection", "lists", "skipped_prompts", "train_steps",
            "loss_first", "loss_last", "greedy", "seconds"]
    return pd.DataFrame(rows)[cols].set_index(["arm", "seed"]).round(4)


def init_line(runs: Runs) -> str:
    """The initial policy's greedy score and whether every run's round 0 agrees with it."""
    r0 = init_row_raw(runs)
    return (f"initial policy: greedy {r0['test_greedy']:.3f} on {len(per_problem_of(r0))} test "
            f"problems; every run's round 0 answered the same: {same_initial_policy(runs)}")


def per_problem_of(row: dict[str, Any]) -> np.ndarray:
    from .loop import per_problem

    return per_problem(row, "test")


def selections(arm_list: Sequence[A.Arm]) -> str:
    """Each objective's list selection, in words for the prose (``objective `strategy```)."""
    return ", ".join(f"{objective_of(a)} `{a.config.selection}`" for a in arm_list)


def same_initial_policy(runs: Runs) -> bool:
    """Whether every run's round 0 answered every test problem the same (one initial policy)."""
    from .loop import per_problem

    first = per_problem(init_row_raw(runs), "test")
    return all(np.array_equal(per_problem(rows[0], "test"), first)
               for seeds in runs.values() for rows in seeds)


def init_row_raw(runs: Runs) -> dict[str, Any]:
    return next(iter(runs.values()))[0][0]


def comparisons(arm_list: Sequence[A.Arm], runs: Runs) -> list[dict[str, Any]]:
    """04's ``metrics.comparisons``: each LARPO objective minus pairwise (iterative DPO's
    round 1), the headline first, then every arm minus the initial policy; each an
    :func:`larpo_lite.arms.compare` row after round 1 with ``objective_a``/``objective_b``,
    ``label`` ("seeded" or "single-seed") and the claim it tests."""
    names = [a.name for a in arm_list]
    if PAIRWISE_ARM not in names:
        raise ValueError(f"no {PAIRWISE_ARM!r} arm among {names}: 04 compares against pairwise")
    by = {a.name: a for a in arm_list}
    larpo = sorted((a for a in arm_list if a.name != PAIRWISE_ARM and not a.unequal_budget),
                   key=lambda a: not a.headline)
    pairs = [(a.name, PAIRWISE_ARM) for a in larpo] + [(n, "init") for n in names]
    out = []
    for a, b in pairs:
        row = A.compare(arm_list, runs, a, b)
        seeds = [len(runs[a]), len(runs[b]) if b != "init" else len(runs[a])]
        ob = "init" if b == "init" else objective_of(by[b])
        out.append({**row, "objective_a": objective_of(by[a]), "objective_b": ob,
                    "label": "single-seed" if min(seeds) < 2 else "seeded",
                    "claim": (f"{objective_of(by[a])} beats pairwise on the same samples" if b != "init"
                              else f"{a} improves on the initial policy")})
    return out


def comparison_table(rows: Sequence[dict[str, Any]]) -> Any:
    """The comparison rows to read: difference, SE (and its kind), MDE = 2.8 SE, verdict."""
    import pandas as pd

    cols = ["a", "b", "diff", "se", "mde", "se_kind", "seeds", "label", "verdict"]
    return pd.DataFrame(rows)[cols].set_index(["a", "b"]).round(3)


def _headline_row(rows: Sequence[dict[str, Any]]) -> dict[str, Any] | None:
    return next((r for r in rows if r["b"] == PAIRWISE_ARM), None)


def figure_title(rows: Sequence[dict[str, Any]], unit: str = "accuracy") -> str:
    """The finding of 04's figure: the headline listwise objective against pairwise after
    round 1, with its verdict and 2 SE."""
    h = _headline_row(rows)
    if h is None:
        return f"round 1: greedy test {unit} of each objective"
    return (f"Round 1: {h['objective_a']} {h['diff']:+.3f} over pairwise "
            f"({h['verdict']}, 2 SE = {2 * h['se']:.3f}, {h['label']})")


def round_one_figure(arm_list: Sequence[A.Arm], runs: Runs, rows: Sequence[dict[str, Any]],
                     unit: str = "accuracy") -> Any:
    """Left: each objective's round-1 greedy score (mean over its seeds; light dots: single
    seeds) with 2-SE bars of its change from the initial policy (dashed). Right: each
    listwise objective minus pairwise with 2-SE bars (hollow: single-seed). Legends below."""
    import matplotlib.pyplot as plt

    from .loop import per_problem
    from .plotting import errorbar_series, palette, set_style, zoom_y

    set_style()
    fig, (ax, ax_d) = plt.subplots(1, 2, figsize=(12, 4.4), gridspec_kw={"width_ratios": [3, 2]})
    by = {(r["a"], r["b"]): r for r in rows}
    init = float(per_problem(init_row_raw(runs), "test").mean())
    colours = palette(len(arm_list))
    ys = [init]
    for i, (a, c) in enumerate(zip(arm_list, colours, strict=True)):
        s = A.scores(runs[a.name], round_=1)
        r = by[(a.name, "init")]
        errorbar_series(ax, [i], [s.mean()], [2 * r["se"]], fmt="o", ms=8, capsize=5, color=c,
                        label=f"{a.name}: mean of {len(s)} seed{'s' if len(s) > 1 else ''}")
        ax.scatter([i] * len(s), s.mean(axis=1), color=c, alpha=0.4, s=16)
        ys += [s.mean() - 2 * r["se"], s.mean() + 2 * r["se"], *s.mean(axis=1)]
    ax.axhline(init, color="black", ls="--", lw=1, label=f"initial policy {init:.3f}")
    ax.set_xticks(range(len(arm_list)), [objective_of(a) for a in arm_list])
    ax.set_xlim(-0.5, len(arm_list) - 0.5)
    zoom_y(ax, ys, **({} if unit == "accuracy" else {"lo": -np.inf, "hi": np.inf}))
    ax.set(ylabel=f"greedy test {unit} after round 1", title="each objective against the initial policy")
    diffs = [r for r in rows if r["b"] == PAIRWISE_ARM]
    for j, r in enumerate(diffs):
        hollow = r["label"] == "single-seed"
        errorbar_series(ax_d, [j], [r["diff"]], [2 * r["se"]], fmt="o", ms=8, capsize=5,
                        color=colours[[a.name for a in arm_list].index(r["a"])],
                        mfc="white" if hollow else None, label=f"{r['a']} minus {r['b']}")
    ax_d.axhline(0, color="black", lw=0.8)
    ax_d.set_xlim(-0.5, max(len(diffs), 1) - 0.5)
    ax_d.set_xticks(range(len(diffs)), [f"{r['objective_a']}\n({r['label']})" for r in diffs])
    ax_d.set(ylabel=f"difference in {unit}", title="listwise minus pairwise, same samples")
    ax.legend(loc="upper center", bbox_to_anchor=(0.5, -0.14), ncol=2, fontsize=8)
    fig.suptitle(figure_title(rows, unit))
    fig.tight_layout()
    return fig


# --------------------------------------------------------------------------- graded vs binary
def graded_vs_binary(params: Any) -> dict[str, dict[str, Any]]:
    """``metrics.graded_vs_binary`` of the validation study for ``params``' preset (this run's
    ``tuning_validation.json``, else the committed one, as :func:`larpo_lite.tune.read_choices`
    reads the step sizes); ``{}`` when the study has not measured it. Each row's ``mde`` is
    recomputed as ``MDE_Z`` x its ``se`` (80% power), whatever the file's code wrote."""
    from .metrics import MDE_Z
    from .tune import study_records

    for _, record in study_records(params)[:1]:
        rows = record.get("metrics", {}).get("graded_vs_binary") or {}
        return {name: {**r, "mde": MDE_Z * float(r["se"])} for name, r in rows.items()}
    return {}


def graded_text(gvb: dict[str, dict[str, Any]]) -> str:
    """:func:`graded_vs_binary` in words: per objective, graded minus binary lists after one
    round on validation, its paired SE, MDE (2.8 SE) and the 2-SE verdict; or that it is not
    measured yet."""
    from .metrics import MDE_Z

    if not gvb:
        return ("Not measured yet: the validation study's graded-vs-binary stage has not run for "
                "this preset (`metrics.graded_vs_binary` of `reports/tuning_validation.json` is "
                "empty), so this run says nothing about graded lists.")
    said = []
    for name, r in gvb.items():
        verdict = r["verdict"] if r["verdict"] != "inconclusive" else "inconclusive (within 2 SE)"
        said.append(f"{name}: graded minus binary {r['diff']:+.3f} on {r['n']} validation problems "
                    f"(paired SE {r['se']:.3f}, MDE {MDE_Z * r['se']:.3f}; {verdict}; "
                    f"{r.get('graded_lists')} graded lists against {r.get('binary_lists')} binary)")
    return "Measured in the validation study (one round, seed 0): " + "; ".join(said) + "."


# --------------------------------------------------------------------------- answers that flipped
def greedy_before_after(cfg: Any, preset: str, iteration: int = 1) -> dict[str, Any]:
    """One run's greedy test answers of the initial policy and of the policy after round
    ``iteration`` (rebuilt from its checkpoint: one greedy pass; the initial policy's answers
    come from the cache): questions, golds, responses and 0/1 correctness, ``[n_test]`` each."""
    from .loop import greedy_responses, run_dir

    folder = run_dir(cfg, preset)
    before = greedy_responses(cfg, folder, iteration=0)
    after = greedy_responses(cfg, folder, iteration=iteration)
    return {"questions": [p.question for p in after.problems],
            "golds": [p.answer for p in after.problems],
            "before": [g.texts[0] for g in before.generations],
            "after": [g.texts[0] for g in after.generations],
            "before_ok": before.correct[:, 0].tolist(), "after_ok": after.correct[:, 0].tolist()}


def flips_text(answers: dict[str, Any], rows: Sequence[dict[str, Any]]) -> str:
    """Whether the rebuilt policy reproduces the run's recorded round-1 scores, then a few
    problems that flipped each way (:func:`larpo_lite.findings.flipped_examples`)."""
    from .findings import flipped_examples
    from .loop import per_problem

    same = np.array_equal(np.asarray(answers["after_ok"], dtype=float), per_problem(rows[1], "test"))
    return (f"the rebuilt policy reproduces the recorded round-1 scores: {same}\n"
            + flipped_examples(answers["questions"], answers["golds"], answers["before"],
                               answers["after"], answers["before_ok"], answers["after_ok"]))


# --------------------------------------------------------------------------- what we saw
def spread_text(arm_list: Sequence[A.Arm], runs: Runs) -> str:
    """The seeds' spread of each seeded arm after round 1: training noise that the problems'
    standard error does not hold."""
    said = []
    for a in arm_list:
        s = A.scores(runs[a.name], round_=1).mean(axis=1)
        if len(s) > 1:
            said.append(f"{a.name} {s.min():.3f}-{s.max():.3f} over {len(s)} seeds")
    return ("Seed to seed, round-1 accuracy ranged " + "; ".join(said) + "."
            if said else "No arm ran more than one seed, so the seeds' spread is not measured.")


def findings_text(arm_list: Sequence[A.Arm], runs: Runs, rows: Sequence[dict[str, Any]],
                  iterations: int) -> str:
    """04's "What we saw", every number from this run: each listwise objective against
    pairwise (single-seed rows say so), each arm against the initial policy, the seeds'
    spread, and the tally for the paper's claim."""
    by_arm = {a.name: A.scores(runs[a.name], round_=1).mean() for a in arm_list}
    init = float(A.scores(runs[arm_list[0].name], round_=0)[0].mean())
    out = []
    for r in rows:
        if r["b"] != PAIRWISE_ARM:
            continue
        text = A.sentence({**r, "a": r["objective_a"], "b": "pairwise"}, r["claim"],
                          by_arm[r["a"]], by_arm[r["b"]])
        out.append(("Single-seed: " if r["label"] == "single-seed" else "") + text)
    moved = [f"{r['a']} {r['diff']:+.3f} (SE {r['se']:.3f}, {r['verdict']})"
             for r in rows if r["b"] == "init"]
    out.append(f"Against the initial policy ({init:.3f}), after round 1: " + "; ".join(moved) + ".")
    out.append(spread_text(arm_list, runs))
    head = [r for r in rows if r["b"] == PAIRWISE_ARM]
    won = [r["objective_a"] for r in head if r["verdict"] == "better" and r["label"] == "seeded"]
    lost = [r["objective_a"] for r in head if r["verdict"] == "worse"]
    if won:
        out.append(f"The paper's claim that a listwise objective beats pairwise holds here after "
                   f"round 1 for {', '.join(won)} (seeded, beyond 2 SE).")
    elif lost:
        out.append(f"Pairwise did better than {', '.join(lost)} after round 1, against the paper.")
    elif head:
        mdes = [r["mde"] for r in head]
        out.append(f"After round 1 this run can neither confirm nor rule out the paper's claim "
                   f"that a listwise objective beats pairwise: it would have detected differences "
                   f"of {min(mdes):.3f} to {max(mdes):.3f} or more (80% power).")
    out.append(f"Notebook 07 continues these runs to round {iterations} and compares them there.")
    return " ".join(out)


def metrics_04(arm_list: Sequence[A.Arm], runs: Runs, rows: Sequence[dict[str, Any]],
               tuned: dict[str, dict[str, Any]], gvb: dict[str, Any],
               what_we_saw: str) -> dict[str, Any]:
    """04's metrics file. ``results``: the initial policy, then one row per arm and seed
    (``objective`` naming the loss: iterative DPO's round 1 is "pairwise");
    ``comparisons`` with ``a``/``b`` the objectives ("pairwise", "init"), each with its arms,
    ``se_kind``, ``mde`` (2.8 SE) and ``label``; ``per_problem`` per arm ``[seeds, problems]``
    (by arm name); ``settings`` per objective (lr, beta, where they came from)."""
    from .loop import per_problem

    results = [init_row(runs), *round_one_rows(arm_list, runs)]
    first = {a.name: runs[a.name][0][1] for a in arm_list if len(runs[a.name][0]) > 1}
    comps = [{**r, "arm_a": r["a"], "arm_b": r["b"], "a": r["objective_a"],
              "b": r["objective_b"]} for r in rows]
    return {
        "results": results, "comparisons": comps,
        "per_problem": {"initial policy": per_problem(init_row_raw(runs), "test").tolist(),
                        **{a.name: A.scores(runs[a.name], round_=1).tolist() for a in arm_list}},
        "settings": {objective_of(a): {"lr": a.config.lr, "beta": a.config.beta,
                                       "from": "validation study" if objective_of(a) in tuned
                                       else "preset (no per-objective choice)"} for a in arm_list},
        "arms": A.arm_table(arm_list), "n_eval": len(per_problem(init_row_raw(runs), "test")),
        "n_lists": {objective_of(a): r.get("lists") for a in arm_list if (r := first.get(a.name))},
        "skipped_prompts": {objective_of(a): r.get("skipped_prompts") for a in arm_list
                            if (r := first.get(a.name))},
        "loss_curves": {f"{a.name}/{s}": rr[1].get("losses") for a in arm_list
                        for s, rr in zip(a.seeds, runs[a.name], strict=True) if len(rr) > 1},
        "graded_vs_binary": gvb, "what_we_saw": what_we_saw}


def read_round_one(params: Any) -> tuple[list[A.Arm], Runs]:
    """Notebook 04's arms and their round-1 runs for another notebook (its solutions): under a
    replay preset the recorded ones (``replay/04_ranking_losses``, nothing runs), else the run
    folders, read back when 04 or 07 has run them (as in the default run), run otherwise."""
    compared = looping(A.for_params(params)[0])
    if params.replay:
        from .replay import Recorder

        def never() -> Any:
            raise AssertionError("a replay never runs")

        return compared, Recorder("04_ranking_losses", params)("round_one", never)
    return compared, A.run_parallel(compared, params.preset, workers=params.loop_workers,
                                    stop_after=1)
