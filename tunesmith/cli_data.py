"""`tunesmith data <command>`: the data tools' sub-parsers and handlers, and the two printers that
`tunesmith validate` shares with `tunesmith data validate` (kept here so cli.py stays in its size
budget; cli.py imports this module, never the other way round).
"""

from __future__ import annotations

import json
import sys

from tunesmith.errors import EXIT_USER_ERROR


def print_validation(v, as_json: bool) -> int:
    """Diagnostics (`file:line: error|warning: ...`) on stderr, the summary on stdout; exit 2 on errors."""
    if as_json:
        print(json.dumps(v.as_dict(), indent=2, ensure_ascii=True))
    else:
        for p in v.diagnostics():
            print(p.diagnostic(), file=sys.stderr)
        if v.report.n_warnings > len(v.warnings) or sum(v.report.skipped.values()) > len(v.errors):
            print("(more problems than listed; the counts below are complete)", file=sys.stderr)
        print(("ok: " if v.ok else "failed: ") + v.summary_line())
    return 0 if v.ok else EXIT_USER_ERROR


def print_data_report(report: dict) -> None:
    """Token statistics per split (the rows' problems were printed by print_validation)."""
    for split, s in report["data"].items():
        print(f"\n{split}: {s['kept']} of {s['rows']} rows kept; kinds {s['kinds']}")
        print(f"  tokens {s['tokens']}, {s['loss_token_fraction']:.0%} carry loss; length min/median/max "
              f"{s['length_min']}/{s['length_median']}/{s['length_max']}")
        if "windows" in s:  # raw text (recipe: cpt): documents concatenated into windows
            print(f"  {s['windows']} windows of up to {report['max_length']} tokens")
            continue
        st = s["statistics"]
        o = st["over_max_length"]
        print(f"  over max_length={o['max_length']} (policy {o['policy']}): {o['dropped']} dropped, "
              f"{o['truncated']} truncated, {o['dropped_no_loss']} left with no trained token")
        e = st["end_of_turn_trained"]
        print(f"  end-of-turn token {e['tokens']} trained in {e['rows']} of {e['of']} rows")
        print(f"  exact duplicates: {st['duplicates']}; blank fields by role: {st['blank_fields'] or 'none'}")
        hist = st["token_lengths"]["histogram"]
        top = max((b["count"] for b in hist), default=1) or 1
        for b in hist:
            print(f"  {b['from']:>6}-{b['to']:<6} {'#' * round(30 * b['count'] / top):<30} {b['count']}")
        for p in s["template_problems"][:5]:
            print(f"  template problem: {p}")


def add_data(sub) -> None:
    """`tunesmith data SUBCOMMAND`: one sub-parser per entry of DATA_COMMANDS (below, with the handlers)."""
    d = sub.add_parser("data", help="data tools: validate, preview, clean, split, augment, synth",
                       description="data tools")
    dsub = d.add_subparsers(dest="data_command", required=True, metavar="DATA_COMMAND")
    data_or_config = "a data file (.jsonl .json .txt .csv .tsv .parquet) or a run config (YAML)"
    for name, help_text in (("validate", "check every row (file:line: error|warning) without loading a model; "
                             "exit 2 on errors; --stats adds token statistics"),
                            ("preview", "show tokenized rows with the trained tokens highlighted")):
        s = dsub.add_parser(name, help=help_text, description=help_text)
        s.add_argument("target", help=data_or_config)
        s.add_argument("overrides", nargs="*", metavar="key=value", help="e.g. data.format=sharegpt")
        if name == "validate":
            s.add_argument("--json", action="store_true", help="print the report as JSON")
            s.add_argument("--stats", action="store_true", help="also load the model's tokenizer and print token "
                           "statistics (lengths, loss share, end-of-turn); a config target always does")
        else:
            s.add_argument("-n", type=int, default=3, help="rows to show")
            s.add_argument("--html", default=None, help="also write an HTML preview to this path")
    s = dsub.add_parser("clean", help="curate: normalise, filter, PII, toxicity, decontaminate, dedup",
                        description="run the data.clean steps (set them as overrides, e.g. data.clean.dedup=near)")
    s.add_argument("target", help="a data file or a run config (YAML)")
    s.add_argument("overrides", nargs="*", metavar="key=value", help="e.g. data.clean.pii=redact")
    s.add_argument("--out", default=None, help="output folder (default data-clean/<name>)")
    s = dsub.add_parser("split", help="split a data file into train/validation/test files",
                        description="deterministic splits: random, stratified, temporal or grouped")
    s.add_argument("target", help="a data file")
    s.add_argument("--ratios", default="train=0.8,validation=0.1,test=0.1", help="name=fraction,...")
    s.add_argument("--method", default="random", choices=["random", "stratified", "temporal", "grouped"])
    s.add_argument("--key", default=None, help="label (stratified), date (temporal) or group (grouped) field")
    s.add_argument("--seed", type=int, default=42)
    s.add_argument("--out", default=None, help="output folder (default <file>-split)")
    s = dsub.add_parser("augment", help="augmented copies of some rows (typos, articles, entities, synonyms, "
                        "paraphrase, back_translate), labelled synthetic, deduplicated and capped")
    s.add_argument("target", help="a data file or a run config (YAML)")
    s.add_argument("overrides", nargs="*", metavar="key=value")
    s.add_argument("--methods", default="typos,drop_articles,swap_entities,synonyms",
                   help="comma list; paraphrase and back_translate need --model")
    s.add_argument("--fraction", type=float, default=0.2, help="share of rows to copy, per method")
    s.add_argument("--max-fraction", type=float, default=0.3, help="cap on synthetic rows in the final set")
    s.add_argument("--model", default=None, help="local model for paraphrase / back-translation")
    s.add_argument("--out", default=None, help="output folder (default data-augment/<name>)")
    s = dsub.add_parser("synth", help="self-instruct synthetic rows from seed tasks with a local model")
    s.add_argument("target", help="seed tasks (.jsonl: instruction, instances: [{input, output}])")
    s.add_argument("--n", type=int, default=20, help="rows to generate")
    s.add_argument("--model", default="smollm2-135m-instruct")
    s.add_argument("--real", default=None, help="real training data to deduplicate against and cap by")
    s.add_argument("--max-fraction", type=float, default=0.3)
    s.add_argument("--seed", type=int, default=42)
    s.add_argument("--out", default=None, help="output folder (default data-synth)")


def _data_validate(args) -> int:
    """Rows first, without a model (fast); token statistics when asked (--stats) or when the target
    is a config, which names its model."""
    from pathlib import Path

    from tunesmith import api
    from tunesmith.data.readers import SUFFIXES
    from tunesmith.data.validate import FileSpec, check_files, config_files

    cfg = api.data_config(args.target, args.overrides)
    bare = Path(args.target).suffix.lower() in SUFFIXES
    files = [FileSpec(args.target, cfg.data.format, cfg.data.columns)] if bare else config_files(cfg.data)
    structure = check_files(files, cfg.data.max_row_bytes, vision=cfg.vision, config_path=cfg.config_path)
    if (not structure.ok and cfg.data.on_error == "fail") or (bare and not args.stats):
        return print_validation(structure, args.json)
    report = api.validate(cfg)
    if args.json:
        print(json.dumps({"validation": structure.as_dict(), "statistics": report}, indent=2, ensure_ascii=True))
        return 0
    print_validation(structure, False)
    print_data_report(report)
    return 0


def _data_preview(args) -> int:
    from tunesmith import api
    from tunesmith.data.inspect import render_html, render_terminal

    examples, rows, tok = api.preview(args.target, args.overrides, n=args.n)
    print(render_terminal(tok, rows, examples), end="")
    if args.html:
        from pathlib import Path

        Path(args.html).write_text(render_html(tok, rows, examples), encoding="utf-8")
        print(f"wrote {args.html}")
    return 0


def _data_clean(args) -> int:
    from tunesmith import api

    out = api.data_clean(args.target, args.overrides, args.out)
    report = json.loads((out / "clean_report.json").read_text())["clean"]
    print(f"clean: {report['before']['rows']} rows -> {report['after']['rows']}; dropped by reason: "
          f"{report['dropped'] or 'none'}")
    for step in report["steps"]:
        extra = {k: v for k, v in step.items() if k not in ("step", "rows_before", "rows_after", "contaminated")}
        print(f"  {step['step']:<14} {step['rows_before']:>7} -> {step['rows_after']:<7} {extra or ''}")
    print(f"wrote {out}/clean.jsonl, clean_report.json, manifest.json")
    return 0


def _data_split(args) -> int:
    from tunesmith import api

    ratios = _parse_ratios(args.ratios)
    out = api.data_split(args.target, ratios, method=args.method, key=args.key, seed=args.seed, out=args.out)
    report = json.loads((out / "split_report.json").read_text())
    for name, info in report["splits"].items():
        print(f"  {name:<12} {info['rows']:>7} rows  {info['path']}")
    if report["leakage"]:
        print(f"leakage: {report['leakage']}")
        return 1
    print(f"wrote {out}/ (split_report.json, manifest.json)")
    return 0


def _parse_ratios(text: str) -> dict[str, float]:
    """'train=0.8,test=0.2' -> {"train": 0.8, "test": 0.2}; names become file names, so plain ones only."""
    import re

    from tunesmith.errors import fail

    ratios = {}
    for part in text.split(","):
        name, _, value = (x.strip() for x in part.partition("="))
        try:
            number = float(value)
        except ValueError:
            raise fail(f"'{part}' is not name=fraction", "write e.g. --ratios train=0.8,validation=0.1,test=0.1",
                       field="--ratios") from None
        if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9_-]*", name):
            raise fail(f"split name {name!r} is not a plain file name", "use letters, digits, '_' and '-'",
                       field="--ratios")
        if name in ratios:
            raise fail(f"split '{name}' is named twice", "name each split once", field="--ratios")
        ratios[name] = number
    return ratios


def _data_augment_or_synth(args) -> int:
    """The final set's counts (synthetic share, duplicates dropped, cap applied)."""
    from tunesmith import api

    if args.data_command == "augment":
        out = api.data_augment(args.target, args.overrides, methods=args.methods.split(","), fraction=args.fraction,
                               max_fraction=args.max_fraction, model=args.model, out=args.out)
    else:
        out = api.data_synth(args.target, n=args.n, model=args.model, real=args.real, max_fraction=args.max_fraction,
                             seed=args.seed, out=args.out)
    fin = json.loads((out / f"{args.data_command}_report.json").read_text())["finalize"]
    print(json.dumps({k: v for k, v in fin.items() if not isinstance(v, list)}, indent=1))
    print(f"wrote {out}/ (rows, report, manifest.json)")
    return 0


DATA_COMMANDS = {"validate": _data_validate, "preview": _data_preview, "clean": _data_clean, "split": _data_split,
                 "augment": _data_augment_or_synth, "synth": _data_augment_or_synth}

