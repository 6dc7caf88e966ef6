# assetctl: see README.md. `make demo` runs the main job on the example
# site; `make test` runs the whole suite exactly as CI does.

GO        ?= go
GOBIN     ?= $(shell $(GO) env GOPATH)/bin
STATICCHECK_VERSION ?= v0.8.2
VERSITYGW_VERSION   ?= v1.8.0
BIN       := bin/assetctl
export PATH := $(GOBIN):$(PATH)

.PHONY: release all build demo demo-build demo-clean test lint unit tools tools-go tools-apt bench bench-cache fuzz clean bench-build fuzz-build bench-dev fuzz-dev bench-shard fuzz-origin-api
.PHONY: bench-reshard

all: build

build:
	$(GO) build -o $(BIN) ./cmd/assetctl

## demo: the whole pipeline with real components: build → deploy to a local versitygw →
## Varnish (xkey) as the CDN for assets and pages → assetctl serve on 4 PostgreSQL shards
## and Redis, seeded; prints the URLs, Ctrl-C stops everything (scripts/demo.sh).
## DEMO_ONCE=1 checks every URL and exits.
demo: build
	./scripts/demo.sh

## demo-build: the earlier demo: build the example site into dist/ and show the manifest summary.
demo-build: build
	./$(BIN) build examples/site -o dist
	@echo "built examples/site into dist/ (manifest: dist/manifest.json)"

demo-clean:
	rm -rf .demo dist

## test: gofmt check, go vet, staticcheck, then the race-enabled test suite.
test: lint unit

lint: tools-go
	@fmt_out="$$(gofmt -l $$(git ls-files '*.go' 2>/dev/null || find . -name '*.go'))"; \
	if [ -n "$$fmt_out" ]; then echo "gofmt needed on:"; echo "$$fmt_out"; exit 1; fi
	$(GO) vet ./...
	staticcheck ./...

unit:
	$(GO) test -race -count=1 -timeout 45m ./...

## tools: everything the tests need that a fresh machine lacks.
tools: tools-apt tools-go

tools-go:
	@command -v staticcheck >/dev/null || $(GO) install honnef.co/go/tools/cmd/staticcheck@$(STATICCHECK_VERSION)
	@command -v versitygw >/dev/null || $(GO) install github.com/versity/versitygw/cmd/versitygw@$(VERSITYGW_VERSION)
	@command -v act >/dev/null || $(GO) install github.com/nektos/act@v0.2.89

## tools-py: boto3 and awscli, the independent S3 clients deploy's tests and benchmarks check with.
tools: tools-py
tools-py:
	@python3 -c 'import boto3' 2>/dev/null || python3 -m pip install -q boto3
	@command -v aws >/dev/null || python3 -m pip install -q awscli

tools-apt:
	@missing=""; \
	command -v varnishd >/dev/null || [ -x /usr/sbin/varnishd ] || missing="$$missing varnish"; \
	command -v chromium >/dev/null || missing="$$missing chromium"; \
	command -v redis-server >/dev/null || missing="$$missing redis-server"; \
	dpkg -s varnish-modules >/dev/null 2>&1 || missing="$$missing varnish-modules"; \
	command -v wrk >/dev/null || missing="$$missing wrk"; \
	command -v shellcheck >/dev/null || missing="$$missing shellcheck"; \
	if [ -n "$$missing" ]; then \
		echo "installing:$$missing"; \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing; \
	fi

bench: build bench-build bench-cache bench-dev bench-shard bench-serve
bench: bench-reshard
	@echo "see BENCHMARKS.md for what each benchmark measures"

## bench-serve: wrk on loopback: the example's product page from assetctl serve vs a bare
## net/http handler writing the same response, 9 alternating 3 s rounds (medians), and the
## origin's peak RSS under that load (needs PostgreSQL, Redis and wrk).
.PHONY: bench-serve
bench-serve:
	$(GO) test -run '^$$' -bench 'BenchmarkServePage' -benchtime 1x -timeout 20m ./internal/cli

## bench-dev: assetctl dev in headless Chromium on examples/site: median time from a file
## write to the browser showing it (CSS swap, script reload) vs baselines from the same run,
## then the server's idle CPU (inotify and --poll) vs the same process without it.
bench-dev:
	$(GO) test -run '^$$' -bench 'LiveReload' -benchtime 50x ./devserver
	$(GO) test -run '^$$' -bench 'IdleCPU' -benchtime 3x ./devserver

## bench-build: assetctl build vs sha256sum on a generated 10,000-file 1 GiB site
## (wall time and peak RSS) and vs bare esbuild on a JS-heavy site; data in .bench/.
bench-build: build
	$(GO) run ./internal/benchbuild -assetctl $(BIN)

## bench-deploy: assetctl deploy vs `aws s3 sync` to one versitygw (2,000 files, ~140 MB):
## cold, no-change and one-page-one-image; then memory while streaming 64 and 256 MiB files.
.PHONY: bench-deploy tools-py
bench: bench-deploy
bench-deploy:
	$(GO) test -run '^$$' -bench 'BenchmarkDeploy$$' -benchtime 3x -timeout 30m ./uploader
	$(GO) test -run '^$$' -bench 'BenchmarkDeployLargeFile' -benchtime 1x ./uploader

## bench-cache: shardedapi cache hit vs a bare Redis GET, and the in-process tier (needs Redis on 127.0.0.1:6379).
bench-cache:
	$(GO) test -run '^$$' -bench 'BenchmarkCache' -benchtime 3s -count 3 ./shardedapi

## bench-shard: shardedapi key distribution (max/mean per shard) and Locate vs the bare hash.
bench-shard:
	$(GO) test -run '^$$' -bench 'KeyDistribution|Locate' -count 3 ./shardedapi

fuzz: fuzz-build fuzz-dev fuzz-deploy fuzz-shard fuzz-vite fuzz-origin-api fuzz-serve

FUZZTIME ?= 30s
## fuzz-build: run the HTML, CSS and web manifest rewriter fuzzers for FUZZTIME each.
fuzz-build:
	for f in FuzzRewriteHTML FuzzRewriteCSS FuzzWebManifest; do \
		$(GO) test ./bundler -run '^$$' -fuzz "^$$f$$" -fuzztime $(FUZZTIME) || exit 1; \
	done

## fuzz-dev: the dev server's live-reload script injection and request path handling.
fuzz-dev:
	for f in FuzzInjectClient FuzzServePath; do \
		$(GO) test ./devserver -run '^$$' -fuzz "^$$f$$" -fuzztime $(FUZZTIME) || exit 1; \
	done

## fuzz-serve: the serve: config section (strict decoding and route validation).
.PHONY: fuzz-serve
fuzz-serve:
	$(GO) test ./internal/config -run '^$$' -fuzz '^FuzzParseServe$$' -fuzztime $(FUZZTIME)

## fuzz-deploy, fuzz-shard: the deploy record, CloudFront path and --bucket parsers; the
## cache entry decoder, ID parser, router and the documents' JSON merge patch.
fuzz-deploy:
	$(GO) test ./uploader -run '^$$' -fuzz '^FuzzDecodeRecord$$' -fuzztime $(FUZZTIME)
	$(GO) test ./uploader -run '^$$' -fuzz '^FuzzCloudFrontPath$$' -fuzztime $(FUZZTIME)
	$(GO) test ./internal/cli -run '^$$' -fuzz '^FuzzParseBucket$$' -fuzztime $(FUZZTIME)
	$(GO) test ./internal/ghactions -run '^$$' -fuzz '^FuzzOutputsRoundTrip$$' -fuzztime $(FUZZTIME)

fuzz-shard:
	for f in FuzzDecodeEntry FuzzParseID FuzzLocate FuzzMergePatch; do \
		$(GO) test ./shardedapi -run '^$$' -fuzz "^$$f$$" -fuzztime $(FUZZTIME) || exit 1; \
	done

## fuzz-vite: the tsconfig (JSONC) reader and the new URL(..., import.meta.url) rewrite.
.PHONY: fuzz-vite test-starters bench-vite tools-node
fuzz-vite:
	for f in FuzzStripJSONC FuzzRewriteNewURL; do \
		$(GO) test ./bundler -run '^$$' -fuzz "^$$f$$" -fuzztime $(FUZZTIME) || exit 1; \
	done

## test-starters: all eight Vite starters (npm create vite, npm install) built with no config and
## checked in headless Chromium; `make test` runs four of them (see bundler/starters_test.go).
test-starters:
	$(GO) test -race -count=1 -run 'TestViteStarters' ./bundler -starters=all

## bench-vite: assetctl build vs vite build 8.3.8 on the react-ts starter (wall time, peak RSS,
## 5 pairs) and build --prebuilt vs sha256sum on a 10,000-file directory; data in .bench/.
bench: bench-vite
bench-vite: build
	$(GO) run ./internal/benchvite -assetctl $(BIN)

## tools-node: node and npm (the Vite starter and prebuilt fixtures) and hugo (a prebuilt fixture).
tools: tools-node
tools-node:
	@command -v npm >/dev/null || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq nodejs npm; }
	@command -v hugo >/dev/null || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq hugo; }

## fuzz-origin-api: the origin's JSON API request handling (real PostgreSQL and Redis) and cache tags.
fuzz-origin-api:
	for f in FuzzAPIRequest FuzzDocumentTag; do \
		$(GO) test ./origin -run '^$$' -fuzz "^$$f$$" -fuzztime $(FUZZTIME) || exit 1; \
	done

clean:
	rm -rf bin dist

## release: the archives the GitHub Action installs (release/, gitignored):
## assetctl_<os>_<arch>.tar.gz|zip for linux/darwin/windows x amd64/arm64 and
## checksums.txt, reproducible (scripts/release.sh). VERSION=v1.2.3 for a tag;
## default: the tag at HEAD, else a snapshot version.
release:
	VERSION=$(VERSION) OUT=release scripts/release.sh

## fuzz-origin: the origin's Link header writer and template asset-name resolution.
.PHONY: fuzz-origin
fuzz: fuzz-origin
fuzz-origin:
	for f in FuzzLinkHeader FuzzTemplateNames; do \
		$(GO) test ./origin -run '^$$' -fuzz "^$$f$$" -fuzztime $(FUZZTIME) || exit 1; \
	done

## bench-origin: a page render through origin.Templates (layout, partial, 17 asset tags, nonce)
## vs a plain html/template writing the same bytes from constant text, in the same loop.
.PHONY: bench-origin
bench: bench-origin
bench-origin:
	$(GO) test -run '^$$' -bench 'BenchmarkRender|BenchmarkEntryTags' -benchtime 3s -count 3 ./origin
## bench-reshard: online bucket moves on a private wal_level=logical cluster: one bucket of
## 200k rows copied by the mover vs a bare COPY pipe, and the cutover pause at ~500 writes/s.
bench-reshard:
	$(GO) test -run '^$$' -bench 'BenchmarkMoveCopy' -benchtime 3x ./shardedapi
	$(GO) test -run '^$$' -bench 'BenchmarkMoveCutoverPause' -benchtime 40x ./shardedapi
	$(GO) test -run '^$$' -bench 'BenchmarkMoveCatchUp' -benchtime 3x ./shardedapi
