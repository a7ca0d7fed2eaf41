# The two set-up commands on a fresh machine:
#   make demo   runs the demo playbooks against the local AWS IoT endpoint
#   make test   runs every test (lint, unit, local endpoint, integration, ansible-test sanity)
# Both create .venv from the repo's own requirement files first.

PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
PORT ?= 5123
PYTEST_WORKERS ?= 2

.PHONY: all venv pins demo test lint format unit integration pytest sanity build changelog benchmark benchmark-scale clean \
	test-aws test-matrix docs

all: test

venv: $(VENV)/.installed

# Exact versions from constraints.txt: a newer moto or botocore on the index never changes a test run by itself.
$(VENV)/.installed: constraints.txt requirements.txt requirements-dev.txt tests/unit/requirements.txt tests/integration/requirements.txt
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -c constraints.txt -r requirements-dev.txt
	touch $@

# Resolve the requirement ranges afresh into constraints.txt (then run `make test` and commit both).
pins:
	rm -rf build/pins && $(PYTHON) -m venv build/pins
	build/pins/bin/python -m pip install --quiet --disable-pip-version-check -r requirements-dev.txt
	{ sed -n '/^#/p' constraints.txt; build/pins/bin/python -m pip freeze --exclude-editable; } > constraints.txt.new
	mv constraints.txt.new constraints.txt
	rm -rf build/pins

demo: venv
	VENV=$(VENV) PORT=$(PORT) bash scripts/demo.sh

# lint and ansible-test sanity are single-threaded and pytest keeps two workers busy: on the 2-core CI machine the three
# run side by side (about 1.5 minutes less than one after the other); each one's output is printed whole when it ends.
test: venv
	$(MAKE) --no-print-directory -j3 --output-sync=target lint sanity pytest

lint: venv
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/antsibull-changelog lint
	mkdir -p build/collections/ansible_collections/iotfleet
	ln -sfn $(CURDIR) build/collections/ansible_collections/iotfleet/provisioning
	PATH=$(CURDIR)/$(BIN):$$PATH ANSIBLE_COLLECTIONS_PATH=$(CURDIR)/build/collections $(BIN)/ansible-lint --offline

format: venv
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format .

unit: venv
	$(BIN)/python -m pytest -q tests/unit

integration: venv
	$(BIN)/python -m pytest -q tests/integration

# One pytest run for unit, local endpoint and integration tests. Long tests run first (tests/integration/conftest.py)
# and --dist worksteal lets an idle worker take tests queued on the other, so both workers finish together.
pytest: venv
	$(BIN)/python -m pytest -q -p no:cacheprovider -n $(PYTEST_WORKERS) --dist worksteal tests/unit tests/local_iot tests/integration

sanity: venv
	VENV_BIN=$(CURDIR)/$(BIN) bash scripts/ansible_test.sh sanity --venv --python 3.11

build: venv
	mkdir -p build
	$(BIN)/ansible-galaxy collection build --force --output-path build .

# Not part of the tests: prints and writes benchmarks/results.json. benchmark: 500 devices (its quota bounds
# take 1.5 minutes, more on a loaded machine); benchmark-scale: also 1,000 and 10,000 devices and plan-only runs
# of 10,000 and 100,000 (30 minutes or more; see the README's Benchmarks section).
benchmark: venv
	$(BIN)/python benchmarks/run.py

benchmark-scale: venv
	$(BIN)/python benchmarks/run.py --scale

# Opt-in, never in CI: the integration targets against the AWS account of your credentials (docs/testing_on_aws.md).
#   IOTFLEET_AWS_TESTS=1 AWS_PROFILE=sandbox AWS_REGION=eu-west-1 make test-aws   (ARGS="--dry-run" lists only)
test-aws: venv
	$(BIN)/python scripts/test_aws.py $(ARGS)

# Not in CI (minutes per version): sanity and one integration target for each claimed ansible-core version
# this machine's Python runs (scripts/test_matrix.sh; VERSIONS="2.17.14" for one).
test-matrix: venv
	PYTHON=$(PYTHON) bash scripts/test_matrix.sh

# The HTML documentation site (modules, plugins, roles, docs/ guides) in build/docs/html; not in CI (~1.5 min).
docs: venv
	VENV_BIN=$(CURDIR)/$(BIN) bash scripts/build_docs.sh

changelog: venv
	$(BIN)/antsibull-changelog release

clean:
	rm -rf build tests/output demo-output .pytest_cache .ruff_cache
