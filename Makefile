# Two entry points: `make run` (embedded default: ingest a folder, serve the API) and `make test`.
# Everything else is installed from this repository's own files; nothing needs doing by hand.

PYTHON ?= python3.11
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
# The folder `make run` serves: BUCKET=..., else RAG_BUCKET_URL (the platform's own name for it).
ifndef BUCKET
BUCKET := $(or $(RAG_BUCKET_URL),examples/docs)
endif
# The venv's console scripts (moto_server, celery, rag) must be found by the tests' subprocesses.
export PATH := $(abspath $(BIN)):$(PATH)
export HF_HUB_OFFLINE := 1
export TOKENIZERS_PARALLELISM := false

.PHONY: install redis-server postgres-server browser run test lint bench-deps bench-ingest bench-quality bench-latency clean

# torch first, from its CPU wheel: a bare `torch` requirement would pull CUDA builds.
$(STAMP): pyproject.toml
	@command -v $(PYTHON) >/dev/null || { echo "need $(PYTHON)"; exit 1; }
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q torch==2.13.0
	$(BIN)/pip install -q -e '.[test,s3,eval,postgres]'
	touch $(STAMP)

install: $(STAMP)

# The tests start a private redis-server of their own (tests/support/services.py) and never touch
# a Redis they did not start: install Debian's binary if it is missing.
redis-server:
	@command -v redis-server >/dev/null || { apt-get update -qq && apt-get install -y -qq redis-server >/dev/null; }

# The tests start a private PostgreSQL cluster of their own (tests/support/services.py: initdb into
# a temporary folder) and never touch a server they did not start: Debian's server binaries.
postgres-server:
	@command -v pg_config >/dev/null || { apt-get update -qq && apt-get install -y -qq postgresql >/dev/null; }

# Headless Chromium for the screenshot tests (the API's /docs rendered offline, the eval report).
browser:
	@command -v chromium >/dev/null || { apt-get update -qq && apt-get install -y -qq chromium >/dev/null; }

# Sync the folder once (progress bar and counts), then run the platform in one process: the API on
# RAG_API_HOST:RAG_API_PORT (rag up prints its address), a worker pool and beat re-scanning the
# folder, and a watcher for quick updates. Ctrl-C or SIGTERM stops it, with status 0.
run: export RAG_BUCKET_URL := $(BUCKET)
run: $(STAMP)
	$(BIN)/rag ingest
	$(BIN)/rag search "how are unchanged documents handled" --top-k 3
	@echo "a key for the API: $(BIN)/rag keys create default"
	$(BIN)/rag up

test: $(STAMP) redis-server postgres-server browser
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/pytest -q

lint: $(STAMP)
	$(BIN)/ruff check . && $(BIN)/ruff format --check .

bench-deps: $(STAMP)
	$(BIN)/pip install -q -e '.[bench]'

bench-ingest: $(STAMP)
	$(BIN)/python bench/ingest.py

bench-quality: bench-deps
	$(BIN)/python bench/quality.py

bench-latency: bench-deps
	$(BIN)/python bench/latency.py

clean:
	rm -rf .rag bench/.work
