"""The memory planner (larpo_lite.plan) against measured peaks: one training step of our trainer
and loss on randomly initialised Llama-style configurations, float32 on the CPU.

    .venv/bin/python benchmarks/memory_plan.py [--only NAME,...] [--append]

Each configuration runs in a fresh process: resident memory is read after the imports and the
data (baseline), and the peak (``ru_maxrss``) after two ``train_ranking`` steps (objective
listmle, reference log-probs computed first, as always; the second step holds AdamW's state,
as every later one does). measured = peak - baseline, with glibc's heap caching off
(``MALLOC_MMAP_THRESHOLD_=65536``: freed tensors go back to the system, so the peak counts live
tensors) and, for comparison, with the default allocator. planned = the planner's training part
(weights, trainable state with AdamW, activations, logits) with the measured token counts and
no runtime overhead. The activation values autograd saves per token and layer are counted
beside the planner's formula. Writes benchmarks/results/memory_plan.json.
On a GPU the same script would compare ``torch.cuda.max_memory_allocated`` (not done here: no
GPU was available when this was written).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

OUT = Path(__file__).parent / "results" / "memory_plan.json"
GIB = 1024**3

# name: architecture (hidden, intermediate, layers, heads, kv heads), LoRA rank (0 = full
# fine-tuning), lists per step, candidates per list, prompt and response words.
CONFIGS = {
    "small-h256-l4-lora": dict(hidden=256, intermediate=768, layers=4, heads=4, kv_heads=2,
                               lora_r=16, lists=4, k=4, prompt=64, response=32),
    "small-h256-l4-full": dict(hidden=256, intermediate=768, layers=4, heads=4, kv_heads=2,
                               lora_r=0, lists=4, k=4, prompt=64, response=32),
    "mid-h512-l8-lora": dict(hidden=512, intermediate=1536, layers=8, heads=8, kv_heads=4,
                             lora_r=16, lists=4, k=4, prompt=96, response=48),
    "smollm2-135m-arch-lora": dict(hidden=576, intermediate=1536, layers=30, heads=9, kv_heads=3,
                                   lora_r=16, lists=4, k=4, prompt=96, response=48),
    "smollm2-135m-arch-lora-long": dict(hidden=576, intermediate=1536, layers=30, heads=9,
                                        kv_heads=3, lora_r=16, lists=2, k=4, prompt=256,
                                        response=128),
}


def rss_bytes() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def saved_values_per_token_layer(c: dict) -> float:
    """Activation values autograd saves per token and decoder layer (parameters excluded):
    the forward of a 2-layer model minus that of a 1-layer one, LoRA on q/k/v/o."""
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import LlamaConfig, LlamaForCausalLM

    counts = []
    batch, length = 2, c["prompt"] + c["response"]
    for layers in (1, 2):
        torch.manual_seed(0)
        model = LlamaForCausalLM(LlamaConfig(
            vocab_size=1000, hidden_size=c["hidden"], intermediate_size=c["intermediate"],
            num_hidden_layers=layers, num_attention_heads=c["heads"],
            num_key_value_heads=c["kv_heads"]))
        if c["lora_r"]:
            model = get_peft_model(model, LoraConfig(
                r=c["lora_r"], target_modules=["q_proj", "k_proj", "v_proj", "o_proj"]))
        params = {p.untyped_storage().data_ptr() for p in model.parameters()}
        seen: dict[int, int] = {}

        def pack(t, seen=seen, params=params):
            s = t.untyped_storage()
            if s.data_ptr() not in params:
                seen[s.data_ptr()] = s.nbytes()
            return t

        ids = torch.randint(0, 1000, (batch, length))
        with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
            model(input_ids=ids, attention_mask=torch.ones_like(ids), logits_to_keep=1)
        counts.append(sum(seen.values()) / 4 / (batch * length))
    return counts[1] - counts[0]


def run_one(name: str) -> dict:
    """Measure one configuration in this process (called in a subprocess)."""
    import torch
    from transformers import AutoTokenizer, LlamaConfig, LlamaForCausalLM

    from larpo_lite.models import tiny_random_dir
    from larpo_lite.plan import Arch, plan_memory
    from larpo_lite.trainer import RankedList, TrainConfig, train_ranking

    c = CONFIGS[name]
    torch.manual_seed(0)
    tok = AutoTokenizer.from_pretrained(tiny_random_dir())
    prompt = "Question:" + " a" * c["prompt"]
    lists = [RankedList(prompt + f" {i}", [f" {i} {j}" + " b" * c["response"]
                                           for j in range(c["k"])]) for i in range(2 * c["lists"])]
    p_tok = len(tok(lists[0].prompt, add_special_tokens=False)["input_ids"])
    r_tok = len(tok(lists[0].responses[0], add_special_tokens=False)["input_ids"])
    lora = ({"r": c["lora_r"], "lora_alpha": 2 * c["lora_r"], "lora_dropout": 0.0,
             "target_modules": ["q_proj", "k_proj", "v_proj", "o_proj"]} if c["lora_r"] else None)
    cfg = TrainConfig(objective="listmle", lr=1e-4, epochs=1, lists_per_step=c["lists"],
                      lora=lora, show_progress=False, max_length=None, warmup_ratio=0.0)
    base = rss_bytes()
    config = LlamaConfig(vocab_size=len(tok), hidden_size=c["hidden"],
                         intermediate_size=c["intermediate"], num_hidden_layers=c["layers"],
                         num_attention_heads=c["heads"], num_key_value_heads=c["kv_heads"],
                         tie_word_embeddings=True, pad_token_id=tok.pad_token_id,
                         bos_token_id=tok.bos_token_id, eos_token_id=tok.eos_token_id)
    model = LlamaForCausalLM(config)
    model.larpo_name = name
    after_model = rss_bytes()
    t0 = time.perf_counter()
    res = train_ranking(model, tok, lists, cfg)
    seconds = time.perf_counter() - t0
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    arch = Arch(name, c["hidden"], c["intermediate"], c["layers"], c["heads"], c["kv_heads"],
                len(tok), True)
    plan = plan_memory(arch, weight_dtype="float32", lora_r=c["lora_r"], lists_per_step=c["lists"],
                       k_train=c["k"], prompt_tokens=p_tok, max_new_tokens=r_tok, vllm=False,
                       runtime_overhead_gib=0.0)
    planned = plan.training_gib
    measured = (peak - base) / GIB
    return {"config": name, **c, "prompt_tokens": p_tok, "response_tokens": r_tok,
            "act_values_per_token_layer": {"planned": arch.act_values_per_token_layer(c["lora_r"]),
                                           "saved_by_autograd": round(
                                               saved_values_per_token_layer(c))},
            "params_m": round(arch.n_params() / 1e6, 2),
            "trainable_m": round(plan.trainable_params / 1e6, 3),
            "planned_gib": round(planned, 3),
            "planned_items_gib": {i.what: round(i.gib, 3) for i in plan.items if i.gib > 0},
            "measured_gib": round(measured, 3),
            "measured_weights_gib": round((after_model - base) / GIB, 3),
            "measured_over_planned": round(measured / planned, 2),
            "train_seconds": round(seconds, 1), "step_seconds": round(res.logs[-1]["seconds"], 2),
            "loss": round(res.losses[0], 4)}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--only", default=None, help="comma-separated configuration names")
    ap.add_argument("--append", action="store_true", help="keep the other rows in the file")
    ap.add_argument("--one", default=None, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.one:
        print("RESULT " + json.dumps(run_one(args.one)), flush=True)
        return
    names = args.only.split(",") if args.only else list(CONFIGS)
    unknown = [n for n in names if n not in CONFIGS]
    if unknown:
        raise SystemExit(f"unknown configuration(s) {unknown}; valid: {', '.join(CONFIGS)}")
    old = json.loads(OUT.read_text())["results"] if args.append and OUT.is_file() else []
    rows = [r for r in old if r["config"] not in names]
    when = datetime.now(UTC).isoformat(timespec="seconds")
    for name in names:
        row: dict = {}
        # live tensors: every allocation >= 64 KiB is mmapped and returned when freed; then the
        # default allocator, whose heap keeps freed chunks (fragmentation) for comparison
        for mode, env in (("live", {"MALLOC_MMAP_THRESHOLD_": "65536"}), ("default_malloc", {})):
            out = subprocess.run([sys.executable, __file__, "--one", name], capture_output=True,
                                 text=True, check=False, env={**os.environ, **env})
            line = next((x for x in out.stdout.splitlines() if x.startswith("RESULT ")), None)
            if line is None:
                raise SystemExit(f"{name} failed:\n{out.stderr[-3000:]}")
            res = json.loads(line.removeprefix("RESULT "))
            if mode == "live":
                row = res | {"measured": when, "allocator": "MALLOC_MMAP_THRESHOLD_=65536"}
            else:
                row["measured_default_malloc_gib"] = res["measured_gib"]
        print({k: row[k] for k in ("config", "planned_gib", "measured_gib", "measured_over_planned",
                                   "measured_default_malloc_gib", "step_seconds")}, flush=True)
        rows.append(row)
    import torch

    from larpo_lite.reports import environment, write_json

    write_json({"benchmark": "memory_plan", "device": "cpu", "dtype": "float32",
                "torch_threads": torch.get_num_threads(), "environment": environment(),
                "command": "python benchmarks/memory_plan.py [--only ...] [--append]",
                "note": "measured = peak RSS over two training steps minus RSS before the model "
                        "was built (live tensors: MALLOC_MMAP_THRESHOLD_=65536; "
                        "measured_default_malloc_gib: glibc defaults); planned = larpo_lite.plan "
                        "training part (no runtime overhead). CPU, float32, SDPA attention.",
                "results": rows}, OUT)
    print("wrote", OUT)


if __name__ == "__main__":
    main()
