"""The ``larpo-lite`` command line.

An expected failure (a bad parameter or option, a missing or corrupt file, a model or dataset
that cannot be loaded, a missing device) ends in one line, ``larpo-lite: error: ...``, naming
the file or parameter, with exit code 2; any other exception is a bug and keeps its traceback.
"""

from __future__ import annotations

import argparse
import math
import os
import sys
import time
from collections.abc import Sequence


def _floats(option: str, text: str, positive: bool = False) -> list[float]:
    """A comma-separated option as floats; a bad item (not a number, inf or nan: ``float``
    reads those words) is a ValueError naming the option."""
    try:
        values = [float(x) for x in text.split(",")]
    except ValueError:
        raise ValueError(f"{option}: expected comma-separated numbers, got {text!r}") from None
    if not all(math.isfinite(v) for v in values):
        raise ValueError(f"{option}: every value must be a finite number, got {text!r}")
    if positive and not all(v > 0 for v in values):
        raise ValueError(f"{option}: every value must be > 0, got {text!r}")
    return values


def _cmd_notebooks(args: argparse.Namespace) -> int:
    from .notebooks import CHILD_ENV, run_notebooks

    only = args.only.split(",") if args.only else None
    t0 = time.perf_counter()
    run_notebooks(args.preset, only=only, out_dir=args.out_dir, log_output=args.log_output,
                  jobs=args.jobs)
    if not os.environ.get(CHILD_ENV):  # a --jobs child: its parent reports the whole run
        print(f"[larpo-lite] all done in {time.perf_counter() - t0:.0f}s")
    return 0


def _cmd_presets(args: argparse.Namespace) -> int:
    from .config import Params, list_presets

    for name in list_presets():
        p = Params.load(name)
        print(f"{name}: model={p.model_name} n_test={p.n_test} n_samples={p.n_samples} "
              f"temperatures={p.temperatures}")
    return 0


def _cmd_plan(args: argparse.Namespace) -> int:
    import json

    from .config import Params
    from .plan import plan_preset

    params = Params.load(args.preset)
    plan = plan_preset(params, gpu_gib=args.gpu_gib, prompt_tokens=args.prompt_tokens,
                       num_processes=args.num_processes, sharded=args.sharded)
    if args.json:
        print(json.dumps(plan.to_dict(), indent=1))
    else:
        print(f"preset {args.preset}: {params.lists_per_step} lists x {params.k_train} responses "
              f"per step, grad_accum {params.grad_accum}, {params.max_new_tokens} new tokens, "
              f"sampling backend {params.backend}")
        print(plan.render())
    return 0


def _cmd_loop(args: argparse.Namespace) -> int:
    import json
    import os
    from pathlib import Path

    from .config import Params
    from .loop import LoopConfig, iterative_dpo_config, offline_config, run_locked
    from .paths import runs_dir

    # options that are preset parameters go through Params (its checks name the option)
    options = {"iterations": ("--iterations", args.iterations),
               "prompts_per_iter": ("--prompts-per-iter", args.prompts_per_iter),
               "k_train": ("--k", args.k), "memory": ("--memory", args.memory),
               "reference": ("--reference", args.reference), "seed": ("--seed", args.seed),
               "loop_temperatures": ("--temperatures", _floats("--temperatures", args.temperatures)
                                     if args.temperatures else None)}
    given = {k: v for k, (_, v) in options.items() if v is not None}
    params = Params.load_with(args.preset, given, {k: o for k, (o, _) in options.items()})
    over = {k: v for k, v in {"objective": args.objective, "negative_tier": args.tier,
                              "strategy": args.strategy}.items() if v is not None}
    cfg = LoopConfig.from_params(params, alignment=args.alignment, **over)
    if args.baseline == "offline":
        cfg = offline_config(cfg)
    elif args.baseline == "iterative-dpo":
        cfg = iterative_dpo_config(cfg)
    cfg.validate()  # before any model loads or any file is written
    name = args.baseline or "-".join(x for x in (cfg.objective, cfg.negative_tier, cfg.memory) if x)
    out = Path(args.out) if args.out else runs_dir() / params.preset / "loop" / name
    rows = run_locked(cfg, out, resume=not args.no_resume)  # a finished run: read back, no lock
    if int(os.environ.get("RANK", "0")) != 0:  # under accelerate launch: the main process reports
        return 0
    for r in rows:  # the files' sha256 stay in results.jsonl
        print(json.dumps({k: (round(v, 4) if isinstance(v, float) else v) for k, v in r.items()
                          if k != "sha256"}))
    print(f"[larpo-lite] results in {out / 'results.jsonl'}")
    return 0


def _cmd_tune(args: argparse.Namespace) -> int:
    from .config import Params
    from .tune import run

    params = Params.load(args.preset)
    if args.study:
        if args.lrs or args.betas:
            raise ValueError("tune: give --study or --lrs/--betas, not both")
        out = run(params, study=args.study, n_val=args.n_val)
    else:
        out = run(params, _floats("--lrs", args.lrs or "3e-5,1e-4,3e-4", positive=True),
                  _floats("--betas", args.betas or "0.1", positive=True), n_val=args.n_val)
    for objective, c in out["chosen"].items():
        print(f"[larpo-lite] {objective}: chosen on validation {c['name']} "
              f"({c['diff']:+.3f} +- {c['se']:.3f}, {c['verdict']})")
    print(f"[larpo-lite] {out['path']}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="larpo-lite", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)

    nb = sub.add_parser("notebooks", help="run the numbered notebooks headless with papermill")
    nb.add_argument("--preset", default="default", help="params/<preset>.yaml (default: default)")
    nb.add_argument("--only", default=None, help="comma-separated notebook numbers, e.g. 01,02")
    nb.add_argument("--log-output", action="store_true", help="stream the notebooks' output")
    nb.add_argument("--jobs", type=int, default=1,
                    help="notebooks run at once, each in its own process with cores/jobs threads")
    nb.add_argument("--out-dir", default=None, help="where the executed notebooks go "
                    "(default: runs/<preset>/; runs/ is $LARPO_LITE_RUNS when set, for a "
                    "read-only checkout)")
    nb.set_defaults(func=_cmd_notebooks)

    pr = sub.add_parser("presets", help="list the presets")
    pr.set_defaults(func=_cmd_presets)

    pl = sub.add_parser("plan", help="expected GPU memory of a preset, and whether it fits")
    pl.add_argument("--preset", default="gpu-7b", help="params/<preset>.yaml (default: gpu-7b)")
    pl.add_argument("--gpu-gib", type=float, default=80.0, help="GPU memory in GiB (default 80)")
    pl.add_argument("--prompt-tokens", type=int, default=None,
                    help="prompt length (default: a typical one for the preset's task)")
    pl.add_argument("--num-processes", type=int, default=1, help="training processes (GPUs)")
    pl.add_argument("--sharded", action="store_true",
                    help="FSDP / ZeRO-3: weights and optimizer state divided over the processes")
    pl.add_argument("--json", action="store_true", help="print the plan as JSON")
    pl.set_defaults(func=_cmd_plan)

    lp = sub.add_parser("loop", help="run (or resume) the LARPO loop; results.jsonl per run")
    lp.add_argument("--preset", default="default", help="params/<preset>.yaml (default: default)")
    lp.add_argument("--objective", default=None, help="pairwise, contrastive, lambdarank, listmle")
    lp.add_argument("--baseline", default=None, choices=["offline", "iterative-dpo"],
                    help="run a baseline on the same budget instead")
    lp.add_argument("--tier", default=None, help="hard-negative tier (pairwise objective)")
    lp.add_argument("--strategy", default=None, help="list selection strategy")
    lp.add_argument("--memory", default=None, help="current, previous or all")
    lp.add_argument("--reference", default=None, help="initial or behaviour")
    lp.add_argument("--iterations", type=int, default=None)
    lp.add_argument("--prompts-per-iter", type=int, default=None)
    lp.add_argument("--k", type=int, default=None, help="responses per prompt")
    lp.add_argument("--temperatures", default=None, help="comma-separated, e.g. 1.0,0.5")
    lp.add_argument("--seed", type=int, default=None)
    lp.add_argument("--out", default=None, help="run folder (default runs/<preset>/loop/<name>)")
    lp.add_argument("--no-resume", action="store_true", help="start over in the run folder")
    lp.add_argument("--alignment", action="store_true",
                    help="the preset's alignment_task (e.g. UltraFeedback with its reward model), "
                         "as notebooks 04, 06 and 07 run it")
    lp.set_defaults(func=_cmd_loop)

    tu = sub.add_parser("tune", help="choose the training setting on the validation split "
                        "(each setting a loop run compared paired with the initial policy)")
    tu.add_argument("--preset", default="default")
    tu.add_argument("--study", default=None,
                    help="a study file of settings, e.g. configs/tuning/default.yaml")
    tu.add_argument("--lrs", default=None,
                    help="without --study: one DPO round per lr (comma-separated; "
                         "default 3e-5,1e-4,3e-4)")
    tu.add_argument("--betas", default=None, help="without --study: comma-separated betas "
                    "(default 0.1)")
    tu.add_argument("--n-val", type=int, default=None,
                    help="validation problems (default: the study's, else the preset's n_val)")
    tu.set_defaults(func=_cmd_tune)
    return parser


def expected_errors() -> tuple[type[BaseException], ...]:
    """The exceptions that are the user's to fix (see the module doc); others are bugs."""
    from .errors import LarpoLiteError

    errors: list[type[BaseException]] = [ValueError, OSError, LarpoLiteError]
    try:
        from safetensors import SafetensorError  # a truncated or corrupt weights file

        errors.append(SafetensorError)
    except ImportError:
        pass
    return tuple(errors)


def one_line(err: BaseException) -> str:
    """``err``'s message on one line (library messages span several)."""
    text = " ".join(str(err).split())
    return text or type(err).__name__


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except expected_errors() as e:
        print(f"larpo-lite: error: {one_line(e)}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
