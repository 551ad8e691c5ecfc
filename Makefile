# Build, test and demo targets. `make test` is what CI runs (.ci/run).
SHELL := /bin/bash
GO ?= go
VERSION ?= 0.1.0
PRERELEASE ?= dev
PKG := github.com/esbake/packer-plugin-elasticsearch
LDFLAGS := -s -w -X $(PKG)/version.Version=$(VERSION) -X $(PKG)/version.Prerelease=$(PRERELEASE)
BIN := bin
PLUGIN := $(BIN)/packer-plugin-elasticsearch
ESNODE_ARCHES := amd64 arm64
export ESBAKE_CACHE ?= /var/cache/esbake

.PHONY: deps all build esnode plugin esaudit generate check-generate opa-check test unit e2e bench demo plugin-check install-plugin vet fmt clean

all: build

## build: esnode for every guest architecture (embedded), the plugin, esaudit
build: esnode plugin esaudit

esnode:
	@for arch in $(ESNODE_ARCHES); do \
	  echo "go build esnode linux/$$arch"; \
	  CGO_ENABLED=0 GOOS=linux GOARCH=$$arch $(GO) build -trimpath -ldflags '$(LDFLAGS)' -o provisioner/esnodebin/esnode-linux-$$arch ./cmd/esnode || exit 1; \
	done
	@mkdir -p $(BIN) && cp provisioner/esnodebin/esnode-linux-$$($(GO) env GOARCH) $(BIN)/esnode

plugin: esnode
	CGO_ENABLED=0 $(GO) build -trimpath -ldflags '$(LDFLAGS)' -o $(PLUGIN) ./cmd/packer-plugin-elasticsearch

esaudit:
	CGO_ENABLED=0 $(GO) build -trimpath -ldflags '$(LDFLAGS)' -o $(BIN)/esaudit ./cmd/esaudit

## generate: packer-sdc HCL2 specs and field docs, then the rendered docs
generate:
	$(GO) generate ./...
	@# renderdocs syncs its whole -dst (deleting docs/benchmarks.md and
	@# docs/policies.md) and does not truncate what it rewrites: render into
	@# an empty folder, then replace only the rendered pages.
	rm -rf .docs-rendered
	$(GO) tool packer-sdc renderdocs -src docs-src -partials docs-partials -dst .docs-rendered
	rm -rf $(addprefix docs/,$(notdir $(wildcard docs-src/*)))
	cp -r .docs-rendered/. docs/
	rm -rf .docs-rendered
	$(GO) run ./internal/gendocs docs/policies.md

## check-generate: fail when generated files are stale
check-generate: generate
	@if [ -n "$$(git status --porcelain -- '*.hcl2spec.go' docs-partials docs)" ]; then \
	  echo "generated files are stale; run 'make generate' and commit:"; git status --porcelain -- '*.hcl2spec.go' docs-partials docs; exit 1; fi

vet:
	@test -z "$$(gofmt -l $$(git ls-files '*.go'))" || { echo "gofmt needed:"; gofmt -l $$(git ls-files '*.go'); exit 1; }
	$(GO) vet ./...

## test: everything CI checks
test: deps check-generate vet plugin plugin-check opa-check
	ESBAKE_PLUGIN_BIN=$(CURDIR)/$(PLUGIN) $(GO) test -race -count=1 -timeout 30m ./...

## opa-check: the real opa binary on the policies (installed by deps)
opa-check:
	$(ESBAKE_CACHE)/bin/opa check --strict policies/
	$(ESBAKE_CACHE)/bin/opa test policies/

# plugin-check wants the bare binary name (packer-plugin-*), so run it from bin/.
plugin-check: plugin
	cd $(BIN) && $(GO) tool packer-sdc plugin-check packer-plugin-elasticsearch

e2e: plugin
	ESBAKE_PLUGIN_BIN=$(CURDIR)/$(PLUGIN) $(GO) test -race -timeout 30m -run 'E2E' ./...

## bench: the benchmarks; writes docs/benchmarks.md
bench: deps build
	./scripts/bench.sh

## demo: the offline main job (see README)
demo: plugin
	./scripts/demo.sh

## install-plugin: install into Packer's plugin dir (needs Packer >= 1.10)
install-plugin: plugin
	@command -v packer >/dev/null || { echo "packer is not on PATH; install Packer >= 1.10 first"; exit 1; }
	packer plugins install --path $(PLUGIN) github.com/esbake/elasticsearch

clean:
	rm -rf $(BIN) provisioner/esnodebin/esnode-*

## deps: Debian packages and Go tools the tests and demo need
deps:
	./scripts/install-deps.sh
