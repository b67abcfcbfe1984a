"""One federated client's work in a round, and the model both sides hold.

The client sets the global adapter it was sent, takes federated.local_steps optimizer steps on its
own rows, and returns the new adapter with its row count (FedAvg's weight). The pieces are the sft
recipe's (prepared rows, PadCollator, the label-only LM head, peft LoRA) and, with privacy.enabled,
the DP recipe's (opacus's per-sample clipping and noise, recipes/dp.py). The loop is plain PyTorch,
as in recipes/dp.py: FedProx adds a term on the weights themselves to every step's loss, and the
learning rate follows one schedule over all rounds (rounds x local_steps steps, as a centralised run
of the same length would), neither of which transformers' Trainer takes without patching it.

A process keeps the loaded model and each client's tokenized rows between rounds (Flower's Ray
workers live through the whole simulation), so a round costs only its training steps.
"""

from __future__ import annotations

import math
import os
import time
import warnings
from dataclasses import dataclass, replace

from tunesmith.recipes import common

# Set by the runner before Flower starts Ray: the driver's own OMP_NUM_THREADS ("" when it had none).
DRIVER_OMP = "TUNESMITH_DRIVER_OMP_NUM_THREADS"
_CACHE: dict = {}  # per process: (config key) -> Held, ("rows", key, client) -> tokenized rows


@dataclass
class Held:
    """The base model with a LoRA adapter, its tokenizer and where it runs; `initial` is the adapter
    as peft initialised it from cfg.seed (the model's own adapter changes every round)."""

    model: object
    tokenizer: object
    device: object
    precision: str
    initial: dict


def _key(cfg) -> tuple:
    # Everything the held model and tokenizer depend on (the whole model section: chat template, rope,
    # attention, ...), so a second config in the same process never reuses the first one's.
    return (repr(cfg.model), repr(cfg.lora), cfg.train.precision, cfg.seed, cfg.data.max_length)


def _rows_key(cfg, client: int, data_file: str | None) -> tuple:
    # The rows also depend on the data section and on how it is dealt to the clients.
    f = cfg.federated
    return ("rows", _key(cfg), repr(cfg.data), f.partition, f.num_clients, client, data_file)


def held(cfg) -> Held:
    """The model for `cfg`, loaded once per process. The adapter is peft's LoRA, initialised from
    cfg.seed: the server sends that initial adapter in round 1, and every client overwrites its own."""
    if _key(cfg) in _CACHE:
        return _CACHE[_key(cfg)]
    import torch

    from tunesmith.hardware import training_attention
    from tunesmith.models import adapters
    from tunesmith.models.loading import load_model, load_tokenizer
    from tunesmith.models.quant import quiet_bitsandbytes

    quiet_bitsandbytes()  # peft imports bitsandbytes when installed: drop its hint about a kernel we never use
    if os.environ.get(DRIVER_OMP) == "":
        # A Ray worker of our simulation, whose OMP_NUM_THREADS Ray set to its CPU share: dropped, so
        # train.threads (auto: the free cores, re-measured every step) decides, as in a local run. A fixed
        # count spinning beside Ray's own start-up processes ran the first rounds up to 25x slower here.
        os.environ.pop("OMP_NUM_THREADS", None)
    s = common.setup(cfg)
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    tokenizer = load_tokenizer(s.source, cfg.model.chat_template, cfg.model.trust_remote_code)
    # As in sft.py: LoRA never updates the base, so under bf16 the base is stored in bf16.
    model = load_model(s.source, cfg.model.trust_remote_code, dtype=common.base_dtype(s.precision, "lora"),
                       attention=training_attention(cfg.model.attention, cfg.data.max_length, s.precision[0]),
                       rope=common.rope(cfg))
    model.config.use_cache = False
    model = adapters.apply(model.to(device), "lora", cfg.lora)
    _CACHE[_key(cfg)] = Held(model, tokenizer, device, s.precision[0], get_adapter(model))
    return _CACHE[_key(cfg)]


def get_adapter(model) -> dict:
    """The adapter's weights as {peft state-dict key: float32 numpy array}: what travels."""
    from peft import get_peft_model_state_dict

    # A copy: for fp32 CPU weights .numpy() shares the parameter's memory, which the next step changes.
    return {k: v.detach().float().cpu().numpy().copy() for k, v in get_peft_model_state_dict(model).items()}


def set_adapter(model, arrays: dict) -> None:
    """Load {key: array} (get_adapter's keys) into the model's adapter; every key must land."""
    import torch
    from peft import set_peft_model_state_dict

    result = set_peft_model_state_dict(model, {k: torch.from_numpy(v.copy()) for k, v in arrays.items()})
    unexpected = getattr(result, "unexpected_keys", [])
    if unexpected:
        raise ValueError(f"adapter keys the model does not have: {unexpected[:3]}")


def client_rows(cfg, tokenizer, client: int, data_file: str | None = None) -> list:
    """Client `client`'s tokenized training rows: its own file (`data_file`, a real SuperNode's data)
    or its part of data.train (federated.partition), validation rows left out. Kept per process."""
    key = _rows_key(cfg, client, data_file)
    if key in _CACHE:
        return _CACHE[key]
    from tunesmith.data.prepare import Loaded, load_all, prepare
    from tunesmith.federated.partition import client_rows as deal

    kinds = common.kinds(cfg)
    if data_file:
        data = replace(cfg.data, train=[data_file], sources=[], validation=None, validation_fraction=0.0)
        rows = prepare(data, tokenizer, cfg.seed, kinds).train
    else:
        loaded = load_all(cfg.data, cfg.seed)
        mine = deal(loaded.train, cfg.federated, cfg.data.train, cfg.seed)[client]
        rows = prepare(cfg.data, tokenizer, cfg.seed, kinds, loaded=Loaded(mine, [], loaded.info)).train
    _CACHE[key] = as_dicts(rows)
    return _CACHE[key]


def as_dicts(rows: list) -> list[dict]:
    """Tokenized rows as the collator takes them."""
    return [{"input_ids": r.input_ids, "labels": r.labels} for r in rows]


def learning_rates(cfg, server_round: int) -> list[float]:
    """The learning rate of each of this round's local steps: train.lr_scheduler (with warm-up) over
    all rounds x local_steps steps, so round r continues where round r-1 stopped."""
    import torch
    from transformers import get_scheduler

    f, t = cfg.federated, cfg.train
    total = f.rounds * f.local_steps
    dummy = torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=t.learning_rate)
    factor = get_scheduler(t.lr_scheduler, optimizer=dummy, num_warmup_steps=math.ceil(t.warmup_ratio * total),
                           num_training_steps=total).lr_lambdas[0]
    start = (server_round - 1) * f.local_steps
    return [t.learning_rate * factor(start + i) for i in range(f.local_steps)]


def _batches(loader):
    while True:  # epochs without end; a fresh shuffle (or Poisson draw) each pass
        yield from loader


def train_round(cfg, h: Held, rows: list, global_adapter: dict, *, server_round: int, client: int,
                proximal_mu: float = 0.0, dp_steps_before: int = 0) -> tuple[dict, dict]:
    """Set `global_adapter`, train local_steps on `rows`; returns (new adapter, metrics). The
    metrics hold num-examples (len(rows), FedAvg's weight), train-loss, tokens and seconds, and
    with privacy.enabled the epsilon this client has spent over all its rounds so far."""
    import torch

    set_adapter(h.model, global_adapter)
    h.model.train()
    t0 = time.time()
    lrs = learning_rates(cfg, server_round)
    seed = cfg.seed * 1_000_003 + server_round * 1009 + client  # each client and round draws its own batches
    torch.manual_seed(seed)  # LoRA dropout: the same run gives the same adapters
    if cfg.privacy.enabled:
        losses, tokens, extra = _private_steps(cfg, h, rows, lrs, seed, dp_steps_before)
    else:
        losses, tokens = _steps(cfg, h, rows, lrs, seed, proximal_mu)
        extra = {}
    h.model.eval()
    metrics = {"num-examples": len(rows), "train-loss": sum(losses) / len(losses) if losses else float("nan"),
               "tokens": tokens, "seconds": round(time.time() - t0, 2), "client": client, **extra}
    return get_adapter(h.model), metrics


def _loss(h: Held, batch: dict):
    """The mean next-token loss over the batch's labelled tokens (label-only head where it applies)."""
    causal = common.label_head_model(h.model)
    return common.label_head_loss(causal, batch) if causal is not None else h.model(**batch).loss


def _steps(cfg, h: Held, rows: list, lrs: list[float], seed: int, mu: float) -> tuple[list[float], int]:
    """Plain local steps (with FedProx's proximal term when mu > 0)."""
    import torch
    from torch.utils.data import DataLoader

    from tunesmith.hardware import recheck_threads

    t = cfg.train
    params = [p for p in h.model.parameters() if p.requires_grad]
    anchor = [p.detach().clone() for p in params] if mu > 0 else []  # w_global: what the server sent
    optimizer = torch.optim.AdamW(params, lr=lrs[0], weight_decay=t.weight_decay)
    loader = DataLoader(rows, batch_size=t.batch_size, shuffle=True, collate_fn=_collate(h),
                        generator=torch.Generator().manual_seed(seed))
    batches, losses, tokens = _batches(loader), [], 0
    for lr in lrs:
        recheck_threads()  # a shared CPU: follow the other processes' load, as the sft recipe does
        for group in optimizer.param_groups:
            group["lr"] = lr
        step_loss = 0.0
        for _ in range(t.grad_accum):
            batch = {k: v.to(h.device) for k, v in next(batches).items()}
            with torch.autocast(h.device.type, dtype=torch.bfloat16, enabled=h.precision == "bf16"):
                loss = _loss(h, batch)
            (loss / t.grad_accum).backward()
            step_loss += float(loss.detach()) / t.grad_accum
            tokens += int(batch["attention_mask"].sum())
        if mu > 0:  # FedProx (Li et al. 2018): mu/2 ||w - w_global||^2 keeps non-IID clients near the global model
            (mu / 2 * sum(((p - a) ** 2).sum() for p, a in zip(params, anchor))).backward()
        if t.max_grad_norm > 0:
            torch.nn.utils.clip_grad_norm_(params, t.max_grad_norm)
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        losses.append(step_loss)
    return losses, tokens


def _collate(h: Held):
    from tunesmith.recipes.common import PadCollator

    return PadCollator(h.tokenizer.pad_token_id)


def _private_steps(cfg, h: Held, rows: list, lrs: list[float], seed: int, steps_before: int):
    """DP-SGD local steps through opacus (recipes/dp.py's make_private and per-example loss).

    The noise is set so that rounds x local_steps steps spend privacy.target_epsilon, counting every
    round as one this client trains in (an upper bound when federated.fraction_fit < 1). The epsilon
    reported is what the steps taken so far have spent, from the same RDP accountant."""
    import torch
    from opacus.accountants import RDPAccountant
    from torch.utils.data import DataLoader

    from tunesmith.recipes import dp

    t, pv, f = cfg.train, cfg.privacy, cfg.federated
    dp.check_supported(h.model)
    params = [p for p in h.model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(params, lr=lrs[0], weight_decay=t.weight_decay)
    loader = DataLoader(rows, batch_size=t.batch_size * t.grad_accum, collate_fn=_collate(h))
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="Secure RNG turned off")
        _, hooks, dp_opt, dp_loader, noise = dp.make_private(
            h.model, optimizer, loader, noise_multiplier=pv.noise_multiplier, target_epsilon=pv.target_epsilon,
            delta=pv.delta, max_grad_norm=pv.max_grad_norm, steps=f.rounds * f.local_steps,
            noise_generator=torch.Generator(h.device).manual_seed(seed))
    batches, losses, tokens = _batches(dp_loader), [], 0
    try:
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message="Full backward hook is firing")
            for lr in lrs:
                for group in dp_opt.original_optimizer.param_groups:
                    group["lr"] = lr
                batch = next(batches)
                if len(batch["input_ids"]) == 0:  # Poisson drew nobody: the step is still taken (noise only)
                    for p in params:
                        p.grad_sample = torch.zeros((0, *p.shape), dtype=p.dtype, device=p.device)
                else:
                    batch = {k: v.to(h.device) for k, v in batch.items()}
                    logits = h.model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits
                    per_example = dp.example_losses(logits, batch["labels"])
                    per_example.mean().backward()
                    losses.append(float(per_example.detach().mean()))
                    tokens += int(batch["attention_mask"].sum())
                dp_opt.step()
                dp_opt.zero_grad(set_to_none=True)
    finally:
        hooks.cleanup()  # the model is kept for the next round: back to a plain peft model
    accountant = RDPAccountant()
    accountant.history = [(noise, 1 / len(loader), steps_before + len(lrs))]
    epsilon = accountant.get_epsilon(pv.delta) if noise > 0 else math.inf
    return losses, tokens, {"epsilon": epsilon if math.isfinite(epsilon) else -1.0, "noise-multiplier": noise,
                            "dp-steps": steps_before + len(lrs)}


def evaluate(h: Held, rows: list, batch_size: int) -> float:
    """Token-weighted mean loss of the current adapter on `rows` (the sft recipe's eval_loss)."""
    from torch.utils.data import DataLoader

    from tunesmith.recipes.dp import evaluate as token_weighted

    return token_weighted(h.model, DataLoader(rows, batch_size=batch_size, collate_fn=_collate(h)), h.device)
