"""Adapter merges: LoRA runs on one base, combined by peft's own `add_weighted_adapter`.

peft does the arithmetic (linear, cat, svd, ties, dare_*, magnitude_prune and the *_svd forms); this
module loads the parents onto their base, calls it once, and saves the result as a plain peft
adapter, so every reader of a run's adapter/ folder (generate, eval, export, serve) loads it.
"""

from __future__ import annotations

import warnings
from pathlib import Path

from tunesmith.merge.config import SPARSE
from tunesmith.merge.parents import Parent

MERGED = "default"  # peft saves its "default" adapter at the folder's top level, as training does


def merge_adapters(parents: list[Parent], method: str, weights: list[float], out: Path, *, density: float,
                   majority_sign: str = "total", svd_rank: int | None = None, seed: int = 0) -> dict:
    """Write the merged adapter (and the first parent's tokenizer) to `out`; returns what was merged:
    the merged rank and the adapter's target modules."""
    import torch
    from peft import PeftModel
    from transformers import AutoTokenizer

    from tunesmith.models.loading import load_model, resolve
    from tunesmith.models.quant import quiet_bitsandbytes

    quiet_bitsandbytes()  # before peft imports bitsandbytes
    first = parents[0].run_cfg
    # fp32 whatever the parents trained in: the merge is arithmetic on the adapter weights, and a
    # bf16 copy of them would round the small updates the merge combines.
    base = load_model(resolve(first.model.name, first.model.gguf_file), first.model.trust_remote_code,
                      dtype="float32", rope=(first.model.rope_scaling, first.model.rope_factor))
    names = [f"parent{p.index}" for p in parents]
    model = PeftModel.from_pretrained(base, str(parents[0].weights_dir), adapter_name=names[0])
    for name, parent in zip(names[1:], parents[1:]):
        model.load_adapter(str(parent.weights_dir), adapter_name=name)
    torch.manual_seed(seed)  # dare_* drop values at random (torch.bernoulli)
    with warnings.catch_warnings():  # density 1.0 is a documented choice (ties: sign election only), not a slip
        warnings.filterwarnings("ignore", message="The density .* no pruning will be performed")
        model.add_weighted_adapter(names, weights, MERGED, combination_type=method, svd_rank=svd_rank,
                                   density=density if method in SPARSE else None, majority_sign_method=majority_sign)
    merged_cfg = model.peft_config[MERGED]
    # peft scales the merged adapter by 1 (lora_alpha = r) and folded every parent's own scaling into
    # the weights; a first parent trained with rsLoRA would hand its use_rslora on, and alpha / sqrt(r)
    # would then scale the merge a second time, so the saved config says plain LoRA.
    merged_cfg.use_rslora = False
    model.set_adapter(MERGED)
    for name in names:
        model.delete_adapter(name)
    out.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(str(out))
    AutoTokenizer.from_pretrained(parents[0].weights_dir).save_pretrained(out)  # the chat template it trained with
    return {"r": merged_cfg.r, "lora_alpha": merged_cfg.lora_alpha,
            "target_modules": sorted(merged_cfg.target_modules) if not isinstance(merged_cfg.target_modules, str)
            else merged_cfg.target_modules}
