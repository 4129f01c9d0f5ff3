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

.PHONY: run test install lint bench clean lock

# The dependencies are pinned with their hashes in requirements/*.lock (`make lock` after a
# change to pyproject.toml); kyso itself is installed without resolving anything again, and
# `pip check` fails the install if pyproject.toml asks for something the lock lacks.
LOCK   := requirements/test.lock

$(STAMP): pyproject.toml $(LOCK)
	@bash scripts/ensure-python.sh "$(PYTHON)"
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q --require-hashes -r $(LOCK)
	$(BIN)/python -m pip install -q --no-deps -e .
	$(BIN)/python -m pip check
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
	@bash -c 'export "$$(bash scripts/test-setup.sh)"; $(BIN)/python benchmarks/bench_remote.py'

# Re-pin every dependency (newest versions on PyPI that fit pyproject.toml) with hashes of
# all their files; this machine's local wheel mirrors are left out so the hashes are PyPI's.
LOCK_FLAGS := --quiet --generate-hashes --allow-unsafe --strip-extras --no-emit-index-url \
	--no-emit-find-links --no-emit-trusted-host --cache-dir var/pip-tools-cache
lock: $(STAMP)
	$(BIN)/python -m pip install -q pip-tools
	env -u PIP_FIND_LINKS -u PIP_CONSTRAINT PIP_CONFIG_FILE=/dev/null \
	  $(BIN)/pip-compile $(LOCK_FLAGS) -o requirements/run.lock pyproject.toml
	env -u PIP_FIND_LINKS -u PIP_CONSTRAINT PIP_CONFIG_FILE=/dev/null \
	  $(BIN)/pip-compile $(LOCK_FLAGS) --extra test -o requirements/test.lock pyproject.toml

clean:
	rm -rf var/test .pytest_cache
