"""Loaders for GSM8K- and MATH-shaped data through ``datasets`` (for the GPU presets).

Both return ``Problem`` records so the rest of the package does not care where a
problem came from. A local ``.json``/``.jsonl`` file or folder is read offline; any
other string is treated as a hub dataset id.
"""

from __future__ import annotations

from pathlib import Path

from ..errors import LarpoLiteError
from .answers import extract_answer
from .mini_gsm import Problem

_OFFLINE_HINT = ("pass a local .json/.jsonl file, or use the committed mini-GSM splits "
                 "(larpo_lite.tasks.load_split)")


def _load_rows(source: str, split: str, config: str | None, hint: str = _OFFLINE_HINT) -> list[dict]:
    """Rows of a hub dataset split, or of local .json/.jsonl files (a file, or every such file
    of a folder); a failure is a LarpoLiteError (a RuntimeError) naming ``source`` and saying
    what to do offline."""
    from datasets import load_dataset

    p = Path(source)
    try:
        if p.exists():
            files = sorted(p.glob("*.json*")) if p.is_dir() else [p]
            if not files:
                raise FileNotFoundError(f"no .json/.jsonl files in {p}")
            ds = load_dataset("json", data_files=[str(f) for f in files], split="train")
        else:
            ds = load_dataset(source, config, split=split)
    except (FileNotFoundError, ConnectionError, OSError, ValueError) as e:
        raise LarpoLiteError(
            f"could not load dataset {source!r} (split {split!r}): {e}. Without network, {hint}."
        ) from e
    return list(ds)


def last_boxed(text: str) -> str | None:
    """The content of the last ``\\boxed{...}`` in a MATH solution (nested braces allowed)."""
    idx = text.rfind("\\boxed{")
    if idx < 0:
        return None
    i, depth, out = idx + len("\\boxed{"), 1, []
    while i < len(text):
        ch = text[i]
        depth += ch == "{"
        depth -= ch == "}"
        if depth == 0:
            return "".join(out).strip()
        out.append(ch)
        i += 1
    return None


def load_gsm8k(source: str = "openai/gsm8k", split: str = "test", n: int | None = None) -> list[Problem]:
    """GSM8K-shaped rows (``question``, ``answer`` ending in ``#### <number>``) as Problems."""
    rows = _load_rows(source, split, "main" if source == "openai/gsm8k" else None)
    out = []
    for i, row in enumerate(rows[:n] if n else rows):
        if "question" not in row or "answer" not in row:
            raise ValueError(f"{source} row {i}: expected fields 'question' and 'answer', got {sorted(row)}")
        gold = extract_answer(row["answer"])
        if gold is None:
            raise ValueError(f"{source} row {i}: no final answer in {row['answer']!r}")
        out.append(Problem(id=f"gsm8k-{split}-{i:05d}", question=row["question"], answer=gold,
                           solution=row["answer"], template="gsm8k"))
    return out


def load_math(source: str = "hendrycks/competition_math", split: str = "test",
              n: int | None = None, numeric_only: bool = True) -> list[Problem]:
    """MATH-shaped rows (``problem``, ``solution`` with ``\\boxed{}``) as Problems.

    Our verifier compares numbers, so by default only problems whose boxed answer is
    a plain number are kept.
    """
    rows = _load_rows(source, split, None)
    out = []
    for i, row in enumerate(rows[:n] if n else rows):
        if "problem" not in row or "solution" not in row:
            raise ValueError(f"{source} row {i}: expected fields 'problem' and 'solution', got {sorted(row)}")
        boxed = last_boxed(row["solution"])
        if boxed is None:
            continue
        number = extract_answer(boxed)
        if numeric_only and (number is None or number != boxed.replace(",", "")):
            continue
        out.append(Problem(id=f"math-{split}-{i:05d}", question=row["problem"], answer=number or boxed,
                           solution=row["solution"], template="math"))
    return out


VERIFIED_TASKS = ("mini_gsm", "gsm8k", "math")  # a rule checks the final answer
REWARD_TASKS = ("ultrafeedback",)                # a reward model scores open-ended responses
TASKS = VERIFIED_TASKS + REWARD_TASKS
HUB_VALIDATION = 500  # GSM8K and MATH have no validation split: the last rows of train


def has_verifier(task: str) -> bool:
    """Whether a rule checks the task's answers (accuracy, pass@N); otherwise a reward model
    scores them (mean reward, best-of-N reward)."""
    if task not in TASKS:
        raise ValueError(f"unknown task {task!r}; valid: {', '.join(TASKS)}")
    return task in VERIFIED_TASKS


def load_task(task: str, split: str, n: int | None = None, source: str | None = None) -> list[Problem]:
    """The first ``n`` problems of a task's split, whatever the task (the ``task`` parameter).

    ``mini_gsm`` reads the committed splits; ``gsm8k``, ``math`` and ``ultrafeedback`` go
    through ``datasets`` (``source``: a hub id or local files; None or "" = the hub default).
    GSM8K's and MATH's ``validation`` is the last ``HUB_VALIDATION`` rows of train and their
    ``train`` the rows before them; UltraFeedback: see :mod:`larpo_lite.tasks.ultrafeedback`.
    """
    from .mini_gsm import SPLITS, load_split

    if task not in TASKS:
        raise ValueError(f"unknown task {task!r}; valid: {', '.join(TASKS)}")
    if split not in SPLITS:
        raise ValueError(f"unknown split {split!r}; valid: {', '.join(SPLITS)}")
    if task == "mini_gsm":
        if source:
            raise ValueError("mini_gsm reads the committed splits; it takes no source")
        return load_split(split, n)
    if task == "ultrafeedback":
        from .ultrafeedback import HUB_ID, load_ultrafeedback

        return load_ultrafeedback(source or HUB_ID, split, n)
    loader = load_gsm8k if task == "gsm8k" else load_math
    kwargs = {"source": source} if source else {}
    if split == "test":
        return loader(split="test", n=n, **kwargs)
    rows = loader(split="train", **kwargs)
    rows = rows[-HUB_VALIDATION:] if split == "validation" else rows[:-HUB_VALIDATION]
    return rows[:n] if n is not None else rows
