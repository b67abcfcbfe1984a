"""Federated LoRA on Flower's simulation engine with the tiny model: the shipped config with three
clients, the aggregate checked against the clients' own updates, SecAgg+ and FedProx, client DP.

Each simulation starts Ray (a few seconds), so the module runs two: the shipped config under plain
FedAvg (client updates kept), and the same under SecAgg+ through FedProx's server path. The client's
FedProx term and DP-SGD are checked on one client round in this process, without Flower.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

import tunesmith

ROOT = Path(__file__).resolve().parents[2]
SHIPPED = ROOT / "configs" / "federated-lora.yaml"


def _overrides(tiny_model_dir, out: Path, **extra) -> dict:
    return {"model.name": str(tiny_model_dir), "output_dir": str(out), "federated.rounds": 2,
            "federated.local_steps": 2, "train.batch_size": 4, "train.learning_rate": 1e-2,
            "train.precision": "fp32", "train.lr_scheduler": "constant", "train.warmup_ratio": 0.0,
            "energy.enabled": False, **extra}


@pytest.fixture(scope="module")
def fed_run(tmp_path_factory, tiny_model_dir) -> Path:
    out = tmp_path_factory.mktemp("federated")
    return tunesmith.train(SHIPPED, _overrides(tiny_model_dir, out, **{"federated.save_client_updates": True}),
                           show_progress=False)


def _load(path: Path) -> tuple[dict, int | None]:
    from safetensors import safe_open
    from safetensors.numpy import load_file

    with safe_open(str(path), "np") as f:
        meta = f.metadata() or {}
    return load_file(str(path)), int(meta["num_examples"]) if "num_examples" in meta else None


def test_shipped_config_trains_three_clients_and_records_every_round(fed_run):
    manifest = json.loads((fed_run / "manifest.json").read_text())
    assert manifest["status"] == "completed" and manifest["result"]["steps"] == 4
    fed = manifest["federated"]
    assert [c["rows"] for c in fed["clients"]] and len(fed["clients"]) == 3
    assert [r["round"] for r in fed["history"]] == [0, 1, 2]
    for r in fed["history"][1:]:  # every client trained each round, weighted by the rows it holds
        assert [c["client"] for c in r["clients"]] == [0, 1, 2]
        assert [c["num-examples"] for c in r["clients"]] == [c["rows"] for c in fed["clients"]]
        assert r["eval_loss"] is not None
    rows = [json.loads(line) for line in (fed_run / "metrics.jsonl").read_text().splitlines()]
    assert [r["round"] for r in rows] == [0, 1, 2] and rows[-1]["step"] == 4


def test_aggregated_adapter_is_the_example_weighted_average_of_the_client_updates(fed_run):
    for r in (1, 2):
        folder = fed_run / "federated" / f"round-{r}"
        clients = [_load(folder / f"client-{k}.safetensors") for k in range(3)]
        aggregate, _ = _load(folder / "aggregate.safetensors")
        total = sum(n for _, n in clients)
        assert set(aggregate) == set(clients[0][0])
        for key, value in aggregate.items():
            expected = sum(n * arrays[key] for arrays, n in clients) / total
            np.testing.assert_allclose(value, expected, rtol=1e-5, atol=1e-7)
        # the clients really differ (non-IID files), so the check above can fail
        assert any(not np.array_equal(clients[0][0][k], clients[2][0][k]) for k in aggregate)
    final, _ = _load(fed_run / "adapter" / "adapter_model.safetensors")
    last, _ = _load(fed_run / "federated" / "round-2" / "aggregate.safetensors")
    assert set(final) == set(last) and all(np.array_equal(final[k], last[k]) for k in final)


def test_federated_run_loads_with_plain_peft_and_tunesmith_generate(fed_run, tiny_model_dir):
    from peft import PeftModel
    from transformers import AutoModelForCausalLM

    model = PeftModel.from_pretrained(AutoModelForCausalLM.from_pretrained(tiny_model_dir), fed_run / "adapter")
    b = [p for n, p in model.named_parameters() if "lora_B" in n]
    assert b and any(float(p.abs().sum()) > 0 for p in b), "the aggregated adapter is still the initial one"
    (reply,) = tunesmith.generate(fed_run, "Meet Ana, a 30-year-old chef in Oslo.", max_new_tokens=4)
    assert isinstance(reply, str)


def test_secagg_through_fedprox_equals_plain_fedavg_up_to_quantization(fed_run, tiny_model_dir, tmp_path):
    # FedProx with mu 0 is FedAvg on the server; SecAgg+ only quantizes (secagg.py: ~1e-6 per value).
    # One round, compared with the plain run's first aggregate: later rounds start Adam from weights
    # that differ by that quantization, and Adam's first steps (~lr x sign of the gradient) would
    # magnify it wherever a gradient is near zero.
    run = tunesmith.train(SHIPPED, _overrides(tiny_model_dir, tmp_path, **{
        "federated.rounds": 1, "federated.strategy": "fedprox", "federated.proximal_mu": 0.0,
        "federated.secure_aggregation": True}), show_progress=False)
    manifest = json.loads((run / "manifest.json").read_text())
    assert manifest["federated"]["secure_aggregation"] and manifest["federated"]["strategy"] == "fedprox"
    assert [c["num-examples"] for c in manifest["federated"]["history"][1]["clients"]] == \
        [c["rows"] for c in manifest["federated"]["clients"]]  # counts and losses still reach the server
    assert not (run / "federated" / "round-1").exists()  # the server never saw a client's adapter
    secure, _ = _load(run / "adapter" / "adapter_model.safetensors")
    plain, _ = _load(fed_run / "federated" / "round-1" / "aggregate.safetensors")
    assert any(np.abs(v).max() > 1e-3 for k, v in plain.items() if "lora_B" in k)  # the round did train
    for key in plain:
        np.testing.assert_allclose(secure[key], plain[key], atol=5e-5)


# --------------------------------------------------------------------------- one client round, no Flower


@pytest.fixture
def client(tiny_config):
    from tunesmith.federated import local

    def make(**over):
        raw = {**tiny_config, "federated": {"enabled": True, "rounds": 2, "local_steps": 4}}
        cfg = tunesmith.load_config(raw, over)
        h = local.held(cfg)
        return cfg, h, local.client_rows(cfg, h.tokenizer, 0)

    return make


def _distance(a: dict, b: dict) -> float:
    return float(sum(np.square(a[k] - b[k]).sum() for k in a))


def test_fedprox_term_keeps_a_client_nearer_the_global_adapter(client):
    from tunesmith.federated import local

    cfg, h, rows = client()
    start = h.initial
    free, m = local.train_round(cfg, h, rows, start, server_round=1, client=0, proximal_mu=0.0)
    held, _ = local.train_round(cfg, h, rows, start, server_round=1, client=0, proximal_mu=50.0)
    assert m["num-examples"] == len(rows) and np.isfinite(m["train-loss"])
    assert 0 < _distance(held, start) < _distance(free, start)


def test_client_dp_round_spends_epsilon_that_grows_over_rounds(client):
    from tunesmith.federated import local

    cfg, h, rows = client(**{"privacy.enabled": True, "privacy.noise_multiplier": 1.0, "privacy.delta": 1e-3})
    start = h.initial
    first, m1 = local.train_round(cfg, h, rows, start, server_round=1, client=0)
    _, m2 = local.train_round(cfg, h, rows, first, server_round=2, client=0, dp_steps_before=m1["dp-steps"])
    assert _distance(first, start) > 0
    assert m1["dp-steps"] == 4 and m2["dp-steps"] == 8
    assert 0 < m1["epsilon"] < m2["epsilon"]
    assert not any(hasattr(p, "grad_sample") for p in h.model.parameters())  # opacus's hooks are gone
