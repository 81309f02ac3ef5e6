"""The one reader of the JSON-lines files a run writes (results, candidate lists, cached
candidates): a damaged file is named, with the line and what to do about it.

Files are written whole and renamed into place, so a damaged line means the file was cut,
edited or overwritten after the run wrote it (a copy that stopped half-way, a full disk
outside the run, a hand edit).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

DEFAULT_REMEDY = "delete the file (or its run folder) and run again"


class CorruptFileError(ValueError):
    """A file a run wrote cannot be read back; the message names the file, the line and the
    way out. ``path`` and ``lineno`` (None for the file as a whole) are kept for callers that
    recover (the candidate cache moves such a file aside and samples again)."""

    def __init__(self, path: str | Path, lineno: int | None, problem: str,
                 remedy: str = DEFAULT_REMEDY) -> None:
        self.path, self.lineno = Path(path), lineno
        where = f"{self.path}:{lineno}" if lineno is not None else str(self.path)
        super().__init__(f"{where}: {problem}; {remedy}")


def read_jsonl(path: str | Path, required: tuple[str, ...] = (),
               remedy: str = DEFAULT_REMEDY) -> list[dict[str, Any]]:
    """The rows of a JSON-lines file, one dict per non-blank line.

    Args:
        path: the file (it must exist: a missing file is the caller's question).
        required: keys every row must have.
        remedy: what the user should do, appended to the error message.

    Raises:
        CorruptFileError: a line that is not a JSON object (cut mid-line, garbage, not
            UTF-8), or a row without a required key; the message names file and line.
    """
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as e:
        raise CorruptFileError(path, None, f"not UTF-8 text ({e.reason})", remedy) from None
    rows: list[dict[str, Any]] = []
    for lineno, line in enumerate(text.split("\n"), start=1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError as e:
            raise CorruptFileError(path, lineno, f"corrupt JSON line ({e.msg})", remedy) from None
        if not isinstance(row, dict):
            raise CorruptFileError(path, lineno, f"expected a JSON object, got "
                                   f"{type(row).__name__}", remedy)
        missing = [k for k in required if k not in row]
        if missing:
            raise CorruptFileError(path, lineno, f"row without {', '.join(missing)}", remedy)
        rows.append(row)
    return rows
