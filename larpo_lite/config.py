"""Params: every notebook parameter, typed; presets in ``params/*.yaml``.

papermill injects whatever it is given and silently accepts typos, so each
notebook validates its parameters right after the ``parameters`` cell with
``Params.from_globals(globals())``: an unknown name or a wrong type is an error
that names the key and the valid ones.
"""

from __future__ import annotations

import dataclasses
import difflib
import re
import types
import typing
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

import yaml

from .paths import repo_root


class ParamsError(ValueError):
    """An unknown parameter, a wrong type, or a bad preset file."""


class TaskSetting(typing.NamedTuple):
    """What a notebook runs on (see :meth:`Params.task_setting`)."""

    task: str
    source: str           # "" = the task's hub default (or the committed mini-GSM splits)
    reward_model: str     # "" = rank by the task's verifier


@dataclass(frozen=True)
class Params:
    """All parameters of the notebooks and the CLI. Defaults are the ``default`` preset."""

    # Which preset this is; figures/reports of the `default` preset are the committed ones.
    preset: str = "default"
    seed: int = 0                      # every random step is seeded from this
    # Model and hardware
    model_name: str = "smollm2-135m-instruct"  # embedded default, "tiny-random", or an HF id/path
    device: str = "auto"               # auto (cuda -> mps -> cpu), cpu, cuda, mps
    dtype: str = "auto"                # auto, float32, bfloat16 (for sampling)
    backend: str = "hf"                # sampling backend: hf, vllm, or auto (vllm if it imports)
    batch_size: int = 64               # sequences per generate() call
    # Task
    task: str = "mini_gsm"             # mini_gsm (committed splits), gsm8k or math (tasks.load_task)
    task_source: str = ""              # hub id or local files for gsm8k/math; "" = the hub default
    reward_model: str = ""             # HF reward model (id or folder) as reranker; "" = verifier
    # The alignment notebooks (04, 06, 07) on another task than the math ones, as in the paper
    alignment_task: str = ""           # "" = `task`; ultrafeedback: prompts scored by reward_model
    alignment_source: str = ""         # hub id or local folder of the alignment task; "" = hub
    n_test: int = 32                   # test problems used by the sampling notebooks
    # Sampling
    max_new_tokens: int = 48           # answers average about 20 tokens
    top_p: float = 1.0
    temperature: float = 0.7           # the sampling temperature where one is needed
    temperatures: list[float] = field(default_factory=lambda: [0.3, 0.7, 1.0, 1.2])
    n_samples: int = 16                # samples per problem for Recall@N / pass@N
    n_grid: list[int] = field(default_factory=lambda: [1, 2, 4, 8, 16])
    # IR side (notebook 01)
    retriever_k_grid: list[int] = field(default_factory=lambda: [1, 2, 3, 5, 10, 20])
    use_dense_retriever: bool = True   # all-MiniLM-L6-v2 beside BM25
    # Training on candidate lists (notebooks 03, 04)
    n_train_prompts: int = 64          # training prompts from the mini-GSM train split
    k_train: int = 4                   # candidates sampled per training prompt
    gold_in_list: bool = False         # add the worked solution to each list as a correct response
    objectives: list[str] = field(default_factory=lambda: ["pairwise", "contrastive", "lambdarank", "listmle"])
    train_seeds: list[int] = field(default_factory=lambda: [0, 1, 2])
    beta: float = 0.1                  # gamma = beta * (log pi - log pi_ref)
    lr: float = 3e-5                   # AdamW peak learning rate (chosen on validation: reports/tuning_validation.json)
    epochs: int = 2                    # passes over the lists
    lists_per_step: int = 8            # lists per optimizer step
    lora_r: int = 16                   # LoRA rank; 0 = full fine-tuning
    train_dtype: str = "float32"       # training precision: float32, or bfloat16 autocast
    grad_accum: int = 1                # micro-batches per optimizer step (memory, not maths)
    # Evaluation of trained policies (notebooks 03-07)
    n_val: int = 32                    # validation problems (tuning and per-iteration greedy)
    eval_samples: int = 4              # samples per test problem for pass@N of trained policies
    # The LARPO loop (notebooks 05-07)
    iterations: int = 2                # T: sample -> rank -> train rounds
    prompts_per_iter: int = 16         # M: new training prompts per iteration
    loop_temperatures: list[float] = field(default_factory=lambda: [0.7])  # one, or a mix
    memory: str = "current"            # candidate lists kept: current, previous, all
    reference: str = "initial"         # reference policy: initial or behaviour
    tiers: list[str] = field(default_factory=lambda: [
        "unrelated", "other_prompt", "incorrect_high_t", "incorrect_low_t"])
    negative_temperatures: list[float] = field(default_factory=lambda: [0.3, 0.7])
    list_sizes: list[int] = field(default_factory=lambda: [2, 4, 8])
    mix_temperatures: list[float] = field(default_factory=lambda: [1.0, 0.5])
    # Outputs (relative to the repository root)
    figures_dir: str = "figures"
    reports_dir: str = "reports"

    # ------------------------------------------------------------------ building
    @classmethod
    def field_names(cls) -> list[str]:
        return [f.name for f in fields(cls)]

    @classmethod
    def from_mapping(cls, values: dict[str, Any], source: str = "parameters") -> Params:
        """Validated Params from a mapping; unknown keys and wrong types raise ParamsError."""
        names = cls.field_names()
        for key in values:
            if key not in names:
                close = difflib.get_close_matches(key, names, n=1)
                hint = f" (did you mean {close[0]!r}?)" if close else ""
                raise ParamsError(f"{source}: unknown parameter {key!r}{hint}; valid: {', '.join(names)}")
        hints = typing.get_type_hints(cls)
        clean = {k: _check(k, v, hints[k], source) for k, v in values.items()}
        return dataclasses.replace(cls(), **clean)

    @classmethod
    def from_globals(cls, namespace: dict[str, Any]) -> Params:
        """Params from a notebook's globals: every plain value that is not private, a
        module, a function, a class or an IPython name must be a known parameter."""
        skip = {"In", "Out", "exit", "quit", "get_ipython"}
        plain = (int, float, str, bool, list, tuple, type(None), dict)
        values = {
            k: v for k, v in namespace.items()
            if not k.startswith("_") and k not in skip and isinstance(v, plain)
            and not isinstance(v, type | types.ModuleType | types.FunctionType)
        }
        return cls.from_mapping(values, source="notebook parameters")

    @classmethod
    def load(cls, preset: str, **overrides: Any) -> Params:
        """A preset from ``params/<preset>.yaml`` (or a path), with overrides."""
        values = load_preset_values(preset)
        values.update(overrides)
        return cls.from_mapping(values, source=str(preset_path(preset)))

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def task_setting(self, alignment: bool = False) -> TaskSetting:
        """The task, its data source and the reward model of a notebook.

        ``alignment=True`` for the alignment notebooks (04 ranking losses, 06 candidate lists,
        07 the loop): they run ``alignment_task`` when the preset sets one, ranked and scored
        by ``reward_model`` (the paper's UltraFeedback + reward-model side). The other
        notebooks run ``task``; when ``alignment_task`` is set, ``reward_model`` belongs to the
        alignment side and they rank by the task's verifier (the paper's rule-based reward on
        GSM8K), otherwise ``reward_model``, when set, ranks every notebook's lists.
        """
        from .tasks import has_verifier

        if alignment and self.alignment_task:
            has_verifier(self.alignment_task)  # an unknown task is an error here
            return TaskSetting(self.alignment_task, self.alignment_source, self.reward_model)
        if not alignment and not has_verifier(self.task):
            raise ParamsError(f"task {self.task!r} has no verifier, and this notebook checks "
                              "answers: set task to a math task (mini_gsm, gsm8k, math) and "
                              f"alignment_task: {self.task} for the alignment notebooks")
        return TaskSetting(self.task, self.task_source,
                           "" if self.alignment_task else self.reward_model)

    def out_dir(self, kind: str) -> Path:
        """Where this preset's figures or reports go (created)."""
        rel = {"figures": self.figures_dir, "reports": self.reports_dir}[kind]
        p = Path(rel)
        p = p if p.is_absolute() else repo_root() / p
        p.mkdir(parents=True, exist_ok=True)
        return p


def _check(key: str, value: Any, hint: Any, source: str) -> Any:
    def bad(expected: str) -> ParamsError:
        return ParamsError(f"{source}: parameter {key!r} must be {expected}, got {value!r} "
                           f"({type(value).__name__})")

    origin = typing.get_origin(hint)
    if hint is bool:
        if not isinstance(value, bool):
            raise bad("a bool")
        return value
    if hint is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise bad("an int")
        return value
    if hint is float:
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise bad("a float")
        return float(value)
    if hint is str:
        if not isinstance(value, str):
            raise bad("a str")
        return value
    if origin is list:
        (inner,) = typing.get_args(hint)
        if not isinstance(value, list | tuple):
            raise bad(f"a list of {inner.__name__}")
        return [_check(f"{key}[{i}]", v, inner, source) for i, v in enumerate(value)]
    raise TypeError(f"unsupported parameter type {hint!r} for {key!r}")


class _Loader(yaml.SafeLoader):
    """YAML 1.1 reads ``1e-4`` (no dot) as a string; presets mean a float."""


_Loader.add_implicit_resolver(
    "tag:yaml.org,2002:float",
    re.compile(r"""^(?:[-+]?(?:[0-9][0-9_]*)(?:\.[0-9_]*)?(?:[eE][-+]?[0-9]+)?
    |[-+]?\.[0-9_]+(?:[eE][-+]?[0-9]+)?
    |[-+]?\.(?:inf|Inf|INF)
    |\.(?:nan|NaN|NAN))$""", re.X),
    list("-+0123456789."),
)


def params_dir() -> Path:
    return repo_root() / "params"


def preset_path(preset: str) -> Path:
    p = Path(preset)
    if p.suffix in (".yaml", ".yml") and p.exists():
        return p
    path = params_dir() / f"{preset}.yaml"
    if not path.is_file():
        valid = sorted(q.stem for q in params_dir().glob("*.yaml"))
        raise ParamsError(f"unknown preset {preset!r}; valid: {', '.join(valid)}")
    return path


def load_preset_values(preset: str) -> dict[str, Any]:
    """The raw key/values of a preset file (validated by ``Params.load``)."""
    path = preset_path(preset)
    try:
        values = yaml.load(path.read_text(), Loader=_Loader) or {}
    except yaml.YAMLError as e:
        raise ParamsError(f"{path}: not valid YAML ({e})") from None
    if not isinstance(values, dict):
        raise ParamsError(f"{path}: expected a mapping of parameter: value")
    return values


def list_presets() -> list[str]:
    return sorted(q.stem for q in params_dir().glob("*.yaml"))
