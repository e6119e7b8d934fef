# The two commands a newcomer runs: `make demo` and `make test`. Each installs what it needs.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.b2cal-installed
export B2CAL_HOME ?= $(CURDIR)/.b2cal/demo

.PHONY: install demo dev web services test test-fast lint bench clean deploy-test

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -e '.[test]'
	touch $(STAMP)

install: $(STAMP)

## A whole calibration loop of the synthetic detector, headless, through the Dagster daemon.
demo: install
	$(BIN)/b2cal demo --fresh

## The Dagster UI (webserver + daemon) over the same B2CAL_HOME as the demo.
dev: install
	DAGSTER_HOME=$(B2CAL_HOME)/dagster DAGSTER_GRPC_TIMEOUT_SECONDS=180 DAGSTER_SENSOR_GRPC_TIMEOUT_SECONDS=180 \
	  $(BIN)/dagster dev -w workspace.yaml -h 127.0.0.1 -p 3000

## The UI behind the LDAP login (see README: Login).
web: install
	$(BIN)/b2cal web

## Install and start what the tests need (Slurm, xrootd, slapd, Chromium, database tools).
services: install
	bash .ci/services/start-all.sh

test: install services
	$(BIN)/python -m pytest -q

test-fast: install
	$(BIN)/python -m pytest -q -m "not slow"

## The deployment for real: build the images, start docker/compose.yaml, log in through nginx, run a
## processing in run containers, restart, tear down. Docker where there is one, else podman
## (.ci/services/podman.sh: about 3 minutes the first time). Wipes the compose project b2cal's volumes.
deploy-test: install
	bash .ci/services/slapd.sh
	CI=true $(BIN)/python -m pytest -q b2cal_assets_tests/deploy/stack_e2e.py

## ruff, mypy (strict for the packages listed in pyproject.toml) and the import contracts of the layers.
lint: install
	$(BIN)/ruff check b2cal_assets b2cal_assets_tests benchmarks migrations
	$(BIN)/mypy
	$(BIN)/lint-imports

bench: install services
	for b in benchmarks/bench_*.py; do echo "== $$b"; $(BIN)/python $$b || exit 1; done

clean:
	rm -rf .b2cal .pytest_cache test-artifacts
