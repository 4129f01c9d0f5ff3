# kyso: two commands set everything up on a fresh Debian/Ubuntu machine (Python 3.11+).
#   make run   — virtualenv, install, initialize the embedded demo if missing, serve on :8000
#   make test  — install what the tests need (system packages too, as root), start services, run

PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
HOST   ?= 127.0.0.1
PORT   ?= 8000
export KYSO_HOME ?= $(CURDIR)/var/demo
export KYSO_BASE_URL ?= http://$(HOST):$(PORT)

.PHONY: run test install lint bench clean

$(STAMP): pyproject.toml
	@bash scripts/ensure-python.sh "$(PYTHON)"
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -e '.[test]'
	@touch $@

install: $(STAMP)

run: $(STAMP)
	$(BIN)/kyso init --demo --exist-ok
	$(BIN)/kyso serve --host $(HOST) --port $(PORT)

test: $(STAMP)
	@bash scripts/test.sh

lint: $(STAMP)
	$(BIN)/ruff check kyso tests benchmarks
	$(BIN)/mypy kyso

bench: $(STAMP)
	@bash scripts/bench-setup.sh
	$(BIN)/python benchmarks/bench_ca.py
	$(BIN)/python benchmarks/bench_signing.py
	$(BIN)/python benchmarks/bench_validation.py
	$(BIN)/python benchmarks/bench_bulk.py
	@bash -c 'export "$$(bash scripts/test-setup.sh)"; $(BIN)/python benchmarks/bench_web.py'

clean:
	rm -rf var/test .pytest_cache
