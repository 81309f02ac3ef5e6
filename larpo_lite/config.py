"""Params: every notebook parameter, typed; presets in ``params/*.yaml``.

papermill injects whatever it is given and silently accepts typos, so each
notebook validates its parameters right after the ``parameters`` cell with
``Params.from_globals(globals())``: an unknown name or a wrong type is an error
that names the key and the valid ones. Types and ranges (``lr > 0``, ``k_train >= 1``,
``top_p`` in (0, 1], ...) are checked whenever a ``Params`` is built, before any model
loads; an error names where the bad value came from (the preset file, ``override`` for
``Params.load(preset, key=value)``, a command-line option) and the parameter.
"""

from __future__ import annotations

import dataclasses
import difflib
import functools
import math
import os
import re
import types
import typing
from collections.abc import Callable
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

import yaml

from .paths import is_committed, repo_root, resolve_output, runs_dir, writable_dir
from .tasks.hub import TASKS


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

    # Which preset this is (the preset file's name unless it sets `preset`); only the default
    # run (see is_default_run) writes the committed figures/, reports/ and replay/, any other
    # run writes under runs/<preset>/.
    preset: str = "default"
    seed: int = 0                      # every random step is seeded from this
    # Model and hardware
    model_name: str = "smollm2-135m-instruct"  # embedded default, "tiny-random", or an HF id/path
    device: str = "auto"               # auto (cuda -> mps -> cpu), cpu, cuda, mps
    dtype: str = "float32"             # sampling and reward models: float32, bfloat16, or auto
    backend: str = "hf"                # sampling backend: hf, vllm, or auto (vllm if it imports)
    batch_size: int = 128              # sequences per generate() call
    # Task
    task: str = "mini_gsm"             # mini_gsm (committed splits), gsm8k or math (tasks.load_task)
    task_source: str = ""              # hub id or local files for gsm8k/math; "" = the hub default
    reward_model: str = ""             # HF reward model (id or folder) as reranker; "" = verifier
    reranker: str = "verifier"         # without reward_model: verifier or graded_verifier (rewards.py)
    # The alignment notebooks (04, 06, 07) on another task than the math ones, as in the paper
    alignment_task: str = ""           # "" = `task`; ultrafeedback: prompts scored by reward_model
    alignment_source: str = ""         # hub id or local folder of the alignment task; "" = hub
    n_test: int = 32                   # test problems used by the sampling notebooks (01, 02, 08)
    n_eval: int = 300                  # test problems for greedy accuracy of trained policies (03, 04, 07)
    n_eval_sweep: int = 100            # the same in the sweeps of 05 and 06 (each row prints its MDE)
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
    k_train: int = 8                   # candidates sampled per training prompt
    gold_in_list: bool = False         # add the worked solution to each list as a correct response
    objectives: list[str] = field(default_factory=lambda: ["pairwise", "contrastive", "lambdarank", "listmle"])
    train_seeds: list[int] = field(default_factory=lambda: [0, 1, 2])
    beta: float = 0.1                  # gamma = beta * (log pi - log pi_ref)
    lr: float = 2e-4                   # AdamW peak learning rate (chosen on validation: reports/tuning_validation.json)
    epochs: int = 3                    # passes over the lists
    lists_per_step: int = 8            # lists per optimizer step
    lora_r: int = 16                   # LoRA rank; 0 = full fine-tuning
    train_dtype: str = "float32"       # training precision: float32, or bfloat16 autocast
    grad_accum: int = 1                # micro-batches per optimizer step (memory, not maths)
    # Evaluation of trained policies (notebooks 03-07)
    n_val: int = 200                   # validation problems (tuning and per-iteration greedy)
    eval_samples: int = 4              # samples per test problem for Recall@N of 03's stages
    loop_eval_samples: int = 0         # the same for pass@N of each loop run (04-07); 0: greedy only
    # The LARPO loop (notebooks 05-07)
    iterations: int = 3                # T: sample -> rank -> train rounds
    prompts_per_iter: int = 64         # M: new training prompts per iteration (04, 07)
    sweep_prompts_per_iter: int = 32   # the same in the sweeps of 05 and 06 (each row prints its MDE)
    loop_temperatures: list[float] = field(default_factory=lambda: [0.7])  # one, or a mix
    memory: str = "current"            # candidate lists kept: current, previous, all
    loop_workers: int = 2              # 04/07: loop runs at a time, each a one-thread process
    paper_k2: bool = False             # 07: add the paper's k=2 iterative DPO (unequal budget)
    memory_iterations: int = 3         # rounds of 06's memory runs (previous, all: same until 3)
    reference: str = "initial"         # reference policy: initial or behaviour
    tiers: list[str] = field(default_factory=lambda: [
        "unrelated", "other_prompt", "incorrect_high_t", "incorrect_low_t"])
    negative_temperatures: list[float] = field(default_factory=lambda: [0.3, 0.7])
    list_sizes: list[int] = field(default_factory=lambda: [2, 4, 8])
    mix_temperatures: list[float] = field(default_factory=lambda: [1.0, 0.5])
    # Outputs (relative to the repository root; runs/... to $LARPO_LITE_RUNS when set). The
    # committed folders are the default run's: any other run's go to runs/<preset>/<kind>.
    figures_dir: str = "figures"
    reports_dir: str = "reports"
    # Replay (larpo_lite/replay.py): record each costly step's result, or read it back
    replay: bool = False               # true: sampling and training replay recorded results
    replay_dir: str = "replay"         # where replay reads them (the default run's, committed)
    record_dir: str = "replay"         # where a run records them; "" = runs/<preset>/record

    def __post_init__(self) -> None:
        """Types and ranges of every field (``Params(lr="fast")`` is an error here); ints
        given for floats become floats, tuples lists."""
        values = {f.name: getattr(self, f.name) for f in fields(self)}
        for key, value in _validate(values, lambda key: "Params").items():
            object.__setattr__(self, key, value)

    # ------------------------------------------------------------------ building
    @classmethod
    def field_names(cls) -> list[str]:
        return [f.name for f in fields(cls)]

    @classmethod
    def from_mapping(cls, values: dict[str, Any], source: str = "parameters",
                     key_sources: dict[str, str] | None = None) -> Params:
        """Validated Params from a mapping; unknown keys, wrong types and values out of range
        raise ParamsError naming the key and where it came from: ``key_sources[key]`` (an
        override, a command-line option) when given, else ``source`` (e.g. the preset file)."""
        labels = key_sources or {}

        def where(key: str) -> str:
            return labels.get(key.split("[")[0], source)

        names = cls.field_names()
        for key in values:
            if key not in names:
                close = difflib.get_close_matches(key, names, n=1)
                hint = f" (did you mean {close[0]!r}?)" if close else ""
                raise ParamsError(f"{where(key)}: unknown parameter {key!r}{hint}; "
                                  f"valid: {', '.join(names)}")
        defaults = {f.name: getattr(_DEFAULTS, f.name) for f in fields(cls)}
        return cls(**_validate({**defaults, **values}, where))

    @classmethod
    def from_globals(cls, namespace: dict[str, Any]) -> Params:
        """Params from a notebook's globals: every plain value that is not private, a
        module, a function, a class or an IPython name must be a known parameter."""
        return cls.from_mapping(_plain_globals(namespace), source="notebook parameters")

    @classmethod
    def for_notebook(cls, namespace: dict[str, Any]) -> Params:
        """A notebook's Params: its preset's file, with the notebook's own values over it.

        ``namespace`` is the notebook's ``globals()`` right after its parameters cell (and
        papermill's injected values): ``preset`` (default ``"default"``) names the file, and
        every other plain global must be a known parameter. The parameters cell therefore keeps
        only the keys a reader of that notebook would change; the preset fills the rest. When
        ``larpo-lite notebooks`` says which file it ran (``$LARPO_LITE_PRESET_FILE``) and that
        file is this preset, it is read instead of ``params/<preset>.yaml``.

        Raises:
            ParamsError: an unknown name (with the closest valid one), a wrong type, or an
                unknown preset.
        """
        values = _plain_globals(namespace)
        preset = str(values.get("preset", DEFAULT_PRESET))
        source = os.environ.get(PRESET_FILE_ENV)
        path = preset
        if source and Path(source).is_file() and load_preset_values(source)["preset"] == preset:
            path = source
        base = load_preset_values(path)
        unknown = [k for k in values if k not in cls.field_names()]
        if unknown:  # named as the notebook's, not the preset file's
            return cls.from_mapping(values, source="notebook parameters")
        sources = {k: "notebook parameters" for k in values}
        return cls.from_mapping({**base, **values}, source=str(preset_path(path)),
                                key_sources=sources)

    @classmethod
    def load(cls, preset: str, **overrides: Any) -> Params:
        """A preset from ``params/<preset>.yaml`` (or a path), with overrides (an error in an
        override names it as ``override``, not the preset file)."""
        return cls.load_with(preset, overrides)

    @classmethod
    def load_with(cls, preset: str, overrides: dict[str, Any],
                  labels: dict[str, str] | None = None) -> Params:
        """:meth:`load` with ``labels``: how the user wrote each override (e.g.
        ``{"k_train": "--k"}``), named by its errors; unlabelled overrides are ``override``."""
        values = load_preset_values(preset)
        values.update(overrides)
        sources = {k: (labels or {}).get(k, "override") for k in overrides}
        return cls.from_mapping(values, source=str(preset_path(preset)), key_sources=sources)

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

    def is_default_run(self) -> bool:
        """Whether these are the default run's parameters, the only run that writes the
        committed results (``figures/``, ``reports/``, ``replay/``, ``executed/``, ``docs/``):
        preset ``default``, every value equal to this repository's ``params/default.yaml``, and,
        when ``larpo-lite notebooks`` says which preset file it ran (``$LARPO_LITE_PRESET_FILE``,
        set for its kernels), that file. Another preset, a preset ``based_on: default`` that
        changes anything, a notebook run with edited or injected values (``papermill -p n_test
        4``) and a ``default.yaml`` in another folder are not the default run."""
        if self.preset != DEFAULT_PRESET:
            return False
        repo_default = params_dir() / f"{DEFAULT_PRESET}.yaml"
        source = os.environ.get(PRESET_FILE_ENV)
        if source and Path(source).resolve() != repo_default.resolve():
            return False
        try:
            return self == Params.load(str(repo_default))
        except (ParamsError, OSError):
            return False

    def changes(self) -> dict[str, tuple[Any, Any]]:
        """``{key: (preset's value, this run's value)}`` for every parameter that differs from
        its preset's file (``params/<preset>.yaml``); ``{}`` when none does or the preset has no
        file here (then nothing can be compared)."""
        try:
            base = Params.load(self.preset)
        except (ParamsError, OSError, FileNotFoundError):
            return {}
        mine, theirs = self.to_dict(), base.to_dict()
        return {k: (theirs[k], v) for k, v in mine.items() if theirs.get(k) != v}

    def describe(self) -> str:
        """One line for a notebook to print instead of every parameter: the preset, what this
        run changed from it, and where its results go (the committed folders only for the
        default run)."""
        changed = self.changes()
        what = ("as in its file" if not changed else
                "changed: " + ", ".join(f"{k}={v!r} (preset {p!r})" for k, (p, v) in changed.items()))
        where = ("the committed figures/, reports/ and replay/" if self.is_default_run() else
                 f"{self.out_dir('reports', create=False).parent}/")
        return f"preset {self.preset!r}, {what}; results go to {where}"

    def out_dir(self, kind: str, create: bool = True) -> Path:
        """Where this run's ``figures``, ``reports`` or ``record`` (replay records) go, created
        and checked writable unless ``create`` is false.

        The folder of ``figures_dir``, ``reports_dir`` or ``record_dir`` (relative to the
        repository root; ``runs/...`` relative to :func:`~larpo_lite.paths.runs_dir`, i.e.
        ``$LARPO_LITE_RUNS`` when set), except that a run that is not the default run
        (:meth:`is_default_run`) never writes a committed folder: those, and an empty
        ``record_dir``, become ``runs/<preset>/<kind>``.

        Raises:
            NotWritableError: the folder cannot be written (the message names ``LARPO_LITE_RUNS``).
        """
        rel = getattr(self, _OUT_FIELDS[kind])
        own = runs_dir() / preset_folder(self.preset) / kind
        if not rel:
            p = own
        else:
            p = resolve_output(rel)
            if is_committed(p) and not self.is_default_run():
                p = own
        return writable_dir(p) if create else p


DEFAULT_PRESET = "default"
# Set by `larpo-lite notebooks` for its kernels: the preset file it runs (Params.is_default_run).
PRESET_FILE_ENV = "LARPO_LITE_PRESET_FILE"
# The parameters that do not change any result: the preset's name and where outputs go or come
# from. A replay may differ from its recording in these only (larpo_lite.replay).
NON_RESULT_KEYS = ("preset", "figures_dir", "reports_dir", "replay", "replay_dir", "record_dir",
                   "loop_workers")
_OUT_FIELDS = {"figures": "figures_dir", "reports": "reports_dir", "record": "record_dir"}


def preset_folder(preset: str) -> str:
    """``preset`` as one folder name under ``runs/`` (no separators, never ``..``)."""
    name = re.sub(r"[^\w.+-]", "_", preset).strip(".") or "_"
    return name


# Choices of the string parameters; tests/test_config.py checks each against the module that
# reads it (importing those here would load torch for every Params).
DTYPES = ("auto", "float32", "fp32", "bfloat16", "bf16", "float16", "fp16")  # models.pick_dtype
TRAIN_DTYPES = ("float32", "bfloat16")                                     # trainer.DTYPES
BACKENDS = ("hf", "vllm", "auto")                                          # sampling.make_sampler
OBJECTIVES = ("pairwise", "contrastive", "lambdarank", "listmle")          # trainer
MEMORY = ("current", "previous", "all")                                    # lists.MEMORY
REFERENCES = ("initial", "behaviour")                                      # loop.REFERENCES
TIERS = ("unrelated", "other_prompt", "incorrect_high_t", "incorrect_low_t")  # lists.TIERS
RERANKERS = ("verifier", "graded_verifier", "strict_verifier")                                # rewards.RERANKERS

# (parameter, lowest allowed value, whether the lowest is excluded); list parameters: each item.
_AT_LEAST: tuple[tuple[str, float, bool], ...] = (
    ("seed", 0, False), ("batch_size", 1, False), ("n_test", 1, False), ("n_eval", 1, False), ("n_eval_sweep", 1, False),
    ("max_new_tokens", 1, False), ("temperature", 0, False), ("temperatures", 0, False),
    ("n_samples", 1, False), ("n_grid", 1, False), ("retriever_k_grid", 1, False),
    ("n_train_prompts", 1, False), ("k_train", 1, False), ("beta", 0, True), ("lr", 0, True),
    ("epochs", 1, False), ("lists_per_step", 1, False), ("lora_r", 0, False),
    ("grad_accum", 1, False), ("n_val", 0, False), ("eval_samples", 0, False),
    ("loop_eval_samples", 0, False), ("sweep_prompts_per_iter", 1, False),
    ("iterations", 0, False), ("memory_iterations", 1, False), ("prompts_per_iter", 1, False),
    ("loop_workers", 1, False),
    ("loop_temperatures", 0, False),
    ("negative_temperatures", 0, False), ("list_sizes", 2, False), ("mix_temperatures", 0, False),
)
# (parameter, highest allowed value). A model's own position limit is checked where the model
# is known (sampling.HFSampler, the vLLM engine); this bound refuses what no model can hold.
MAX_NEW_TOKENS = 131_072
_AT_MOST: tuple[tuple[str, float], ...] = (("max_new_tokens", MAX_NEW_TOKENS),)
_CHOICES: dict[str, tuple[str, tuple[str, ...]]] = {
    "dtype": ("dtype", DTYPES), "train_dtype": ("training dtype", TRAIN_DTYPES),
    "backend": ("sampling backend", BACKENDS), "task": ("task", TASKS),
    "alignment_task": ("task", ("", *TASKS)), "objectives": ("objective", OBJECTIVES),
    "memory": ("memorization mode", MEMORY), "reference": ("reference", REFERENCES),
    "tiers": ("hard-negative tier", TIERS), "reranker": ("reranker", RERANKERS),
}
_NOT_EMPTY = ("model_name", "figures_dir", "reports_dir", "temperatures", "n_grid",
              "retriever_k_grid", "objectives", "train_seeds", "loop_temperatures", "tiers",
              "negative_temperatures", "list_sizes", "mix_temperatures")


def _validate(values: dict[str, Any], where: Callable[[str], str]) -> dict[str, Any]:
    """Every field of ``values`` type-checked (ints for floats become floats) and range-checked;
    ``where(key)`` says where a key's value came from. Raises ParamsError naming the first bad
    parameter."""
    hints = _hints()
    clean = {k: _check(k, v, hints[k], where(k)) for k, v in values.items()}

    def bad(key: str, expected: str, got: Any) -> ParamsError:
        return ParamsError(f"{where(key)}: parameter {key!r} must be {expected}, got {got!r}")

    for key in _NOT_EMPTY:
        if not clean[key]:
            raise bad(key, "a non-empty list" if isinstance(clean[key], list) else "non-empty",
                      clean[key])
    for key, value in clean.items():  # inf (YAML reads 1e400 and .inf so): no lower bound refuses it
        items = value if isinstance(value, list) else [value]  # (NaN fails every range check below)
        if any(isinstance(v, float) and math.isinf(v) for v in items):
            raise bad(key, "a list of finite numbers" if isinstance(value, list) else "a finite number",
                      value)
    for key, low, strict in _AT_LEAST:
        items = clean[key] if isinstance(clean[key], list) else [clean[key]]
        for v in items:
            if not (v > low if strict else v >= low):  # also refuses NaN
                what = f"{'>' if strict else '>='} {low}"
                raise bad(key, f"a list of values {what}" if isinstance(clean[key], list) else what,
                          clean[key])
    for key, high in _AT_MOST:
        if clean[key] > high:
            raise bad(key, f"<= {high} (no model holds more positions; a model's own limit is "
                      "checked before it generates)", clean[key])
    if not 0 < clean["top_p"] <= 1:
        raise bad("top_p", "in (0, 1]", clean["top_p"])
    device = clean["device"]
    if not (device in ("auto", "cpu", "mps") or re.fullmatch(r"cuda(:\d+)?", device)):
        raise bad("device", "auto, cpu, cuda, cuda:<n> or mps", clean["device"])
    for key, (noun, valid) in _CHOICES.items():
        for v in clean[key] if isinstance(clean[key], list) else [clean[key]]:
            if v not in valid:
                raise ParamsError(f"{where(key)}: parameter {key!r}: unknown {noun} {v!r}; "
                                  f"valid: {', '.join(repr(x) if not x else x for x in valid)}")
    return clean


@functools.cache
def _hints() -> dict[str, Any]:
    return typing.get_type_hints(Params)


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


_DEFAULTS = Params()


def params_dir() -> Path:
    return repo_root() / "params"


def _plain_globals(namespace: dict[str, Any]) -> dict[str, Any]:
    """The plain values of a notebook's globals: not private, not a module, a function, a
    class or an IPython name."""
    skip = {"In", "Out", "exit", "quit", "get_ipython"}
    plain = (int, float, str, bool, list, tuple, type(None), dict)
    return {k: v for k, v in namespace.items()
            if not k.startswith("_") and k not in skip and isinstance(v, plain)
            and not isinstance(v, type | types.ModuleType | types.FunctionType)}


def preset_path(preset: str) -> Path:
    p = Path(preset)
    if p.suffix in (".yaml", ".yml") and p.exists():
        return p
    path = params_dir() / f"{preset}.yaml"
    if not path.is_file():
        valid = sorted(q.stem for q in params_dir().glob("*.yaml"))
        raise ParamsError(f"unknown preset {preset!r}; valid: {', '.join(valid)}")
    return path


def load_preset_values(preset: str, _seen: tuple[str, ...] = ()) -> dict[str, Any]:
    """The raw key/values of a preset file (validated by ``Params.load``). A file may start
    from another preset's values with ``based_on: <preset>`` and change some of them."""
    path = preset_path(preset)
    try:
        values = yaml.load(path.read_text(), Loader=_Loader) or {}
    except yaml.YAMLError as e:
        raise ParamsError(f"{path}: not valid YAML ({e})") from None
    if not isinstance(values, dict):
        raise ParamsError(f"{path}: expected a mapping of parameter: value")
    raw = dict(values)
    base = values.pop("based_on", None)
    if base is not None:
        if not isinstance(base, str) or base in _seen or Path(base).stem == path.stem:
            raise ParamsError(f"{path}: based_on {base!r} must name another preset, without a cycle")
        values = {**load_preset_values(base, (*_seen, path.stem)), **values}
    # the preset's name is its own (a file `based_on: default` is not named default): the
    # file's `preset`, else its file name
    values["preset"] = values["preset"] if "preset" in raw else path.stem
    return values


def list_presets() -> list[str]:
    return sorted(q.stem for q in params_dir().glob("*.yaml"))
