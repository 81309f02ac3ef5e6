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


def test_every_preset_key_is_read_by_some_notebook():
    import papermill as pm

    from larpo_lite.notebooks import notebook_paths

    declared = set()
    for nb in notebook_paths():
        declared |= set(pm.inspect_notebook(str(nb)))
    for name in list_presets():
        unused = set(load_preset_values(name)) - declared
        assert not unused, f"params/{name}.yaml keys no notebook reads: {sorted(unused)}"


def test_scientific_notation_without_a_dot_is_a_float(tmp_path):
    # YAML 1.1 would read 1e-4 as a string
    f = tmp_path / "sci.yaml"
    f.write_text("lr: 1e-4\nbeta: 3E-1\nepochs: 3\n")
    p = Params.load(str(f))
    assert p.lr == 1e-4 and p.beta == 0.3 and p.epochs == 3 and isinstance(p.epochs, int)
