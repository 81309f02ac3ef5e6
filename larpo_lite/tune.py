"""Choosing the learning rate and beta on the validation split (never on test).

    larpo-lite tune --preset default [--lrs 3e-5,1e-4,3e-4] [--betas 0.1]

One round of DPO (pairwise, best vs worst of ``k_train`` samples per training prompt, the
lists notebook 04 trains on, shared through the candidate cache) from the initial policy for
every (lr, beta) of the grid; each trained policy is scored by greedy accuracy on
``n_val`` validation problems (on a reward-scored ``alignment_task``: the reward model's mean
reward, the lists ranked by it too). Writes ``<reports_dir>/tuning_validation.json`` with every
row and the chosen setting (highest validation accuracy; ties go to the smaller lr, then
the smaller beta). The preset's ``lr``/``beta`` are then set by hand from that file.
"""

from __future__ import annotations

import time
from typing import Any

from . import cache, evaluate, lists, models, reports, sampling, trainer
from .rewards import Reranker, reranker_for
from .tasks import load_task


def _alignment_reranker(params: Any) -> Reranker:
    """The reranker of the alignment notebooks' setting (``params.task_setting(alignment=True)``):
    the reward model (on the preset's device, in its dtype) when one is set, else the task's
    verifier."""
    return reranker_for(params.task_setting(alignment=True).reward_model, device=params.device,
                        dtype=params.dtype)


def training_lists(params: Any, strategy: str = "best_worst",
                   reranker: Reranker | None = None) -> tuple[list[trainer.RankedList], int]:
    """The initial policy's ranked candidates for the preset's training prompts, selected
    with ``strategy`` (cached samples: the same lists as notebook 04)."""
    task, source, _ = params.task_setting(alignment=True)
    reranker = reranker or _alignment_reranker(params)
    policy, tok = models.load_policy(params.model_name, device=params.device, dtype=params.dtype)
    s = sampling.make_sampler(params.backend, policy, tok, batch_size=params.batch_size)
    probs = load_task(task, "train", params.n_train_prompts, source)
    pool = cache.cached_candidates(s, probs, tok, k=params.k_train, temperature=params.temperature,
                                   max_new_tokens=params.max_new_tokens, top_p=params.top_p,
                                   seed=params.seed)
    ranked = []
    for g, p in zip(pool.generations, pool.problems, strict=True):
        texts = g.texts + ([p.solution] if params.gold_in_list else [])
        ranked.append(lists.rank_candidates(g.prompt, texts, reranker.score(texts, p.answer, prompt=p.question)))
    return lists.select_lists(ranked, strategy, seed=params.seed)


def tune(params: Any, lrs: list[float], betas: list[float]) -> dict[str, Any]:
    """Validation greedy accuracy of one DPO round for every (lr, beta); see the module doc."""
    if not lrs or not betas:
        raise ValueError("give at least one lr and one beta")
    task, source, _ = params.task_setting(alignment=True)
    reranker = _alignment_reranker(params)
    data, skipped = training_lists(params, reranker=reranker)
    if not data:
        raise ValueError("no training prompt has a better and a worse sample")
    val = load_task(task, "validation", params.n_val, source)
    rows: list[dict[str, Any]] = []
    base, tok = models.load_policy(params.model_name, device=params.device, dtype=params.dtype)
    acc0 = evaluate.greedy_eval(sampling.make_sampler(params.backend, base, tok, batch_size=params.batch_size),
                                val, tok, params.max_new_tokens, reranker=reranker)[0]
    del base
    lps = trainer.balanced_lists_per_step(len(data), params.lists_per_step)
    for lr in lrs:
        for beta in betas:
            t0 = time.perf_counter()
            model, tok = models.load_policy(params.model_name, device=params.device, dtype="float32")
            res = trainer.train_ranking(model, tok, data, trainer.TrainConfig(
                objective="pairwise", beta=beta, lr=lr, epochs=params.epochs, lists_per_step=lps,
                lora=trainer.lora_config(params.lora_r), seed=params.seed))
            s = sampling.make_sampler(params.backend, res.model, tok, batch_size=params.batch_size)
            acc = evaluate.greedy_eval(s, val, tok, params.max_new_tokens, reranker=reranker)[0]
            rows.append({"lr": lr, "beta": beta, "val_greedy": acc, "loss_last": res.losses[-1],
                         "seconds": round(time.perf_counter() - t0, 1)})
            print(rows[-1], flush=True)
    best = max(rows, key=lambda r: (r["val_greedy"], -r["lr"], -r["beta"]))
    return {"split": "validation", "task": task, "n_val": len(val), "pairs": len(data),
            "skipped_prompts": skipped, "val_greedy_init": acc0, "rows": rows,
            "chosen": {"lr": best["lr"], "beta": best["beta"]}}


def run(params: Any, lrs: list[float], betas: list[float]) -> dict[str, Any]:
    """:func:`tune`, written to ``<reports_dir>/tuning_validation.json``."""
    out = tune(params, lrs, betas)
    path = reports.write_metrics("tuning_validation", out, params, params.out_dir("reports"))
    out["path"] = str(path)
    return out
