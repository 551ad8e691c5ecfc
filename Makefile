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
# Real Packer, built by `make deps` (scripts/install-packer.sh, pinned).
PACKER ?= $(ESBAKE_CACHE)/bin/packer

.PHONY: release release-host packer packer-test
.PHONY: deps all build esnode plugin esaudit generate check-generate opa-check fuzz test unit e2e bench demo plugin-check install-plugin vet fmt clean

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

## generate: packer-sdc HCL2 specs and field docs, the registry's .web-docs
## (docs/ holds the sources, as in packer-plugin-scaffolding), docs/policies.md
generate:
	$(GO) generate ./...
	@# renderdocs does not truncate what it rewrites: render into an empty
	@# folder, then compile the component pages into .web-docs/.
	rm -rf .docs
	$(GO) tool packer-sdc renderdocs -src docs -partials docs-partials -dst .docs
	./scripts/webdocs.sh .docs .web-docs
	rm -rf .docs
	$(GO) run ./internal/gendocs docs/policies.md
	$(GO) tool packer-sdc fix .

GENERATED := '*.hcl2spec.go' docs-partials docs .web-docs go.mod

## check-generate: fail when generated files are stale
check-generate: generate
	@if [ -n "$$(git status --porcelain -- $(GENERATED))" ]; then \
	  echo "generated files are stale; run 'make generate' and commit:"; git status --porcelain -- $(GENERATED); git diff --stat -- $(GENERATED); exit 1; fi

vet:
	@test -z "$$(gofmt -l $$(git ls-files '*.go'))" || { echo "gofmt needed:"; gofmt -l $$(git ls-files '*.go'); exit 1; }
	$(GO) vet ./...

## fuzz: each fuzz target for FUZZTIME (their corpora, testdata/fuzz, also run in every go test)
FUZZTIME ?= 5s
fuzz:
	@set -e; for t in 'FuzzHQTarball ./node/install/' 'FuzzRenderElasticsearchYML ./node/boot/' 'FuzzCORSGuard ./spec/'; do \
	  set -- $$t; $(GO) test -run '^$$' -fuzz "^$$1\$$" -fuzztime $(FUZZTIME) $$2; done

## test: everything CI checks
## (the real-Packer tests in internal/packertest install the release from dist/)
test: deps check-generate vet plugin plugin-check opa-check fuzz release-host
	ESBAKE_PLUGIN_BIN=$(CURDIR)/$(PLUGIN) PACKER=$(PACKER) ESBAKE_RELEASE_DIR=$(CURDIR)/dist $(GO) test -race -count=1 -timeout 40m ./...

## opa-check: the real opa binary on the policies (installed by deps)
opa-check:
	$(ESBAKE_CACHE)/bin/opa check --strict policies/
	$(ESBAKE_CACHE)/bin/opa test policies/

# plugin-check wants the bare binary name (packer-plugin-*), so run it from bin/.
plugin-check: plugin
	cd $(BIN) && $(GO) tool packer-sdc plugin-check packer-plugin-elasticsearch

## packer-test: only the real-Packer tests (install, init, validate, a full build, SIGINT)
packer-test: release-host
	PACKER=$(PACKER) ESBAKE_RELEASE_DIR=$(CURDIR)/dist $(GO) test -count=1 -timeout 40m -v ./internal/packertest/

e2e: plugin
	ESBAKE_PLUGIN_BIN=$(CURDIR)/$(PLUGIN) $(GO) test -race -timeout 30m -run 'E2E' ./...

## bench: the benchmarks; writes docs/benchmarks.md
bench: deps build
	./scripts/bench.sh

## demo: the offline main job (see README)
demo: plugin
	./scripts/demo.sh

## release: the release zips and _SHA256SUMS in dist/ as Packer expects them
## (goreleaser --snapshot: local, nothing published), version $(VERSION) without -dev,
## for every platform in .goreleaser.yml (8 cross builds: ~15 min on 2 cold cores)
## or only RELEASE_TARGETS (goreleaser targets such as linux_amd64_v1)
GORELEASER := $(GO) tool -modfile=internal/tools/goreleaser.mod goreleaser
RELEASE_TARGETS ?=
release: plugin
	@api=$$($(PLUGIN) describe | sed -n 's/.*"api_version":"\([^"]*\)".*/\1/p'); \
	  test -n "$$api" || { echo "release: cannot read api_version from $(PLUGIN) describe" >&2; exit 1; }; \
	  config=.goreleaser.yml; \
	  if [ -n "$(RELEASE_TARGETS)" ]; then \
	    config=$(BIN)/goreleaser-targets.yml; \
	    ./scripts/release-targets.sh $(RELEASE_TARGETS) <.goreleaser.yml >$$config || exit 1; \
	  fi; \
	  echo "goreleaser release --snapshot --clean (v$(VERSION), API $$api, $${RELEASE_TARGETS:-all targets})"; \
	  API_VERSION=$$api RELEASE_VERSION=$(VERSION) $(GORELEASER) release --snapshot --clean --config $$config
	@ls dist/*.zip dist/*_SHA256SUMS

## release-host: the release for this machine's platform only (what make test installs into real Packer)
release-host:
	$(MAKE) release RELEASE_TARGETS=$$($(GO) env GOOS)_$$($(GO) env GOARCH)

## install-plugin: install into Packer's plugin dir (needs Packer >= 1.10)
install-plugin: plugin
	@test -x "$(PACKER)" || command -v "$(PACKER)" >/dev/null || { echo "no Packer at $(PACKER): run make packer, or set PACKER=<a Packer >= 1.10>"; exit 1; }
	$(PACKER) plugins install --path $(PLUGIN) github.com/esbake/elasticsearch

clean:
	rm -rf $(BIN) provisioner/esnodebin/esnode-*

## deps: Debian packages and Go tools the tests and demo need, and real Packer
deps:
	./scripts/install-deps.sh

## packer: only real Packer (pinned in scripts/install-packer.sh), into $(PACKER)
packer:
	./scripts/install-packer.sh
