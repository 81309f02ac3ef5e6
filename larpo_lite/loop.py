"""The LARPO loop (Algorithm 1 of the paper): sample -> rank -> merge -> train -> evaluate.

Introduced in notebooks/07_larpo_loop; notebooks/05_hard_negatives and
notebooks/06_candidate_lists run variants of it.

Each iteration ``s = 1..T``:

1. the behaviour policy (the current one) samples ``k`` responses for ``M`` new training
   prompts (prompts ``(s-1)M .. sM-1`` of the mini-GSM train split), at one temperature or
   a mix (``k`` split across them);
2. the reranker (the task's verifier) ranks each prompt's responses;
3. the lists of the objective's selection strategy (or the pairs of a hard-negative tier)
   are merged with earlier iterations' lists (memorization: current / previous / all);
4. reference log-probs are computed once (reference = the initial policy, or the behaviour
   policy; recorded in the results), then the policy is trained on the merged lists;
5. the trained policy is evaluated: greedy accuracy on validation and test (pass@N on test
   after the last round, and for the initial policy), with each problem's score recorded so
   two runs on the same problems compare paired (:func:`per_problem`); ``eval_split=
   "validation"`` (tuning, :mod:`larpo_lite.tune`) evaluates on validation only and never
   loads the test split;
6. a checkpoint is written (LoRA: the adapters of this iteration, merged into the policy
   afterwards; full fine-tuning: the whole model).

Files of a run (``out_dir``): ``config.json``; ``results.jsonl`` (one row per iteration, row 0
the initial policy); ``candidates_iter{s}_T{t}.jsonl`` (``datasets.load_dataset("json", ...)``
reads them); ``lists_iter{s}.jsonl``; ``ckpt_iter{s}/``. A run killed at any point resumes
from its last finished iteration and ends with the same numbers as an uninterrupted one. Each
row of ``results.jsonl`` records the sha256 of the lists and candidates files its round wrote
(``sha256``) and the number of lists (``lists``): a resume refuses files that changed since,
naming them. A finished run is read back without writing anything (a read-only copy works);
:func:`run_locked` (the ``larpo-lite loop`` command) and :func:`run_shared` hold a lock on the
folder while there is work to do, so two commands never do the same run twice.
The initial policy's samples go through :mod:`larpo_lite.cache`, shared by every method.
Runs started with :func:`run_shared` live in a folder named by a hash of their config, so
notebooks share identical runs; delete ``runs/<preset>/loop`` after changing the code.
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import json
import math
import os
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from . import cache as cand_cache
from . import lists as L
from .errors import LarpoLiteError
from .evaluate import CandidateSet, sample_candidates, score_candidates
from .jsonl import CorruptFileError, read_jsonl
from .logprobs import ReferenceCache
from .progress import progress
from .rewards import reranker_for
from .tasks import Problem, has_verifier, load_task
from .trainer import (
    RANKING_OBJECTIVES,
    RankedList,
    TrainConfig,
    balanced_lists_per_step,
    lora_config,
    train_ranking,
)

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
        d = dataclasses.asdict(self)
        d.pop("show_progress")
        for key, default in (("task_source", ""), ("eval_split", "test"), ("instruction", "")):
            if d[key] == default:
                d.pop(key)
        if d["start"] == "initial":
            for key in ("start", "sft_lr", "sft_epochs"):
                d.pop(key)
        return d

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


# --------------------------------------------------------------------------- helpers
def _lora(cfg: LoopConfig) -> dict[str, Any] | None:
    return lora_config(cfg.lora_r)


def _sample_seed(cfg: LoopConfig, s: int) -> int:
    # iteration 1 uses the run's seed itself, so every method shares the initial samples
    return cfg.seed + 7919 * (s - 1)


def _world() -> int:
    return int(os.environ.get("WORLD_SIZE", "1"))


def _is_main() -> bool:
    return int(os.environ.get("RANK", "0")) == 0


def _wait_for(path: Path, what: str, poll: float = 1.0) -> None:
    """A non-main process waits for the main one to write ``path`` (a file, not a collective:
    sampling a round at 7B can outlast a process group's barrier timeout). If the main process
    dies, the launcher ends this one too."""
    t0 = report = time.perf_counter()
    while not path.exists():
        time.sleep(poll)
        if time.perf_counter() - report > 1800:
            report = time.perf_counter()
            print(f"[rank {os.environ.get('RANK')}] waiting for {what} ({path}) for "
                  f"{(report - t0) / 60:.0f} min", flush=True)


def _write_atomic(path: Path, text: str) -> None:
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
    tmp.write_text(text)
    tmp.replace(path)


def _write_lists(path: Path, items: list[RankedList]) -> None:
    _write_atomic(path, "".join(json.dumps({"prompt": x.prompt, "responses": x.responses,
                                            "rewards": x.rewards,
                                            **({"truncated": x.truncated} if x.truncated else {})})
                                + "\n" for x in items))


def _start_over(out: Path) -> str:
    """What to do about a run folder whose files are damaged or changed."""
    return f"start over with --no-resume (resume=False), or delete {out}"


def _read_lists(path: Path) -> list[RankedList]:
    rows = read_jsonl(path, required=("prompt", "responses", "rewards"),
                      remedy=_start_over(path.parent))
    return [RankedList(r["prompt"], r["responses"], r["rewards"], r.get("truncated"))
            for r in rows]


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def _per_problem_fields(split: str, got: CandidateSet) -> dict[str, Any]:
    """The per-problem scores of one greedy evaluation (``got``: k=1 per problem), compact:
    ``{split}_correct`` a string of ``0``/``1`` (verifier) or ``{split}_rewards`` a list of
    floats (reward model); and ``{split}_tokens``, the greedy answers' mean length."""
    out: dict[str, Any] = {f"{split}_tokens": got.mean_tokens()}
    if got.rewards is None:
        out[f"{split}_correct"] = "".join("1" if c else "0" for c in got.correct[:, 0])
    else:
        out[f"{split}_rewards"] = [float(r) for r in got.rewards[:, 0]]
    return out


def per_problem(row: dict[str, Any], split: str = "val") -> np.ndarray:
    """A results row's per-problem greedy scores on ``split`` ("val" or "test"): float
    ``[P]``, 0/1 correctness or rewards, problems in the split's order (for
    :func:`larpo_lite.metrics.paired_stats` between two rows on the same problems).

    Raises:
        KeyError: the row has no per-problem scores for ``split`` (an older results file, or
            a split the run did not evaluate)."""
    if f"{split}_correct" in row:
        return np.array([c == "1" for c in row[f"{split}_correct"]], dtype=np.float64)
    if f"{split}_rewards" in row:
        return np.asarray(row[f"{split}_rewards"], dtype=np.float64)
    raise KeyError(f"round {row.get('iteration')} has no per-problem scores on {split!r}")


@contextlib.contextmanager
def _instruction(text: str) -> Iterator[None]:
    """Math prompts ask with ``text`` (instead of ``tasks.INSTRUCTION``) while the block runs;
    "" changes nothing. Every prompt of a run goes through ``tasks.problem_prompt``, which
    reads the module's instruction, and the candidate cache keys on the prompt strings, so
    samples under one instruction are never reused under another. One run at a time per
    process (the instruction is the module's)."""
    if not text:
        yield
        return
    from .tasks import prompts

    old, prompts.INSTRUCTION = prompts.INSTRUCTION, text
    try:
        yield
    finally:
        prompts.INSTRUCTION = old


def read_results(out_dir: str | Path) -> list[dict[str, Any]]:
    """The rows of ``results.jsonl`` (row 0: the initial policy), [] if none yet.

    Raises:
        CorruptFileError: a damaged line, named with its file and line number."""
    path = Path(out_dir) / "results.jsonl"
    if not path.is_file():
        return []
    return read_jsonl(path, required=("iteration",), remedy=_start_over(path.parent))


def check_round_files(out_dir: str | Path, rows: list[dict[str, Any]]) -> None:
    """Refuse to resume on files that are not those the finished rounds wrote.

    Each round's row records the sha256 of its lists and candidates files (``sha256``) and the
    number of lists (``lists``); rows written before hashes were recorded are checked by
    their number of lists only.

    Raises:
        CorruptFileError: naming the missing or changed file and what to do."""
    out = Path(out_dir)
    remedy = f"the folder changed after the run wrote it: {_start_over(out)}"
    for r in rows:
        s = r["iteration"]
        if s < 1:
            continue
        recorded = r.get("sha256")
        if recorded is None:  # an older results file: the number of lists is all it recorded
            lists_path = out / f"lists_iter{s}.jsonl"
            if not lists_path.is_file():
                raise CorruptFileError(lists_path, None, f"missing (round {s} wrote it)", remedy)
            n = len(_read_lists(lists_path))
            if "lists" in r and n != r["lists"]:
                raise CorruptFileError(lists_path, None, f"{n} lists where round {s} wrote "
                                       f"{r['lists']} (results.jsonl)", remedy)
            continue
        for name, digest in recorded.items():
            path = out / name
            if not path.is_file():
                raise CorruptFileError(path, None, f"missing (round {s} wrote it)", remedy)
            if _sha256(path) != digest:
                raise CorruptFileError(path, None, f"differs from the file round {s} wrote (its "
                                       "sha256 is recorded in results.jsonl)", remedy)


def unrelated_instructions(n: int | None = None) -> list[str]:
    """The committed non-math instructions (data/instructions), for hard-negative tier (1)."""
    from .paths import data_dir
    from .tasks.mini_gsm import read_jsonl

    rows = read_jsonl(data_dir() / "instructions" / "instructions.jsonl")
    texts = [r["instruction"] for r in rows]
    return texts if n is None else texts[:n]


def chat_prompt(text: str, tokenizer: Any) -> str:
    """A plain instruction in the model's chat template (generation prompt added)."""
    if getattr(tokenizer, "chat_template", None):
        return tokenizer.apply_chat_template([{"role": "user", "content": text}], tokenize=False,
                                             add_generation_prompt=True)
    return f"Question: {text}\nAnswer:"


# LoopConfig fields that change what a round's training does to the policy, given its lists
# (sampling, ranking and list settings reach training only through the lists, which the key
# hashes; the number of rounds and the evaluation settings do not reach it at all).
TRAINING_FIELDS = ("model_name", "objective", "reference", "beta", "lr", "epochs", "lists_per_step",
                   "lora_r", "train_dtype", "grad_accum", "seed")


def training_key(cfg: LoopConfig, s: int, data: list[RankedList], previous: str, device: str,
                 world: int = 1) -> str:
    """The sha256 naming one round's training: the training settings, the round (it seeds the
    shuffle), the policy it starts from (``previous``: the key of the round before, or
    ``"initial"``), the device type, the number of processes and every list trained on. Two
    runs whose round ``s`` has the same key train the same policy."""
    conf = cfg.to_dict()
    payload = {"train": {f: conf[f] for f in TRAINING_FIELDS}, "round": s, "previous": previous,
               "device": device, "world": world, "lists": [dataclasses.asdict(x) for x in data]}
    return hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()


def _row_key(folder: Path, row: dict[str, Any], device: str) -> str | None:
    """The training key of a finished round of another run: recorded (``train_key``), or, for a
    first round recorded before keys were, computed from its config and lists file."""
    if row.get("train_key"):
        return row["train_key"]
    if row.get("iteration") != 1 or "train_steps" not in row or row.get("train_processes", 1) != 1:
        return None
    try:
        conf = json.loads((folder / "config.json").read_text())
        other = LoopConfig(**conf)
        data = _read_lists(folder / "lists_iter1.jsonl")
    except (OSError, TypeError, ValueError, LarpoLiteError):
        return None
    return training_key(other, 1, data, "initial", device)


def find_trained(key: str, root: Path, exclude: Path | None = None,
                 device: str = "cpu") -> tuple[Path, dict[str, Any]] | None:
    """A finished round of a run folder under ``root`` (``<root>/*/*/results.jsonl``: the loop and
    tune runs of a preset) whose training has ``key``, with its checkpoint on disk:
    ``(checkpoint folder, its results row)``; None if there is none."""
    for results in sorted(p for kind in RUN_KINDS for p in root.glob(f"{kind}/*/results.jsonl")):
        folder = results.parent
        if exclude is not None and folder.resolve() == exclude.resolve():
            continue
        try:
            rows = read_results(folder)
        except (OSError, ValueError, LarpoLiteError):  # a cut or foreign file: not a match
            continue
        for row in rows:
            ck = folder / f"ckpt_iter{row.get('iteration')}"
            if row.get("iteration", 0) > 0 and ck.is_dir() and _row_key(folder, row, device) == key:
                return ck, row
    return None


RUN_KINDS = ("loop", "tune")  # the folders of a preset's runs: runs/<preset>/<kind>/<run>
REUSED_STATS = ("train_steps", "loss_first", "loss_last", "losses", "ranking_accuracy_last",
                "train_seconds", "train_processes")


class _Run:
    """State of one loop run: the policy, its tokenizer, the list history."""

    def __init__(self, cfg: LoopConfig, out_dir: Path) -> None:
        from . import models

        self.cfg, self.out = cfg, out_dir
        self.models = models
        self.device = models.pick_device(cfg.device)
        if self.device.type == "cuda" and _world() > 1:  # one GPU per process
            import torch

            self.device = torch.device("cuda", int(os.environ.get("LOCAL_RANK", "0")))
            torch.cuda.set_device(self.device)
        self.sample_dtype = models.pick_dtype(cfg.dtype, self.device)
        src = cfg.task_source or None
        self.train_problems = load_task(cfg.task, "train", cfg.iterations * cfg.prompts_per_iter, src)
        self.val = load_task(cfg.task, "validation", cfg.n_val, src) if cfg.n_val else []
        # tuning runs evaluate on validation only: the test split is never read
        self.test = load_task(cfg.task, "test", cfg.n_test, src) if cfg.eval_split == "test" else []
        self._reranker: Any = None
        self.model: Any = None
        self.tok: Any = None
        self.candidate_files: dict[int, list[Path]] = {}  # round -> the candidates files it wrote
        self.previous_key = "initial"  # the training key of the policy's last trained round
        self.reuse = True  # a round trained identically by another run is loaded, not retrained

    @property
    def reranker(self) -> Any:
        """Loaded on first use: under several processes only the main one ranks and scores."""
        if self._reranker is None:
            cfg = self.cfg
            self._reranker = reranker_for(cfg.reward_model, cfg.reranker, device=str(self.device),
                                          dtype=cfg.dtype)
        return self._reranker

    # ---- policy
    def load_initial(self) -> tuple[Any, Any]:
        """The policy round 1 starts from (and the reference "initial"): the model, or with
        ``start`` "sft" the model after SFT (trained once, its checkpoint ``ckpt_sft`` kept)."""
        # full fine-tuning keeps float32 master weights; LoRA freezes the base, which can then
        # sit in the training dtype (bf16 for 7B: half the memory)
        dtype = self.cfg.train_dtype if _lora(self.cfg) else "float32"
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
                                          multiple_of=cfg.grad_accum * _world())
            tc = TrainConfig(objective="sft", lr=cfg.sft_lr, epochs=cfg.sft_epochs,
                             lists_per_step=lps, lora=_lora(cfg), seed=cfg.seed * 1000,
                             dtype=cfg.train_dtype, grad_accum=cfg.grad_accum,
                             show_progress=cfg.show_progress)
            res = train_ranking(model, tok, data, tc)
            self.sft_stats = {"sft_steps": len(res.logs), "sft_loss_first": res.losses[0],
                              "sft_loss_last": res.losses[-1], "sft_seconds": res.seconds}
            if _is_main():
                import shutil

                tmp = ck.with_name(f".{ck.name}.tmp")
                if tmp.exists():
                    shutil.rmtree(tmp)
                res.model.save_pretrained(tmp)
                tmp.replace(ck)
            model = res.model.merge_and_unload() if _lora(cfg) else res.model
        elif _lora(cfg):
            from peft import PeftModel

            model = PeftModel.from_pretrained(model, ck).merge_and_unload()
        else:
            from transformers import AutoModelForCausalLM

            model = AutoModelForCausalLM.from_pretrained(ck, dtype="float32").to(self.device)
        model.larpo_name = cfg.model_name
        model.eval()
        return model

    def sampler(self, model: Any) -> Any:
        from .sampling import make_sampler

        if next(model.parameters()).dtype != self.sample_dtype:  # sample in the preset's dtype (a copy)
            import copy

            model = copy.deepcopy(model).to(self.sample_dtype)
            model.larpo_name = self.cfg.model_name
        return make_sampler(self.cfg.backend, model, self.tok, batch_size=self.cfg.batch_size)

    def apply_checkpoint(self, s: int) -> None:
        ck = self.out / f"ckpt_iter{s}"
        try:
            if _lora(self.cfg):
                from peft import PeftModel

                self.model = PeftModel.from_pretrained(self.model, ck).merge_and_unload()
            else:
                from transformers import AutoModelForCausalLM

                self.model = AutoModelForCausalLM.from_pretrained(ck, dtype="float32").to(self.device)
        except Exception as e:  # a cut or missing file: safetensors, OSError, ValueError ...
            raise CorruptFileError(
                ck, None, f"the checkpoint of round {s} cannot be loaded ({type(e).__name__}: {e})",
                f"it was cut or changed after the round finished: {_start_over(self.out)}") from e
        self.model.larpo_name = self.cfg.model_name
        self.model.eval()

    # ---- sampling
    def sample(self, s: int, problems: list[Problem], k: int, temperature: float) -> CandidateSet:
        sampler = self.sampler(self.model)
        seed = _sample_seed(self.cfg, s)
        kw = dict(k=k, temperature=temperature, max_new_tokens=self.cfg.max_new_tokens,
                  top_p=self.cfg.top_p, seed=seed)
        if s == 1 and self.cfg.start == "initial":  # the initial policy: shared through the disk cache
            return cand_cache.cached_candidates(sampler, problems, self.tok, **kw)
        return sample_candidates(sampler, problems, self.tok, **kw)

    def evaluate(self, s: int) -> dict[str, Any]:
        """Greedy accuracy on validation and test every round; pass@N on test for the
        initial policy and after the last round (sampling is the costly part). Tasks without
        a verifier: ``*_greedy`` is the greedy response's mean reward and ``test_reward@N``
        the mean best-of-N reward, both from the reward model. With ``eval_split
        "validation"`` only validation is evaluated, pass@N included (``val_pass@N``).

        Each split also gets its per-problem scores, in problem order (``val_correct``: a
        string of ``0``/``1``; ``val_rewards`` on reward-scored tasks; read back with
        :func:`per_problem`), and the greedy answers' mean length (``val_tokens``)."""
        cfg = self.cfg
        sampler = self.sampler(self.model)
        initial = cfg.start == "initial"  # the disk cache holds the initial policy's answers only
        row: dict[str, Any] = {}
        for split, probs in (("val", self.val), ("test", self.test)):
            if not probs:
                continue
            kw = dict(k=1, temperature=0.0, max_new_tokens=cfg.max_new_tokens, seed=cfg.seed)
            got = (cand_cache.cached_candidates(sampler, probs, self.tok, **kw) if s == 0 and initial
                   else sample_candidates(sampler, probs, self.tok, **kw))
            got = score_candidates(got, self.reranker)
            row[f"{split}_greedy"] = got.score()
            row.update(_per_problem_fields(split, got))
        if cfg.eval_samples > 0 and s in (0, cfg.iterations):
            split, probs = ("val", self.val) if cfg.eval_split == "validation" else ("test", self.test)
            kw = dict(k=cfg.eval_samples, temperature=cfg.eval_temperature,
                      max_new_tokens=cfg.max_new_tokens, top_p=cfg.top_p, seed=cfg.seed)
            cands = (cand_cache.cached_candidates(sampler, probs, self.tok, **kw) if s == 0 and initial
                     else sample_candidates(sampler, probs, self.tok, **kw))
            grid = [n for n in (1, 2, 4, 8, 16, 32, 64) if n <= cfg.eval_samples]
            row.update({f"{split}_{k}": v for k, v in score_candidates(cands, self.reranker).curve(grid).items()})
        return row

    # ---- one iteration's lists
    def build_lists(self, s: int) -> tuple[list[RankedList], dict[str, Any]]:
        cfg = self.cfg
        m = cfg.prompts_per_iter
        problems = self.train_problems[(s - 1) * m: s * m]
        info: dict[str, Any] = {}
        cut_unrelated: set[str] = set()  # tier (1)'s negatives cut at max_new_tokens
        if cfg.negative_tier is None:
            sets = []
            for t, kt in zip(cfg.temperatures, L.split_k(cfg.k, cfg.temperatures), strict=True):
                sets.append((t, self.sample(s, problems, kt, t)))
            ranked, sampled_scores = [], []
            for i, p in enumerate(problems):
                n_sampled = sum(len(cs.generations[i].texts) for _, cs in sets)
                texts = [x for _, cs in sets for x in cs.generations[i].texts]
                texts += [p.solution] if cfg.gold_in_list else []
                prompt = sets[0][1].generations[i].prompt
                scores = self.reranker.score(texts, p.answer, prompt=p.question)
                sampled_scores.extend(scores[:n_sampled])
                ranked.append(L.rank_candidates(prompt, texts, scores))
            items, counts = L.select_counted(ranked, cfg.selection, seed=cfg.seed * 1000 + s)
            skipped = counts["skipped"]
            info["shortened_lists"] = counts["shortened"]
            if not has_verifier(cfg.task):
                info["sample_reward"] = float(sum(sampled_scores) / max(1, len(sampled_scores)))
        else:
            low_t = cfg.temperatures[0]
            sets = [(low_t, self.sample(s, problems, cfg.k, low_t))]
            if HIGH_T != low_t:
                sets.append((HIGH_T, self.sample(s, problems, cfg.k, HIGH_T)))
            high = sets[-1][1]
            low = sets[0][1]
            tier_items = []
            for i, p in enumerate(problems):
                lo_t, lo_c = low.generations[i].texts, low.correct[i]
                hi_t, hi_c = high.generations[i].texts, high.correct[i]
                tier_items.append(L.TierItem(
                    prompt=low.generations[i].prompt,
                    correct=[x for x, c in zip(lo_t + hi_t, list(lo_c) + list(hi_c), strict=True) if c]
                    + ([p.solution] if cfg.gold_in_list else []),
                    incorrect_high=[x for x, c in zip(hi_t, hi_c, strict=True) if not c],
                    incorrect_low=[x for x, c in zip(lo_t, lo_c, strict=True) if not c],
                    responses=lo_t + hi_t))
            unrelated: list[str] = []
            if cfg.negative_tier == "unrelated":
                instr = unrelated_instructions()
                prompts = [chat_prompt(x, self.tok) for x in instr[:min(m, len(instr))]]
                gens = self.sampler(self.model).generate(
                    prompts, k=1, temperature=low_t, top_p=cfg.top_p,
                    max_new_tokens=cfg.max_new_tokens, seed=_sample_seed(cfg, s))
                unrelated = [g.texts[0] for g in gens]
                cut_unrelated = {g.texts[0] for g in gens if not g.finished[0]}
            items, skipped = L.hard_negative_pairs(tier_items, cfg.negative_tier, unrelated,
                                                   seed=cfg.seed * 1000 + s)
        self.candidate_files[s] = [self.out / f"candidates_iter{s}_T{t}.jsonl" for t, _ in sets]
        for (_, cs), path in zip(sets, self.candidate_files[s], strict=True):
            cand_cache.save_candidates(cs, path)
        info["skipped_prompts"] = skipped
        # a sample cut at max_new_tokens did not end: it trains without an EOS (flagged)
        cut = cut_unrelated | {x for _, cs in sets for g in cs.generations
                               for x, done in zip(g.texts, g.finished, strict=True) if not done}
        for x in items:
            flags = [r in cut for r in x.responses]
            x.truncated = flags if any(flags) else None
        info["truncated_samples"] = sum(not d for _, cs in sets for g in cs.generations
                                        for d in g.finished)
        info["truncated_in_lists"] = sum(sum(x.truncated or []) for x in items)
        if has_verifier(cfg.task):
            info["sample_accuracy"] = float(sum(float(cs.correct.mean()) for _, cs in sets) / len(sets))
        return items, info

    # ---- one iteration's training
    def train(self, s: int, data: list[RankedList]) -> dict[str, Any]:
        """Train round ``s`` on ``data``, or load the same training from another run of this
        preset (:func:`find_trained`: same settings, starting policy and lists); the row
        records ``train_key`` and, when loaded, ``train_reused_from`` and the original's
        training statistics."""
        key = training_key(self.cfg, s, data, self.previous_key, self.device.type, _world())
        self.previous_key = key
        # only among the runs of a preset (runs/<preset>/loop/..., runs/<preset>/tune/...)
        shared = self.out.parent.name in RUN_KINDS
        found = (find_trained(key, self.out.parent.parent, exclude=self.out, device=self.device.type)
                 if self.reuse and shared and _world() == 1 else None)
        if found is not None:
            import shutil

            src, row = found
            ck, tmp = self.out / f"ckpt_iter{s}", self.out / f".ckpt_iter{s}.tmp"
            for path in (tmp, ck):
                if path.exists():
                    shutil.rmtree(path)
            shutil.copytree(src, tmp)
            tmp.replace(ck)
            self.apply_checkpoint(s)
            try:
                where = str(src.parent.relative_to(self.out.parent.parent))
            except ValueError:
                where = str(src.parent)
            return {"train_key": key, "train_reused_from": f"{where} round {row['iteration']}",
                    **{k: row[k] for k in REUSED_STATS if k in row}}
        return {"train_key": key, **self._train(s, data)}

    def _train(self, s: int, data: list[RankedList]) -> dict[str, Any]:
        cfg = self.cfg
        reference = None
        if cfg.reference == "initial" and s > 1:
            init, _ = self.load_initial()
            reference = ReferenceCache(batch_size=16, max_length=512)
            reference.compute(init, self.tok, [(x.prompt, r) for x in data for r in x.responses])
            del init
        lps = balanced_lists_per_step(len(data), cfg.lists_per_step, multiple_of=cfg.grad_accum * _world())
        tc = TrainConfig(objective=cfg.objective, beta=cfg.beta, lr=cfg.lr, epochs=cfg.epochs,
                         lists_per_step=lps, lora=_lora(cfg), seed=cfg.seed * 1000 + s,
                         dtype=cfg.train_dtype, grad_accum=cfg.grad_accum,
                         show_progress=cfg.show_progress)
        import warnings

        with warnings.catch_warnings():  # the few lists left out change with each epoch's shuffle
            warnings.filterwarnings("ignore", message=".*left out of each epoch.*")
            res = train_ranking(self.model, self.tok, data, tc, reference=reference)
        if _is_main():
            import shutil

            ck = self.out / f"ckpt_iter{s}"
            tmp = self.out / f".ckpt_iter{s}.tmp"
            if tmp.exists():
                shutil.rmtree(tmp)
            res.model.save_pretrained(tmp)
            if ck.exists():
                shutil.rmtree(ck)
            tmp.replace(ck)
        self.model = res.model.merge_and_unload() if _lora(cfg) else res.model
        self.model.larpo_name = cfg.model_name
        self.model.eval()
        acc = [r["accuracy"] for r in res.logs if r["accuracy"] is not None]
        return {"train_steps": len(res.logs), "loss_first": res.losses[0], "loss_last": res.losses[-1],
                "losses": [float(x) for x in res.losses],  # per optimizer step
                "ranking_accuracy_last": acc[-1] if acc else None, "train_seconds": res.seconds,
                "train_processes": res.meta["num_processes"]}


def run_loop(cfg: LoopConfig, out_dir: str | Path, resume: bool = True,
             stop_after: int | None = None, reuse: bool = True) -> list[dict[str, Any]]:
    """Run (or resume) the loop; returns the rows of ``results.jsonl``.

    Args:
        cfg: the run's :class:`LoopConfig`.
        out_dir: the run's folder. With ``resume`` and a ``config.json`` there, the run goes
            on from its last finished iteration (a different config is an error); without
            ``resume`` the folder's earlier results are discarded. A folder holding a run's
            files (results, lists, candidates, checkpoints) but no ``config.json`` is refused
            either way (:class:`NotARunFolderError`): nothing the run did not write is deleted.
        stop_after: stop after this iteration (for tests and budgets); None runs all.
        reuse: a round whose training another run of the same preset already did (same
            training settings, starting policy and lists: :func:`training_key`) loads that
            run's checkpoint instead of training again (``train_reused_from`` in its row). The
            tuning study's first rounds, 04's objectives and 07's first rounds share this way.

    Row 0 is the initial policy's evaluation; row ``s`` has the lists, training and
    evaluation of iteration ``s`` and ``reference`` records which reference was used.

    Under ``accelerate launch`` with several processes (``WORLD_SIZE`` > 1) only the main
    process samples, ranks, evaluates and writes files; the others wait for each round's
    lists file, then all train together (DDP: each process a share of every step's lists)
    and hold the same updated policy. ``train_processes`` in each row records how many trained.
    """
    cfg.validate()
    with _instruction(cfg.instruction):
        return _run_loop(cfg, Path(out_dir), resume, stop_after, reuse)


def _run_loop(cfg: LoopConfig, out_dir: Path, resume: bool,
              stop_after: int | None, reuse: bool = True) -> list[dict[str, Any]]:
    out = Path(out_dir)
    conf_path, res_path = out / "config.json", out / "results.jsonl"
    conf_text = json.dumps(cfg.to_dict(), indent=1)
    main, world = _is_main(), _world()
    rows = _rows_to_resume(cfg, out) if resume else _refuse_foreign_files(out)
    last = _last_round(cfg, stop_after)
    if rows and rows[-1]["iteration"] >= last:  # finished already: nothing to load or write
        return rows
    check_round_files(out, rows)
    out.mkdir(parents=True, exist_ok=True)
    state = None
    if world > 1:  # every process has read the same rows before the main one writes anything
        import torch
        from accelerate import PartialState

        from .models import pick_device

        state = PartialState(cpu=pick_device(cfg.device).type == "cpu" and not torch.cuda.is_available())
        state.wait_for_everyone()
    if main:
        if not rows and res_path.exists():
            res_path.unlink()
        if not (conf_path.is_file() and conf_path.read_text() == conf_text):
            _write_atomic(conf_path, conf_text)
    done = [r["iteration"] for r in rows if r["iteration"] > 0]
    if main:  # lists of an unfinished round come from a killed run: they are sampled again
        for s in range(len(done) + 1, cfg.iterations + 1):
            (out / f"lists_iter{s}.jsonl").unlink(missing_ok=True)
    if state is not None:
        state.wait_for_everyone()
    run = _Run(cfg, out)
    run.model, run.tok = run.load_initial()
    run.model.larpo_name = cfg.model_name
    # replay the finished iterations: their checkpoints, in order
    for s in done:
        run.apply_checkpoint(s)
    for r in rows:  # the key of the policy the next round starts from
        if r["iteration"] > 0 and "train_steps" in r:
            run.previous_key = r.get("train_key") or f"unkeyed {out} round {r['iteration']}"
    run.reuse = reuse
    history = [_read_lists(out / f"lists_iter{s}.jsonl") for s in done]
    if not rows and main:
        t0 = time.perf_counter()
        rows.append({"iteration": 0, "reference": cfg.reference, **run.evaluate(0),
                     **getattr(run, "sft_stats", {}), "seconds": time.perf_counter() - t0})
        _write_atomic(res_path, "".join(json.dumps(r) + "\n" for r in rows))
    bar = progress(total=cfg.iterations, initial=len(done), desc=f"loop {cfg.objective}",
                   **({} if cfg.show_progress and main else {"disable": True}))
    for s in range(len(done) + 1, last + 1):
        t0 = time.perf_counter()
        lists_path = out / f"lists_iter{s}.jsonl"
        if main:  # the main process samples, ranks and writes the round's lists ...
            items, info = run.build_lists(s)
            _write_lists(lists_path, items)
        else:  # ... the others read them, then every process trains on them together
            _wait_for(lists_path, f"the lists of round {s}")
            items, info = _read_lists(lists_path), {}
        history.append(items)
        data = L.merge_memory(history, cfg.memory)
        row: dict[str, Any] = {"iteration": s, "reference": cfg.reference, "lists": len(items),
                               "train_lists": len(data), **info}
        if data:
            row.update(run.train(s, data))
        elif main:  # nothing to learn from: the policy stays, the checkpoint is the policy
            row["note"] = "no list had a better and a worse response; no training"
            _save_unchanged(run, s)
        if main:
            row.update(run.evaluate(s))
            row["seconds"] = time.perf_counter() - t0
            row["sha256"] = {p.name: _sha256(p) for p in [lists_path, *run.candidate_files[s]]}
            rows.append(row)
            _write_atomic(res_path, "".join(json.dumps(r) + "\n" for r in rows))
        bar.update(1)
    bar.close()
    if not main:  # return what the main process wrote once it has evaluated the last round
        while not (rows := read_results(out)) or rows[-1]["iteration"] < last:
            time.sleep(1.0)
    return rows


def _last_round(cfg: LoopConfig, stop_after: int | None) -> int:
    return cfg.iterations if stop_after is None else min(stop_after, cfg.iterations)


# What a loop run writes in its folder, after its config.json (written first, before anything
# else, so a folder that holds these without a config.json was not written by a loop run).
_RUN_FILES = ("results.jsonl", "lists_iter*.jsonl", "candidates_iter*.jsonl", "ckpt_iter*")


def _refuse_foreign_files(out: Path) -> list[dict[str, Any]]:
    """[] when ``out`` may hold a new run: it has a ``config.json`` (a run's folder: starting
    over there discards that run's own files), or none of the files a run writes.

    Raises:
        NotARunFolderError: ``out`` holds results, lists, candidates or checkpoints but no
            ``config.json``; a run would delete or mix with them, so none starts there."""
    if (out / "config.json").is_file() or not out.is_dir():
        return []
    found = sorted({p.name for pattern in _RUN_FILES for p in out.glob(pattern)})
    if found:
        shown = ", ".join(found[:4]) + (f" and {len(found) - 4} more" if len(found) > 4 else "")
        raise NotARunFolderError(
            f"{out} holds {shown} but no config.json: these are not files of a loop run (or its "
            "config.json was deleted), so the loop neither resumes nor deletes them; give the run "
            f"another folder (--out), or move those files out of {out} (delete them if they are "
            "not needed)")
    return []


def _rows_to_resume(cfg: LoopConfig, out: Path) -> list[dict[str, Any]]:
    """The rows of the run in ``out`` (read only); [] if it has none. A different config there
    is an error, and so are a run's files without a config (:func:`_refuse_foreign_files`)."""
    conf_path = out / "config.json"
    if not conf_path.is_file():
        return _refuse_foreign_files(out)
    try:
        old = json.loads(conf_path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise CorruptFileError(conf_path, None, f"corrupt JSON ({e})", _start_over(out)) from None
    conf = cfg.to_dict()
    if old != conf:
        diff = {k: (old.get(k), v) for k, v in conf.items() if old.get(k) != v}
        raise ValueError(f"{out} holds a run with a different config {diff}; use another "
                         "folder or resume=False")
    rows = read_results(out)
    for row in rows:
        for split in ("val", "test"):
            if (f"{split}_greedy" in row and f"{split}_correct" not in row
                    and f"{split}_rewards" not in row):
                raise OutdatedRunError(
                    f"{out / 'results.jsonl'}: round {row['iteration']} has no per-problem "
                    f"scores on {split!r} (written by an earlier larpo-lite, before paired "
                    f"comparisons); {_start_over(out)}")
    return rows


def finished_rows(cfg: LoopConfig, out_dir: str | Path,
                  stop_after: int | None = None) -> list[dict[str, Any]] | None:
    """The rows of a run in ``out_dir`` that has finished (up to ``stop_after``), read without
    writing anything or taking a lock; None when there is work left (or no run yet).

    Raises:
        ValueError: the folder holds a run with another config, or a damaged file."""
    cfg.validate()
    rows = _rows_to_resume(cfg, Path(out_dir))
    return rows if rows and rows[-1]["iteration"] >= _last_round(cfg, stop_after) else None


class OutdatedRunError(LarpoLiteError):
    """A run folder written before the loop recorded per-problem scores: it cannot be compared
    paired, so it is refused rather than read back."""


class NotARunFolderError(LarpoLiteError):
    """A folder holding files a loop run writes (results, lists, checkpoints) but no
    ``config.json``: not a run's folder, so nothing there is resumed, replaced or deleted."""


class RunInUseError(LarpoLiteError):
    """Another command holds the lock of a run folder, and this one may not wait for it."""


def run_locked(cfg: LoopConfig, out_dir: str | Path, resume: bool = True,
               stop_after: int | None = None) -> list[dict[str, Any]]:
    """:func:`run_loop` holding an exclusive lock on the folder (``<folder>.lock`` beside it).

    A finished run is read back first, with no lock and no write (a read-only copy of a run
    prints its results). When another command holds the lock, this one says so and waits,
    then reads back (or resumes) what the other left: the work is never done twice. With
    ``resume=False`` it refuses instead (:class:`RunInUseError`): starting over would discard
    the other command's work while it runs. Under ``accelerate launch`` only the main process
    takes the lock (the others follow it through :func:`run_loop`)."""
    import fcntl

    out = Path(out_dir)
    if resume and (rows := finished_rows(cfg, out, stop_after)) is not None:
        return rows
    if not _is_main():
        return run_loop(cfg, out, resume=resume, stop_after=stop_after)
    out.parent.mkdir(parents=True, exist_ok=True)
    lock_path = out.with_name(out.name + ".lock")
    with open(lock_path, "w") as lock:
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            if not resume:
                raise RunInUseError(f"{out} is in use by another run (it holds {lock_path}): wait "
                                    "for it to finish or stop it before starting over") from None
            print(f"[larpo-lite] {out} is in use by another run (it holds {lock_path}); waiting "
                  "for it to finish", file=sys.stderr, flush=True)
            fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            return run_loop(cfg, out, resume=resume, stop_after=stop_after)
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def _save_unchanged(run: _Run, s: int) -> None:
    """A checkpoint for an iteration without training (a zero LoRA update or the same model)."""
    ck = run.out / f"ckpt_iter{s}"
    if _lora(run.cfg):
        from peft import LoraConfig, get_peft_model

        lora = _lora(run.cfg) or {}
        peft_model = get_peft_model(run.model, LoraConfig(**lora, task_type="CAUSAL_LM"))
        peft_model.save_pretrained(ck)  # LoRA B starts at zero: merging changes nothing
        run.model = peft_model.merge_and_unload()
        run.model.larpo_name = run.cfg.model_name
    else:
        run.model.save_pretrained(ck)


def run_dir(cfg: LoopConfig, preset: str) -> Path:
    """``runs/<preset>/loop/<objective>-<hash of the config>``: the same config always gets the
    same folder, so notebooks that need the same run (a baseline, a shared setting) share it."""
    import hashlib

    from .paths import runs_dir

    key = hashlib.sha256(json.dumps(cfg.to_dict(), sort_keys=True).encode()).hexdigest()[:10]
    tag = cfg.negative_tier or cfg.objective
    return runs_dir() / preset / "loop" / f"{tag}-{key}"


def run_shared(cfg: LoopConfig, preset: str, stop_after: int | None = None) -> list[dict[str, Any]]:
    """:func:`run_locked` in :func:`run_dir` (resumed, or read back when already finished).

    Two notebooks running side by side (``larpo-lite notebooks --jobs 2``) that need the same
    run never write it at once: the second waits on the folder's lock, then reads the
    finished run back. ``stop_after``: the rows up to that round only (running no further):
    04 reads round 1 of the runs whose second round 07 adds, in the same folder."""
    rows = run_locked(cfg, run_dir(cfg, preset), resume=True, stop_after=stop_after)
    return rows if stop_after is None else [r for r in rows if r["iteration"] <= stop_after]


def _rebuilt(cfg: LoopConfig, out: Path, s: int) -> _Run:
    """A :class:`_Run` of the finished run in ``out`` holding its policy after round ``s``."""
    cfg.validate()
    if not 0 <= s <= cfg.iterations:
        raise ValueError(f"iteration must be in 0..{cfg.iterations}, got {s}")
    if finished_rows(cfg, out, stop_after=s) is None:
        raise ValueError(f"{out} has not finished round {s} of this config: run it first")
    run = _Run(cfg, out)
    run.model, run.tok = run.load_initial()
    run.model.larpo_name = cfg.model_name
    for i in range(1, s + 1):
        run.apply_checkpoint(i)
    return run


def policy_after(cfg: LoopConfig, out_dir: str | Path, iteration: int | None = None) -> tuple[Any, Any]:
    """(model, tokenizer): the policy of a finished run after ``iteration`` (None: the last; 0:
    the initial policy), rebuilt from the initial policy and the run's checkpoints, as a resumed
    run rebuilds it; in eval mode.

    Raises:
        ValueError: the run in ``out_dir`` has not finished ``iteration``."""
    run = _rebuilt(cfg, Path(out_dir), cfg.iterations if iteration is None else iteration)
    return run.model, run.tok


def greedy_responses(cfg: LoopConfig, out_dir: str | Path, iteration: int | None = None,
                     split: str = "test") -> CandidateSet:
    """The greedy responses behind a finished run's recorded scores (``results.jsonl`` keeps
    each problem's score, not the text): the policy after ``iteration`` (:func:`policy_after`;
    0: the initial policy, read from the candidate cache) answers the ``split`` ("val" or
    "test") problems exactly as the run's evaluation did (same sampler, dtype, batch size and
    instruction), so its ``correct[:, 0]`` equals the row's ``{split}_correct``. Costs one
    greedy evaluation (nothing for ``iteration=0``).

    Returns:
        a :class:`~larpo_lite.evaluate.CandidateSet` with one response per problem (``[P, 1]``;
        rewards filled in on reward-scored tasks).
    Raises:
        ValueError: the run has not finished ``iteration``, or did not evaluate ``split``."""
    if split not in ("val", "test"):
        raise ValueError(f"split must be 'val' or 'test', got {split!r}")
    s = cfg.iterations if iteration is None else iteration
    with _instruction(cfg.instruction):
        run = _rebuilt(cfg, Path(out_dir), s)
        problems = run.val if split == "val" else run.test
        if not problems:
            raise ValueError(f"the run evaluated no {split!r} problems")
        sampler = run.sampler(run.model)
        kw = dict(k=1, temperature=0.0, max_new_tokens=cfg.max_new_tokens, seed=cfg.seed)
        got = (cand_cache.cached_candidates(sampler, problems, run.tok, **kw) if s == 0
               else sample_candidates(sampler, problems, run.tok, **kw))
        return score_candidates(got, run.reranker)
