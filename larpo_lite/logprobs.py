"""Sequence log-probabilities of responses, and the reference-model cache.

Introduced in notebooks/03_training_stage.

The score of a response ``y`` to a prompt ``x`` in LARPO is
``gamma(y|x) = beta * (log pi_theta(y|x) - log pi_ref(y|x))`` where ``log pi(y|x)`` is the
sum of the log-probabilities of the response tokens only (prompt and padding are masked).

Tokenisation of a (prompt, response) pair: the prompt is tokenised on its own with
``add_special_tokens=False`` (it is already chat-templated, see
:func:`larpo_lite.tasks.build_prompt`), the response likewise, and the tokenizer's EOS token is
appended to the response (it is scored: ending the answer is part of the response), except
for a response that did not end: one cut at ``max_new_tokens`` when it was sampled gets no EOS
(``add_eos`` per pair; :class:`ReferenceCache` takes the set of such pairs), so training never
teaches the policy to stop where the sampler cut it. The two
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
from collections.abc import Collection, Iterator, Sequence
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F

from .models import SDPA_GQA, is_peft_model
from .progress import progress

__all__ = [
    "ListBatch",
    "PairBatch",
    "ReferenceCache",
    "batched_sequence_logprobs",
    "collate_lists",
    "encode_lists",
    "encode_pairs",
    "is_peft_model",
    "list_attention_mask",
    "list_logprobs",
    "reference_context",
    "sequence_logprobs",
    "tokenize_lists",
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
    add_eos: bool | Sequence[bool] = True,
) -> list[tuple[list[int], int, bool]]:
    """Token ids of each pair, unpadded.

    ``add_eos``: append the tokenizer's EOS to every response (True), to none (False), or per
    pair (N bools: False for a response cut at ``max_new_tokens`` when it was sampled).

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
    with_eos = _eos_flags(add_eos, len(prompts))
    if any(with_eos) and eos is None:
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
        rids = r + [eos] if with_eos[i] else list(r)
        if not rids:
            raise ValueError(f"pair {i}: the response is empty and gets no EOS (add_eos)")
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


def _eos_flags(add_eos: bool | Sequence[bool], n: int) -> list[bool]:
    """``add_eos`` as one bool per pair (``n`` pairs)."""
    if isinstance(add_eos, bool):
        return [add_eos] * n
    flags = [bool(x) for x in add_eos]
    if len(flags) != n:
        raise ValueError(f"add_eos has {len(flags)} flags for {n} responses; give one per "
                         "response (or one bool for all)")
    return flags


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
    add_eos: bool | Sequence[bool] = True,
) -> PairBatch:
    """Tokenise N (prompt, response) pairs into a right-padded :class:`PairBatch` ([N, L]).

    The tokenizer's own ``padding_side`` is ignored (the batch is always right-padded).
    """
    return collate_pairs(encode_pairs(tokenizer, prompts, responses, max_length, add_eos),
                         _pad_id(tokenizer))


# --------------------------------------------------------------------------- log-probs


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


# --------------------------------------------------------------------------- shared-prompt lists


@dataclass
class ListBatch:
    """Candidate lists packed one row per list: the prompt once, then its K responses.

    Row ``b`` holds ``prompt + response_0 (+ EOS) + response_1 (+ EOS) + ...`` then right
    padding. Each response attends to the whole prompt and to its own earlier tokens, never to
    another response, and its position ids restart where the prompt ends, so each response is
    scored as in its own (prompt, response) sequence while the prompt runs once per list (and
    the gradients of all K responses flow back through the one copy of the prompt).
    Responses are numbered ``0..N-1`` over the batch: lists in order, responses in order.

    Attributes:
        input_ids: [B, L] long.
        position_ids: [B, L] long; ``0..P-1`` on the prompt, ``P, P+1, ...`` again on each
            response; 0 on padding.
        segment_ids: [B, L] long; 0 on the prompt, ``k + 1`` on the k-th response of the row,
            -1 on padding.
        target_index: [B, L] long; on a response token, the number (``0..N-1``) of its
            response; -1 elsewhere.
        source_position: [B, L] long; on a response token, the row position whose logits
            predict it: the previous token of the same response, or the prompt's last token
            for a response's first token; 0 elsewhere.
        counts: [B] long, responses per list.
        truncated: [N] bool, True where the response was cut to fit ``max_length``.
    """

    input_ids: torch.Tensor
    position_ids: torch.Tensor
    segment_ids: torch.Tensor
    target_index: torch.Tensor
    source_position: torch.Tensor
    counts: torch.Tensor
    truncated: torch.Tensor

    def to(self, device: torch.device | str) -> ListBatch:
        """The same batch on ``device``."""
        return ListBatch(*(getattr(self, f.name).to(device) for f in fields(self)))

    @property
    def num_tokens(self) -> int:
        """Real (non-padding) tokens in the batch: each list's prompt counts once."""
        return int((self.segment_ids >= 0).sum())

    @property
    def num_responses(self) -> int:
        """N, the responses of all lists."""
        return int(self.counts.sum())

    def __len__(self) -> int:
        return int(self.input_ids.shape[0])


def encode_lists(
    tokenizer: Any,
    prompts: Sequence[str],
    responses: Sequence[Sequence[str]],
    max_length: int | None = None,
    add_eos: bool | Sequence[bool] = True,
) -> list[tuple[list[int], list[list[int]], list[bool]]]:
    """Token ids of each list, unpadded.

    Every (prompt, response) pair is tokenised and cut exactly as by :func:`encode_pairs`
    (``max_length`` bounds the prompt plus *one* response), so a response gets the same tokens
    and log-prob in a list as alone.

    Args:
        prompts: B prompts.
        responses: B sequences of responses, ``responses[b]`` the (at least one) candidates of
            ``prompts[b]``.
        add_eos: one bool for every response, or one per response, flat in list order.

    Returns:
        one ``(prompt_ids, response_ids, truncated)`` per list: ``response_ids[k]`` the tokens
        of response k (+ EOS), ``truncated[k]`` whether it was cut.
    """
    if len(prompts) != len(responses):
        raise ValueError(f"{len(prompts)} prompts but {len(responses)} response lists")
    for b, rs in enumerate(responses):
        if isinstance(rs, str) or len(rs) == 0:
            raise ValueError(f"list {b}: expected a non-empty sequence of responses, got {rs!r}")
    flat_prompts = [p for p, rs in zip(prompts, responses, strict=True) for _ in rs]
    flat = encode_pairs(tokenizer, flat_prompts, [r for rs in responses for r in rs],
                        max_length, add_eos)
    out = []
    at = 0
    for rs in responses:
        chunk, at = flat[at : at + len(rs)], at + len(rs)
        plen = chunk[0][1]
        out.append((chunk[0][0][:plen], [ids[plen:] for ids, _, _ in chunk],
                    [cut for _, _, cut in chunk]))
    return out


def collate_lists(
    encoded: Sequence[tuple[list[int], list[list[int]], list[bool]]], pad_token_id: int
) -> ListBatch:
    """Pack encoded lists (from :func:`encode_lists`) one per row into a :class:`ListBatch`."""
    b = len(encoded)
    length = max((len(p) + sum(map(len, rs)) for p, rs, _ in encoded), default=1)
    input_ids = [[pad_token_id] * length for _ in range(b)]
    position_ids = [[0] * length for _ in range(b)]
    segment_ids = [[-1] * length for _ in range(b)]
    target_index = [[-1] * length for _ in range(b)]
    source_position = [[0] * length for _ in range(b)]
    n = 0
    for row, (pids, rids, _) in enumerate(encoded):
        plen = len(pids)
        input_ids[row][:plen] = pids
        position_ids[row][:plen] = range(plen)
        segment_ids[row][:plen] = [0] * plen
        at = plen
        for k, r in enumerate(rids):
            end = at + len(r)
            input_ids[row][at:end] = r
            position_ids[row][at:end] = range(plen, plen + len(r))
            segment_ids[row][at:end] = [k + 1] * len(r)
            target_index[row][at:end] = [n] * len(r)
            source_position[row][at:end] = [plen - 1, *range(at, end - 1)]
            at, n = end, n + 1
    return ListBatch(
        input_ids=torch.tensor(input_ids, dtype=torch.long),
        position_ids=torch.tensor(position_ids, dtype=torch.long),
        segment_ids=torch.tensor(segment_ids, dtype=torch.long),
        target_index=torch.tensor(target_index, dtype=torch.long),
        source_position=torch.tensor(source_position, dtype=torch.long),
        counts=torch.tensor([len(rs) for _, rs, _ in encoded], dtype=torch.long),
        truncated=torch.tensor([c for _, _, cuts in encoded for c in cuts], dtype=torch.bool),
    )


def tokenize_lists(
    tokenizer: Any,
    prompts: Sequence[str],
    responses: Sequence[Sequence[str]],
    max_length: int | None = None,
    add_eos: bool | Sequence[bool] = True,
) -> ListBatch:
    """Tokenise B lists (a prompt and its responses) into a packed :class:`ListBatch` ([B, L])."""
    return collate_lists(encode_lists(tokenizer, prompts, responses, max_length, add_eos),
                         _pad_id(tokenizer))


def list_attention_mask(segment_ids: torch.Tensor) -> torch.Tensor:
    """The block attention of packed lists: [B, 1, L, L] bool, True where a query may attend.

    A prompt token sees the earlier prompt tokens; a response token sees the whole prompt and
    the earlier tokens of its own response. A padding token sees the prompt and the earlier
    padding: no query row is empty (an empty row gives NaN under sdpa), and no real token
    ever sees padding.

    Args:
        segment_ids: [B, L] long, as in :class:`ListBatch`.
    """
    length = segment_ids.shape[1]
    q = segment_ids.unsqueeze(2)  # [B, L, 1]
    k = segment_ids.unsqueeze(1)  # [B, 1, L]
    causal = torch.ones(length, length, dtype=torch.bool, device=segment_ids.device).tril()
    return (causal & ((k == q) | (k == 0))).unsqueeze(1)


def _config(model: Any) -> Any:
    inner = model.module if _is_ddp(model) else model
    if hasattr(inner, "get_base_model"):
        inner = inner.get_base_model()
    return getattr(inner, "config", None)


def _attention_bias(model: Any, allowed: torch.Tensor) -> torch.Tensor:
    """``allowed`` [B, 1, L, L] in the form the model's attention takes a custom 4D mask:
    as is (bool) for sdpa (transformers' or :func:`models.use_sdpa_gqa`'s), additive
    (0 / dtype min) for eager."""
    impl = getattr(_config(model), "_attn_implementation", None) or "sdpa"
    if impl in ("sdpa", SDPA_GQA):
        return allowed
    if impl == "eager":
        dtype = next(model.parameters()).dtype
        bias = torch.zeros(allowed.shape, dtype=dtype, device=allowed.device)
        return bias.masked_fill(~allowed, torch.finfo(dtype).min)
    raise ValueError(f"the shared-prompt list forward needs 'sdpa' or 'eager' attention (a "
                     f"custom 4D mask); this model uses {impl!r}: pass share_prompt=False")


def list_logprobs(model: Any, batch: ListBatch, reduction: str = "sum") -> torch.Tensor:
    """Summed (or mean) log-probabilities of every response of packed lists, one forward.

    Equal to :func:`sequence_logprobs` of the same (prompt, response) pairs (up to float
    rounding) at about ``P + K*R`` instead of ``K*(P + R)`` tokens per list. Logits are only
    produced from the first predicting position on (``logits_to_keep``), the log-softmax only
    at the predicting positions, in float32. Gradients flow when called outside ``no_grad``.

    Args:
        model: a causal LM with sdpa or eager attention (HF, peft- or DDP-wrapped).
        batch: a :class:`ListBatch` of ``[B, L]`` tensors.
        reduction: ``"sum"`` (``log pi(y|x)``) or ``"mean"`` (per response token).

    Returns:
        [N] float32 tensor, lists in order, responses in order.
    """
    if reduction not in ("sum", "mean"):
        raise ValueError(f"unknown reduction {reduction!r}; valid: sum, mean")
    ids = batch.input_ids
    n, length = batch.num_responses, ids.shape[1]
    if n == 0:
        return torch.zeros(0, dtype=torch.float32, device=ids.device)
    rows, cols = (batch.target_index >= 0).nonzero(as_tuple=True)  # [T] each
    source = batch.source_position[rows, cols]  # [T]
    start = int(source.min())  # first position whose logits are needed
    kwargs: dict[str, Any] = dict(
        input_ids=ids, position_ids=batch.position_ids, use_cache=False,
        attention_mask=_attention_bias(model, list_attention_mask(batch.segment_ids)))
    if _accepts_logits_to_keep(model):
        kwargs["logits_to_keep"] = length - start
        logits = model(**kwargs).logits  # [B, L - start, V]
    else:
        logits = model(**kwargs).logits[:, start:]  # [B, L - start, V]
    token_lp = -F.cross_entropy(logits[rows, source - start].float(), ids[rows, cols],
                                reduction="none")  # [T]
    target = batch.target_index[rows, cols]  # [T]
    total = torch.zeros(n, dtype=torch.float32, device=ids.device).index_add(0, target, token_lp)
    if reduction == "mean":
        total = total / torch.bincount(target, minlength=n).clamp(min=1).to(total.dtype)
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
    share_prompt: bool = True,
    add_eos: bool | Sequence[bool] = True,
) -> torch.Tensor:
    """:func:`sequence_logprobs` of many pairs, at most ``batch_size`` responses per forward.

    ``add_eos``: as in :func:`encode_pairs` (one bool, or one per pair).

    Runs without gradients, in eval mode (dropout off; the mode is restored afterwards).
    With ``share_prompt`` the pairs are grouped by prompt and each group runs as one packed
    list (:func:`list_logprobs`: the prompt once, its responses after it); otherwise each pair
    is its own sequence (:func:`sequence_logprobs`). Rows are sorted by length so that each
    batch holds similar lengths (less padding); results come back in the input order.

    Returns:
        [N] float32 tensor on the CPU.
    """
    return _logprobs_in_batches(model, tokenizer, prompts, responses, batch_size, max_length,
                                reduction, show_progress, desc, share_prompt, add_eos)[0]


def _logprobs_in_batches(
    model: Any,
    tokenizer: Any,
    prompts: Sequence[str],
    responses: Sequence[str],
    batch_size: int,
    max_length: int | None,
    reduction: str,
    show_progress: bool,
    desc: str,
    share_prompt: bool,
    add_eos: bool | Sequence[bool] = True,
) -> tuple[torch.Tensor, int]:
    """:func:`batched_sequence_logprobs` and the number of forwards it ran."""
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    if len(prompts) != len(responses):
        raise ValueError(f"{len(prompts)} prompts but {len(responses)} responses")
    with_eos = _eos_flags(add_eos, len(prompts))
    out = torch.zeros(len(prompts), dtype=torch.float32)
    device = _model_device(model)
    pad = _pad_id(tokenizer)
    # each forward: (indices of its pairs in the input, a function building its batch)
    forwards: list[tuple[list[int], Any]] = []
    if share_prompt:
        groups: dict[str, list[int]] = {}
        for i, p in enumerate(prompts):
            groups.setdefault(p, []).append(i)
        chunks = [idx[s : s + batch_size] for idx in groups.values()
                  for s in range(0, len(idx), batch_size)]
        encoded = encode_lists(tokenizer, [prompts[c[0]] for c in chunks],
                               [[responses[i] for i in c] for c in chunks], max_length,
                               [with_eos[i] for c in chunks for i in c])
        order = sorted(range(len(chunks)),
                       key=lambda j: len(encoded[j][0]) + sum(map(len, encoded[j][1])))
        current: list[int] = []
        for j in order:  # whole lists, at most batch_size responses per forward
            if current and sum(len(chunks[c]) for c in current) + len(chunks[j]) > batch_size:
                forwards.append(([i for c in current for i in chunks[c]], current))
                current = []
            current.append(j)
        if current:
            forwards.append(([i for c in current for i in chunks[c]], current))

        def run(part: list[int]) -> torch.Tensor:
            return list_logprobs(model, collate_lists([encoded[j] for j in part], pad).to(device),
                                 reduction)
    else:
        pairs = encode_pairs(tokenizer, prompts, responses, max_length, with_eos)
        order = sorted(range(len(pairs)), key=lambda i: len(pairs[i][0]))
        forwards = [(order[s : s + batch_size], order[s : s + batch_size])
                    for s in range(0, len(order), batch_size)]

        def run(part: list[int]) -> torch.Tensor:
            return sequence_logprobs(model, collate_pairs([pairs[i] for i in part], pad).to(device),
                                     reduction)
    with torch.no_grad(), _eval_mode(model):
        bar_kwargs: dict[str, Any] = {} if show_progress else {"disable": True}
        for idx, part in progress(forwards, desc=desc, **bar_kwargs):
            out[torch.tensor(idx, dtype=torch.long)] = run(part).float().cpu()
    return out, len(forwards)


# --------------------------------------------------------------------------- reference cache


class ReferenceCache:
    """Reference log-probs ``log pi_ref(y|x)``, computed once per (prompt, response) pair.

    :meth:`compute` only runs the model on pairs that are not cached yet, so calling it at
    the start of training and reading with :meth:`get` every epoch never recomputes anything.
    ``n_forward`` counts the forward batches run so far, ``n_computed`` the pairs computed.

    A cache is tied to one reference model, tokenizer and ``max_length`` (a pair cut
    differently would have a different log-prob); it does not check this. Likewise a response
    is scored with its EOS or without (``cut`` in :meth:`compute`: it was cut at
    ``max_new_tokens``) the first time it is computed: whether a sample ended is a property of
    the sample, so the key stays the (prompt, response) pair.
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
        share_prompt: bool = True,
        cut: Collection[tuple[str, str]] = (),
    ) -> int:
        """Compute and store the reference log-probs of the pairs not cached yet.

        Args:
            model: the reference model; a peft model is used with its adapters disabled
                (``disable_adapters=None``), i.e. as its base model.
            tokenizer: the tokenizer used for training.
            pairs: (prompt, response) pairs; duplicates and cached ones are skipped.
            disable_adapters: None (auto), True or False; see :func:`reference_context`.
            accelerator: an ``accelerate.Accelerator``; with several processes each computes a
                strided share of the missing pairs' prompts and the results are gathered, so
                every process ends with the full cache (all processes must call this together).
            show_progress: show a progress bar.
            share_prompt: run the responses of one prompt as one packed list (the prompt
                once; :func:`list_logprobs`), else one sequence per pair.
            cut: the pairs whose response was cut at ``max_new_tokens`` when sampled: scored
                without an EOS (every other response with one).

        Returns:
            the number of pairs computed by this process.
        """
        todo = self.missing(pairs)
        world = accelerator.num_processes if accelerator is not None else 1
        rank = accelerator.process_index if accelerator is not None else 0
        by_prompt: dict[str, list[tuple[str, str]]] = {}
        for pair in todo:  # a prompt's pairs stay on one process (they share its forward)
            by_prompt.setdefault(pair[0], []).append(pair)
        local = [pair for group in list(by_prompt.values())[rank::world] for pair in group]
        values: list[float] = []
        if local:
            with reference_context(model, disable_adapters):
                computed, n_forward = _logprobs_in_batches(
                    model, tokenizer, [p for p, _ in local], [r for _, r in local],
                    self.batch_size, self.max_length, "sum", show_progress,
                    "reference log-probs", share_prompt, [pair not in cut for pair in local])
            values = computed.tolist()
            self.n_forward += n_forward
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
