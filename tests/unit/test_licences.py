"""The licence table, the cascade's verdicts, where licences are read from, and `validate` saying it."""

from __future__ import annotations

import json

import pytest
import yaml

from tunesmith import licences as L

CATEGORIES = {"public-domain", "permissive", "attribution", "share-alike", "non-commercial", "use-restricted",
              "unknown"}


@pytest.mark.parametrize("text, key, category", [
    ("CC-BY-NC-4.0", "CC-BY-NC-4.0", "non-commercial"),
    ("cc by-nc 4.0", "CC-BY-NC-4.0", "non-commercial"),
    ("CC BY-NC-SA 4.0", "CC-BY-NC-SA-4.0", "non-commercial"),
    ("cc-by-nc-nd", "CC-BY-NC-ND-4.0", "non-commercial"),
    ("CC-BY-SA-3.0", "CC-BY-SA-3.0", "share-alike"),
    ("cc by-sa 4.0", "CC-BY-SA-4.0", "share-alike"),
    ("GPL-3.0", "GPL-3.0", "share-alike"),
    ("ODbL", "ODbL-1.0", "share-alike"),
    ("CC BY 4.0", "CC-BY-4.0", "attribution"),
    ("odc-by", "ODC-BY-1.0", "attribution"),
    ("CC0", "CC0-1.0", "public-domain"),
    ("Apache License 2.0", "Apache-2.0", "permissive"),
    ("apache-2.0", "Apache-2.0", "permissive"),
    ("MIT License (see LICENSE beside the data)", "MIT", "permissive"),
    ("BSD-2-Clause", "BSD-2-Clause", "permissive"),
    ("bsd-3-clause", "BSD-3-Clause", "permissive"),
    ("llama2", "llama2", "use-restricted"),
    ("Llama 3", "llama3", "use-restricted"),
    ("llama3.1", "llama3.1", "use-restricted"),
    ("Llama 3.2 Community License", "llama3.2", "use-restricted"),
    ("llama3.3", "llama3.3", "use-restricted"),
    ("gemma", "gemma", "use-restricted"),
    ("Gemma Terms of Use", "gemma", "use-restricted"),
    ("openrail", "openrail", "use-restricted"),
    ("bigscience-openrail-m", "bigscience-openrail-m", "use-restricted"),
    ("other", "unknown", "unknown"),
    ("my-own-licence-2.0", "unknown", "unknown"),
    (None, "unknown", "unknown"),
])
def test_ids_and_aliases_resolve_case_insensitively(text, key, category):
    found = L.lookup(text)
    assert (found["id"], found["category"]) == (key, category)


def test_the_table_is_well_formed_and_no_alias_names_two_licences():
    seen = {}
    for key, entry in L.table().items():
        assert entry["category"] in CATEGORIES, key
        assert entry["obligations"] and entry["name"], key
        if entry["category"] == "use-restricted":
            assert entry.get("restrictions"), key
        for name in [key, *(entry.get("aliases") or [])]:
            norm = L._norm(str(name))
            assert seen.setdefault(norm, key) == key, f"{name!r} names both {seen[norm]} and {key}"
    assert L.lookup("llama3.1")["restrictions"][0].startswith("More than 700 million monthly active users")
    assert any("Prohibited Use Policy" in r for r in L.lookup("gemma")["restrictions"])


def _cascade(base, *data):
    return L.cascade(("base", base, "registry"), [(f"/d/{name}.jsonl", lic, "config") for name, lic in data])


def test_non_commercial_data_restricts_the_output_and_names_the_file():
    out = _cascade("Apache-2.0", ("chats", "CC-BY-NC-4.0"), ("extra", "MIT"))
    assert out["category"] == "non-commercial" and out["commercial_use"] is False
    assert out["verdict"].startswith("research and other non-commercial use only")
    assert out["warnings"] == ["data file chats.jsonl is CC-BY-NC-4.0 (non-commercial): the fine-tuned model may be "
                               "used for research and other non-commercial purposes only"]
    assert L.hub_licence(out) == {"license": "other", "license_name": "apache-2.0-and-cc-by-nc-4.0"}


def test_share_alike_says_it_may_reach_the_weights_and_that_this_is_unsettled():
    out = _cascade("Apache-2.0", ("wiki", "CC-BY-SA-4.0"))
    assert out["category"] == "share-alike" and out["commercial_use"] is True
    assert "share-alike obligations may apply to the weights (CC-BY-SA-4.0)" in out["verdict"]
    assert "legally unsettled" in out["verdict"]
    assert len(out["warnings"]) == 1 and "wiki.jsonl is CC-BY-SA-4.0 (share-alike)" in out["warnings"][0]
    assert L.hub_licence(out)["license"] == "other"


def test_gpl_data_is_flagged_as_copyleft_on_data():
    out = _cascade("MIT", ("code", "GPL-3.0"))
    assert out["warnings"] and "GPL-3.0 (share-alike)" in out["warnings"][0]
    assert any("applied to data" in o for o in out["obligations"])


@pytest.mark.parametrize("base, words", [
    ("llama3.1", ["subject to the Llama 3.1 Community License", "700 million", "Acceptable Use Policy",
                  "Built with Llama"]),
    ("llama3", ["Meta Llama 3 Community License", "Built with Meta Llama 3", "improve other large language models"]),
    ("llama2", ["Llama 2 Community License", "700 million"]),
    ("llama3.2", ["European Union"]),
    ("gemma", ["subject to the Gemma Terms of Use", "Prohibited Use Policy", "flow down"]),
    ("openrail", ["use-based restrictions"]),
])
def test_use_restricted_bases_carry_their_terms_into_the_verdict(base, words):
    out = _cascade(base, ("rows", "MIT"))
    assert out["category"] == "use-restricted" and out["commercial_use"] is True
    assert out["uses"] == "commercial and non-commercial use within the use restrictions"
    for w in words:
        assert w in out["verdict"], w
    assert len(out["warnings"]) == 1 and out["warnings"][0].startswith(f"base model base is {L.lookup(base)['id']}")
    assert L.hub_licence(out) == {"license": L.lookup(base)["hub"]}  # a plain Llama/Gemma fine-tune keeps its id
    # Data under the base's own terms (its generated output, say) adds nothing; NC data does.
    assert L.hub_licence(_cascade(base, ("gen", base))) == {"license": L.lookup(base)["hub"]}
    hub = L.lookup(base)["hub"]
    assert L.hub_licence(_cascade(base, ("nc", "CC-BY-NC-4.0")))["license_name"] == f"{hub}-and-cc-by-nc-4.0"


def test_permissive_attribution_and_public_domain_inputs_give_no_warning():
    out = _cascade("Apache-2.0", ("a", "MIT"), ("b", "CC-BY-4.0"), ("c", "CC0-1.0"))
    assert out["warnings"] == [] and out["category"] == "attribution"
    assert out["verdict"] == "commercial and non-commercial use; credit the sources as CC-BY-4.0 require"
    assert L.hub_licence(out) == {"license": "apache-2.0"}
    assert _cascade("CC0-1.0", ("a", "CC0-1.0"))["verdict"] == "commercial and non-commercial use"


def test_unknown_inputs_leave_the_verdict_open_and_are_warned_about():
    out = _cascade(None, ("mystery", None), ("odd", "my-own-licence-2.0"))
    assert out["category"] == "unknown" and out["commercial_use"] is None
    assert out["uses"].startswith("not determined")
    assert out["warnings"] == [
        "base model base has no known licence: check the base model's card",
        "data file mystery.jsonl has no known licence: set data.license or data.sources[].license to its SPDX id",
        "data file odd.jsonl has no known licence ('my-own-licence-2.0' is not in tunesmith's licence table): set "
        "data.license or data.sources[].license to its SPDX id"]
    assert L.hub_licence(out) == {"license": "other", "license_name": "see the base model's card"}
    # Non-commercial wins over unknown: whatever the unknown one says, commercial use is already out.
    assert _cascade("MIT", ("a", None), ("b", "CC-BY-NC-4.0"))["commercial_use"] is False


def test_no_derivatives_says_the_model_may_not_be_shared():
    out = _cascade("Apache-2.0", ("a", "CC-BY-NC-ND-4.0"))
    assert "NoDerivatives: a model adapted from this material may not be shared" in out["verdict"]


def test_config_licence_wins_over_a_readme_and_a_readme_over_nothing(tmp_path):
    (tmp_path / "hub").mkdir()
    (tmp_path / "hub" / "README.md").write_text("---\nlicense: cc-by-sa-4.0\n---\n# card\n")
    (tmp_path / "hub" / "a.jsonl").write_text("{}\n")
    (tmp_path / "b.jsonl").write_text("{}\n")
    a, b = str(tmp_path / "hub" / "a.jsonl"), str(tmp_path / "b.jsonl")
    assert L.data_licences([a], [(b, "CC-BY-NC-4.0")], None) == [
        (a, "cc-by-sa-4.0", str(tmp_path / "hub" / "README.md")),
        (b, "CC-BY-NC-4.0", "config: data.sources[0].license")]
    assert L.data_licences([a, b], [], "MIT") == [(a, "MIT", "config: data.license"),
                                                  (b, "MIT", "config: data.license")]
    assert L.data_licences([b], [], None) == [(b, None, "not found (set it in the config)")]


def test_base_licence_from_the_registry_or_a_model_folder_readme(tmp_path):
    assert L.base_licence("smollm2-135m-instruct", "embedded", "x")[1:] == ("Apache-2.0", "tunesmith model registry")
    assert L.base_licence("all-minilm-l6-v2", "embedded", "x")[1] == "Apache-2.0"
    (tmp_path / "README.md").write_text("---\nlicense: gemma\nlibrary_name: transformers\n---\n# Gemma 3 270M\n")
    name, lic, where = L.base_licence(str(tmp_path), "dir", str(tmp_path))
    assert lic == "gemma" and "front matter" in where
    (tmp_path / "README.md").write_text("# no front matter\n")
    assert L.base_licence(str(tmp_path), "dir", str(tmp_path))[1] is None
    assert L.base_licence("nobody/nothing-here", "hub", "nobody/nothing-here")[1] is None  # not cached: unknown


@pytest.fixture
def nc_config(tmp_path, tiny_model_dir, tiny_data):
    cfg = {"name": "nc", "output_dir": str(tmp_path / "runs"), "model": {"name": str(tiny_model_dir)},
           "data": {"sources": [{"path": str(tiny_data), "license": "CC-BY-NC-4.0"}], "max_length": 256}}
    path = tmp_path / "nc.yaml"
    path.write_text(yaml.safe_dump(cfg))
    return path


def test_validate_prints_the_licence_warning_and_the_verdict(nc_config, capsys):
    from tunesmith.cli import main

    assert main(["validate", str(nc_config)]) == 0
    out = capsys.readouterr().out
    assert "data train.jsonl: CC-BY-NC-4.0 (non-commercial; from config: data.sources[0].license)" in out
    assert "warning: data file train.jsonl is CC-BY-NC-4.0 (non-commercial)" in out
    assert "the fine-tuned model may be used for: research and other non-commercial use only" in out

    assert main(["validate", str(nc_config), "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["licences"]["commercial_use"] is False
    assert report["licences"]["warnings"] == [  # the tiny model's folder has no README: its licence is unknown
        f"base model {report['model']['spec']} has no known licence: check the base model's card",
        "data file train.jsonl is CC-BY-NC-4.0 (non-commercial): the fine-tuned model may be used for research and "
        "other non-commercial purposes only"]
