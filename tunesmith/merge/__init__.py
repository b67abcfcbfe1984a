"""`tunesmith merge MERGE.yaml`: merge finished runs into a new run directory, gated by evaluation.

  config.py    the typed merge config (MergeConfig) and its checks
  parents.py   the parents: finished runs or model folders, checked before anything loads
  adapters.py  LoRA parents through peft's add_weighted_adapter
  models.py    full models through mergekit
  gate.py      each parent's eval suite on the parent and on the merge; the side-by-side report
  run.py       the merge from config to run directory (generate, eval, export and serve read it)
"""
