# Two commands do everything on a fresh clone: `make dev` and `make test`.
PYTHON ?= python3.11
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed

.PHONY: dev test venv bench soak clean

$(STAMP): requirements.txt requirements-dev.txt pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -r requirements-dev.txt
	$(PY) -m pip install -q --no-deps -e .
	touch $(STAMP)

venv: $(STAMP)

dev: $(STAMP)
	$(VENV)/bin/ordertasks dev $(ARGS)

test: $(STAMP)
	$(PY) -m pytest $(PYTEST_ARGS)

bench: $(STAMP)
	$(PY) -m benchmarks $(ARGS)

soak: $(STAMP)
	SOAK=1 $(PY) -m pytest tests/reliability -m slow $(PYTEST_ARGS)

clean:
	rm -rf $(VENV) var .pytest_cache
