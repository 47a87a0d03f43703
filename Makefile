# Two commands for a fresh machine with Python 3.11:  make demo  /  make test
PYTHON ?= python3.11
VENV ?= .venv
BIN := $(VENV)/bin

.PHONY: install install-test demo test test-fast clean

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

clean:
	rm -rf $(VENV) runs build src/*.egg-info
