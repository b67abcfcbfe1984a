"""Federated LoRA fine-tuning on Flower (flwr): clients train the adapter on their own rows, a
strategy (FedAvg, FedProx; SecAgg+ when asked) aggregates it each round, and only the adapter's
weights travel.

  partition.py  which training rows each client holds (iid, shards, or one data file each)
  local.py      a client's local LoRA steps (FedProx's proximal term, DP-SGD through opacus)
  apps.py       Flower's ClientApp and ServerApp, built from a tunesmith config
  runner.py     `tunesmith train` with federated.enabled: Flower's simulation engine, one run directory
  app.py        module-level server_app / client_app for `flwr run` on real SuperLink / SuperNodes

flwr, ray and torch are imported inside functions, so `tunesmith validate` never waits for them.
"""
