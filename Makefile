# Every target installs what it needs first: a fresh clone needs only python3, make and npm.
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp
CHROMIUM ?= $(or $(CHROMIUM_PATH),/usr/bin/chromium)
# The browser UI's lint and format check (Biome, pinned in package.json and package-lock.json).
NODE_STAMP := node_modules/.installed
BIOME := node_modules/.bin/biome

.PHONY: install browser postgres demo demo-fresh test lint fmt bench chaos fuzz fuzz-schema screenshots clean

$(STAMP): pyproject.toml
	$(PY) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -e '.[dev]'
	touch $(STAMP)

install: $(STAMP)

# Node.js and npm come with the machine; Debian's packages are the fallback.
$(NODE_STAMP): package.json package-lock.json
	@if ! command -v npm >/dev/null; then \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	    echo "installing Debian nodejs and npm for the JS lint"; \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq nodejs npm >/dev/null; \
	  else \
	    echo "The JS lint needs Node.js and npm: sudo apt-get install nodejs npm"; exit 1; \
	  fi; \
	fi
	npm ci --no-audit --no-fund
	touch $(NODE_STAMP)

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

# The directory's PostgreSQL tests start a throwaway server of Debian's postgresql package
# (tests/conftest.py); missing, they skip, except under CI=true, where they fail.
postgres:
	@if ! ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1; then \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	    echo "installing Debian postgresql for the directory's tests"; \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql >/dev/null; \
	  else \
	    echo "The directory's PostgreSQL tests need a server: sudo apt-get install postgresql"; \
	  fi; \
	fi

demo: install
	$(BIN)/python -m flame.devtools demo

demo-fresh: install
	$(BIN)/python -m flame.devtools demo --fresh

test: install browser postgres $(NODE_STAMP)
	$(BIOME) ci web
	$(BIN)/python -m pytest

lint: install $(NODE_STAMP)
	$(BIN)/ruff format --check flame tests
	$(BIN)/ruff check flame tests
	$(BIN)/mypy flame tests
	$(BIOME) ci web

fmt: install $(NODE_STAMP)
	$(BIN)/ruff format flame tests
	$(BIN)/ruff check --fix flame tests
	$(BIOME) check --write web

bench: install
	$(BIN)/python -m flame.devtools bench --json bench-results.json

chaos: install
	$(BIN)/python -m flame.devtools chaos

# 20,000 hostile requests (signed or MAC'd; envelopes of both versions) over every route the peer
# and directory apps register; fails on any 5xx or a route left unfuzzed.
# `make test` runs a short pass of it (tests/e2e/test_fuzz.py).
fuzz: install
	$(BIN)/python -m flame.devtools --log-level warning fuzz --requests 20000

# The page's main views at 1280 and 390 px wide, from real Chromium against a fresh demo
# cluster, into screenshots/ (not committed).
screenshots: install browser
	$(BIN)/python -m flame.devtools screenshots --out screenshots

# 20,000 signed requests drawn from the served OpenAPI documents; no answer may be a 500.
fuzz-schema: install
	$(BIN)/python -m flame.devtools fuzz-schema --requests 20000

clean:
	rm -rf $(VENV) node_modules .pytest_cache .mypy_cache .ruff_cache .hypothesis *.egg-info
