# The two commands a newcomer runs: `make demo` and `make test`. Each installs what it needs.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.b2cal-installed
# the CLI's default (./.b2cal, settings.py): `b2cal status` from here sees what `make demo` made
export B2CAL_HOME ?= $(CURDIR)/.b2cal
export DAGSTER_HOME ?= $(B2CAL_HOME)/dagster

.PHONY: install demo dev web where services test test-fast lint bench clean deploy-test deploy-teardown

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -e '.[test]'
	touch $(STAMP)

install: $(STAMP)

## A whole calibration loop of the synthetic detector, headless, through the Dagster daemon.
demo: install
	$(BIN)/b2cal demo --fresh

## The UI on a laptop over the demo's B2CAL_HOME: the Dagster daemon (sensors, run queue) and `b2cal web
## --no-auth` (the Dagster UI plus the calibration pages, /b2cal) on http://127.0.0.1:3000.
dev: install
	$(BIN)/python -c "from b2cal_assets.web.serve import ensure_dagster_home; ensure_dagster_home()"
	export DAGSTER_GRPC_TIMEOUT_SECONDS=180 DAGSTER_SENSOR_GRPC_TIMEOUT_SECONDS=180; \
	  $(BIN)/dagster-daemon run -w workspace.yaml & daemon=$$!; \
	  trap 'kill $$daemon 2>/dev/null' EXIT INT TERM; \
	  echo "b2cal: open http://127.0.0.1:3000/b2cal (your work, the status, the calibration pages)"; \
	  $(BIN)/b2cal web --no-auth --host 127.0.0.1 --port 3000

## Where the demo, `make dev` and the `b2cal` command (run from here) keep their files.
where:
	@echo "B2CAL_HOME=$(B2CAL_HOME)"
	@echo "DAGSTER_HOME=$(DAGSTER_HOME)"

## The UI behind the LDAP login (see README: Login).
web: install
	$(BIN)/b2cal web

## Install and start what the tests need (Slurm, xrootd, Rucio, slapd, Chromium, database tools).
services: install
	bash .ci/services/start-all.sh

test: install services
	$(BIN)/python -m pytest -q

test-fast: install
	$(BIN)/python -m pytest -q -m "not slow"

## The deployment for real: build the images, start docker/compose.yaml, log in through nginx, run a
## processing in run containers, restart, tear down. Docker where there is one, else podman
## (.ci/services/podman.sh: about 3 minutes the first time). Wipes the compose project b2cal's volumes.
## Then .ci/deploy-teardown.sh, pass or fail: nothing of it is left running.
deploy-test: install
	bash .ci/services/slapd.sh
	CI=true $(BIN)/python -m pytest -q b2cal_assets_tests/deploy/container_jobs_e2e.py \
	  b2cal_assets_tests/deploy/stack_e2e.py; status=$$?; bash .ci/deploy-teardown.sh; exit $$status

## Remove what a stopped or killed `make deploy-test` left (containers, network, named volumes).
deploy-teardown:
	bash .ci/deploy-teardown.sh

## ruff, mypy (strict for the packages listed in pyproject.toml) and the import contracts of the layers.
lint: install
	$(BIN)/ruff check b2cal_assets b2cal_assets_tests benchmarks migrations
	$(BIN)/mypy
	$(BIN)/lint-imports

bench: install services
	for b in benchmarks/bench_*.py; do echo "== $$b"; $(BIN)/python $$b || exit 1; done

clean:
	rm -rf .b2cal .pytest_cache test-artifacts
