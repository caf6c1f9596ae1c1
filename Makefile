# Two commands do everything (see README.md):
#   make train   set up .venv, build convkernels and train LeNet-5 on MNIST (the main job)
#   make test    set up .venv, build convkernels, check formatting, run the tests
# Both start from nothing: a fresh clone and a python3 with venv.

PYTHON ?= python3
VENV ?= .venv
# PyTorch is the optional second reference the tests compare against; `make test TORCH=` skips
# installing it (the comparisons are then skipped and say so). JAX (CPU) is the same for the JAX
# interop tests (tests/test_jax_interop.py): `make test JAX=` skips it.
TORCH ?= torch==2.13.0
JAX ?= jax==0.10.2 jaxlib==0.10.2
BIN := $(VENV)/bin
CXX_SOURCES = csrc/*.cpp csrc/*.h cuda/*.cu cuda/*.cuh cuda/*.h cuda/*.cpp convkernels/include/*.h \
	tests/emulation/*.h tests/emulation/*.cpp

# Options for the main job, e.g. `make train ARGS="--epochs 3"`.
ARGS ?=
OUT ?= runs/lenet5

.PHONY: train test lint format clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

# convkernels itself, rebuilt whenever the build or the C++ changes.
$(VENV)/.installed: $(BIN)/python pyproject.toml setup.py $(wildcard csrc/*) $(wildcard cuda/*) $(wildcard convkernels/include/*)
	$(BIN)/python -m pip install --quiet --upgrade "setuptools>=77" "pybind11>=2.12"
	$(BIN)/python -m pip install --quiet --no-build-isolation -e ".[test,train]"
	touch $@

# What only the tests need: linters, the PyTorch reference and JAX.
$(VENV)/.test-tools: $(VENV)/.installed
	$(BIN)/python -m pip install --quiet ruff clang-format $(TORCH) $(JAX)
	touch $@

# One OpenMP thread per core, pinned: on small VMs the scheduler otherwise sometimes stacks both
# threads on one vCPU, and every parallel region then waits out a time slice (bench/README.md).
train: $(VENV)/.installed
	OMP_PROC_BIND=true OMP_PLACES=cores $(BIN)/convkernels train lenet5 --out $(OUT) $(ARGS)

lint: $(VENV)/.test-tools
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/clang-format --dry-run --Werror $(CXX_SOURCES)

format: $(VENV)/.test-tools
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .
	$(BIN)/clang-format -i $(CXX_SOURCES)

test: lint
	$(BIN)/python -m pytest

clean:
	rm -rf $(VENV) build *.egg-info convkernels/*.so convkernels/lib
