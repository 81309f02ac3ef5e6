"""Answers to the guide's discussion questions (:data:`larpo_lite.workshop_text.QUESTIONS`),
each the reasoning in a sentence or two and this run's number with its standard error, read from
``reports/<notebook>.json`` when the guide is generated. A number the reports do not hold is
said to be missing, with the file and key that would hold it: never filled in by hand.

Every function of :data:`ANSWERS` takes a :class:`Run` (the reports of one folder) and returns
Markdown.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from pathlib import Path
from typing import Any

from .metrics import MDE_Z, paired_verdict
from .workshop import _rel, _report_file, recorded

Match = str | Callable[[str], bool]


class Run:
    """The reports of one default run (``reports/`` or a copy of it), read for the answers."""

    def __init__(self, folder: str | Path | None = None, params: dict[str, Any] | None = None) -> None:
        self.folder = Path(folder) if folder else None
        self.defaults = params or {}

    def m(self, notebook: str, *keys: Any) -> Any:
        """``metrics[keys...]`` of the notebook's report, or None."""
        return recorded(notebook, *keys, folder=self.folder)

    def param(self, notebook: str, key: str) -> Any:
        """The setting ``key`` the report's run used, else ``params/default.yaml``'s."""
        import json

        path = _report_file(notebook, self.folder)
        if path.is_file():
            value = json.loads(path.read_text()).get("params", {}).get(key)
            if value is not None:
                return value
        return self.defaults.get(key)

    def src(self, notebook: str) -> str:
        return f"`{_rel(_report_file(notebook, self.folder))}`"

    def row(self, notebook: str, a: Match, b: Match) -> dict[str, Any] | None:
        """The first ``metrics.comparisons`` row whose ``a`` and ``b`` match (a name, or a
        predicate on the name)."""
        def ok(m: Match, value: Any) -> bool:
            return m(str(value)) if callable(m) else str(value) == m

        for r in self.m(notebook, "comparisons") or []:
            if isinstance(r, dict) and ok(a, r.get("a")) and ok(b, r.get("b")) \
                    and isinstance(r.get("diff"), int | float) and isinstance(r.get("se"), int | float):
                return r
        return None

    def missing(self, notebook: str, what: str) -> str:
        return (f"*Not recorded yet*: {self.src(notebook)} has no {what}; the next default run "
                "writes it.")


def se_binomial(p: float, n: int | None) -> float | None:
    """The binomial standard error of a proportion ``p`` over ``n`` items."""
    if not n or n < 1:
        return None
    return math.sqrt(max(p * (1 - p), 0.0) / n)


def se_mean(values: Any) -> float | None:
    """The standard error of a mean over problems (``[P]``); None for fewer than two."""
    xs = [float(v) for v in values or []]
    if len(xs) < 2:
        return None
    mean = sum(xs) / len(xs)
    return math.sqrt(sum((x - mean) ** 2 for x in xs) / (len(xs) - 1) / len(xs))


def said_row(row: dict[str, Any]) -> str:
    """``contrastive minus pairwise: +0.080 ± 0.025 (paired SE over 300 problems; MDE 0.071;
    better by the 2-SE rule)``; the MDE is ``MDE_Z`` (2.8) SE."""
    diff, se = float(row["diff"]), float(row["se"])
    over = f" over {row['n']} problems" if row.get("n") else ""
    kind = f", {row['se_kind']}" if row.get("se_kind") else ""
    verdict = row.get("verdict") or paired_verdict(diff, se)
    return (f"{row['a']} minus {row['b']}: **{diff:+.3f} ± {se:.3f}** (paired SE{over}{kind}"
            f"{_seeds_said(row.get('seeds'))}; MDE {MDE_Z * se:.3f}; {verdict} by the 2-SE rule)")


def _seeds_said(seeds: Any) -> str:
    """A comparison row's ``seeds``: one count for both arms, or ``[a's, b's]``."""
    if isinstance(seeds, list | tuple) and len(seeds) == 2:
        return f", {seeds[0]} and {seeds[1]} training seeds"
    if isinstance(seeds, int):
        return ", one training seed" if seeds == 1 else f", {seeds} training seeds"
    return ""


def _last(d: dict | None) -> str | None:
    return list(d)[-1] if isinstance(d, dict) and d else None


def _from(run: Run, *notebooks: str) -> str:
    return "Source: " + ", ".join(run.src(nb) for nb in notebooks) + "."


# --------------------------------------------------------------------------- 01
def list_vs_greedy(run: Run) -> str:
    nb = "01_ir_analogy"
    why = ("Sampling reaches answers the model gives real probability without ranking them first, "
           "as a retriever ranks relevant passages below rank 1; greedy decoding only ever returns "
           "the top one.")
    row = run.row(nb, lambda a: a.startswith("list of"), "greedy")
    if row is None:
        return f"{why} {run.missing(nb, 'paired comparison of the list against greedy decoding')}"
    return f"{why} This run: {said_row(row)}. {_from(run, nb)}"


def verifier_vs_majority(run: Run) -> str:
    nb = "01_ir_analogy"
    why = ("Neither transfers as it is: the verifier is an oracle that needs a gold answer, which "
           "open-ended prompts lack, and majority vote needs answers that agree exactly, which free "
           "text rarely does. A learned reward model replaces both (notebook 08), and its errors "
           "become the policy's targets.")
    bon = run.m(nb, "best_of_n") or {}
    n = _last(bon.get("verifier"))
    if n is None or n not in (bon.get("majority") or {}):
        return f"{why} {run.missing(nb, 'best_of_n for the verifier and majority vote')}"
    v, mv = float(bon["verifier"][n]), float(bon["majority"][n])
    problems = run.param(nb, "n_test")
    sv, sm = se_binomial(v, problems), se_binomial(mv, problems)
    if sv is None or sm is None:
        return f"{why} This run at N = {n}: verifier {v:.3f}, majority vote {mv:.3f}. {_from(run, nb)}"
    return (f"{why} This run at N = {n}: verifier **{v:.3f} ± {sv:.3f}**, majority vote **{mv:.3f} ± "
            f"{sm:.3f}** (binomial SE over {problems} problems); the gap, {v - mv:+.3f}, is what a "
            f"better label-free reranker could recover. {_from(run, nb)}")


def look_alike(run: Run) -> str:
    why = ("A response that follows the right steps and slips once (a wrong operation, a copied "
           "number): the model scores it close to a right one, the verifier marks it wrong. These "
           "are the hard negatives of notebook 05: the policy's own wrong answers.")
    return _hardest_vs_easiest(run, why, "Trained on them, against unrelated negatives:")


# --------------------------------------------------------------------------- 02
def pass_at_k_noise(run: Run) -> str:
    nb = "02_recall_at_n"
    why = ("Both have the right mean. 'One of the first k is right' scores each problem on one "
           "subset of k samples and throws the other n - k away; the unbiased estimator averages "
           "over every subset of k of the n samples, so its variance is smaller.")
    t = run.param(nb, "temperature")
    recall = run.m(nb, "recall") or {}
    key = next((k for k in recall if t is not None and math.isclose(float(k), float(t))), next(iter(recall), None))
    if key is None:
        return f"{why} {run.missing(nb, 'recall at the evaluation temperature')}"
    per = run.m(nb, "per_problem_recall", key) or {}
    ses = run.m(nb, "recall_se", key) or {}
    parts = []
    for n in (next(iter(recall[key])), _last(recall[key])):
        se = ses.get(n) if isinstance(ses, dict) else None
        se = se if se is not None else se_mean(per.get(n))
        parts.append(f"pass@{n} **{recall[key][n]:.3f}" + (f" ± {se:.3f}**" if se is not None else "**"))
    return (f"{why} This run at temperature {key}, unbiased estimator: {', '.join(parts)} (SE over "
            f"problems). {_from(run, nb)}")


def _half_rows(run: Run, nb: str, n: str) -> list[dict[str, Any]]:
    rows = []
    for r in run.m(nb, "comparisons") or []:
        if str(r.get("a", "")).startswith(f"pass@{n} T=") and str(r.get("b", "")).startswith(f"pass@{n} T="):
            rows.append(r)
    return rows


def best_temperatures(run: Run) -> str:
    nb = "02_recall_at_n"
    best = run.m(nb, "best_temperature_by_n") or {}
    if not best:
        return run.missing(nb, "best_temperature_by_n")
    small, large = next(iter(best)), _last(best)
    out = [f"Best at N = {small}: T = {best[small]}; at N = {large}: T = {best[large]}."]
    for n in (small, large):
        out += [f"At N = {n}: {said_row(r)}." for r in _half_rows(run, nb, n)]
    halves = run.m(nb, "crossover_halves")
    if isinstance(halves, dict) and halves:
        out.append("The crossover's halves: " + ", ".join(f"{k} N {v}" for k, v in halves.items()) + ".")
    return " ".join(out) + f" {_from(run, nb)}"


def crossover_power(run: Run) -> str:
    nb = "02_recall_at_n"
    why = ("A model and task where a hotter sampler's diversity pays (many problems solved by a few "
           "samples), more samples per problem, and above all more problems: the paired SE shrinks "
           "as one over the square root of the problems, so a difference d measured with SE s on "
           f"n problems needs about n ({MDE_Z} s / d)^2 problems to be detected 80% of the time.")
    best = run.m(nb, "best_temperature_by_n") or {}
    rows = _half_rows(run, nb, _last(best)) if best else []
    if not rows:
        return f"{why} {run.missing(nb, 'the large-N half of the crossover')}"
    r = rows[0]
    d, se, n = abs(float(r["diff"])), float(r["se"]), r.get("n")
    if not n or d == 0:
        return f"{why} This run's large-N half: {said_row(r)}. {_from(run, nb)}"
    need = math.ceil(n * (MDE_Z * se / d) ** 2)
    return (f"{why} This run's large-N half: {said_row(r)}; at that difference about **{need} "
            f"problems** would be needed (this run: {n}). {_from(run, nb)}")


# --------------------------------------------------------------------------- 03
def _stage_row(table: list[dict[str, Any]], stage: str) -> dict[str, Any] | None:
    return next((r for r in table if r.get("stage") == stage), None)


def sft_negatives(run: Run) -> str:
    nb = "03_training_stage"
    why = ("None that it samples: SFT is maximum likelihood on gold responses, and the softmax over "
           "the vocabulary makes every other token a negative at each step, as the other passages "
           "of a batch are for a dense retriever. It trains the retriever directly, so it can lift "
           "Recall@N at every N.")
    row = run.row(nb, "SFT", "init")
    if row is None:
        return f"{why} {run.missing(nb, 'paired comparison of SFT against the initial policy')}"
    out = f"{why} This run, greedy accuracy: {said_row(row)}."
    table = run.m(nb, "table") or []
    init, sft = _stage_row(table, "init"), _stage_row(table, "SFT")
    if init and sft:
        rs = [k for k in init if k.startswith("R@") and k in sft]
        if rs:
            out += (f" {rs[-1]}: {init[rs[-1]]:.3f} -> {sft[rs[-1]]:.3f} on {run.m(nb, 'n_recall')} problems "
                    "(their 2-SE bars are in the notebook's figure).")
    return f"{out} {_from(run, nb)}"


def dpo_usable(run: Run) -> str:
    nb = "03_training_stage"
    why = ("Only the prompts at the edge of the model's ability, the ones it sometimes solves. A "
           "weak model's hardest prompts (all samples wrong) never make a pair, so DPO cannot teach "
           "what the model cannot yet sample; SFT's gold answers can.")
    pairs, skipped = run.m(nb, "dpo_pairs"), run.m(nb, "dpo_skipped_prompts")
    if not isinstance(pairs, int) or not isinstance(skipped, int) or pairs + skipped == 0:
        return f"{why} {run.missing(nb, 'dpo_pairs and dpo_skipped_prompts')}"
    total = pairs + skipped
    share = pairs / total
    se = se_binomial(share, total)
    out = (f"{why} This run: {pairs} pairs from {total} prompts, {skipped} skipped; usable share "
           f"**{share:.3f} ± {se:.3f}** (binomial SE).")
    cut = run.m(nb, "dpo_truncated_in_pairs")
    if isinstance(cut, int | float):
        out += f" Pairs with a response cut at the length cap: {cut}."
    return f"{out} {_from(run, nb)}"


def dpo_failure(run: Run) -> str:
    nb = "03_training_stage"
    why = ("The loss and the margin are measured on the training pairs and only ask that the chosen "
           "log-ratio beat the rejected one; accuracy is greedy decoding on new problems. Both "
           "log-probabilities can fall, the rejected one faster: the margin grows while probability "
           "moves to responses the policy was never shown.")
    row = run.row(nb, "SFT -> DPO", "SFT")
    if row is None:
        return f"{why} {run.missing(nb, 'paired comparison of SFT -> DPO against SFT')}"
    out = f"{why} This run: {said_row(row)}."
    losses, margins = run.m(nb, "dpo_losses") or [], run.m(nb, "dpo_margins") or []
    if losses and margins:
        out += (f" Over {len(losses)} steps the loss went from {losses[0]:.3f} to {losses[-1]:.3f} and the "
                f"margin from {margins[0]:+.3f} to {margins[-1]:+.3f} (training pairs, no SE).")
    d = run.m(nb, "drift")
    if isinstance(d, dict) and "chosen" in d and "rejected" in d:
        out += (f" Over the last epoch the chosen responses' log-ratio to the reference averaged "
                f"{d['chosen']:+.2f} nats and the rejected ones' {d['rejected']:+.2f}.")
    return f"{out} {_from(run, nb)}"


# --------------------------------------------------------------------------- 04
def _objective_rows(run: Run, nb: str, baseline: str) -> list[dict[str, Any]]:
    return [r for r in run.m(nb, "comparisons") or []
            if r.get("b") == baseline and r.get("a") not in ("init", baseline)
            and isinstance(r.get("diff"), int | float) and isinstance(r.get("se"), int | float)]


def listwise_vs_pairwise(run: Run) -> str:
    nb = "04_ranking_losses"
    why = ("The middle of the list adds more wrong answers to push down (more negatives, as a "
           "retriever gains from in-batch negatives) and more right ones to hold up. With a binary "
           "verifier the order among equally labelled responses is sampling order: a loss that "
           "ranks within ties learns noise, so the trainer passes the labels.")
    rows = _objective_rows(run, nb, "pairwise")
    if not rows:
        return f"{why} {run.missing(nb, 'paired comparisons against pairwise')}"
    return f"{why} This run, on the same lists: " + "; ".join(said_row(r) for r in rows) + f". {_from(run, nb)}"


def start_losses(run: Run) -> str:
    nb = "04_ranking_losses"
    why = ("At gamma = 0 every softmax is uniform: pairwise starts at ln 2, contrastive at the log of "
           "the number of candidates it compares, LambdaRank at ln 2 times its weighted pairs, ListMLE "
           "at a sum of logs of the responses left at each position. A loss that starts larger has "
           "larger gradients at the same learning rate, so each objective gets its own step size "
           "from the validation study.")
    curves = run.m(nb, "loss_curves") or {}
    first: dict[str, float] = {}
    for key, values in curves.items():
        obj = str(key).split("/")[0]
        if values and obj not in first:
            first[obj] = float(values[0])
    if not first:
        return f"{why} {run.missing(nb, 'loss_curves')}"
    settings = run.m(nb, "settings") or {}

    def lr(arm: str) -> str:  # settings are per objective; curves may be named by arm
        for key in (arm, arm.removeprefix("LARPO "), "pairwise" if "DPO" in arm else ""):
            if isinstance(settings.get(key), dict) and isinstance(settings[key].get("lr"), int | float):
                return f" (lr {settings[key]['lr']:g})"
        return ""

    parts = [f"{obj} {v:.3f}{lr(obj)}" for obj, v in first.items()]
    return (f"{why} This run's first-step losses (exact, no sampling noise; ln 2 = {math.log(2):.3f}): "
            + ", ".join(parts) + f". {_from(run, nb)}")


def seed_spread(run: Run) -> str:
    nb = "04_ranking_losses"
    why = ("Separate them with more seeds (the SE then includes training noise), more test problems "
           "(the SE shrinks as one over their square root) or a larger effect (more rounds).")
    by: dict[str, list[float]] = {}
    for r in run.m(nb, "results") or []:
        if isinstance(r.get("greedy"), int | float) and r.get("objective") != "init":
            by.setdefault(str(r["objective"]), []).append(float(r["greedy"]))
    rows = _objective_rows(run, nb, "pairwise")
    if not by or not rows:
        return f"{why} {run.missing(nb, 'results per seed and comparisons against pairwise')}"
    multi = {o: v for o, v in by.items() if len(v) > 1}
    if multi:
        spread = "; ".join(f"{o}: {len(v)} seeds, range {max(v) - min(v):.3f}" for o, v in multi.items())
    else:
        spread = "one seed per objective: the spread over seeds is not measured, and the SE counts problems only"
    gaps = "; ".join(said_row(r) for r in rows)
    return f"{why} This run: {spread}. Against pairwise: {gaps}. {_from(run, nb)}"


# --------------------------------------------------------------------------- 05
def _tiers(run: Run) -> list[str]:
    return [str(t) for t in run.param("05_hard_negatives", "tiers") or []]


def _hardest_vs_easiest(run: Run, why: str, lead: str) -> str:
    """``why``, then 05's paired comparison of its hardest tier against its easiest (or where
    it is missing)."""
    nb = "05_hard_negatives"
    tiers = _tiers(run)
    row = run.row(nb, tiers[-1], tiers[0]) if len(tiers) > 1 else None
    if row is None:
        return f"{why} {run.missing(nb, 'paired comparison of the hardest tier against the easiest')}"
    return f"{why} {lead} {said_row(row)}. {_from(run, nb)}"


def hard_vs_unrelated(run: Run) -> str:
    why = ("The DPO gradient on a rejected response is the model's own probability of preferring it "
           "(the board): an unrelated answer it already scores far below the positive gets almost "
           "no push, its own near-miss the largest.")
    return _hardest_vs_easiest(run, why, "This run:")


def other_prompt(run: Run) -> str:
    nb = "05_hard_negatives"
    why = ("To lower the probability of a well-formed, often correct solution only because it "
           "answers another question: the model may learn to read the question, or to distrust good "
           "reasoning. The verifier cannot tell the two lessons apart.")
    tiers = _tiers(run)
    rows = [r for r in (run.row(nb, tiers[1], tiers[0]) if len(tiers) > 1 else None,
                        run.row(nb, tiers[1], "init") if len(tiers) > 1 else None) if r]
    if not rows:
        return f"{why} {run.missing(nb, 'paired comparisons of the other-prompt tier')}"
    return f"{why} This run: " + "; ".join(said_row(r) for r in rows) + f". {_from(run, nb)}"


def tier_power(run: Run) -> str:
    nb = "05_hard_negatives"
    why = (f"A row can only detect an effect larger than its MDE ({MDE_Z} SE, 80% power); a smaller "
           "one is missed most of the time, so 'inconclusive' means 'this run cannot tell'.")
    names = set(_tiers(run)) | {"init"}
    rows = [r for r in run.m(nb, "comparisons") or []
            if r.get("a") in names and r.get("b") in names and isinstance(r.get("se"), int | float)]
    if not rows:
        return f"{why} {run.missing(nb, 'paired comparisons between tiers')}"
    mdes = [MDE_Z * float(r["se"]) for r in rows]
    found = [r for r in rows if (r.get("verdict") or paired_verdict(r["diff"], r["se"])) != "inconclusive"]
    biggest = max(rows, key=lambda r: abs(float(r["diff"])))
    return (f"{why} This run's {len(rows)} tier rows have MDEs from {min(mdes):.3f} to {max(mdes):.3f}; "
            f"{len(found)} of them lie beyond 2 SE. The largest difference: {said_row(biggest)}. "
            f"{_from(run, nb)}")


# --------------------------------------------------------------------------- 06
def usable_lists(run: Run) -> str:
    nb = "06_candidate_lists"
    why = ("Because p varies between prompts: E[p^k] >= (E p)^k (Jensen), so one overall p "
           "over-predicts the prompts with both a right and a wrong answer; most prompts are all "
           "wrong for a small model, which the per-prompt prediction knows.")
    u = run.m(nb, "usable_lists")
    if not isinstance(u, dict):
        return f"{why} {run.missing(nb, 'usable_lists')}"
    parts = []
    for k, row in u.items():
        if not isinstance(row, dict) or "observed" not in row:
            continue
        se = row.get("observed SE")
        obs = f"**{row['observed']:.3f}" + (f" ± {se:.3f}**" if isinstance(se, int | float) else "**")
        pred = [f"{name} {v:.3f}" for name, v in row.items()
                if name.startswith("predicted") and isinstance(v, int | float)]
        parts.append(f"k = {k}: observed {obs} (" + ", ".join(pred) + ")")
    if not parts:
        return f"{why} {run.missing(nb, 'usable_lists per list size')}"
    p = u.get("p_overall")
    lead = f" Overall p = {p:.3f}." if isinstance(p, int | float) else ""
    return f"{why}{lead} This run: " + "; ".join(parts) + f". {_from(run, nb)}"


def memory(run: Run) -> str:
    nb = "06_candidate_lists"
    why = ("Give the current-lists run the same number of pairs (twice the prompts per round) and "
           "compare it with training on all lists: equal pairs, fresh against old.")
    rows = [r for r in (run.row(nb, "memory/all", "memory/current"), run.row(nb, "memory/previous", "memory/current")) if r]
    if not rows:
        return f"{why} {run.missing(nb, 'paired comparisons of the memory settings')}"
    return f"{why} This run: " + "; ".join(said_row(r) for r in rows) + f". {_from(run, nb)}"


def temperature_mix(run: Run) -> str:
    nb = "06_candidate_lists"
    why = ("A hot sample brings diversity (a right answer the cool ones miss), a cool one a near-"
           "greedy answer, often right: the mix makes more lists usable and its negatives closer to "
           "the policy's own mistakes.")
    row = run.row(nb, lambda a: a.startswith("temperatures/mix"), lambda b: b.startswith("temperatures/single"))
    if row is None:
        return f"{why} {run.missing(nb, 'paired comparison of the temperature mix against one temperature')}"
    return f"{why} This run: {said_row(row)}. {_from(run, nb)}"


# --------------------------------------------------------------------------- 07
def _best_arm(run: Run) -> str | None:
    nb = "07_larpo_loop"
    best = run.m(nb, "best_larpo_on_validation")
    if best:
        return str(best)
    head = [h for h in run.m(nb, "headline") or [] if "DPO" not in str(h)]
    return head[0] if head else None


def paired_vs_binomial(run: Run) -> str:
    nb = "07_larpo_loop"
    why = ("Both arms solve (or both miss) most problems, so their scores are positively correlated; "
           "the paired SE counts only the problems that flip, and two separate binomial SEs leave "
           "that covariance out.")
    best = _best_arm(run)
    row = run.row(nb, best, "init") if best else None
    test = run.m(nb, "test_greedy") or {}
    if row is None or best not in test or "init" not in test or not row.get("n"):
        return f"{why} {run.missing(nb, 'the best arm against the initial policy, with test_greedy')}"
    pa, pb, n = float(test[best]), float(test["init"]), int(row["n"])
    unpaired = math.sqrt(pa * (1 - pa) / n + pb * (1 - pb) / n)
    return (f"{why} This run: {said_row(row)}; from two binomial SEs it would be ± {unpaired:.3f}. "
            f"{_from(run, nb)}")


def chosen_on_validation(run: Run) -> str:
    nb = "07_larpo_loop"
    why = ("Choosing the best of several noisy test numbers reports the luckiest one (the winner's "
           "curse): the chosen arm's test score is biased upward, and the test split no longer "
           "measures anything new. Choose on validation, then read test once.")
    best = _best_arm(run)
    test = run.m(nb, "test_greedy") or {}
    if not best or not test:
        return f"{why} {run.missing(nb, 'best_larpo_on_validation and test_greedy')}"
    larpo = {a: v for a, v in test.items() if a != "init" and "DPO" not in a}
    top = max(larpo, key=larpo.get) if larpo else best
    row = run.row(nb, best, "iterative DPO")
    out = f"{why} This run chose {best} on validation; the best LARPO arm on test is {top}."
    if row:
        out += f" The chosen arm against iterative DPO: {said_row(row)}."
    return f"{out} {_from(run, nb)}"


def table_2(run: Run) -> str:
    nb = "07_larpo_loop"
    rows = [r for r in run.m(nb, "comparisons") or [] if r.get("b") in ("iterative DPO", "offline DPO")
            and isinstance(r.get("se"), int | float)]
    if not rows:
        return run.missing(nb, "comparisons against iterative and offline DPO")
    said = {"better": "reproduced", "worse": "contradicted", "inconclusive": "left open"}
    lines = [f"{said.get(r.get('verdict') or paired_verdict(r['diff'], r['se']), 'left open')}: {said_row(r)}"
             for r in rows]
    return ("Each claim is 'LARPO beats DPO'; a row beyond 2 SE in the paper's direction reproduces "
            "it, beyond 2 SE against contradicts it, within 2 SE leaves it open. This run: "
            + "; ".join(lines) + f". {_from(run, nb)}")


def recall_after(run: Run) -> str:
    nb = "07_larpo_loop"
    why = ("If training only sharpens the top of the list, Recall@1 rises and Recall@N at large N "
           "stays (or falls: less diverse samples); if it makes a better retriever, the whole curve "
           "rises.")
    rec = run.m(nb, "recall_after")
    if not isinstance(rec, dict) or not rec:
        return f"{why} {run.missing(nb, 'recall_after (Recall@N after the last round)')}"
    ses = run.m(nb, "recall_after_se") or {}
    parts = []
    for arm, curve in rec.items():
        if not isinstance(curve, dict) or not curve:
            continue
        cells = []
        for n in (next(iter(curve)), _last(curve)):
            se = (ses.get(arm) or {}).get(n) if isinstance(ses, dict) else None
            cells.append(f"R@{n} {float(curve[n]):.3f}" + (f" ± {float(se):.3f}" if se is not None else ""))
        parts.append(f"{arm}: " + ", ".join(cells))
    note = "" if ses else " (the report carries no SE for these; the notebook's figure has 2-SE bars)"
    return f"{why} This run: " + "; ".join(parts) + f"{note}. {_from(run, nb)}"


# --------------------------------------------------------------------------- 08
def throughput(run: Run) -> str:
    nb = "08_scaling_up"
    why = ("vLLM batches continuously (a finished sequence frees its slot at once) and pages the KV "
           "cache; HF generate pads a batch until its longest sequence ends, and the longest of k "
           "samples grows with k.")
    rows = run.m(nb, "recorded_sampling") or []
    live = run.m(nb, "live") or {}
    parts = [f"{r.get('backend')} {float(r['tokens/s']):.1f}" for r in rows
             if isinstance(r.get("tokens/s"), int | float) and not math.isnan(float(r["tokens/s"]))]
    if isinstance(live.get("tokens_per_s"), int | float):
        parts.append(f"live ({live.get('backend')} {live.get('dtype')}) "
                     f"{float(live['tokens_per_s']):.1f}")
    if not parts:
        return f"{why} {run.missing(nb, 'recorded_sampling')}"
    return (f"{why} Tokens per second (one timed run each, so no SE; the recorded runs and the "
            f"live one were timed apart): " + ", ".join(parts) + f". {_from(run, nb)}")


def memory_plan(run: Run) -> str:
    nb = "08_scaling_up"
    why = ("With LoRA the frozen weights dominate: the policy's, the sampler's copy and the reward "
           "model's when they are resident; the trainable parameters' optimizer states are small. FSDP / ZeRO-3 shard "
           "weights, gradients and optimizer states across the GPUs.")
    plan = run.m(nb, "plan_gpu_7b") or {}
    items = [i for i in plan.get("items") or [] if isinstance(i.get("gib"), int | float)]
    if not items:
        return f"{why} {run.missing(nb, 'plan_gpu_7b')}"
    top = max(items, key=lambda i: i["gib"])
    out = f"{why} This run's plan for the gpu-7b preset: largest part {top['what']} at {top['gib']:.1f} GiB"
    if isinstance(plan.get("total_gib"), int | float):
        out += f" of {plan['total_gib']:.1f} GiB all resident"
    if isinstance(plan.get("gpu_gib"), int | float):
        out += f" on a {plan['gpu_gib']:g} GiB GPU"
    if isinstance(plan.get("phased_gib"), int | float):
        out += f", {plan['phased_gib']:.1f} GiB with the phases taking turns"
    check = [r.get("measured / planned") for r in run.m(nb, "planner_check") or []
             if isinstance(r.get("measured / planned"), int | float)]
    if check:
        out += f"; measured against planned on the CPU: {min(check):.2f} to {max(check):.2f}"
    return f"{out} (an estimate, no SE). {_from(run, nb)}"


def reward_model(run: Run) -> str:
    why = ("Everything the reranker decides: best-of-N (01), the candidate lists' order and which "
           "lists are usable (a reward model always ranks, so no list is skipped), and which "
           "responses are the negatives: a reward model's false positives become positives.")
    bon = run.m("01_ir_analogy", "best_of_n") or {}
    n = _last(bon.get("verifier"))
    if n is None or n not in (bon.get("majority") or {}):
        return f"{why} {run.missing('01_ir_analogy', 'best_of_n')}"
    gap = float(bon["verifier"][n]) - float(bon["majority"][n])
    return (f"{why} How much a reranker matters here: at N = {n} the verifier beats majority vote by "
            f"{gap:+.3f} (notebook 01; each with its SE in the 01 answer above). "
            f"{_from(run, '01_ir_analogy')}")


ANSWERS: dict[str, Callable[[Run], str]] = {f.__name__: f for f in (
    list_vs_greedy, verifier_vs_majority, look_alike, pass_at_k_noise, best_temperatures,
    crossover_power, sft_negatives, dpo_usable, dpo_failure, listwise_vs_pairwise, start_losses,
    seed_spread, hard_vs_unrelated, other_prompt, tier_power, usable_lists, memory,
    temperature_mix, paired_vs_binomial, chosen_on_validation, table_2, recall_after, throughput,
    memory_plan, reward_model)}
