# Two commands do everything on a fresh clone: `make dev` and `make test`.
# `make dev` installs what running needs (requirements-run.txt: the runtime and the local stack);
# `make test` adds the test toolchain (requirements-dev.txt). Each has its own stamp.
PYTHON ?= python3.11
VENV   := .venv
PY     := $(VENV)/bin/python
RUN_STAMP  := $(VENV)/.installed-run
TEST_STAMP := $(VENV)/.installed-test

.PHONY: dev test venv bench soak clean

$(RUN_STAMP): requirements.txt requirements-run.txt pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -r requirements-run.txt
	$(PY) -m pip install -q --no-deps -e .
	touch $@

$(TEST_STAMP): $(RUN_STAMP) requirements-dev.txt
	$(PY) -m pip install -q -r requirements-dev.txt
	touch $@

venv: $(TEST_STAMP)

dev: $(RUN_STAMP)
	$(VENV)/bin/ordertasks dev $(ARGS)

test: $(TEST_STAMP)
	$(PY) -m pytest $(PYTEST_ARGS)

bench: $(TEST_STAMP)
	$(PY) -m benchmarks $(ARGS)

soak: $(TEST_STAMP)
	SOAK=1 $(PY) -m pytest tests/reliability -m slow $(PYTEST_ARGS)

clean:
	rm -rf $(VENV) var .pytest_cache
