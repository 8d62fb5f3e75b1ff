"""How training is spread over GPUs: a :class:`Parallelism` read from an ``accelerate``
config (DDP, DeepSpeed ZeRO stage, FSDP strategy) and the GPU count."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from gazal.config import ConfigError


@dataclass(frozen=True)
class Parallelism:
    """How training is spread over GPUs (from an accelerate config and --num-gpus).

    ``engine``: ``single``, ``ddp``, ``deepspeed`` or ``fsdp``. ``zero_stage`` (0-3) says what
    is sharded: 1 optimizer states, 2 + gradients, 3 + weights (FSDP FULL_SHARD = 3,
    SHARD_GRAD_OP = 2, NO_SHARD = 0). ``shard_size`` is how many GPUs share the shards
    (world size, or GPUs per node for hybrid sharding).
    """

    engine: str = "single"
    world_size: int = 1
    zero_stage: int = 0
    shard_size: int = 1
    offload_optimizer: bool = False
    offload_params: bool = False
    mixed_precision: str = "no"
    source: str = "single process"

    @property
    def deepspeed(self) -> bool:
        return self.engine == "deepspeed"


def _read_deepspeed_json(path: Path) -> dict[str, Any]:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError(f"deepspeed_config_file not found: {path}") from None
    except json.JSONDecodeError as err:
        raise ConfigError(f"{path}: not valid JSON ({err})") from None


def parallelism_from_accelerate(path: str | Path | None, num_gpus: int | None = None,
                                gpus_per_node: int | None = None) -> Parallelism:
    """Read an ``accelerate`` config YAML (``recipes/accelerate/*.yaml``); ``num_gpus``
    overrides its ``num_processes`` (the total over all machines)."""
    from gazal.config import load_yaml_mapping

    if path is None:
        n = num_gpus or 1
        return Parallelism(engine="ddp" if n > 1 else "single", world_size=n,
                           source="no accelerate config: " + ("DDP" if n > 1 else "one GPU"))
    path = Path(path)
    data = load_yaml_mapping(path)
    dist = str(data.get("distributed_type", "NO")).upper()
    n = int(num_gpus or data.get("num_processes") or 1)
    machines = int(data.get("num_machines") or 1)
    per_node = gpus_per_node or max(1, n // machines)
    mp = str(data.get("mixed_precision", "no"))
    if dist in ("NO", "MULTI_GPU", "MULTI_CPU", "MULTI_XPU", "MULTI_NPU"):
        return Parallelism(engine="ddp" if n > 1 else "single", world_size=n,
                           mixed_precision=mp, source=f"{path} ({dist})")
    if dist == "DEEPSPEED":
        ds = dict(data.get("deepspeed_config") or {})
        stage = ds.get("zero_stage")
        off_opt = str(ds.get("offload_optimizer_device", "none")).lower()
        off_par = str(ds.get("offload_param_device", "none")).lower()
        if ds.get("deepspeed_config_file"):
            ds_path = Path(ds["deepspeed_config_file"])
            if not ds_path.is_absolute():
                ds_path = path.parent / ds_path
            zero = _read_deepspeed_json(ds_path).get("zero_optimization", {})
            stage = zero.get("stage", stage)
            off_opt = str((zero.get("offload_optimizer") or {}).get("device", off_opt)).lower()
            off_par = str((zero.get("offload_param") or {}).get("device", off_par)).lower()
        if stage not in (0, 1, 2, 3):
            raise ConfigError(f"{path}: deepspeed_config.zero_stage must be 0-3, got {stage!r}")
        return Parallelism(engine="deepspeed", world_size=n, zero_stage=int(stage),
                           shard_size=n, offload_optimizer=off_opt not in ("none", ""),
                           offload_params=off_par not in ("none", ""), mixed_precision=mp,
                           source=f"{path} (DeepSpeed ZeRO-{stage})")
    if dist == "FSDP":
        fsdp = dict(data.get("fsdp_config") or {})
        strategy = str(fsdp.get("fsdp_sharding_strategy", "")).upper()
        reshard = fsdp.get("fsdp_reshard_after_forward")
        if isinstance(reshard, str) and not reshard.isdigit():
            strategy = strategy or reshard.upper()
            reshard = None
        if not strategy:
            strategy = "FULL_SHARD" if reshard in (None, True, "true", 1) else "SHARD_GRAD_OP"
        stage = {"FULL_SHARD": 3, "HYBRID_SHARD": 3, "SHARD_GRAD_OP": 2,
                 "_HYBRID_SHARD_ZERO2": 2, "NO_SHARD": 0}.get(strategy.lstrip("0123456789_"))
        if stage is None:
            raise ConfigError(f"{path}: unknown FSDP sharding strategy {strategy!r}")
        shard = per_node if "HYBRID" in strategy else n
        return Parallelism(engine="fsdp", world_size=n, zero_stage=stage, shard_size=shard,
                           offload_params=bool(fsdp.get("fsdp_offload_params", False)),
                           offload_optimizer=bool(fsdp.get("fsdp_offload_params", False)),
                           mixed_precision=mp, source=f"{path} (FSDP {strategy})")
    raise ConfigError(f"{path}: distributed_type {dist!r} is not one gazal plan models "
                      "(NO, MULTI_GPU, DEEPSPEED, FSDP)")

