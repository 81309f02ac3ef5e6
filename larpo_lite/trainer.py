"""Training the policy as a retriever: ranking losses over candidate lists, with accelerate.

Introduced in notebooks/03_training_stage.

A training example is a :class:`RankedList`: a prompt and its candidate responses sorted
best-first (optionally with their rewards). Each optimizer step takes ``lists_per_step`` lists,
runs **one** forward over all their candidates (``share_prompt``, the default: one packed row
per list, the prompt once and its K responses after it, see
:func:`larpo_lite.logprobs.list_logprobs`; otherwise every candidate is a full sequence of an
``[N, L]`` batch), reads the
reference log-probs from a :class:`~larpo_lite.logprobs.ReferenceCache` filled once before the
first step, forms ``gamma = beta * (log pi_theta - log pi_ref)`` as a ``[B, K]`` tensor (lists of
different lengths padded at the row end, with a mask) and applies a loss of
:mod:`larpo_lite.losses`. The objective ``"sft"`` is SFT seen as direct retriever optimisation:
maximise the mean per-token log-prob of the first (correct) response of each list; it needs no
reference.

Batching is defined globally so that a run does not depend on the number of processes:
``lists_per_step`` lists per optimizer step, split into ``grad_accum`` micro-batches, each
split evenly across processes (``accelerate``'s dataloader with ``split_batches=True``), so
``lists_per_step`` must be a multiple of ``grad_accum * num_processes``. Every micro-batch is
full: each epoch uses ``len(lists) // lists_per_step`` steps and the remaining lists (a
different set each epoch when shuffling) wait for the next epoch. The logged loss is the
global mean over the step's lists. Under ``accelerate launch --cpu --num_processes 2`` the loss
curve equals the one-process curve up to float rounding (see tests/test_trainer.py).
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
import time
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from . import losses as L
from .logprobs import (
    ReferenceCache,
    batched_sequence_logprobs,
    list_logprobs,
    sequence_logprobs,
    tokenize_lists,
    tokenize_pairs,
)
from .models import is_peft_model
from .progress import progress

__all__ = [
    "CHECKPOINT_META",
    "OBJECTIVES",
    "RANKING_OBJECTIVES",
    "balanced_lists_per_step",
    "lora_config",
    "RankedList",
    "TrainConfig",
    "TrainResult",
    "load_checkpoint",
    "pad_to_lists",
    "save_checkpoint",
    "score_lists",
    "train_ranking",
]

RANKING_OBJECTIVES = ("pairwise", "contrastive", "lambdarank", "listmle")
OBJECTIVES = (*RANKING_OBJECTIVES, "sft")
SCHEDULES = ("linear", "constant")
DTYPES = ("float32", "bfloat16")
CHECKPOINT_META = "larpo_checkpoint.json"
_MISSING = object()


# --------------------------------------------------------------------------- data types


@dataclass
class RankedList:
    """One prompt with its candidate responses sorted best-first.

    Attributes:
        prompt: the full prompt string (chat template applied, e.g. by ``build_prompt``).
        responses: K candidate responses, ``responses[0]`` the best.
        rewards: optional K rewards, non-increasing: the labels of the losses (LambdaRank's
            tie skipping and LiPO weights; ListMLE's label groups and contrastive's negatives,
            so no order is trained between equally rewarded responses) and of the ranking
            accuracy. Without rewards every loss trains the list's order as given.
        truncated: optional K flags, True for a response cut at ``max_new_tokens`` when it was
            sampled: it is scored without the EOS every other response gets (it did not end
            there). None: every response ended.
    """

    prompt: str
    responses: list[str]
    rewards: list[float] | None = None
    truncated: list[bool] | None = None


@dataclass
class TrainConfig:
    """Hyper-parameters of :func:`train_ranking`.

    Attributes:
        objective: "pairwise", "contrastive", "lambdarank", "listmle" or "sft".
        beta: scale of ``gamma = beta * (log pi_theta - log pi_ref)``.
        lr: peak learning rate of AdamW.
        epochs: passes over the lists.
        lists_per_step: lists per optimizer step, over all processes and micro-batches.
        grad_accum: micro-batches per optimizer step (``lists_per_step`` is split in that many).
        warmup_ratio: share of the steps with a linear warm-up (ignored if warmup_steps is set).
        warmup_steps: warm-up steps, or None to use ``warmup_ratio``.
        schedule: after warm-up, "linear" decay to 0 or "constant".
        max_grad_norm: gradient clipping norm; None or 0 = no clipping (norm still logged).
        weight_decay: AdamW weight decay (not applied to biases and norm weights).
        dtype: "float32", or "bfloat16" for bf16 autocast (accelerate mixed precision; the
            weights and optimizer stay float32: load the model in float32).
        lora: None (full fine-tune) or ``peft.LoraConfig`` keyword arguments, e.g.
            ``{"r": 16, "lora_alpha": 32, "lora_dropout": 0.0, "target_modules": [...]}``.
        weighting: LambdaRank pair weighting, "none" or "lipo" (needs rewards).
        seed: seeds the LoRA initialisation, dropout and the list order.
        shuffle: shuffle the lists every epoch (seeded by ``seed + epoch``).
        max_length: tokens per (prompt, response) sequence; responses are cut to fit.
        ref_batch_size: responses per forward when computing reference log-probs.
        share_prompt: run each list's prompt once, its K responses attending to it (one packed
            row per list; policy and reference log-probs alike); False runs every candidate
            as its own (prompt, response) sequence. Same log-probs and gradients up to float
            rounding; the shared forward runs ``P + K*R`` instead of ``K*(P + R)`` tokens.
        log_every: refresh the progress bar's loss/accuracy every this many steps.
        checkpoint_dir: if set, the final model is saved there (with ``logs.json``).
        show_progress: show progress bars (silenced under CI anyway).
    """

    objective: str = "pairwise"
    beta: float = 0.1
    lr: float = 1e-5
    epochs: int = 1
    lists_per_step: int = 8
    grad_accum: int = 1
    warmup_ratio: float = 0.1
    warmup_steps: int | None = None
    schedule: str = "linear"
    max_grad_norm: float | None = 1.0
    weight_decay: float = 0.0
    dtype: str = "float32"
    lora: dict[str, Any] | None = None
    weighting: str = "none"
    seed: int = 0
    shuffle: bool = True
    max_length: int | None = 512
    ref_batch_size: int = 16
    share_prompt: bool = True
    log_every: int = 1
    checkpoint_dir: str | None = None
    show_progress: bool = True

    def validate(self) -> None:
        """Raise ValueError on an unknown name or an out-of-range value."""
        if self.objective not in OBJECTIVES:
            raise ValueError(
                f"unknown objective {self.objective!r}; valid: {', '.join(OBJECTIVES)}"
            )
        if self.schedule not in SCHEDULES:
            raise ValueError(f"unknown schedule {self.schedule!r}; valid: {', '.join(SCHEDULES)}")
        if self.dtype not in DTYPES:
            raise ValueError(f"unknown dtype {self.dtype!r}; valid: {', '.join(DTYPES)}")
        if self.weighting not in L.WEIGHTINGS:
            raise ValueError(
                f"unknown weighting {self.weighting!r}; valid: {', '.join(L.WEIGHTINGS)}"
            )
        for name in ("epochs", "lists_per_step", "grad_accum", "ref_batch_size", "log_every"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")
        if self.lists_per_step % self.grad_accum:
            raise ValueError(f"lists_per_step={self.lists_per_step} is not a multiple of "
                             f"grad_accum={self.grad_accum}")
        if not 0.0 <= self.warmup_ratio <= 1.0:
            raise ValueError(f"warmup_ratio must be in [0, 1], got {self.warmup_ratio}")
        if self.lr <= 0 or self.beta <= 0:
            raise ValueError(f"lr and beta must be > 0, got lr={self.lr}, beta={self.beta}")

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


@dataclass
class TrainResult:
    """What :func:`train_ranking` returns.

    Attributes:
        model: the trained model (peft-wrapped when LoRA was used), unwrapped, in eval mode.
        logs: one dict per optimizer step: step (0-based; its loss is computed before that
            step's update), epoch, loss (global mean over the step's lists), accuracy (share
            of correctly ordered pairs, None for sft), margin (mean gamma_first - gamma_last,
            None for sft), lr, grad_norm (before clipping), tokens (real tokens run through
            the model, all processes; with ``share_prompt`` a list's prompt counts once),
            seconds; and, None for sft, the log-probs behind the margin, each summed over a
            response's tokens and averaged over the step's lists, computed before the step's
            update: chosen_logp and rejected_logp (the policy's ``log pi`` of each list's first
            and last response) and chosen_ref_logp and rejected_ref_logp (the reference's), so
            ``margin = beta * ((chosen_logp - chosen_ref_logp) - (rejected_logp -
            rejected_ref_logp))``: a margin can grow while both policy log-probs fall.
        reference: the reference cache (None for sft).
        config: the configuration used.
        seconds: total wall time, reference computation included.
        checkpoint: where the final checkpoint was saved, or None.
    """

    model: Any
    logs: list[dict[str, Any]]
    reference: ReferenceCache | None
    config: TrainConfig
    seconds: float
    checkpoint: Path | None = None
    meta: dict[str, Any] = field(default_factory=dict)

    @property
    def losses(self) -> list[float]:
        return [r["loss"] for r in self.logs]


def lora_config(r: int) -> dict[str, Any] | None:
    """The LoRA set-up of the notebooks and the loop: rank ``r`` adapters on the attention
    projections, alpha = 2r, no dropout; None (full fine-tuning) for ``r = 0``."""
    if r <= 0:
        return None
    return {"r": r, "lora_alpha": 2 * r, "lora_dropout": 0.0,
            "target_modules": ["q_proj", "k_proj", "v_proj", "o_proj"]}


def balanced_lists_per_step(n_lists: int, max_lists_per_step: int, multiple_of: int = 1) -> int:
    """Lists per step <= ``max_lists_per_step`` that leaves the fewest lists out of an epoch:
    with ``ceil(n / max)`` steps, ``n // steps`` lists each (rounded down to ``multiple_of``,
    e.g. grad_accum * processes). 14 lists at most 8 per step gives 7 (two full steps)."""
    if n_lists < 1 or max_lists_per_step < 1:
        raise ValueError(f"need n_lists >= 1 and max_lists_per_step >= 1, got {n_lists}, "
                         f"{max_lists_per_step}")
    steps = -(-n_lists // max_lists_per_step)
    lps = max(n_lists // steps, 1)
    return max(lps - lps % multiple_of, multiple_of)


def _as_ranked_list(x: Any, i: int) -> RankedList:
    if isinstance(x, RankedList):
        return x
    if isinstance(x, tuple | list) and len(x) in (2, 3):
        return RankedList(x[0], list(x[1]), list(x[2]) if len(x) == 3 and x[2] is not None else None)
    raise ValueError(f"list {i}: expected a RankedList or (prompt, responses[, rewards]), got "
                     f"{type(x).__name__}")


def _validate_lists(lists: Sequence[Any], config: TrainConfig) -> list[RankedList]:
    """RankedLists checked for the objective; errors name the offending list index."""
    out = [_as_ranked_list(x, i) for i, x in enumerate(lists)]
    if not out:
        raise ValueError("no lists to train on")
    need = 2 if config.objective in RANKING_OBJECTIVES else 1
    with_rewards = [x.rewards is not None for x in out]
    for i, x in enumerate(out):
        if not isinstance(x.prompt, str) or not all(isinstance(r, str) for r in x.responses):
            raise ValueError(f"list {i}: prompt and responses must be strings")
        if len(x.responses) < need:
            raise ValueError(
                f"list {i} has {len(x.responses)} response(s); objective {config.objective!r} "
                f"needs at least {need}"
            )
        if x.rewards is not None:
            if len(x.rewards) != len(x.responses):
                raise ValueError(f"list {i}: {len(x.rewards)} rewards for "
                                 f"{len(x.responses)} responses")
            if any(b > a for a, b in zip(x.rewards, x.rewards[1:], strict=False)):
                raise ValueError(f"list {i}: rewards must be non-increasing (responses sorted "
                                 f"best-first), got {x.rewards}")
            if not all(math.isfinite(r) for r in x.rewards):
                raise ValueError(f"list {i}: rewards must be finite, got {x.rewards}")
        if x.truncated is not None and len(x.truncated) != len(x.responses):
            raise ValueError(f"list {i}: {len(x.truncated)} truncated flags for "
                             f"{len(x.responses)} responses")
    if any(with_rewards) and not all(with_rewards):
        i = with_rewards.index(False)
        raise ValueError(f"list {i} has no rewards while others do; give rewards for all "
                         "lists or none")
    if config.objective == "lambdarank" and config.weighting == "lipo" and not all(with_rewards):
        raise ValueError('weighting="lipo" needs rewards on every list')
    return out


# --------------------------------------------------------------------------- scoring helpers


def pad_to_lists(
    flat: torch.Tensor, counts: Sequence[int], fill: float = 0.0
) -> tuple[torch.Tensor, torch.Tensor]:
    """Scatter ``flat`` [sum(counts)] into a row-end-padded ``[B, K]`` tensor and its mask.

    Returns:
        (values [B, K] with ``fill`` on padding, mask [B, K] bool), K = max(counts).
    """
    b, k = len(counts), max(counts, default=0)
    mask = torch.arange(k, device=flat.device).unsqueeze(0) < torch.tensor(
        counts, device=flat.device).unsqueeze(1)  # [B, K]
    out = torch.full((b, k), fill, dtype=flat.dtype, device=flat.device)
    out = out.masked_scatter(mask, flat)  # row-major order = list order
    return out, mask


def _flatten(lists: Sequence[RankedList]) -> tuple[list[str], list[str], list[int]]:
    prompts = [x.prompt for x in lists for _ in x.responses]
    responses = [r for x in lists for r in x.responses]
    return prompts, responses, [len(x.responses) for x in lists]


def _with_eos(lists: Sequence[RankedList]) -> list[bool]:
    """Per response, flat in list order: whether it is scored with an EOS (it ended)."""
    return [not (x.truncated and x.truncated[k]) for x in lists for k in range(len(x.responses))]


def _cut_pairs(lists: Sequence[RankedList]) -> set[tuple[str, str]]:
    """The (prompt, response) pairs cut at ``max_new_tokens``: scored without an EOS."""
    return {(x.prompt, r) for x in lists if x.truncated
            for r, cut in zip(x.responses, x.truncated, strict=True) if cut}


def _rewards_tensor(lists: Sequence[RankedList], device: torch.device) -> torch.Tensor | None:
    if any(x.rewards is None for x in lists):
        return None
    flat = torch.tensor([r for x in lists for r in x.rewards], dtype=torch.float32, device=device)
    return pad_to_lists(flat, [len(x.rewards) for x in lists])[0]


def score_lists(
    model: Any,
    tokenizer: Any,
    lists: Sequence[Any],
    reference: ReferenceCache,
    beta: float = 0.1,
    batch_size: int = 16,
    share_prompt: bool = True,
) -> tuple[torch.Tensor, torch.Tensor]:
    """``gamma = beta * (log pi_theta - log pi_ref)`` of every candidate, without gradients.

    Missing reference entries are computed with ``model`` (adapters disabled if peft), so
    pass a filled cache (e.g. ``TrainResult.reference``) to score a trained policy against
    its reference. Sequences are cut at the cache's ``max_length``. ``share_prompt``: run each
    list's prompt once (see :func:`~larpo_lite.logprobs.batched_sequence_logprobs`).

    Returns:
        (gamma [B, K] float32 on the CPU, 0 on padding; mask [B, K] bool).
    """
    rl = [_as_ranked_list(x, i) for i, x in enumerate(lists)]
    prompts, responses, counts = _flatten(rl)
    reference.compute(model, tokenizer, list(zip(prompts, responses, strict=True)),
                      share_prompt=share_prompt, cut=_cut_pairs(rl))
    pol = batched_sequence_logprobs(model, tokenizer, prompts, responses, batch_size,
                                    reference.max_length, share_prompt=share_prompt,
                                    add_eos=_with_eos(rl))
    return pad_to_lists(beta * (pol - reference.get(prompts, responses)), counts)


# --------------------------------------------------------------------------- accelerate


def _world_size() -> int:
    return int(os.environ.get("WORLD_SIZE", "1"))


def _make_accelerator(config: TrainConfig, model_device: torch.device) -> Any:
    """A fresh Accelerator. In a single process the shared accelerate state is reset first,
    so successive calls may use different precisions."""
    from accelerate import Accelerator
    from accelerate.state import AcceleratorState, GradientState
    from accelerate.utils import DataLoaderConfiguration

    single = _world_size() == 1
    if single:
        AcceleratorState._reset_state(reset_partial_state=True)
        GradientState._reset_state()
    return Accelerator(
        mixed_precision="bf16" if config.dtype == "bfloat16" else "no",
        gradient_accumulation_steps=config.grad_accum,
        dataloader_config=DataLoaderConfiguration(split_batches=True),
        # cpu=True also makes accelerate see a torchrun/`accelerate launch --multi_gpu` run
        # without GPUs as MULTI_CPU (gloo); with it False such a run silently stays 1 process.
        cpu=model_device.type == "cpu" and not torch.cuda.is_available(),
    )


class _IndexDataset(torch.utils.data.Dataset):
    def __init__(self, order: list[int]) -> None:
        self.order = order

    def __len__(self) -> int:
        return len(self.order)

    def __getitem__(self, i: int) -> int:
        return self.order[i]


def _epoch_orders(n: int, config: TrainConfig) -> list[list[int]]:
    """Per epoch, the list indices used (a seeded permutation cut to full steps)."""
    used = (n // config.lists_per_step) * config.lists_per_step
    orders = []
    for epoch in range(config.epochs):
        if config.shuffle:
            g = torch.Generator().manual_seed(config.seed + epoch)
            perm = torch.randperm(n, generator=g).tolist()
        else:
            perm = list(range(n))
        orders.append(perm[:used])
    return orders


def _param_groups(model: Any, weight_decay: float) -> list[dict[str, Any]]:
    decay, no_decay = [], []
    for p in model.parameters():
        if p.requires_grad:
            (decay if p.ndim >= 2 else no_decay).append(p)
    if not decay and not no_decay:
        raise ValueError("the model has no trainable parameter")
    groups = [{"params": decay, "weight_decay": weight_decay},
              {"params": no_decay, "weight_decay": 0.0}]
    return [g for g in groups if g["params"]]


def _wrap_lora(model: Any, lora: dict[str, Any]) -> Any:
    from peft import LoraConfig, get_peft_model

    name = getattr(model, "larpo_name", None)
    kwargs = {"task_type": "CAUSAL_LM", **lora}
    peft_model = get_peft_model(model, LoraConfig(**kwargs))
    if name is not None:
        peft_model.larpo_name = name
    return peft_model


# --------------------------------------------------------------------------- training


def train_ranking(
    model: Any,
    tokenizer: Any,
    lists: Sequence[RankedList | tuple],
    config: TrainConfig | None = None,
    reference: Any = None,
    callback: Callable[[dict[str, Any]], None] | None = None,
) -> TrainResult:
    """Train ``model`` on ranked candidate lists with a ranking loss (or SFT).

    The model is trained in place (for LoRA: adapters are injected into it and the returned
    ``result.model`` is the peft wrapper). Works in one process and under
    ``accelerate launch`` (every process must call it with the same lists and config).

    Args:
        model: a causal LM in float32 (a peft model trains its adapters only).
        tokenizer: its tokenizer (padding side does not matter).
        lists: :class:`RankedList` items (or ``(prompt, responses[, rewards])`` tuples).
        config: a :class:`TrainConfig` (defaults if None).
        reference: where ``log pi_ref`` comes from, ranking objectives only:
            None: the base model with adapters disabled for a peft model, else the policy
            itself before its first update (equal to a frozen copy, and no copy is made);
            an ``nn.Module``: a separate frozen reference model;
            a :class:`ReferenceCache`: reused (missing pairs computed as for None).
            All reference log-probs are computed once, before the first step.
        callback: called with each step's log dict (on every process).

    Returns:
        a :class:`TrainResult`.
    """
    t_start = time.perf_counter()
    config = config or TrainConfig()
    config.validate()
    data = _validate_lists(lists, config)
    ranking = config.objective in RANKING_OBJECTIVES
    if len(data) < config.lists_per_step:
        raise ValueError(f"{len(data)} lists is fewer than lists_per_step="
                         f"{config.lists_per_step}; lower lists_per_step")
    if len(data) % config.lists_per_step:
        warnings.warn(f"{len(data)} lists is not a multiple of lists_per_step="
                      f"{config.lists_per_step}: {len(data) % config.lists_per_step} list(s) "
                      "are left out of each epoch", stacklevel=2)

    device = next(model.parameters()).device
    accelerator = _make_accelerator(config, device)
    world = accelerator.num_processes
    if config.lists_per_step % (config.grad_accum * world):
        raise ValueError(
            f"lists_per_step={config.lists_per_step} must be a multiple of grad_accum * "
            f"num_processes = {config.grad_accum} * {world}"
        )
    from accelerate.utils import set_seed

    set_seed(config.seed)
    if config.lora and not is_peft_model(model):
        model = _wrap_lora(model, config.lora)
    model.to(accelerator.device)

    # ---- reference log-probs, once, before any update
    cache: ReferenceCache | None = None
    if ranking:
        if isinstance(reference, ReferenceCache):
            cache, ref_model = reference, model
            if cache.max_length != config.max_length:
                warnings.warn(f"the reference cache was built with max_length="
                              f"{cache.max_length}, the config has {config.max_length}: "
                              "long responses are cut differently", stacklevel=2)
        elif reference is None:
            cache, ref_model = ReferenceCache(config.ref_batch_size, config.max_length), model
        elif isinstance(reference, torch.nn.Module):
            cache = ReferenceCache(config.ref_batch_size, config.max_length)
            ref_model = reference.to(accelerator.device)
        else:
            raise ValueError("reference must be None, an nn.Module or a ReferenceCache, got "
                             f"{type(reference).__name__}")
        prompts, responses, _ = _flatten(data)
        with accelerator.autocast():
            cache.compute(
                ref_model, tokenizer, list(zip(prompts, responses, strict=True)),
                disable_adapters=None if ref_model is model else False,
                accelerator=accelerator,
                show_progress=config.show_progress and accelerator.is_main_process,
                share_prompt=config.share_prompt, cut=_cut_pairs(data),
            )

    # ---- data, optimizer, schedule
    orders = _epoch_orders(len(data), config)
    steps_per_epoch = len(orders[0]) // config.lists_per_step
    total_steps = steps_per_epoch * config.epochs
    micro = config.lists_per_step // config.grad_accum  # global micro-batch (lists)
    loader = torch.utils.data.DataLoader(
        _IndexDataset([i for o in orders for i in o]), batch_size=micro, shuffle=False)
    optimizer = torch.optim.AdamW(_param_groups(model, config.weight_decay), lr=config.lr)
    warmup = (config.warmup_steps if config.warmup_steps is not None
              else int(round(config.warmup_ratio * total_steps)))
    from transformers import get_constant_schedule_with_warmup, get_linear_schedule_with_warmup

    if config.schedule == "linear":
        scheduler = get_linear_schedule_with_warmup(optimizer, warmup, total_steps)
    else:
        scheduler = get_constant_schedule_with_warmup(optimizer, warmup)
    # With mixed precision, prepare() wraps model.forward in autocast; undone after training.
    prepared_module, saved_forward = model, model.__dict__.get("forward", _MISSING)
    model, optimizer, loader, scheduler = accelerator.prepare(model, optimizer, loader, scheduler)

    loss_kwargs: dict[str, Any] = {}
    if config.objective == "lambdarank":
        loss_kwargs["weighting"] = config.weighting
    loss_fn = L.get_loss(config.objective) if ranking else None
    max_norm = config.max_grad_norm if config.max_grad_norm else float("inf")
    trainable = [p for p in model.parameters() if p.requires_grad]

    logs: list[dict[str, Any]] = []
    bar = progress(total=total_steps, desc=f"train {config.objective}",
                   **({} if config.show_progress and accelerator.is_main_process
                      else {"disable": True}))
    model.train()
    # local sums over the micro-batches of one step: loss, correct pairs, pairs, margin, lists,
    # tokens, then the log-probs of the first and last responses (policy, reference)
    acc = torch.zeros(6 + len(_LOGP_KEYS), dtype=torch.float64, device=accelerator.device)
    t_step = time.perf_counter()
    step = 0
    lr = scheduler.get_last_lr()[0]
    for idx in loader:
        batch_lists = [data[i] for i in idx.tolist()]
        with accelerator.accumulate(model):
            loss, stats = _micro_step(model, tokenizer, batch_lists, cache, config, loss_fn,
                                      loss_kwargs, accelerator.device)
            accelerator.backward(loss)
            grad_norm = None
            if accelerator.sync_gradients:
                grad_norm = accelerator.clip_grad_norm_(trainable, max_norm)
            optimizer.step()
            scheduler.step()
            optimizer.zero_grad(set_to_none=True)
        acc += stats
        if not accelerator.sync_gradients:
            continue
        tot = accelerator.reduce(acc, reduction="sum").cpu()
        n_micro = config.grad_accum * accelerator.num_processes
        row = {
            "step": step,
            "epoch": step // steps_per_epoch,
            "loss": float(tot[0] / n_micro),
            "accuracy": float(tot[1] / tot[2]) if ranking and tot[2] > 0 else None,
            "margin": float(tot[3] / tot[4]) if ranking else None,
            "lr": float(lr),
            "grad_norm": float(grad_norm) if grad_norm is not None else None,
            "tokens": int(tot[5]),
            "seconds": time.perf_counter() - t_step,
            **{k: float(tot[6 + i] / tot[4]) if ranking else None for i, k in enumerate(_LOGP_KEYS)},
        }
        logs.append(row)
        if callback is not None:
            callback(row)
        if step % config.log_every == 0 or step == total_steps - 1:
            post = {"loss": f"{row['loss']:.4f}"}
            if row["accuracy"] is not None:
                post["acc"] = f"{row['accuracy']:.2f}"
            bar.set_postfix(post, refresh=False)
        bar.update(1)
        step += 1
        acc.zero_()
        lr = scheduler.get_last_lr()[0]
        t_step = time.perf_counter()
    bar.close()

    model = accelerator.unwrap_model(model)
    assert model is prepared_module
    # (unwrap_model(keep_fp32_wrapper=False) would also strip transformers' own forward
    # decorators: restore the instance's forward attribute as it was instead.)
    model.__dict__.pop("_original_forward", None)
    if saved_forward is _MISSING:
        model.__dict__.pop("forward", None)
    else:
        model.forward = saved_forward
    model.eval()
    accelerator.free_memory()
    result = TrainResult(model=model, logs=logs, reference=cache, config=config,
                         seconds=time.perf_counter() - t_start,
                         meta={"num_processes": accelerator.num_processes,
                               "steps": total_steps, "warmup_steps": warmup})
    if config.checkpoint_dir:
        accelerator.wait_for_everyone()
        if accelerator.is_main_process:
            result.checkpoint = save_checkpoint(model, tokenizer, config.checkpoint_dir,
                                                meta={"train_config": config.to_dict()})
            (Path(config.checkpoint_dir) / "logs.json").write_text(json.dumps(logs, indent=1))
        accelerator.wait_for_everyone()
        result.checkpoint = Path(config.checkpoint_dir)
    return result


def _micro_step(
    model: Any,
    tokenizer: Any,
    lists: list[RankedList],
    cache: ReferenceCache | None,
    config: TrainConfig,
    loss_fn: Callable[..., torch.Tensor] | None,
    loss_kwargs: dict[str, Any],
    device: torch.device,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Loss (mean over the local lists) and the local statistics sums of one micro-batch: loss,
    correct pairs, pairs, margin, lists, tokens, then the ``_LOGP_KEYS`` log-probs."""
    if loss_fn is None:  # sft: mean per-token log-prob of each list's first response
        firsts = [RankedList(x.prompt, x.responses[:1], None, x.truncated and x.truncated[:1])
                  for x in lists]
        lp, n_tokens = _policy_logprobs(model, tokenizer, firsts, config, device, "mean")
        loss = -lp.mean()
        stats = [loss.detach(), 0.0, 0.0, 0.0, len(lists), n_tokens] + [0.0] * len(_LOGP_KEYS)
        return loss, _stats(stats, device)
    prompts, responses, counts = _flatten(lists)
    pol, n_tokens = _policy_logprobs(model, tokenizer, lists, config, device)  # [N]
    assert cache is not None
    ref = cache.get(prompts, responses).to(device)  # [N]
    gamma, mask = pad_to_lists(config.beta * (pol - ref), counts)  # [B, K]
    rewards = _rewards_tensor(lists, device)
    if config.objective in ("lambdarank", "listmle", "contrastive"):
        # the rewards as labels: tied responses give no pair (LambdaRank), no trained order
        # (ListMLE's label groups) and no negative tied with the best (contrastive)
        loss = loss_fn(gamma, mask, rewards, reduction="mean", **loss_kwargs)
    else:
        loss = loss_fn(gamma, mask, reduction="mean")
    with torch.no_grad():
        g = gamma.detach()
        n_pairs = L.lambdarank_weights(g, mask, rewards, "none").sum()
        correct = L.ranking_accuracy(g, mask, rewards) * n_pairs
        margin = L.margins(g, mask).sum()
        ends = [_first_and_last(v, counts) for v in (pol.detach(), ref)]  # [B] each, twice
    stats = [loss.detach(), correct.round(), n_pairs, margin, len(lists), n_tokens,
             *(x.sum() for pair in ends for x in pair)]
    return loss, _stats(stats, device)


# the per-step log's log-probs, in the order _micro_step sums them (TrainResult.logs)
_LOGP_KEYS = ("chosen_logp", "rejected_logp", "chosen_ref_logp", "rejected_ref_logp")


def _first_and_last(flat: torch.Tensor, counts: Sequence[int]) -> tuple[torch.Tensor, torch.Tensor]:
    """Of ``flat`` [sum(counts)] (per response, lists in order): each list's first and last
    entry, ``[B]`` each."""
    values, mask = pad_to_lists(flat, counts)  # [B, K]
    last = (mask.sum(dim=1) - 1).clamp(min=0)
    return values[:, 0], values.gather(1, last.unsqueeze(1)).squeeze(1)


def _policy_logprobs(
    model: Any,
    tokenizer: Any,
    lists: Sequence[RankedList],
    config: TrainConfig,
    device: torch.device,
    reduction: str = "sum",
) -> tuple[torch.Tensor, int]:
    """Log-probs ([N], lists in order, responses in order) of B lists' responses, with
    gradients, and the number of real tokens the forward ran: one packed row per list with
    ``config.share_prompt``, else one sequence per (prompt, response) pair. A response cut
    at ``max_new_tokens`` (``RankedList.truncated``) is scored without an EOS."""
    with_eos = _with_eos(lists)
    if config.share_prompt:
        lb = tokenize_lists(tokenizer, [x.prompt for x in lists], [x.responses for x in lists],
                            config.max_length, with_eos).to(device)
        return list_logprobs(model, lb, reduction), lb.num_tokens
    flat_prompts, flat_responses, _ = _flatten(lists)
    pb = tokenize_pairs(tokenizer, flat_prompts, flat_responses, config.max_length,
                        with_eos).to(device)
    return sequence_logprobs(model, pb, reduction), pb.num_tokens


def _stats(values: list[Any], device: torch.device) -> torch.Tensor:
    return torch.tensor([float(v) for v in values], dtype=torch.float64, device=device)


# --------------------------------------------------------------------------- checkpoints


def _base_name(model: Any) -> str:
    name = getattr(model, "larpo_name", None)
    if name is None and is_peft_model(model):
        name = getattr(model.get_base_model(), "larpo_name", None)
    if name is None:
        name = getattr(getattr(model, "config", None), "_name_or_path", None) or "unknown"
    return str(name)


def save_checkpoint(
    model: Any,
    tokenizer: Any,
    path: str | Path,
    meta: dict[str, Any] | None = None,
    base_model: str | None = None,
) -> Path:
    """Save a (full or LoRA) model, its tokenizer and ``larpo_checkpoint.json``.

    A peft model saves its adapters only; the json records the base model name
    (``model.larpo_name`` as set by ``load_policy``, or ``base_model``), whether it is LoRA,
    and ``meta``.

    Returns:
        the checkpoint folder.
    """
    path = Path(path)
    path.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(path)
    tokenizer.save_pretrained(path)
    info = {
        "base_model": base_model or _base_name(model),
        "lora": is_peft_model(model),
        "saved_at": time.strftime("%Y-%m-%dT%H:%M:%S"),
        "meta": meta or {},
    }
    (path / CHECKPOINT_META).write_text(json.dumps(info, indent=1, default=str))
    return path


def load_checkpoint(
    path: str | Path,
    model_name: str | None,
    device: str | torch.device = "cpu",
    dtype: str | torch.dtype = "float32",
    trainable: bool = False,
) -> tuple[Any, Any]:
    """Load a checkpoint written by :func:`save_checkpoint` on top of base model ``model_name``.

    Args:
        path: the checkpoint folder.
        model_name: the base model it must have been trained from (None: the recorded one).
            A different name is a ValueError naming both.
        device, dtype: as for ``load_policy``.
        trainable: for LoRA checkpoints, keep the adapters trainable.

    Returns:
        ``(model, tokenizer)`` in eval mode (a peft model for LoRA checkpoints).
    """
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from .models import load_policy, pick_device, pick_dtype

    path = Path(path)
    meta_file = path / CHECKPOINT_META
    if not meta_file.is_file():
        raise FileNotFoundError(f"{path} is not a larpo-lite checkpoint (no {CHECKPOINT_META})")
    info = json.loads(meta_file.read_text())
    recorded = info["base_model"]
    if model_name is not None and model_name != recorded:
        raise ValueError(
            f"checkpoint {path} was trained from base model {recorded!r}, but it is being "
            f"loaded into {model_name!r}; load it with model_name={recorded!r}"
        )
    name = recorded
    if info.get("lora"):
        from peft import PeftModel

        base, _ = load_policy(name, device=device, dtype=dtype)
        model = PeftModel.from_pretrained(base, path, is_trainable=trainable)
    else:
        dev = pick_device(device) if isinstance(device, str) else device
        model = AutoModelForCausalLM.from_pretrained(path, dtype=pick_dtype(dtype, dev)).to(dev)
    tok = AutoTokenizer.from_pretrained(path)
    if tok.pad_token is None:
        tok.pad_token = tok.eos_token
    tok.padding_side = "left"  # as load_tokenizer: ready for generation
    model.config.pad_token_id = tok.pad_token_id
    model.larpo_name = name
    model.eval()
    return model, tok

