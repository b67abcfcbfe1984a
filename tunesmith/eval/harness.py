"""Adapter to EleutherAI's lm-evaluation-harness (`pip install lm-eval`), for users who can reach its
data: a suite task `type: harness` runs harness tasks on the same in-memory model that tunesmith
evaluates (base with the adapter off, then tuned), and its metrics join the report.

The harness's registered tasks download their datasets from the Hugging Face hub, so they need a
network. Tasks can also be defined in local YAML files (`include_path`) over local data files
(`dataset_path: json` with `dataset_kwargs: {data_files: ...}`); those run offline, and that is how
the adapter is tested here (docs/evaluation.md).
"""

from __future__ import annotations

import math

from tunesmith.errors import fail


def available() -> bool:
    try:
        import lm_eval  # noqa: F401
    except ImportError:
        return False
    return True


def run(loaded, tasks: list[str], *, limit: int | None = None, num_fewshot: int | None = None,
        batch_size: int = 8, include_path: str | None = None, seed: int = 0) -> dict[str, float]:
    """Metrics of the harness `tasks` as {"task/metric": value} (standard errors left out)."""
    if not available():
        raise fail("type: harness needs lm-evaluation-harness, which is not installed",
                   "pip install lm-eval (its registered tasks fetch data from the Hugging Face hub)")
    import torch
    from lm_eval import simple_evaluate
    from lm_eval.models.huggingface import HFLM
    from lm_eval.tasks import TaskManager

    model = loaded.model
    # A peft model is not a transformers PreTrainedModel, which HFLM requires; its inner model has
    # the LoRA layers injected and honours peft's disable_adapter() context, so base and tuned
    # are both measured on the one object.
    if hasattr(model, "get_base_model"):
        model = model.get_base_model()
    device = "cuda" if torch.cuda.is_available() else "cpu"
    lm = HFLM(pretrained=model, tokenizer=loaded.tokenizer, batch_size=batch_size, device=device)
    manager = TaskManager(include_path=include_path) if include_path else TaskManager()
    unknown = [t for t in tasks if t not in manager.all_tasks]
    if unknown:
        raise fail(f"lm-eval does not know the task(s) {unknown}",
                   "use `lm_eval ls tasks` for names, or define a local task YAML and set include_path")
    out = simple_evaluate(model=lm, tasks=list(tasks), limit=limit, num_fewshot=num_fewshot, task_manager=manager,
                          log_samples=False, bootstrap_iters=0, random_seed=seed, numpy_random_seed=seed,
                          torch_random_seed=seed, fewshot_random_seed=seed, verbosity="ERROR")
    metrics: dict[str, float] = {}
    for task, values in (out or {}).get("results", {}).items():
        for key, value in values.items():
            name, _, filt = key.partition(",")
            numeric = isinstance(value, (int, float)) and not isinstance(value, bool)
            if "stderr" in name or name == "sample_len" or not numeric:
                continue
            if isinstance(value, float) and math.isnan(value):
                continue
            label = f"{task}/{name}" if filt in ("", "none") else f"{task}/{name}[{filt}]"
            metrics[label] = float(value)
    return metrics
