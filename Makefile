# The README's two commands: `make run` and `make test`. Everything installs into .venv.
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed
PYTEST_ARGS ?=

.DEFAULT_GOAL := help

# `make bench home_page other_case`: the words after `bench` are case names, not targets.
ifeq (bench,$(firstword $(MAKECMDGOALS)))
  BENCH_CASES := $(wordlist 2,$(words $(MAKECMDGOALS)),$(MAKECMDGOALS))
  $(eval $(BENCH_CASES):;@:)
endif

.PHONY: help install run test lint format bench migrate seed worker clean

help:
	@echo "make run    install, migrate, seed demo data, serve http://127.0.0.1:8000"
	@echo "make test   install and run the whole test suite (SQLite unless DATABASE_URL is set)"
	@echo "make lint   ruff, mypy and the import rules (lint-imports)"
	@echo "make bench [CASE ...]   performance cases -> benchmarks/results.json"

$(STAMP): pyproject.toml requirements.lock
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --disable-pip-version-check -c requirements.lock -e '.[dev]'
	@touch $(STAMP)

install: $(STAMP)

migrate: install
	$(PY) manage.py migrate --noinput

seed: migrate
	$(PY) manage.py seed_demo

run: seed
	$(PY) manage.py runserver 127.0.0.1:8000

test: install
	$(PY) -m pytest $(PYTEST_ARGS)

lint: install
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy .
	$(VENV)/bin/lint-imports

format: install
	$(VENV)/bin/ruff check --fix .
	$(VENV)/bin/ruff format .

bench: install
	$(PY) -m benchmarks $(BENCH_CASES)

worker: install
	$(VENV)/bin/celery -A clinic worker --loglevel=INFO

clean:
	rm -rf $(VENV) staticfiles .pytest_cache .mypy_cache .ruff_cache
