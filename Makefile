# The project's commands; CI calls `make test` through .ci/run.
SHELL := /bin/bash
.DEFAULT_GOAL := help
UV ?= uv
PYTEST_ARGS ?=
# REDIS_MODE=cluster: a three-master Redis Cluster (infra/local/redis.sh) instead of one server,
# for `make up` and `make test` alike; the tests then run on a cluster of their own (a cluster
# has database 0 only), on TEST_REDIS_CLUSTER_PORTS, beside the one `make up` serves.
REDIS_MODE ?= standalone
TEST_REDIS_CLUSTER_PORTS ?= 7011 7012 7013
# ... and the replay tests' store (a Redis of its own beside the stack's) one more.
TEST_REDIS_STORE_CLUSTER_PORTS ?= 7021 7022 7023
export REDIS_MODE

.PHONY: help deps up down status test test-unit test-connected test-faults lint bench capacity soak helm-lint compose-check

help: ## list the targets
	@awk 'BEGIN {FS = ":.*## "} /^[a-z-]+:.*## / {printf "  make %-15s %s\n", $$1, $$2}' $(MAKEFILE_LIST)

deps: ## install uv (from PyPI) and the locked Python dependencies
	@command -v $(UV) >/dev/null 2>&1 || python3 -m pip install --quiet 'uv>=0.9'
	@$(UV) sync --frozen --quiet
	@echo "[deps] python dependencies in .venv (sandboxctl: .venv/bin/sandboxctl)"

up: deps ## install what is missing and start Kafka, PostgreSQL, Redis, the services and the E2B simulator
	@infra/local/up.sh
	@source .state/infra.env && .venv/bin/sandboxctl migrate
	@infra/local/services.sh start
	@scripts/e2b-dev-setup.sh
	@scripts/print-welcome.sh

down: ## stop what `make up` started (by pid)
	@infra/local/services.sh stop
	@infra/local/down.sh

status: ## show what is running
	@infra/local/services.sh status || true
	@infra/local/status.sh || true

test: deps ## start the infrastructure, then run every test tier against it
	@infra/local/up.sh
	@infra/local/chromium.sh >/dev/null # the dashboard's browser test drives Debian's chromium
	@# The dev services share the topics with the test stack: their actuator would act on the
	@# tests' commands. They are stopped (the infrastructure keeps running); `make up` restarts them.
	@infra/local/services.sh stop
	@if [[ $(REDIS_MODE) == cluster ]]; then \
	  REDIS_CLUSTER_PORTS="$(TEST_REDIS_CLUSTER_PORTS)" infra/local/redis.sh start && \
	  REDIS_CLUSTER_PORTS="$(TEST_REDIS_STORE_CLUSTER_PORTS)" infra/local/redis.sh start; fi
	@source .state/infra.env && \
	  TEST_REDIS_URL=redis://127.0.0.1:$(firstword $(TEST_REDIS_CLUSTER_PORTS))/0 \
	  TEST_REDIS_STORE_URL=redis://127.0.0.1:$(firstword $(TEST_REDIS_STORE_CLUSTER_PORTS))/0 \
	  $(UV) run --frozen pytest -m "not faults" $(PYTEST_ARGS)

test-unit: deps ## the fast tier only: no broker, no database
	@$(UV) run --frozen pytest -m "not connected and not faults" $(PYTEST_ARGS)

test-faults: deps ## kill -9 each part under load, on the suite's own Kafka/PostgreSQL/Redis (~12 min)
	@$(UV) run --frozen pytest -m faults tests/faults --ignore=tests/faults/test_brokers.py --ignore=tests/faults/test_scale.py $(PYTEST_ARGS)
	@# The broker scenarios, in a session of their own on a three-node Kafka (RF 3, min ISR 2).
	@FAULTS_KAFKA_BROKERS=3 $(UV) run --frozen pytest -m faults tests/faults/test_brokers.py $(PYTEST_ARGS)
	@# Several processes of each service on three brokers and a Redis Cluster (the scale test).
	@FAULTS_KAFKA_BROKERS=3 REDIS_CLUSTER=true $(UV) run --frozen pytest -m faults tests/faults/test_scale.py $(PYTEST_ARGS)

lint: deps ## ruff, mypy --strict and shellcheck
	@command -v shellcheck >/dev/null 2>&1 || (source infra/local/lib.sh && apt_install shellcheck)
	@shellcheck -x -S warning infra/local/*.sh scripts/*.sh .ci/run
	@$(UV) run --frozen ruff check .
	@$(UV) run --frozen ruff format --check libs services tools tests bench
	@$(UV) run --frozen mypy libs/common/src services/*/src tools/*/src tests bench

bench: deps ## run the benchmarks (infrastructure must be up: make up), then docs/CAPACITY.md from them
	@source .state/env.sh && $(UV) run --frozen python -m bench.run_all
	@$(UV) run --frozen python -m bench.capacity

capacity: deps ## rewrite docs/CAPACITY.md from bench/results.json (no infrastructure needed)
	@$(UV) run --frozen python -m bench.capacity

# The soak runs on a stack of its own built from nothing (SOAK_STATE: Kafka, PostgreSQL and Redis
# data, pid files, logs), on the usual ports: the stack of `make up` is stopped first (its data is
# kept) and the soak's is removed afterwards. Its one setting of its own: webhook ids are
# remembered 5 minutes instead of an hour, so Redis reaches its plateau within the run.
SOAK_STATE ?= $(CURDIR)/.state-soak
SOAK_DEDUPE_TTL ?= 300
soak: deps ## 30 min at 1,000 webhooks/s with 1,000 SSE clients on a fresh stack; memory and sizes each minute (not in CI)
	@infra/local/services.sh stop
	@infra/local/down.sh
	@rm -rf "$(SOAK_STATE)"
	@export STATE_DIR="$(SOAK_STATE)" INGEST_DEDUPE_TTL_SECONDS=$(SOAK_DEDUPE_TTL); \
	  infra/local/up.sh && source "$$STATE_DIR/infra.env" && .venv/bin/sandboxctl migrate && \
	  infra/local/services.sh start && scripts/e2b-dev-setup.sh && \
	  source "$$STATE_DIR/env.sh" && $(UV) run --frozen python -m bench.soak; rc=$$?; \
	  infra/local/services.sh stop; infra/local/down.sh; exit $$rc

CHART := deploy/helm/e2b-lifecycle

helm-lint: deps ## lint and render the Helm chart over its ci/ values (builds helm once if missing)
	@helm="$$(scripts/install-helm.sh)" && for values in $(CHART)/ci/*.yaml; do \
	  "$$helm" lint --strict --quiet --kube-version 1.31.0 $(CHART) -f "$$values" >/dev/null && \
	  "$$helm" template lint $(CHART) --kube-version 1.31.0 -f "$$values" >/dev/null && \
	  echo "[helm] $$values: lint and template ok" || exit 1; \
	done

compose-check: deps ## validate docker-compose.yml against the compose specification (no Docker needed)
	@$(UV) run --frozen check-jsonschema --builtin-schema vendor.compose-spec docker-compose.yml
