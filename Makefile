# choledger: `make run` serves the API with demo data, `make test` runs the
# whole suite. Both start a private PostgreSQL cluster in .pgdata/ unless
# LEDGER_DATABASE_URL names a database.

SHELL := /bin/bash
GO    ?= go
BIN   := $(CURDIR)/bin

# Pinned tool versions; `make tools` installs them into ./bin.
BUF_VERSION                := v1.75.0
PROTOC_GEN_GO_VERSION      := v1.36.12
PROTOC_GEN_GO_GRPC_VERSION := v1.6.0
GRPCURL_VERSION            := v1.9.3
STATICCHECK_VERSION        := v0.8.2

.PHONY: all build run test test-race proto-check generate lint tools db-start db-stop clean

all: build

build:
	$(GO) build -o $(BIN)/ledgerd ./cmd/ledgerd
	$(GO) build -o $(BIN)/devdb ./cmd/devdb

# Load the demo data set (once) and serve on localhost:50051
# (LEDGER_GRPC_ADDR to change) until Ctrl-C. The database it prints has its
# passwords masked: a URL's, and a password or sslpassword parameter's, of
# a URL or of a keyword/value string.
run: build
	@url="$${LEDGER_DATABASE_URL:-$$($(BIN)/devdb start)}" && \
	  echo "database: $$(sed -E 's#(://[^:/@]*:)[^@]*@#\1***@#; s#((^|[?&[:space:]])(ssl)?password[[:space:]]*=[[:space:]]*)[^&[:space:]]*#\1***#g' <<<"$$url")" && \
	  export LEDGER_DATABASE_URL="$$url" LEDGER_LOG_FORMAT="$${LEDGER_LOG_FORMAT:-text}" && \
	  $(BIN)/ledgerd seed && \
	  $(BIN)/ledgerd demo-credentials .run/credentials.env && \
	  echo "demo credentials: .run/credentials.env (source it, then see README: Call it)" && \
	  LEDGER_PLAINTEXT=true exec $(BIN)/ledgerd serve

# The full suite against a real PostgreSQL (started by the test harness).
test:
	$(GO) test -count=1 ./...

test-race:
	$(GO) test -count=1 -race ./...

db-start: build
	@$(BIN)/devdb start

db-stop:
	@$(GO) run ./cmd/devdb stop

# Generated code is committed; proto-check fails when it is stale or when the
# protos do not pass buf lint (STANDARD rules).
generate: $(BIN)/buf $(BIN)/protoc-gen-go $(BIN)/protoc-gen-go-grpc
	$(BIN)/buf generate

proto-check: generate
	$(BIN)/buf lint
	@git diff --exit-code -- gen/ || { echo "generated code in gen/ is stale: run 'make generate' and commit it"; exit 1; }
	@test -z "$$(git status --porcelain -- gen/)" || { echo "untracked generated files in gen/: run 'make generate' and commit them"; exit 1; }

# gofmt, go vet, and staticcheck (bugs, simplifications, and code nothing
# uses: dead code is deleted, not kept).
lint: $(BIN)/staticcheck
	@test -z "$$(gofmt -l $$(git ls-files '*.go'))" || { gofmt -l $$(git ls-files '*.go'); echo "gofmt needed"; exit 1; }
	$(GO) vet ./...
	$(BIN)/staticcheck ./...

tools: $(BIN)/buf $(BIN)/protoc-gen-go $(BIN)/protoc-gen-go-grpc $(BIN)/grpcurl $(BIN)/staticcheck

$(BIN)/buf:
	GOBIN=$(BIN) $(GO) install github.com/bufbuild/buf/cmd/buf@$(BUF_VERSION)
$(BIN)/protoc-gen-go:
	GOBIN=$(BIN) $(GO) install google.golang.org/protobuf/cmd/protoc-gen-go@$(PROTOC_GEN_GO_VERSION)
$(BIN)/protoc-gen-go-grpc:
	GOBIN=$(BIN) $(GO) install google.golang.org/grpc/cmd/protoc-gen-go-grpc@$(PROTOC_GEN_GO_GRPC_VERSION)
$(BIN)/grpcurl:
	GOBIN=$(BIN) $(GO) install github.com/fullstorydev/grpcurl/cmd/grpcurl@$(GRPCURL_VERSION)
$(BIN)/staticcheck:
	GOBIN=$(BIN) $(GO) install honnef.co/go/tools/cmd/staticcheck@$(STATICCHECK_VERSION)

clean: db-stop
	rm -rf $(BIN) .pgdata

# The benchmark (not part of `make test`): a private ledgerd on
# localhost:50061 over its own database (choledger_bench) in the private
# cluster, loaded with every scenario for 20s each; writes the results into
# docs/performance.md. See docs/performance.md and cmd/ledgerbench/bench.sh
# for the knobs (BENCH_DURATION, BENCH_SCENARIOS, ...).
.PHONY: bench
bench: build
	$(GO) build -o $(BIN)/ledgerbench ./cmd/ledgerbench
	BIN=$(BIN) bash cmd/ledgerbench/bench.sh

# The settlement benchmark (not part of `make test`): GetMerchantSettlement
# and GetMarketSettlement over 31 days, 1, 8 and 32 clients, on a ledger of
# at least 5,000,000 postings that `ledgerbench fill-history` writes into
# its own database (choledger_bench_history) over 45 past market days. The
# first run fills it (about a quarter of an hour on two CPUs); later runs
# reuse it (BENCH_REFILL=1 fills a new one). Writes its results into
# docs/performance.md; see there and cmd/ledgerbench/bench.sh for the knobs.
.PHONY: bench-settlement
bench-settlement: build
	$(GO) build -o $(BIN)/ledgerbench ./cmd/ledgerbench
	BIN=$(BIN) bash cmd/ledgerbench/bench.sh settlement
