# Two commands on a fresh machine: `make run` and `make test`. Python 3.11+ is the only prerequisite.
# The first interpreter that actually runs and is 3.11+ (a pyenv shim may exist but not run).
PYTHON ?= $(shell for p in python3 python3.13 python3.12 python3.11; do \
	$$p -c 'import sys; sys.exit(sys.version_info < (3, 11))' 2>/dev/null && { command -v $$p; break; }; done)
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: run test lint format install clean bench chaos tools

# The Python client (clients/python) is a package of its own, installed editable beside the
# project so the tests import it and run its audio-client command.
$(STAMP): pyproject.toml clients/python/pyproject.toml
	@test -n "$(PYTHON)" || { echo "Python 3.11+ not found (tried python3, python3.13, python3.12, python3.11)"; exit 1; }
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	@$(PY) -c 'import sys; assert sys.version_info >= (3, 11), "Python 3.11+ required"'
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[dev]' -e ./clients/python
	@touch $(STAMP)

install: $(STAMP)

## Start the local stack (embedded Redis and every service) in the foreground; Ctrl-C stops it.
run: $(STAMP)
	$(PY) -m devnet

## Debian packages the tests drive, installed where missing: promtool (package prometheus,
## without its recommended exporters) for the alert rules, chromium and chromium-driver for
## the dashboard in a real browser. Where apt-get cannot install them, those tests skip and
## say why.
tools:
	@command -v promtool >/dev/null || ! command -v apt-get >/dev/null || \
		{ apt-get update -qq && apt-get install -y -qq --no-install-recommends prometheus; } || \
		echo "promtool could not be installed: the alert-rule tests will skip"
	@command -v chromium >/dev/null && command -v chromedriver >/dev/null || \
		! command -v apt-get >/dev/null || \
		{ apt-get update -qq && apt-get install -y -qq chromium chromium-driver; } || \
		echo "chromium could not be installed: the browser test will skip"

## Lint, then the whole test suite against real Redis and real HTTP servers on loopback.
## Two pytest workers (pytest-xdist), one test file each at a time: most tests wait on real
## servers rather than compute, so two workers on two cores roughly halve the wall time.
## espeak-ng gives the end-to-end tests real speech; where apt-get cannot install it they say
## so and use a WAV without the embedded transcript, the same case for the devnet. curl runs
## the README's examples (tests/e2e/test_as_shipped.py, tests/e2e/test_openai.py).
test: $(STAMP) tools
	@command -v curl >/dev/null || ! command -v apt-get >/dev/null || \
		{ apt-get update -qq && apt-get install -y -qq curl >/dev/null; } || \
		echo "curl could not be installed: the README curl tests will fail"
	@command -v espeak-ng >/dev/null || ! command -v apt-get >/dev/null || \
		{ apt-get update -qq && apt-get install -y -qq espeak-ng >/dev/null; } || \
		echo "espeak-ng could not be installed: tests/e2e/test_as_shipped.py uses devnet.audio"
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(PY) -m pytest -q -n 2 --dist loadfile

## Chaos tests (a few minutes): validator replicas, Redis and WhisperX instances are killed
## under load; each test prints a "chaos <name>: ..." line and writes var/chaos/<name>.json.
chaos: $(STAMP)
	$(PY) -m pytest -q -s tests/chaos

## Benchmarks (docs/performance.md): installs nginx, wrk and the bench extra, runs every
## scenario on loopback (about 7 minutes; BENCH_ARGS=--quick for a shorter run).
bench: $(STAMP)
	@command -v nginx >/dev/null && command -v wrk >/dev/null || \
		{ apt-get update -qq && apt-get install -y -qq nginx-light wrk; }
	$(PY) -m pip install --quiet -e '.[dev,bench]'
	$(PY) -m bench $(BENCH_ARGS)

lint: $(STAMP)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

format: $(STAMP)
	$(VENV)/bin/ruff check --fix .
	$(VENV)/bin/ruff format .

clean:
	rm -rf $(VENV) var .pytest_cache .ruff_cache
