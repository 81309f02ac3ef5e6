"""Render the "Throughput and memory" table of docs/benchmarks.md from benchmarks/results/*.json.

    .venv/bin/python benchmarks/readme_table.py      # rewrites the block between the markers

(The table lived in the README until it moved to docs/; the file keeps its name.)

Only numbers present in the result files appear; nothing is typed in by hand.
"""

from __future__ import annotations

import json
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results"
TARGET = Path("docs") / "benchmarks.md"
BEGIN, END = "<!-- benchmarks:begin -->", "<!-- benchmarks:end -->"


def sampling_rows() -> list[str]:
    path = RESULTS / "sampling_throughput.json"
    if not path.is_file():
        return []
    data = json.loads(path.read_text())
    rows = []
    for r in data["results"]:
        prefix = {True: ", prompt encoded once", False: ", prompt encoded k times"}.get(
            r.get("share_prefix", False), "")  # rows without the key predate it: k times
        rows.append(f"| HF generate, {r['dtype']}, batch {r['batch_size']}{prefix} "
                    f"({r['prompts']} prompts x {r['k']} samples, <= {r['max_new_tokens']} tokens, "
                    f"run of {r.get('measured', '?')[:16].replace('T', ' ')}) "
                    f"| {r['tokens_per_s']} tokens/s | `{path.relative_to(ROOT)}` |")
    cpu = f"{data['cpu']}, {data['torch_threads']} threads, bf16 units: {data['cpu_has_bf16']}"
    rows.append(f"| (machine) | {cpu} | |")
    return rows


def training_rows() -> list[str]:
    """Our trainer against TRL's DPOTrainer, list of K against all pairs, LoRA against full
    fine-tuning (benchmarks/training_throughput.py)."""
    path = RESULTS / "training_throughput.json"
    if not path.is_file():
        return []
    data = json.loads(path.read_text())
    src = f"`{path.relative_to(ROOT)}`"
    names = {
        "ours_pairwise_lora": "our trainer, DPO, LoRA r=16",
        "trl_dpo_lora": "TRL DPOTrainer, LoRA r=16 (reference log-probs every step)",
        "trl_dpo_lora_precompute_ref": "TRL DPOTrainer, LoRA r=16, precompute_ref_log_probs",
        "ours_pairwise_full": "our trainer, DPO, full fine-tuning",
    }
    rows = []
    for key, label in names.items():
        r = data["results"].get(key)
        if r:
            rows.append(f"| training, {label} ({data['pairs']} pairs, {data['lists_per_step']} per step, "
                        f"{data['threads']} thread) | {r['tokens_per_s']} response tokens/s, "
                        f"{r['s_per_step']} s/step | {src} |")
    sm = data.get("summary", {})
    if "seconds_per_list_listmle" in sm:
        rows.append(f"| one list of K={data['k']}: ListMLE on the list / DPO on its "
                    f"{data['k'] * (data['k'] - 1) // 2} pairs | {sm['seconds_per_list_listmle']} s / "
                    f"{sm['seconds_per_list_all_pairs_dpo']} s per list | {src} |")
    return rows


def sampling_default_rows() -> list[str]:
    """The default HF sampler (decode loop) against plain generate, one run
    (benchmarks/sampling_default.py)."""
    path = RESULTS / "sampling_default.json"
    if not path.is_file():
        return []
    data = json.loads(path.read_text())
    s, src = data["settings"], f"`{path.relative_to(ROOT)}`"
    n = data["torch_threads"]
    when = f"run of {data['measured'][:16].replace('T', ' ')}, {n} thread{'s' if n != 1 else ''}"
    work = {"sampling": f"{s['train_prompts']} prompts x {s['k']} samples, T={s['temperature']}",
            "greedy": f"greedy, {s['test_problems']} test problems"}
    names = {"generate": "plain generate (before)", "continuous": "decode loop, rows leave "
             "and join (default)", "drop": "decode loop, rows leave, no refill",
             "generate_static": "plain generate, static cache"}
    rows = []
    for part, label in work.items():
        for option, r in data[part].items():
            rows.append(f"| HF {data['dtype']}, {names.get(option, option)} ({label}, batch "
                        f"{s['batch_size']}, <= {s['max_new_tokens']} tokens, {when}) | "
                        f"{r['tokens_per_s']} tokens/s | {src} |")
    sm = data["summary"]
    rows.append(f"| default sampler over plain generate: sampling / greedy | "
                f"{sm['speedup_sampling']}x / {sm['speedup_greedy']}x | {src} |")
    same = data.get("greedy_vs_generate", {}).get("continuous")
    if same:
        rows.append(f"| greedy answers, default sampler vs plain generate ({same['problems']} "
                    f"problems) | {same['identical_text']} identical, {same['same_final_answer']} "
                    f"same final answer | {src} |")
    return rows


def list_forward_rows() -> list[str]:
    """A list's prompt run once against every candidate as a full sequence, forward + backward
    of one training micro-batch (benchmarks/list_forward.py)."""
    path = RESULTS / "list_forward.json"
    if not path.is_file():
        return []
    data = json.loads(path.read_text())
    st, src = data["settings"], f"`{path.relative_to(ROOT)}`"
    by = {(r["k"], r["share_prompt"]): r for r in data["results"]}
    rows = []
    for k in sorted({r["k"] for r in data["results"]}):
        shared, unshared = by[(k, True)], by[(k, False)]
        rows.append(
            f"| training, one list of K={k}, prompt once / every candidate a full sequence "
            f"(forward + backward, LoRA r={st['lora']['r']}, {data['dtype']}, "
            f"prompt {st['prompt_tokens_mean']} + response {st['response_tokens_mean']} tokens, "
            f"{data['threads']} thread, median of {st['reps']}) | {shared['seconds_per_list']:.2f} s "
            f"/ {unshared['seconds_per_list']:.2f} s per list "
            f"({data['summary'][f'shared_speedup_k{k}']}x) | {src} |")
    rows.append(f"| (machine) | {data['cpu']}, run of {data['when'][:16].replace('T', ' ')} | |")
    return rows


def backend_rows() -> list[str]:
    """HF float32 / bfloat16 against vLLM, one run (benchmarks/sampling_backends.py)."""
    path = RESULTS / "sampling_backends.json"
    if not path.is_file():
        return []
    data = json.loads(path.read_text())
    s, src = data["settings"], f"`{path.relative_to(ROOT)}`"
    rows = []
    order = {"hf": 0, "vllm": 1, "float32": 0, "bfloat16": 1}
    for r in sorted(data["results"], key=lambda r: (order.get(r["backend"], 2),
                                                    order.get(r["dtype"], 2))):
        what = (f"sampling backends: {r['backend']} {r['dtype']} ({s['prompts']} prompts x "
                f"{s['k']} samples, <= {s['max_new_tokens']} tokens, "
                f"{r.get('torch_threads', '?')} thread)")
        if "tokens_per_s" not in r:
            rows.append(f"| {what} | did not run: {r.get('error', '?')[:80]} | {src} |")
            continue
        rows.append(f"| {what} | {r['tokens_per_s']} tokens/s | {src} |")
        agree = r.get("greedy_vs_hf_float32")
        if agree:
            rows.append(f"| greedy answers, {r['backend']} {r['dtype']} vs HF float32 "
                        f"({agree['problems']} problems) | identical text {agree['identical_text']:.0%}, "
                        f"same final answer {agree['same_final_answer']:.0%} | {src} |")
    for w in data.get("weight_refresh", []):
        rows.append(f"| vLLM ({w['dtype']}) new weights after training: in place from memory / "
                    f"from a saved folder (+ save) / fresh engine | {w['in_place_from_memory_s']} s "
                    f"/ {w['in_place_from_folder_s']} s (+ {w['save_folder_s']} s) / "
                    f"{w['fresh_engine_startup_s']} s | {src} |")
    return rows


def memory_rows() -> list[str]:
    """The memory planner against one measured training step (benchmarks/memory_plan.py)."""
    path = RESULTS / "memory_plan.json"
    if not path.is_file():
        return []
    data = json.loads(path.read_text())
    return [f"| training-step peak memory, {r['config']} ({r['lists'] * r['k']} seqs x "
            f"{r['prompt_tokens'] + r['response_tokens']} tokens, {data['device']} "
            f"{data['dtype']}): planned / measured live tensors / measured, default malloc | "
            f"{r['planned_gib']} / {r['measured_gib']} / {r['measured_default_malloc_gib']} GiB "
            f"| `{path.relative_to(ROOT)}` |" for r in data["results"]]


def recall_workers_rows() -> list[str]:
    """07's Recall@N after training: one process against two workers (benchmarks/recall_workers.py)."""
    path = RESULTS / "recall_workers.json"
    if not path.is_file():
        return []
    d = json.loads(path.read_text())
    s = d["seconds"]
    return [f"| 07's Recall@N after training, {len(d['policies'])} policies x {d['problems']} problems "
            f"x {d['samples']} samples: one one-thread process / two one-thread workers "
            f"({d['cpu']}, run of {d['measured'][:16].replace('T', ' ')}) | {s['one_process']} / "
            f"{s['two_workers']} s ({d['speedup']}x; pass@N identical: {d['identical']}) "
            f"| `{path.relative_to(ROOT)}` |"]


def table() -> str:
    rows = (sampling_rows() + sampling_default_rows() + backend_rows() + training_rows()
            + list_forward_rows() + memory_rows() + recall_workers_rows())
    head = ["| what | measured | from |", "|---|---|---|"]
    return "\n".join([BEGIN, *head, *rows, END])


def render(text: str) -> str:
    """``text`` with its block between the markers (or a ``BENCHMARK_TABLE`` placeholder)
    replaced by :func:`table`."""
    if BEGIN in text:
        start, end = text.index(BEGIN), text.index(END) + len(END)
        return text[:start] + table() + text[end:]
    if "BENCHMARK_TABLE" not in text:
        raise ValueError(f"{TARGET} has neither {BEGIN} ... {END} nor BENCHMARK_TABLE to fill")
    return text.replace("BENCHMARK_TABLE", table())


def main() -> None:
    target = ROOT / TARGET
    target.write_text(render(target.read_text()))
    print(table())


if __name__ == "__main__":
    main()
