"""`tunesmith validate --estimate`: a run's wall time and peak memory, predicted before it starts.

How: a probe trains a few optimizer steps through the recipe's own code (the same data, model,
collator and Trainer as the real run; only max_steps, eval_steps, save_steps and the output folder
differ), in a child process so the memory measured is the run's own and nothing it loads stays in
the validating process. The child reports a timeline (startup, each step, one evaluation pass, one
checkpoint save, the final save), the tokens each step fed the model, the exact lengths of the
training rows the Trainer iterates, and its resident memory. The parent extrapolates:

    wall = startup + warm-up step + (steps - 1) x s/step x (tokens per step, whole run / probe)
           + evaluation passes x one pass + checkpoint saves x one save + final save

    peak = max(probe peak, memory after the warm-up step + training activations x
               (longest batch of the run / longest batch of the probe))

Not included: the `eval.suite` evaluation after training (it generates; its time depends on the
suite, not on training). One process only (no accelerate launch); GPU memory is not modelled.
"""

from __future__ import annotations

import dataclasses
import json
import math
import sys
import time
from pathlib import Path

from tunesmith.autotune import steps_for

SUPPORTED = ("sft", "cpt", "dpo")
PROBE_STEPS = 4  # the first is warm-up (allocations, lazy init) and is not used for s/step
PROBE_TIMEOUT_S = 1800
GB = 1e9


# --------------------------------------------------------------------------- the maths (pure)


def expected_batch_width(lengths: list[int], batch_size: int) -> float:
    """Expected padded width (longest row) of a batch of `batch_size` rows drawn at random without
    replacement, as the Trainer's shuffled sampler draws them: with the lengths sorted, the i-th
    shortest (1-based) is the longest of the batch with probability C(i-1, B-1) / C(n, B)."""
    n = len(lengths)
    if n == 0:
        return 0.0
    b = min(batch_size, n)
    ordered = sorted(lengths)
    log_total = math.lgamma(n + 1) - math.lgamma(b + 1) - math.lgamma(n - b + 1)
    width = 0.0
    for i in range(b, n + 1):  # logs: C(n, B) overflows a float for real data sets
        log_p = math.lgamma(i) - math.lgamma(b) - math.lgamma(i - b + 1) - log_total
        width += ordered[i - 1] * math.exp(log_p)
    return width


def tokens_per_step(lengths: list[int], batch_size: int, grad_accum: int, sequences_per_row: int = 1) -> dict:
    """Tokens one optimizer step feeds the model: `padded` (what the compute sees: rows are padded to
    the batch's longest) and `real` (non-padding), both expected values over random batches."""
    if not lengths:
        return {"padded": 0.0, "real": 0.0}
    rows = batch_size * grad_accum * sequences_per_row
    return {"padded": rows * expected_batch_width(lengths, batch_size), "real": rows * sum(lengths) / len(lengths)}


def eval_passes(steps: int, eval_steps: int, has_validation: bool) -> int:
    """Evaluation passes over the validation rows: every eval_steps, plus one at the last step when
    it is not a multiple (the Trainer's rule); with eval_steps 0 the recipe evaluates once at the end."""
    if not has_validation:
        return 0
    return math.ceil(steps / eval_steps) if eval_steps > 0 else 1


def checkpoint_saves(steps: int, save_steps: int) -> int:
    """Checkpoints written: every save_steps, and at the last step (the Trainer always saves there)."""
    return math.ceil(steps / save_steps) if save_steps > 0 else 1


def extrapolate(probe: dict, plan: dict) -> dict:
    """Seconds of the real run from the probe's timeline. `probe`: startup_s, warmup_step_s,
    step_s (the timed steps), step_tokens (padded tokens of those steps), eval_pass_s, save_s,
    finish_s. `plan`: steps, tokens_per_step (padded, expected), eval_passes, saves."""
    s_step = sum(probe["step_s"]) / len(probe["step_s"])
    probe_tokens = sum(probe["step_tokens"]) / len(probe["step_tokens"]) if probe["step_tokens"] else 0
    # Step time follows the tokens a step computes on; the probe's few batches are a sample of the
    # run's, so this mostly corrects for the luck of that sample.
    scale = plan["tokens_per_step"] / probe_tokens if probe_tokens and plan["tokens_per_step"] else 1.0
    s_step_run = s_step * scale
    parts = {"startup": probe["startup_s"],
             "steps": probe["warmup_step_s"] + max(plan["steps"] - 1, 0) * s_step_run,
             "evaluation": plan["eval_passes"] * probe["eval_pass_s"],
             "checkpoints": plan["saves"] * probe["save_s"],
             "final_save": probe["finish_s"]}
    return {"seconds": round(sum(parts.values()), 1), "seconds_per_step": round(s_step_run, 3),
            "measured_seconds_per_step": round(s_step, 3), "token_scale": round(scale, 3),
            "parts": {k: round(v, 1) for k, v in parts.items()}}


def predict_peak(memory: dict, longest_batch_tokens: float, probe_batch_tokens: float) -> dict:
    """Peak resident bytes of the real run. `memory`: peak (whole probe, model load included),
    base (after the warm-up step: weights, gradients' and optimizer's state, data) and train_peak
    (the peak over the timed steps). Activations (train_peak - base) grow with the tokens of a
    forward pass, so they are scaled to the run's longest batch."""
    activations = max(memory["train_peak"] - memory["base"], 0)
    scale = max(longest_batch_tokens / probe_batch_tokens, 1.0) if probe_batch_tokens else 1.0
    scaled = memory["base"] + activations * scale
    return {"bytes": int(max(memory["peak"], scaled)), "activation_scale": round(scale, 3),
            "base_bytes": int(memory["base"]), "activation_bytes": int(activations)}


def fit_verdict(needed: float, available: float | None) -> dict:
    """Whether `needed` bytes fit in `available` ones, and what to do when they do not."""
    if not available:
        return {"fits": None, "message": "available memory unknown"}
    if needed > available:
        return {"fits": False, "message": f"will not fit: needs ~{needed / GB:.1f} GB, {available / GB:.1f} GB "
                "available; lower train.batch_size / data.max_length (raise train.grad_accum to keep the "
                "effective batch), or set train.gradient_checkpointing=true, or use train.method=lora"}
    if needed > 0.9 * available:
        return {"fits": True, "message": f"tight: needs ~{needed / GB:.1f} GB of {available / GB:.1f} GB available; "
                "other processes may push it out of memory"}
    return {"fits": True, "message": "fits"}


# --------------------------------------------------------------------------- memory of this machine


def _read_int(path: str) -> int | None:
    try:
        text = Path(path).read_text().strip()
    except OSError:
        return None
    return int(text) if text.isdigit() else None  # cgroup v2 writes "max" for no limit


def available_memory() -> dict:
    """Bytes a new process can use now: MemAvailable, capped by the cgroup's limit less its usage
    (a container's limit is invisible in /proc/meminfo)."""
    found = {}
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemAvailable:"):
                found["meminfo"] = int(line.split()[1]) * 1024
    except OSError:
        pass
    v1 = "/sys/fs/cgroup/memory/memory."
    for limit, usage in (("/sys/fs/cgroup/memory.max", "/sys/fs/cgroup/memory.current"),
                         (v1 + "limit_in_bytes", v1 + "usage_in_bytes")):
        cap = _read_int(limit)
        if cap is not None and cap < 1 << 60:  # cgroup v1 writes a huge number for no limit
            found["cgroup"] = max(cap - (_read_int(usage) or 0), 0)
            break
    if not found:
        return {"bytes": None, "source": "unknown"}
    source = min(found, key=found.get)
    return {"bytes": found[source], "source": source}


def _status_kb(field: str) -> int | None:
    """A field of /proc/self/status in bytes (VmRSS: resident now, VmHWM: peak since the last reset)."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith(field + ":"):
                return int(line.split()[1]) * 1024
    except OSError:
        pass
    return None


def _reset_peak() -> bool:
    """Reset VmHWM (Linux >= 4.0), so the timed steps' peak is not hidden by the model load's."""
    try:
        Path("/proc/self/clear_refs").write_text("5")
        return True
    except OSError:
        return False


def _max_rss() -> int:
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024  # kB on Linux


# --------------------------------------------------------------------------- the probe (child process)


def probe_overrides(cfg, out_dir: str, steps: int = PROBE_STEPS) -> dict:
    """What the probe changes in the run's config: a few steps, one evaluation and one checkpoint at
    the last of them, a temporary output folder, no suite evaluation afterwards."""
    has_validation = bool(cfg.data.validation or cfg.data.validation_fraction > 0)
    return {"name": "estimate-probe", "output_dir": out_dir, "overwrite": True, "eval.suite": None,
            "train.max_steps": steps, "train.eval_steps": steps if has_validation else 0, "train.save_steps": steps,
            "train.early_stopping_patience": 0, "train.time_budget": None}


def _row_lengths(dataset, max_length: int) -> tuple[list[int], int]:
    """(padded width of each training row, sequences per row) of the dataset the Trainer iterates:
    SFT/CPT rows carry input_ids; trl's DPO rows carry prompt/chosen/rejected ids, and its collator
    puts chosen and rejected side by side in one batch padded to the longest of both."""
    cols = set(dataset.column_names)
    if "input_ids" in cols:
        return [len(x) for x in dataset["input_ids"]], 1
    if {"prompt_ids", "chosen_ids", "rejected_ids"} <= cols:
        return [min(len(p) + max(len(c), len(r)), max_length) for p, c, r in
                zip(dataset["prompt_ids"], dataset["chosen_ids"], dataset["rejected_ids"])], 2
    return [], 1


def _probe_callback(record: dict, max_length: int):
    """A TrainerCallback filling `record` with times, tokens per step and memory; a forward pre-hook
    on the model counts the tokens (batch x padded width) of each training forward pass."""
    import torch
    from transformers import TrainerCallback

    def count(module, args, kwargs):
        ids = kwargs.get("input_ids", args[0] if args else None)
        # training forwards only: not evaluation, nor DPO's reference pass (no gradients; its cost is in
        # the step time all the same, in proportion to the same batch)
        if module.training and torch.is_grad_enabled() and hasattr(ids, "numel"):
            record["_tokens"] += ids.numel()
            record["max_forward_tokens"] = max(record["max_forward_tokens"], ids.numel())

    class Probe(TrainerCallback):
        def on_train_begin(self, args, state, control, model=None, **kw):
            record["train_begin"] = time.perf_counter()
            record["memory"] = {"load_peak": _max_rss(), "peak_reset": _reset_peak()}
            model.register_forward_pre_hook(count, with_kwargs=True)

        def on_step_end(self, args, state, control, train_dataloader=None, **kw):
            record["step_ends"].append(time.perf_counter())
            record["step_tokens"].append(record["_tokens"])
            record["_tokens"] = 0
            if state.global_step == 1:
                record["memory"]["base"] = _status_kb("VmRSS") or 0
                record["lengths"], record["sequences_per_row"] = _row_lengths(train_dataloader.dataset, max_length)
            record["memory"]["train_peak"] = (_status_kb("VmHWM") if record["memory"]["peak_reset"] else None) \
                or _max_rss()

        def on_evaluate(self, args, state, control, **kw):
            record["evaluate"] = time.perf_counter()

        def on_save(self, args, state, control, **kw):
            record["save"] = time.perf_counter()

    return Probe()


def _child(config_json: str, result_json: str) -> None:
    """The probe itself: load the config, train through the recipe with the probe callback, write
    the record. Runs as `python -m tunesmith.estimate CONFIG.json RESULT.json`."""
    record = {"t0": time.perf_counter(), "step_ends": [], "step_tokens": [], "_tokens": 0, "max_forward_tokens": 0}
    from tunesmith.config import load_config
    from tunesmith.data.validate import check_files, config_files
    from tunesmith.recipes import recipe

    cfg = load_config(json.loads(Path(config_json).read_text()))
    if cfg.data.on_error == "fail":  # as api.train does before the recipe
        check_files(config_files(cfg.data), cfg.data.max_row_bytes).raise_if_errors()
    recipe(cfg.recipe)(cfg, show_progress=False, callbacks=(_probe_callback(record, cfg.data.max_length),))
    record["done"] = time.perf_counter()
    record["memory"]["peak"] = _max_rss()
    record.pop("_tokens")
    Path(result_json).write_text(json.dumps(record))


def run_probe(cfg, steps: int = PROBE_STEPS, timeout: float = PROBE_TIMEOUT_S) -> dict:
    """Run the probe in a child process and return its record, with the child's whole wall time
    (`wall`, interpreter start and exit included) and its peak RSS as the kernel counted it. The
    temporary folder (the probe's run directory among it) is removed in every case."""
    import shutil
    import subprocess
    import tempfile

    from tunesmith.config import to_dict
    from tunesmith.errors import fail

    tmp = Path(tempfile.mkdtemp(prefix="tunesmith-estimate-"))
    try:
        raw = to_dict(cfg)
        raw.pop("config_path", None)
        from tunesmith.config import load_config

        probe_cfg = to_dict(load_config(raw, probe_overrides(cfg, str(tmp / "runs"), steps)))
        probe_cfg.pop("config_path", None)
        (tmp / "config.json").write_text(json.dumps(probe_cfg))
        log = (tmp / "probe.log").open("w")
        t0 = time.perf_counter()
        proc = subprocess.Popen([sys.executable, "-m", "tunesmith.estimate", str(tmp / "config.json"),
                                 str(tmp / "result.json")], stdout=log, stderr=subprocess.STDOUT)
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
            raise fail(f"the estimate's probe ran past {timeout:.0f} s", "run without --estimate, or with a "
                       "smaller train.batch_size to see whether a step is that slow") from None
        wall = time.perf_counter() - t0
        log.close()
        if proc.returncode != 0 or not (tmp / "result.json").exists():
            tail = (tmp / "probe.log").read_text(errors="replace")[-2000:]
            raise fail(f"the estimate's probe (a {steps}-step training run) failed with exit code "
                       f"{proc.returncode}:\n{tail}", "run `tunesmith train` on the config to see the full error")
        record = json.loads((tmp / "result.json").read_text())
        return {**record, "wall": wall}
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


# --------------------------------------------------------------------------- the estimate


def probe_timeline(record: dict) -> dict:
    """The probe's record as the phases `extrapolate` reads."""
    ends = record["step_ends"]
    last_step = ends[-1]
    ev = record.get("evaluate")
    sv = record.get("save")
    last = max(t for t in (last_step, ev, sv) if t is not None)
    return {"startup_s": record["train_begin"] - record["t0"] + (record["wall"] - (record["done"] - record["t0"])),
            "warmup_step_s": ends[0] - record["train_begin"],
            "step_s": [b - a for a, b in zip(ends, ends[1:])],
            "step_tokens": record["step_tokens"][1:],
            "eval_pass_s": (ev - last_step) if ev else 0.0,
            "save_s": (sv - (ev or last_step)) if sv else 0.0,
            "finish_s": record["done"] - last}


def estimate(cfg, steps: int = PROBE_STEPS) -> dict:
    """Predict the run's wall time and peak memory (see the module docstring); `cfg` a RunConfig.
    Unsupported recipes get {"supported": False, "message": ...} rather than a guess."""
    if cfg.recipe not in SUPPORTED or cfg.privacy.enabled:
        what = "DP-SGD (privacy.enabled)" if cfg.privacy.enabled else f"recipe {cfg.recipe}"
        return {"supported": False, "message": f"no estimate for {what} yet (supported: {', '.join(SUPPORTED)})"}
    from tunesmith.autotune import resolve

    cfg = resolve(cfg)  # the values the run will use
    steps = max(2, min(steps, cfg.train.max_steps) if cfg.train.max_steps > 0 else steps)
    record = run_probe(cfg, steps)
    t = cfg.train
    lengths, seqs = record["lengths"], record["sequences_per_row"]
    has_val = record.get("evaluate") is not None
    n_steps = steps_for(len(lengths), t.batch_size, t.grad_accum, t.epochs, t.max_steps)
    per_step = tokens_per_step(lengths, t.batch_size, t.grad_accum, seqs)
    save_steps = t.eval_steps if t.early_stopping_patience else t.save_steps
    plan = {"steps": n_steps, "tokens_per_step": per_step["padded"],
            "eval_passes": eval_passes(n_steps, t.eval_steps, has_val), "saves": checkpoint_saves(n_steps, save_steps)}
    timeline = probe_timeline(record)
    time_est = extrapolate(timeline, plan)
    longest = t.batch_size * seqs * (max(lengths) if lengths else 0)
    mem = predict_peak(record["memory"], longest, record["max_forward_tokens"])
    avail = available_memory()
    verdict = fit_verdict(mem["bytes"], avail["bytes"])
    return {"supported": True, "seconds": time_est["seconds"], "steps": n_steps,
            "seconds_per_step": time_est["seconds_per_step"], "measured_steps": len(timeline["step_s"]),
            "tokens_per_step": {k: round(v, 1) for k, v in per_step.items()}, "train_rows": len(lengths),
            "eval_passes": plan["eval_passes"], "checkpoint_saves": plan["saves"], "time": time_est,
            "peak_memory_bytes": mem["bytes"], "memory": mem, "available_memory_bytes": avail["bytes"],
            "available_memory_source": avail["source"], "fits": verdict["fits"], "fit_message": verdict["message"],
            "probe": {"wall_s": round(record["wall"], 1), "steps": steps, "peak_rss_bytes": record["memory"]["peak"],
                      "timeline": {k: [round(x, 3) for x in v] if isinstance(v, list) else round(v, 3)
                                   for k, v in timeline.items()}},
            "not_included": "eval.suite evaluation after training" if cfg.eval.suite else None}



def fit_budget(cfg):
    """`cfg` (auto values resolved) with train.max_steps lowered when a few timed steps say the run would
    outlast train.time_budget; the reason goes into cfg.auto. A config without a budget comes back as is."""
    if cfg.train.time_budget is None or "train.time_budget" in cfg.auto:
        return cfg
    from tunesmith.autotune import EVALS_PER_RUN

    budget_s = cfg.train.time_budget * 60
    if cfg.recipe not in SUPPORTED or cfg.privacy.enabled:
        return dataclasses.replace(cfg, auto={**cfg.auto, "train.time_budget": "no estimate for this recipe: the "
                                              "run stops at the budget"})
    est = estimate(cfg)
    if not est.get("supported") or est["seconds"] <= budget_s:
        why = f"estimated {est.get('seconds', 0):.0f} s fits the {budget_s:.0f} s budget"
        return dataclasses.replace(cfg, auto={**cfg.auto, "train.time_budget": why})
    fixed = max(0.0, est["seconds"] - est["steps"] * est["seconds_per_step"])
    steps = max(1, int((budget_s - fixed) / max(est["seconds_per_step"], 1e-6) * 0.9))
    steps = min(steps, est["steps"])
    train = dataclasses.replace(cfg.train, max_steps=steps)
    why = (f"estimated {est['seconds']:.0f} s for {est['steps']} steps > {budget_s:.0f} s budget: "
           f"train.max_steps={steps} ({est['seconds_per_step']:.2f} s per step, 10% margin)")
    auto = {**cfg.auto, "train.max_steps": why, "train.time_budget": "train.max_steps lowered to fit"}
    if "train.eval_steps" in cfg.auto and cfg.train.eval_steps:  # keep the rule's number of evaluations
        train = dataclasses.replace(train, eval_steps=max(1, steps // EVALS_PER_RUN))
    return dataclasses.replace(cfg, train=train, auto=auto)


def _duration(seconds: float) -> str:
    h, m = divmod(round(seconds / 60), 60)
    return f"~{h}h {m:02d}m" + (f" ({seconds:.0f} s)" if seconds < 3600 else "")


def summary_lines(est: dict) -> list[str]:
    """The estimate as `validate --estimate` prints it: one line, then the fit warning if any."""
    if not est.get("supported"):
        return [f"estimate: {est['message']}"]
    avail = est["available_memory_bytes"]
    line = (f"estimate: {_duration(est['seconds'])} wall ({est['steps']} steps at ~{est['seconds_per_step']:.2g} "
            f"s/step, measured over {est['measured_steps']} steps), peak memory ~{est['peak_memory_bytes'] / GB:.1f} GB"
            + (f" of {avail / GB:.1f} GB available" if avail else ""))
    out = [line]
    if est["fits"] is not True or est["fit_message"] != "fits":
        out.append(("warning: " if est["fits"] is False else "note: ") + est["fit_message"])
    if est.get("not_included"):
        out.append(f"note: not included: {est['not_included']}")
    return out


if __name__ == "__main__":
    _child(sys.argv[1], sys.argv[2])
