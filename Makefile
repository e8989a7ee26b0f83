# cardtrace: `make demo` sets up and runs the demo; `make test` sets up and runs the tests.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV   ?= .venv
BIN     = $(VENV)/bin
PYTEST_ARGS ?=
DEMO_SCALE ?= 1.0

.PHONY: setup translations translations-extract demo test lint bench clean

setup: $(VENV)/.installed translations

$(VENV)/.installed: pyproject.toml
	@$(PYTHON) -c 'import sys; sys.exit(sys.version_info < (3, 11))' || \
		{ echo "cardtrace needs Python 3.11 or newer (found $(PYTHON))"; exit 1; }
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]'
	@touch $@

# The pages' catalogs (webapp/translations/<lang>/LC_MESSAGES/messages.po) compiled to .mo.
translations: $(VENV)/.installed
	$(BIN)/pybabel -q compile -d webapp/translations

# After changing a page or a message: collect the strings and merge them into each .po.
translations-extract: $(VENV)/.installed
	$(BIN)/pybabel -q extract -F webapp/translations/babel.cfg -k _l -k lazy_gettext \
		--no-location --sort-output --omit-header -o webapp/translations/messages.pot .
	$(BIN)/pybabel -q update -d webapp/translations -i webapp/translations/messages.pot \
		--no-fuzzy-matching --ignore-obsolete --width 100
	@rm -f webapp/translations/messages.pot

demo: setup
	$(BIN)/cardtrace init
	$(BIN)/cardtrace demo --scale $(DEMO_SCALE)

test: setup
	$(BIN)/pytest $(PYTEST_ARGS)

lint: setup
	$(BIN)/ruff check provenance merchant_onboarding webapp tests bench
	$(BIN)/ruff format --check provenance merchant_onboarding webapp tests bench
	$(BIN)/mypy provenance merchant_onboarding webapp

clean:
	rm -rf $(VENV) instance .pytest_cache .mypy_cache .ruff_cache .hypothesis
