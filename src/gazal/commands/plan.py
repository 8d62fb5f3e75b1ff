"""``gazal plan RECIPE``: parameters and memory per GPU of a recipe, and whether it fits."""

from __future__ import annotations

import argparse


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "plan", help="parameters and memory per GPU of a recipe (training and vLLM generation)",
        description="Estimates, without loading weights or data: total and trainable "
                    "parameters; memory per GPU for training (weights, adapter, gradients, "
                    "optimizer states, activations, logits) under the accelerate config's "
                    "ZeRO stage / FSDP strategy and world size; and for vLLM generation "
                    "(weights + KV cache). Says when the recipe does not fit and what to "
                    "change. Recipe values can be overridden as in the recipe's own command "
                    "(--train.per_device_train_batch_size 2). Formulas and sources: "
                    "docs/plan.md.")
    p.add_argument("recipe", help="training recipe YAML (e.g. recipes/gazal-r1-32b/sft.yaml)")
    p.add_argument("--kind", choices=["sft", "grpo"],
                   help="recipe kind (default: detected from its keys)")
    p.add_argument("--accelerate-config", metavar="YAML",
                   help="accelerate config the run will be launched with "
                        "(recipes/accelerate/{ddp,zero2,zero3,fsdp}.yaml); default: one GPU, "
                        "or DDP with --num-gpus > 1")
    p.add_argument("--num-gpus", type=int, metavar="N",
                   help="total GPUs (all machines); default: the config's num_processes")
    p.add_argument("--gpus-per-node", type=int, metavar="N",
                   help="GPUs per machine, for FSDP hybrid sharding (default: total / "
                        "num_machines)")
    p.add_argument("--gpu-memory", type=float, default=80.0, metavar="GiB",
                   help="memory per GPU in GiB (default 80; an 'H100 80GB' shows 79.6 GiB "
                        "in nvidia-smi)")
    p.add_argument("--overhead", type=float, metavar="GiB",
                   help="CUDA context, NCCL buffers, allocator fragmentation per GPU "
                        "(default 2.0 on cuda, an assumption; 0 on cpu)")
    p.add_argument("--device", choices=["cuda", "cpu"], default="cuda",
                   help="where training runs: cuda (default) or cpu (TRL's torch fallback of "
                        "the fused head; --gpu-memory is then the RAM per process)")
    p.add_argument("--model-config", metavar="PATH_OR_NAME",
                   help="config.json (or its folder, or a built-in name like Qwen3-8B) when "
                        "the recipe's model is a Hub id not in the built-in table")
    p.add_argument("--gen-seqs", type=int, metavar="N",
                   help="vLLM: sequences generated at once (default: the recipe kind's)")
    p.add_argument("--gen-len", type=int, metavar="TOKENS",
                   help="vLLM: tokens per sequence, prompt + completion (default: the "
                        "recipe's max length)")
    p.add_argument("--tensor-parallel", type=int, metavar="N",
                   help="vLLM tensor_parallel_size (default: a GRPO recipe's colocated "
                        "grpo.vllm_tensor_parallel_size, else 1)")
    p.add_argument("--gpu-memory-utilization", type=float, metavar="F",
                   help="vLLM gpu_memory_utilization (default: a GRPO recipe's colocated "
                        "grpo.vllm_gpu_memory_utilization, else 0.9, vLLM's)")
    p.add_argument("--prompt-len", type=int, metavar="TOKENS",
                   help="GRPO: the longest prompt in tokens (default: "
                        "grpo.vllm_max_model_length - grpo.max_completion_length when set, "
                        "else 512)")
    p.add_argument("--kv-cache-dtype", choices=["auto", "fp8"], default="auto",
                   help="vLLM kv_cache_dtype (auto = the model dtype, 2 bytes)")
    p.add_argument("--no-generation", action="store_true", help="skip the vLLM estimate")
    p.add_argument("--json", action="store_true", help="print the estimate as JSON")
    p.add_argument("--check", action="store_true",
                   help="exit 1 when training does not fit (or generation, when --gen-seqs "
                        "is given)")
    p.set_defaults(func=run, accepts_overrides=True)


def run(args: argparse.Namespace) -> int:
    import dataclasses
    import json

    from gazal import plan
    from gazal.config import ConfigError

    for name in ("num_gpus", "gpus_per_node", "gen_seqs", "gen_len", "tensor_parallel",
                 "prompt_len"):
        value = getattr(args, name)
        if value is not None and value < 1:
            raise ConfigError(f"--{name.replace('_', '-')} must be >= 1, got {value}")
    if args.gpu_memory_utilization is not None and not 0 < args.gpu_memory_utilization <= 1:
        raise ConfigError("--gpu-memory-utilization must be in (0, 1]")
    workload = plan.load_workload(args.recipe, args.overrides, kind=args.kind,
                                  model_config=args.model_config, prompt_len=args.prompt_len)
    if workload.generation is not None:
        # the command line's vLLM settings replace the recipe's (colocated vLLM's share
        # counts in the training memory too)
        g = workload.generation
        workload = dataclasses.replace(workload, generation=dataclasses.replace(
            g, sequences=args.gen_seqs or g.sequences, length=args.gen_len or g.length,
            tensor_parallel=args.tensor_parallel or g.tensor_parallel,
            gpu_memory_utilization=args.gpu_memory_utilization or g.gpu_memory_utilization,
            kv_cache_bytes=1 if args.kv_cache_dtype == "fp8" else 2))
    parallel = plan.parallelism_from_accelerate(args.accelerate_config, args.num_gpus,
                                                args.gpus_per_node)
    overhead = args.overhead if args.overhead is not None else \
        (2.0 if args.device == "cuda" else 0.0)
    train = plan.estimate_training(workload, parallel, gpu_memory_gib=args.gpu_memory,
                                   overhead_gib=overhead, device=args.device)
    gen = None
    if not args.no_generation and workload.generation is not None:
        gen = plan.estimate_generation(workload.model, workload.generation,
                                       gpu_memory_gib=args.gpu_memory)
    if args.json:
        print(json.dumps({"recipe": args.recipe, "kind": workload.kind,
                          "model": dataclasses.asdict(workload.model),
                          "training": train.to_dict(),
                          "generation": gen.to_dict() if gen else None}, indent=2,
                         default=str))
    else:
        print(plan.format_report(workload, train, gen))
    gen_failed = gen is not None and not gen.fits and args.gen_seqs is not None
    if args.check and (not train.fits or gen_failed):
        return 1
    return 0
