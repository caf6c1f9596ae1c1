# Two commands do everything (see README.md):
#   make test    set up .venv, build and install convkernels, check formatting, run the tests
#   make train   set up .venv and train LeNet-5 on MNIST (the main job; see issue 4)
# Both start from nothing: a fresh clone and a python3 with venv.

PYTHON ?= python3
VENV ?= .venv
# PyTorch is the optional second reference the tests compare against; `make test TORCH=` skips
# installing it (the comparisons are then skipped and say so).
TORCH ?= torch==2.13.0
BIN := $(VENV)/bin

.PHONY: test lint format clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

# Reinstalled whenever the build or the C++ changes.
$(VENV)/.installed: $(BIN)/python pyproject.toml setup.py $(wildcard csrc/*)
	$(BIN)/python -m pip install --quiet setuptools pybind11 ruff clang-format $(TORCH)
	$(BIN)/python -m pip install --quiet --no-build-isolation -e ".[test]"
	touch $@

lint: $(VENV)/.installed
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/clang-format --dry-run --Werror csrc/*.cpp csrc/*.h

format: $(VENV)/.installed
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .
	$(BIN)/clang-format -i csrc/*.cpp csrc/*.h

test: lint
	$(BIN)/python -m pytest

clean:
	rm -rf $(VENV) build *.egg-info convkernels/*.so
