# Two commands do everything on a fresh machine: `make run` and `make test`.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: install run test bench bench-all lint clean redis-server

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[test]'
	touch $(STAMP)

install: $(STAMP)

run: install
	$(PY) run.py

lint: install
	$(VENV)/bin/ruff check .

# The Redis store's tests run a real redis-server (Debian's; Redis >= 7).
redis-server:
	@command -v redis-server >/dev/null || { apt-get update && apt-get install -y redis-server; }

test: lint redis-server
	$(PY) -m pytest -q

bench: install
	$(PY) -m bench

bench-all: install
	$(PY) -m bench --all

clean:
	rm -rf $(VENV) results webserver.log* .pytest_cache .ruff_cache .bench-tmp
