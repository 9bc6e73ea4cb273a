# Thin entry points; the work lives in scripts. `make help` lists the targets.
SHELL := /bin/bash
.DEFAULT_GOAL := help

SELECT ?=
LAYOUT ?= single
# The chaos soak's random generator seed and number of rounds (make chaos-soak).
SEED ?= 1
ROUNDS ?= 30
# The dbt project that `make dev` runs and `make image` packages (a path; default the example).
DBT_PROJECT ?= dbt_project
# Every variable a user sets reaches the recipes through the environment, as typed, and recipes
# expand it as `"$${VAR}"` (`$${VAR}` for a list of arguments). Written as $(VAR), make would paste
# the value into the shell line, where a quote or a `$(...)` in it is shell syntax; and make itself
# expands a `$(...)` in a value it exports (`$(shell ...)` runs), unless the value is taken as is
# (`$(value ...)`) first. The *_ARGS lists are split on whitespace only (no quoting inside them).
USER_VARIABLES := SELECT LAYOUT SEED ROUNDS DBT_PROJECT CLUSTER_TEST_ARGS K8S_TEST_ARGS BENCH_ARGS
$(foreach name,$(USER_VARIABLES),$(eval override $(name) := $$(value $(name))))
export $(USER_VARIABLES)

##@ Setup and local development

.PHONY: help
help: ## Show this help.
	@awk 'BEGIN {FS = ":.*##"} /^[a-zA-Z_-]+:.*##/ {printf "  %-16s %s\n", $$1, $$2} /^##@/ {printf "\n%s\n", substr($$0, 5)}' $(MAKEFILE_LIST)

.PHONY: setup
setup: ## Install what the fast suite and local runs need (uv, Python deps, PostgreSQL server).
	hack/setup.sh

.PHONY: dev
dev: setup ## Run Dagster locally (webserver + daemon) on DBT_PROJECT against an embedded PostgreSQL.
	hack/dev.sh

.PHONY: materialize
materialize: setup ## Materialize dbt assets chosen with dbt selection syntax: make materialize SELECT="tag:staging +fct_orders".
	hack/materialize.sh "$${SELECT}"

.PHONY: dbt-deps-reset
dbt-deps-reset: setup ## Recover from a broken package update: dbt clean && dbt deps.
	hack/dbt-deps-reset.sh

##@ Tests

.PHONY: test
test: setup ## The fast suite: dbt + Dagster on a real PostgreSQL, and the chart tests. No cluster.
	hack/test.sh

.PHONY: lint
lint: setup ## ruff (lint, format check) and shellcheck.
	hack/lint.sh

.PHONY: chart-test
chart-test: setup ## helm lint, and render tests of the chart.
	hack/test.sh tests/chart

##@ Image and chart

.PHONY: image
image: ## Build the project image of DBT_PROJECT (and the PostgreSQL image) into the local Docker engine.
	hack/build-images.sh

.PHONY: k8s-test-images
k8s-test-images: image ## The images the cluster suites install: the example's (make image), tests/dbt_projects/acme's and its next version's, tests/dbt_projects/plain's, the S3 server's.
	source versions.env && DBT_PROJECT=tests/dbt_projects/acme PROJECT_IMAGE="$${ACME_PROJECT_IMAGE}" hack/build-images.sh
	source versions.env && DBT_PROJECT=tests/dbt_projects/plain PROJECT_IMAGE="$${PLAIN_PROJECT_IMAGE}" hack/build-images.sh
	rm -rf artifacts/acme-next && mkdir -p artifacts && cp -a tests/dbt_projects/acme artifacts/acme-next
	cp -a k8s_tests/chaos/acme_next/models/. artifacts/acme-next/models/
	source versions.env && DBT_PROJECT=artifacts/acme-next PROJECT_IMAGE="$${ACME_NEXT_PROJECT_IMAGE}" hack/build-images.sh
	images/s3/build-image.sh

.PHONY: auth-proxy-image
auth-proxy-image: ## The auth proxy of dagsterWebserver.authProxy (oauth2-proxy, built from source), and its kind test's OIDC provider.
	images/oauth2-proxy/build-image.sh
	k8s_tests/images/oidc-provider/build-image.sh

##@ Kind cluster

.PHONY: cluster
cluster: ## Bring up a kind cluster (LAYOUT=single|multi), building the node image when none can be pulled.
	k8s_tests/cluster/up.sh "$${LAYOUT}"

.PHONY: cluster-down
cluster-down: ## Delete the kind cluster.
	k8s_tests/cluster/down.sh

.PHONY: cluster-clean
cluster-clean: cluster-down ## Delete the cluster and drop every cache.
	k8s_tests/cluster/clean.sh

.PHONY: cluster-test
cluster-test: ## Acceptance test of the kind cluster; reuse one with CLUSTER_TEST_ARGS="--kind-cluster dagster-dbt-k8s".
	uv run pytest k8s_tests/test_cluster.py $${CLUSTER_TEST_ARGS}

##@ Dagster on kind (the main job and the chaos suite)

.PHONY: up
up: ## Kind cluster + images + chart on the embedded PostgreSQL + raw data; prints the UI URL.
	hack/up.sh

.PHONY: down
down: ## Uninstall the release and delete the kind cluster.
	hack/down.sh

.PHONY: k8s-test
k8s-test: setup ## The cluster suites CI runs: acceptance + every fault kind; K8S_TEST_ARGS="--kind-cluster dagster-dbt-k8s --keep-cluster" reuses one.
	hack/test.sh k8s_tests -m "not full_suite" $${K8S_TEST_ARGS}

.PHONY: k8s-test-full
k8s-test-full: setup ## Every cluster scenario (k8s-test and the full_suite ones); takes K8S_TEST_ARGS too.
	hack/test.sh k8s_tests $${K8S_TEST_ARGS}

.PHONY: chaos-soak
chaos-soak: setup ## Faults of every kind at random moments, invariants checked each round: SEED=1 ROUNDS=30 (multi-node cluster; takes K8S_TEST_ARGS).
	SOAK_SEED="$${SEED}" SOAK_ROUNDS="$${ROUNDS}" hack/test.sh k8s_tests/chaos/test_chaos_soak.py -s --cluster-layout multi $${K8S_TEST_ARGS}

.PHONY: bench
bench: setup ## Recovery benchmark on its own kind cluster; BENCH_ARGS="--quick" for a one-repetition check.
	uv run --frozen python -m k8s_tests.bench $${BENCH_ARGS}

.PHONY: bench-step-outputs
bench-step-outputs: setup ## Dagster's cost per output of one step of 250 to 5,000 assets, as shipped and fixed (in process, ~10 min).
	uv run --frozen python -m k8s_tests.bench.step_outputs
