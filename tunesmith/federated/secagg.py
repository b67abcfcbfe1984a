"""Federated rounds under Flower's SecAgg+ (federated.secure_aggregation).

Flower runs SecAgg+ only in its legacy workflow: DefaultWorkflow with a SecAggPlusWorkflow fit step
over a legacy flwr.server.strategy.FedAvg, with the adapter as an ordered list of arrays. Each
client uploads [w, w x adapter] quantized and masked with pairwise and private masks (w: its row
count over max_weight); the server unmasks only the sum, so it never sees one client's adapter.
FedProx needs nothing on the server: its mu rides in the round config as in the plain path.

Quantization: each value is clipped to +-CLIPPING_RANGE and mapped onto 2**22 levels, so the
aggregate differs from the exact weighted mean by about 2 x CLIPPING_RANGE / 2**22 / (total w),
a few 1e-6 for LoRA weights, which sit far inside the range.
"""

from __future__ import annotations

CLIPPING_RANGE = 8.0  # LoRA matrices hold values well below 1; Flower's default range
SHARES = 1.0  # every sampled client holds a share of every other's keys (a proportion of the clients)
THRESHOLD = 2 / 3  # shares needed to unmask a client that dropped out mid-round


def federate_secagg(grid, context, cfg, initial: dict, rec, evaluate, max_weight: float | None) -> dict:
    """cfg.federated.rounds SecAgg+ rounds; returns the final adapter ({key: array})."""
    import math

    from flwr.common import ndarrays_to_parameters, parameters_to_ndarrays
    from flwr.compat.common import recorddict_compat as compat
    from flwr.server import ServerConfig
    from flwr.server.compat import LegacyContext
    from flwr.server.strategy import FedAvg
    from flwr.server.workflow import DefaultWorkflow, SecAggPlusWorkflow
    from flwr.server.workflow.constant import MAIN_PARAMS_RECORD

    from tunesmith.federated.partition import num_clients

    f = cfg.federated
    keys, n = list(initial), num_clients(f, cfg.data.train)
    mu = f.proximal_mu if f.strategy == "fedprox" else 0.0
    rounds_seen = [0]

    def fit_config(server_round: int) -> dict:
        rounds_seen[0] = server_round
        return {"server-round": server_round, "proximal-mu": mu}

    def fit_metrics(pairs: list) -> dict:  # [(num_examples, metrics)] of the round's clients: not secret
        rec.clients(rounds_seen[0], [(dict(m), None) for _, m in pairs])
        return {}

    def central(server_round: int, arrays: list, _config: dict):
        loss = evaluate(server_round, dict(zip(keys, arrays)))
        return (loss, {}) if loss is not None else None

    strategy = FedAvg(fraction_fit=f.fraction_fit, fraction_evaluate=0.0, min_fit_clients=max(2, math.ceil(
        f.fraction_fit * n)), min_evaluate_clients=0, min_available_clients=n,
        initial_parameters=ndarrays_to_parameters([initial[k] for k in keys]), on_fit_config_fn=fit_config,
        evaluate_fn=central, fit_metrics_aggregation_fn=fit_metrics)
    legacy = LegacyContext(context=context, config=ServerConfig(num_rounds=f.rounds), strategy=strategy)
    # max_weight: a client's weight is its row count / max_weight, capped at 1, so it is set to the
    # largest client's count where the runner knows it (simulation), else Flower's 1000.
    workflow = SecAggPlusWorkflow(num_shares=SHARES, reconstruction_threshold=THRESHOLD,
                                  max_weight=float(max_weight or 1000.0), clipping_range=CLIPPING_RANGE)
    DefaultWorkflow(fit_workflow=workflow)(grid, legacy)
    final = compat.arrayrecord_to_parameters(legacy.state.array_records[MAIN_PARAMS_RECORD], keep_input=True)
    return dict(zip(keys, parameters_to_ndarrays(final)))
