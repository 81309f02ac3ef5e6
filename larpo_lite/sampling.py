"""Sampling candidates from the policy: one ``Sampler`` interface, several backends.

Introduced in notebooks/01_ir_analogy (greedy decoding = the retriever alone) and
notebooks/02_recall_at_n (k samples per prompt = the candidate list).

The HF-generate backend batches prompts and their ``k`` samples together. Seeding:
each generate() call reseeds torch from ``(seed, batch index)``, so a run repeats
exactly with the same seed, batch size and dtype (batched bf16 generation with left
padding is not bit-stable across batch sizes: fix the batch size where numbers must
repeat).
"""

from __future__ import annotations

import time
from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import torch

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


class HFSampler(Sampler):
    """Batched ``model.generate`` with ``num_return_sequences=k`` (the default backend).

    Args:
        model, tokenizer: from ``larpo_lite.models.load_policy``.
        batch_size: sequences per generate() call (prompts per call = batch_size // k).
        model_name: recorded in each Generation (defaults to the model's ``larpo_name``).
    """

    backend = "hf"

    def __init__(self, model: Any, tokenizer: Any, batch_size: int = 64,
                 model_name: str | None = None) -> None:
        super().__init__()
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
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
        device = next(model.parameters()).device
        eos = tok.eos_token_id
        per_call = max(1, self.batch_size // k)
        out: list[Generation] = []
        stats = SamplingStats()
        t0 = time.perf_counter()
        starts = list(range(0, len(prompts), per_call))
        bar = progress(total=len(prompts) * k, desc=desc or f"sampling T={temperature}",
                       unit="seq", leave=False)
        was_training = model.training
        model.eval()
        for b, start in enumerate(starts):
            chunk = list(prompts[start:start + per_call])
            enc = tok(chunk, return_tensors="pt", padding=True, add_special_tokens=False).to(device)
            kwargs: dict[str, Any] = dict(max_new_tokens=max_new_tokens, pad_token_id=tok.pad_token_id,
                                          eos_token_id=eos)
            if temperature == 0:
                kwargs.update(do_sample=False, temperature=None, top_p=None, top_k=None)
            else:
                kwargs.update(do_sample=True, temperature=temperature, top_p=top_p, top_k=0,
                              num_return_sequences=k)
            # One seed per call: repeats exactly for the same seed and batch size.
            torch.manual_seed(seed * 1_000_003 + b)
            seqs = model.generate(**enc, **kwargs)
            gen = seqs[:, enc["input_ids"].shape[1]:].cpu()
            for i, prompt in enumerate(chunk):
                rows = gen[i * k:(i + 1) * k]
                texts, counts, done = [], [], []
                for row in rows:
                    ids = row.tolist()
                    n = len(ids)
                    finished = eos in ids
                    if finished:
                        n = ids.index(eos) + 1
                    elif tok.pad_token_id is not None and tok.pad_token_id != eos:
                        while n > 0 and ids[n - 1] == tok.pad_token_id:
                            n -= 1
                    texts.append(tok.decode(ids[:n], skip_special_tokens=True).strip())
                    counts.append(n)
                    done.append(finished)
                out.append(Generation(prompt=prompt, texts=texts, num_tokens=counts, finished=done,
                                      temperature=float(temperature), top_p=float(top_p),
                                      model_name=self.model_name, backend=self.backend, seed=seed))
                stats.tokens += sum(counts)
            bar.update(len(chunk) * k)
        bar.close()
        if was_training:
            model.train()
        stats.seconds = time.perf_counter() - t0
        self.last_stats = stats
        return out


BACKENDS = ("hf",)


def make_sampler(backend: str, model: Any, tokenizer: Any, batch_size: int = 64) -> Sampler:
    """A sampler by backend name; unknown names raise ValueError listing the valid ones."""
    if backend == "hf":
        return HFSampler(model, tokenizer, batch_size=batch_size)
    raise ValueError(f"unknown sampling backend {backend!r}; valid: {', '.join(BACKENDS)}")
