"""The README's results table, rendered from the committed default run's loop report
(``reports/07_larpo_loop.json``: every arm of notebook 07, paired against the initial policy on
the same test problems).

    python -m larpo_lite.readme           # rewrite the block between the markers in README.md
    python -m larpo_lite.readme --check   # exit 1 when README.md's table differs

Every number and setting in the block is read from the report; ``tests/test_readme.py`` fails
when the committed README's block differs from :func:`results_block`, so a new default run
cannot leave the README's first screen stale.
"""

from __future__ import annotations

import argparse
import json
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from .paths import repo_root

BEGIN, END = "<!-- results:begin -->", "<!-- results:end -->"
LOOP_REPORT = "07_larpo_loop"
INIT = "init"


class ReadmeError(ValueError):
    """A report the README's table is rendered from is missing or not the default run's."""


def _report(notebook: str, folder: str | Path | None) -> dict[str, Any]:
    path = (Path(folder) if folder else repo_root() / "reports") / f"{notebook}.json"
    if not path.is_file():
        raise ReadmeError(f"{path} is missing: the README's results table is rendered from the "
                          f"default run's reports; run `make notebooks ONLY={notebook[:2]}`")
    report = json.loads(path.read_text())
    preset = report.get("params", {}).get("preset")
    if preset != "default":
        raise ReadmeError(f"{path} comes from preset {preset!r}, not 'default': the README shows "
                          "the committed default run only; restore the file from git or run "
                          f"`make notebooks ONLY={notebook[:2]}`")
    return report


def _one(values: set[Any], what: str) -> Any:
    if len(values) != 1:
        raise ReadmeError(f"the loop report's arms differ in {what} ({sorted(map(str, values))}): "
                          "the README's one-line caption cannot describe them")
    return next(iter(values))


def results_rows(folder: str | Path | None = None) -> dict[str, Any]:
    """The table's rows and its caption's settings, read from ``reports/07_larpo_loop.json``.

    Returns ``{"rows": [{"arm", "label", "seeds", "accuracy", "diff", "se", "se_kind"}, ...],
    "n", "rounds", "prompts_per_iter", "k", "reranker", "model_name"}``: the initial policy first
    (``diff`` and ``se`` None), then every arm (``metrics.arms``) by test greedy accuracy after
    its last round (the mean over its seeds), best first; ``diff`` is the change from the initial
    policy over the ``n`` test problems and ``se`` its standard error (the report's
    ``comparisons``: paired over problems, seeds resampled for arms with several)."""
    report = _report(LOOP_REPORT, folder)
    m = report["metrics"]
    if "arms" not in m:
        raise ReadmeError("the loop report has no metrics.arms (a report of the one-round "
                          "notebook): run `make notebooks ONLY=07`")
    arms = {r["arm"]: r for r in m["arms"]}
    configs: dict[str, dict[str, Any]] = m["configs"]
    vs_init = {c["a"]: c for c in m["comparisons"] if c["b"] == INIT}
    missing = sorted(set(arms) - set(vs_init))
    if missing:
        raise ReadmeError(f"the loop report has no comparison against the initial policy for {missing}")
    rows = []
    for name, a in arms.items():
        cfg = configs[name]
        what = [f"k={a['k']}"] + (["headline"] if a.get("headline") else [])
        what += ["unequal budget"] if a.get("unequal_budget") else []
        what += [] if a.get("looping", True) else ["one training on the initial policy's samples"]
        rows.append({"arm": name, "label": f"{name} ({', '.join(what)})", "seeds": a["seeds"],
                     "accuracy": float(a["test_greedy"][-1]),
                     "diff": float(vs_init[name]["diff"]), "se": float(vs_init[name]["se"]),
                     "se_kind": vs_init[name].get("se_kind", "paired over problems"),
                     "rounds": a["rounds"], "reranker": cfg.get("reranker")})
    rows.sort(key=lambda r: -r["accuracy"])
    init = {"arm": INIT, "label": f"initial policy (`{report['params']['model_name']}`)",
            "seeds": None, "accuracy": float(m["test_greedy"][INIT]), "diff": None, "se": None,
            "se_kind": None}
    looping = [a for a in arms.values() if a.get("looping", True)]
    return {"rows": [init, *rows],
            "n": _one({vs_init[a]["n"] for a in arms}, "test problems"),
            "rounds": _one({a["rounds"] for a in looping}, "rounds"),
            "prompts_per_iter": _one({a["prompts_per_round"] for a in looping}, "prompts per round"),
            "reranker": _one({r["reranker"] for r in rows}, "reranker"),
            "se_kinds": sorted({r["se_kind"] for r in rows}),
            "model_name": report["params"]["model_name"]}


def _plural(n: int, word: str) -> str:
    return f"{n} {word}" + ("" if n == 1 else "s")


def results_block(folder: str | Path | None = None) -> str:
    """The README's results table with its caption, between the markers: one row per arm,
    ``| label | seeds | accuracy | +0.173 ± 0.028 |``."""
    t = results_rows(folder)
    lines = [BEGIN,
             f"| after {_plural(t['rounds'], 'round')} of {t['prompts_per_iter']} prompts "
             "| seeds | test greedy accuracy | change vs initial, ± SE |",
             "|---|---|---|---|"]
    for r in t["rows"]:
        change = "baseline" if r["diff"] is None else f"{r['diff']:+.3f} ± {r['se']:.3f}"
        lines.append(f"| {r['label']} | {r['seeds'] or '-'} | {r['accuracy']:.3f} | {change} |")
    lines += ["",
              f"Greedy accuracy on {t['n']} test problems after each arm's last round (the mean over "
              f"its seeds), every arm's lists ranked by the {t['reranker']}; ± is the standard error "
              f"of the change over the same {t['n']} problems ({'; '.join(t['se_kinds'])}). "
              "Every comparison: [`reports/REPRODUCTION.md`](reports/REPRODUCTION.md).",
              END]
    return "\n".join(lines)


def render(text: str, folder: str | Path | None = None) -> str:
    """``text`` (the README) with its block between the markers replaced by :func:`results_block`."""
    if BEGIN not in text or END not in text:
        raise ReadmeError(f"README.md has no {BEGIN} ... {END} block to fill")
    start, end = text.index(BEGIN), text.index(END) + len(END)
    return text[:start] + results_block(folder) + text[end:]


def readme_path() -> Path:
    return repo_root() / "README.md"


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m larpo_lite.readme", description=__doc__.split("\n\n")[0])
    ap.add_argument("--check", action="store_true", help="exit 1 if README.md's results table is stale")
    args = ap.parse_args(argv)
    path = readme_path()
    text = path.read_text()
    fresh = render(text)
    if args.check:
        ok = fresh == text
        print(f"README.md results table: {'up to date' if ok else 'stale: run python -m larpo_lite.readme'}")
        return 0 if ok else 1
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(fresh)
    tmp.replace(path)
    print(path)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
