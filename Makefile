# Every target installs what it needs first: a fresh clone needs only python3 and make.
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp
CHROMIUM ?= $(or $(CHROMIUM_PATH),/usr/bin/chromium)

.PHONY: install browser demo demo-fresh test lint fmt bench chaos fuzz-schema clean

$(STAMP): pyproject.toml
	$(PY) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -e '.[dev]'
	touch $(STAMP)

install: $(STAMP)

# The browser tests drive Debian's Chromium (browsers cannot be downloaded by Playwright here).
browser:
	@if [ ! -x $(CHROMIUM) ]; then \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	    echo "installing Debian chromium for the browser tests"; \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null; \
	  else \
	    echo "The browser tests need Chromium at $(CHROMIUM): sudo apt-get install chromium"; exit 1; \
	  fi; \
	fi

demo: install
	$(BIN)/python -m flame.devtools demo

demo-fresh: install
	$(BIN)/python -m flame.devtools demo --fresh

test: install browser
	$(BIN)/python -m pytest

lint: install
	$(BIN)/ruff format --check flame tests
	$(BIN)/ruff check flame tests
	$(BIN)/mypy flame tests

fmt: install
	$(BIN)/ruff format flame tests
	$(BIN)/ruff check --fix flame tests

bench: install
	$(BIN)/python -m flame.devtools bench --json bench-results.json

chaos: install
	$(BIN)/python -m flame.devtools chaos

# 20,000 signed requests drawn from the served OpenAPI documents; no answer may be a 500.
fuzz-schema: install
	$(BIN)/python -m flame.devtools fuzz-schema --requests 20000

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache .hypothesis *.egg-info
