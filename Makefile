# kubeopt: one command surface. `make help` lists the targets.
SHELL := /bin/bash
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
export PATH := $(CURDIR)/$(BIN):/usr/local/go/bin:$(PATH)
# Image names and tags: KUBEOPT_VERSION, KUBEOPT_REGISTRY, IMAGE_* (the chart and the operator read the same file).
include operator/kubeopt/api/images.env
IMAGES := $(IMAGE_OPERATOR) $(IMAGE_WORKER_ONNXRUNTIME)

.PHONY: help venv demo test test-unit test-e2e lint crd docs e2e-tools debian-tools lock images clean

help: ## list the targets
	@grep -E '^[a-z0-9-]+:.*## ' $(firstword $(MAKEFILE_LIST)) | awk -F':.*## ' '{printf "  %-12s %s\n", $$1, $$2}'

# Pinned: requirements/venv.txt (make lock) constrains every package the extras pull in.
$(STAMP): pyproject.toml requirements/venv.txt
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -c requirements/venv.txt -e '.[operator,onnxruntime,torch,tensorflow,demo,dev]'
	touch $(STAMP)

venv: $(STAMP) ## create .venv and install kubeopt with every CPU backend and the dev tools

demo: venv ## train the digits CNN, optimize it on this CPU (onnxruntime + torch-compile, fp32 + int8), print the table
	$(BIN)/python examples/digits/make_digits.py
	mkdir -p out
	$(BIN)/kubeopt run examples/digits/optimization.yaml --termination-log out/digits-termination.json
	@echo "HTML report: out/digits/_report/$$($(BIN)/python -c 'import json; print(json.load(open("out/digits/_report/current.json"))["path"])')/report.html"

lock: ## re-resolve requirements/*.txt from pyproject.toml (UPGRADE=1: newest versions; needs PyPI)
	UV=$(BIN)/uv bash requirements/lock.sh

e2e-tools: debian-tools ## build etcd, kube-apiserver, kube-controller-manager, MinIO, Helm, kstatus, the Prometheus Operator config generator and discovery (Go module proxy, cached)
	bash e2e/build.sh
	bash e2e/kstatus/build.sh
	bash e2e/promop-config/build.sh
	bash e2e/promop-discover/build.sh

debian-tools: ## install Prometheus/promtool, buildah, podman, mmdebstrap and chromium from Debian (only what is missing)
	bash e2e/install-debian-tools.sh

images: debian-tools ## build the operator and CPU worker images (buildah on a local Debian base, cached by content)
	bash images/build.sh $(IMAGES)
	@for name in $(IMAGES); do podman image inspect --format "$(KUBEOPT_REGISTRY)/$$name:$(KUBEOPT_VERSION) {{.Size}} bytes" \
	  $(KUBEOPT_REGISTRY)/$$name:$(KUBEOPT_VERSION); done

lint: venv ## ruff, mypy, the import layering contracts and actionlint on .github/workflows
	$(BIN)/ruff check operator tests e2e examples bench
	$(BIN)/mypy
	$(BIN)/lint-imports
	bash .github/actionlint.sh

test-unit: venv ## unit and integration tests (real tiny models, no cluster)
	$(BIN)/python -m pytest tests -q

test-e2e: venv e2e-tools images ## the whole system on a real control plane and S3 server, the operator from its image
	KUBEOPT_E2E_BIN_DIR=$$(bash e2e/build.sh | tail -1) $(BIN)/python -m pytest e2e -q

# The tools come before the unit stage: promtool's rule tests and the chart tests (helm) run there, and under
# CI=true (.ci/run sets it) a missing tool fails them instead of skipping.
test: lint e2e-tools test-unit test-e2e ## everything CI runs

crd: venv ## regenerate crds/ and the chart's copy from the API models
	$(BIN)/kubeopt crd --output-dir crds
	if [ -d charts/kubeopt/crds ]; then cp crds/*.yaml charts/kubeopt/crds/; fi

docs: venv ## regenerate docs/reference.md and the README's troubleshooting table from the API models and the chart
	$(BIN)/kubeopt docs

clean: ## remove the demo's outputs
	rm -rf out examples/digits/model
