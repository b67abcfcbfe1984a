"""The typed config tree of a run, loaded once from YAML (+ dotted CLI overrides), then read-only.

Every field carries a `help` text: it is the documentation (`tunesmith config` prints it) and
the reason a field exists. Unknown keys are errors with a did-you-mean; unknown keys and type
errors are collected and reported together, each with its YAML line; once every value has the
right type, range and cross-field problems are collected and reported together in the same way.
"""

from __future__ import annotations

import dataclasses
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from tunesmith.config_build import build, parse_override, read_yaml, set_dotted, type_name
from tunesmith.config_checks import PPO_METHODS as PPO_METHODS  # re-exported: the recipes import it from here
from tunesmith.config_checks import cross_check
from tunesmith.errors import Collector, fail


def _f(default: Any, help: str, **kw) -> Any:
    """A dataclass field with a help text (mutable defaults go through default_factory)."""
    if isinstance(default, (list, dict)):
        return field(default_factory=lambda d=default: type(d)(d), metadata={"help": help}, **kw)
    if isinstance(default, type):  # a nested section
        return field(default_factory=default, metadata={"help": help}, **kw)
    return field(default=default, metadata={"help": help}, **kw)


@dataclass(frozen=True)
class ModelConfig:
    name: str = _f("smollm2-135m-instruct",
                   "Base model: an embedded name (see `tunesmith models`), a local directory with a "
                   "transformers checkpoint, a path to a .gguf file, or a Hugging Face hub id.")
    gguf_file: str | None = _f(None, "File name inside `name` when `name` is a directory that holds a .gguf file.")
    chat_template: str | None = _f(None, "Jinja chat template that replaces the tokenizer's own (needed for base "
                                   "models without one).")
    trust_remote_code: bool = _f(False, "Allow model code from the checkpoint to run (hub models with custom code).")
    quantization: Literal["none", "nf4", "fp4", "int8"] = _f(
        "none", "Load the frozen base quantized with bitsandbytes for LoRA training (QLoRA): nf4 or fp4 4-bit, "
        "or int8. Needs train.method other than full; on CPU bitsandbytes >= 0.48 runs these kernels.")
    rope_scaling: Literal["none", "linear", "dynamic", "yarn"] = _f(
        "none", "Stretch the rotary position embeddings to train and run beyond the model's positions: linear "
        "(position interpolation), dynamic (NTK-aware, scaled only past the original length) or yarn; the "
        "model's positions become max_position_embeddings x model.rope_factor (RoPE models only).")
    rope_factor: float = _f(2.0, "How many times the original positions model.rope_scaling reaches.")
    attention: Literal["auto", "eager", "sdpa", "flash_attention_2"] = _f(
        "auto", "Attention kernel for training. auto: eager on CPU when data.max_length <= 1024 (measured ~20% "
        "faster than sdpa for LoRA SFT on 2 cores), else sdpa; on a CUDA GPU with flash-attn installed and bf16, "
        "flash_attention_2 (packed rows then train padding-free).")


@dataclass(frozen=True)
class MoEConfig:
    targets: list[str] = _f([], "Mixture-of-experts models (Mixtral, Qwen-MoE, OLMoE): which parts LoRA adapts, any of "
                            "experts (every expert's feed-forward), router (the gate that picks experts), shared (the "
                            "shared expert where the model has one) and attention; found on the loaded model "
                            "(docs/moe.md). They replace lora.target_modules, whose names other than all-linear are "
                            "added. experts and router need lora.dropout 0. Empty: lora.target_modules as given.")
    router_aux_loss_coef: float | None = _f(None, "Weight of the router load-balancing loss added to the training "
                                            "loss (the model's router_aux_loss_coef); None: the model's own. The "
                                            "auxiliary loss is logged either way on MoE models (aux_loss in "
                                            "metrics.jsonl; sft and cpt).")


@dataclass(frozen=True)
class VisionConfig:
    image_root: str | None = _f(None, "Folder that relative image paths in the data are read from (None: the "
                                "folder of the data file that names them). Paths may not leave it.")
    max_images: int = _f(4, "Most images one training row may carry; rows with more are errors (file:line).")
    max_image_bytes: int = _f(20_000_000, "Largest image file or data URL accepted, in bytes.")
    image_size: int | None = _f(None, "Resize images so their longer side is at most this many pixels before the "
                                "processor sees them (None: the processor's own sizing).")


@dataclass(frozen=True)
class FederatedConfig:
    enabled: bool = _f(False, "Train with federated learning on Flower (flwr): each client trains the LoRA "
                       "weights on its own data, a strategy aggregates them each round; only adapter weights "
                       "travel. `tunesmith train` runs the clients in Flower's simulation engine.")
    num_clients: int = _f(3, "Clients for partition iid or shards (partition files: one per data.train file). On "
                          "real SuperNodes: how many must connect before a round starts.")
    partition: Literal["iid", "shards", "files"] = _f(
        "iid", "How the training rows are dealt to the clients: iid (shuffled, equal parts), shards (contiguous "
        "parts in file order: non-IID when the file is ordered by task or source) or files (client k holds "
        "data.train[k]: each client its own data file). Validation rows (data.validation or "
        "validation_fraction) stay with the server, which evaluates the aggregated adapter every round.")
    rounds: int = _f(3, "Federated rounds (each: clients train, then the server aggregates).")
    local_steps: int = _f(10, "Optimizer steps each client takes per round.")
    strategy: Literal["fedavg", "fedprox"] = _f("fedavg", "Aggregation: fedavg (weighted by client example count) or "
                                                "fedprox (FedAvg plus a proximal term mu/2 ||w - w_global||^2 in "
                                                "each client's loss, for non-IID clients).")
    proximal_mu: float = _f(0.01, "FedProx: weight of the proximal term.")
    fraction_fit: float = _f(1.0, "Share of the clients sampled to train in each round.")
    secure_aggregation: bool = _f(False, "Aggregate with Flower's SecAgg+ protocol, so the server only sees the sum "
                                  "of the client updates.")
    save_client_updates: bool = _f(False, "Keep every client's returned adapter and example count per round under "
                                   "<run>/federated/ (audits, tests); not with secure_aggregation, which hides them.")


# Defined once: the CLI's and the API's defaults and choices and eval's own checks read these.
REGRESSION_THRESHOLD = 0.05  # a metric this fraction worse than the baseline is flagged as a regression
EVAL_DTYPES = ("float32", "bfloat16", "float16")  # weights during evaluation

FORMAT = Literal["auto", "alpaca", "chat", "sharegpt", "preference", "kto", "classification", "text", "prompt"]


@dataclass(frozen=True)
class DataSource:
    path: str = _f("", "Data file (.jsonl, .json, .txt, .csv, .tsv, .parquet), relative to the config file.")
    format: FORMAT = _f("auto", "Row format of this file; auto detects it per row from the keys.")
    weight: float = _f(1.0, "Share of the training mix, relative to the other sources (a source is up- or "
                       "down-sampled to its share of the total row count).")
    columns: dict[str, str] = _f({}, "Column mapping for this file, {canonical name: your column}, e.g. "
                                 "{output: response, input: context}.")
    license: str | None = _f(None, "SPDX licence id of this file (e.g. CC-BY-4.0, CC-BY-NC-4.0, Apache-2.0); None: "
                             "read from a README or LICENSE beside the file when one names it, else unknown. "
                             "Non-commercial, share-alike and use-restricted licences are warned about.")


@dataclass(frozen=True)
class CleanConfig:
    enabled: bool = _f(False, "Run the curation steps below on the training data before tokenization "
                       "(`tunesmith data clean` runs them on their own).")
    normalize: bool = _f(True, "Unicode NFC and whitespace normalisation.")
    strip_html: bool = _f(False, "Strip HTML tags and entities (for web-scraped text; HTML that is the answer "
                          "would be stripped too).")
    strip_boilerplate: bool = _f(False, "Drop web boilerplate lines (cookie banners, 'all rights reserved', ...).")
    dedup: Literal["none", "exact", "near"] = _f("exact", "Drop exact duplicates, or exact and near duplicates "
                                                  "(MinHash/LSH).")
    near_threshold: float = _f(0.8, "Estimated Jaccard similarity above which two rows are near duplicates.")
    min_chars: int = _f(1, "Drop rows whose text is shorter than this.")
    max_chars: int | None = _f(None, "Drop rows whose text is longer than this (None: no limit).")
    max_repetition: float = _f(1.0, "Drop rows whose duplicated word-3-gram fraction exceeds this (1.0: off; "
                               "0.3 suits web text).")
    max_symbol_ratio: float = _f(1.0, "Drop rows with more symbols per letter than this (1.0: off; code and "
                                 "math need a high value).")
    languages: list[str] = _f([], "Keep only rows in these languages (ISO 639-1 codes); empty keeps all.")
    pii: Literal["off", "report", "redact", "drop"] = _f(
        "report", "Personal data (e-mail, phone, card, IBAN, IP, US SSN): count only, replace with [TAG], or drop "
        "the row.")
    toxicity: Literal["off", "report", "drop"] = _f("off", "Toxic terms (word list, plus the classifier when "
                                                     "given): count only, or drop the row.")
    toxicity_wordlist: str | None = _f(None, "Word list replacing the shipped one (.txt, .yaml or .json).")
    toxicity_classifier: str | None = _f(None, "Local folder of a text-classification model used as a second "
                                         "toxicity check.")
    toxicity_threshold: float = _f(0.5, "Classifier score at or above which a row counts as toxic.")
    decontaminate: list[str] = _f([], "Evaluation files: training rows sharing a long n-gram with any of their "
                                  "items are dropped and reported.")
    ngram: int = _f(13, "n-gram length (words) for decontamination.")


@dataclass(frozen=True)
class DataConfig:
    train: list[str] = _f([], "Training data files (.jsonl, .json, .txt, .csv, .tsv, .parquet) in any supported "
                          "shape: alpaca, OpenAI chat, ShareGPT, preference pairs, KTO, classification, raw text. "
                          "Relative paths are relative to the config file.")
    sources: list[DataSource] = _f([], "Training files with their own format, column mapping and mixing weight, "
                                   "used in addition to `train`.")
    format: FORMAT = _f("auto", "Row format of the `train` files; auto detects it per row from the keys.")
    columns: dict[str, str] = _f({}, "Column mapping for the `train` files, {canonical name: your column}, e.g. "
                                 "{output: response, input: context} for Dolly.")
    license: str | None = _f(None, "SPDX licence id of the `train` files (sources carry their own); None: read "
                             "from a README or LICENSE beside each file when one names it, else unknown.")
    on_error: Literal["fail", "skip"] = _f("fail", "Bad rows: fail lists every one (file:line) and stops; skip "
                                          "drops them and reports the count by reason.")
    max_row_bytes: int = _f(1_000_000, "A line (or .json record) longer than this many bytes is named in a "
                            "warning; it is still read.")
    clean: CleanConfig = _f(CleanConfig, "Curation: normalisation, dedup, quality, PII, toxicity, decontamination.")
    validation: str | None = _f(None, "Validation file; if unset, `validation_fraction` of the training rows is "
                                "held out.")
    validation_fraction: float = _f(0.0, "Fraction of training rows held out for eval loss when no validation file "
                                    "is given (0 disables).")
    max_length: int = _f(512, "Maximum tokens per example after the chat template is applied.")
    overlong: Literal["drop", "truncate"] = _f("drop", "What happens to examples longer than max_length (the count "
                                              "is reported either way).")
    train_on: Literal["assistant", "all"] = _f("assistant", "Which tokens carry loss: assistant replies (including "
                                              "their end-of-turn token), or every token.")
    system_prompt: str | None = _f(None, "System prompt added to rows that have none (None keeps the template's "
                                   "default).")
    cache: bool = _f(True, "Reuse prepared (loaded, cleaned, tokenized) data when the data files, this section "
                     "and the tokenizer are unchanged; the cache lives under $TUNESMITH_CACHE/data.")
    stride: int | None = _f(None, "Raw text (recipe: cpt): tokens between the starts of consecutive max_length "
                            "windows (None: max_length, no overlap); overlap is context only, never trained twice.")
    task_prompt: str | None = _f(None, "Generative task tuning: classification rows (text, label) become a prompt "
                                 "from this template ({text} is replaced) answered by the label, so a causal LM "
                                 "learns text -> label; e.g. 'Sentiment of: {text}'.")
    packing: bool = _f(False, "Pack short training examples into full max_length sequences (position ids restart "
                       "per example, so no example attends to another); the packing efficiency is reported.")


@dataclass(frozen=True)
class LoraConfig:
    r: int = _f(16, "LoRA rank.")
    alpha: int = _f(32, "LoRA scaling numerator (the update is scaled by alpha / r).")
    dropout: float = _f(0.05, "Dropout on the LoRA input.")
    target_modules: list[str] = _f(["all-linear"], "Module names to adapt, or ['all-linear'] for every linear "
                                   "layer except the output head.")
    use_rslora: bool = _f(False, "rsLoRA: scale by alpha / sqrt(r) instead of alpha / r (steadier at high rank).")
    use_dora: bool = _f(False, "DoRA: learn a magnitude vector on top of the LoRA direction update.")
    plus_ratio: float = _f(0.0, "LoRA+: learning-rate ratio of the B matrices to the A matrices (0: off; 16 is "
                           "the paper's default).")
    num_virtual_tokens: int = _f(20, "Virtual tokens for prompt tuning, prefix tuning and P-tuning.")


@dataclass(frozen=True)
class TrainConfig:
    method: Literal["lora", "full", "vera", "ia3", "prompt_tuning", "prefix_tuning", "p_tuning"] = _f(
        "lora", "lora (with lora.use_rslora / use_dora / plus_ratio for rsLoRA, DoRA, LoRA+), the other peft "
        "methods (vera, ia3, prompt_tuning, prefix_tuning, p_tuning; settings in the lora section), or full "
        "fine-tuning of every weight.")
    freeze: list[str] = _f([], "Full fine-tuning only: parameters whose name contains any of these stay frozen "
                           "(e.g. ['embed_tokens', 'layers.0.']).")
    epochs: float | Literal["auto"] = _f(
        "auto", "Passes over the training data (ignored when max_steps > 0). auto: from the recipe and the number "
        "of rows (e.g. 3 for SFT, fewer for large sets, more for small ones); the rule is kept in the manifest.")
    max_steps: int = _f(-1, "Stop after this many optimizer steps (-1: use epochs).")
    batch_size: int | Literal["auto"] = _f(
        "auto", "Examples per device per forward pass. auto: about 2048 tokens per batch on CPU (16384 on a GPU) "
        "from the median row length, a power of 2, at most 32 (64), and at least 8 steps per epoch.")
    grad_accum: int = _f(1, "Forward passes accumulated per optimizer step (effective batch = batch_size x "
                         "grad_accum).")
    learning_rate: float | Literal["auto"] = _f(
        "auto", "Peak learning rate. auto: per recipe and method (e.g. LoRA SFT 5e-4, full SFT 2e-5, MiniLM "
        "classification in full 3e-5, DPO LoRA 5e-5), scaled by sqrt(rows per step / 16).")
    lr_range_test: bool = _f(False, "With learning_rate: auto, first run a learning-rate range test (40 steps on a "
                             "throwaway copy, the rate growing from 1e-6 to 1e-1) and use the rate at the lowest "
                             "smoothed loss / 10, within 10x of the rule's; the curve is kept as lr_range.json.")
    time_budget: float | None = _f(None, "Minutes the training may take: a few timed steps cap train.max_steps to fit "
                                   "(sft, cpt, dpo), and the run stops at the budget in any case (None: no budget).")
    lr_scheduler: Literal["cosine", "linear", "constant", "constant_with_warmup"] = _f(
        "cosine", "Learning-rate schedule after warm-up.")
    warmup_ratio: float = _f(0.03, "Fraction of steps spent warming the learning rate up from 0.")
    weight_decay: float = _f(0.0, "AdamW weight decay.")
    max_grad_norm: float = _f(1.0, "Gradient clipping norm (0 disables).")
    precision: Literal["auto", "bf16", "fp32"] = _f(
        "auto", "auto: bf16 where the hardware runs it fast (CUDA with bf16, CPUs with AVX512-BF16 or AMX), else fp32. "
        "fp16 is not offered on CPU: it runs ~100x slower there.")
    gradient_checkpointing: bool = _f(False, "Recompute activations in the backward pass: less memory, 15-30% slower.")
    label_head: bool = _f(True, "SFT/CPT: compute the LM head and the loss only at positions that carry a label, so "
                          "full-vocabulary logits are never made for prompt or padding tokens (the same loss; less "
                          "compute and memory). Used with LoRA-style adapters and full fine-tuning of the common "
                          "decoder families on one process; elsewhere the model's own loss.")
    kernels: Literal["auto", "liger", "none"] = _f(
        "auto", "SFT/CPT on a CUDA GPU: Liger's fused kernels (RMSNorm, RoPE, SwiGLU, fused linear cross-entropy). "
        "auto: on where a CUDA device and liger-kernel (pip install 'tunesmith[gpu]') are; never on CPU.")
    compile: bool = _f(False, "torch.compile the model (inductor). Off by default: on CPU it gave no gain and its "
                       "first compile took over 5 minutes on 2 cores (docs/performance.md).")
    threads: int = _f(0, "CPU threads per op (torch intra-op). 0: auto, one per core not busy with other "
                      "processes, re-measured while training (2 threads on 2 cores beside one busy process ran at "
                      "0.31x quiet speed); OMP_NUM_THREADS, when set, is kept.")
    logging_steps: int = _f(5, "Log loss, learning rate and tokens/s every this many steps.")
    eval_steps: int | Literal["auto"] = _f(
        "auto", "Compute eval loss every this many steps (0: only at the end). auto: 8 evaluations per run when "
        "there is validation data and at least 20 steps, else 0.")
    save_steps: int = _f(50, "Write a resumable checkpoint every this many steps.")
    early_stopping_patience: int | Literal["auto"] = _f(
        "auto", "Stop after this many evaluations without eval-loss improvement, and keep the best checkpoint's "
        "weights (0: off; needs eval_steps). auto: 3 for sft, cpt and classify when evaluation is periodic, else 0.")
    early_stopping_threshold: float = _f(0.0, "Smallest eval-loss decrease that counts as an improvement.")
    save_total_limit: int = _f(2, "Keep at most this many checkpoints.")
    report_to: list[Literal["mlflow", "tensorboard", "wandb", "trackio"]] = _f(
        [], "Experiment trackers that receive params, per-step metrics, eval and audit results and the report: "
        "mlflow (a local SQLite store, <output_dir>/mlflow.db), tensorboard (<run>/tensorboard), wandb (offline, "
        "<run>/wandb), trackio (local). Empty: none. pip install 'tunesmith[tracking]' adds mlflow and tensorboard.")
    tracking_uri: str | None = _f(None, "MLflow tracking URI replacing the local SQLite store, e.g. "
                                  "http://mlflow.internal:5000 or sqlite:////data/mlflow.db.")
    launcher: Literal["local", "ray"] = _f(
        "local", "local: this process (or the processes `accelerate launch` started). ray: Ray Train's TorchTrainer, "
        "one worker process per train.workers on the Ray cluster at train.ray_address (a local one when unset); "
        "the run directory must be on storage every worker sees (docs/distributed.md).")
    workers: int = _f(2, "launcher: ray: training processes (train.batch_size is per process).")
    ray_address: str | None = _f(None, "launcher: ray: the cluster to join, e.g. ray://head:10001 or auto; None "
                                 "starts a local Ray instance on this machine for the run.")


@dataclass(frozen=True)
class PreferenceConfig:
    beta: float = _f(0.1, "DPO temperature: how far the policy may move from the reference model.")
    loss: Literal["sigmoid", "ipo", "hinge", "robust"] = _f("sigmoid", "DPO loss variant (trl's loss_type).")
    label_smoothing: float = _f(0.0, "Assumed share of flipped preference labels (the robust loss uses it).")
    desirable_weight: float = _f(1.0, "KTO: loss weight of desirable (label true) completions.")
    undesirable_weight: float = _f(1.0, "KTO: loss weight of undesirable (label false) completions.")
    simpo_gamma: float = _f(0.5, "SimPO: target reward margin (gamma / beta ratio as in the paper's gamma).")


@dataclass(frozen=True)
class RLConfig:
    reward_functions: list[str] = _f([], "GRPO: Python reward functions as 'file.py:function' (relative to the "
                                     "config) or 'module:function'; each takes (prompts, completions, **columns) "
                                     "and returns one float per completion.")
    reward_model: str | None = _f(None, "PPO (and optionally GRPO): a reward model, a finished `recipe: reward` "
                                  "run directory or a sequence-classification checkpoint with one output.")
    num_generations: int = _f(4, "Completions sampled per prompt (GRPO's group size; PPO samples one per prompt).")
    max_new_tokens: int = _f(48, "Longest sampled completion, in tokens.")
    temperature: float = _f(1.0, "Sampling temperature for completions.")
    kl_coef: float = _f(0.05, "Weight of the KL penalty to the reference model (the base, adapter disabled).")
    clip_range: float = _f(0.2, "PPO/GRPO ratio clipping epsilon.")
    ppo_epochs: int = _f(2, "PPO: optimisation passes over each batch of rollouts.")


@dataclass(frozen=True)
class PrivacyConfig:
    enabled: bool = _f(False, "Train with DP-SGD (opacus): per-sample gradient clipping plus Gaussian noise on "
                       "the trainable (LoRA) parameters; the (epsilon, delta) spent goes into the manifest.")
    noise_multiplier: float | None = _f(None, "Noise standard deviation relative to max_grad_norm (None: chosen "
                                        "to reach target_epsilon).")
    target_epsilon: float = _f(8.0, "Privacy budget epsilon to reach by the end of training (when "
                               "noise_multiplier is None).")
    delta: float = _f(1e-5, "Privacy delta (use less than 1 / number of training rows).")
    max_grad_norm: float = _f(1.0, "Per-sample gradient clipping norm.")


@dataclass(frozen=True)
class SweepConfig:
    trials: int = _f(8, "Number of trials (runs) `tunesmith sweep` tries.")
    metric: str = _f("eval_loss", "Manifest result key the search optimises (needs validation data for eval_loss).")
    direction: Literal["minimize", "maximize"] = _f("minimize", "Whether a smaller or larger metric is better.")
    space: dict[str, str] = _f({}, "Search space: {dotted config key: range}, ranges written as "
                               "'loguniform(1e-5, 1e-3)', 'uniform(a, b)', 'int(a, b)' or 'choice(8, 16, 32)'; "
                               "e.g. {train.learning_rate: 'loguniform(5e-5, 1e-3)', lora.r: 'choice(8, 16)'}.")
    pruner: Literal["median", "none"] = _f("median", "Stop unpromising trials early from their eval losses.")
    timeout_minutes: float | None = _f(None, "Stop starting new trials after this long (None: run all trials).")


@dataclass(frozen=True)
class EvalConfig:
    suite: str | None = _f(None, "Evaluation suite (YAML, see configs/eval/) run after training on the base and the "
                           "tuned model; report.html and report.md land in the run directory. None: no evaluation.")
    limit: int | None = _f(None, "Rows per task, replacing the suite's `limit` (None: the suite's own).")
    threshold: float = _f(REGRESSION_THRESHOLD, "Flag a regression when a metric gets worse than the base by more "
                          "than this fraction of the base value (an absolute amount when the base is 0).")
    samples: int = _f(3, "Sample outputs per task shown side by side in the report.")
    dtype: Literal[EVAL_DTYPES] = _f(
        EVAL_DTYPES[0], "Weights during evaluation: float32 is exact; bfloat16 is ~4x faster on CPUs with bf16 "
        "(AVX512-BF16, AMX) and on GPUs, at bf16's precision.")
    judge: str | None = _f(None, "Judge for `type: judge` tasks: a local model (embedded name, folder, run) or "
                           "URL#model for an OpenAI-compatible endpoint (key from $OPENAI_API_KEY). None: "
                           "smollm2-135m-instruct, which is too small to judge well.")


@dataclass(frozen=True)
class AuditConfig:
    suite: str | None = _f(None, "Safety audit run after training on the base and the tuned model (refusal and "
                           "over-refusal, toxicity, bias, memorization): 'default' for the shipped suite or a suite "
                           "YAML; results join report.html, the manifest and the model card. None: no audit after "
                           "training (`tunesmith audit RUN` runs it at any time).")
    canaries: int = _f(0, "Insert this many random secrets (canaries) into the training rows so the audit can "
                       "measure how far the model memorised them (exposure, Carlini et al. 2019). 0: none.")
    canary_repetitions: list[int] = _f([1, 4, 16], "How many times each canary appears in the training data, "
                                       "cycled over the canaries (the exposure is reported per count).")
    limit: int | None = _f(None, "Prompts per check, replacing the suite's own (None: all).")
    judge: str | None = _f(None, "Also judge refusals with an LLM judge (as eval.judge: a local model or "
                           "URL#model); None: the documented rule set only.")
    threshold: float = _f(REGRESSION_THRESHOLD, "Flag a regression when a safety metric gets worse than the base by "
                          "more than this (an absolute amount: rates are fractions).")


@dataclass(frozen=True)
class EnergyConfig:
    enabled: bool = _f(True, "Measure the energy of training and evaluation with codecarbon's "
                       "OfflineEmissionsTracker (no network); kWh and kg CO2eq go into the manifest, report and card.")
    country: str = _f("USA", "ISO 3166-1 alpha-3 code of the country whose electricity grid powers the machine "
                      "(its carbon intensity turns kWh into CO2eq), e.g. USA, FRA, DEU, GBR.")
    region: str | None = _f(None, "Region inside the country where codecarbon knows one (e.g. a US state, "
                            "'california'); None: the country's average.")


@dataclass(frozen=True)
class RunConfig:
    recipe: Literal["sft", "cpt", "classify", "dpo", "kto", "orpo", "simpo", "reward", "grpo", "ppo", "vlm"] = _f(
        "sft", "What to train: sft (instruction/chat, causal LM; also text -> label with data.task_prompt), cpt "
        "(continued pre-training on raw text), classify (a classification head on text/label rows; use an "
        "encoder such as all-minilm-l6-v2), dpo (preference pairs, trl's DPOTrainer), kto (unpaired "
        "prompt/completion/label rows, trl's KTOTrainer), orpo and simpo (reference-free preference "
        "objectives, trl's ORPOTrainer and CPOTrainer), reward (a reward model on preference pairs, trl's "
        "RewardTrainer), grpo (trl's GRPOTrainer with Python reward functions) or ppo (PPO against a reward "
        "model with a KL penalty to the base) or vlm (vision-language SFT: chat rows with images).")
    preset: str | None = _f(None, "A tuned starting point (tunesmith presets lists them: classify-small, sft-format, "
                            "cpt-domain, dpo-small): its settings apply under this config's own, which win.")
    name: str | None = _f(None, "Run name; the run directory is <output_dir>/<name>. Defaults to the config "
                          "file's stem.")
    output_dir: str = _f("runs", "Folder that holds run directories (relative to the current directory).")
    seed: int = _f(42, "Seed for data shuffling, splits, LoRA init and dropout.")
    overwrite: bool = _f(False, "Replace a finished run of the same name instead of refusing.")
    model: ModelConfig = _f(ModelConfig, "The base model.")
    data: DataConfig = _f(DataConfig, "Training and validation data.")
    lora: LoraConfig = _f(LoraConfig, "LoRA settings (used when train.method is lora).")
    train: TrainConfig = _f(TrainConfig, "Optimisation settings.")
    preference: PreferenceConfig = _f(PreferenceConfig, "DPO, KTO, ORPO and SimPO settings.")
    rl: RLConfig = _f(RLConfig, "GRPO and PPO settings (recipe: grpo or ppo).")
    privacy: PrivacyConfig = _f(PrivacyConfig, "Differential privacy (DP-SGD).")
    sweep: SweepConfig = _f(SweepConfig, "Hyperparameter search for `tunesmith sweep`.")
    eval: EvalConfig = _f(EvalConfig, "Evaluation of the base and the tuned model after training.")
    audit: AuditConfig = _f(AuditConfig, "Safety audit of the base and the tuned model after training, and "
                            "training-data canaries.")
    energy: EnergyConfig = _f(EnergyConfig, "Energy and carbon accounting (codecarbon, offline).")
    moe: MoEConfig = _f(MoEConfig, "LoRA on mixture-of-experts models: expert, router and shared-layer targets.")
    vision: VisionConfig = _f(VisionConfig, "Images in vision-language training data (recipe: vlm).")
    federated: FederatedConfig = _f(FederatedConfig, "Federated fine-tuning on Flower.")
    config_path: str | None = _f(None, "Set by the loader: the YAML file this config came from.")
    auto: dict[str, str] = _f({}, "Set when auto values are resolved: {dotted key: the rule that chose its value}.")


# --------------------------------------------------------------------------- public


def load_config(source: str | Path | dict | None = None, overrides: list[str] | dict | None = None) -> RunConfig:
    """Load a run config from a YAML path (or a dict), apply dotted overrides, validate, freeze.

    Overrides are `section.key=value` strings (YAML values) or a {dotted_key: value} dict.
    Raises TunesmithError listing every problem found.
    """
    file, lines, base_dir = None, {}, Path.cwd()
    if source is None:
        raw = {}
    elif isinstance(source, dict):
        raw = _copy(source)
    else:
        path = Path(source)
        raw, lines = read_yaml(path)
        file, base_dir = str(path), path.resolve().parent
        if not isinstance(raw, dict):
            raise fail("the config must be a mapping of sections", file=file, line=1)
    items = overrides.items() if isinstance(overrides, dict) else [parse_override(o) for o in overrides or []]
    for key, value in items:
        set_dotted(raw, key, value)
        lines.pop(key, None)  # an override has no line in the file
    if raw.get("preset") is not None:  # the preset's settings under the config's own
        from tunesmith.presets import apply

        raw = apply(raw, file, lines.get("preset"))
    errors = Collector(title=f"{file}: invalid config:" if file else "invalid config:")
    cfg = build(RunConfig, raw, "", errors, lines, file)
    if cfg is not None and not errors.problems:
        cfg = _resolve_paths(cfg, base_dir, file)
        cross_check(cfg, errors, lines, file)
    errors.raise_if_any()
    return cfg


def _copy(tree):
    return {k: _copy(v) if isinstance(v, dict) else v for k, v in tree.items()}


def _resolve_paths(cfg: RunConfig, base_dir: Path, file: str | None) -> RunConfig:
    def res(p: str) -> str:
        q = Path(p).expanduser()
        return str(q if q.is_absolute() else (base_dir / q).resolve())

    data = cfg.data
    clean = dataclasses.replace(data.clean, decontaminate=[res(p) for p in data.clean.decontaminate],
                                toxicity_wordlist=res(data.clean.toxicity_wordlist) if data.clean.toxicity_wordlist
                                else None,
                                toxicity_classifier=res(data.clean.toxicity_classifier)
                                if data.clean.toxicity_classifier else None)
    data = dataclasses.replace(data, clean=clean, train=[res(p) for p in data.train],
                               sources=[dataclasses.replace(s, path=res(s.path) if s.path else "")
                                        for s in data.sources],
                               validation=res(data.validation) if data.validation else None)
    name = cfg.name or (Path(file).stem if file else "run")
    ev = dataclasses.replace(cfg.eval, suite=res(cfg.eval.suite) if cfg.eval.suite else None)
    # "default" names the shipped audit suite; anything else is a file beside the config
    audit = cfg.audit.suite
    audit = dataclasses.replace(cfg.audit, suite=res(audit) if audit and audit != "default" else audit)
    return dataclasses.replace(cfg, data=data, name=name, eval=ev, audit=audit,
                               config_path=str(Path(file).resolve()) if file else None)


def to_dict(cfg) -> dict:
    """The resolved config as plain data (what gets written to the run directory)."""
    return dataclasses.asdict(cfg)


def dump_yaml(cfg: RunConfig) -> str:
    """The resolved config as YAML that `load_config` reads back to an equal config.

    `config_path` is the loader's note of where a config came from, not a setting, so it goes into
    a comment instead of a key.
    """
    import yaml

    tree = to_dict(cfg)
    origin = tree.pop("config_path", None)
    header = f"# resolved by tunesmith from {origin}\n" if origin else "# resolved by tunesmith\n"
    return header + yaml.safe_dump(tree, sort_keys=False, allow_unicode=True)


def describe(cls=RunConfig, prefix: str = "") -> list[tuple[str, str, Any, str]]:
    """(dotted key, type, default, help) for every field: the config reference."""
    rows = []
    hints = typing.get_type_hints(cls)
    for f in dataclasses.fields(cls):
        if f.name == "config_path":
            continue
        tp = hints[f.name]
        if dataclasses.is_dataclass(tp):
            rows += describe(tp, f"{prefix}{f.name}.")
            continue
        if typing.get_origin(tp) is list and dataclasses.is_dataclass(typing.get_args(tp)[0]):
            rows.append((prefix + f.name, f"list of {typing.get_args(tp)[0].__name__}", [],
                         f.metadata.get("help", "")))
            rows += describe(typing.get_args(tp)[0], f"{prefix}{f.name}[].")
            continue
        default = f.default if f.default is not dataclasses.MISSING else f.default_factory()
        rows.append((prefix + f.name, type_name(hints[f.name]), default, f.metadata.get("help", "")))
    return rows
