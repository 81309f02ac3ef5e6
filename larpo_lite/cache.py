"""A disk cache of sampled candidates, shared by every notebook and method that samples
the same (untrained) policy on the same problems.

Keyed by model name, dtype, backend, batch size, problems, k, temperature, top-p,
max_new_tokens and seed (everything that changes the samples), and by what decides their
``correct`` flags: the problems' gold answers, the verifier's version
(``tasks.answers.VERIFIER_VERSION``) and the answer-format instruction. An entry written under
another gold, verifier or instruction has another key, so it is sampled and checked again;
even a matching entry's stored flags are not trusted: :func:`load_candidates` checks the
texts again with the current verifier. Files are JSON lines
(one row per problem) under ``runs/cache/candidates/`` that ``datasets`` can load with
``load_dataset("json", data_files=...)``. Only cache a policy whose weights are fully
named by ``model_name`` (the initial policy), never a policy in training. A cache file that
cannot be read back (cut, garbage, other problems) is renamed ``<name>.corrupt`` with a
warning and sampled again.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import warnings
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from .evaluate import CandidateSet, prompts_for, sample_candidates
from .jsonl import CorruptFileError, read_jsonl
from .paths import runs_dir, writable_dir
from .sampling import Generation, Sampler
from .tasks import Problem, is_correct
from .tasks import answers as _answers
from .tasks import prompts as _prompts


def cache_root() -> Path:
    """``runs/cache/candidates`` (git-ignored; under ``$LARPO_LITE_RUNS`` when set), created
    and checked writable (an error names ``LARPO_LITE_RUNS``)."""
    return writable_dir(runs_dir() / "cache" / "candidates")


def candidates_key(sampler: Sampler, problems: Sequence[Problem], k: int, temperature: float,
                   max_new_tokens: int, top_p: float, seed: int,
                   prompts: Sequence[str] = ()) -> str:
    """A stable hash of everything that determines the samples (the prompt strings too: a
    changed instruction or chat template must not reuse old samples) and their ``correct``
    flags: the gold answers, the verifier's version and the instruction."""
    model = getattr(sampler, "model", None)
    dtype = str(next(model.parameters()).dtype) if model is not None else ""
    blob = json.dumps({
        "model": sampler.model_name, "dtype": dtype, "backend": sampler.backend,
        "batch_size": getattr(sampler, "batch_size", None),
        "problems": [[p.id, p.question] for p in problems], "k": k,
        # what decides the correct flags: a changed gold, verifier or instruction is another entry
        "answers": hashlib.sha256("\0".join(p.answer for p in problems).encode()).hexdigest(),
        "verifier": _answers.VERIFIER_VERSION, "instruction": _prompts.INSTRUCTION,
        "temperature": float(temperature), "top_p": float(top_p),
        "max_new_tokens": max_new_tokens, "seed": seed,
        "prompts": hashlib.sha256("\0".join(prompts).encode()).hexdigest() if prompts else None,
        # the HF decode loop draws other samples than plain generate (whose keys stay as they were)
        **({} if getattr(sampler, "decode", "generate") == "generate" else {"decode": sampler.decode}),
    }, sort_keys=True)
    return hashlib.sha256(blob.encode()).hexdigest()[:20]


def save_candidates(cands: CandidateSet, path: str | Path) -> Path:
    """One JSON line per problem: id, question, answer, prompt, texts, num_tokens, correct..."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
    try:
        _write_rows(cands, tmp)
        tmp.replace(path)
    except BaseException:
        tmp.unlink(missing_ok=True)  # a full disk leaves no part-written temp behind
        raise
    return path


def _write_rows(cands: CandidateSet, tmp: Path) -> None:
    with open(tmp, "w") as f:
        for p, g, c in zip(cands.problems, cands.generations, cands.correct, strict=True):
            f.write(json.dumps({
                "id": p.id, "question": p.question, "answer": p.answer, "prompt": g.prompt,
                "texts": g.texts, "num_tokens": g.num_tokens, "finished": g.finished,
                "correct": [bool(x) for x in c], "temperature": g.temperature, "top_p": g.top_p,
                "model_name": g.model_name, "backend": g.backend, "seed": g.seed,
                "verifier_version": _answers.VERIFIER_VERSION,
            }) + "\n")


_FIELDS = ("id", "prompt", "texts", "num_tokens", "finished", "correct", "temperature", "top_p",
           "model_name", "backend", "seed")


def load_candidates(path: str | Path, problems: Sequence[Problem]) -> CandidateSet:
    """Read a file written by ``save_candidates`` (problems must match, in order). The
    ``correct`` flags ``[P, k]`` are those of the current verifier against ``problems``' gold
    answers, checked again from the texts (the stored flags are not trusted: cheap next to
    sampling, and right after a gold or verifier change or a hand edit).

    Raises:
        CorruptFileError: a damaged line (named), or rows that are not ``problems``."""
    remedy = "delete the file and sample again"
    rows = read_jsonl(path, required=_FIELDS, remedy=remedy)
    if [r["id"] for r in rows] != [p.id for p in problems]:
        raise CorruptFileError(path, None, f"{len(rows)} cached problems do not match the "
                               f"{len(problems)} requested ones", remedy)
    gens = [Generation(prompt=r["prompt"], texts=r["texts"], num_tokens=r["num_tokens"],
                       finished=r["finished"], temperature=r["temperature"], top_p=r["top_p"],
                       model_name=r["model_name"], backend=r["backend"], seed=r["seed"],
                       meta={"cached": True}) for r in rows]
    correct = np.array([[is_correct(t, p.answer) for t in r["texts"]]
                        for r, p in zip(rows, problems, strict=True)], dtype=bool)
    return CandidateSet(list(problems), gens, correct)


def cached_candidates(sampler: Sampler, problems: Sequence[Problem], tokenizer: Any, k: int,
                      temperature: float, max_new_tokens: int, top_p: float = 1.0,
                      seed: int = 0, root: str | Path | None = None) -> CandidateSet:
    """``sample_candidates`` through the disk cache (sampled once, then read back). Two
    processes asking for the same samples at once (two loop runs of one seed starting
    together) do not both sample: the second waits on the key's lock, then reads the first's
    file."""
    prompts = prompts_for(problems, tokenizer)
    key = candidates_key(sampler, problems, k, temperature, max_new_tokens, top_p, seed, prompts)
    path = Path(root or cache_root()) / f"{sampler.model_name.replace('/', '_')}-T{temperature}-k{k}-{key}.jsonl"
    with _key_lock(path):
        return _read_or_sample(path, sampler, problems, tokenizer, k, temperature, max_new_tokens,
                               top_p, seed)


@contextlib.contextmanager
def _key_lock(path: Path) -> Iterator[None]:
    """An exclusive lock on ``<path>.lock`` (``flock``; released when the holder ends, even
    killed); no lock where ``fcntl`` is missing."""
    try:
        import fcntl
    except ImportError:  # not POSIX: duplicates are possible, never wrong
        yield
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path.with_name(path.name + ".lock"), "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def _read_or_sample(path: Path, sampler: Sampler, problems: Sequence[Problem], tokenizer: Any,
                    k: int, temperature: float, max_new_tokens: int, top_p: float,
                    seed: int) -> CandidateSet:
    """The cached samples at ``path``, else sampled and saved (the caller holds its lock)."""
    if path.is_file():
        try:
            return load_candidates(path, problems)
        except CorruptFileError as e:
            aside = path.with_name(path.name + ".corrupt")
            try:
                path.replace(aside)
            except FileNotFoundError:  # another process moved it aside first
                pass
            warnings.warn(f"unreadable candidate cache moved aside to {aside}, sampling again: {e}",
                          stacklevel=2)
    cands = sample_candidates(sampler, problems, tokenizer, k=k, temperature=temperature,
                              max_new_tokens=max_new_tokens, top_p=top_p, seed=seed)
    save_candidates(cands, path)
    return cands


class InitialPolicy:
    """The untrained policy of a notebook's parameters, loaded on first use and sampled through
    the cache (notebooks 01 and 02): a notebook that replays its records never loads it.

    Args:
        params: a :class:`~larpo_lite.config.Params` (reads ``model_name``, ``device``,
            ``dtype``, ``backend``, ``batch_size``, ``max_new_tokens``, ``top_p``, ``seed``).
    """

    def __init__(self, params: Any) -> None:
        self.params = params
        self._loaded: tuple[Any, Any, Sampler] | None = None

    def load(self) -> tuple[Any, Any, Sampler]:
        """``(policy, tokenizer, sampler)``, loaded the first time."""
        if self._loaded is None:
            from .models import load_policy
            from .sampling import make_sampler

            p = self.params
            policy, tokenizer = load_policy(p.model_name, device=p.device, dtype=p.dtype)
            self._loaded = (policy, tokenizer,
                            make_sampler(p.backend, policy, tokenizer, batch_size=p.batch_size))
        return self._loaded

    def describe(self) -> dict[str, Any]:
        """``{"params_m": parameters in millions, "dtype": "torch.float32"}``."""
        policy = self.load()[0]
        return {"params_m": sum(x.numel() for x in policy.parameters()) / 1e6,
                "dtype": str(policy.dtype)}

    def candidates(self, problems: Sequence[Problem], k: int, temperature: float) -> CandidateSet:
        """``k`` samples per problem at ``temperature`` (``correct``: bool ``[P, k]``)."""
        import torch

        _, tokenizer, sampler = self.load()
        p = self.params
        torch.manual_seed(p.seed)
        return cached_candidates(sampler, problems, tokenizer, k=k, temperature=temperature,
                                 max_new_tokens=p.max_new_tokens, top_p=p.top_p, seed=p.seed)

    def greedy(self, problems: Sequence[Problem]) -> CandidateSet:
        """The greedy response to each problem (``correct``: bool ``[P, 1]``)."""
        _, tokenizer, sampler = self.load()
        return cached_candidates(sampler, problems, tokenizer, k=1, temperature=0.0,
                                 max_new_tokens=self.params.max_new_tokens, seed=self.params.seed)
