"""The model card (README.md) of an export: what the model is, what it learned from (every file's
hash and licence, the cleaning steps, the synthetic share), what the licences allow it to be used
for, how well it does, what the safety audit found, the energy it took, whether the export answers
like the trained model, and how to load each format.

Front matter follows the Hugging Face model card metadata (license, base_model, tags, ...), so the
folder uploads to the Hub as it is. Every fact comes from the run directory (config.yaml,
manifest.json, data_report.json, eval/results.json) or the export; what the run cannot know (a
dataset's licence with no licence file beside it) is marked "unknown — fill in" instead of guessed.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

from tunesmith import licences, runs

UNKNOWN = "unknown — fill in"


def write_card(run_dir: str | Path, out_dir: str | Path, export_info: dict) -> Path:
    """Write out_dir/README.md. `export_info`: hf_dir / adapter_dir / gguf (list of paths) /
    modelfile (path) as produced, parity (list of parity.summary dicts), forced, warnings."""
    import yaml

    run_dir, out_dir = Path(run_dir), Path(out_dir)
    cfg = yaml.safe_load((run_dir / runs.CONFIG_FILE).read_text()) or {}
    manifest = runs.read_manifest(run_dir) or {}
    lic = manifest.get("licences") or _licences(cfg, manifest)
    base = _base_model(cfg, manifest, lic)
    name = cfg.get("name") or run_dir.name
    method = cfg.get("train", {}).get("method", "lora")
    # NC, share-alike or use-restricted data must not hide behind the base model's licence id.
    front = {**licences.hub_licence(lic),
             **({"base_model": base["hub_id"]} if base["hub_id"] else {}),
             "library_name": "transformers" if export_info.get("hf_dir") else "gguf",
             "pipeline_tag": "text-generation",
             "tags": ["tunesmith", cfg.get("recipe", "sft"), method]
             + (["peft"] if export_info.get("adapter_dir") else []) + (["gguf"] if export_info.get("gguf") else [])
             + (["ollama"] if export_info.get("modelfile") else [])}
    eval_rows = _eval_rows(run_dir, manifest)
    sections = [
        "---\n" + yaml.safe_dump(front, sort_keys=False).rstrip() + "\n---",
        f"# {name}\n\nA fine-tune of **{base['name']}** ({cfg.get('recipe', 'sft')}, {method}) trained and exported "
        f"with tunesmith {manifest.get('versions', {}).get('tunesmith') or ''}.".rstrip(),
        _base_section(base),
        _data_section(run_dir, manifest, cfg, lic),
        _licences_section(lic),
        _method_section(cfg, manifest),
        _energy_section(manifest),
        _eval_section(run_dir),
        _audit_section(manifest),
        _parity_section(export_info),
        _use_section(out_dir, export_info, base, name),
        _limits_section(export_info, base, manifest, lic, eval_rows),
        _files_section(out_dir, export_info),
    ]
    path = out_dir / "README.md"
    path.write_text("\n\n".join(s for s in sections if s) + "\n", encoding="utf-8")
    return path


# --------------------------------------------------------------------------- facts


def _licences(cfg: dict, manifest: dict) -> dict:
    """The licence cascade of a run whose manifest predates manifest["licences"]."""
    data, model = cfg.get("data") or {}, manifest.get("model") or {}
    spec = (cfg.get("model") or {}).get("name") or model.get("spec", "?")
    sources = [(s.get("path"), s.get("license")) for s in data.get("sources") or []]
    return licences.cascade(licences.base_licence(spec, model.get("kind", ""), model.get("path") or spec),
                            licences.data_licences(data.get("train") or [], sources, data.get("license")))


def _base_model(cfg: dict, manifest: dict, lic: dict) -> dict:
    from tunesmith.models.registry import embedded_models

    spec = (cfg.get("model") or {}).get("name") or manifest.get("model", {}).get("spec", "?")
    entry = embedded_models().get(spec) or {}
    hub_id = entry.get("hub_id") or (spec if re.match(r"^[A-Za-z0-9][\w.-]*/[\w.-]+$", spec)
                                     and not Path(spec).exists() else None)
    licence = next((i["licence"] for i in lic.get("inputs", []) if i["role"] == "base model"), None)
    return {"name": spec, "description": entry.get("description"), "licence": licence or
            "see the base model's card", "hub_id": hub_id, "sha256": manifest.get("model", {}).get("sha256"),
            "file": manifest.get("model", {}).get("file"), "quantization": (cfg.get("model") or {}).get("quantization")}


def data_licence(path: str | Path) -> str:
    """A data file's licence when a file beside it says so (see licences.beside), else UNKNOWN."""
    found = licences.beside(path)
    return found[0] if found else UNKNOWN


def _eval_rows(run_dir: Path, manifest: dict) -> list[dict]:
    """Per (task, metric) base vs tuned, with better/regression flags (eval.compare), or []."""
    path = run_dir / "eval" / "results.json"
    if not path.is_file():
        return []
    from tunesmith.eval.compare import compare

    results = json.loads(path.read_text())
    if len(results.get("models") or {}) < 2:
        return []
    threshold = (manifest.get("eval") or {}).get("threshold")
    return compare(results, **({"threshold": threshold} if threshold is not None else {}))


# --------------------------------------------------------------------------- sections


def _base_section(base: dict) -> str:
    lines = ["## Base model", "", f"- model: `{base['name']}`" + (f" ({base['hub_id']})" if base["hub_id"] else "")]
    if base["description"]:
        lines.append(f"- {base['description']}")
    lines.append(f"- licence: {base['licence']}")
    if base["sha256"]:
        lines.append(f"- weights sha256: `{base['sha256']}`")
    if base["quantization"] and base["quantization"] != "none":
        lines.append(f"- loaded {base['quantization']}-quantized for training (QLoRA); merged into the fp32 weights")
    return "\n".join(lines)


def _data_section(run_dir: Path, manifest: dict, cfg: dict, lic: dict) -> str:
    files = manifest.get("data") or []
    given = {i["name"]: i["licence"] for i in lic.get("inputs", []) if i["role"] == "data" and i["licence"]}
    lines = ["## Training data", "", "| file | sha256 | licence |", "|---|---|---|"]
    for f in files:
        lines.append(f"| `{Path(f['path']).name}` | `{f.get('sha256')}` | "
                     f"{given.get(f['path']) or data_licence(f['path'])} |")
    if not files:
        lines.append(f"| (not recorded) | | {UNKNOWN} |")
    data = cfg.get("data") or {}
    held = (f"validation file `{Path(data['validation']).name}`" if data.get("validation") else
            f"{data.get('validation_fraction', 0):.0%} of the training rows held out for validation"
            if data.get("validation_fraction") else "no validation split")
    lines += ["", f"Full paths are in the run's manifest.json; {held}; max length {data.get('max_length')} tokens, "
              f"loss on {data.get('train_on', 'assistant')} tokens.", "", "### Lineage", ""]
    return "\n".join(lines + _lineage(run_dir, files, data))


def _lineage(run_dir: Path, files: list[dict], data: dict) -> list[str]:
    """What happened to the rows between the files and the trainer, from data_report.json."""
    try:
        report = json.loads((run_dir / "data_report.json").read_text())
    except (OSError, ValueError):
        report = {}
    load = (report.get("load") or {}).get("train") or {}
    rows, out = load.get("rows") or {}, []
    if rows:
        skipped = ", ".join(f"{k} {v}" for k, v in (rows.get("skipped") or {}).items())
        out.append(f"- rows read: {rows.get('rows')}, loaded: {rows.get('kept')}"
                   + (f" (skipped: {skipped})" if skipped else ""))
    clean = load.get("clean")
    if clean:
        before, after = clean.get("before") or {}, clean.get("after") or {}
        out.append(f"- cleaning (data.clean): {before.get('rows')} → {after.get('rows')} rows; records sha256 "
                   f"`{str(before.get('sha256'))[:16]}…` → `{str(after.get('sha256'))[:16]}…`")
        out += [f"  - {_clean_step(step)}" for step in clean.get("steps") or []]
        if clean.get("dropped"):
            out.append("  - dropped by reason: " + ", ".join(f"{k} {v}" for k, v in clean["dropped"].items()))
    elif report:
        out.append("- cleaning: none ran (data.clean.enabled is false): no dedup, PII or toxicity step")
    else:
        out.append("- loading and cleaning: not recorded (the run has no data_report.json)")
    out.append(_synthetic_share(files, data, rows.get("kept"), load.get("mix") or []))
    for m in load.get("mix") or []:
        out.append(f"- mixing: `{Path(str(m['source'])).name}` weight {m['weight']}: {m['rows']} rows → {m['used']}")
    if (report.get("load") or {}).get("extra_rows"):
        out.append(f"- {report['load']['extra_rows']} audit canary rows added to the training split (audit.canaries)")
    tok = report.get("train") or {}
    if tok.get("rows") is not None:
        out.append(f"- tokenized: {tok.get('kept')} of {tok.get('rows')} rows kept ({tok.get('dropped_overlong', 0)} "
                   f"over max length dropped, {tok.get('truncated', 0)} truncated), {tok.get('tokens')} tokens")
    return out


def _clean_step(step: dict) -> str:
    name, rows = step.get("step", "?"), f"{step.get('rows_before')} → {step.get('rows_after')} rows"
    if name == "normalize":
        return f"normalize: {step.get('rows_changed', 0)} rows changed"
    if name == "pii":
        found = ", ".join(f"{k} {v}" for k, v in (step.get("found") or {}).items()) or "none"
        return f"PII ({step.get('policy')}): found {found} in {step.get('rows_with_pii', 0)} rows; {rows}"
    if name == "toxicity":
        return f"toxicity ({step.get('policy')}): {step.get('rows_flagged', 0)} rows flagged; {rows}"
    if name == "decontaminate":
        return f"decontamination ({step.get('ngram')}-grams, {step.get('eval_items')} eval items): {rows}"
    if name == "dedup":
        return f"dedup ({step.get('method')}): {rows}"
    return f"{name}: {rows}"


def _synthetic_share(files: list[dict], data: dict, loaded: int | None, mix: list[dict]) -> str:
    """Rows labelled synthetic (by `tunesmith data synth` / `data augment`) in the training files,
    and their share after the mixing weights re-sampled each source."""
    counted = [f for f in files if "synthetic_rows" in f and f["path"] != data.get("validation")]
    if not counted:
        return "- synthetic share: not recorded"
    n = sum(f["synthetic_rows"] for f in counted)
    if not n:
        return "- synthetic share: 0 (no training row is labelled synthetic)"
    share = f" ({n / loaded:.1%} of {loaded} rows loaded)" if loaded else ""
    text = (f"- synthetic share: {n} rows labelled synthetic{share}: "
            + ", ".join(f"`{Path(f['path']).name}` {f['synthetic_rows']}" for f in counted if f["synthetic_rows"]))
    used = sum(m["used"] for m in mix)
    if used:  # a source's synthetic fraction carries over to the rows drawn from it (cleaning may shift it)
        syn = {f["path"]: f["synthetic_rows"] for f in counted}
        drawn = sum(m["used"] * min(1.0, sum(syn.get(p, 0) for p in str(m["source"]).split(", ")) / m["rows"])
                    for m in mix if m["rows"])
        text += f"; after the mixing weights about {drawn / used:.0%} of the {used} rows trained on"
    return text


def _licences_section(lic: dict) -> str:
    lines = ["## Licences", "", "| input | licence | category | from |", "|---|---|---|---|"]
    for i in lic.get("inputs", []):
        what = f"base model `{i['name']}`" if i["role"] == "base model" else f"data `{Path(i['name']).name}`"
        shown = i["id"] if i["category"] != "unknown" else (i["licence"] or "unknown")
        lines.append(f"| {what} | {shown} | {i['category']} | {i['from']} |")
    lines += ["", f"**The fine-tuned model may be used for:** {lic.get('verdict')}."]
    if lic.get("warnings"):
        lines += ["", "Warnings:", ""] + [f"- ⚠ {w}" for w in lic["warnings"]]
    if lic.get("obligations"):
        lines += ["", "Obligations of the inputs' licences:", ""] + [f"- {o}" for o in lic["obligations"]]
    return "\n".join(lines + ["", f"_{lic.get('note', licences.NOT_LEGAL_ADVICE)}_"])


def _energy_section(manifest: dict) -> str:
    stages = manifest.get("energy") or {}
    if not stages:
        return ""
    lines = ["## Energy and carbon", "", "| stage | energy (kWh) | emissions (kg CO2eq) | time | grid | how measured |",
             "|---|---|---|---|---|---|"]
    for stage, r in stages.items():
        if r.get("error"):
            lines.append(f"| {stage} | not measured | | | | {r['error']} |")
            continue
        grid = (r.get("country") or "") + (f"/{r['region']}" if r.get("region") else "")
        if r.get("grid_g_co2eq_per_kwh") is not None:
            grid += f" ({r['grid_g_co2eq_per_kwh']} g/kWh)"
        lines.append(f"| {stage} | {r.get('kwh', 0):.4g} | {r.get('kg_co2eq', 0):.4g} | {r.get('seconds', 0):.3g} s "
                     f"| {grid} | {r.get('power_method', '')} |")
    tracker = next((r["tracker"] for r in stages.values() if r.get("tracker")), "codecarbon")
    return "\n".join(lines + ["", f"Measured with {tracker} (offline: the grid's carbon intensity comes from the "
                               "configured country, energy.country). Estimated rows are TDP-based, not metered."])


def _audit_section(manifest: dict) -> str:
    audit = manifest.get("audit") or {}
    if not audit.get("rows"):
        return ""
    lines = ["## Safety audit", "", f"Suite `{audit.get('suite')}` ({audit.get('created', '')}), the base and the "
             f"tuned model on the same prompts; a regression is a change for the worse beyond the audit's "
             f"tolerance ({audit.get('threshold')} for rates; docs/safety.md gives the rest). Full report: "
             f"{audit.get('report', 'report.html')}.", "",
             "| check | metric | base | tuned | change | regression |", "|---|---|---|---|---|---|"]
    for r in audit["rows"]:
        base, tuned = r.get("base"), r.get("tuned")
        change = f"{tuned - base:+.4g}" if isinstance(base, (int, float)) and isinstance(tuned, (int, float)) else ""
        arrow = {"higher": " ↑", "lower": " ↓", "zero": " (0 best)"}.get(r.get("better"), "")
        flag = "**yes**" if r.get("regression") else "no" if r.get("regression") is False else ""
        lines.append(f"| {r.get('check')} | {r.get('metric')}{arrow} | {_measured(base)} | {_measured(tuned)} "
                     f"| {change} | {flag} |")
    lines += ["", "↑ higher is better, ↓ lower is better; – not measured."]
    return "\n".join(lines)


def _measured(v) -> str:
    return "–" if v is None else _num(v)


def _method_section(cfg: dict, manifest: dict) -> str:
    t, lo = cfg.get("train") or {}, cfg.get("lora") or {}
    rows = [("recipe", cfg.get("recipe")), ("method", t.get("method"))]
    if t.get("method") not in ("full", None):
        rows += [("LoRA rank / alpha / dropout", f"{lo.get('r')} / {lo.get('alpha')} / {lo.get('dropout')}"),
                 ("target modules", ", ".join(lo.get("target_modules") or [])),
                 ("rsLoRA / DoRA / LoRA+ ratio", f"{lo.get('use_rslora')} / {lo.get('use_dora')} / "
                                                 f"{lo.get('plus_ratio')}")]
    rows += [("steps", (manifest.get("result") or {}).get("steps", t.get("max_steps"))),
             ("epochs (when max_steps is -1)", t.get("epochs")),
             ("batch size x grad accumulation", f"{t.get('batch_size')} x {t.get('grad_accum')}"),
             ("learning rate / schedule / warm-up", f"{t.get('learning_rate')} / {t.get('lr_scheduler')} / "
                                                    f"{t.get('warmup_ratio')}"),
             ("weight decay / max grad norm", f"{t.get('weight_decay')} / {t.get('max_grad_norm')}"),
             ("precision", (manifest.get("precision") or {}).get("value", t.get("precision"))),
             ("seed", cfg.get("seed"))]
    if cfg.get("recipe") in ("dpo", "kto", "orpo", "simpo"):
        p = cfg.get("preference") or {}
        rows.append(("preference beta / loss", f"{p.get('beta')} / {p.get('loss')}"))
    result = manifest.get("result") or {}
    for key in ("train_loss", "eval_loss", "train_seconds", "tokens_seen"):
        if result.get(key) is not None:
            value = result[key]
            rows.append((key.replace("_", " "), f"{value:.4g}" if isinstance(value, float) else value))
    hw = manifest.get("hardware") or {}
    if hw:
        cuda = ", CUDA" if hw.get("cuda") else ""
        rows.append(("hardware", f"{hw.get('cpu')}, {hw.get('cpu_count')} cores{cuda}"))
    body = "\n".join(f"| {k} | {v} |" for k, v in rows)
    sha = manifest.get("git_sha")
    return ("## Method and hyperparameters\n\n| setting | value |\n|---|---|\n" + body +
            "\n\nThe complete resolved config is `training_config.yaml` beside this card" +
            (f" (tunesmith at git {sha[:12]})." if sha else "."))


def _eval_section(run_dir: Path) -> str:
    path = run_dir / "eval" / "results.json"
    if not path.is_file():
        return ""
    results = json.loads(path.read_text())
    labels = list(results.get("models") or {})
    lines = ["## Evaluation", "", f"Suite `{results.get('suite')}` ({results.get('created', '')}); "
             + ", ".join(f"{k}: {v}" for k, v in (results.get("models") or {}).items()) + ".", "",
             "| task | n | metric | " + " | ".join(labels) + (" | change |" if len(labels) == 2 else ""),
             "|---|---|---|" + "---|" * (len(labels) + (len(labels) == 2))]
    for task in results.get("tasks", []):
        metrics = task.get("metrics") or {}
        for metric in (metrics.get(labels[0]) or {}) if labels else {}:
            values = [(metrics.get(lb) or {}).get(metric) for lb in labels]
            cells = [_num(v) for v in values]
            if len(values) == 2 and all(isinstance(v, (int, float)) for v in values):
                cells.append(f"{values[1] - values[0]:+.4g}")
            elif len(values) == 2:
                cells.append("")
            lines.append(f"| {task['name']} | {task.get('n', '')} | {metric} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def _num(v) -> str:
    return f"{v:.4g}" if isinstance(v, float) else "" if v is None else str(v)


def _parity_section(info: dict) -> str:
    results = info.get("parity") or []
    if not results:
        return ""
    lines = ["## Export parity", "", "Fixed prompts (generic ones and rows of the training data) through the trained "
             "model (base + adapter) and each exported file, teacher-forced on the trained model's own greedy replies. "
             "Top-1: the share of reply positions where both pick the same next token, and its 95% lower bound. "
             "KL: the mean KL divergence of the file's next-token distribution from the trained model's (nats). "
             "The check passes on the lower bound and the KL; greedy text (the share of prompts with an identical "
             "greedy reply) is for information. Details: parity.md.", "",
             "| artefact | top-1 agreement | 95% lower bound | mean KL | positions | greedy-text agreement | result |",
             "|---|---|---|---|---|---|---|"]
    for r in results:
        verdict = "pass" if r["passed"] else "**FAIL** (exported anyway with --force)" if r.get("forced") else "FAIL"
        lines.append(f"| {r['candidate']} | {r['top1_agreement']:.3f} | {r['top1_ci95_low']:.3f} "
                     f"| {r['kl_mean']:.4f} | "
                     f"{r['positions']} | {r['greedy_text_agreement']:.3f} | {verdict} |")
    if info.get("forced") and not all(r["passed"] for r in results):
        lines += ["", "**Warning: this export failed the parity check and was forced.** "
                  + "; ".join(f"{r['candidate']}: {r['shortfall']}" for r in results if not r["passed"])
                  + ". It may answer differently from the trained model."]
    return "\n".join(lines)


def _use_section(out_dir: Path, info: dict, base: dict, name: str) -> str:
    parts = ["## How to use"]
    if info.get("hf_dir"):
        hf = Path(info["hf_dir"]).relative_to(out_dir).as_posix()
        parts.append(f"""### transformers (merged weights, `{hf}/`)

```python
from transformers import AutoModelForCausalLM, AutoTokenizer

tok = AutoTokenizer.from_pretrained("{hf}")
model = AutoModelForCausalLM.from_pretrained("{hf}")
messages = [{{"role": "user", "content": "Hello!"}}]
ids = tok.apply_chat_template(messages, add_generation_prompt=True, return_tensors="pt")
out = model.generate(ids, max_new_tokens=128)
print(tok.decode(out[0, ids.shape[1]:], skip_special_tokens=True))
```""")
    if info.get("adapter_dir"):
        ad = Path(info["adapter_dir"]).relative_to(out_dir).as_posix()
        parts.append(f"""### peft (adapter only, `{ad}/`, on the base model)

```python
from peft import PeftModel
from transformers import AutoModelForCausalLM, AutoTokenizer

{_base_load(base)}
model = PeftModel.from_pretrained(base, "{ad}")
tok = AutoTokenizer.from_pretrained("{ad}")
```""")
    for g in info.get("gguf") or []:
        rel = Path(g).relative_to(out_dir).as_posix()
        parts.append(f"""### llama.cpp (`{rel}`)

```bash
llama-cli -m {rel} -cnv    # or: llama-server -m {rel} --port 8080
```

```python
from llama_cpp import Llama
llm = Llama("{rel}")
print(llm.create_chat_completion([{{"role": "user", "content": "Hello!"}}])["choices"][0]["message"]["content"])
```""")
        break  # one snippet shows the pattern; every GGUF file is listed under Files
    if info.get("modelfile"):
        mf = Path(info["modelfile"]).relative_to(out_dir).as_posix()
        parts.append(f"""### Ollama (`{mf}`)

```bash
ollama create {_ollama_name(name)} -f {mf}
ollama run {_ollama_name(name)}
```""")
    return "\n\n".join(parts)


def _base_load(base: dict) -> str:
    """The line that loads the base model for the adapter snippet."""
    if base["hub_id"]:
        return f'base = AutoModelForCausalLM.from_pretrained("{base["hub_id"]}")'
    if Path(base["name"]).is_dir():
        return f'base = AutoModelForCausalLM.from_pretrained("{base["name"]}")  # the local base checkpoint'
    # An embedded model (or a GGUF file): tunesmith knows where its transformers folder is.
    return ("from tunesmith.models.loading import materialize, resolve\n"
            f'base = AutoModelForCausalLM.from_pretrained(materialize(resolve("{base["name"]}")))')


def _ollama_name(name: str) -> str:
    """Ollama model names are lower case letters, digits and . _ -."""
    return re.sub(r"[^a-z0-9._-]+", "-", name.lower()).strip("-") or "tunesmith-model"


def _limits_section(info: dict, base: dict, manifest: dict, lic: dict, eval_rows: list[dict]) -> str:
    """Intended use restricted by the licence verdict; limitations from the evaluation's and the
    safety audit's regressions, then the limits every fine-tune shares."""
    uses = lic.get("uses") or "see the Licences section"
    improved = [f"{r['task']}/{r['metric']}" for r in eval_rows if r.get("better") is True]
    lines = ["## Intended use and limitations", "", "### Intended use", "",
             "- The task of the training data above; check the evaluation section before relying on it elsewhere. "
             "Outside that task it behaves like (or worse than) the base model.",
             f"- Licences: {uses}" + (" (**no commercial use**: a training input is non-commercial)"
                                       if lic.get("commercial_use") is False else "")
             + "; the Licences section lists the conditions."]
    if improved:
        lines.append("- Better than the base model on: " + ", ".join(improved) + ".")
    lines += ["", "### Limitations", ""]
    regressed = (manifest.get("eval") or {}).get("regressions") or [
        f"{r['task']}/{r['metric']}" for r in eval_rows if r.get("regression")]
    if regressed:
        lines.append("- Worse than the base model (evaluation regressions): " + ", ".join(regressed) + ".")
    if not eval_rows and not manifest.get("eval"):
        lines.append("- Not evaluated against the base model: its quality on the task is unmeasured.")
    elif not regressed:
        lines.append("- The evaluation found no regression against the base model on its tasks; they are samples of "
                     "the task, not a guarantee.")
    audit = manifest.get("audit") or {}
    for r in audit.get("rows") or []:
        if r.get("regression"):
            lines.append(f"- Safety audit regression, {r.get('check')}/{r.get('metric')}: {_measured(r.get('base'))} "
                         f"(base) → {_measured(r.get('tuned'))} (tuned), {r.get('better')} is better.")
    if not audit:
        lines.append("- No safety audit was run (`tunesmith audit RUN`): its refusal, toxicity, bias and "
                     "memorisation behaviour against the base model is unmeasured.")
    elif not audit.get("regressions"):
        lines.append("- The safety audit found no regression against the base model on its checks; the checks are "
                     "samples, not a guarantee.")
    lines += ["- It inherits the base model's limitations, biases and licence terms"
              f" ({base['licence']}), and those of the training data's licences.",
              "- Like every language model it can state false things fluently; do not use its output unchecked for "
              "medical, legal, financial or safety decisions.",
              "- Quantized files (GGUF types below 8 bits) trade some quality for size; the parity table says how "
              "close each one stayed to the trained model."]
    lines += [f"- Export note: {w}" for w in info.get("warnings") or []]
    return "\n".join(lines)


def _files_section(out_dir: Path, info: dict) -> str:
    rows = info.get("files") or []
    if not rows:
        return ""
    lines = ["## Files", "", "| path | size | sha256 |", "|---|---|---|"]
    for f in rows:
        lines.append(f"| `{f['path']}` | {_size(f['bytes'])} | `{f['sha256'][:16]}…` |")
    lines += ["", "Full hashes, versions and the parity summary: export_manifest.json."]
    return "\n".join(lines)


def _size(n: int) -> str:
    for unit in ("B", "KB", "MB", "GB"):
        if n < 1000 or unit == "GB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1000
    return str(n)
