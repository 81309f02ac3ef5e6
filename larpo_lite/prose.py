"""Prose that cannot go stale: markdown with placeholders, rendered from the run's values.

A notebook's markdown names a setting or a result as a placeholder instead of writing it by
hand::

    Each round samples {{k_train}} responses for each of {{prompts_per_iter}} prompts, and
    the best objective moved test accuracy by {{best_diff:+.3f}}.

The notebook's last cell publishes the values (:func:`publish`: the parameters and what the
run measured); when the run's executed copy is written (``notebooks.write_executed_copy``),
:func:`render_notebook` fills every placeholder from them, so the committed copy states this
run's numbers, and a placeholder without a value is an error naming it. Opened live in
Jupyter, the source shows the placeholder's name (the parameters cell holds its value).

:func:`stated_settings` and :func:`mismatches` are the check on everything else (solutions,
the guide, outputs): a text that writes ``name=value`` for a parameter must agree with the
run's value.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable
from typing import Any

MIME = "application/vnd.larpo-lite.values+json"
PLACEHOLDER = re.compile(r"\{\{\s*([A-Za-z_][\w.]*)\s*(?::([^}]*))?\}\}")


class UnrenderedError(KeyError):
    """A placeholder names a value the run did not publish."""


def placeholders(text: str) -> list[str]:
    """The names of the placeholders in ``text``, in order."""
    return [m.group(1) for m in PLACEHOLDER.finditer(text)]


def _lookup(values: dict[str, Any], name: str) -> Any:
    cur: Any = values
    for part in name.split("."):
        if isinstance(cur, dict) and part in cur:
            cur = cur[part]
        elif isinstance(cur, list) and part.lstrip("-").isdigit():
            cur = cur[int(part)]
        else:
            raise UnrenderedError(f"{{{{{name}}}}}: no value {part!r} was published "
                                  f"(known: {', '.join(sorted(values)) or 'none'})")
    return cur


def render(text: str, values: dict[str, Any]) -> str:
    """``text`` with each ``{{name}}`` or ``{{name:format}}`` replaced by its value
    (``name`` may be dotted: ``comparisons.0.diff``); lists are joined with ", "."""
    def fill(m: re.Match[str]) -> str:
        value = _lookup(values, m.group(1))
        fmt = (m.group(2) or "").strip()
        if fmt:
            return format(value, fmt)
        if isinstance(value, (list, tuple)):
            return ", ".join(str(v) for v in value)
        return str(value)

    return PLACEHOLDER.sub(fill, text)


def _plain(value: Any) -> Any:
    if hasattr(value, "to_dict") and not isinstance(value, dict):
        value = value.to_dict()
    return json.loads(json.dumps(value, default=lambda x: x.item() if hasattr(x, "item") else str(x)))


def publish(params: Any = None, **values: Any) -> None:
    """Publish the values a notebook's placeholders name: the parameters (a ``Params``, whose
    fields become names) and any measured value given by keyword. Displays nothing readable:
    one output of its own type that :func:`render_notebook` reads and removes."""
    from IPython.display import display

    out = dict(_plain(params) if params is not None else {})
    out.update(_plain(values))
    display({MIME: out, "text/plain": ""}, raw=True)


def published_values(nb: Any) -> dict[str, Any] | None:
    """The values a notebook published (the last :func:`publish` output), or None."""
    found = None
    for cell in nb.cells:
        for out in cell.get("outputs", []) if cell.cell_type == "code" else []:
            data = out.get("data", {})
            if MIME in data:
                found = data[MIME]
    return found


def render_notebook(nb: Any) -> bool:
    """Fill the markdown placeholders of an executed notebook from its published values and
    drop the publishing output; returns whether anything changed. A notebook with
    placeholders but no published values, or a placeholder without a value, is an error."""
    values = published_values(nb)
    names = [n for c in nb.cells if c.cell_type == "markdown" for n in placeholders(c.source)]
    if values is None:
        if names:
            raise UnrenderedError(f"placeholders {sorted(set(names))} but the notebook published no "
                                  "values (prose.publish in its last cell)")
        return False
    for cell in nb.cells:
        if cell.cell_type == "markdown" and placeholders(cell.source):
            cell.source = render(cell.source, values)
        if cell.cell_type == "code":
            cell.outputs = [o for o in cell.get("outputs", []) if MIME not in o.get("data", {})]
    return True


# ---------------------------------------------------------------------------- stated settings
def stated_settings(text: str, names: Iterable[str]) -> list[tuple[str, str]]:
    """Every ``name=value``, ``name: value`` or ``name = value`` in ``text`` (also with the
    name in backticks) for the given parameter names whose value is written as a literal (a
    number, a list of numbers, True or False), as written: ``[(name, value)]``. Prose and
    outputs are what it reads: code assigns names, it does not state settings."""
    names = sorted(set(names), key=len, reverse=True)
    if not names:
        return []
    number = r"[-+]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][-+]?\d+)?"
    value = rf"\[\s*{number}(?:\s*,\s*{number})*\s*\]|{number}(?![\w.])|True|False|true|false"
    pattern = re.compile(r"(?<![\w.])`?(" + "|".join(map(re.escape, names)) + r")`?\s*(?:=|:)\s*"
                         rf"`?({value})")
    return [(m.group(1), m.group(2)) for m in pattern.finditer(text)]


def _same(written: str, value: Any) -> bool:
    try:
        parsed = json.loads(written.replace("'", '"'))
    except ValueError:
        parsed = {"true": True, "false": False, "none": None}.get(written.lower(), written)
    if isinstance(value, bool) or isinstance(parsed, bool):
        return parsed == value
    if isinstance(value, (int, float)) and isinstance(parsed, (int, float)):
        return abs(float(parsed) - float(value)) <= 1e-9 * max(1.0, abs(float(value)))
    if isinstance(value, list) and isinstance(parsed, list):
        return len(value) == len(parsed) and all(_same(json.dumps(p), v) for p, v in zip(parsed, value, strict=True))
    return str(parsed) == str(value)


def mismatches(text: str, params: dict[str, Any], where: str = "") -> list[str]:
    """The settings ``text`` states (:func:`stated_settings`) that differ from ``params``, one
    line each, naming ``where``."""
    out = []
    for name, written in stated_settings(text, params):
        if not _same(written, params[name]):
            out.append(f"{where}: states {name}={written}, the run used {name}={params[name]!r}")
    return out
