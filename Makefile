# Two commands for a fresh machine with Python 3.11:  make demo  /  make test
PYTHON ?= python3.11
VENV ?= .venv
BIN := $(VENV)/bin

.PHONY: install install-test demo test test-fast wheel wheel-check clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

# every extra: the demo and the full test suite need the whole-slide (wsi) and volume (volumes) ones too
install: $(BIN)/python
	$(BIN)/pip install --quiet -e ".[wsi,volumes]"

install-test: $(BIN)/python
	$(BIN)/pip install --quiet -e ".[wsi,volumes,test]"

demo: install
	$(BIN)/medmtl demo --out runs/demo

test: install-test
	$(BIN)/python -m pytest -q

test-fast: install-test
	$(BIN)/python -m pytest -q -m "not slow"

# a wheel and an sdist in dist/ (presets inside the wheel)
wheel: $(BIN)/python
	$(BIN)/pip install --quiet build==1.6.1
	rm -rf dist
	$(BIN)/python -m build --outdir dist . > /dev/null

# the wheel installed into a fresh virtual environment, as a user installs it, then used from there
wheel-check: wheel
	rm -rf .venv-wheel
	$(PYTHON) -m venv .venv-wheel
	.venv-wheel/bin/pip install --quiet dist/medmtl-*.whl
	cd /tmp && $(CURDIR)/.venv-wheel/bin/medmtl --version
	cd /tmp && $(CURDIR)/.venv-wheel/bin/medmtl presets
	cd /tmp && $(CURDIR)/.venv-wheel/bin/medmtl demo --epochs 1 --out $(CURDIR)/runs/wheel-demo

clean:
	rm -rf $(VENV) .venv-wheel runs build dist src/*.egg-info
