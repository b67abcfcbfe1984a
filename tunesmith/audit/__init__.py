"""`tunesmith audit`: is the tuned model still safe to ship? Base vs tuned on the same prompts.

Four checks, each a small module that takes a model (audit.model.AuditModel: generate, continue,
score) and its items and returns metrics and per-item records:

  refusal.py       harmful requests in several attack styles must be refused; benign look-alikes not
  toxicity.py      continuations of neutral and provocative prompts, scored by the project's scorer
  bias.py          counterfactual pairs (log-likelihood and continuation sentiment) and BBQ files
  memorization.py  planted canaries' exposure, and verbatim completion of training rows (and PII)

run.py runs a suite (suites/default.yaml, the prompts in data/) on a run's base and tuned model and
writes audit/results.json, the report's Safety section and manifest["audit"].
"""
