"""The ``larpo-lite`` command line."""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Sequence


def _cmd_notebooks(args: argparse.Namespace) -> int:
    from .notebooks import run_notebooks

    only = args.only.split(",") if args.only else None
    t0 = time.perf_counter()
    run_notebooks(args.preset, only=only, log_output=args.log_output)
    print(f"[larpo-lite] all done in {time.perf_counter() - t0:.0f}s")
    return 0


def _cmd_presets(args: argparse.Namespace) -> int:
    from .config import Params, list_presets

    for name in list_presets():
        p = Params.load(name)
        print(f"{name}: model={p.model_name} n_test={p.n_test} n_samples={p.n_samples} "
              f"temperatures={p.temperatures}")
    return 0


def _cmd_recall(args: argparse.Namespace) -> int:
    import json

    from .config import Params
    from .experiments import recall_experiment

    params = Params.load(args.preset)
    res = recall_experiment(params, temperatures=[args.temperature] if args.temperature else None)
    print(json.dumps(res["recall"], indent=2))
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="larpo-lite", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)

    nb = sub.add_parser("notebooks", help="run the numbered notebooks headless with papermill")
    nb.add_argument("--preset", default="default", help="params/<preset>.yaml (default: default)")
    nb.add_argument("--only", default=None, help="comma-separated notebook numbers, e.g. 01,02")
    nb.add_argument("--log-output", action="store_true", help="stream the notebooks' output")
    nb.set_defaults(func=_cmd_notebooks)

    pr = sub.add_parser("presets", help="list the presets")
    pr.set_defaults(func=_cmd_presets)

    rc = sub.add_parser("recall", help="pass@N of the policy on the test split")
    rc.add_argument("--preset", default="default")
    rc.add_argument("--temperature", type=float, default=None)
    rc.set_defaults(func=_cmd_recall)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except (ValueError, RuntimeError) as e:
        print(f"larpo-lite: error: {e}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
