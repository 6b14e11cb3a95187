# Two commands for a newcomer: `make run` (demo on the embedded default) and `make test`.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-stamp
HOST   ?= 127.0.0.1
PORT   ?= 5000

.PHONY: run test install migrate demo bench clean

$(STAMP): pyproject.toml
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else "Python 3.11 or newer is needed")'
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[test]'
	touch $(STAMP)

install: $(STAMP)

migrate: install
	$(BIN)/enforce db upgrade

demo: migrate
	$(BIN)/enforce demo load

# Serves the web pages, /api/v1 and /mobile/v1 on http://$(HOST):$(PORT) (SQLite, local blobs, in-process tasks).
run: demo
	@echo "serving on http://$(HOST):$(PORT)  (API docs: /api/v1/docs, /mobile/v1/docs; health: /healthz)"
	$(BIN)/gunicorn -c python:server.gunicorn_conf --bind $(HOST):$(PORT) --access-logfile -

test: install
	$(BIN)/python -m pytest

bench: install
	for script in bench/*_bench.py; do $(BIN)/python $$script; done

clean:
	rm -rf instance .pytest_cache .hypothesis
