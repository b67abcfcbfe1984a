"""check_federated: what a federated run can be, refused before anything loads."""

from __future__ import annotations

from pathlib import Path

import pytest

import tunesmith
from tunesmith.errors import TunesmithError

ROOT = Path(__file__).resolve().parents[3]


def config(**over):
    raw = {"name": "fed", "data": {"train": ["a.jsonl"]}, "federated": {"enabled": True}}
    for key, value in over.items():
        section, _, field = key.partition(".")
        if field:
            raw.setdefault(section, {})[field] = value
        else:
            raw[section] = value
    return raw


def problems(**over) -> dict[str, str]:
    with pytest.raises(TunesmithError) as err:
        tunesmith.load_config(config(**over))
    return {p.field: p.problem for p in err.value.problems}


def test_a_plain_federated_config_loads():
    cfg = tunesmith.load_config(config())
    assert cfg.federated.enabled and cfg.federated.strategy == "fedavg"


def test_disabled_section_is_not_checked():
    tunesmith.load_config(config(**{"federated": {"enabled": False, "rounds": 0}}))


@pytest.mark.parametrize(("over", "field"), [
    ({"recipe": "dpo"}, "recipe"),
    ({"train.method": "full"}, "train.method"),
    ({"train.method": "ia3"}, "train.method"),
    ({"train.launcher": "ray"}, "train.launcher"),
    ({"federated.num_clients": 1}, "federated.num_clients"),
    ({"federated.rounds": 0}, "federated.rounds"),
    ({"federated.local_steps": 0}, "federated.local_steps"),
    ({"federated.fraction_fit": 0.0}, "federated.fraction_fit"),
    ({"federated.fraction_fit": 1.5}, "federated.fraction_fit"),
    ({"federated.proximal_mu": -0.1}, "federated.proximal_mu"),
    ({"federated.partition": "files"}, "data.train"),  # one file is one client
    ({"lora.use_dora": True}, "lora"),
    ({"train.time_budget": 5}, "train.time_budget"),
    ({"moe.targets": ["attention"], "lora.dropout": 0.0}, "moe.targets"),  # federated/local.py applies no MoE
    ({"moe.router_aux_loss_coef": 0.01}, "moe.router_aux_loss_coef"),  # targets nor the router's aux loss
])
def test_refusals_name_their_key(over, field):
    found = problems(**over)
    assert field in found, found


def test_fedprox_with_dp_and_secagg_with_saved_updates_are_refused():
    found = problems(**{"federated": {"enabled": True, "strategy": "fedprox", "secure_aggregation": True,
                                      "save_client_updates": True}, "privacy": {"enabled": True}})
    assert {"federated.strategy", "federated.save_client_updates"} <= set(found)


def test_secagg_needs_two_clients_a_round():
    found = problems(**{"federated": {"enabled": True, "secure_aggregation": True, "fraction_fit": 0.3}})
    assert "federated.fraction_fit" in found
    tunesmith.load_config(config(**{"federated": {"enabled": True, "secure_aggregation": True, "fraction_fit": 0.67}}))


def test_cpt_and_files_partitions_are_accepted():
    tunesmith.load_config(config(recipe="cpt", data={"train": ["a.txt"]}))
    tunesmith.load_config(config(data={"train": ["a.jsonl", "b.jsonl"]}, **{"federated": {"enabled": True,
                                                                                         "partition": "files"}}))


def test_validate_reports_rounds_and_client_steps_instead_of_epochs(smollm2_dir):
    import tunesmith

    report = tunesmith.validate(ROOT / "configs" / "federated-lora.yaml", {"federated.fraction_fit": 0.5},
                                kinds=("chat",))
    assert report["federated"]["clients"] == 3 and report["federated"]["rounds"] == 4
    assert report["federated"]["client_steps"] == 2 * 4 * 10  # half of 3 clients rounds up to 2 a round
    assert not {"train.epochs", "train.eval_steps", "train.early_stopping_patience"} & set(report["auto"])


def test_a_file_listed_twice_under_partition_files_is_refused():
    raw = config(**{"federated.partition": "files"})
    raw["data"]["train"] = [raw["data"]["train"][0]] * 2
    with pytest.raises(TunesmithError) as err:
        tunesmith.load_config(raw)
    assert any(p.field == "data.train" and "listed more than once" in p.problem for p in err.value.problems)
