"""Rerankers: the task verifier, majority vote and Hugging Face reward models; best-of-N.

Introduced in notebooks/01_ir_analogy: the LLM is the retriever, the reward model
the reranker. Greedy decoding is the retriever alone; best-of-N with a reranker is
retriever + reranker. Reward models (sequence-classification checkpoints such as
FsfairX-LLaMA3-RM) are the rerankers of the GPU presets (notebooks/08_scaling_up).

Every reranker takes ``score(texts, gold=None, prompt=None)``: the verifier needs
``gold``, a reward model needs ``prompt`` (the user's question, plain text), majority
vote needs neither.

The binary verifier ties every correct response with every other, so a list of four
ranked by it orders the correct ones (and the wrong ones) by sampling order, and a listwise
loss partly learns that noise (the losses take the rewards as labels, so they train no order
among ties). :class:`GradedVerifierReranker` (``"graded_verifier"``) keeps the verifier's order
and grades within each side (the paper's listwise gains come from graded reward-model scores),
and, like the verifier, gives a prompt with no correct response no order at all. The ``reranker`` parameter (``Params.reranker``, passed on to
``LoopConfig.reranker``) picks it when no ``reward_model`` is set.
"""

from __future__ import annotations

import math
import re
from collections import Counter
from collections.abc import Sequence
from typing import Any, Protocol

from .tasks.answers import _NUMBER, answers_equal, extract_answer, is_correct, normalize_number

_NUMBER_PATTERN = _NUMBER.pattern


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


class StrictVerifierReranker:
    """The verifier that reads only the ``####`` answer line: 1.0 if the number after the last
    ``####`` equals the gold one, else 0.0 (no last-number fallback, which a response can game
    by ending on any number; see :func:`verifier_audit`)."""

    name = "strict_verifier"

    def score(self, texts: Sequence[str], gold: str | None = None,
              prompt: str | None = None) -> list[float]:
        if gold is None:
            raise ValueError("the verifier needs the gold answer")
        return [1.0 if is_correct(t, gold, strict=True) else 0.0 for t in texts]


def verifier_audit(responses: Sequence[str], golds: Sequence[str]) -> dict[str, Any]:
    """How the verifier reads ``responses`` (``[N]``, response ``i`` written for gold ``i``)
    and how often it can be fooled.

    Returns:
        ``rules``: responses per extraction rule (:func:`~larpo_lite.tasks.answers.answer_rule`);
        ``right_by_rule``: of those, marked right by the lenient verifier; ``right`` and
        ``right_strict``: marked right by the lenient and the strict verifier;
        ``cross_prompt_right`` / ``cross_prompt_right_strict``: the share of responses marked
        right when checked against ANOTHER problem's gold (response ``i`` against the first
        gold after it, cyclically, that differs from its own: the next problem's when samples
        come grouped by problem): a false-positive rate, since a response to one problem
        answers another only by chance; ``cross_prompt_pairs``: the pairs checked, and
        ``cross_prompt_hits``: the ``[i, j]`` of those the lenient verifier marked right.
        ``fallback_right_shown``: of the responses marked right through the last-number
        fallback, how many show the gold as a result (:func:`shows_answer`), and
        ``fallback_right_unshown``: the indices of the others (right by the rule only).
    """
    from .tasks.answers import ANSWER_RULES, answer_rule

    if len(responses) != len(golds):
        raise ValueError(f"{len(responses)} responses but {len(golds)} gold answers")
    rules = [answer_rule(t) for t in responses]
    right = [is_correct(t, g) for t, g in zip(responses, golds, strict=True)]
    n = len(responses)
    pairs = []
    for i in range(n):  # the next response's problem with another gold (samples come grouped)
        j = next((j % n for j in range(i + 1, i + n) if not answers_equal(golds[i], golds[j % n])),
                 None)
        if j is not None:
            pairs.append((i, j))
    cross = [is_correct(responses[i], golds[j]) for i, j in pairs]
    cross_strict = [is_correct(responses[i], golds[j], strict=True) for i, j in pairs]
    fallback = [i for i in range(n) if right[i] and rules[i] == "last number"]
    return {"n": n, "rules": {r: rules.count(r) for r in ANSWER_RULES},
            "right_by_rule": {r: sum(ok for ok, x in zip(right, rules, strict=True) if x == r)
                              for r in ANSWER_RULES},
            "right": int(sum(right)),
            "right_strict": int(sum(is_correct(t, g, strict=True)
                                    for t, g in zip(responses, golds, strict=True))),
            "cross_prompt_pairs": len(pairs),
            "cross_prompt_right": sum(cross) / len(pairs) if pairs else 0.0,
            "cross_prompt_right_strict": sum(cross_strict) / len(pairs) if pairs else 0.0,
            "fallback_right_shown": sum(shows_answer(responses[i], golds[i]) for i in fallback),
            "fallback_right_unshown": [i for i in fallback if not shows_answer(responses[i], golds[i])],
            "cross_prompt_hits": [[i, j] for (i, j), hit in zip(pairs, cross, strict=True) if hit]}


# a number right after "####", "answer is" or "=" (optionally a currency sign between)
_SHOWN = re.compile(r"(?:####|answer is|=)[ \t]*[$\u20ac\u00a3]?[ \t]*(" + _NUMBER_PATTERN + ")",
                    re.IGNORECASE)
_BARE = re.compile(r"[$\u20ac\u00a3]?(" + _NUMBER_PATTERN + r")\.?")


def shows_answer(text: str, gold: str | int | float) -> bool:
    """Whether ``text`` shows ``gold`` as a result: right after ``####``, after "answer is",
    or as the result of a computation it writes out (``... = 13``), anywhere in the text; or
    is the bare number itself (``"19"``).

    A reader's check for auditing the verifier (:func:`verifier_audit`, notebook 05), not a
    verifier: a response that states a right answer in words only ("Maya has 16 left") does
    not show it, so it undercounts the right responses; one that ends on a number of the
    question ("There are 13 placeholders") does not show it either, which the lenient
    verifier's last-number fallback would mark right."""
    text = text.replace("\u2212", "-")
    bare = _BARE.fullmatch(text.strip())  # the whole response is the number: a plain answer
    return (bare is not None and answers_equal(bare.group(1), gold)) or any(
        answers_equal(m.group(1), gold) for m in _SHOWN.finditer(text))


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


# a final-answer line as the prompt asks for it: "#### <one token>", an optional final dot
_FORMAT_LINE = re.compile(r"^[ \t]*####[ \t]*(\S+?)[ \t]*\.?[ \t]*$", re.MULTILINE)


def has_answer_line(text: str) -> bool:
    """Whether ``text`` holds a line ``#### <number>`` (the format the prompt asks for); the
    number as the verifier reads it (commas, ``-``/U+2212 signs, decimals, exponents), finite."""
    for m in _FORMAT_LINE.finditer(text):
        value = normalize_number(m.group(1).replace("\u2212", "-"))
        if value is not None and value.is_finite():
            return True
    return False


def answer_closeness(answer: str | None, gold: str | None) -> float:
    """How close a numeric answer is to the gold one, in ``[0, 1]``; 1 when equal.

    ``exp(-|log(|a| + 1) - log(|g| + 1)|) = (min(|a|, |g|) + 1) / (max(|a|, |g|) + 1)``: a
    relative distance of magnitudes (41 for 42 is close, 420 far), halved when ``a`` and
    ``g`` have opposite signs; 0.0 when either is missing or not a number.
    """
    a, g = normalize_number(answer), normalize_number(gold)
    if a is None or g is None:
        return 0.0
    x, y = abs(float(a)), abs(float(g))
    if not (math.isfinite(x) and math.isfinite(y)):
        return 0.0
    close = (min(x, y) + 1.0) / (max(x, y) + 1.0)
    return close / 2 if a * g < 0 else close


class GradedVerifierReranker:
    """The verifier's order with graded ties: every correct response scores above every
    incorrect one, and within each side a graded score orders the responses.

    ``score = 0.55 + 0.45 * q`` for a correct response, ``0.45 * q`` for an incorrect one, so
    correct responses lie in ``[0.55, 1]`` and incorrect ones in ``[0, 0.45]``, with the grade

        ``q = 0.35 * closeness + 0.30 * format + 0.25 * agreement + 0.10 * brevity``  in [0, 1]:

    - closeness: :func:`answer_closeness` of the extracted answer to ``gold`` (1 for a correct
      answer; a near miss beats a far one);
    - format: 1 if the response has a ``#### <number>`` line (:func:`has_answer_line`), the
      format the prompt asks for;
    - agreement: the share of the *other* candidates whose answer equals this one's
      (self-consistency, as in majority vote; 0 without an answer or for a single candidate);
    - brevity: ``1 / (1 + words / 20)``, the last tie-break: among otherwise equal responses
      the more concise one ranks first.

    A list needs a right answer on top: when **no** candidate is correct, every score is 0.0
    (the verifier's value), so the candidates tie and list selection skips the prompt, as
    with the binary verifier. Grading them would make a wrong answer the "best" of its list,
    which a contrastive loss then trains up (the all-wrong prompts made contrastive with
    graded lists collapse). So the grade never lifts a wrong answer above a right one, and
    breaks ties only within the right side and within the wrong side of a list that has both
    (or within an all-right list).

    The score of a text depends on the whole candidate list only through agreement (the
    multiset of answers) and whether any candidate is correct, not on its position, so it is
    deterministic and order-free. Responses whose components all match (the same text sampled
    twice, say) still tie; :func:`larpo_lite.lists.rank_candidates` keeps their sampling order
    (a stable sort).

    Unlike the binary verifier, a prompt whose responses are all right usually gets distinct
    scores, so list selection keeps it (ordered by the grade) instead of skipping it.
    """

    name = "graded_verifier"
    CORRECT_FLOOR, BAND = 0.55, 0.45
    WEIGHTS = {"closeness": 0.35, "format": 0.30, "agreement": 0.25, "brevity": 0.10}

    def components(self, texts: Sequence[str], gold: str) -> list[dict[str, float]]:
        """Per response: ``correct`` (0/1) and the four grade components, each in [0, 1]."""
        answers = [extract_answer(t) for t in texts]
        values = [normalize_number(a) for a in answers]
        counts = Counter(v for v in values if v is not None)
        others = len(texts) - 1
        out = []
        for t, a, v in zip(texts, answers, values, strict=True):
            out.append({
                "correct": 1.0 if is_correct(t, gold) else 0.0,
                "closeness": answer_closeness(a, gold),
                "format": 1.0 if has_answer_line(t) else 0.0,
                "agreement": (counts[v] - 1) / others if v is not None and others > 0 else 0.0,
                "brevity": 1.0 / (1.0 + len(t.split()) / 20.0),
            })
        return out

    def score(self, texts: Sequence[str], gold: str | None = None,
              prompt: str | None = None) -> list[float]:
        if gold is None:
            raise ValueError("the graded verifier needs the gold answer")
        comps = self.components(texts, gold)
        if not any(c["correct"] for c in comps):  # no right answer to put on top: all tie
            return [0.0] * len(comps)
        scores = []
        for c in comps:
            q = sum(w * c[k] for k, w in self.WEIGHTS.items())
            scores.append(self.CORRECT_FLOOR + self.BAND * q if c["correct"] else self.BAND * q)
        return scores


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


RERANKERS: dict[str, Any] = {"verifier": VerifierReranker, "graded_verifier": GradedVerifierReranker,
                             "strict_verifier": StrictVerifierReranker,
                             "majority": MajorityVoteReranker, "reward_model": RewardModelReranker}


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
