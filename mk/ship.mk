# mk/ship.mk: shipping targets, included by the top-level Makefile.
#
#   make docker-build     build the image IMAGE_NAME:IMAGE_TAG (linux/amd64)
#   make docker-run       run it locally with the original's environment
#   make docker-push      tag and push it to Artifact Registry
#   make lint-ship        shellcheck, yamllint, manifest, workflow and
#                         entrypoint checks (offline)
#   make test-container   build the image with podman (no Docker engine) and
#                         run the binary inside its root filesystem
#
# See README.md "Shipping". Every variable can be overridden on the command line,
# e.g. `make docker-push PROJECT_ID=my-project REGION=europe-west1`.

SHIP_ROOT := $(abspath $(dir $(lastword $(MAKEFILE_LIST)))..)

# Container CLI: docker, or podman (same flags for what is used here).
SHIP_DOCKER ?= docker

ifeq ($(origin GIT_COMMIT_HASH),undefined)
GIT_COMMIT_HASH := $(shell git -C "$(SHIP_ROOT)" rev-parse --short HEAD 2>/dev/null || echo unknown)
endif
IMAGE_NAME ?= pipeline-dataops
IMAGE_TAG ?= $(GIT_COMMIT_HASH)
# GKE nodes are linux/amd64: build for it even on an arm64 laptop.
PLATFORM ?= linux/amd64
HOME_DIR ?= /pipeline-dataops

# Artifact Registry: REGION-docker.pkg.dev/PROJECT_ID/REPO_NAME/IMAGE_NAME:IMAGE_TAG
REGION ?= us-west2
PROJECT_ID ?=
REPO_NAME ?= thebareops
IMAGE_URI ?= $(REGION)-docker.pkg.dev/$(PROJECT_ID)/$(REPO_NAME)/$(IMAGE_NAME):$(IMAGE_TAG)

# docker-run: a service-account key file, if present, is handed to the
# entrypoint base64-encoded (in the environment, not on the command line).
SHIP_KEY_FILE ?= gcp-storage-service-account.json
# Optional host directory mounted at HOME_DIR/data (must be writable by uid
# 10001) to keep the local lake and warehouse between runs.
SHIP_DATA_DIR ?=
# Arguments after the image name (the entrypoint defaults to `run`).
SHIP_RUN_ARGS ?= run
# Variables passed through to the container when set in make's environment
# or on its command line (`--env NAME` copies the caller's value).
SHIP_RUN_ENV := PROJECT_ID GCS_BUCKET_NAME GCS_BUCKET_PROJECT_NAME \
	BIGQUERY_RAW_DATASET BIGQUERY_RAW_TABLE_NAME \
	BIGQUERY_TRANSFORMED_DATASET BIGQUERY_TRANSFORMED_TABLE_NAME \
	DATAOPS_SYMBOLS DATAOPS_INTERVALS DATAOPS_START_TIME DATAOPS_END_TIME \
	BINANCE_BASE_URL DATAOPS_WAREHOUSE DATAOPS_LAKE DATAOPS_TIMEZONE \
	DATAOPS_LOG_FORMAT DATAOPS_LOCK_TIMEOUT
SHIP_TTY := $(shell [ -t 0 ] && echo -it)

SHIP_DIR := $(SHIP_ROOT)/tests/ship
SHIP_SHELL_SCRIPTS := $(SHIP_ROOT)/scripts/docker/entrypoint.sh $(wildcard $(SHIP_DIR)/*.sh)

.PHONY: docker-build docker-run docker-push lint-ship test-container

docker-build:
	cd "$(SHIP_ROOT)" && $(SHIP_DOCKER) build \
		--platform "$(PLATFORM)" \
		--build-arg GIT_COMMIT_HASH="$(GIT_COMMIT_HASH)" \
		--build-arg HOME_DIR="$(HOME_DIR)" \
		-f Dockerfile \
		-t "$(IMAGE_NAME):$(IMAGE_TAG)" \
		.

docker-run:
	@if [ -f "$(SHIP_KEY_FILE)" ]; then \
		echo "docker-run: passing $(SHIP_KEY_FILE) as GOOGLE_APPLICATION_CREDENTIALS_JSON_BASE64"; \
		GOOGLE_APPLICATION_CREDENTIALS_JSON_BASE64=$$(base64 < "$(SHIP_KEY_FILE)" | tr -d "\n"); \
		export GOOGLE_APPLICATION_CREDENTIALS_JSON_BASE64; \
		set -- --env GOOGLE_APPLICATION_CREDENTIALS="$(HOME_DIR)/gcp-storage-service-account.json" \
			--env GOOGLE_APPLICATION_CREDENTIALS_JSON_BASE64; \
	else \
		set --; \
	fi; \
	if [ -n "$(SHIP_DATA_DIR)" ]; then \
		set -- "$$@" --volume "$(abspath $(SHIP_DATA_DIR)):$(HOME_DIR)/data"; \
	fi; \
	set -x; \
	$(SHIP_DOCKER) run $(SHIP_TTY) --rm \
		"$$@" \
		$(foreach v,$(SHIP_RUN_ENV),--env $(v)) \
		--name "$(IMAGE_NAME)" \
		"$(IMAGE_NAME):$(IMAGE_TAG)" $(SHIP_RUN_ARGS)

docker-push:
	@if [ -z "$(PROJECT_ID)" ]; then \
		echo "docker-push: set PROJECT_ID (and REGION, REPO_NAME if not $(REGION), $(REPO_NAME))" >&2; \
		exit 2; \
	fi
	$(SHIP_DOCKER) tag "$(IMAGE_NAME):$(IMAGE_TAG)" "$(IMAGE_URI)"
	$(SHIP_DOCKER) push "$(IMAGE_URI)"
	@echo "pushed $(IMAGE_URI)"

lint-ship:
	@for tool in shellcheck yamllint node npm; do \
		command -v $$tool >/dev/null 2>&1 || { \
			echo "lint-ship: $$tool not found (apt-get install shellcheck yamllint nodejs npm)" >&2; \
			exit 2; }; \
	done
	shellcheck $(SHIP_SHELL_SCRIPTS)
	cd "$(SHIP_ROOT)" && yamllint --strict .
	@if [ ! "$(SHIP_DIR)/node_modules/.package-lock.json" -nt "$(SHIP_DIR)/package-lock.json" ]; then \
		echo "cd tests/ship && npm ci"; \
		cd "$(SHIP_DIR)" && npm ci --no-audit --no-fund; \
	fi
	node "$(SHIP_DIR)/check_manifests.mjs"
	sh "$(SHIP_DIR)/check_workflows.sh"
	bash "$(SHIP_DIR)/test_entrypoint.sh"

test-container:
	bash "$(SHIP_DIR)/test_container.sh"
