# packline — make help lists every target.
GO        ?= go
PKGS      ?= ./...
FUZZTIME  ?= 15s
# bench-fleet runs on these unless DATABASE_URL / REDIS_URL are set; its
# -reset drops and recreates the database (only one whose name says bench)
# and flushes the Redis database (and the one below it, for the references).
BENCH_DATABASE_URL ?= postgres://postgres@127.0.0.1:5432/packline_bench?sslmode=disable
BENCH_REDIS_URL    ?= redis://127.0.0.1:6379/15
BENCH_FLAGS        ?= -reset
# chaos starts its own PostgreSQL (initdb, pg_ctl) and redis-server; e.g.
# CHAOS_FLAGS="-json chaos.json -keep".
CHAOS_FLAGS        ?=

.PHONY: help build test test-short lint fuzz bench bench-fleet chaos dev migrate tidy

help: ## list every target
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk 'BEGIN {FS = ":.*## "}; {printf "  %-12s %s\n", $$1, $$2}'

build: ## build bin/packline
	$(GO) build -o bin/packline ./cmd/packline

lint: ## gofmt, go vet, and Redocly's OpenAPI linter (pinned in scripts/test-tools.sh) over api/openapi.yaml
	@out=$$(gofmt -l $$(git ls-files '*.go' 2>/dev/null || find . -name '*.go')); \
	  if [ -n "$$out" ]; then echo "gofmt would change:"; echo "$$out"; exit 1; fi
	$(GO) vet $(PKGS)
	@redocly=$$(bash scripts/test-tools.sh redocly) && "$$redocly" lint --config redocly.yaml api/openapi.yaml

# The PostgreSQL make test uses when TEST_DATABASE_URL is unset, if it answers.
LOCAL_TEST_DATABASE_URL ?= postgres://postgres@127.0.0.1:5432/test?sslmode=disable

test: lint ## lint, every test (on SQLite and, when one answers, PostgreSQL: TEST_DATABASE_URL or a local one; Redis when TEST_REDIS_URL is set), and a short fuzz run
	@if [ -z "$$TEST_DATABASE_URL" ] && command -v psql >/dev/null && psql "$(LOCAL_TEST_DATABASE_URL)" -tAc 'select 1' >/dev/null 2>&1; then \
	  echo "make test: TEST_DATABASE_URL is unset; the local PostgreSQL answers, so the tests run on it too ($(LOCAL_TEST_DATABASE_URL))"; \
	  export TEST_DATABASE_URL='$(LOCAL_TEST_DATABASE_URL)'; \
	fi; \
	$(GO) test -race -count=1 -timeout 12m $(PKGS)
	$(MAKE) fuzz

test-short: ## every test, without the race detector or fuzzing
	$(GO) test -count=1 $(PKGS)

fuzz: ## fuzz order, event and courier callback decoding, each for FUZZTIME (default 15s)
	@for target in FuzzCreateOrder FuzzSendEvent FuzzCourierCallback; do \
	  $(GO) test -run '^$$' -fuzz "^$$target\$$" -fuzztime $(FUZZTIME) ./api || exit 1; \
	done

bench: ## Go benchmarks
	$(GO) test -run '^$$' -bench . -benchmem $(PKGS)

bench-fleet: ## the fleet benchmark: every role as its own process on PostgreSQL + Redis (docs/performance.md); BENCH_FLAGS="-reset -quick" for a short run
	DATABASE_URL="$${DATABASE_URL:-$(BENCH_DATABASE_URL)}" REDIS_URL="$${REDIS_URL:-$(BENCH_REDIS_URL)}" \
	  $(GO) run ./cmd/packline-bench $(BENCH_FLAGS)

chaos: ## the chaos suite at full size (3,000 orders, faults for 120 s): a private PostgreSQL and Redis, every role as a process (docs/reliability.md)
	$(GO) run ./cmd/packline-chaos $(CHAOS_FLAGS)

dev: ## run every role in one process on embedded defaults (SQLite, in-process Redis)
	$(GO) run ./cmd/packline dev

migrate: ## apply migrations to DATABASE_URL
	$(GO) run ./cmd/packline migrate
