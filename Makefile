# Two commands do all the set-up: `make demo` and `make test`.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
# The demo needs the package alone, not the development tools.
DEMO_STAMP := $(VENV)/.installed-demo

.PHONY: node-ric demo test lint typecheck unit bench clean redis-server bench-policies soak chaos

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

$(STAMP): pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

$(DEMO_STAMP): pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet -e .
	touch $(DEMO_STAMP)

demo: $(DEMO_STAMP)
	$(BIN)/waddlebot-lambda demo

lint: $(STAMP)
	$(BIN)/ruff check src tests bench examples
	$(BIN)/ruff format --check src tests bench examples
	$(BIN)/lint-imports
	$(BIN)/hadolint Dockerfile

typecheck: $(STAMP)
	$(BIN)/mypy src tests

unit: $(STAMP) redis-server
	$(BIN)/pytest -q

# The shared-state tests start a real redis-server (Debian's package) on a free port. As root
# (CI) a missing one is installed; otherwise those tests are skipped and say how to get them.
redis-server:
	@command -v redis-server >/dev/null || \
	if [ "$$(id -u)" = 0 ]; then \
		apt-get update -qq && apt-get install -y -qq redis-server; \
	else \
		echo "redis-server is missing and installing it needs root: the Redis tests will be" \
			"skipped (sudo apt-get install redis-server to run them)"; \
	fi

test: lint typecheck unit

# AWS's own Node.js runtime interface client (npm aws-lambda-ric) for the local runtime's
# verification test (tests/integration/test_local_runtime_node_ric.py): it compiles native code (minutes),
# so make test does not build it; the test runs whenever .node-ric/ holds it.
node-ric:
	@command -v autoreconf >/dev/null && command -v cmake >/dev/null && command -v g++ >/dev/null || \
		(apt-get update -qq && apt-get install -y -qq autoconf automake libtool cmake g++ make)
	mkdir -p .node-ric && cd .node-ric && npm install --no-audit --no-fund aws-lambda-ric

bench: $(STAMP)
	$(BIN)/python bench/bench_adapter.py

bench-policies: $(STAMP) redis-server
	$(BIN)/python bench/bench_policies.py

# Reliability (docs/reliability.md): the full-size chaos, cancellation and shutdown tests, and
# the soak (the full chaos run, then SOAK_MINUTES of mixed load; rewrites docs/reliability.md).
SOAK_MINUTES ?= 30

chaos: $(STAMP)
	RELIABILITY_PROFILE=full $(BIN)/pytest -q tests/reliability/test_reliability_chaos.py tests/reliability/test_reliability_shutdown.py tests/reliability/test_server_hostile_network.py

soak: $(STAMP)
	SOAK_MINUTES=$(SOAK_MINUTES) $(BIN)/python bench/soak.py --write docs/reliability.md

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
