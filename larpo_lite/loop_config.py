"""What determines a loop run: :class:`LoopConfig` (saved as a run's ``config.json``; its
hash names the run's folder, :func:`larpo_lite.loop.run_dir`), and the two baselines the paper
compares LARPO with, :func:`offline_config` and :func:`iterative_dpo_config`.

Introduced in notebooks/07_larpo_loop. ``to_dict`` leaves out settings at the value they had
before the setting existed, so the runs written before it keep their folders.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field
from typing import Any

from . import lists as L
from .tasks import answers as _answers
from .tasks import has_verifier
from .trainer import RANKING_OBJECTIVES

REFERENCES = ("initial", "behaviour")
STARTS = ("initial", "sft")
EVAL_SPLITS = ("test", "validation")
DEFAULT_STRATEGY = {"pairwise": "best_worst", "contrastive": "top1_bottom3",
                    "lambdarank": "top2_bottom2", "listmle": "top2_bottom2"}
HIGH_T = 1.0  # the temperature of hard-negative tier (3)


@dataclass
class LoopConfig:
    """Everything that determines a loop run (saved to ``config.json``; a resumed run must match).

    Attributes:
        iterations: T, the number of sample -> train rounds.
        prompts_per_iter: M, new training prompts per iteration.
        k: responses sampled per prompt (split across ``temperatures`` for a mix).
        temperatures: the sampling temperature, or a mix such as [1.0, 0.5].
        objective: pairwise, contrastive, lambdarank or listmle.
        strategy: list selection (see :mod:`larpo_lite.lists`); None: the objective's default
            (pairwise best_worst, contrastive top1_bottom3, LambdaRank/ListMLE top2_bottom2).
        negative_tier: None, or a hard-negative tier of ``lists.TIERS``: then the loop samples
            ``k`` responses at ``temperatures[0]`` and ``k`` at 1.0 and trains pairwise on
            (correct, tier negative) pairs.
        memory: current, previous or all (candidate-list memorization).
        reference: "initial" (the starting policy) or "behaviour" (the policy that sampled).
        n_val, n_test: validation and test problems for greedy accuracy.
        eval_samples: samples per test problem for pass@N (0: greedy only).
        task: mini_gsm, gsm8k, math or ultrafeedback (``tasks.load_task``).
        task_source: where a hub task's data comes from (a hub id or local files, see
            ``tasks.load_task``); "" = the task's hub default. Left out of ``to_dict`` when
            empty, so runs without it keep their folders.
        reward_model: an HF reward model (id or folder) as the reranker; "" keeps ``reranker``.
            Required by tasks without a verifier (ultrafeedback), where it also scores the
            evaluation: greedy "accuracy" is then the mean reward, pass@N the best-of-N reward.
        train_dtype, grad_accum: training precision (bf16 autocast; with LoRA the frozen base
            is loaded in that dtype) and micro-batches per step.
        gold_in_list: add the task's worked solution to each prompt's candidates (a sure
            correct response; the smoke preset's untrained model never answers right).
        eval_split: "test" (greedy on ``n_val`` validation and ``n_test`` test problems, pass@N
            on test) or "validation" (greedy and pass@N on ``n_val`` validation problems only;
            the test split is never loaded: for choosing settings). Left out of ``to_dict``
            when "test", so runs without it keep their folders.
        instruction: the answer-format instruction of math prompts; "" keeps
            ``tasks.INSTRUCTION``. Left out of ``to_dict`` when empty.
        start: the policy round 1 starts from: "initial" (the model) or "sft" (the model after
            SFT on the worked solutions of the run's training prompts, at ``sft_lr`` for
            ``sft_epochs``, LoRA as the loop's; notebook 03's SFT). With "sft", round 0 is the
            SFT policy and the reference "initial" means it. ``start`` and ``sft_*`` are left
            out of ``to_dict`` when "initial", so runs without them keep their folders.
    """

    model_name: str = "smollm2-135m-instruct"
    task: str = "mini_gsm"
    task_source: str = ""
    device: str = "auto"
    dtype: str = "auto"
    backend: str = "hf"
    batch_size: int = 64
    iterations: int = 2
    prompts_per_iter: int = 16
    k: int = 4
    temperatures: list[float] = field(default_factory=lambda: [0.7])
    top_p: float = 1.0
    max_new_tokens: int = 48
    objective: str = "pairwise"
    strategy: str | None = None
    negative_tier: str | None = None
    memory: str = "current"
    reference: str = "initial"
    reranker: str = "verifier"
    reward_model: str = ""
    beta: float = 0.1
    lr: float = 1e-4
    epochs: int = 2
    lists_per_step: int = 8
    lora_r: int = 16
    train_dtype: str = "float32"
    grad_accum: int = 1
    n_val: int = 32
    n_test: int = 32
    eval_samples: int = 4
    eval_temperature: float = 0.7
    gold_in_list: bool = False
    eval_split: str = "test"
    instruction: str = ""
    start: str = "initial"
    sft_lr: float = 5e-4
    sft_epochs: int = 3
    seed: int = 0
    show_progress: bool = True

    def validate(self) -> None:
        verified = has_verifier(self.task)  # unknown tasks raise here
        if not verified and not self.reward_model:
            raise ValueError(f"task {self.task!r} has no verifier: set reward_model (an HF reward "
                             "model id or folder) to rank and score its responses")
        if not verified and self.negative_tier is not None:
            raise ValueError("hard-negative tiers sort responses into correct and incorrect: they "
                             f"need a task with a verifier, not {self.task!r}")
        if self.objective not in RANKING_OBJECTIVES:
            raise ValueError(f"unknown objective {self.objective!r}; valid: "
                             f"{', '.join(RANKING_OBJECTIVES)}")
        if self.strategy is not None and self.strategy not in L.STRATEGIES:
            raise ValueError(f"unknown selection strategy {self.strategy!r}; valid: "
                             f"{', '.join(L.STRATEGIES)}")
        if self.negative_tier is not None:
            if self.negative_tier not in L.TIERS:
                raise ValueError(f"unknown hard-negative tier {self.negative_tier!r}; valid: "
                                 f"{', '.join(L.TIERS)}")
            if self.objective != "pairwise":
                raise ValueError("hard-negative tiers train pairwise (objective='pairwise')")
        if self.memory not in L.MEMORY:
            raise ValueError(f"unknown memorization mode {self.memory!r}; valid: "
                             f"{', '.join(L.MEMORY)}")
        if self.reference not in REFERENCES:
            raise ValueError(f"unknown reference {self.reference!r}; valid: {', '.join(REFERENCES)}")
        if self.start not in STARTS:
            raise ValueError(f"unknown start {self.start!r}; valid: {', '.join(STARTS)}")
        if self.start == "sft" and not has_verifier(self.task):
            raise ValueError(f"start 'sft' trains on worked solutions: task {self.task!r} has none")
        if self.start == "sft" and (not math.isfinite(self.sft_lr) or self.sft_lr <= 0
                                    or self.sft_epochs < 1):
            raise ValueError(f"start 'sft' needs a finite sft_lr > 0 and sft_epochs >= 1, got "
                             f"{self.sft_lr} and {self.sft_epochs}")
        for name in ("iterations", "prompts_per_iter", "k", "epochs", "lists_per_step"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")
        self._check_numbers()
        if self.eval_split not in EVAL_SPLITS:
            raise ValueError(f"unknown eval_split {self.eval_split!r}; valid: {', '.join(EVAL_SPLITS)}")
        if self.eval_split == "validation" and self.n_val < 1:
            raise ValueError("eval_split 'validation' evaluates on the n_val validation problems: "
                             "set n_val >= 1")
        L.split_k(self.k, self.temperatures)
        if self.task == "mini_gsm" and self.iterations * self.prompts_per_iter > 1000:
            raise ValueError("iterations * prompts_per_iter exceeds the 1000 train problems")

    def _check_numbers(self) -> None:
        """Finite numbers in range (``inf`` passes every lower bound; NaN no comparison)."""
        from .config import MAX_NEW_TOKENS

        floats = {"lr": self.lr, "beta": self.beta, "top_p": self.top_p,
                  "eval_temperature": self.eval_temperature,
                  **{f"temperatures[{i}]": t for i, t in enumerate(self.temperatures)}}
        for name, v in floats.items():
            if not math.isfinite(v):
                raise ValueError(f"{name} must be a finite number, got {v}")
        for name in ("lr", "beta"):
            if not getattr(self, name) > 0:
                raise ValueError(f"{name} must be > 0, got {getattr(self, name)}")
        if not 0 < self.top_p <= 1:
            raise ValueError(f"top_p must be in (0, 1], got {self.top_p}")
        if min([*self.temperatures, self.eval_temperature]) < 0:
            raise ValueError(f"temperatures and eval_temperature must be >= 0, got "
                             f"{self.temperatures} and {self.eval_temperature}")
        if not 1 <= self.max_new_tokens <= MAX_NEW_TOKENS:
            raise ValueError(f"max_new_tokens must be in 1..{MAX_NEW_TOKENS}, got {self.max_new_tokens}")
        for name in ("batch_size", "grad_accum"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")
        for name in ("lora_r", "n_val", "n_test", "eval_samples", "seed"):
            if getattr(self, name) < 0:
                raise ValueError(f"{name} must be >= 0, got {getattr(self, name)}")

    @property
    def selection(self) -> str:
        return self.strategy or DEFAULT_STRATEGY[self.objective]

    def to_dict(self) -> dict[str, Any]:
        """The settings that name the run (``config.json``, :func:`larpo_lite.loop.run_dir`),
        with the verifier's version (``tasks.answers.VERIFIER_VERSION``) when it is not 1: a
        verifier that reads answers differently gives new run folders, and the runs written
        under version 1 keep theirs."""
        d = dataclasses.asdict(self)
        d.pop("show_progress")
        for key, default in (("task_source", ""), ("eval_split", "test"), ("instruction", "")):
            if d[key] == default:
                d.pop(key)
        if d["start"] == "initial":
            for key in ("start", "sft_lr", "sft_epochs"):
                d.pop(key)
        if _answers.VERIFIER_VERSION != 1:
            d["verifier_version"] = _answers.VERIFIER_VERSION
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> LoopConfig:
        """The config a run's ``config.json`` (:meth:`to_dict`) was written from."""
        return cls(**{k: v for k, v in d.items() if k != "verifier_version"})

    @classmethod
    def from_params(cls, params: Any, alignment: bool = False, **overrides: Any) -> LoopConfig:
        """The loop set-up of a preset (``larpo_lite.config.Params``), with overrides.

        ``alignment=True`` for the alignment notebooks (06, 07): the task, its source and the
        reward model come from ``params.task_setting(alignment)``."""
        p = params
        task, source, reward_model = p.task_setting(alignment)
        base = dict(
            model_name=p.model_name, task=task, task_source=source, reward_model=reward_model,
            reranker=p.reranker,
            train_dtype=p.train_dtype, grad_accum=p.grad_accum, device=p.device, dtype=p.dtype, backend=p.backend,
            batch_size=p.batch_size, iterations=p.iterations, prompts_per_iter=p.prompts_per_iter,
            k=p.k_train, temperatures=list(p.loop_temperatures), top_p=p.top_p,
            max_new_tokens=p.max_new_tokens, memory=p.memory, reference=p.reference,
            beta=p.beta, lr=p.lr, epochs=p.epochs, lists_per_step=p.lists_per_step,
            lora_r=p.lora_r, n_val=p.n_val, n_test=p.n_eval, eval_samples=p.loop_eval_samples,
            eval_temperature=p.temperature, gold_in_list=p.gold_in_list, seed=p.seed,
        )
        base.update(overrides)
        return cls(**base)


def offline_config(cfg: LoopConfig) -> LoopConfig:
    """The offline-DPO baseline on the same budget: one round, pairwise, on the initial
    policy's samples for all ``iterations * prompts_per_iter`` prompts."""
    return dataclasses.replace(cfg, iterations=1, prompts_per_iter=cfg.iterations * cfg.prompts_per_iter,
                               objective="pairwise", strategy="best_worst", negative_tier=None)


def iterative_dpo_config(cfg: LoopConfig) -> LoopConfig:
    """The iterative-DPO baseline: pairwise, 2 samples per prompt, current iteration only,
    the first sampling temperature."""
    return dataclasses.replace(cfg, objective="pairwise", strategy="best_worst", k=2,
                               temperatures=cfg.temperatures[:1], memory="current",
                               negative_tier=None)
