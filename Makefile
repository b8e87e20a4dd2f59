# Two commands do all the set-up: `make demo` and `make test`.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: demo test lint typecheck unit bench clean redis-server bench-policies

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

$(STAMP): pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

demo: $(STAMP)
	$(BIN)/waddlebot-lambda demo

lint: $(STAMP)
	$(BIN)/ruff check src tests bench examples
	$(BIN)/ruff format --check src tests bench examples

typecheck: $(STAMP)
	$(BIN)/mypy src tests

unit: $(STAMP) redis-server
	$(BIN)/pytest -q

# The shared-state tests start a real redis-server (Debian's package) on a free port.
redis-server:
	@command -v redis-server >/dev/null || (apt-get update -qq && apt-get install -y -qq redis-server)

test: lint typecheck unit

bench: $(STAMP)
	$(BIN)/python bench/bench_adapter.py

bench-policies: $(STAMP) redis-server
	$(BIN)/python bench/bench_policies.py

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
