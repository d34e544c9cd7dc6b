# The two commands of the README:
#   make demo   installs, fetches Fashion-MNIST, runs the whole comparison table (demo size)
#   make test   installs and runs the test suite (what .ci/run calls)
#   make words  the word-vector table (VARIANT=demo by default; full for the README's numbers)
# Each builds its own virtual environment in .venv on first use.

PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
VARIANT ?= demo
WORKDIR ?= runs/table_$(VARIANT)

.PHONY: install demo table words test bench clean-venv

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

words: $(VENV)/.installed
	$(PY) -m pretrain_jax.data.fetch english
	$(PY) -m pretrain_jax.data.fetch word_benchmarks
	$(PY) -m pretrain_jax.table --config configs/word_vectors_table.py:$(VARIANT) --workdir runs/word_vectors_$(VARIANT)

test: $(VENV)/.installed
	$(PY) -m pretrain_jax.data.fetch fashion_mnist
	$(PY) -m pretrain_jax.data.fetch english
	$(PY) -m pretrain_jax.data.fetch word_benchmarks
	$(PY) -m pretrain_jax.data.fetch sentiment
	$(PY) -m pretrain_jax.data.fetch mnist
	$(PY) -m pytest -n 2 --dist loadgroup -q tests

bench: $(VENV)/.installed
	for script in benchmarks/*.py; do $(PY) $$script || exit 1; done

clean-venv:
	rm -rf $(VENV)
