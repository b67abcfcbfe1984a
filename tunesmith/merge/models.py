"""Full-model merges through mergekit (LGPL-3.0; `pip install 'tunesmith[merge]'`), on the CPU.

mergekit does the arithmetic and writes the merged safetensors; this module turns the merge config
into a mergekit MergeConfiguration, runs it, and finishes the folder the way a full fine-tune's
model/ looks: the first parent's tokenizer (chat template included) and generation config.
"""

from __future__ import annotations

import shutil
from pathlib import Path

from tunesmith.errors import fail


def mergekit_config(method: str, models: list[str], weights: list[float], *, base: str | None, density: float,
                    t: float, normalize: bool | None, dtype: str) -> dict:
    """The mergekit YAML (as a dict) for `method` over the model folders `models`. slerp reads its
    base from the first model (t = 0 is the first model, t = 1 the second)."""
    if method == "slerp":
        return {"merge_method": "slerp", "base_model": models[0], "models": [{"model": m} for m in models],
                "parameters": {"t": t}, "dtype": dtype}
    if method == "model_stock":  # the weights are the geometry's own (the angle between the deltas)
        return {"merge_method": method, "base_model": base, "models": [{"model": m} for m in models],
                "dtype": dtype}
    per_model = [{"model": m, "parameters": {"weight": w, **({"density": density} if method in
                                                              ("ties", "dare_ties", "dare_linear") else {})}}
                 for m, w in zip(models, weights)]
    shared = {} if normalize is None else {"normalize": normalize}
    out = {"merge_method": method, "models": per_model, "dtype": dtype}
    if shared:
        out["parameters"] = shared
    if base is not None:
        out["base_model"] = base
    return out


def merge_models(model_dirs: list[Path], method: str, weights: list[float], out: Path, *, base: str | None,
                 density: float, t: float, normalize: bool | None, dtype: str, seed: int) -> dict:
    """Write the merged checkpoint to `out` (a model/ folder); returns the mergekit config used and
    mergekit's version. `base` is a model spec (folder or embedded name) or None."""
    from tunesmith.models.loading import materialize, resolve
    from tunesmith.models.quant import quiet_bitsandbytes

    try:
        from mergekit.config import MergeConfiguration
        from mergekit.merge import run_merge
        from mergekit.options import MergeOptions
    except ImportError:
        raise fail("full-model merges need mergekit, which is not installed",
                   "pip install 'tunesmith[merge]' (mergekit, LGPL-3.0), or merge LoRA runs with kind: adapters"
                   ) from None
    quiet_bitsandbytes()
    # mergekit reads plain transformers folders: an embedded GGUF base is dequantized once (cached).
    base_dir = str(materialize(resolve(base))) if base else None
    spec = mergekit_config(method, [str(d) for d in model_dirs], weights, base=base_dir, density=density, t=t,
                           normalize=normalize, dtype=dtype)
    try:
        config = MergeConfiguration.model_validate(spec)
    except Exception as e:  # noqa: BLE001 - pydantic's or mergekit's own validation, said in our terms
        raise fail(f"mergekit refused the merge config: {e}", "check method, parents and base") from None
    out.mkdir(parents=True, exist_ok=True)
    # mergekit's own options: arithmetic on the CPU, no tokenizer (the first parent's is copied below,
    # so the chat template the parents trained with comes along), no card (the run has its own).
    options = MergeOptions(device="cpu", copy_tokenizer=False, write_model_card=False, random_seed=seed, quiet=True,
                           out_shard_size=5_000_000_000)
    try:
        run_merge(config, str(out), options)
    except (RuntimeError, ValueError, KeyError) as e:
        raise fail(f"mergekit could not merge these models: {type(e).__name__}: {e}",
                   "check that every parent and the base share one architecture and vocabulary") from None
    _finish_folder(Path(model_dirs[0]), out)
    (out / "mergekit_config.yml").write_text(config.to_yaml() + "\n", encoding="utf-8")
    return {"mergekit_config": spec, "mergekit": _version()}


def _finish_folder(first: Path, out: Path) -> None:
    from transformers import AutoTokenizer

    AutoTokenizer.from_pretrained(first).save_pretrained(out)
    if (first / "generation_config.json").is_file():  # eos ids the chat template ends turns with
        shutil.copyfile(first / "generation_config.json", out / "generation_config.json")
    for f in out.iterdir():  # safetensors writes 0600; a run's model is meant to be served and shared
        if f.is_file():
            f.chmod(0o644)


def _version() -> str | None:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("mergekit")
    except PackageNotFoundError:
        return None
