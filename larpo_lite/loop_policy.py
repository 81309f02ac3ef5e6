"""The policy a loop run holds, and what it stands on: the task's problems, the device, the
initial policy (the model, or the model after SFT: ``start: sft``), the checkpoints that rebuild
the policy after each round, and sampling in the preset's dtype. :mod:`larpo_lite.loop` builds
its run state on :class:`LoopPolicy` and keeps Algorithm 1's steps there (introduced in
notebooks/07_larpo_loop).

Checkpoints: LoRA runs save each round's adapters (merged into the policy once loaded); full
fine-tuning saves the whole model. A finished round's policy is the initial one with the
checkpoints of rounds ``1..s`` applied in order (:meth:`LoopPolicy.restore`), as a resumed run
and ``loop.policy_after`` rebuild it.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Any

from . import cache as cand_cache
from .evaluate import CandidateSet, sample_candidates
from .jsonl import CorruptFileError
from .loop_config import LoopConfig
from .run_folder import RUN_KINDS, is_main, save_checkpoint, start_over, world
from .tasks import Problem, load_task
from .trainer import RankedList, TrainConfig, balanced_lists_per_step, lora_config, train_ranking

SFT_STATS = "sft_stats.json"  # in the SFT checkpoint: its training's steps and losses


def lora(cfg: LoopConfig) -> dict[str, Any] | None:
    """The run's LoRA settings (``peft.LoraConfig`` keywords); None for full fine-tuning."""
    return lora_config(cfg.lora_r)


def sample_seed(cfg: LoopConfig, s: int) -> int:
    # iteration 1 uses the run's seed itself, so every method shares the initial samples
    return cfg.seed + 7919 * (s - 1)


class LoopPolicy:
    """The policy of a loop run (``model``, ``tok``), its device and the task's problems."""

    def __init__(self, cfg: LoopConfig, out_dir: Path) -> None:
        from . import models

        self.cfg, self.out = cfg, out_dir
        self.models = models
        self.device = models.pick_device(cfg.device)
        if self.device.type == "cuda" and world() > 1:  # one GPU per process
            import torch

            self.device = torch.device("cuda", int(os.environ.get("LOCAL_RANK", "0")))
            torch.cuda.set_device(self.device)
        self.sample_dtype = models.pick_dtype(cfg.dtype, self.device)
        src = cfg.task_source or None
        self.train_problems = load_task(cfg.task, "train", cfg.iterations * cfg.prompts_per_iter, src)
        self.val = load_task(cfg.task, "validation", cfg.n_val, src) if cfg.n_val else []
        # tuning runs evaluate on validation only: the test split is never read
        self.test = load_task(cfg.task, "test", cfg.n_test, src) if cfg.eval_split == "test" else []
        self.model: Any = None
        self.tok: Any = None

    def restore(self, rounds: list[int]) -> None:
        """The policy after ``rounds``: the initial one and the rounds' checkpoints, in order."""
        self.model, self.tok = self.load_initial()
        self.model.larpo_name = self.cfg.model_name
        for s in rounds:
            self.apply_checkpoint(s)

    def load_initial(self) -> tuple[Any, Any]:
        """The policy round 1 starts from (and the reference "initial"): the model, or with
        ``start`` "sft" the model after SFT (trained once, its checkpoint ``ckpt_sft`` kept)."""
        # full fine-tuning keeps float32 master weights; LoRA freezes the base, which can then
        # sit in the training dtype (bf16 for 7B: half the memory)
        dtype = self.cfg.train_dtype if lora(self.cfg) else "float32"
        model, tok = self.models.load_policy(self.cfg.model_name, device=self.device, dtype=dtype)
        if self.cfg.start == "sft":
            model = self._sft(model, tok)
        return model, tok

    def _sft(self, model: Any, tok: Any) -> Any:
        """SFT on the worked solutions of the run's training prompts (notebook 03's first
        stage), or its saved checkpoint; returns the plain (merged) SFT policy."""
        import fcntl

        ck = self.sft_dir()
        ck.parent.mkdir(parents=True, exist_ok=True)
        with open(ck.with_name(ck.name + ".lock"), "w") as lock:  # one SFT per setting
            fcntl.flock(lock, fcntl.LOCK_EX)
            try:
                return self._sft_locked(model, tok, ck)
            finally:
                fcntl.flock(lock, fcntl.LOCK_UN)

    def sft_dir(self) -> Path:
        """Where the SFT checkpoint lives: ``<runs of the preset>/sft/sft-<hash>`` (shared by
        every run with the same model, task, training prompts and SFT settings), or the run's
        own ``ckpt_sft`` outside a preset's runs."""
        cfg = self.cfg
        what = {k: getattr(cfg, k) for k in ("model_name", "task", "task_source", "instruction",
                                             "sft_lr", "sft_epochs", "lora_r", "train_dtype",
                                             "grad_accum", "lists_per_step", "seed")}
        what["prompts"] = cfg.iterations * cfg.prompts_per_iter
        key = hashlib.sha256(json.dumps(what, sort_keys=True).encode()).hexdigest()[:10]
        if self.out.parent.name in RUN_KINDS:
            return self.out.parent.parent / "sft" / f"sft-{key}"
        return self.out / "ckpt_sft"

    def _sft_locked(self, model: Any, tok: Any, ck: Path) -> Any:
        cfg = self.cfg
        if not ck.is_dir():
            from .evaluate import prompts_for

            data = [RankedList(prompt, [p.solution]) for prompt, p in
                    zip(prompts_for(self.train_problems, tok), self.train_problems, strict=True)]
            lps = balanced_lists_per_step(len(data), cfg.lists_per_step,
                                          multiple_of=cfg.grad_accum * world())
            tc = TrainConfig(objective="sft", lr=cfg.sft_lr, epochs=cfg.sft_epochs,
                             lists_per_step=lps, lora=lora(cfg), seed=cfg.seed * 1000,
                             dtype=cfg.train_dtype, grad_accum=cfg.grad_accum,
                             show_progress=cfg.show_progress)
            res = train_ranking(model, tok, data, tc)
            self.sft_stats = {"sft_steps": len(res.logs), "sft_loss_first": res.losses[0],
                              "sft_loss_last": res.losses[-1], "sft_seconds": res.seconds,
                              "sft_losses": [float(x) for x in res.losses]}  # per optimizer step
            if is_main():
                def save(folder: Path) -> None:
                    res.model.save_pretrained(folder)
                    (Path(folder) / SFT_STATS).write_text(json.dumps(self.sft_stats))
                save_checkpoint(ck, save)
            model = res.model.merge_and_unload() if lora(cfg) else res.model
        elif lora(cfg):
            from peft import PeftModel

            model = PeftModel.from_pretrained(model, ck).merge_and_unload()
        else:
            from transformers import AutoModelForCausalLM

            model = AutoModelForCausalLM.from_pretrained(ck, dtype="float32").to(self.device)
        if not hasattr(self, "sft_stats") and (ck / SFT_STATS).is_file():  # loaded: the stats of
            self.sft_stats = json.loads((ck / SFT_STATS).read_text())  # its training (older: none)
        model.larpo_name = cfg.model_name
        model.eval()
        return model

    def apply_checkpoint(self, s: int) -> None:
        """The policy after round ``s``: round ``s``'s checkpoint applied to the current one."""
        ck = self.out / f"ckpt_iter{s}"
        try:
            if lora(self.cfg):
                from peft import PeftModel

                self.model = PeftModel.from_pretrained(self.model, ck).merge_and_unload()
            else:
                from transformers import AutoModelForCausalLM

                self.model = AutoModelForCausalLM.from_pretrained(ck, dtype="float32").to(self.device)
        except Exception as e:  # a cut or missing file: safetensors, OSError, ValueError ...
            raise CorruptFileError(
                ck, None, f"the checkpoint of round {s} cannot be loaded ({type(e).__name__}: {e})",
                f"it was cut or changed after the round finished: {start_over(self.out)}") from e
        self.model.larpo_name = self.cfg.model_name
        self.model.eval()

    def save_unchanged(self, s: int) -> None:
        """A checkpoint for a round without training (a zero LoRA update or the same model)."""
        ck = self.out / f"ckpt_iter{s}"
        if lora(self.cfg):
            from peft import LoraConfig, get_peft_model

            settings = lora(self.cfg) or {}
            peft_model = get_peft_model(self.model, LoraConfig(**settings, task_type="CAUSAL_LM"))
            peft_model.save_pretrained(ck)  # LoRA B starts at zero: merging changes nothing
            self.model = peft_model.merge_and_unload()
            self.model.larpo_name = self.cfg.model_name
        else:
            self.model.save_pretrained(ck)

    def sampler(self, model: Any) -> Any:
        """A sampler of ``model`` in the preset's dtype (a copy when the policy trains in another)."""
        from .sampling import make_sampler

        if next(model.parameters()).dtype != self.sample_dtype:  # sample in the preset's dtype (a copy)
            import copy

            model = copy.deepcopy(model).to(self.sample_dtype)
            model.larpo_name = self.cfg.model_name
        return make_sampler(self.cfg.backend, model, self.tok, batch_size=self.cfg.batch_size)

    def sample_set(self, s: int, problems: list[Problem], k: int, temperature: float) -> CandidateSet:
        """Round ``s``'s ``k`` responses to each of ``problems`` at ``temperature``:
        ``[len(problems), k]`` (round 1 of a run from the initial policy: the candidate cache)."""
        sampler = self.sampler(self.model)
        seed = sample_seed(self.cfg, s)
        kw = dict(k=k, temperature=temperature, max_new_tokens=self.cfg.max_new_tokens,
                  top_p=self.cfg.top_p, seed=seed)
        if s == 1 and self.cfg.start == "initial":  # the initial policy: shared through the disk cache
            return cand_cache.cached_candidates(sampler, problems, self.tok, **kw)
        return sample_candidates(sampler, problems, self.tok, **kw)
