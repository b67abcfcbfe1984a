"""Does classify-small hold out 10% for early stopping, or train on every row? The preset on the
1,200 sweep rows, judged by accuracy on the 400 sweep-validation rows (never the judging rows).

    .venv/bin/python bench/efficacy_data.py && .venv/bin/python bench/sweeps/classify_small_validation.py
"""

from __future__ import annotations

import json
import sys
import tempfile
from pathlib import Path

import tunesmith

BENCH = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(BENCH))
from efficacy import read_jsonl, sst2_accuracy  # noqa: E402  (bench/ is not a package)

DATA = BENCH / "efficacy_data"


def main() -> None:
    val = read_jsonl(DATA / "sst2-sweep-val.jsonl")
    for fraction in (0.1, 0.0):
        with tempfile.TemporaryDirectory() as tmp:
            run = tunesmith.train({"preset": "classify-small", "name": "v", "output_dir": tmp,
                                   "data": {"train": [str(DATA / "sst2-sweep-train.jsonl")],
                                            "columns": {"text": "sentence"}, "validation_fraction": fraction}},
                                  show_progress=False)
            steps = json.loads((run / "manifest.json").read_text())["result"]["steps"]
            accuracy = sst2_accuracy(run / "model", val)
            print(f"validation_fraction {fraction}: {steps} steps, sweep-val accuracy {accuracy}")


if __name__ == "__main__":
    main()
