"""PPO (recipe: ppo) against a reward model, with a KL penalty to the base.

trl 1.16 ships no PPOTrainer (neither in trl.trainer nor trl.experimental), so the loop is here,
readable top to bottom. Each step is a rollout and an update:
- rollout: sample one completion per prompt, score it with the reward model, subtract a per-token
  KL penalty to the reference (the same model, adapter disabled), and estimate advantages with GAE
  against a value head on the policy's last hidden states;
- update: rl.ppo_epochs clipped-surrogate passes over the batch.
The loss maths lives in ppo_math.py, checked against trl's GRPO loss and against direct loops.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass
from pathlib import Path

from tunesmith import runs
from tunesmith.errors import fail
from tunesmith.recipes import common, prompts, rewards
from tunesmith.recipes.ppo_math import (
    GAE_GAMMA,
    GAE_LAMBDA,
    VALUE_CLIP,
    VALUE_COEF,
    completion_mask,
    gae,
    masked_whiten,
    policy_loss,
    value_loss,
)


def run(cfg, show_progress: bool = True, callbacks: tuple = ()) -> Path:
    """Train with PPO against rl.reward_model according to `cfg` (recipe: ppo); returns the run directory."""
    if callbacks:
        raise fail("PPO runs its own loop, so transformers TrainerCallbacks cannot attach to it",
                   "run without callbacks (metrics.jsonl has every logged step)")
    rewards.check(cfg)
    import torch
    from safetensors.torch import save_file
    from tqdm.auto import tqdm
    from transformers import get_scheduler

    from tunesmith.data.templates import require_template
    from tunesmith.hardware import recheck_threads
    from tunesmith.models.loading import load_tokenizer

    # --- setup
    reward_path = rewards.resolve_reward_model(cfg.rl.reward_model, cfg.config_path)
    s = common.setup(cfg)
    tokenizer = load_tokenizer(s.source, cfg.model.chat_template, cfg.model.trust_remote_code)
    require_template(tokenizer)

    # --- data and the reward model
    rows, _, report = prompts.load(cfg, tokenizer)
    reward_model, reward_tokenizer = rewards.load_reward_model(reward_path)
    run = runs.start(cfg, source=s.source, precision=s.precision, tokenizer=tokenizer, data_report=report,
                     reward_model=str(reward_path))  # no checkpoints: never a resume
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    amp = dict(device_type=device.type, dtype=torch.bfloat16, enabled=s.precision[0] == "bf16")

    # --- model: policy = base + adapter; reference = the same with the adapter disabled
    policy, value_head, base_dtype = _policy(cfg, s, device)
    reward_model.to(device)
    params = [p for p in policy.parameters() if p.requires_grad] + list(value_head.parameters())
    t, r = cfg.train, cfg.rl
    n_rollout = t.batch_size * t.grad_accum  # prompts per step, one completion each
    steps = t.max_steps if t.max_steps > 0 else max(1, math.ceil(t.epochs * len(rows) / n_rollout))
    optimizer = torch.optim.AdamW(params, lr=t.learning_rate, weight_decay=t.weight_decay)
    updates = steps * r.ppo_epochs
    scheduler = get_scheduler(t.lr_scheduler, optimizer, num_warmup_steps=math.ceil(t.warmup_ratio * updates),
                              num_training_steps=updates)
    generation, stop_ids = _generation(policy, tokenizer, r)
    run.manifest["parameters"] = {"trainable": sum(p.numel() for p in params),
                                  "total": sum(p.numel() for p in policy.parameters()) + value_head.weight.numel() + 1}
    run.manifest["model"].update(base_dtype=base_dtype)
    run.record(ppo={"rollout_prompts": n_rollout, "steps": steps, "gae_gamma": GAE_GAMMA, "gae_lambda": GAE_LAMBDA,
                    "value_clip": VALUE_CLIP, "value_coef": VALUE_COEF, "device": str(device)})

    # --- train
    order = torch.Generator().manual_seed(cfg.seed)
    queue: list[int] = []
    bar = tqdm(total=steps, desc="ppo", unit="step", disable=not show_progress, dynamic_ncols=True)
    history, tokens, t0 = [], 0, time.time()
    for step in range(1, steps + 1):
        while len(queue) < n_rollout:  # shuffled passes over the prompts
            queue += torch.randperm(len(rows), generator=order).tolist()
        batch, queue = [rows[i]["prompt"] for i in queue[:n_rollout]], queue[n_rollout:]
        ro = rollout(policy, value_head, tokenizer, batch, generation, stop_ids, reward_model, reward_tokenizer,
                     batch_size=t.batch_size, temperature=r.temperature, kl_coef=r.kl_coef, amp=amp, device=device)
        losses = update(policy, value_head, ro, optimizer, scheduler, params, order, epochs=r.ppo_epochs,
                        batch_size=t.batch_size, temperature=r.temperature, clip=r.clip_range,
                        max_grad_norm=t.max_grad_norm, amp=amp, device=device)
        tokens += int(ro.attention.sum())  # prompt + completion tokens, as transformers counts them
        row = {"step": step, "score": ro.scores.mean().item(), "kl": ro.kl.sum(1).mean().item(), **losses,
               "completion_length": ro.mask.sum(1).float().mean().item(),
               "learning_rate": scheduler.get_last_lr()[0]}
        history.append(row)
        if step == 1 or step % t.logging_steps == 0 or step == steps:
            runs.append_metrics(run.dir, {**row, "tokens_seen": tokens,
                                          "tokens_per_s": round(tokens / (time.time() - t0), 1)})
        recheck_threads()
        bar.update(1)
        bar.set_postfix({"score": f"{row['score']:.3g}", "kl": f"{row['kl']:.3g}"}, refresh=False)
    bar.close()

    # --- save: the adapter (plain peft) and the value head beside it
    out = run.dir / "adapter"
    runs.save_trained(None, policy, tokenizer, out)
    if runs.is_main_process():
        save_file(value_head.state_dict(), str(run.dir / "value_head.safetensors"))
    final = {"steps": steps, **common.throughput(tokens, time.time() - t0), "score_first": history[0]["score"],
             "score_last": history[-1]["score"], "kl_last": history[-1]["kl"],
             "policy_loss_last": history[-1]["policy_loss"], "value_loss_last": history[-1]["value_loss"]}
    run.complete(final, out, value_head="value_head.safetensors")
    return run.dir


@dataclass
class Rollout:
    """One batch of sampled completions and everything the update compares against."""

    sequences: object  # (B, prompt + T) token ids, prompts left-padded
    attention: object  # (B, prompt + T) 1 on real prompt and completion tokens
    mask: object  # (B, T) 1 on completion tokens up to and including the first stop
    old_logp: object  # (B, T) log-probs under the sampling policy
    old_values: object  # (B, T) the value head's estimates at sampling time
    advantages: object  # (B, T) whitened GAE advantages
    returns: object  # (B, T) value targets
    scores: object  # (B,) the reward model's scores
    kl: object  # (B, T) per-token log-ratio to the reference, masked


def rollout(policy, value_head, tokenizer, batch: list[list[dict]], generation, stop_ids: list[int], reward_model,
            reward_tokenizer, *, batch_size: int, temperature: float, kl_coef: float, amp: dict, device) -> Rollout:
    """Sample one completion per prompt, score it, and fix what the loss compares against."""
    import torch

    policy.eval()
    encoded = tokenizer.pad({"input_ids": prompts.encode_prompts(tokenizer, batch)}, padding_side="left",
                            return_tensors="pt").to(device)
    n = len(batch)
    with torch.no_grad(), torch.autocast(**amp):
        sequences = policy.generate(**encoded, generation_config=generation)
        completion_ids = sequences[:, encoded["input_ids"].shape[1]:]
        mask = completion_mask(completion_ids, stop_ids)
        attention = torch.cat([encoded["attention_mask"], mask], dim=1)
        T = completion_ids.shape[1]
        old_logp, old_values, ref_logp = [], [], []
        for i in range(0, n, batch_size):  # forward passes of batch_size rows
            rows = slice(i, i + batch_size)
            lp, v = token_logprobs(policy, sequences[rows], attention[rows], T, temperature, value_head)
            with policy.disable_adapter():
                ref, _ = token_logprobs(policy, sequences[rows], attention[rows], T, temperature)
            old_logp.append(lp)
            old_values.append(v)
            ref_logp.append(ref)
        old_logp, old_values, ref_logp = torch.cat(old_logp), torch.cat(old_values), torch.cat(ref_logp)
        texts = [tokenizer.decode(ids[m.bool()], skip_special_tokens=True).strip()
                 for ids, m in zip(completion_ids, mask)]
        scores = rewards.score(reward_model, reward_tokenizer, batch, texts, device)
        # Per-token reward: the KL penalty everywhere, the reward model's score on the last token.
        kl = (old_logp - ref_logp) * mask
        token_rewards = -kl_coef * kl
        token_rewards[torch.arange(n, device=device), mask.sum(1) - 1] += scores
        advantages, returns = gae(token_rewards, old_values, mask)
        advantages = masked_whiten(advantages, mask)
    return Rollout(sequences, attention, mask, old_logp, old_values, advantages, returns, scores, kl)


def update(policy, value_head, ro: Rollout, optimizer, scheduler, params: list, order, *, epochs: int,
           batch_size: int, temperature: float, clip: float, max_grad_norm: float, amp: dict, device) -> dict:
    """`epochs` passes over the rollout, each one optimizer step over micro-batches of batch_size
    rows; returns the mean policy loss, value loss and clipped fraction."""
    import torch

    policy.train()
    n, T = len(ro.sequences), ro.mask.shape[1]
    pg_losses, v_losses, clipfracs = [], [], []
    for _ in range(epochs):
        optimizer.zero_grad(set_to_none=True)
        for rows in torch.randperm(n, generator=order).split(batch_size):
            rows = rows.to(device)
            with torch.autocast(**amp):
                logp, values = token_logprobs(policy, ro.sequences[rows], ro.attention[rows], T, temperature,
                                              value_head)
            pg, clipfrac = policy_loss(logp, ro.old_logp[rows], ro.advantages[rows], ro.mask[rows], clip)
            vf = value_loss(values, ro.old_values[rows], ro.returns[rows], ro.mask[rows])
            # Each micro-batch's mean weighs by its share of the rollout, so the accumulated
            # gradient is that of the whole batch.
            ((pg + VALUE_COEF * vf) * len(rows) / n).backward()
            pg_losses.append(pg.item())
            v_losses.append(vf.item())
            clipfracs.append(clipfrac.item())
        if max_grad_norm:
            torch.nn.utils.clip_grad_norm_(params, max_grad_norm)
        optimizer.step()
        scheduler.step()
    return {"policy_loss": sum(pg_losses) / len(pg_losses), "value_loss": sum(v_losses) / len(v_losses),
            "clipfrac": sum(clipfracs) / len(clipfracs)}


def token_logprobs(model, input_ids, attention_mask, completion_len: int, temperature: float, value_head=None):
    """Log-probabilities of the last `completion_len` tokens under `model` at `temperature` (the
    sampling distribution), and the value head's estimate for the state before each of them.

    Positions come from the attention mask, as generate() computes them for left-padded prompts,
    so these log-probs are those of the distribution the tokens were sampled from (RoPE models do
    not notice the shift that left padding causes; models with absolute positions would).
    """
    import torch
    from trl.trainer.utils import selective_log_softmax

    position_ids = (attention_mask.cumsum(-1) - 1).clamp(min=0)
    out = model(input_ids=input_ids, attention_mask=attention_mask, position_ids=position_ids, use_cache=False,
                logits_to_keep=completion_len + 1, output_hidden_states=value_head is not None)
    # The logit at position i predicts token i + 1: the kept window starts at the last prompt token.
    logits = out.logits[:, :-1].float()
    logp = selective_log_softmax(logits, input_ids[:, -completion_len:], temperature=temperature)
    if value_head is None:
        return logp, None
    hidden = out.hidden_states[-1][:, -completion_len - 1:-1]
    with torch.autocast(hidden.device.type, enabled=False):  # the head stays fp32 under bf16 autocast
        values = value_head(hidden.float()).squeeze(-1)
    return logp, values


def _policy(cfg, s: common.Setup, device):
    """(policy = base + adapter with dropout off, a zero-initialised value head, the base's dtype)."""
    import torch
    from trl.trainer.utils import disable_dropout_in_model

    from tunesmith.hardware import training_attention
    from tunesmith.models import adapters
    from tunesmith.models.loading import load_model

    base_dtype = common.base_dtype(s.precision, cfg.train.method)
    base = load_model(s.source, cfg.model.trust_remote_code, dtype=base_dtype,
                      attention=training_attention(cfg.model.attention, cfg.data.max_length),
                      quantization=cfg.model.quantization)
    policy = adapters.apply(base, cfg.train.method, cfg.lora).to(device)
    # Dropout off: the log-probs of a rollout and of the first optimisation pass must agree (ratio 1).
    disable_dropout_in_model(policy)
    if cfg.train.gradient_checkpointing:
        policy.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
    value_head = torch.nn.Linear(policy.config.hidden_size, 1, device=device, dtype=torch.float32)
    torch.nn.init.zeros_(value_head.weight)  # V = 0 at the start: the first advantages are the rewards
    torch.nn.init.zeros_(value_head.bias)
    return policy, value_head, base_dtype


def _generation(policy, tokenizer, r):
    """(GenerationConfig for the rollouts, the stop token ids)."""
    from transformers import GenerationConfig

    gen_eos = policy.generation_config.eos_token_id
    stop_ids = sorted({tokenizer.eos_token_id, *(gen_eos if isinstance(gen_eos, list) else [gen_eos])} - {None})
    # top_k=0 / top_p=1: sample from the plain softmax(logits / T) whose log-probs the loss uses.
    generation = GenerationConfig(do_sample=True, temperature=r.temperature, top_k=0, top_p=1.0,
                                  max_new_tokens=r.max_new_tokens, pad_token_id=tokenizer.pad_token_id,
                                  eos_token_id=stop_ids, use_cache=True)
    return generation, stop_ids
