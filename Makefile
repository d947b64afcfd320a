# Two entry points, both idempotent, needing only python3 and make:
#   make lab    set up, then start JupyterLab on notebooks/
#   make test   set up, then run the whole test suite
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: lab test bench setup clean

setup: $(STAMP)

# Re-install only when the pins, the package metadata or a native accelerator change.
$(STAMP): pyproject.toml constraints.txt setup.py lithair_lab/formats/_native.c lithair_lab/formats/_encode.c \
		lithair_lab/frames/_shapes.c
	$(PY) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -c constraints.txt -e '.[dev]'
	touch $(STAMP)

lab: $(STAMP)
	$(BIN)/lithair-lab lab

test: $(STAMP)
	$(BIN)/python -m pytest -n 2 --dist loadgroup

bench: $(STAMP)
	$(BIN)/python -m benchmarks

clean:
	rm -rf $(VENV) .pytest_cache .hypothesis
