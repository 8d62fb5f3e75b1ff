"""The typed configuration of ``gazal eval``: a recipe YAML and ``--key value`` flags are the
same thing (every flag is a field here; see :mod:`gazal.config`).

Defaults follow the evaluation protocol of DESIGN.md: zero-shot, the model's chat template
with thinking on, greedy decoding, one sample per item.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

from gazal.benchmarks import benchmark_names
from gazal.config import cfg

__all__ = ["LIMIT_KEYS", "RESUMABLE_KEYS", "EvalConfig", "OpenAIConfig", "VLLMConfig"]

# The five sets the Gazal-R1 paper and its peers report (pubmedqa_500 is a subset of pubmedqa).
DEFAULT_BENCHMARKS = ["medqa", "mmlu_pro_medical", "pubmedqa", "medmcqa", "gpqa_medical"]


@dataclass
class OpenAIConfig:
    """Settings of the ``openai`` backend (any OpenAI-compatible chat completions server)."""

    base_url: str = cfg("http://localhost:8000/v1",
                        "server base URL up to /v1 (vLLM's `vllm serve` default port is 8000)")
    api_key_env: str | None = cfg(
        "OPENAI_API_KEY", "NAME of the environment variable holding the API key (the key "
        "itself is never read from or written to a config); null for servers without a key")
    concurrency: int = cfg(8, "requests in flight at once")
    requests_per_minute: float | None = cfg(None, "cap on request starts per minute (null: none)")
    max_retries: int = cfg(6, "retries of a request on 429, 5xx, timeouts and malformed replies")
    timeout_s: float = cfg(600.0, "seconds to wait for one reply (long thinking takes minutes)")
    backoff_base_s: float = cfg(1.0, "first retry delay; doubles each retry, with full jitter "
                                     "(AWS Architecture Blog, 'Exponential Backoff And Jitter')")
    backoff_max_s: float = cfg(60.0, "longest retry delay")
    extra_body: dict[str, Any] = cfg({}, "extra JSON fields sent with every request "
                                         "(e.g. {top_k: 20} for vLLM)")

    def __post_init__(self) -> None:
        if self.concurrency < 1:
            raise ValueError(f"openai.concurrency must be >= 1, got {self.concurrency}")
        if self.max_retries < 0:
            raise ValueError(f"openai.max_retries must be >= 0, got {self.max_retries}")


@dataclass
class VLLMConfig:
    """Settings of the ``vllm`` backend (optional extra: ``pip install 'gazal[vllm]'``)."""

    adapter_mode: Literal["merge", "lora_request"] = cfg(
        "merge", "how an --adapter is applied: 'merge' folds it into the weights with PEFT "
        "first (any adapter, DoRA included; full speed); 'lora_request' serves it with vLLM's "
        "LoRA support (plain LoRA only: vLLM does not serve DoRA)")
    merge_dir: str | None = cfg(
        None, "where the merged model is written for vLLM to load (null: a temporary folder "
        "removed at the end)")
    tensor_parallel_size: int = cfg(1, "GPUs to shard the model over (vLLM tensor parallel)")
    gpu_memory_utilization: float = cfg(0.9, "fraction of GPU memory vLLM may use "
                                             "(vLLM's default)")
    max_model_len: int | None = cfg(None, "context length (null: the model's own)")
    max_lora_rank: int = cfg(64, "largest adapter rank vLLM reserves room for "
                                 "(lora_request mode)")
    enforce_eager: bool = cfg(False, "disable CUDA graphs (slower; less memory at start-up)")


@dataclass
class EvalConfig:
    """Everything ``gazal eval`` needs. Keys are also flags: ``--max-new-tokens 4096``."""

    model: str = cfg("", "model to evaluate: a local path or Hugging Face Hub id (for the "
                         "openai backend: the model name the server serves)")
    adapter: str | None = cfg(None, "PEFT adapter folder (DoRA or LoRA) applied to --model; "
                                    "merged into the weights in memory before generation")
    tokenizer: str | None = cfg(None, "tokenizer path or id (null: the adapter's folder when it "
                                      "holds a tokenizer, else the model's)")
    trust_remote_code: bool = cfg(False, "allow code from the model repository to run "
                                         "(off: only transformers' own architectures load)")
    benchmarks: list[str] = cfg(list(DEFAULT_BENCHMARKS),
                                "benchmarks to run, comma-separated; 'all' means every "
                                "registered one (see `gazal data benchmarks`)")
    items: list[str] = cfg([], "extra local MCQ files evaluated as benchmarks of their own "
                               "(any schema gazal reads: Item JSONL, normalised JSON, ...); "
                               "NAME=PATH names one, else the file's stem is its name")
    data_dir: str | None = cfg(None, "folder with benchmarks/normalized and "
                                     "benchmarks/original (null: $GAZAL_DATA_DIR, else the Hub)")
    source: Literal["auto", "normalized", "original", "hub"] = cfg(
        "auto", "which copy of each benchmark to load (auto: local normalised file first, as "
        "published numbers use it)")
    limit: int | None = cfg(None, "evaluate only N items of each benchmark (null: all); "
                                  "which N, see limit_mode")
    limit_mode: Literal["stratified", "first"] = cfg(
        "stratified", "with --limit: 'stratified' draws a seeded sample in proportion to the "
        "benchmark's categories (MedQA step, MMLU-Pro subject), items kept in file order; "
        "'first' takes the first N rows")
    limit_seed: int = cfg(0, "seed of the stratified --limit sample (the same items on every "
                             "run with the same seed; independent of --seed)")
    samples: int = cfg(1, "generations per item; > 1 needs --temperature > 0 and reports "
                          "mean ± std of the per-sample accuracies")
    temperature: float = cfg(0.0, "sampling temperature; 0 is greedy decoding (DESIGN.md "
                                  "protocol default)")
    top_p: float = cfg(1.0, "nucleus sampling threshold (1.0: off); used only when sampling")
    top_k: int | None = cfg(None, "sample from the k most likely tokens (null: all); used only "
                                  "when sampling (Qwen3's card: 20)")
    min_p: float | None = cfg(None, "drop tokens below min_p x the top token's probability "
                                    "(null: off); used only when sampling (Qwen3's card: 0)")
    max_new_tokens: int = cfg(4096, "generation budget per response, thinking included (a "
                                    "cost compromise: Qwen3's card suggests up to 32,768 for "
                                    "hard problems; watch the truncation rate); a response cut "
                                    "here is 'truncated'")
    thinking: bool = cfg(True, "chat template's enable_thinking (on/off; Qwen3 templates)")
    force_answer_tokens: int | None = cfg(
        None, "budget forcing (s1, m1): a response cut at max_new_tokens with its thinking "
        "unclosed gets '</think>' and the final-answer prefix appended and up to this many "
        "more tokens to answer; reported beside the unforced result (null: off; hf and vllm "
        "backends)")
    system_prompt: str | None = cfg(None, "system message (null: gazal's SYSTEM_PROMPT, which "
                                          "asks for the reasoning format; '' for none)")
    seed: int = cfg(0, "random seed; sampled runs are reproducible given it")
    backend: Literal["hf", "vllm", "openai"] = cfg("hf", "generation backend: hf "
                                                   "(transformers), vllm, or openai (HTTP)")
    out: str = cfg("runs/eval", "run directory; re-running into it resumes")
    batch_size: int | Literal["auto"] = cfg(
        "auto", "prompts per batch (hf) or per saved chunk (vllm, openai); 'auto' fills a "
        "token budget, see docs/eval.md")
    max_batch_size: int | None = cfg(
        None, "upper bound on prompts per batch with batch_size auto (null: 16 on CPU, where "
        "larger batches measured slower, see BENCHMARKS.md; 128 on GPU)")
    batching: Literal["static", "continuous"] | None = cfg(
        None, "hf: null or 'static' = length-sorted left-padded batches (resumes batch by "
        "batch, bit-identical); 'continuous' = transformers' continuous batching (a finished "
        "request leaves the batch at once; same greedy texts; its speed depends on how much "
        "response lengths vary, BENCHMARKS.md; sampled runs draw from one stream per chunk)")
    batch_tokens: int | None = cfg(
        None, "token budget per hf batch with batch_size auto: prompts x (longest prompt + "
        "max_new_tokens) <= budget (null: half the free memory, GPU or RAM, over the KV-cache "
        "bytes per token)")
    dtype: Literal["auto", "float32", "bfloat16", "float16"] = cfg(
        "auto", "weights dtype (auto: float32 on CPU, bfloat16 on GPU)")
    device: str = cfg("auto", "hf device: auto (cuda when available, else cpu), cpu, cuda, "
                              "cuda:1, ...")
    attn_implementation: str | None = cfg(None, "transformers attention kernel ('auto' = "
                                                "flash_attention_2 when flash_attn is "
                                                "installed and CUDA is present, else sdpa; "
                                                "null: its default, sdpa)")
    progress: bool = cfg(True, "show a progress bar")
    openai: OpenAIConfig = field(default_factory=OpenAIConfig)
    vllm: VLLMConfig = field(default_factory=VLLMConfig)

    def __post_init__(self) -> None:
        if not self.model:
            raise ValueError("'model' is required: --model PATH_OR_HUB_ID (for the openai "
                             "backend, the served model name)")
        names = benchmark_names()
        if [b.lower() for b in self.benchmarks] == ["all"]:
            self.benchmarks = names
        if not self.benchmarks and not self.items:
            raise ValueError("'benchmarks' is empty (and no 'items' files are given)")
        for b in self.benchmarks:
            if b not in names:
                import difflib

                close = difflib.get_close_matches(b, names, n=1)
                hint = f"; did you mean '{close[0]}'?" if close else ""
                raise ValueError(f"key 'benchmarks': unknown benchmark '{b}'{hint} "
                                 f"Registered: {', '.join(names)}")
        if len(set(self.benchmarks)) != len(self.benchmarks):
            raise ValueError(f"key 'benchmarks': repeated names in {self.benchmarks}")
        checks = [
            (self.samples >= 1, f"key 'samples': must be >= 1, got {self.samples}"),
            (self.temperature >= 0, f"key 'temperature': must be >= 0, got {self.temperature}"),
            (0 < self.top_p <= 1, f"key 'top_p': must be in (0, 1], got {self.top_p}"),
            (self.top_k is None or self.top_k >= 1,
             f"key 'top_k': must be >= 1 or null, got {self.top_k}"),
            (self.force_answer_tokens is None or self.force_answer_tokens >= 1,
             f"key 'force_answer_tokens': must be >= 1 or null, got "
             f"{self.force_answer_tokens}"),
            (self.min_p is None or 0 <= self.min_p <= 1,
             f"key 'min_p': must be in [0, 1] or null, got {self.min_p}"),
            (self.max_new_tokens >= 1,
             f"key 'max_new_tokens': must be >= 1, got {self.max_new_tokens}"),
            (self.limit is None or self.limit >= 1,
             f"key 'limit': must be >= 1 or null, got {self.limit}"),
            (self.batch_size == "auto" or self.batch_size >= 1,
             f"key 'batch_size': must be >= 1 or 'auto', got {self.batch_size}"),
            (self.max_batch_size is None or self.max_batch_size >= 1,
             f"key 'max_batch_size': must be >= 1, got {self.max_batch_size}"),
            (self.batch_tokens is None or self.batch_tokens >= 1,
             f"key 'batch_tokens': must be >= 1 or null, got {self.batch_tokens}"),
        ]
        for ok, message in checks:
            if not ok:
                raise ValueError(message)
        if self.samples > 1 and self.temperature == 0:
            raise ValueError(f"key 'samples': {self.samples} samples with temperature 0 would "
                             "repeat one greedy answer; set --temperature (e.g. 0.6)")
        if self.force_answer_tokens and self.backend == "openai":
            raise ValueError("key 'force_answer_tokens': budget forcing continues a response "
                             "from its token ids, which the hf and vllm backends do (an "
                             "OpenAI-compatible chat API cannot); use --backend hf or vllm")
        if self.batching == "continuous" and self.backend != "hf":
            raise ValueError(f"key 'batching': continuous is the hf backend's option; "
                             f"{self.backend} schedules requests itself")
        if self.adapter and self.backend == "openai":
            raise ValueError("key 'adapter': the openai backend evaluates what the server "
                             "serves; load the adapter in the server (e.g. vllm serve "
                             "--enable-lora) and pass its name as --model")


# Keys that only matter with a limit: a run over the full sets resumes whatever they say
# (and a run folder saved before they existed still resumes).
LIMIT_KEYS = ("limit_mode", "limit_seed")

# Keys that change speed, logging or where files live, never results: a resumed run may
# change them. (batch_size is safe because the batch plan is saved with the run.)
RESUMABLE_KEYS = (
    "out", "data_dir", "progress", "batch_size", "max_batch_size", "batch_tokens",
    "openai.concurrency", "openai.requests_per_minute", "openai.max_retries",
    "openai.timeout_s", "openai.backoff_base_s", "openai.backoff_max_s", "openai.base_url",
    "openai.api_key_env", "vllm.merge_dir", "vllm.gpu_memory_utilization",
    "vllm.enforce_eager",
)
