"""Licences of a run's inputs (the base model and every training file) and what they allow the
fine-tuned model to be used for: the licence cascade.

Each input's licence comes from the config first (data.sources[].license, data.license), then from
a file beside it (a README's front matter or licence table, a LICENSE file), for the base model from
the registry or its folder's README; what none of them names is "unknown", never guessed. The table
of licences (category, obligations, use restrictions) is data: licences.yaml beside this file.

The verdict is a plain-language summary for the model card and `validate`, not legal advice.
"""

from __future__ import annotations

import re
from functools import cache
from pathlib import Path

# Worst first: the combined category is the first one any input has.
SEVERITY = ("non-commercial", "unknown", "use-restricted", "share-alike", "attribution", "permissive",
            "public-domain")
NOT_LEGAL_ADVICE = ("A summary of the inputs' licences to help you check them, not legal advice: read each licence "
                    "before relying on it.")


@cache
def table() -> dict[str, dict]:
    """licences.yaml: id -> {name, category, hub, obligations, restrictions, aliases}."""
    import yaml

    return yaml.safe_load(Path(__file__).with_name("licences.yaml").read_text(encoding="utf-8"))


def _norm(text: str) -> str:
    """Case, spaces/underscores vs hyphens and the words license/licence do not matter."""
    text = re.sub(r"[\s_]+", "-", text.strip().lower())
    text = re.sub(r"-?\blicen[cs]e\b-?", "-", text)
    return re.sub(r"-+", "-", text).strip("-")


@cache
def _index() -> dict[str, str]:
    index = {}
    for key, entry in table().items():
        for name in [key, *(entry.get("aliases") or [])]:
            index[_norm(str(name))] = key
    return index


def lookup(licence: str | None) -> dict:
    """{id, licence_name, category, hub, obligations, restrictions, recognised} of a licence id or alias; an
    unmatched or missing one is category "unknown" (recognised: False when the text names a licence
    that the table lacks, so the warning can say so)."""
    text = (licence or "").strip()
    # "MIT License (see LICENSE beside the data)": data_licence's answer for a LICENSE file
    for candidate in (text, re.sub(r"\s*\(see .*\)$", "", text)):
        key = _index().get(_norm(candidate)) if candidate else None
        if key and key != "other":
            entry = table()[key]
            return {"id": key, "licence_name": entry["name"], "category": entry["category"], "hub": entry.get("hub"),
                    "obligations": entry["obligations"], "restrictions": list(entry.get("restrictions") or []),
                    "recognised": True}
        if key:  # "unknown", "other", "custom": said to be unknown
            break
    return {"id": "unknown", "licence_name": text or "unknown", "category": "unknown", "hub": None,
            "obligations": table()["other"]["obligations"], "restrictions": [],
            "recognised": not text or _index().get(_norm(text)) == "other"}


# --------------------------------------------------------------------------- where licences come from


def _front_matter_licence(text: str) -> str | None:
    m = re.match(r"^---\r?\n(.*?)\r?\n---", text, re.S)
    lic = re.search(r"^licen[cs]e:\s*(.+)$", m.group(1), re.M) if m else None
    return lic.group(1).strip().strip("'\"") if lic else None


def beside(path: str | Path) -> tuple[str, str] | None:
    """(licence, where it was found) when a file beside a data file names its licence, else None.

    Looks in the file's folder and the two above it for a README.md with Hub dataset-card front
    matter (`license: ...`) or a markdown table with a licence column and a row naming the file, then
    for a LICENSE file in the file's own folder."""
    path = Path(path)
    for folder in [path.parent, *list(path.parents)[1:3]]:
        readme = folder / "README.md"
        if not readme.is_file():
            continue
        text = readme.read_text(encoding="utf-8", errors="replace")
        found = _front_matter_licence(text) or _licence_from_table(text, path, folder)
        if found:
            return found, f"{readme}"
    for lic in sorted(path.parent.glob("LICEN[CS]E*")):
        first = next((ln.strip() for ln in lic.read_text(errors="replace").splitlines() if ln.strip()), "")
        text = f"{first[:60]} (see {lic.name} beside the data)" if first else f"see {lic.name} beside the data"
        return text, str(lic)
    return None


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


def base_licence(spec: str, kind: str, path: str) -> tuple[str, str | None, str]:
    """(model, licence or None, where it was found) of a base model: the registry for an embedded
    model, else the front matter of the README.md in its folder (a local folder, the Hugging Face
    cache of a hub id, the folder of a .gguf file)."""
    from tunesmith.models.registry import embedded_models

    entry = embedded_models().get(spec)
    if entry and entry.get("licence"):
        return spec, entry["licence"], "tunesmith model registry"
    readme = None
    if kind == "dir":
        readme = Path(path) / "README.md"
    elif kind == "gguf":
        readme = Path(path).parent / "README.md"
    elif kind == "hub":
        try:  # the cached model card only: nothing is downloaded
            from huggingface_hub import try_to_load_from_cache

            cached = try_to_load_from_cache(path, "README.md")
            readme = Path(cached) if isinstance(cached, str) else None
        except Exception:  # noqa: BLE001 - no cache, no card: the licence stays unknown
            readme = None
    if readme is not None and readme.is_file():
        found = _front_matter_licence(readme.read_text(encoding="utf-8", errors="replace"))
        if found:
            return spec, found, f"front matter of {readme}"
    return spec, None, "not found (no registry entry, no README.md front matter)"


def data_licences(train: list[str], sources: list[tuple[str, str | None]], default: str | None
                  ) -> list[tuple[str, str | None, str]]:
    """(path, licence or None, where it was found) of every training file: the config first
    (`default` is data.license for the `train` files, each source its own), then a file beside it."""
    out = []
    for path, given, key in ([(p, default, "data.license") for p in train]
                             + [(p, lic, f"data.sources[{i}].license") for i, (p, lic) in enumerate(sources)]):
        if given:
            out.append((path, given, f"config: {key}"))
            continue
        found = beside(path)
        out.append((path, *found) if found else (path, None, "not found (set it in the config)"))
    return out


def check(data, source) -> dict:
    """The cascade of a run: `data` the config's data section, `source` the resolved ModelSource."""
    return cascade(base_licence(source.spec, source.kind, source.path),
                   data_licences(list(data.train), [(s.path, s.license) for s in data.sources], data.license))


# --------------------------------------------------------------------------- the cascade


def cascade(base_licence: tuple[str, str | None, str] | str | None,
            data_licences: list[tuple[str, str | None, str]]) -> dict:
    """Each input's licence and category, what the fine-tuned model may be used for, and one
    warning per non-commercial, share-alike, use-restricted or unknown input.

    `base_licence`: (model, licence, where from), or just the licence; `data_licences`: (path,
    licence, where from) per training file. A licence of None is unknown."""
    if isinstance(base_licence, str) or base_licence is None:
        base_licence = ("base model", base_licence, "given")
    inputs = [{"role": "base model", "name": base_licence[0], "licence": base_licence[1], "from": base_licence[2],
               **lookup(base_licence[1])}]
    inputs += [{"role": "data", "name": str(p), "licence": lic, "from": where, **lookup(lic)}
               for p, lic, where in data_licences]
    cats = {i["category"] for i in inputs}
    worst = next(c for c in SEVERITY if c in cats)
    if "non-commercial" in cats:
        uses = "research and other non-commercial use only"
    elif "unknown" in cats:
        uses = "not determined: an input's licence is unknown (name it, then validate again)"
    elif "use-restricted" in cats:
        uses = "commercial and non-commercial use within the use restrictions"
    else:
        uses = "commercial and non-commercial use"
    return {"category": worst, "commercial_use": False if "non-commercial" in cats else None if "unknown" in cats
            else True, "uses": uses, "verdict": "; ".join([uses, *_conditions(inputs)]),
            "inputs": inputs, "warnings": [w for i in inputs if (w := _warning(i))],
            "obligations": sorted({f"{i['id']}: {i['obligations']}" for i in inputs if i["category"] != "unknown"}),
            "note": NOT_LEGAL_ADVICE}


def _label(i: dict) -> str:
    return f"base model {i['name']}" if i["role"] == "base model" else f"data file {Path(i['name']).name}"


def _conditions(inputs: list[dict]) -> list[str]:
    out, seen = [], set()
    for i in inputs:
        if i["restrictions"] and i["id"] not in seen:
            seen.add(i["id"])
            out.append(f"subject to the {i['licence_name']}: " + " ".join(i["restrictions"]))
    sa = sorted({i["id"] for i in inputs if i["category"] == "share-alike"})
    if sa:
        out.append(f"share-alike obligations may apply to the weights ({', '.join(sa)}): if they do, a shared model "
                   "must carry the same licence; whether share-alike terms reach the weights of a model trained on "
                   "the material is legally unsettled")
    credit = sorted({i["id"] for i in inputs if i["category"] in ("attribution", "share-alike", "non-commercial")})
    if credit:
        out.append(f"credit the sources as {', '.join(credit)} require")
    return out


def _warning(i: dict) -> str | None:
    cat, what = i["category"], _label(i)
    if cat == "non-commercial":
        return (f"{what} is {i['id']} (non-commercial): the fine-tuned model may be used for research and other "
                "non-commercial purposes only")
    if cat == "share-alike":
        return (f"{what} is {i['id']} (share-alike): sharing the fine-tuned model may require the same licence "
                "(legally unsettled for model weights)")
    if cat == "use-restricted":
        return f"{what} is {i['id']} (use-restricted): " + " ".join(i["restrictions"])
    if cat == "unknown":
        given = "" if i["recognised"] else f" ({i['licence']!r} is not in tunesmith's licence table)"
        fix = ("set data.license or data.sources[].license to its SPDX id" if i["role"] == "data"
               else "check the base model's card")
        return f"{what} has no known licence{given}: {fix}"
    return None


def hub_licence(result: dict) -> dict:
    """Model-card front matter for the fine-tune: the base model's Hub licence id when no data input
    adds terms of its own; `other` with a license_name naming every licence that binds the output
    when one does (non-commercial, share-alike or use-restricted data must not hide behind the base
    model's apache-2.0)."""
    base = next(i for i in result["inputs"] if i["role"] == "base model")
    binding = sorted({i["hub"] or _norm(i["id"]) for i in result["inputs"] if i["role"] == "data"
                      and i["category"] in ("non-commercial", "share-alike", "use-restricted")} - {base["hub"]})
    if not binding:
        return {"license": base["hub"]} if base["hub"] else {"license": "other",
                                                              "license_name": "see the base model's card"}
    parts = [base["hub"] or "base-model-licence", *binding]
    return {"license": "other", "license_name": "-and-".join(dict.fromkeys(parts))}


def summary_lines(result: dict) -> list[str]:
    """The cascade as `tunesmith validate` prints it: each input, the warnings, the verdict."""
    lines = ["licences:"]
    for i in result["inputs"]:
        name = i["name"] if i["role"] == "base model" else Path(i["name"]).name
        shown = i["id"] if i["category"] != "unknown" else (i["licence"] or "unknown")
        lines.append(f"  {i['role']} {name}: {shown} ({i['category']}; from {i['from']})")
    lines += [f"  warning: {w}" for w in result["warnings"]]
    lines += [f"  the fine-tuned model may be used for: {result['verdict']}", f"  ({result['note']})"]
    return lines
