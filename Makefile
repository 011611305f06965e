# Trellis: `make run` sets everything up and runs Trellis; `make test` sets everything up and runs the tests.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: install run test bench bench-scale seed-scale lint clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

install: $(STAMP)

run: $(STAMP)
	$(PY) -m scripts.run_local

test: $(STAMP)
	$(PY) -m pytest -q

bench: $(STAMP)
	$(PY) -m bench.run

# A database at the seed's scale (100,000 instances, ~1,000,000 events) in .trellis/scale, or in
# TRELLIS_DATABASE_URL when set; then the list and analytics endpoints timed against it.
seed-scale: $(STAMP)
	$(PY) -m scripts.seed_scale

bench-scale: $(STAMP)
	$(PY) -m bench.scale

lint: $(STAMP)
	$(VENV)/bin/ruff check . && $(VENV)/bin/ruff format --check . && $(VENV)/bin/mypy core api workflows activities worker.py scripts bench migrations && $(VENV)/bin/lint-imports

clean:
	rm -rf $(VENV) .trellis
