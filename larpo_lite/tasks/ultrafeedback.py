"""UltraFeedback prompts (the paper's alignment task) through ``datasets``.

The alignment side of LARPO trains on open-ended instructions, where no rule can say
whether a response is right: a reward model ranks the candidates and scores the policy
(:class:`larpo_lite.rewards.RewardModelReranker`). Only the prompts are used; the
``chosen`` response is kept as the problem's ``solution`` (``gold_in_list`` adds it to a
list) and ``answer`` is empty, since there is nothing to verify.

Splits follow ``HuggingFaceH4/ultrafeedback_binarized``: ``train`` = ``train_prefs`` minus its
last ``VALIDATION_ROWS`` rows (a fifth of it when that is fewer), ``validation`` = those rows, ``test`` = ``test_prefs``. A local
folder in the same shape (``train_prefs.jsonl`` and ``test_prefs.jsonl``, rows with a
``prompt`` field) is read offline.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ..errors import LarpoLiteError
from .mini_gsm import Problem

HUB_ID = "HuggingFaceH4/ultrafeedback_binarized"
TEMPLATE = "ultrafeedback"
VALIDATION_ROWS = 500
_HUB_SPLIT = {"train": "train_prefs", "validation": "train_prefs", "test": "test_prefs"}


def _rows(source: str, hub_split: str) -> list[dict[str, Any]]:
    """The rows of a hub split, or of ``<folder>/<hub_split>.jsonl`` for a local folder."""
    from .hub import _load_rows

    p = Path(source)
    if p.is_dir():
        f = p / f"{hub_split}.jsonl"
        if not f.is_file():
            raise LarpoLiteError(f"{p} has no {f.name} (a local UltraFeedback folder holds "
                               "train_prefs.jsonl and test_prefs.jsonl)")
        source = str(f)
    elif p.exists():
        raise LarpoLiteError(f"{p} is a file; give the folder holding train_prefs.jsonl and "
                           "test_prefs.jsonl")
    return _load_rows(source, hub_split, None,
                      hint="pass a local folder with train_prefs.jsonl and test_prefs.jsonl")


def _chosen_text(chosen: Any) -> str:
    """The assistant turn of a ``chosen`` field (a message list) or the field itself (a string)."""
    if isinstance(chosen, list):
        turns = [m.get("content", "") for m in chosen if isinstance(m, dict) and m.get("role") == "assistant"]
        return turns[-1] if turns else ""
    return chosen if isinstance(chosen, str) else ""


def load_ultrafeedback(source: str = HUB_ID, split: str = "test", n: int | None = None) -> list[Problem]:
    """The first ``n`` prompts of a split as Problems (``answer`` empty: a reward model scores them).

    Args:
        source: a hub dataset id (``HuggingFaceH4/ultrafeedback_binarized``) or a local folder
            with ``train_prefs.jsonl`` / ``test_prefs.jsonl``.
        split: ``train``, ``validation`` or ``test`` (see the module docstring).
        n: how many (None: all).

    Raises:
        ValueError: an unknown split, or a row without a ``prompt``.
        RuntimeError: the data cannot be loaded (the message names ``source``).
    """
    if split not in _HUB_SPLIT:
        raise ValueError(f"unknown split {split!r}; valid: {', '.join(_HUB_SPLIT)}")
    rows = _rows(source, _HUB_SPLIT[split])
    first = 0
    if split != "test":
        n_val = min(VALIDATION_ROWS, len(rows) // 5)
        if n_val < 1:
            raise ValueError(f"{source}: train_prefs has {len(rows)} rows; at least 5 are needed "
                             "(a fifth, up to 500, is the validation split)")
        cut = len(rows) - n_val
        first = cut if split == "validation" else 0
        rows = rows[cut:] if split == "validation" else rows[:cut]
    out = []
    first_row: dict[str, int] = {}
    for i, row in enumerate(rows[:n] if n is not None else rows):
        prompt = row.get("prompt")
        if not isinstance(prompt, str) or not prompt.strip():
            raise ValueError(f"{source} {_HUB_SPLIT[split]} row {first + i}: no 'prompt' text "
                             f"(fields: {sorted(row)})")
        pid = row.get("prompt_id") or f"{first + i:06d}"
        problem_id = f"uf-{split}-{pid}"
        if problem_id in first_row:  # results, caches and paired comparisons are keyed by id
            raise ValueError(f"{source} {_HUB_SPLIT[split]} row {first + i}: duplicate problem id "
                             f"{problem_id!r} (prompt_id {pid!r}, first in row "
                             f"{first_row[problem_id]}); give every row its own prompt_id")
        first_row[problem_id] = first + i
        out.append(Problem(id=problem_id, question=prompt, answer="",
                           solution=_chosen_text(row.get("chosen")), template=TEMPLATE))
    return out
