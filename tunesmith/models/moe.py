"""LoRA on mixture-of-experts models (Mixtral, Qwen-MoE, OLMoE): what `moe.targets` adapts, and the
router load-balancing loss in training.

In transformers 5 the experts of a layer are not nn.Linear modules: MixtralExperts (and Qwen2-MoE's
and OLMoE's) holds two fused 3-D parameters, gate_up_proj (experts x 2*intermediate x hidden) and
down_proj (experts x hidden x intermediate), and the router is a TopKRouter holding one `weight`
(experts x hidden) that it applies with F.linear. peft adapts such tensors through
LoraConfig(target_parameters=[...]): lora.ParamWrapper gives every expert its own rank-r pair and,
while the wrapped module runs, swaps in W + scale * B @ A through torch's parametrize. Plain
nn.Linear layers (attention, Qwen-MoE's shared expert) go through target_modules as usual. Both
lists are found on the loaded model by module names (moe.yaml), not per model name, and the
adapter saves and reloads with plain `peft.PeftModel.from_pretrained`.

peft's ParamWrapper has no dropout and no DoRA (lora_dropout must be 0); config_checks.check_moe
says so before a run starts.
"""

from __future__ import annotations

import re
from functools import cache
from pathlib import Path

from tunesmith.errors import fail

TARGETS = ("experts", "router", "shared", "attention")
TENSOR_TARGETS = ("experts", "router")  # adapted as parameters (peft ParamWrapper): no dropout, no DoRA


@cache
def _table() -> dict:
    import yaml

    return yaml.safe_load(Path(__file__).with_name("moe.yaml").read_text(encoding="utf-8"))


def _text_config(config):
    return config.get_text_config(decoder=True) if hasattr(config, "get_text_config") else config


def _first(config, keys: list[str]):
    text = _text_config(config)
    for key in keys:
        value = getattr(text, key, None)
        if isinstance(value, int) and not isinstance(value, bool):
            return value
    return None


def expert_count(config) -> int:
    """Routed experts per MoE layer from a transformers config (0 for a dense model)."""
    return _first(config, _table()["expert_count"]) or 0


def is_moe(config) -> bool:
    return expert_count(config) > 1


def require_moe(config, value, key: str = "moe.targets") -> None:
    """Refuse an moe.* setting (`key` set to `value`) on a dense model, from its transformers config
    before weights load: on a dense model it would do nothing."""
    if not is_moe(config):
        keys = ", ".join(_table()["expert_count"])
        arch = ", ".join(getattr(config, "architectures", None) or [type(config).__name__])
        instead = " (use lora.target_modules)" if key == "moe.targets" else ""
        raise fail(f"{key} is {value} but {arch} is not a mixture-of-experts model (its config has none "
                   f"of {keys} above 1)", f"remove {key}{instead}, or set model.name to an MoE model (Mixtral, "
                   "Qwen-MoE, OLMoE)", field=key)


# --------------------------------------------------------------------------- LoRA targets


def find_parts(model) -> dict[str, list[str]]:
    """Full module names of each target part: {experts|router|shared|attention: [names]}."""
    table = _table()
    parts: dict[str, list[str]] = {t: [] for t in TARGETS}
    for name, module in model.named_modules():
        children = [c for c, _ in module.named_children()]
        if any(c in table["experts"] for c in children):  # an MoE block: its experts, router and shared expert
            for child in children:
                for part in ("experts", "router", "shared"):
                    if child in table[part]:
                        parts[part].append(f"{name}.{child}" if name else child)
        if name.rpartition(".")[2] in table["attention"]:
            parts["attention"].append(name)
    return parts


def _weights(model, module_names: list[str]) -> tuple[set[str], set[str]]:
    """(nn.Linear module names, parameter names) inside the given modules: Linears go to peft's
    target_modules; the 2-D and 3-D tensors of other modules (fused experts, a custom router) to its
    target_parameters. 1-D tensors (norms, biases) are never adapted."""
    import torch

    linears, params = set(), set()
    for top in module_names:
        for sub, module in model.get_submodule(top).named_modules():
            full = f"{top}.{sub}" if sub else top
            if isinstance(module, torch.nn.Linear):  # bitsandbytes' 4/8-bit layers are Linears too
                linears.add(full)
                continue
            for pname, p in module.named_parameters(recurse=False):
                if p.ndim in (2, 3):
                    params.add(f"{full}.{pname}")
    return linears, params


_LAYER_PREFIX = re.compile(r"^.*?\.\d+\.")  # "model.layers.3.mlp.experts.down_proj" -> "mlp.experts.down_proj"


def _short(names: set[str], universe: list[str]) -> list[str]:
    """The names as per-layer suffixes (peft matches a target by suffix), so the adapter config lists
    a few names rather than one per layer; the full names if a suffix would also match a weight that
    was not chosen (e.g. a vision tower's attention)."""
    suffixes = sorted({_LAYER_PREFIX.sub("", n) for n in names})
    caught = {u for u in universe for s in suffixes if u == s or u.endswith("." + s)}
    return suffixes if caught <= names else sorted(names)


def lora_targets(model, targets: list[str], extra_modules: list[str]) -> tuple[list[str], list[str]]:
    """(target_modules, target_parameters) for peft's LoraConfig from `moe.targets`, found on the
    loaded `model`. `extra_modules` (lora.target_modules) are added as given unless they are the
    default ['all-linear']."""
    arch = type(model).__name__
    require_moe(model.config, targets)
    parts = find_parts(model)
    missing = [t for t in targets if not parts[t]]
    if missing:
        have = [t for t in TARGETS if parts[t]]
        raise fail(f"{arch} has no {' or '.join(missing)} part for moe.targets {targets}",
                   f"remove {missing} from moe.targets; this model has {have}", field="moe.targets")
    linears, params = set(), set()
    for t in dict.fromkeys(targets):
        m, p = _weights(model, parts[t])
        linears |= m
        params |= p
    modules = _short(linears, [n for n, _ in model.named_modules()])
    if extra_modules != ["all-linear"]:
        modules += [m for m in extra_modules if m not in modules]
    return modules, _short(params, [n for n, _ in model.named_parameters()])


# --------------------------------------------------------------------------- router load-balancing loss


def router_aux(model, coef: float | None) -> dict | None:
    """The router load-balancing loss settings for training `model` (None for a dense model, or an
    MoE whose forward returns no aux_loss): experts, experts per token, the coefficient and where it
    came from (moe.router_aux_loss_coef, else the model's config), for the manifest."""
    config = model.config
    if not is_moe(config) or not hasattr(_text_config(config), "output_router_logits"):
        return None
    own = getattr(_text_config(config), "router_aux_loss_coef", None)
    value = own if coef is None else coef
    return {"experts": expert_count(config), "experts_per_token": _first(config, _table()["experts_per_token"]),
            "router_aux_loss_coef": float(value or 0.0),
            "router_aux_loss_coef_from": "the model's config" if coef is None else "moe.router_aux_loss_coef"}


def aux_loss_trainer(base_cls, coef: float):
    """`base_cls` (transformers' Trainer or a subclass) adding `coef` x the router load-balancing loss
    to each training step's loss, and logging its mean over the logging window as `aux_loss`.

    Why not leave it to the model: transformers' MoE models add coef x aux_loss to each micro-batch's
    loss, and when that loss is normalised over the accumulated batch (num_items_in_batch) the Trainer
    no longer divides it by the accumulation steps, so the aux term weighed grad_accum x coef. It
    would also sit in eval_loss and so in the reported perplexity. Here the model's own coefficient
    is set to 0 and the term is added once per optimizer step on average, in training only."""

    class RouterAuxTrainer(base_cls):
        def __init__(self, *args, **kwargs):
            super().__init__(*args, **kwargs)
            base = self.model.get_base_model() if hasattr(self.model, "get_base_model") else self.model
            base.router_aux_loss_coef = 0.0  # the causal LM's own term (read in its forward) is off
            self.aux_coef = coef
            self._aux_sum, self._aux_n = None, 0

        def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
            if not model.training or "labels" not in inputs:
                return super().compute_loss(model, inputs, return_outputs, num_items_in_batch)
            # Asked per training forward rather than set in the config: a saved full model keeps the
            # base's config.json, and evaluation and generation never compute router statistics.
            inputs = {**inputs, "output_router_logits": True}
            loss, outputs = super().compute_loss(model, inputs, True, num_items_in_batch)
            aux = outputs.get("aux_loss") if isinstance(outputs, dict) else None
            if aux is not None:
                # The Trainer's own rule (Trainer.training_step) for whether it divides this loss by
                # the accumulation steps; when it does not, the aux term is divided here.
                scaled = self.loss_is_scaled_for_ga
                if scaled is None:
                    scaled = (self.model_accepts_loss_kwargs and num_items_in_batch is not None) or bool(
                        self.compute_loss_func)
                steps = self.current_gradient_accumulation_steps if scaled else 1
                loss = loss + self.aux_coef * aux.to(loss.device) / steps
                value = aux.detach().float()
                self._aux_sum = value if self._aux_sum is None else self._aux_sum + value
                self._aux_n += 1
            return (loss, outputs) if return_outputs else loss

        def log(self, logs, start_time=None):
            if "loss" in logs and self._aux_n:  # a training log: the mean over its window (this process)
                logs["aux_loss"] = round(float(self._aux_sum) / self._aux_n, 6)
                self._aux_sum, self._aux_n = None, 0
            super().log(logs, start_time)

    return RouterAuxTrainer


def adapted(model) -> dict:
    """What peft adapts in `model` (a PeftModel with LoRA), for the manifest; {} otherwise."""
    config = getattr(model, "peft_config", {}).get("default")
    if config is None or not hasattr(config, "target_parameters"):
        return {}
    modules = config.target_modules
    return {"target_modules": sorted(modules) if isinstance(modules, (set, list)) else modules,
            "target_parameters": list(config.target_parameters or [])}
