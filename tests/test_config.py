import dataclasses

import pytest
import yaml

from larpo_lite.config import Params, ParamsError, list_presets, load_preset_values


def test_every_preset_loads():
    assert {"smoke", "default"} <= set(list_presets())
    for name in list_presets():
        p = Params.load(name)
        assert p.preset == name


def test_defaults_are_the_default_preset():
    assert Params() == Params.load("default")


def test_unknown_key_names_it_and_the_valid_ones():
    with pytest.raises(ParamsError) as e:
        Params.from_mapping({"n_tset": 3})
    msg = str(e.value)
    assert "'n_tset'" in msg and "n_test" in msg and "valid:" in msg


@pytest.mark.parametrize(("key", "value"), [("n_test", "10"), ("n_test", 1.5), ("n_test", True),
                                            ("temperatures", 0.7), ("temperatures", ["a"]),
                                            ("use_dense_retriever", 1), ("model_name", 3)])
def test_wrong_type_names_the_key(key, value):
    with pytest.raises(ParamsError, match=key):
        Params.from_mapping({key: value})


def test_int_is_accepted_for_float():
    assert Params.from_mapping({"top_p": 1}).top_p == 1.0
    assert Params.from_mapping({"temperatures": [1, 0.5]}).temperatures == [1.0, 0.5]


def test_from_globals_catches_a_typo_injected_by_papermill():
    import math

    ns = {"seed": 1, "math": math, "Params": Params, "_private": 3, "In": [], "sqrt": math.sqrt}
    assert Params.from_globals(ns).seed == 1
    ns["sede"] = 2
    with pytest.raises(ParamsError, match="did you mean 'seed'"):
        Params.from_globals(ns)


def test_bad_preset_files(tmp_path):
    with pytest.raises(ParamsError, match="valid: .*default"):
        Params.load("no-such-preset")
    bad = tmp_path / "bad.yaml"
    bad.write_text("n_test: [1, 2\n")
    with pytest.raises(ParamsError, match="not valid YAML"):
        Params.load(str(bad))
    typo = tmp_path / "typo.yaml"
    typo.write_text(yaml.safe_dump({"n_samplez": 4}))
    with pytest.raises(ParamsError, match="n_samplez"):
        Params.load(str(typo))


def test_presets_write_outside_committed_folders_unless_default():
    for name in list_presets():
        p = Params.load(name)
        if name != "default":
            assert p.figures_dir != "figures" and p.reports_dir != "reports", name
            assert p.record_dir != "replay", name  # the committed records are the default run's


def test_every_preset_key_is_read_by_some_notebook():
    """No dead configuration: every key of every preset is declared by a notebook's parameters
    cell or read as an attribute of the Params (``P.key`` in a notebook, ``p.key`` /
    ``params.key`` in the package, which Params.for_notebook hands the rest of the preset)."""
    import re

    import papermill as pm

    from larpo_lite.notebooks import notebook_paths
    from larpo_lite.paths import repo_root

    declared = set()
    for nb in notebook_paths():
        declared |= set(pm.inspect_notebook(str(nb)))
    sources = [p.read_text() for p in (repo_root() / "larpo_lite").rglob("*.py")]
    sources += [p.read_text() for p in notebook_paths()]
    # where outputs go and come from: read through Params.out_dir and the Recorder
    routed = {"preset", "figures_dir", "reports_dir", "record_dir", "replay", "replay_dir"}

    def read(key):
        pattern = re.compile(rf"\b(?:P|p|params|self|kernel)\.{key}\b")
        return key in declared or key in routed or any(pattern.search(s) for s in sources)

    for name in list_presets():
        unused = sorted(k for k in load_preset_values(name) if not read(k))
        assert not unused, f"params/{name}.yaml keys nothing reads: {unused}"


def test_scientific_notation_without_a_dot_is_a_float(tmp_path):
    # YAML 1.1 would read 1e-4 as a string
    f = tmp_path / "sci.yaml"
    f.write_text("lr: 1e-4\nbeta: 3E-1\nepochs: 3\n")
    p = Params.load(str(f))
    assert p.lr == 1e-4 and p.beta == 0.3 and p.epochs == 3 and isinstance(p.epochs, int)


BAD_VALUES = [
    ({"lr": "fast"}, "lr", "must be a float"),
    ({"lr": 0.0}, "lr", "must be > 0"),
    ({"lr": float("nan")}, "lr", "must be > 0"),
    ({"beta": -0.1}, "beta", "must be > 0"),
    ({"k_train": 0}, "k_train", "must be >= 1"),
    ({"iterations": -1}, "iterations", "must be >= 0"),
    ({"temperatures": 0.7}, "temperatures", "must be a list of float"),
    ({"temperatures": [0.7, -0.1]}, "temperatures", "must be a list of values >= 0"),
    ({"temperature": -1.0}, "temperature", "must be >= 0"),
    ({"loop_temperatures": []}, "loop_temperatures", "non-empty"),
    ({"top_p": 0.0}, "top_p", "in (0, 1]"),
    ({"top_p": 1.5}, "top_p", "in (0, 1]"),
    ({"batch_size": 0}, "batch_size", "must be >= 1"),
    ({"lists_per_step": 0}, "lists_per_step", "must be >= 1"),
    ({"n_samples": 0}, "n_samples", "must be >= 1"),
    ({"prompts_per_iter": 0}, "prompts_per_iter", "must be >= 1"),
    ({"list_sizes": [1, 4]}, "list_sizes", ">= 2"),
    ({"memory": "everything"}, "memory", "unknown memorization mode 'everything'"),
    ({"dtype": "float8"}, "dtype", "unknown dtype 'float8'"),
    ({"objectives": ["pairwise", "dpo"]}, "objectives", "unknown objective 'dpo'"),
    ({"device": "gpu"}, "device", "auto, cpu, cuda"),
]


@pytest.mark.parametrize(("overrides", "key", "expected"), BAD_VALUES)
def test_bad_values_are_refused_when_params_are_built(overrides, key, expected):
    with pytest.raises(ParamsError) as e:
        Params(**overrides)
    assert str(e.value).startswith(f"Params: parameter {key!r}") and expected in str(e.value)
    # an override of a preset is named as the override, not as the preset file
    with pytest.raises(ParamsError) as e:
        Params.load("smoke", **overrides)
    msg = str(e.value)
    assert msg.startswith(f"override: parameter {key!r}") and "smoke.yaml" not in msg
    # as the command line wrote it
    with pytest.raises(ParamsError, match=f"^--my-option: parameter {key!r}"):
        Params.load_with("smoke", overrides, {key: "--my-option"})


def test_a_bad_value_in_a_preset_file_names_the_file(tmp_path):
    path = tmp_path / "mine.yaml"
    path.write_text(yaml.safe_dump({**load_preset_values("smoke"), "k_train": 0}))
    with pytest.raises(ParamsError, match=f"^{path}: parameter 'k_train' must be >= 1, got 0"):
        Params.load(str(path))
    # the file's other values are fine: an override that repairs it wins
    assert Params.load(str(path), k_train=2).k_train == 2
    with pytest.raises(ParamsError, match="^notebook parameters: parameter 'beta' must be > 0"):
        Params.from_globals({"beta": 0})


def test_good_values_are_normalised():
    p = Params(lr=1, temperatures=(1, 0.5), iterations=0, n_val=0, eval_samples=0, lora_r=0)
    assert p.lr == 1.0 and isinstance(p.lr, float) and p.temperatures == [1.0, 0.5]
    assert dataclasses.replace(p, lr=2e-4).lr == 2e-4
    with pytest.raises(ParamsError, match="'beta'"):
        dataclasses.replace(p, beta=0.0)


def test_choices_match_the_modules_that_read_them():
    from larpo_lite import config, lists, loop, models, sampling, trainer

    for name in config.DTYPES:
        models.pick_dtype(name, "cpu")  # every name is one pick_dtype knows
    assert config.TRAIN_DTYPES == trainer.DTYPES
    assert config.BACKENDS == (*sampling.BACKENDS, "auto")
    assert config.OBJECTIVES == trainer.RANKING_OBJECTIVES
    assert config.MEMORY == lists.MEMORY and config.TIERS == lists.TIERS
    assert config.REFERENCES == loop.REFERENCES


def test_unknown_reranker_is_refused_at_construction():
    with pytest.raises(ValueError, match="parameter 'reranker': unknown reranker 'grade'"):
        Params(reranker="grade")


@pytest.mark.parametrize(("overrides", "key", "expected"), [
    ({"lr": float("inf")}, "lr", "must be a finite number"),
    ({"beta": float("inf")}, "beta", "must be a finite number"),
    ({"temperature": float("inf")}, "temperature", "must be a finite number"),
    ({"temperatures": [0.7, float("inf")]}, "temperatures", "must be a list of finite numbers"),
    ({"loop_temperatures": [float("-inf")]}, "loop_temperatures", "finite"),
    ({"negative_temperatures": [float("inf")]}, "negative_temperatures", "finite"),
    ({"mix_temperatures": [1.0, float("inf")]}, "mix_temperatures", "finite"),
    ({"max_new_tokens": 100_000_000}, "max_new_tokens", "must be <= 131072"),
])
def test_infinite_numbers_and_impossible_lengths_are_refused(overrides, key, expected):
    test_bad_values_are_refused_when_params_are_built(overrides, key, expected)


def test_yaml_infinities_in_a_preset_file_are_refused_naming_file_and_key(tmp_path):
    for text, key in (("lr: 1e400", "lr"), ("temperature: .inf", "temperature"),
                      ("loop_temperatures: [0.7, 1e999]", "loop_temperatures")):
        path = tmp_path / "mine.yaml"
        path.write_text(f"based_on: smoke\n{text}\n")
        with pytest.raises(ParamsError, match=f"^{path}: parameter '{key}' must be a .*finite"):
            Params.load(str(path))


def test_describe_names_only_what_differs_from_the_preset():
    p = Params.load("smoke")
    assert p.changes() == {} and "as in its file" in p.describe()
    q = Params.load("smoke", n_test=3, lr=0.25)
    assert q.changes() == {"n_test": (p.n_test, 3), "lr": (p.lr, 0.25)}
    line = q.describe()
    assert "n_test=3" in line and "lr=0.25" in line and "runs" in line
    assert "seed" not in line  # unchanged keys are not printed


def test_a_notebook_keeps_only_its_own_keys_and_the_preset_fills_the_rest(monkeypatch):
    monkeypatch.delenv("LARPO_LITE_PRESET_FILE", raising=False)
    p = Params.for_notebook({"preset": "smoke", "lr": 0.003, "np": __import__("numpy")})
    smoke = Params.load("smoke")
    assert p.lr == 0.003 and p.lr != smoke.lr
    assert p.model_name == smoke.model_name and p.n_eval == smoke.n_eval
    assert p.changes() == {"lr": (smoke.lr, 0.003)}
    assert Params.for_notebook({"preset": "default"}) == Params.load("default")


def test_a_notebook_global_that_is_no_parameter_is_named(monkeypatch):
    monkeypatch.delenv("LARPO_LITE_PRESET_FILE", raising=False)
    with pytest.raises(ParamsError, match="notebook parameters: unknown parameter 'lrr'.*'lr'"):
        Params.for_notebook({"preset": "smoke", "lrr": 0.1})


def test_a_notebook_reads_the_preset_file_the_runner_ran(tmp_path, monkeypatch):
    own = tmp_path / "mine.yaml"
    own.write_text("based_on: smoke\npreset: mine\nlr: 0.0042\n")
    monkeypatch.setenv("LARPO_LITE_PRESET_FILE", str(own))
    assert Params.for_notebook({"preset": "mine"}).lr == 0.0042
    assert Params.for_notebook({"preset": "smoke"}).lr == Params.load("smoke").lr
