# sipio: two commands on a fresh Debian bookworm machine.
#   make demo   install, start the local single-node stack, show it working
#   make test   install, lint, run the whole test suite against real components
VENV      ?= .venv
SIPIO     := $(VENV)/bin/sipio
STATE_DIR ?= ./.sipio
UP_ARGS   ?= --free-ports

.PHONY: deps venv demo up down status test lint bench clean

deps:
	@bash scripts/install-deps.sh

$(VENV)/.stamp: pyproject.toml scripts/make-venv.sh
	@bash scripts/make-venv.sh $(VENV)
	@touch $@

venv: deps $(VENV)/.stamp

demo: venv
	@if $(SIPIO) status --state-dir $(STATE_DIR) >/dev/null 2>&1; then \
		echo "stack already running in $(STATE_DIR)"; \
	else \
		$(SIPIO) down --state-dir $(STATE_DIR) >/dev/null 2>&1 || true; \
		$(SIPIO) up --state-dir $(STATE_DIR) $(UP_ARGS); \
	fi
	@$(SIPIO) demo --state-dir $(STATE_DIR)
	@echo "The stack keeps running: '$(SIPIO) status' to look, '$(SIPIO) down' to stop it."

up: venv
	$(SIPIO) up --state-dir $(STATE_DIR) $(UP_ARGS)

down:
	$(SIPIO) down --state-dir $(STATE_DIR)

status:
	$(SIPIO) status --state-dir $(STATE_DIR)

lint: venv
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy control kemi esl sql

test: venv lint
	$(VENV)/bin/pytest

bench: venv
	$(VENV)/bin/python -m bench.options_rate
	$(VENV)/bin/python -m bench.call_rate
	$(VENV)/bin/python -m bench.ng_rate
	$(VENV)/bin/python -m bench.admission_rate
	$(VENV)/bin/python -m bench.acd_rate
	$(VENV)/bin/python -m bench.cdr_rate
	$(VENV)/bin/python -m bench.esl_sessions
	$(VENV)/bin/python -m bench.callbacks

clean:
	-$(SIPIO) down --state-dir $(STATE_DIR)
	rm -rf $(VENV) $(STATE_DIR) .pytest_cache .mypy_cache .ruff_cache
