# Two commands do everything on a fresh machine: `make run` and `make test`.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: install run test bench bench-all lint types clean browser

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

# The web page's tests drive Debian's Chromium through its chromedriver (same version, same
# package source); a browser download is impossible here, so they come from apt when missing.
browser:
	@command -v chromium >/dev/null && command -v chromedriver >/dev/null || \
		{ apt-get update && apt-get install -y chromium chromium-driver; }

# mypy --strict over the package, then over the README's examples as a user's program would see
# the installed package: from outside the repository, with no path but the environment's.
types: install
	$(VENV)/bin/mypy lestats
	$(PY) tests/readme_examples.py .readme-examples
	cd .readme-examples && ../$(VENV)/bin/mypy --strict --no-incremental .

test: lint types browser
	$(PY) -m pytest -q

bench: install
	$(PY) -m bench

bench-all: install
	$(PY) -m bench --all

clean:
	rm -rf $(VENV) results webserver.log* .pytest_cache .ruff_cache .mypy_cache .bench-tmp .readme-examples
