# The two commands of the README:
#   make demo   installs, fetches Fashion-MNIST, runs the whole comparison table (demo size)
#   make test   installs and runs the test suite (what .ci/run calls)
# Each builds its own virtual environment in .venv on first use.

PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
VARIANT ?= demo
WORKDIR ?= runs/table_$(VARIANT)

.PHONY: install demo table test bench clean-venv

$(VENV)/.installed: setup.py constraints.txt
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -c constraints.txt -e '.[test,bench]'
	touch $@

install: $(VENV)/.installed

demo: table

table: $(VENV)/.installed
	$(PY) -m pretrain_jax.data.fetch fashion_mnist
	$(PY) -m pretrain_jax.table --config configs/table.py:$(VARIANT) --workdir $(WORKDIR)

test: $(VENV)/.installed
	$(PY) -m pretrain_jax.data.fetch fashion_mnist
	$(PY) -m pytest -n 2 -q tests

bench: $(VENV)/.installed
	for script in benchmarks/*.py; do $(PY) $$script || exit 1; done

clean-venv:
	rm -rf $(VENV)
