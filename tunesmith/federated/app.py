"""Module-level Flower apps for real deployments: `flwr run` on a SuperLink with SuperNodes.

A Flower App project (docs/federated.md) names them in its pyproject.toml:

    [tool.flwr.app.components]
    serverapp = "tunesmith.federated.app:server_app"
    clientapp = "tunesmith.federated.app:client_app"

Both read the tunesmith config named by the run config (`--run-config 'config="federated-lora.yaml"'`).
The ServerApp writes an ordinary run directory (config.yaml, manifest.json, metrics.jsonl, adapter/)
under the config's output_dir on the SuperLink's machine; each SuperNode trains on its node config's
`data-file`, or on its `partition-id` of data.train.
"""

from __future__ import annotations


def _server_main(grid, context) -> None:
    from tunesmith.federated.apps import config_from
    from tunesmith.federated.runner import serve

    serve(grid, context, config_from(context))


def _apps():
    from flwr.serverapp import ServerApp

    from tunesmith.federated.apps import make_client_app

    server = ServerApp()
    server.main()(_server_main)
    return server, make_client_app()


server_app, client_app = _apps()
