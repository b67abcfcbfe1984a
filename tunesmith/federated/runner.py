"""`tunesmith train` with federated.enabled: the clients run in Flower's simulation engine on this
machine and the run directory is an ordinary one (config.yaml, manifest.json, metrics.jsonl,
adapter/), so generate, eval, export and serve take it as they take any LoRA run.

Reads top to bottom: setup -> data (dealt to the clients) -> run directory -> federate -> save.
The server side runs in this process (Flower runs the ServerApp in a thread beside its engine) and
writes the run directory; each simulated client runs in a Ray worker process.
"""

from __future__ import annotations

import math
import os
from pathlib import Path

from tunesmith import runs
from tunesmith.recipes import common


def train(cfg, show_progress: bool = True, callbacks: tuple = ()) -> Path:
    """Federated LoRA training of `cfg` in Flower's simulation engine; returns the run directory."""
    from tunesmith import autotune
    from tunesmith.data.prepare import check_kinds, load_all, prepare
    from tunesmith.errors import fail
    from tunesmith.federated.partition import client_rows
    from tunesmith.models.loading import load_tokenizer

    if callbacks:
        raise fail("callbacks (a sweep's pruning hook) cannot reach Flower's client processes",
                   "set federated.enabled=false for sweeps")
    # --- setup
    from tunesmith.models.quant import quiet_bitsandbytes

    quiet_bitsandbytes()
    cfg = autotune.resolve(cfg)  # batch size and learning rate from the union of the clients' rows
    s = common.setup(cfg)
    f = cfg.federated

    # --- data: every client's part is known before anything starts, so an empty client is said now
    tokenizer = load_tokenizer(s.source, cfg.model.chat_template, cfg.model.trust_remote_code)
    loaded = load_all(cfg.data, cfg.seed)
    check_kinds(loaded.train + loaded.validation, common.kinds(cfg))
    parts = client_rows(loaded.train, f, cfg.data.train, cfg.seed)
    prepared = prepare(cfg.data, tokenizer, cfg.seed, common.kinds(cfg))  # the union's report, and validation
    clients = [{"client": k, "rows": len(rows), "files": sorted({str(ex.file) for ex in rows})}
               for k, rows in enumerate(parts)]
    run = runs.start(cfg, source=s.source, precision=s.precision, tokenizer=tokenizer, data_report=prepared.report(),
                     federated=_plan(cfg, clients))
    if show_progress:
        print(f"tunesmith: federated {f.strategy} over {len(parts)} clients ({f.partition}: "
              f"{', '.join(str(c['rows']) for c in clients)} rows), {f.rounds} rounds of {f.local_steps} local steps"
              f"{', SecAgg+' if f.secure_aggregation else ''}{', DP-SGD per client' if cfg.privacy.enabled else ''}; "
              f"{len(prepared.validation)} validation rows on the server", flush=True)

    # --- federate
    box = simulate(cfg, len(parts), run.dir, max_weight=max(c["rows"] for c in clients), quiet=not show_progress)

    # --- save (the server wrote adapter/ already)
    return _finish(run, cfg, box["rounds"])


def serve(grid, context, cfg) -> Path:
    """A deployed ServerApp's work (tunesmith/federated/app.py): the run directory on the SuperLink's
    machine, then the rounds with the SuperNodes that connect. The config's data files must be readable
    here too: the manifest hashes them and the server evaluates on the validation rows."""
    from tunesmith import autotune
    from tunesmith.data.prepare import prepare
    from tunesmith.federated.apps import federate
    from tunesmith.models.loading import load_tokenizer

    cfg = autotune.resolve(cfg)
    s = common.setup(cfg)
    tokenizer = load_tokenizer(s.source, cfg.model.chat_template, cfg.model.trust_remote_code)
    prepared = prepare(cfg.data, tokenizer, cfg.seed, common.kinds(cfg))
    plan = {**_plan(cfg, []), "engine": "flwr deployment (SuperLink and SuperNodes)"}
    run = runs.start(cfg, source=s.source, precision=s.precision, tokenizer=tokenizer, data_report=prepared.report(),
                     federated=plan)
    return _finish(run, cfg, federate(grid, context, cfg, run.dir)["rounds"])


def _finish(run, cfg, rounds: list[dict]) -> Path:
    from tunesmith.federated.apps import write_rounds

    write_rounds(run.dir, rounds)
    run.manifest["federated"]["history"] = rounds  # per round: each client's row count and loss
    run.complete(_result(cfg, rounds), run.dir / "adapter")
    return run.dir


def simulate(cfg, n: int, run_dir: Path | None, max_weight: float | None = None, quiet: bool = False) -> dict:
    """Run the federation in Flower's simulation engine (Ray): n SuperNodes, one ClientApp worker
    with every usable core (clients train one after another; in parallel they would only share the
    same cores). Returns what the ServerApp left: {"adapter", "rounds"}."""
    import logging
    import warnings

    import torch
    from flwr.simulation import run_simulation

    from tunesmith.federated.apps import make_client_app, make_server_app

    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    gpus = 1.0 if torch.cuda.is_available() else 0.0
    backend = {"client_resources": {"num_cpus": cores, "num_gpus": gpus},
               "init_args": {"num_cpus": cores, "num_gpus": int(gpus), "logging_level": "ERROR"}}
    from tunesmith.federated.local import DRIVER_OMP

    os.environ[DRIVER_OMP] = os.environ.get("OMP_NUM_THREADS", "")  # Ray's workers inherit it (local.held)
    box: dict = {}
    logging.getLogger("flwr").setLevel(logging.WARNING if quiet else logging.INFO)
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", category=FutureWarning, module="ray")
        run_simulation(make_server_app(cfg, run_dir, box, max_weight=max_weight, show=not quiet), make_client_app(cfg),
                       num_supernodes=n, backend_config=backend)
    if "adapter" not in box:
        raise RuntimeError("Flower's simulation ended without a federated result (see the log above)")
    return box


def _plan(cfg, clients: list[dict]) -> dict:
    """The manifest's federated section as the run starts."""
    from importlib.metadata import version

    f = cfg.federated
    return {"engine": "flwr simulation (ray)", "flwr": version("flwr"), "strategy": f.strategy,
            "proximal_mu": f.proximal_mu if f.strategy == "fedprox" else None, "partition": f.partition,
            "rounds": f.rounds, "local_steps": f.local_steps, "fraction_fit": f.fraction_fit,
            "secure_aggregation": f.secure_aggregation, "client_dp": cfg.privacy.enabled, "clients": clients,
            "travels": "LoRA adapter weights, client row counts, training losses"}


def _result(cfg, rounds: list[dict]) -> dict:
    """The manifest's result: the last round's losses, the steps and tokens over all clients."""
    last = rounds[-1]
    tokens = sum(int(c.get("tokens", 0)) for r in rounds for c in r["clients"])
    seconds = last.get("seconds") or 0.0
    result = {"train_loss": last.get("train_loss"), "steps": cfg.federated.rounds * cfg.federated.local_steps,
              "rounds": cfg.federated.rounds, **common.throughput(tokens, seconds)}
    if last.get("eval_loss") is not None:
        result.update(eval_loss=last["eval_loss"], eval_perplexity=math.exp(min(last["eval_loss"], 50)))
    eps = [c["epsilon"] for r in rounds for c in r["clients"] if "epsilon" in c]
    if eps:  # the largest spend of any client in any round (-1: a client without noise, no guarantee)
        result["privacy"] = {"epsilon": None if min(eps) < 0 else max(eps), "delta": cfg.privacy.delta,
                             "per_client": True, "accountant": "rdp"}
    return result
