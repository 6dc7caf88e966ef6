# assetctl: see README.md. `make demo` runs the main job on the example
# site; `make test` runs the whole suite exactly as CI does.

GO        ?= go
GOBIN     ?= $(shell $(GO) env GOPATH)/bin
STATICCHECK_VERSION ?= v0.8.2
VERSITYGW_VERSION   ?= v1.8.0
BIN       := bin/assetctl
export PATH := $(GOBIN):$(PATH)

.PHONY: all build demo test lint unit tools tools-go tools-apt bench bench-cache fuzz clean bench-build fuzz-build bench-dev fuzz-dev bench-shard bench-reshard

all: build

build:
	$(GO) build -o $(BIN) ./cmd/assetctl

## demo: build the example site into dist/ and show the manifest summary.
demo: build
	./$(BIN) build examples/site -o dist
	@echo "built examples/site into dist/ (manifest: dist/manifest.json)"

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
	if [ -n "$$missing" ]; then \
		echo "installing:$$missing"; \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing; \
	fi

bench: build bench-build bench-cache bench-dev bench-shard bench-reshard
	@echo "see BENCHMARKS.md for what each benchmark measures"

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

fuzz: fuzz-build fuzz-dev fuzz-deploy fuzz-shard

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

## fuzz-deploy, fuzz-shard: the deploy record, CloudFront path and --bucket parsers; the
## cache entry decoder, ID parser, router and the documents' JSON merge patch.
fuzz-deploy:
	$(GO) test ./uploader -run '^$$' -fuzz '^FuzzDecodeRecord$$' -fuzztime $(FUZZTIME)
	$(GO) test ./uploader -run '^$$' -fuzz '^FuzzCloudFrontPath$$' -fuzztime $(FUZZTIME)
	$(GO) test ./internal/cli -run '^$$' -fuzz '^FuzzParseBucket$$' -fuzztime $(FUZZTIME)

fuzz-shard:
	for f in FuzzDecodeEntry FuzzParseID FuzzLocate FuzzMergePatch; do \
		$(GO) test ./shardedapi -run '^$$' -fuzz "^$$f$$" -fuzztime $(FUZZTIME) || exit 1; \
	done

clean:
	rm -rf bin dist

## bench-reshard: online bucket moves on a private wal_level=logical cluster: one bucket of
## 200k rows copied by the mover vs a bare COPY pipe, and the cutover pause at ~500 writes/s.
bench-reshard:
	$(GO) test -run '^$$' -bench 'BenchmarkMoveCopy' -benchtime 3x ./shardedapi
	$(GO) test -run '^$$' -bench 'BenchmarkMoveCutoverPause' -benchtime 40x ./shardedapi
	$(GO) test -run '^$$' -bench 'BenchmarkMoveCatchUp' -benchtime 3x ./shardedapi
