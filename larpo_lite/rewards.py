"""Rerankers: the task verifier, majority vote and Hugging Face reward models; best-of-N.

Introduced in notebooks/01_ir_analogy: the LLM is the retriever, the reward model
the reranker. Greedy decoding is the retriever alone; best-of-N with a reranker is
retriever + reranker. Reward models (sequence-classification checkpoints such as
FsfairX-LLaMA3-RM) are the rerankers of the GPU presets (notebooks/08_scaling_up).

Every reranker takes ``score(texts, gold=None, prompt=None)``: the verifier needs
``gold``, a reward model needs ``prompt`` (the user's question, plain text), majority
vote needs neither.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from typing import Any, Protocol

from .tasks.answers import extract_answer, is_correct, normalize_number


class Reranker(Protocol):
    """Scores the candidates of one prompt (higher is better)."""

    name: str

    def score(self, texts: Sequence[str], gold: str | None = None,
              prompt: str | None = None) -> list[float]: ...


class VerifierReranker:
    """The task's rule-based verifier: 1.0 if the final answer equals the gold one, else 0.0."""

    name = "verifier"

    def score(self, texts: Sequence[str], gold: str | None = None,
              prompt: str | None = None) -> list[float]:
        if gold is None:
            raise ValueError("the verifier needs the gold answer")
        return [1.0 if is_correct(t, gold) else 0.0 for t in texts]


class MajorityVoteReranker:
    """Label-free reranker: 1.0 for responses whose answer is the most common answer among
    the candidates (ties between answers: the one seen first), 0.0 otherwise or when a
    response has no answer."""

    name = "majority"

    def score(self, texts: Sequence[str], gold: str | None = None,
              prompt: str | None = None) -> list[float]:
        answers = [normalize_number(extract_answer(t)) for t in texts]
        counts = Counter(a for a in answers if a is not None)
        if not counts:
            return [0.0] * len(texts)
        top = max(counts.values())
        winner = next(a for a in answers if a is not None and counts[a] == top)
        return [1.0 if a == winner else 0.0 for a in answers]


class RewardModelReranker:
    """A Hugging Face sequence-classification reward model as reranker.

    Each (prompt, response) pair is rendered with the reward model's own chat template
    (user turn = ``prompt``, assistant turn = the response) when its tokenizer has one,
    else as ``prompt + "\n" + response``; pairs are scored in batches of ``batch_size``,
    right-padded, and the reward is the logit ``label_index`` at the last real token.

    Args:
        model_name: a local folder, a hub id (the hub is only tried when reachable), or
            ``"tiny-random-rm"`` (a random stand-in for tests).
        device: ``"auto"`` (cuda -> mps -> cpu) or a device name; a missing cuda is an error.
        dtype: ``"auto"`` (bf16 on cuda and on CPUs with bf16 units, else fp32) or a name.
        batch_size: pairs per forward pass.
        max_length: tokens per pair; longer pairs are cut from the left of the prompt side
            (``truncation_side="left"``) so the response end, where the reward is read, stays.
        label_index: which logit is the reward (reward models have one label: 0).

    Raises:
        larpo_lite.models.ModelLoadError: the model or its tokenizer cannot be loaded (the
            message names ``model_name``).
    """

    name = "reward_model"

    def __init__(self, model_name: str, device: str = "auto", dtype: str = "auto",
                 batch_size: int = 8, max_length: int = 1024, label_index: int = 0) -> None:
        import torch
        from transformers import AutoModelForSequenceClassification, AutoTokenizer

        from .models import ModelLoadError, pick_device, pick_dtype, resolve_model_path

        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        if not model_name:
            raise ValueError("reward model: model_name is empty (a local folder or a hub id)")
        self.model_name = model_name
        self.device = pick_device(device)
        self.dtype = pick_dtype(dtype, self.device)
        try:
            path = resolve_model_path(model_name)
            self.tokenizer = AutoTokenizer.from_pretrained(path)
            self.model = AutoModelForSequenceClassification.from_pretrained(path, dtype=self.dtype)
        except (OSError, ValueError, KeyError) as e:
            raise ModelLoadError(
                f"could not load reward model {model_name!r} as a sequence-classification "
                f"model: {e}. Give a local folder (config.json + weights + tokenizer) or a "
                "reachable hub id.") from e
        n_labels = int(self.model.config.num_labels)
        if not 0 <= label_index < n_labels:
            raise ValueError(f"reward model {model_name!r} has {n_labels} label(s); "
                             f"label_index={label_index} is out of range")
        if self.tokenizer.pad_token is None:
            self.tokenizer.pad_token = self.tokenizer.eos_token or self.tokenizer.unk_token
        self.tokenizer.padding_side = "right"
        self.tokenizer.truncation_side = "left"
        self.model.config.pad_token_id = self.tokenizer.pad_token_id
        self.model.to(self.device).eval()
        self.batch_size = batch_size
        self.max_length = max_length
        self.label_index = label_index
        self._torch = torch

    def render(self, prompt: str, response: str) -> str:
        """The text the reward model reads for one pair (chat template when it has one)."""
        if getattr(self.tokenizer, "chat_template", None):
            msgs = [{"role": "user", "content": prompt}, {"role": "assistant", "content": response}]
            return self.tokenizer.apply_chat_template(msgs, tokenize=False)
        return f"{prompt}\n{response}"

    def score_pairs(self, prompts: Sequence[str], responses: Sequence[str]) -> list[float]:
        """Rewards of ``len(prompts)`` (prompt, response) pairs, batched.

        Returns:
            a list of floats, one per pair (logits ``[B, num_labels]`` read at ``label_index``).
        """
        if isinstance(prompts, str) or isinstance(responses, str):
            raise TypeError("prompts and responses must be sequences of strings")
        if len(prompts) != len(responses):
            raise ValueError(f"{len(prompts)} prompts for {len(responses)} responses")
        templated = bool(getattr(self.tokenizer, "chat_template", None))
        texts = [self.render(p, r) for p, r in zip(prompts, responses, strict=True)]
        out: list[float] = []
        with self._torch.inference_mode():
            for i in range(0, len(texts), self.batch_size):
                enc = self.tokenizer(texts[i:i + self.batch_size], return_tensors="pt",
                                     padding=True, truncation=True, max_length=self.max_length,
                                     add_special_tokens=not templated).to(self.device)
                logits = self.model(**enc).logits  # [B, num_labels]
                out.extend(logits[:, self.label_index].float().cpu().tolist())
        return out

    def score(self, texts: Sequence[str], gold: str | None = None,
              prompt: str | None = None) -> list[float]:
        """Rewards of the candidates ``texts`` of one prompt (``gold`` is ignored)."""
        if prompt is None:
            raise ValueError("a reward model scores (prompt, response) pairs: pass prompt=<the "
                             "question>")
        return self.score_pairs([prompt] * len(texts), list(texts))


RERANKERS: dict[str, Any] = {"verifier": VerifierReranker, "majority": MajorityVoteReranker,
                             "reward_model": RewardModelReranker}


def get_reranker(name: str, **kwargs: Any) -> Reranker:
    """A reranker by name; unknown names raise ValueError listing the valid ones.

    ``"reward_model"`` needs ``model_name=`` (a local folder or hub id) and takes the other
    keyword arguments of :class:`RewardModelReranker`.
    """
    if name not in RERANKERS:
        raise ValueError(f"unknown reranker {name!r}; valid: {', '.join(RERANKERS)}")
    if name == "reward_model" and "model_name" not in kwargs:
        raise ValueError("reranker 'reward_model' needs model_name= (a local folder or hub id)")
    return RERANKERS[name](**kwargs)


def reranker_for(reward_model: str, fallback: str = "verifier", **kwargs: Any) -> Reranker:
    """The reward model ``reward_model`` (a folder or hub id; ``kwargs`` go to
    :class:`RewardModelReranker`) when it is set, else the reranker named ``fallback``: the
    ``reward_model`` parameter's rule ("" ranks by the task's verifier)."""
    if reward_model:
        return get_reranker("reward_model", model_name=reward_model, **kwargs)
    return get_reranker(fallback)


def best_of_n(scores: Sequence[float]) -> int:
    """Index of the best candidate; ties go to the earliest (sampling order), so best-of-1
    is the first sample."""
    if len(scores) == 0:
        raise ValueError("best_of_n of an empty list")
    best = max(scores)
    return next(i for i, s in enumerate(scores) if s == best)
