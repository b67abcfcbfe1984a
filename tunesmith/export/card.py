"""The model card (README.md) of an export: what the model is, what it learned from, how well it
does, whether the export answers like the trained model, and how to load each format.

Front matter follows the Hugging Face model card metadata (license, base_model, tags, ...), so the
folder uploads to the Hub as it is. Every fact comes from the run directory (config.yaml,
manifest.json, eval/results.json) or the export; what the run cannot know (a dataset's licence
with no licence file beside it) is marked "unknown — fill in" instead of guessed.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

from tunesmith import runs

UNKNOWN = "unknown — fill in"
# Common licence names -> the Hub's license identifiers (front matter).
_HUB_LICENSE = {"apache-2.0": "apache-2.0", "apache 2.0": "apache-2.0", "mit": "mit", "bsd-3-clause": "bsd-3-clause",
                "cc-by-4.0": "cc-by-4.0", "cc by 4.0": "cc-by-4.0", "cc-by-sa-4.0": "cc-by-sa-4.0",
                "cc-by-nc-4.0": "cc-by-nc-4.0", "cc by-nc 4.0": "cc-by-nc-4.0", "llama3": "llama3",
                "llama3.1": "llama3.1", "gemma": "gemma", "openrail": "openrail"}


def write_card(run_dir: str | Path, out_dir: str | Path, export_info: dict) -> Path:
    """Write out_dir/README.md. `export_info`: hf_dir / adapter_dir / gguf (list of paths) /
    modelfile (path) as produced, parity (list of parity.summary dicts), forced, warnings."""
    import yaml

    run_dir, out_dir = Path(run_dir), Path(out_dir)
    cfg = yaml.safe_load((run_dir / runs.CONFIG_FILE).read_text()) or {}
    manifest = runs.read_manifest(run_dir) or {}
    base = _base_model(cfg, manifest)
    name = cfg.get("name") or run_dir.name
    method = cfg.get("train", {}).get("method", "lora")
    front = {"license": _HUB_LICENSE.get(str(base["licence"]).lower(), "other"),
             **({"base_model": base["hub_id"]} if base["hub_id"] else {}),
             "library_name": "transformers" if export_info.get("hf_dir") else "gguf",
             "pipeline_tag": "text-generation",
             "tags": ["tunesmith", cfg.get("recipe", "sft"), method]
             + (["peft"] if export_info.get("adapter_dir") else []) + (["gguf"] if export_info.get("gguf") else [])
             + (["ollama"] if export_info.get("modelfile") else [])}
    if front["license"] == "other":
        front["license_name"] = "see the base model's card"
    sections = [
        "---\n" + yaml.safe_dump(front, sort_keys=False).rstrip() + "\n---",
        f"# {name}\n\nA fine-tune of **{base['name']}** ({cfg.get('recipe', 'sft')}, {method}) trained and exported "
        f"with tunesmith {manifest.get('versions', {}).get('tunesmith') or ''}.".rstrip(),
        _base_section(base),
        _data_section(manifest, cfg),
        _method_section(cfg, manifest),
        _eval_section(run_dir),
        _parity_section(export_info),
        _use_section(out_dir, export_info, base, name),
        _limits_section(export_info, base),
        _files_section(out_dir, export_info),
    ]
    path = out_dir / "README.md"
    path.write_text("\n\n".join(s for s in sections if s) + "\n", encoding="utf-8")
    return path


# --------------------------------------------------------------------------- facts


def _base_model(cfg: dict, manifest: dict) -> dict:
    from tunesmith.models.registry import embedded_models

    spec = (cfg.get("model") or {}).get("name") or manifest.get("model", {}).get("spec", "?")
    entry = embedded_models().get(spec) or {}
    hub_id = entry.get("hub_id") or (spec if re.match(r"^[A-Za-z0-9][\w.-]*/[\w.-]+$", spec)
                                     and not Path(spec).exists() else None)
    return {"name": spec, "description": entry.get("description"), "licence": entry.get("licence") or
            "see the base model's card", "hub_id": hub_id, "sha256": manifest.get("model", {}).get("sha256"),
            "file": manifest.get("model", {}).get("file"), "quantization": (cfg.get("model") or {}).get("quantization")}


def data_licence(path: str | Path) -> str:
    """A data file's licence when a file beside it says so, else UNKNOWN.

    Looks in the file's folder and the two above it for a README.md with Hub dataset-card front
    matter (`license: ...`) or a markdown table with a licence column and a row naming the file, then
    for a LICENSE file in the file's own folder."""
    path = Path(path)
    for folder in [path.parent, *list(path.parents)[1:3]]:
        readme = folder / "README.md"
        if not readme.is_file():
            continue
        text = readme.read_text(encoding="utf-8", errors="replace")
        m = re.match(r"^---\n(.*?)\n---", text, re.S)
        if m:
            lic = re.search(r"^licen[cs]e:\s*(.+)$", m.group(1), re.M)
            if lic:
                return lic.group(1).strip().strip("'\"")
        found = _licence_from_table(text, path, folder)
        if found:
            return found
    for lic in sorted(path.parent.glob("LICEN[CS]E*")):
        first = next((ln.strip() for ln in lic.read_text(errors="replace").splitlines() if ln.strip()), "")
        return f"{first[:60]} (see {lic.name} beside the data)" if first else f"see {lic.name} beside the data"
    return UNKNOWN


def _licence_from_table(text: str, path: Path, folder: Path) -> str | None:
    rel = path.relative_to(folder).as_posix() if path.is_relative_to(folder) else path.name
    col = None
    for line in text.splitlines():
        if not line.startswith("|"):
            col = None
            continue
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if col is None:
            col = next((i for i, c in enumerate(cells) if "licen" in c.lower()), None)
            continue
        if col < len(cells) and (rel in cells[0] or path.name in cells[0]) and not set(cells[0]) <= set("-: "):
            return cells[col]
    return None


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


def _data_section(manifest: dict, cfg: dict) -> str:
    files = manifest.get("data") or []
    lines = ["## Training data", "", "| file | sha256 | licence |", "|---|---|---|"]
    for f in files:
        lines.append(f"| `{Path(f['path']).name}` | `{f.get('sha256')}` | {data_licence(f['path'])} |")
    if not files:
        lines.append(f"| (not recorded) | | {UNKNOWN} |")
    data = cfg.get("data") or {}
    held = (f"validation file `{Path(data['validation']).name}`" if data.get("validation") else
            f"{data.get('validation_fraction', 0):.0%} of the training rows held out for validation"
            if data.get("validation_fraction") else "no validation split")
    lines += ["", f"Full paths are in the run's manifest.json; {held}; max length {data.get('max_length')} tokens, "
              f"loss on {data.get('train_on', 'assistant')} tokens."]
    return "\n".join(lines)


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


def _limits_section(info: dict, base: dict) -> str:
    lines = ["## Intended use and limitations", "",
             "- Intended use: the task of the training data above; check the evaluation section before relying on "
             "it elsewhere. Outside that task it behaves like (or worse than) the base model.",
             "- It inherits the base model's limitations, biases and licence terms"
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
