"""mini-GSM: procedurally generated arithmetic word problems with exact answers.

Introduced in notebooks/01_ir_analogy. Every problem comes with a worked solution
ending in ``#### <answer>`` (GSM8K's format), so the same problems serve the
generator (the LLM) and the retriever (passages are worked solutions).
"""

from __future__ import annotations

import json
import random
from collections.abc import Callable, Iterable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from ..paths import data_dir

TEMPLATES = ("addition", "subtraction", "multiplication", "two_step")
SPLITS = ("train", "validation", "test")
# Number of problems and the seed of each committed split (see `write_splits`).
SPLIT_SIZES = {"train": 1000, "validation": 200, "test": 300}
SPLIT_SEEDS = {"train": 1000, "validation": 2000, "test": 3000}

_NAMES = ["Ava", "Ben", "Chloe", "Dan", "Emma", "Finn", "Grace", "Hugo", "Iris", "Jack",
          "Kate", "Leo", "Maya", "Noah", "Olivia", "Paul", "Quinn", "Rosa", "Sam", "Tara"]
_ITEMS = ["apples", "marbles", "stickers", "books", "pencils", "cookies", "stamps", "shells",
          "cards", "balloons", "coins", "flowers"]
_CONTAINERS = ["boxes", "bags", "packs", "jars", "baskets", "crates"]


@dataclass(frozen=True)
class Problem:
    """One problem: question, gold answer (a number as a string) and a worked solution."""

    id: str
    question: str
    answer: str
    solution: str
    template: str = ""
    difficulty: int = 1


def _hi(difficulty: int) -> int:
    """Largest operand for a difficulty level: 1 -> 20, 2 -> 100, 3 -> 1000."""
    if difficulty not in (1, 2, 3):
        raise ValueError(f"difficulty must be 1, 2 or 3, got {difficulty!r}")
    return {1: 20, 2: 100, 3: 1000}[difficulty]


def _addition(rng: random.Random, d: int) -> tuple[str, int, str]:
    name, item = rng.choice(_NAMES), rng.choice(_ITEMS)
    a, b = rng.randint(2, _hi(d)), rng.randint(2, _hi(d))
    q = f"{name} has {a} {item}. {name} gets {b} more {item}. How many {item} does {name} have now?"
    s = f"{name} starts with {a} {item} and gets {b} more, so {a} + {b} = {a + b}."
    return q, a + b, s


def _subtraction(rng: random.Random, d: int) -> tuple[str, int, str]:
    name, item = rng.choice(_NAMES), rng.choice(_ITEMS)
    a = rng.randint(5, _hi(d))
    b = rng.randint(1, a - 1)
    q = f"{name} has {a} {item} and gives away {b} of them. How many {item} does {name} have left?"
    s = f"{name} has {a} {item} and gives away {b}, so {a} - {b} = {a - b}."
    return q, a - b, s


def _multiplication(rng: random.Random, d: int) -> tuple[str, int, str]:
    name, item, box = rng.choice(_NAMES), rng.choice(_ITEMS), rng.choice(_CONTAINERS)
    hi = max(5, int(_hi(d) ** 0.5) + 2)
    a, b = rng.randint(2, hi), rng.randint(2, hi)
    q = f"{name} buys {a} {box} of {item}. Each of the {box} holds {b} {item}. How many {item} does {name} buy?"
    s = f"There are {a} {box} with {b} {item} each, so {a} * {b} = {a * b}."
    return q, a * b, s


def _two_step(rng: random.Random, d: int) -> tuple[str, int, str]:
    name, item, box = rng.choice(_NAMES), rng.choice(_ITEMS), rng.choice(_CONTAINERS)
    hi = max(5, int(_hi(d) ** 0.5) + 2)
    a = rng.randint(2, _hi(d))
    b, c = rng.randint(2, hi), rng.randint(2, hi)
    if rng.random() < 0.5:
        q = (f"{name} has {a} {item}. Then {name} buys {b} {box} with {c} {item} in each. "
             f"How many {item} does {name} have in total?")
        s = (f"The {box} hold {b} * {c} = {b * c} {item}. "
             f"Adding the {a} {item} {name} had gives {a} + {b * c} = {a + b * c}.")
        return q, a + b * c, s
    a = a + b * c  # keep the answer positive
    q = (f"{name} has {a} {item}. {name} gives {b} friends {c} {item} each. "
         f"How many {item} does {name} have left?")
    s = (f"{name} gives away {b} * {c} = {b * c} {item}. "
         f"That leaves {a} - {b * c} = {a - b * c}.")
    return q, a - b * c, s


_BUILDERS: dict[str, Callable[[random.Random, int], tuple[str, int, str]]] = {
    "addition": _addition,
    "subtraction": _subtraction,
    "multiplication": _multiplication,
    "two_step": _two_step,
}


def generate_problems(
    n: int,
    seed: int,
    templates: Sequence[str] = TEMPLATES,
    difficulty: int | Sequence[int] = (1, 2),
    prefix: str = "p",
    exclude: Iterable[str] = (),
) -> list[Problem]:
    """``n`` distinct problems, the same for the same arguments.

    Args:
        n: number of problems.
        seed: seed of the generator's own ``random.Random``.
        templates: template names drawn uniformly (see ``TEMPLATES``).
        difficulty: one level (1: operands up to 20, 2: up to 100, 3: up to 1000) or
            several, drawn uniformly.
        prefix: id prefix; ids are ``f"{prefix}{i:05d}"``.
        exclude: questions that must not appear (to keep splits disjoint).
    """
    unknown = [t for t in templates if t not in _BUILDERS]
    if unknown:
        raise ValueError(f"unknown template(s) {unknown}; valid: {list(TEMPLATES)}")
    levels = [difficulty] if isinstance(difficulty, int) else list(difficulty)
    for lv in levels:
        _hi(lv)
    rng = random.Random(seed)
    seen = set(exclude)
    out: list[Problem] = []
    tries = 0
    while len(out) < n:
        tries += 1
        if tries > 100 * n + 1000:
            raise RuntimeError(f"could not generate {n} distinct problems; lower n or widen difficulty")
        template = rng.choice(list(templates))
        level = rng.choice(levels)
        q, ans, sol = _BUILDERS[template](rng, level)
        if q in seen:
            continue
        seen.add(q)
        out.append(Problem(id=f"{prefix}{len(out):05d}", question=q, answer=str(ans),
                           solution=f"{sol}\n#### {ans}", template=template, difficulty=level))
    return out


def write_jsonl(problems: Iterable[Problem], path: str | Path) -> Path:
    """Write problems as JSON lines (written to a temporary file, then renamed)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(path.suffix + ".tmp")
    with open(tmp, "w") as f:
        for p in problems:
            f.write(json.dumps(asdict(p)) + "\n")
    tmp.replace(path)
    return path


def read_jsonl(path: str | Path, with_lineno: bool = False) -> list[Any]:
    """Rows of a JSON-lines file (``(line number, row)`` pairs if ``with_lineno``); a
    malformed line raises ValueError naming file and line."""
    path = Path(path)
    rows: list[Any] = []
    with open(path) as f:
        for lineno, line in enumerate(f, start=1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except json.JSONDecodeError as e:
                raise ValueError(f"{path}:{lineno}: malformed JSON line ({e.msg})") from None
            if not isinstance(row, dict):
                raise ValueError(f"{path}:{lineno}: expected a JSON object, got {type(row).__name__}")
            rows.append((lineno, row) if with_lineno else row)
    return rows


def read_problems(path: str | Path) -> list[Problem]:
    """Problems from a JSON-lines file; missing fields, a gold answer that is not a number
    (as ``answers.normalize_number`` reads one) and an id that an earlier line has (results,
    caches and paired comparisons are keyed by id) raise ValueError naming file and line."""
    from .answers import normalize_number

    out = []
    first_line: dict[str, int] = {}
    for lineno, row in read_jsonl(path, with_lineno=True):
        missing = [k for k in ("id", "question", "answer") if k not in row]
        if missing:
            raise ValueError(f"{path}:{lineno}: missing field(s) {missing}")
        pid = str(row["id"])
        if pid in first_line:
            raise ValueError(f"{path}:{lineno}: duplicate problem id {pid!r} (first on line "
                             f"{first_line[pid]}); give every problem its own id")
        first_line[pid] = lineno
        if isinstance(row["answer"], bool) or normalize_number(row["answer"]) is None:
            raise ValueError(f"{path}:{lineno}: gold answer {row['answer']!r} is not a number "
                             "(the verifier compares numbers)")
        out.append(Problem(id=pid, question=row["question"], answer=str(row["answer"]),
                           solution=row.get("solution", ""), template=row.get("template", ""),
                           difficulty=int(row.get("difficulty", 1))))
    return out


def split_path(split: str) -> Path:
    """The committed file of a split: ``data/mini_gsm/<split>.jsonl``."""
    if split not in SPLITS:
        raise ValueError(f"unknown split {split!r}; valid: {list(SPLITS)}")
    return data_dir() / "mini_gsm" / f"{split}.jsonl"


def load_split(split: str, n: int | None = None) -> list[Problem]:
    """The first ``n`` problems (all if None) of a committed split."""
    probs = read_problems(split_path(split))
    if n is not None:
        if n > len(probs):
            raise ValueError(f"asked for {n} {split} problems; the split has {len(probs)}")
        probs = probs[:n]
    return probs


def make_splits() -> dict[str, list[Problem]]:
    """The three splits, disjoint, from the fixed seeds ``SPLIT_SEEDS``."""
    out: dict[str, list[Problem]] = {}
    seen: set[str] = set()
    for split in SPLITS:
        probs = generate_problems(SPLIT_SIZES[split], seed=SPLIT_SEEDS[split],
                                  prefix=f"{split[:3]}-", exclude=seen)
        seen.update(p.question for p in probs)
        out[split] = probs
    return out


def write_splits(folder: str | Path | None = None) -> dict[str, Path]:
    """Regenerate ``data/mini_gsm/{train,validation,test}.jsonl``."""
    folder = Path(folder) if folder else data_dir() / "mini_gsm"
    return {s: write_jsonl(p, Path(folder) / f"{s}.jsonl") for s, p in make_splits().items()}
