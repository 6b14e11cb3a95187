# Two commands for a newcomer: `make run` (demo on the embedded default) and `make test`.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-stamp
HOST   ?= 127.0.0.1
PORT   ?= 5000

.PHONY: run test install migrate demo bench clean field field-check

# uv (from PyPI, bootstrapped by pip into the venv) installs the dependencies in parallel: about
# 30 s with an empty cache instead of pip's 3 minutes. It prints what it resolves and installs.
# `make run` needs the runtime dependencies only; `make install` and `make test` add the test tools.
RUN_STAMP := $(VENV)/.run-installed-stamp
$(RUN_STAMP): pyproject.toml
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else "Python 3.11 or newer is needed")'
	@echo "== 1/3 virtual environment $(VENV) =="
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	@echo "== 2/3 the installer (uv, from PyPI) =="
	test -x $(BIN)/uv || $(BIN)/python -m pip install --disable-pip-version-check --progress-bar on 'uv>=0.5,<1'
	@echo "== 3/3 the project and its dependencies =="
	$(BIN)/uv pip install --python $(BIN)/python -e .
	touch $@

$(STAMP): $(RUN_STAMP)
	@echo "== the test tools =="
	$(BIN)/uv pip install --python $(BIN)/python -e '.[test]'
	touch $@

install: $(STAMP)

migrate: install
	$(BIN)/enforce db upgrade

demo: $(RUN_STAMP)
	$(BIN)/enforce db upgrade
	$(BIN)/enforce demo load

# `make run` on the embedded default skips the migrate and demo steps (each starts the app: seconds)
# while instance/ says they are done and no migration is newer; `make clean` starts over.
# With ENFORCE_DATABASE_URL or ENFORCE_INSTANCE_PATH set, it runs them every time.
MIGRATED := instance/.migrated-stamp
DEMOED   := instance/.demo-stamp
$(MIGRATED): $(RUN_STAMP) $(wildcard migrations/versions/*.py)
	$(BIN)/enforce db upgrade
	touch $@
$(DEMOED): $(MIGRATED)
	$(BIN)/enforce demo load
	touch $@
ifeq ($(ENFORCE_DATABASE_URL)$(ENFORCE_INSTANCE_PATH),)
RUN_NEEDS := $(DEMOED)
else
RUN_NEEDS := demo
endif

# Serves the web pages, /api/v1 and /mobile/v1 on http://$(HOST):$(PORT) (SQLite, local blobs, in-process tasks).
# Another port: make run PORT=8080. --preload: the app is built once, before the workers fork (a faster start).
# server/gunicorn_conf.py: gthread, 2 workers x 32 threads, so slow uploads cannot exhaust them.
run: $(RUN_NEEDS)
	@echo "serving on http://$(HOST):$(PORT)  (API docs: /api/v1/docs, /mobile/v1/docs; health: /healthz; demo logins: $(BIN)/enforce demo load)"
	$(BIN)/gunicorn -c python:server.gunicorn_conf --preload --bind $(HOST):$(PORT) --access-logfile -

test: install
	$(BIN)/python -m pytest

bench: install
	for script in bench/*_bench.py; do $(BIN)/python $$script; done

# The field app (/field/): sources in field/, built into server/web/static/field/ (committed, so
# `make run` needs no Node). Deterministic: CI rebuilds and fails if the committed build differs.
field:
	cd field && npm ci --no-audit --no-fund && node build.mjs

field-check:
	cd field && npm ci --no-audit --no-fund && node build.mjs --check

clean:
	rm -rf instance .pytest_cache .hypothesis
