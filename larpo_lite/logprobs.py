"""Sequence log-probabilities of responses, and the reference-model cache.

Introduced in notebooks/03_training_stage.

The score of a response ``y`` to a prompt ``x`` in LARPO is
``gamma(y|x) = beta * (log pi_theta(y|x) - log pi_ref(y|x))`` where ``log pi(y|x)`` is the
sum of the log-probabilities of the response tokens only (prompt and padding are masked).

Tokenisation of a (prompt, response) pair: the prompt is tokenised on its own with
``add_special_tokens=False`` (it is already chat-templated, see
:func:`larpo_lite.tasks.build_prompt`), the response likewise, and the tokenizer's EOS token is
appended to the response (it is scored: ending the answer is part of the response). The two
are concatenated and the batch is **right**-padded with a response mask. With ``max_length``
set, a pair longer than ``max_length`` tokens is cut from the *end of the response*; the prompt
is never cut (a prompt that leaves no room for at least one response token is a ``ValueError``).

The reference log-probabilities never change during training, so :class:`ReferenceCache`
computes them once per (prompt, response) pair, before the first step, and every epoch reads
them back. For a peft LoRA model the reference is the same model with its adapters disabled
(``with model.disable_adapter():``), so no second copy of the weights is made.
"""

from __future__ import annotations

import contextlib
import inspect
import json
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F

from .progress import progress

__all__ = [
    "PairBatch",
    "ReferenceCache",
    "batched_sequence_logprobs",
    "encode_pairs",
    "is_peft_model",
    "reference_context",
    "sequence_logprobs",
    "tokenize_pairs",
]


# --------------------------------------------------------------------------- tokenising


@dataclass
class PairBatch:
    """A right-padded batch of (prompt, response) token sequences.

    Attributes:
        input_ids: [N, L] long, prompt tokens then response tokens (+ EOS) then padding.
        attention_mask: [N, L] long, 1 on real tokens, 0 on padding.
        response_mask: [N, L] bool, True on the response tokens (the ones that are scored).
        truncated: [N] bool, True where the response was cut to fit ``max_length``.
    """

    input_ids: torch.Tensor
    attention_mask: torch.Tensor
    response_mask: torch.Tensor
    truncated: torch.Tensor

    def to(self, device: torch.device | str) -> PairBatch:
        """The same batch on ``device``."""
        return PairBatch(
            self.input_ids.to(device),
            self.attention_mask.to(device),
            self.response_mask.to(device),
            self.truncated.to(device),
        )

    @property
    def num_tokens(self) -> int:
        """Real (non-padding) tokens in the batch."""
        return int(self.attention_mask.sum())

    def __len__(self) -> int:
        return int(self.input_ids.shape[0])


def encode_pairs(
    tokenizer: Any,
    prompts: Sequence[str],
    responses: Sequence[str],
    max_length: int | None = None,
    add_eos: bool = True,
) -> list[tuple[list[int], int, bool]]:
    """Token ids of each pair, unpadded.

    Returns:
        one ``(ids, prompt_len, truncated)`` per pair: ``ids`` = prompt tokens + response tokens
        (+ EOS), cut to ``max_length`` from the response end; ``prompt_len`` the number of prompt
        tokens at the start of ``ids``.
    """
    if len(prompts) != len(responses):
        raise ValueError(f"{len(prompts)} prompts but {len(responses)} responses")
    if max_length is not None and max_length < 2:
        raise ValueError(f"max_length must be >= 2 (or None), got {max_length}")
    eos = tokenizer.eos_token_id
    if add_eos and eos is None:
        raise ValueError("the tokenizer has no eos_token_id; pass add_eos=False")
    # Prompts repeat (K candidates per prompt): tokenise each distinct prompt once.
    uniq = list(dict.fromkeys(prompts))
    prompt_ids = dict(zip(uniq, _tokenize(tokenizer, uniq), strict=True))
    resp_ids = _tokenize(tokenizer, list(responses))
    out = []
    for i, (p, r) in enumerate(zip(prompts, resp_ids, strict=True)):
        pids = prompt_ids[p]
        if not pids:
            raise ValueError(f"pair {i}: the prompt is empty; the first response token needs a "
                             "context to be scored")
        rids = r + [eos] if add_eos else list(r)
        if not rids:
            raise ValueError(f"pair {i}: the response is empty and add_eos=False")
        truncated = False
        if max_length is not None and len(pids) + len(rids) > max_length:
            room = max_length - len(pids)
            if room < 1:
                raise ValueError(
                    f"pair {i}: the prompt has {len(pids)} tokens, which leaves no room for the "
                    f"response within max_length={max_length}; prompts are never truncated, "
                    "raise max_length"
                )
            rids = rids[:room]
            truncated = True
        out.append((pids + rids, len(pids), truncated))
    return out


def _tokenize(tokenizer: Any, texts: list[str]) -> list[list[int]]:
    if not texts:
        return []
    return [list(x) for x in tokenizer(texts, add_special_tokens=False)["input_ids"]]


def collate_pairs(encoded: Sequence[tuple[list[int], int, bool]], pad_token_id: int) -> PairBatch:
    """Right-pad encoded pairs (from :func:`encode_pairs`) into a :class:`PairBatch`."""
    n = len(encoded)
    length = max((len(ids) for ids, _, _ in encoded), default=1)
    input_ids = torch.full((n, length), pad_token_id, dtype=torch.long)
    attention = torch.zeros((n, length), dtype=torch.long)
    response = torch.zeros((n, length), dtype=torch.bool)
    truncated = torch.zeros(n, dtype=torch.bool)
    for i, (ids, plen, cut) in enumerate(encoded):
        input_ids[i, : len(ids)] = torch.tensor(ids, dtype=torch.long)
        attention[i, : len(ids)] = 1
        response[i, plen : len(ids)] = True
        truncated[i] = cut
    return PairBatch(input_ids, attention, response, truncated)


def _pad_id(tokenizer: Any) -> int:
    pad = tokenizer.pad_token_id
    return int(pad if pad is not None else tokenizer.eos_token_id)


def tokenize_pairs(
    tokenizer: Any,
    prompts: Sequence[str],
    responses: Sequence[str],
    max_length: int | None = None,
    add_eos: bool = True,
) -> PairBatch:
    """Tokenise N (prompt, response) pairs into a right-padded :class:`PairBatch` ([N, L]).

    The tokenizer's own ``padding_side`` is ignored (the batch is always right-padded).
    """
    return collate_pairs(encode_pairs(tokenizer, prompts, responses, max_length, add_eos),
                         _pad_id(tokenizer))


# --------------------------------------------------------------------------- log-probs


def is_peft_model(model: Any) -> bool:
    """Whether ``model`` (or the module inside a DDP wrapper) is a peft model."""
    inner = getattr(model, "module", model) if _is_ddp(model) else model
    try:
        from peft import PeftModel
    except ImportError:  # pragma: no cover - peft is a dependency
        return False
    return isinstance(inner, PeftModel)


def _is_ddp(model: Any) -> bool:
    return isinstance(model, torch.nn.parallel.DistributedDataParallel)


def _accepts_logits_to_keep(model: Any) -> bool:
    inner = model.module if _is_ddp(model) else model
    if hasattr(inner, "get_base_model"):
        inner = inner.get_base_model()
    try:
        return "logits_to_keep" in inspect.signature(inner.forward).parameters
    except (TypeError, ValueError):  # pragma: no cover
        return False


def _model_device(model: Any) -> torch.device:
    try:
        return next(model.parameters()).device
    except StopIteration:  # pragma: no cover
        return torch.device("cpu")


def sequence_logprobs(
    model: Any, batch: PairBatch, reduction: str = "sum"
) -> torch.Tensor:
    """Summed (or mean) log-probabilities of the response tokens of each sequence.

    Works with right- or left-padded batches (position ids come from the attention mask).
    Memory: logits are only produced from the first response position on (``logits_to_keep``
    when the model supports it), and the log-softmax is only taken at response positions
    (``cross_entropy`` with ``reduction="none"`` on the selected rows, in float32), never as a
    full ``[N, L, V]`` log-softmax copy. Gradients flow when called outside ``no_grad``.

    Args:
        model: a causal LM (HF, peft-wrapped or DDP-wrapped), on the batch's device.
        batch: a :class:`PairBatch` of ``[N, L]`` tensors.
        reduction: ``"sum"`` (``log pi(y|x)``) or ``"mean"`` (per response token).

    Returns:
        [N] float32 tensor.
    """
    if reduction not in ("sum", "mean"):
        raise ValueError(f"unknown reduction {reduction!r}; valid: sum, mean")
    ids, attn, resp = batch.input_ids, batch.attention_mask, batch.response_mask
    n, length = ids.shape
    if n == 0:
        return torch.zeros(0, dtype=torch.float32, device=ids.device)
    if bool(resp[:, 0].any()):
        raise ValueError("a response token at position 0 has no context to be scored")
    has = resp.any(dim=1)
    first = torch.where(has, resp.int().argmax(dim=1), torch.full_like(has, length, dtype=torch.long))
    start = max(int(first.min()) - 1, 0)  # first position whose logits are needed
    position_ids = (attn.long().cumsum(dim=1) - 1).clamp(min=0)
    kwargs: dict[str, Any] = dict(input_ids=ids, attention_mask=attn, position_ids=position_ids,
                                  use_cache=False)
    keep = length - start
    if _accepts_logits_to_keep(model):
        kwargs["logits_to_keep"] = keep
        logits = model(**kwargs).logits  # [N, keep, V]
    else:
        logits = model(**kwargs).logits[:, start:]  # [N, keep, V]
    logits = logits[:, :-1]  # positions start..L-2 predict tokens start+1..L-1
    targets = ids[:, start + 1 :]  # [N, keep-1]
    tmask = resp[:, start + 1 :]  # [N, keep-1]
    rows = torch.arange(n, device=ids.device).unsqueeze(1).expand_as(tmask)[tmask]  # [T]
    token_lp = -F.cross_entropy(logits[tmask].float(), targets[tmask], reduction="none")  # [T]
    total = torch.zeros(n, dtype=torch.float32, device=ids.device).index_add(0, rows, token_lp)
    if reduction == "mean":
        total = total / tmask.sum(dim=1).clamp(min=1).to(total.dtype)
    return total


def reference_context(model: Any, disable_adapters: bool | None = None) -> Any:
    """Context in which ``model`` acts as the reference: adapters disabled for a peft model.

    Args:
        disable_adapters: None = automatically for peft models; True/False to force.
    """
    if disable_adapters is None:
        disable_adapters = is_peft_model(model)
    if not disable_adapters:
        return contextlib.nullcontext()
    inner = model.module if _is_ddp(model) else model
    return inner.disable_adapter()


@contextlib.contextmanager
def _eval_mode(model: Any) -> Iterator[None]:
    was_training = model.training
    model.eval()
    try:
        yield
    finally:
        model.train(was_training)


def batched_sequence_logprobs(
    model: Any,
    tokenizer: Any,
    prompts: Sequence[str],
    responses: Sequence[str],
    batch_size: int = 16,
    max_length: int | None = None,
    reduction: str = "sum",
    show_progress: bool = False,
    desc: str = "log-probs",
) -> torch.Tensor:
    """:func:`sequence_logprobs` of many pairs, ``batch_size`` sequences per forward.

    Runs without gradients, in eval mode (dropout off; the mode is restored afterwards).
    Pairs are sorted by length so that each batch holds similar lengths (less padding);
    results come back in the input order.

    Returns:
        [N] float32 tensor on the CPU.
    """
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    encoded = encode_pairs(tokenizer, prompts, responses, max_length)
    order = sorted(range(len(encoded)), key=lambda i: len(encoded[i][0]))
    out = torch.zeros(len(encoded), dtype=torch.float32)
    device = _model_device(model)
    pad = _pad_id(tokenizer)
    starts = range(0, len(order), batch_size)
    with torch.no_grad(), _eval_mode(model):
        bar_kwargs: dict[str, Any] = {} if show_progress else {"disable": True}
        for s in progress(starts, desc=desc, **bar_kwargs):
            idx = order[s : s + batch_size]
            batch = collate_pairs([encoded[i] for i in idx], pad).to(device)
            out[torch.tensor(idx)] = sequence_logprobs(model, batch, reduction).float().cpu()
    return out


# --------------------------------------------------------------------------- reference cache


class ReferenceCache:
    """Reference log-probs ``log pi_ref(y|x)``, computed once per (prompt, response) pair.

    :meth:`compute` only runs the model on pairs that are not cached yet, so calling it at
    the start of training and reading with :meth:`get` every epoch never recomputes anything.
    ``n_forward`` counts the forward batches run so far, ``n_computed`` the pairs computed.

    A cache is tied to one reference model, tokenizer and ``max_length`` (a pair cut
    differently would have a different log-prob); it does not check this.
    """

    def __init__(self, batch_size: int = 16, max_length: int | None = None) -> None:
        self.batch_size = batch_size
        self.max_length = max_length
        self.values: dict[tuple[str, str], float] = {}
        self.n_forward = 0
        self.n_computed = 0

    def __len__(self) -> int:
        return len(self.values)

    def __contains__(self, pair: object) -> bool:
        return pair in self.values

    def missing(self, pairs: Sequence[tuple[str, str]]) -> list[tuple[str, str]]:
        """The distinct pairs not cached yet, in first-seen order."""
        return [p for p in dict.fromkeys(pairs) if p not in self.values]

    def compute(
        self,
        model: Any,
        tokenizer: Any,
        pairs: Sequence[tuple[str, str]],
        disable_adapters: bool | None = None,
        accelerator: Any = None,
        show_progress: bool = False,
    ) -> int:
        """Compute and store the reference log-probs of the pairs not cached yet.

        Args:
            model: the reference model; a peft model is used with its adapters disabled
                (``disable_adapters=None``), i.e. as its base model.
            tokenizer: the tokenizer used for training.
            pairs: (prompt, response) pairs; duplicates and cached ones are skipped.
            disable_adapters: None (auto), True or False; see :func:`reference_context`.
            accelerator: an ``accelerate.Accelerator``; with several processes each computes a
                strided share of the missing pairs and the results are gathered, so every
                process ends with the full cache (all processes must call this together).
            show_progress: show a progress bar.

        Returns:
            the number of pairs computed by this process.
        """
        todo = self.missing(pairs)
        world = accelerator.num_processes if accelerator is not None else 1
        rank = accelerator.process_index if accelerator is not None else 0
        local = todo[rank::world]
        values: list[float] = []
        if local:
            with reference_context(model, disable_adapters):
                values = batched_sequence_logprobs(
                    model, tokenizer, [p for p, _ in local], [r for _, r in local],
                    batch_size=self.batch_size, max_length=self.max_length,
                    show_progress=show_progress, desc="reference log-probs",
                ).tolist()
            self.n_forward += -(-len(local) // self.batch_size)
        found = list(zip(local, values, strict=True))
        if world > 1 and todo:
            from accelerate.utils import gather_object

            found = gather_object(found)
        for key, value in found:
            self.values[tuple(key)] = float(value)
        self.n_computed += len(local)
        return len(local)

    def get(self, prompts: Sequence[str], responses: Sequence[str]) -> torch.Tensor:
        """Cached log-probs of the pairs, [N] float32 (CPU). A missing pair is a KeyError."""
        out = []
        for p, r in zip(prompts, responses, strict=True):
            try:
                out.append(self.values[(p, r)])
            except KeyError:
                raise KeyError(
                    f"no reference log-prob cached for the pair (prompt {p[:40]!r}..., response "
                    f"{r[:40]!r}...); call ReferenceCache.compute on it first"
                ) from None
        return torch.tensor(out, dtype=torch.float32)

    def save(self, path: str | Path) -> None:
        """Write the cache as JSON."""
        rows = [[p, r, v] for (p, r), v in self.values.items()]
        Path(path).write_text(json.dumps({"batch_size": self.batch_size,
                                          "max_length": self.max_length, "values": rows}))

    @classmethod
    def load(cls, path: str | Path) -> ReferenceCache:
        """Read a cache written by :meth:`save`."""
        data = json.loads(Path(path).read_text())
        cache = cls(data["batch_size"], data["max_length"])
        cache.values = {(p, r): float(v) for p, r, v in data["values"]}
        return cache
