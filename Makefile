# Two commands do everything on a fresh machine: `make run` and `make test`.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: install run test bench bench-all lint types clean system-packages

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	# compat: a plain path in a .pth file, which type checkers follow (an import hook they cannot)
	$(PY) -m pip install --quiet --config-settings editable_mode=compat -e '.[test]'
	touch $(STAMP)

install: $(STAMP)

run: install
	$(PY) run.py

lint: install
	$(VENV)/bin/ruff check .

# mypy --strict over the package, then over the README's examples as a user's program would see
# the installed package: from outside the repository, with no path but the environment's.
types: install
	$(VENV)/bin/mypy lestats
	$(PY) tests/readme_examples.py .readme-examples
	cd .readme-examples && ../$(VENV)/bin/mypy --strict --no-incremental .

# What the tests run that is not Python, from Debian's packages when missing (one apt-get update
# for all): a real redis-server for the Redis store (Redis >= 7); Chromium and its chromedriver
# (same version, same source package) for the web page's browser tests, since a browser download
# is impossible here. Each pair is command:package.
SYSTEM_PACKAGES := redis-server:redis-server chromium:chromium chromedriver:chromium-driver
system-packages:
	@missing=""; for pair in $(SYSTEM_PACKAGES); do \
		command -v "$${pair%%:*}" >/dev/null || missing="$$missing $${pair#*:}"; done; \
	if [ -n "$$missing" ]; then apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y $$missing; fi

test: lint types system-packages
	$(PY) -m pytest -q

bench: install
	$(PY) -m bench

bench-all: install
	$(PY) -m bench --all

clean:
	rm -rf $(VENV) results webserver.log* .pytest_cache .ruff_cache .mypy_cache .bench-tmp .readme-examples
