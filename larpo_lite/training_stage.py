"""Notebook 03's steps, one call each: SFT, then DPO, as one loop run from the SFT policy at the
step size the validation study chose for it, the three policies' evaluations, the paired
comparisons, the training curves and the diagnosis in words.

Introduced in notebooks/03_training_stage. The run is :class:`~larpo_lite.loop_config.LoopConfig`
with ``start="sft"`` (SFT on the worked solutions of the training prompts, then one round of
DPO on random correct vs random incorrect samples of the SFT policy, the SFT policy as the
reference), the setting of the validation study's ``pairwise_after_sft`` grid
(``configs/tuning/loop.yaml``); the study chooses its lr (:func:`dpo_setting`).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from . import loop, tune
from .loop_config import LoopConfig
from .metrics import PairedStats, paired_stats, per_problem_recall
from .paths import repo_root

STAGES = ("init", "SFT", "SFT -> DPO")
GRID = "pairwise_after_sft"  # the validation study's grid of this run
STUDY_FILE = "configs/tuning/loop.yaml"
# the study's settings of the SFT stage and the pairs when its file cannot be read
SFT_DEFAULTS = {"sft_lr": 5e-4, "sft_epochs": 3, "strategy": "random_pair"}
# settings the run and the study's setting must share for the study's lr to be the run's
_SHARED = ("prompts_per_iter", "epochs", "k", "temperatures", "strategy", "sft_lr", "sft_epochs",
           "lora_r", "beta", "gold_in_list", "reference")


# --------------------------------------------------------------------------- the setting
def _study_grid() -> dict[str, Any]:
    """The study file's base and the ``pairwise_after_sft`` grid's settings ({} when absent)."""
    path = repo_root() / STUDY_FILE
    if not path.is_file():
        return {}
    spec = tune.load_study(path)
    grid = (spec.get("grids") or {}).get(GRID)
    return {**(spec.get("base") or {}), **grid["overrides"]} if grid else {}


def dpo_setting(params: Any) -> dict[str, Any]:
    """DPO-after-SFT's settings and where they come from.

    Returns:
        ``lr`` and ``beta`` (the study's choice for ``pairwise_after_sft``, else the preset's
        ``lr`` and ``beta``), ``from_study`` (bool), ``source`` (a clause saying which),
        ``sft_lr``, ``sft_epochs`` and ``strategy`` (the study grid's), and ``study`` (the
        choice's paired validation change, or None)."""
    grid = _study_grid()
    choice = tune.read_choices(params).get(GRID)
    out = {k: grid.get(k, v) for k, v in SFT_DEFAULTS.items()}
    if choice:
        out.update(lr=float(choice["lr"]), beta=float(choice.get("beta", params.beta)),
                   from_study=True, study=choice,
                   source=(f"the validation study's choice for DPO after SFT (lr {choice['lr']:g}, "
                           f"validation {choice['diff']:+.3f}, paired SE {choice['se']:.3f})"))
    else:
        out.update(lr=params.lr, beta=params.beta, from_study=False, study=None,
                   source=(f"the preset's lr {params.lr:g}, because the validation study has no "
                           "choice for DPO after SFT yet (grid `pairwise_after_sft`)"))
    out["grid"] = grid
    return out


def loop_config(params: Any, setting: Mapping[str, Any]) -> LoopConfig:
    """The loop run of notebook 03: SFT, then one round of DPO from the SFT policy on
    ``n_train_prompts`` prompts x ``k_train`` samples, at ``setting``'s lr, beta and SFT
    settings. It evaluates nothing itself (the notebook evaluates each stage once)."""
    return LoopConfig.from_params(
        params, objective="pairwise", start="sft", sft_lr=setting["sft_lr"],
        sft_epochs=setting["sft_epochs"], strategy=setting["strategy"], iterations=1,
        prompts_per_iter=params.n_train_prompts, lr=setting["lr"], beta=setting["beta"],
        reference="initial", memory="current", n_val=0, n_test=0, eval_samples=0,
        temperatures=[params.temperature], show_progress=False)


def differs_from_study(cfg: LoopConfig, setting: Mapping[str, Any]) -> dict[str, tuple[Any, Any]]:
    """``{field: (study's value, run's value)}`` for the training settings where the run
    differs from the study's setting (empty: the study's lr was chosen for exactly this run)."""
    grid = setting.get("grid") or {}
    return {k: (grid[k], getattr(cfg, k)) for k in _SHARED
            if k in grid and grid[k] != getattr(cfg, k)}


def run(cfg: LoopConfig, preset: str) -> list[dict[str, Any]]:
    """The loop run's rows (row 0: the SFT policy with ``sft_*`` statistics; row 1: the DPO
    round with its per-step ``losses``, ``margins``, ``chosen_logps``, ...). Its round always
    trains here (no training reused from another run), so the per-step logs are this code's."""
    return loop.run_shared(cfg, preset, reuse=False)


def pairs(cfg: LoopConfig, preset: str) -> list[dict[str, Any]]:
    """The DPO pairs of the run (``lists_iter1.jsonl``): prompt, responses [chosen, rejected],
    rewards, and ``truncated`` flags when a response was cut at max_new_tokens."""
    from .jsonl import read_jsonl

    return read_jsonl(loop.run_dir(cfg, preset) / "lists_iter1.jsonl")


# --------------------------------------------------------------------------- evaluation
def evaluate_policy(model: Any, tok: Any, params: Any, cached: bool = False) -> dict[str, Any]:
    """One stage's evaluation as plain data: greedy answers on the first ``n_eval`` test
    problems and ``eval_samples`` samples at ``temperature`` on the first ``n_test``.

    Returns:
        ``greedy_texts`` [n_eval], ``greedy_correct`` bool [n_eval], ``greedy_tokens`` int
        [n_eval], ``greedy_cut`` bool [n_eval] (cut at max_new_tokens), ``recall_correct``
        bool [n_test, eval_samples], ``sample_tokens`` and ``sample_cut`` [n_test, eval_samples].
        ``cached``: through the disk cache (the initial policy only)."""
    from . import cache, evaluate, sampling
    from .tasks import load_task

    task, source, _ = params.task_setting()
    test = load_task(task, "test", params.n_eval, source)
    recall = load_task(task, "test", params.n_test, source)
    s = sampling.make_sampler(params.backend, model, tok, batch_size=params.batch_size)
    sample = cache.cached_candidates if cached else evaluate.sample_candidates
    greedy = sample(s, test, tok, k=1, temperature=0.0, max_new_tokens=params.max_new_tokens,
                    seed=params.seed)
    cands = sample(s, recall, tok, k=params.eval_samples, temperature=params.temperature,
                   max_new_tokens=params.max_new_tokens, top_p=params.top_p, seed=params.seed)
    return {"greedy_texts": [g.texts[0] for g in greedy.generations],
            "greedy_correct": greedy.correct[:, 0].tolist(),
            "greedy_tokens": [g.num_tokens[0] for g in greedy.generations],
            "greedy_cut": [not g.finished[0] for g in greedy.generations],
            "recall_correct": cands.correct.tolist(),
            "sample_tokens": [g.num_tokens for g in cands.generations],
            "sample_cut": [[not f for f in g.finished] for g in cands.generations]}


def evaluate_initial(params: Any) -> dict[str, Any]:
    """:func:`evaluate_policy` of the initial policy (its samples shared through the disk cache
    with notebooks 02 and 07)."""
    from .models import load_policy

    model, tok = load_policy(params.model_name, device=params.device, dtype=params.dtype)
    return evaluate_policy(model, tok, params, cached=True)


def evaluate_after(cfg: LoopConfig, preset: str, iteration: int, params: Any) -> dict[str, Any]:
    """:func:`evaluate_policy` of the run's policy after ``iteration`` (0: the SFT policy; 1:
    after DPO), rebuilt from its checkpoints."""
    model, tok = loop.policy_after(cfg, loop.run_dir(cfg, preset), iteration)
    return evaluate_policy(model, tok, params)


def n_grid(params: Any) -> list[int]:
    """The N of Recall@N: those of ``n_grid`` up to ``eval_samples``."""
    return [n for n in params.n_grid if n <= params.eval_samples] or [1]


def stage_row(name: str, ev: Mapping[str, Any], grid: Sequence[int]) -> dict[str, Any]:
    """A stage's row of the table: greedy accuracy, answer length, share cut, Recall@N."""
    per_n = per_problem_recall(np.array(ev["recall_correct"], dtype=bool), grid)
    return {"stage": name, "greedy": float(np.mean(ev["greedy_correct"])),
            "tokens": float(np.mean(ev["greedy_tokens"])), "cut": float(np.mean(ev["greedy_cut"])),
            **{f"R@{n}": float(v.mean()) for n, v in per_n.items()}}


def comparisons(evals: Mapping[str, Mapping[str, Any]]) -> dict[tuple[str, str], PairedStats]:
    """Each stage against the one before and SFT -> DPO against init, paired over the same
    test problems: ``{(a, b): a minus b}``."""
    score = {k: np.array(v["greedy_correct"], dtype=float) for k, v in evals.items()}
    pairs_ = [("SFT", "init"), ("SFT -> DPO", "SFT"), ("SFT -> DPO", "init")]
    return {(a, b): paired_stats(score[b], score[a]) for a, b in pairs_ if a in score and b in score}


# --------------------------------------------------------------------------- training curves
def curves(rows: Sequence[Mapping[str, Any]], epochs: int) -> dict[str, Any]:
    """Per optimizer step: ``sft_loss`` (empty when the SFT checkpoint came from an older run
    that did not keep it), and for the DPO round (``epochs`` passes) ``loss``, ``margin``,
    ``chosen``/``rejected`` (the policy's log-probs, summed over a response's tokens) and
    ``chosen_ref``/``rejected_ref`` (the reference's), each a list over steps, with
    ``steps_per_epoch``. Empty DPO lists when the round did not train."""
    sft, dpo = rows[0], (rows[1] if len(rows) > 1 else {})
    out: dict[str, Any] = {"sft_loss": list(sft.get("sft_losses") or []),
                           "loss": list(dpo.get("losses") or [])}
    for key, name in (("margins", "margin"), ("chosen_logps", "chosen"),
                      ("rejected_logps", "rejected"), ("chosen_ref_logps", "chosen_ref"),
                      ("rejected_ref_logps", "rejected_ref")):
        out[name] = list(dpo.get(key) or [])
    out["steps_per_epoch"] = max(1, len(out["loss"]) // max(1, epochs))
    return out


def drift(c: Mapping[str, Any]) -> dict[str, float]:
    """How far the policy moved on its training pairs, from the DPO curves ``c``
    (:func:`curves`): over the last epoch's steps, the mean of ``log pi - log pi_ref`` for the
    chosen and for the rejected responses (nats, summed over a response's tokens), of the
    margin and of the loss; and the first step's loss and margin."""
    k = max(1, min(c["steps_per_epoch"], len(c["loss"])))
    last = slice(len(c["loss"]) - k, len(c["loss"]))
    d_c = np.subtract(c["chosen"], c["chosen_ref"])[last]
    d_r = np.subtract(c["rejected"], c["rejected_ref"])[last]
    return {"chosen": float(d_c.mean()), "rejected": float(d_r.mean()),
            "margin": float(np.mean(c["margin"][last])), "loss": float(np.mean(c["loss"][last])),
            "loss_first": float(c["loss"][0]), "margin_first": float(c["margin"][0]),
            "last_steps": k}


def shares(evals: Mapping[str, Mapping[str, Any]]) -> dict[str, dict[str, float]]:
    """Per stage: the greedy answers' mean length (``tokens``) and share cut at max_new_tokens
    (``cut``), each with its standard error over problems."""
    out = {}
    for name, ev in evals.items():
        t = np.asarray(ev["greedy_tokens"], dtype=float)
        c = np.asarray(ev["greedy_cut"], dtype=float)
        out[name] = {"tokens": float(t.mean()), "tokens_se": _se(t), "cut": float(c.mean()),
                     "cut_se": _se(c)}
    return out


def _se(x: np.ndarray) -> float:
    """Standard error of a mean over problems (``[P]``); 0 for one problem."""
    return float(x.std(ddof=1) / np.sqrt(x.size)) if x.size > 1 else 0.0


# --------------------------------------------------------------------------- in words
def movement(d: Mapping[str, float]) -> str:
    """What the chosen and rejected log-probs did (:func:`drift`), in one clause."""
    c, r = d["chosen"], d["rejected"]
    if c < 0 and r < 0:
        return ("both fell, and the margin grew only because the rejected responses fell "
                "faster; probability left the training pairs altogether, for responses that are "
                "neither the chosen nor the rejected ones")
    if c >= 0 > r:
        return "the chosen rose and the rejected fell, the way DPO intends"
    if c >= 0 and r >= 0:
        return "both rose, the policy growing surer of all its training responses"
    return "the chosen fell and the rejected rose, against the preference"


def diagnosis(stats: PairedStats | None, d: Mapping[str, float] | None,
              share: Mapping[str, Mapping[str, float]], setting: Mapping[str, Any],
              steps: int, cap: int) -> str:
    """The paragraph that reads the DPO round's curves against its accuracy: the lr and where
    it came from, the loss and margin, the chosen and rejected log-probs, the answers' length
    and truncation, and whether DPO after SFT lowered accuracy beyond 2 SE (a collapse)."""
    out = [f"DPO after SFT trained with beta {setting['beta']:g} at {setting['source']}."]
    if stats is None or d is None:
        return " ".join(out + ["No training prompt had both a right and a wrong sample of the SFT "
                               "policy, so the DPO round did not train."])
    out.append(
        f"Over its {steps} optimizer steps the loss went from {d['loss_first']:.3f} to "
        f"{d['loss']:.3f} and the margin from {d['margin_first']:+.3f} to {d['margin']:+.3f} "
        f"(means over the last {d['last_steps']} steps), while the policy's log-probability "
        f"of the chosen responses moved by {d['chosen']:+.1f} nats and that of the rejected by "
        f"{d['rejected']:+.1f} nats against the reference: {movement(d)}.")
    a, b = share.get("SFT"), share.get("SFT -> DPO")
    if a and b:
        out.append(f"Greedy answers went from {a['tokens']:.1f} to {b['tokens']:.1f} tokens, and "
                   f"the share cut at the {cap}-token cap from {a['cut']:.0%} to {b['cut']:.0%}.")
    ratio = abs(stats.diff) / stats.se if stats.se > 0 else float("inf")
    if stats.verdict == "worse":
        out.append(f"Greedy accuracy fell by {-stats.diff:.3f} ({ratio:.1f} paired SE): the "
                   "collapse remains at this lr. Loss and margin improved while accuracy fell: "
                   "they measure the training pairs, not answers to new problems.")
    elif stats.verdict == "better":
        out.append(f"Greedy accuracy rose by {stats.diff:.3f} ({ratio:.1f} paired SE): no "
                   "collapse at this lr.")
    else:
        out.append(f"Greedy accuracy changed by {stats.diff:+.3f}, within 2 paired SE "
                   f"({2 * stats.se:.3f}): no collapse at this lr, and no gain this run can show.")
    return " ".join(out)


def in_short(stats: PairedStats | None, d: Mapping[str, float] | None,
             setting: Mapping[str, Any]) -> str:
    """:func:`diagnosis` in one sentence, for the closing paragraph."""
    lr = (f"At the study's lr {setting['lr']:g}" if setting["from_study"] else
          f"At the preset's lr {setting['lr']:g} (the study has no choice for DPO after SFT yet)")
    if stats is None or d is None:
        return f"{lr}, DPO after SFT had no pairs to train on."
    did = {"worse": f"lowered greedy accuracy, by {-stats.diff:.3f} (beyond 2 SE): the "
                    "collapse remains",
           "better": f"raised greedy accuracy by {stats.diff:.3f} (beyond 2 SE): no collapse",
           "inconclusive": f"changed greedy accuracy by {stats.diff:+.3f}, within 2 SE: no "
                           "collapse, and no gain shown"}
    return (f"{lr}, DPO after SFT {did[stats.verdict]}. Meanwhile its margin moved to "
            f"{d['margin']:+.3f} and the log-probabilities of its chosen and rejected responses "
            f"moved by {d['chosen']:+.1f} and {d['rejected']:+.1f} nats: {movement(d)}.")


def what_we_saw(stats: Mapping[tuple[str, str], PairedStats], table: Sequence[Mapping[str, Any]],
                summary: str, study_sentence: str = "") -> str:
    """The notebook's closing paragraph from this run's numbers: SFT against the initial policy,
    DPO after SFT against SFT and against the initial policy, the paper's Table 6 verdicts, the
    diagnosis in short (``summary``, :func:`in_short`), and the study's choice."""
    from .findings import claim_verdict, comparison_sentence, finding, paragraph

    acc = {r["stage"]: r["greedy"] for r in table}
    out = []
    if ("SFT", "init") in stats:
        out.append(finding("SFT", "the initial policy", stats[("SFT", "init")], acc["init"],
                           acc["SFT"], "SFT raises greedy accuracy"))
    if ("SFT -> DPO", "SFT") in stats:
        out += [finding("DPO after SFT", "the SFT policy", stats[("SFT -> DPO", "SFT")], acc["SFT"],
                        acc["SFT -> DPO"], "DPO after SFT raises greedy accuracy further"),
                comparison_sentence("SFT -> DPO", "the initial policy", stats[("SFT -> DPO", "init")],
                                    acc["init"], acc["SFT -> DPO"])]
    verdict = {k: claim_verdict(v) for k, v in stats.items()}
    out.append("For the paper's Table 6, where each stage raises greedy accuracy (GSM8K, "
               "Mistral-7B: .466 -> .768 -> .799), this run's SFT step is "
               f"{verdict.get(('SFT', 'init'), 'not run')} and its DPO step "
               f"{verdict.get(('SFT -> DPO', 'SFT'), 'not run')}.")
    return paragraph([*out, summary, study_sentence])


def diagnosis_title(stats: PairedStats | None, d: Mapping[str, float] | None) -> str:
    """The diagnosis figure's title: accuracy's change against the margin and log-probs."""
    if stats is None or d is None:
        return "DPO after SFT did not train: no problem had a right and a wrong sample"
    return (f"DPO after SFT: greedy {stats.diff:+.3f} ({stats.verdict}, 2 SE = {2 * stats.se:.3f}) "
            f"while the margin moved to {d['margin']:+.2f}; log pi vs reference: chosen "
            f"{d['chosen']:+.1f}, rejected {d['rejected']:+.1f} nats")


def flips(evals: Mapping[str, Mapping[str, Any]], params: Any, a: str = "SFT",
          b: str = "SFT -> DPO", n: int = 2) -> str:
    """Up to ``n`` test problems that flipped each way from stage ``a`` to stage ``b``, the
    two greedy answers side by side (:func:`larpo_lite.findings.flipped_examples`)."""
    from .findings import flipped_examples
    from .tasks import load_task

    task, source, _ = params.task_setting()
    test = load_task(task, "test", len(evals[a]["greedy_texts"]), source)
    return flipped_examples([p.question for p in test], [p.answer for p in test],
                            evals[a]["greedy_texts"], evals[b]["greedy_texts"],
                            evals[a]["greedy_correct"], evals[b]["greedy_correct"], n=n)


def read_run(params: Any) -> dict[str, Any]:
    """Notebook 03's run for another notebook (its solutions): the setting, config, rows and
    pairs; under a replay preset the recorded ones (``replay/03_training_stage``), else the
    run folder, read back when 03 has run it (no training), run otherwise."""
    setting = dpo_setting(params)
    cfg = loop_config(params, setting)
    if params.replay:
        from .replay import Recorder

        def never() -> Any:
            raise AssertionError("a replay never runs")

        rec = Recorder("03_training_stage", params)
        return {"setting": setting, "cfg": cfg, "rows": rec("run", never), "pairs": rec("pairs", never)}
    return {"setting": setting, "cfg": cfg, "rows": run(cfg, params.preset),
            "pairs": pairs(cfg, params.preset)}


# --------------------------------------------------------------------------- figures
def _legend_below(ax: Any, handles: Sequence[Any] | None = None, labels: Sequence[str] | None = None,
                  ncol: int = 2) -> None:
    kw = {"loc": "upper center", "bbox_to_anchor": (0.5, -0.2), "ncol": ncol, "fontsize": "small",
          "frameon": False}
    ax.legend(handles, labels, **kw) if handles is not None else ax.legend(**kw)


def accuracy_figure(table: Sequence[Mapping[str, Any]], evals: Mapping[str, Mapping[str, Any]],
                    stats: Mapping[tuple[str, str], PairedStats], grid: Sequence[int]) -> Any:
    """(a) greedy accuracy per stage, 2-SE bars (binomial), each trained stage's paired change
    from the stage before written beside it; (b) Recall@N per stage, 2-SE bars over problems.
    Titles state the findings; legends sit off the data."""
    import matplotlib.pyplot as plt

    from .plotting import dodge, errorbar_series, legend_outside, n_axis, palette, zoom_y

    fig, axes = plt.subplots(1, 2, figsize=(12, 4.6))
    names = [r["stage"] for r in table]
    acc = np.array([r["greedy"] for r in table])
    n = len(next(iter(evals.values()))["greedy_correct"])
    se = np.sqrt(acc * (1 - acc) / n)
    ax = axes[0]
    errorbar_series(ax, list(range(len(names))), acc, 2 * se, label="greedy accuracy", ls="none",
                    ms=8, capsize=5, color="C0")
    for i, name in enumerate(names[1:], start=1):
        st = stats.get((name, names[i - 1]))
        if st is not None:
            ax.annotate(f"{st.diff:+.3f}\n(2 SE {2 * st.se:.3f})", (i, acc[i]), xytext=(10, 0),
                        textcoords="offset points", va="center", fontsize="x-small")
    ax.set_xticks(range(len(names)), names)
    ax.set_xlim(-0.4, len(names) - 0.2)
    zoom_y(ax, np.r_[acc - 2 * se, acc + 2 * se], pad=0.15)
    steps = [f"{a} vs {b}: {stats[(a, b)].diff:+.3f} ({stats[(a, b)].verdict})" for a, b in
             (("SFT", "init"), ("SFT -> DPO", "SFT")) if (a, b) in stats]
    ax.set(ylabel=f"greedy accuracy ({n} test problems)")
    ax.set_title("\n".join(steps), fontsize="medium")
    ax = axes[1]
    bounds = []
    for i, (name, colour) in enumerate(zip(names, palette(len(names)), strict=True)):
        per_n = per_problem_recall(np.array(evals[name]["recall_correct"], dtype=bool), grid)
        y = np.array([per_n[k].mean() for k in grid])
        e = 2 * np.array([_se(per_n[k]) for k in grid])
        errorbar_series(ax, dodge(grid, i, len(names)), y, e, label=name, marker="osD"[i % 3],
                        color=colour)
        bounds += [*(y - e), *(y + e)]
    n_axis(ax, grid)
    zoom_y(ax, bounds)
    top = max(grid)
    at_top = ", ".join(f"{r['stage']} {r[f'R@{top}']:.3f}" for r in table)
    ax.set(xlabel="N (samples)", ylabel="Recall@N (pass@N)")
    ax.set_title(f"Recall@{top}: {at_top}", fontsize="medium")
    legend_outside(ax, fontsize="small")
    fig.tight_layout()
    return fig


def diagnosis_figure(c: Mapping[str, Any], d: Mapping[str, float] | None,
                     share: Mapping[str, Mapping[str, float]], cap: int, title: str) -> Any:
    """The DPO round read step by step: (a) SFT's loss, (b) DPO's loss and margin, (c) the
    policy's log-probs of the chosen and rejected responses (the reference's dotted), (d) their
    change against the reference, (e) the greedy answers' length and (f) the share cut at the
    cap per stage, 2-SE bars. Each panel's title states what it shows in this run."""
    import matplotlib.pyplot as plt
    from matplotlib.ticker import MaxNLocator

    from .plotting import errorbar_series, palette

    fig, axes = plt.subplots(2, 3, figsize=(15, 8.6))
    (a, b, lp), (dl, ln, cut) = axes
    if c["sft_loss"]:
        a.plot(c["sft_loss"], marker="o", ms=3, color="C2")
        a.set_title(f"(a) SFT loss {c['sft_loss'][0]:.2f} -> {c['sft_loss'][-1]:.2f}")
    else:
        a.text(0.5, 0.5, "the SFT checkpoint came from an\nearlier run that kept no curve",
               ha="center", va="center", transform=a.transAxes)
        a.set_title("(a) SFT loss: not kept")
    a.set(xlabel="optimizer step", ylabel="mean token NLL")
    steps = range(len(c["loss"]))
    if d is not None:
        b.plot(steps, c["loss"], marker="o", ms=3, color="C0", label="loss")
        b.axhline(np.log(2), color="0.5", ls=":", lw=1, label="ln 2 (no preference)")
        twin = b.twinx()
        twin.plot(steps, c["margin"], marker="s", ms=3, ls="--", color="C1", label="margin (right)")
        twin.set_ylabel("margin")
        twin.grid(False)
        h1, l1 = b.get_legend_handles_labels()
        h2, l2 = twin.get_legend_handles_labels()
        _legend_below(b, h1 + h2, l1 + l2, ncol=3)
        b.set_title(f"(b) DPO loss {d['loss_first']:.2f} -> {d['loss']:.2f}, "
                    f"margin -> {d['margin']:+.2f}")
        for key, colour in (("chosen", "C2"), ("rejected", "C3")):
            lp.plot(steps, c[key], color=colour, marker="o", ms=3, label=f"{key}: policy")
            lp.plot(steps, c[f"{key}_ref"], color=colour, ls=":", label=f"{key}: reference")
            dl.plot(steps, np.subtract(c[key], c[f"{key}_ref"]), color=colour, marker="o", ms=3,
                    label=key)
        dl.axhline(0, color="0.3", lw=1)
        _legend_below(lp)
        _legend_below(dl)
        lp.set_title("(c) log pi of each step's pairs (nats)")
        dl.set_title(f"(d) vs reference: chosen {d['chosen']:+.1f}, rejected {d['rejected']:+.1f}")
    else:
        for ax in (b, lp, dl):
            ax.text(0.5, 0.5, "no pairs: DPO did not train", ha="center", va="center",
                    transform=ax.transAxes)
    for ax in (a, b, lp, dl):
        ax.set_xlabel("optimizer step")
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    b.set_ylabel("loss")
    lp.set_ylabel("summed log-prob")
    dl.set_ylabel("change from the reference (nats)")
    names = list(share)
    for ax, key, label in ((ln, "tokens", "greedy answer length (tokens)"),
                           (cut, "cut", "share cut at the cap")):
        errorbar_series(ax, names, [share[k][key] for k in names],
                        [2 * share[k][f"{key}_se"] for k in names], bar=True, capsize=5,
                        color=palette(len(names)))
        ax.set_ylabel(label)
    ln.axhline(cap, color="0.3", ls="--", lw=1)
    ln.set_title("(e) answer length: " + " -> ".join(f"{share[k]['tokens']:.1f}" for k in names)
                 + f" (cap {cap})")
    cut.set_title("(f) cut at the cap: " + " -> ".join(f"{share[k]['cut']:.0%}" for k in names))
    fig.suptitle(title, fontsize="medium")
    fig.tight_layout(rect=(0, 0, 1, 0.96))
    return fig


# --------------------------------------------------------------------------- the study
STUDY_COLUMNS = ("name", "objective", "lr", "start", "prompts_per_iter", "epochs",
                 "val_greedy_init", "val_greedy", "diff", "se", "mde", "verdict", "seconds")


def study_summary(params: Any) -> dict[str, Any]:
    """The validation study that chose the step sizes, as :func:`tune.read_choices` finds it
    (this run's ``tuning_validation.json``, else the committed one of the same preset):
    ``found``, and when found ``file``, ``n_val``, ``written``, ``rows`` (one per setting,
    :data:`STUDY_COLUMNS`) and ``chosen`` (per grid); else ``why``."""
    own = params.out_dir("reports", create=False) / "tuning_validation.json"
    for path, record in tune.study_records(params):
        rows = record.get("metrics", {}).get("rows") or []
        if rows:
            return {"found": True, "file": _shown(path), "n_val": record["metrics"].get("n_val"),
                    "written": record.get("written"),
                    "rows": [{k: r.get(k) for k in STUDY_COLUMNS} for r in rows if "diff" in r],
                    "chosen": {k: v for k, v in (record["metrics"].get("chosen") or {}).items()
                               if isinstance(v, dict) and "lr" in v}}
    return {"found": False, "why": f"no validation study of preset {params.preset!r} in "
            f"{_shown(own.parent)}/ or reports/"}


def _shown(path: Path) -> str:
    try:
        return str(path.resolve().relative_to(repo_root()))
    except ValueError:
        return str(path)


def study_figure(summary: Mapping[str, Any]) -> Any:
    """Every setting's paired validation change with 2-SE bars, a diamond on each grid's
    choice; the title counts the settings that moved validation beyond 2 SE."""
    import matplotlib.pyplot as plt

    from .plotting import palette

    rows = summary["rows"]
    chosen = {c["name"] for c in summary["chosen"].values()}
    objectives = list(dict.fromkeys(r["objective"] for r in rows))
    colour = dict(zip(objectives, palette(len(objectives)), strict=True))
    fig, ax = plt.subplots(figsize=(9, 0.42 * len(rows) + 1.6))
    y = np.arange(len(rows))[::-1]
    for yi, r in zip(y, rows, strict=True):
        mine = r["name"] in chosen
        ax.errorbar(r["diff"], yi, xerr=2 * r["se"], fmt="D" if mine else "o", ms=8 if mine else 5,
                    capsize=3, color=colour[r["objective"]])
    ax.axvline(0, color="0.3", ls="--", lw=1)
    ax.set_yticks(y, [f"{r['name']} ({r['start'] or 'initial'})" for r in rows], fontsize="small")
    moved = sum(r["diff"] > 2 * r["se"] for r in rows)
    ax.set(xlabel=f"validation greedy minus the starting policy's (n={summary['n_val']}), 2 paired SE",
           title=f"{moved} of {len(rows)} settings moved validation beyond 2 SE (diamonds: chosen)")
    fig.tight_layout()
    return fig


def study_sentence(summary: Mapping[str, Any], grid: str = GRID) -> str:
    """The study's choice for ``grid`` in one sentence, or that it has none yet."""
    if not summary.get("found"):
        return ""
    c = summary["chosen"].get(grid)
    if not c:
        return (f"The validation study in {summary['file']} holds no choice for {grid} yet; its "
                f"choices so far: " + ", ".join(f"{k} lr {v['lr']:g}" for k, v in
                                                  summary["chosen"].items()) + ".")
    return (f"For {grid} the study chose lr {c['lr']:g}: validation {c['diff']:+.3f} with paired "
            f"SE {c['se']:.3f} over {summary['n_val']} problems ({c['verdict']}).")


# --------------------------------------------------------------------------- the report
def metrics(table: Sequence[Mapping[str, Any]], evals: Mapping[str, Mapping[str, Any]],
            stats: Mapping[tuple[str, str], PairedStats], rows: Sequence[Mapping[str, Any]],
            c: Mapping[str, Any], d: Mapping[str, float] | None,
            share: Mapping[str, Mapping[str, float]], setting: Mapping[str, Any],
            differs: Mapping[str, Any], study: Mapping[str, Any], texts: Mapping[str, str]
            ) -> dict[str, Any]:
    """``reports/03_training_stage.json``'s metrics: the table, comparisons (2.8-SE ``mde``),
    per-problem scores, the training curves, the DPO setting and where it came from, the
    drift of the log-probs, answer length and truncation per stage, the study, the texts."""
    dpo = rows[1] if len(rows) > 1 else {}
    return {"table": [dict(r) for r in table], "comparisons": [s.row(a, b) for (a, b), s in stats.items()],
            "n_eval": len(next(iter(evals.values()))["greedy_correct"]),
            "n_recall": len(next(iter(evals.values()))["recall_correct"]),
            "per_problem": {k: [float(x) for x in v["greedy_correct"]] for k, v in evals.items()},
            "sft_losses": c["sft_loss"], "dpo_losses": c["loss"], "dpo_margins": c["margin"],
            "dpo_logps": {k: c[k] for k in ("chosen", "rejected", "chosen_ref", "rejected_ref")},
            "dpo_pairs": dpo.get("lists", 0), "dpo_skipped_prompts": dpo.get("skipped_prompts"),
            "dpo_truncated_in_pairs": dpo.get("truncated_in_lists"),
            "dpo_setting": {k: setting[k] for k in ("lr", "beta", "from_study", "sft_lr",
                                                    "sft_epochs", "strategy", "source")},
            "differs_from_study": {k: list(v) for k, v in differs.items()},
            "drift": dict(d) if d else None, "answers": {k: dict(v) for k, v in share.items()},
            "tuning_study": dict(study), **dict(texts)}
