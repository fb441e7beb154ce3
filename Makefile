# Two entry points: `make run` (embedded default: ingest a folder, serve the API) and `make test`.
# Everything else is installed from this repository's own files; nothing needs doing by hand.

PYTHON ?= python3.11
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
BUCKET ?= examples/docs
REDIS_URL ?= redis://127.0.0.1:6379/0
# The venv's console scripts (moto_server, celery, rag) must be found by the tests' subprocesses.
export PATH := $(abspath $(BIN)):$(PATH)
export HF_HUB_OFFLINE := 1
export TOKENIZERS_PARALLELISM := false

.PHONY: install redis browser run test lint bench-deps bench-ingest bench-quality bench-latency clean

# torch first, from its CPU wheel: a bare `torch` requirement would pull CUDA builds.
$(STAMP): pyproject.toml
	@command -v $(PYTHON) >/dev/null || { echo "need $(PYTHON)"; exit 1; }
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q torch==2.13.0
	$(BIN)/pip install -q -e '.[test,s3,eval]'
	touch $(STAMP)

install: $(STAMP)

# Use the Redis at REDIS_URL if it answers; otherwise install Debian's redis-server if missing
# and start one on loopback, without persistence.
redis: $(STAMP)
	@$(BIN)/python -c "import redis,sys; redis.Redis.from_url('$(REDIS_URL)').ping()" 2>/dev/null \
	|| { command -v redis-server >/dev/null || { apt-get update -qq && apt-get install -y -qq redis-server >/dev/null; }; \
	     redis-server --daemonize yes --bind 127.0.0.1 --port 6379 --save '' --appendonly no >/dev/null; \
	     sleep 1; $(BIN)/python -c "import redis; redis.Redis.from_url('$(REDIS_URL)').ping()"; }

# Headless Chromium for the screenshot tests (the API's /docs rendered offline, the eval report).
browser:
	@command -v chromium >/dev/null || { apt-get update -qq && apt-get install -y -qq chromium >/dev/null; }

# Sync the folder once (progress bar and counts), then run the platform in one process: the API on
# RAG_API_PORT, a worker pool and beat re-scanning the folder, and a watcher for quick updates.
run: $(STAMP)
	$(BIN)/rag ingest $(BUCKET)
	$(BIN)/rag search "how are unchanged documents handled" --top-k 3
	@echo "API docs: http://127.0.0.1:8000/docs   key: .venv/bin/rag keys create default"
	RAG_BUCKET_URL=$(BUCKET) $(BIN)/rag up

test: redis browser
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
