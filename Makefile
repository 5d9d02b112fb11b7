# One command per job. `make demo` and `make test` install what they need first.
VENV ?= .venv
PY := $(VENV)/bin/python
PIP := $(PY) -m pip
STAMP := $(VENV)/.installed

.PHONY: install demo serve test test-fast lint typecheck bench clean

install: $(STAMP)

# Torch goes in first: where no GPU is present, the CPU build (a file on this machine's disk for
# torch 2.13.0) keeps the install fast; a bare `torch` requirement would pull a 5 GB CUDA build.
$(STAMP): pyproject.toml
	test -x $(PY) || python3 -m venv $(VENV)
	if command -v nvidia-smi >/dev/null 2>&1; then $(PIP) install -q 'torch>=2.3,<2.15'; \
	else $(PIP) install -q torch==2.13.0; fi
	$(PIP) install -q -e '.[dev]'
	# The client generator of tests/api/test_openapi_client.py pins httpx and typer below what
	# Warden uses, so it gets a venv of its own.
	test -x $(VENV)/clientgen/bin/openapi-python-client || (python3 -m venv $(VENV)/clientgen \
		&& $(VENV)/clientgen/bin/pip install -q 'openapi-python-client>=0.29,<0.30')
	# axe-core, injected by tests/console into each page it checks for accessibility.
	test -f $(VENV)/npm/node_modules/axe-core/axe.min.js || ! command -v npm >/dev/null \
		|| npm install -s --no-audit --no-fund --prefix $(VENV)/npm axe-core@4.10.3
	touch $(STAMP)

demo: install
	$(VENV)/bin/warden demo

serve: install
	$(VENV)/bin/warden serve

# One worker per core: the suite is CPU-bound once modules share their servers.
TEST_WORKERS ?= auto

test: install
	$(VENV)/bin/pytest -q -n $(TEST_WORKERS)

test-fast: install
	$(VENV)/bin/pytest -q -n $(TEST_WORKERS) -m "not slow and not reliability"

lint: install
	$(VENV)/bin/ruff check governance inference tests bench migrations scripts
	$(VENV)/bin/ruff format --check governance inference tests bench migrations scripts

typecheck: install
	$(VENV)/bin/mypy governance inference
	# Each benchmark on its own: they import their helpers as scripts (`_common`) and as
	# `bench._common`, which one mypy run cannot hold together.
	for f in bench/*.py; do $(VENV)/bin/mypy --follow-imports=silent $$f || exit 1; done
	$(VENV)/bin/mypy --follow-imports=silent scripts/wheel_smoke.py

bench: install
	$(PY) bench/run

clean:
	rm -rf var .pytest_cache .mypy_cache .ruff_cache
