"""Parameter-efficient methods through peft: a dict from method name to a peft config builder.

Every adapter written by these methods loads with plain `peft.PeftModel.from_pretrained`.
"""

from __future__ import annotations

PEFT_METHODS = ("lora", "vera", "ia3", "prompt_tuning", "prefix_tuning", "p_tuning")


def _targets(names: list[str]):
    return "all-linear" if names == ["all-linear"] else names


def _lora(p, task, targets=None):
    from peft import LoraConfig

    # `targets`: (target_modules, target_parameters) found on an MoE model for moe.targets (models/moe.py)
    modules, params = targets if targets else (_targets(p.target_modules), None)
    return LoraConfig(r=p.r, lora_alpha=p.alpha, lora_dropout=p.dropout, task_type=task, target_modules=modules,
                      target_parameters=params, use_rslora=p.use_rslora, use_dora=p.use_dora)


def _vera(p, task):
    from peft import VeraConfig

    # VeRA shares one frozen random pair of matrices across layers, so every target must have the
    # same shape: the attention projections by default, not all-linear.
    targets = ["q_proj", "v_proj"] if p.target_modules == ["all-linear"] else p.target_modules
    return VeraConfig(r=p.r, target_modules=targets, vera_dropout=p.dropout, task_type=task)


def _ia3(p, task):
    from peft import IA3Config

    return IA3Config(task_type=task)  # peft's per-architecture defaults (k, v, down projections)


def _virtual(cls_name):
    def build(p, task):
        import peft

        return getattr(peft, cls_name)(task_type=task, num_virtual_tokens=p.num_virtual_tokens)
    return build


BUILDERS = {"lora": _lora, "vera": _vera, "ia3": _ia3, "prompt_tuning": _virtual("PromptTuningConfig"),
            "prefix_tuning": _virtual("PrefixTuningConfig"), "p_tuning": _virtual("PromptEncoderConfig")}


def peft_config(method: str, p, task: str = "CAUSAL_LM", targets: tuple[list[str], list[str]] | None = None):
    """The peft config for `method` from the LoraConfig section `p` (rank, alpha, targets, ...);
    `targets` (lora only) replaces p.target_modules with (target_modules, target_parameters)."""
    return BUILDERS[method](p, task, targets) if targets else BUILDERS[method](p, task)


def apply(model, method: str, p, task: str = "CAUSAL_LM", moe_targets: list[str] = ()):
    """`model` with `method`'s adapters; `moe_targets` (moe.targets, lora only) picks the experts,
    router, shared expert and/or attention of a mixture-of-experts model instead of p.target_modules."""
    from peft import get_peft_model

    targets = None
    if moe_targets:
        from tunesmith.models import moe

        targets = moe.lora_targets(model, list(moe_targets), p.target_modules)
    return get_peft_model(model, peft_config(method, p, task, targets))


def keep_autocast_inputs(model) -> int:
    """Stop peft from casting each adapter's input to the adapter's fp32 dtype. Under bf16 autocast
    the adapter matmuls run in bf16 anyway (autocast casts the input back), so the casts were two
    activation-sized copies per adapted layer and per pass and changed no value (measured: copy_ was
    21% of a bf16 LoRA step's CPU time on SmolLM2). Only for autocast training, never under DP-SGD,
    whose per-sample gradients are computed from these inputs. Returns how many layers changed."""
    from peft.tuners.tuners_utils import BaseTunerLayer

    layers = [m for m in model.modules() if isinstance(m, BaseTunerLayer)]
    for m in layers:
        m.cast_input_dtype_enabled = False
    return len(layers)


def freeze(model, patterns: list[str]) -> int:
    """Full fine-tuning with some weights frozen: parameters whose name contains any pattern stop
    training (e.g. 'embed_tokens', 'layers.0.'). Returns how many tensors were frozen."""
    n = 0
    for name, param in model.named_parameters():
        if any(pat in name for pat in patterns):
            param.requires_grad_(False)
            n += 1
    return n


def loraplus_optimizer(model, lr: float, ratio: float, weight_decay: float):
    """LoRA+: the B matrices learn `ratio` times faster than A (peft's create_loraplus_optimizer)."""
    import torch
    from peft.optimizers import create_loraplus_optimizer

    return create_loraplus_optimizer(model=model, optimizer_cls=torch.optim.AdamW, lr=lr, loraplus_lr_ratio=ratio,
                                     weight_decay=weight_decay)
