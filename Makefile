# pyml: build, install, run and test. `make demo` and `make test` set everything up themselves.

PG_BIN        ?= /usr/lib/postgresql/15/bin
PG_CONFIG     ?= $(PG_BIN)/pg_config
PLPYTHON_PKG  ?= postgresql-plpython3-15
CRON_PKG      ?= postgresql-15-cron
DEV_PKG       ?= postgresql-server-dev-15
# The server's PL/Python links Debian's Python: the venv must be built with it.
SERVER_PYTHON ?= /usr/bin/python3
VENV          ?= .venv
PYML          := $(VENV)/bin/pyml
PY            := $(VENV)/bin/python
# dbt lives in a virtual environment of its own: its pins must not meet pyml's.
DBT_VENV      ?= .venv-dbt
EXTVERSION    := $(shell sed -n 's/^version = "\(.*\)"/\1/p' pyproject.toml)

# PGXS: `make install` puts the control file and scripts in the server's share dir.
MODULEDIR     = extension
DATA          = extension/pyml.control extension/pyml--$(EXTVERSION).sql \
                $(wildcard extension/pyml--*--*.sql)
# The language of pyml's functions (src/pyml.c): PL/Python, with errors that read like PostgreSQL's.
MODULE_big    = pyml
OBJS          = src/pyml.o src/arrays.o src/deferred.o src/insert.o src/scan.o src/stream.o
# pg_regress golden files: tests/regress/sql/*.sql <-> tests/regress/expected/*.out
REGRESS       = $(sort $(patsubst tests/regress/sql/%.sql,%,$(wildcard tests/regress/sql/*.sql)))
REGRESS_OPTS  = --inputdir=tests/regress --outputdir=tests/regress \
                --load-extension=plpython3u --load-extension=pyml
PGXS := $(shell $(PG_CONFIG) --pgxs)
include $(PGXS)
.PHONY: setup dbt-setup web-setup build check-build demo test test-python installcheck server lint bench

# -- set-up: system packages (as root), the virtual environment, the extension files --------
setup: $(VENV)/.setup-done
$(VENV)/.setup-done: pyproject.toml pyml/core/_trees.c
	@test -f "$$($(PG_CONFIG) --pkglibdir)/plpython3.so" && test -f "$$($(PG_CONFIG) --pkglibdir)/pg_cron.so" \
	  && test -f "$$($(PG_CONFIG) --includedir-server)/postgres.h" && command -v gcc >/dev/null \
	  && $(SERVER_PYTHON) -c 'import ensurepip' 2>/dev/null \
	  || { echo "installing $(PLPYTHON_PKG) $(CRON_PKG) $(DEV_PKG) gcc python3-venv acl (apt)"; \
	       apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq \
	         $(PLPYTHON_PKG) $(CRON_PKG) $(DEV_PKG) gcc python3-venv acl >/dev/null; }
	$(SERVER_PYTHON) -m venv $(VENV)
	$(VENV)/bin/pip install -q --upgrade pip
	$(VENV)/bin/pip install -q -e '.[dev,serve,dask]'
	touch $@

# dbt-core and dbt-postgres for the example dbt project and its test (tests/integrations).
dbt-setup: $(DBT_VENV)/.setup-done
$(DBT_VENV)/.setup-done: examples/dbt/requirements.txt | $(VENV)/.setup-done
	$(SERVER_PYTHON) -m venv $(DBT_VENV)
	$(DBT_VENV)/bin/pip install -q --upgrade pip
	$(DBT_VENV)/bin/pip install -q -r examples/dbt/requirements.txt
	touch $@

# The browser example (examples/web) and its test (tests/integrations/test_web.py): Debian's
# Chromium and its WebDriver (apt, only when missing), onnxruntime-web at the version the lock file
# pins (npm ci), its wasm runtime copied into examples/web/vendor/ where the page loads it from.
WEB_DIR       := examples/web
ORT_FILES     := ort.wasm.min.js ort-wasm-simd-threaded.wasm ort-wasm-simd-threaded.mjs
web-setup: $(WEB_DIR)/vendor/.setup-done
	@test -x /usr/bin/chromium && test -x /usr/bin/chromedriver \
	  || { echo "installing chromium chromium-driver (apt)"; \
	       apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq \
	         chromium chromium-driver >/dev/null; }
$(WEB_DIR)/vendor/.setup-done: $(WEB_DIR)/package.json $(WEB_DIR)/package-lock.json
	cd $(WEB_DIR) && npm ci --ignore-scripts --no-audit --no-fund --loglevel=error
	rm -rf $(WEB_DIR)/vendor && mkdir $(WEB_DIR)/vendor
	cp $(addprefix $(WEB_DIR)/node_modules/onnxruntime-web/dist/,$(ORT_FILES)) $(WEB_DIR)/vendor/
	touch $@

build:
	$(SERVER_PYTHON) sql/build.py

check-build:
	$(SERVER_PYTHON) sql/build.py --check

server: setup install
	$(PYML) up

# -- the two commands of the README -------------------------------------------------------
demo: server
	$(PY) -m pyml.client.demo

# The whole suite: unit, database, extension and pg_regress golden files (run by pytest).
test: server dbt-setup web-setup
	$(PY) -m pytest

# The checks of .pre-commit-config.yaml, on the same paths: ruff's rules, ruff's formatting, mypy
# (strict or default checks per package: see [tool.mypy] in pyproject.toml).
LINT_PATHS    := pyml tests bench tools examples migrations sql/build.py
lint: setup
	$(VENV)/bin/ruff check $(LINT_PATHS)
	$(VENV)/bin/ruff format --check $(LINT_PATHS)
	$(VENV)/bin/mypy $(LINT_PATHS)

# The benchmark suite: measures and writes bench/RESULTS.md and bench/results.json (never asserts
# speed). `make bench BENCH_ARGS=--quick` (or PYML_BENCH_QUICK=1) for a short run on 100k rows.
bench: server
	$(VENV)/bin/pip install -q -e '.[bench]'
	$(PY) -m bench.run $(BENCH_ARGS)
