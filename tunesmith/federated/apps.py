"""Flower's ClientApp and ServerApp for a tunesmith config (Flower's Message API, flwr >= 1.20).

What travels: the server sends the global LoRA adapter ({peft key: array}) and the round number
(plus FedProx's mu); each client sends back its trained adapter, its row count (FedAvg's weight),
its mean training loss and token count (and its epsilon under DP). No rows, tokens or gradients
leave a client. With federated.secure_aggregation the adapters travel masked (SecAgg+), so the
server learns only their weighted sum; the counts and losses stay visible.

Strategies: flwr.serverapp.strategy.FedAvg / FedProx. Flower's SecAgg+ runs only in its legacy
workflow (flwr.server.workflow.SecAggPlusWorkflow over a flwr.server.strategy.FedAvg), so that path
speaks the legacy FitIns/FitRes records; the one ClientApp answers in whichever shape it was asked.
"""

from __future__ import annotations

import json
import math
import time
from pathlib import Path

from tunesmith import runs
from tunesmith.federated import local
from tunesmith.federated.partition import clients_per_round, num_clients
from tunesmith.recipes.common import kinds

RECORDS = "federated"  # <run>/federated/round-N/: the client adapters when save_client_updates is on


def config_from(context):
    """The tunesmith config a deployed app runs: run_config["config"], a YAML path on that machine
    (`flwr run . --run-config 'config="configs/federated-lora.yaml"'`)."""
    from tunesmith.config import load_config

    path = context.run_config.get("config")
    if not path:
        from tunesmith.errors import fail

        raise fail("the Flower run has no tunesmith config", "pass it: flwr run . --run-config "
                   "'config=\"path/to/config.yaml\"' (a path every SuperNode and the SuperLink can read)")
    return load_config(str(path))


def client_of(context, cfg) -> tuple[int, str | None]:
    """(client index, own data file or None) of this SuperNode: node_config data-file (a real
    client's data), else partition-id / num-partitions (Flower's simulation sets them) picking its
    part of data.train."""
    node = context.node_config
    client = int(node.get("partition-id", 0))
    if node.get("data-file"):
        return client, str(node["data-file"])
    expected = num_clients(cfg.federated, cfg.data.train)
    if "num-partitions" in node and int(node["num-partitions"]) != expected:
        from tunesmith.errors import fail

        raise fail(f"{node['num-partitions']} SuperNodes share data.train, the config deals it to {expected} clients",
                   "make federated.num_clients match the SuperNodes (or give each node a data-file)",
                   field="federated.num_clients")
    return client, None


def _secagg_when_asked(msg, context, call_next):
    """Flower's SecAgg+ client mod, for the messages that speak SecAgg+ only (so one ClientApp
    serves plain FedAvg/FedProx rounds too)."""
    from flwr.client.mod import secaggplus_mod
    from flwr.common.secure_aggregation.secaggplus_constants import RECORD_KEY_CONFIGS

    if RECORD_KEY_CONFIGS in msg.content.config_records:
        return secaggplus_mod(msg, context, call_next)
    return call_next(msg, context)


def make_client_app(cfg=None):
    """A ClientApp training `cfg` (None: the config named in the run's run_config)."""
    from flwr.app import Array, ArrayRecord, Message, MetricRecord, RecordDict
    from flwr.clientapp import ClientApp

    app = ClientApp(mods=[_secagg_when_asked])

    @app.train()
    def train(msg, context):
        c = cfg or config_from(context)
        client, data_file = client_of(context, c)
        h = local.held(c)
        rows = local.client_rows(c, h.tokenizer, client, data_file)
        legacy = "fitins.parameters" in msg.content.array_records  # SecAgg+: Flower's legacy record shape
        if legacy:  # an ordered list of arrays: the order of peft's state dict, the same on every side
            from flwr.common import parameters_to_ndarrays
            from flwr.compat.common import recorddict_compat as compat

            keys = list(h.initial)
            fitins = compat.recorddict_to_fitins(msg.content, keep_input=True)
            sent, config = dict(zip(keys, parameters_to_ndarrays(fitins.parameters))), fitins.config
        else:
            sent = {k: v.numpy() for k, v in msg.content["arrays"].items()}
            config = dict(msg.content["config"])
        dp_steps = int(context.state.config_records["tunesmith"]["dp-steps"]) \
            if "tunesmith" in context.state.config_records else 0
        new, metrics = local.train_round(c, h, rows, sent, server_round=int(config["server-round"]), client=client,
                                         proximal_mu=float(config.get("proximal-mu", 0.0)), dp_steps_before=dp_steps)
        if "dp-steps" in metrics:  # this node's privacy spend carries over to its next round
            from flwr.app import ConfigRecord

            context.state.config_records["tunesmith"] = ConfigRecord({"dp-steps": metrics["dp-steps"]})
        if legacy:
            return Message(_fitres(compat, [new[k] for k in keys], metrics), reply_to=msg)
        return Message(RecordDict({"arrays": ArrayRecord({k: Array(v) for k, v in new.items()}),
                                   "metrics": MetricRecord(metrics)}), reply_to=msg)

    return app


def _fitres(compat, arrays: list, metrics: dict):
    from flwr.common import Code, FitRes, Status, ndarrays_to_parameters

    res = FitRes(Status(Code.OK, ""), ndarrays_to_parameters(arrays), int(metrics["num-examples"]), metrics)
    return compat.fitres_to_recorddict(res, keep_input=True)


class Rounds:
    """What the server saw each round: per-client counts and losses, the aggregate's loss and eval
    loss; written to metrics.jsonl as the rounds go, and the client adapters when asked."""

    def __init__(self, cfg, run_dir: Path | None, show: bool = True):
        self.cfg, self.dir, self.show, self.t0 = cfg, run_dir, show, time.time()
        self.rounds: dict[int, dict] = {}

    def round(self, r: int) -> dict:
        return self.rounds.setdefault(r, {"round": r, "clients": []})

    def clients(self, r: int, replies: list[tuple[dict, dict | None]]) -> None:
        """replies: (metrics, adapter or None) per client that answered round r."""
        entry = self.round(r)
        entry["clients"] = sorted(({k: v for k, v in m.items()} for m, _ in replies), key=lambda m: m["client"])
        total = sum(m["num-examples"] for m, _ in replies)
        losses = [(m["num-examples"], m["train-loss"]) for m, _ in replies if not math.isnan(m["train-loss"])]
        entry["train_loss"] = sum(n * x for n, x in losses) / sum(n for n, _ in losses) if losses else None
        entry["examples"] = total
        if self.cfg.federated.save_client_updates and self.dir is not None:
            from safetensors.numpy import save_file

            out = self.dir / RECORDS / f"round-{r}"
            out.mkdir(parents=True, exist_ok=True)
            for m, arrays in replies:
                save_file(arrays, str(out / f"client-{int(m['client'])}.safetensors"),
                          metadata={"num_examples": str(int(m["num-examples"]))})

    def aggregate(self, r: int, arrays: dict) -> None:
        if self.cfg.federated.save_client_updates and self.dir is not None and r > 0:
            from safetensors.numpy import save_file

            save_file(arrays, str(self.dir / RECORDS / f"round-{r}" / "aggregate.safetensors"))

    def evaluated(self, r: int, eval_loss: float | None) -> None:
        """The end of round r (0: the initial adapter): its metrics row."""
        entry = self.round(r)
        entry.update(eval_loss=eval_loss, seconds=round(time.time() - self.t0, 1))
        row = {"step": r * self.cfg.federated.local_steps, "round": r, "loss": entry.get("train_loss"),
               "eval_loss": eval_loss, "examples": entry.get("examples"),
               "clients": [int(m["client"]) for m in entry["clients"]]}
        if self.dir is not None:
            runs.append_metrics(self.dir, {k: v for k, v in row.items() if v is not None and v != []})
        if not self.show:
            return
        print(f"tunesmith: federated round {r}/{self.cfg.federated.rounds}: "
              + ", ".join(f"{k} {v:.4g}" for k, v in (("train loss", entry.get("train_loss")),
                                                      ("eval loss", eval_loss)) if v is not None), flush=True)

    def summary(self) -> list[dict]:
        return [self.rounds[r] for r in sorted(self.rounds)]


def make_server_app(cfg=None, run_dir: Path | None = None, box: dict | None = None, max_weight: float | None = None,
                    show: bool = True):
    """A ServerApp federating `cfg` (None: the run_config's). The final adapter and the rounds go
    into `box` (the runner's, in simulation) and, with `run_dir`, into <run_dir>/adapter/.
    `max_weight`: the largest client's row count, for SecAgg+'s weights (secagg.py)."""
    from flwr.serverapp import ServerApp

    app = ServerApp()

    @app.main()
    def main(grid, context):
        c = cfg or config_from(context)
        result = federate(grid, context, c, run_dir, max_weight, show)
        if box is not None:
            box.update(result)

    return app


def federate(grid, context, cfg, run_dir: Path | None, max_weight: float | None = None, show: bool = True) -> dict:
    """Run cfg.federated.rounds rounds on `grid`; returns {"adapter", "rounds"}."""
    from tunesmith.data.prepare import prepare

    h = local.held(cfg)
    initial = h.initial  # a fresh start even when this process federated before
    validation = local.as_dicts(prepare(cfg.data, h.tokenizer, cfg.seed, kinds(cfg)).validation)
    rec = Rounds(cfg, run_dir, show)

    def evaluate(r: int, adapter: dict) -> float | None:
        rec.aggregate(r, adapter)
        loss = None
        if validation:
            local.set_adapter(h.model, adapter)
            loss = local.evaluate(h, validation, cfg.train.batch_size)
        rec.evaluated(r, loss)
        return loss

    if cfg.federated.secure_aggregation:
        from tunesmith.federated.secagg import federate_secagg

        final = federate_secagg(grid, context, cfg, initial, rec, evaluate, max_weight)
    else:
        final = _federate_messages(grid, cfg, initial, rec, evaluate)
    local.set_adapter(h.model, final)
    if run_dir is not None:
        out = run_dir / "adapter"
        runs.save_trained(None, h.model, h.tokenizer, out)
    return {"adapter": final, "rounds": rec.summary()}


def _federate_messages(grid, cfg, initial: dict, rec: Rounds, evaluate) -> dict:
    """FedAvg / FedProx through flwr.serverapp.strategy, recording each round's replies."""
    from flwr.app import Array, ArrayRecord, ConfigRecord, MetricRecord
    from flwr.serverapp.strategy import FedAvg, FedProx

    f = cfg.federated
    n = num_clients(f, cfg.data.train)
    base = FedProx if f.strategy == "fedprox" else FedAvg

    class Recorded(base):
        def aggregate_train(self, server_round, replies):
            replies = list(replies)
            seen = [(dict(next(iter(m.content.metric_records.values()))),
                     {k: v.numpy() for k, v in next(iter(m.content.array_records.values())).items()})
                    for m in replies if not m.has_error()]
            for m in replies:
                if m.has_error():
                    raise RuntimeError(f"a federated client failed in round {server_round}: {m.error.reason}")
            rec.clients(server_round, seen)
            return super().aggregate_train(server_round, replies)

    # Flower samples max(fraction x connected nodes, min_train_nodes) clients and counts the connected
    # nodes before it waits for them, so the per-round count is pinned here, and every node must connect.
    per_round = clients_per_round(f, n)
    extra = {"proximal_mu": f.proximal_mu} if f.strategy == "fedprox" else {}
    strategy = Recorded(fraction_train=f.fraction_fit, fraction_evaluate=0.0, min_train_nodes=per_round,
                        min_evaluate_nodes=0, min_available_nodes=n, train_metrics_aggr_fn=_train_metrics, **extra)
    result = strategy.start(grid, ArrayRecord({k: Array(v) for k, v in initial.items()}), num_rounds=f.rounds,
                            train_config=ConfigRecord({}),
                            evaluate_fn=lambda r, arrays: _metric(evaluate(r, {k: v.numpy()
                                                                              for k, v in arrays.items()}),
                                                                  MetricRecord))
    return {k: v.numpy() for k, v in result.arrays.items()}


def _train_metrics(records: list, weight_key: str):
    """The round's example-weighted training loss and its token count (Flower's default would
    average every client metric, the client index too)."""
    from flwr.app import MetricRecord

    ms = [next(iter(r.metric_records.values())) for r in records]
    total = sum(float(m[weight_key]) for m in ms)
    return MetricRecord({"train-loss": sum(float(m[weight_key]) * float(m["train-loss"]) for m in ms) / total,
                         "tokens": int(sum(int(m["tokens"]) for m in ms))})


def _metric(loss: float | None, cls):
    return cls({"eval-loss": loss}) if loss is not None else None


def write_rounds(run_dir: Path, rounds: list[dict]) -> None:
    """The per-round record beside the manifest (the manifest keeps it too)."""
    (run_dir / RECORDS).mkdir(exist_ok=True)
    (run_dir / RECORDS / "rounds.json").write_text(json.dumps(rounds, indent=2) + "\n")
