"""``gazal grpo`` (the real command) for tests/test_vllm_cpu.py, run in vLLM's CPU environment.

    python tests/support/vllm_grpo.py RECIPE [overrides]

One change, for vLLM's CPU build only: how the trained weights reach the colocated engine.
TRL 1.16 pushes them with ``model.load_weights([(name, tensor)])``, which needs every linear
layer's ``weight`` parameter; vLLM's CPU build (0.32) replaces it with an empty tensor once
the weights are loaded (``dispatch_cpu_unquantized_gemm(layer, remove_weight=True)``: the
layers compute with a prepacked oneDNN copy), so TRL's push fails with
``AttributeError: 'Parameter' object has no attribute 'weight_loader'``. vLLM's own in-place
reload (``model_runner.reload_weights``) restores the parameters, loads the same named
tensors TRL yields (adapter merged into the base weights) and packs them again. On GPUs TRL's
push works as is; this script is not used there.
"""

from __future__ import annotations

import sys


def use_vllm_reload_for_colocate_sync() -> None:
    from trl.generation.vllm_generation import VLLMGeneration

    original = VLLMGeneration.sync_weights

    def sync_weights(self):
        if self.mode != "colocate":
            return original(self)
        runner = self.llm.llm_engine.model_executor.driver_worker.model_runner
        runner.reload_weights(weights_iterator=list(self._iter_named_params()))
        self.llm.reset_prefix_cache()

    VLLMGeneration.sync_weights = sync_weights


def main() -> int:
    use_vllm_reload_for_colocate_sync()
    from gazal.cli import main as gazal_main

    return gazal_main(["grpo", *sys.argv[1:]])


if __name__ == "__main__":  # vLLM on CPU spawns processes: the guard is required
    sys.exit(main())
