"""Does classify-small hold out 10% for early stopping, or train on every row? The preset on the
1,200 sweep rows, judged by accuracy on the 400 sweep-validation rows (never the judging rows).

    .venv/bin/python bench/efficacy_data.py && .venv/bin/python bench/sweeps/classify_small_validation.py
"""

from __future__ import annotations

import json
import tempfile
from pathlib import Path

import torch
from transformers import AutoModelForSequenceClassification, AutoTokenizer

import tunesmith

DATA = Path(__file__).resolve().parents[1] / "efficacy_data"


def accuracy(model_dir: Path, rows: list[dict]) -> float:
    tok = AutoTokenizer.from_pretrained(model_dir)
    model = AutoModelForSequenceClassification.from_pretrained(model_dir).eval()
    labels = json.loads((model_dir / "labels.json").read_text())
    right = 0
    with torch.inference_mode():
        for i in range(0, len(rows), 64):
            batch = rows[i:i + 64]
            enc = tok([r["sentence"] for r in batch], padding=True, truncation=True, max_length=128,
                      return_tensors="pt")
            pred = model(**enc).logits.argmax(-1).tolist()
            right += sum(str(r["label"]) == labels[p] for r, p in zip(batch, pred))
    return right / len(rows)


def main() -> None:
    val = [json.loads(line) for line in (DATA / "sst2-sweep-val.jsonl").read_text().splitlines() if line.strip()]
    for fraction in (0.1, 0.0):
        with tempfile.TemporaryDirectory() as tmp:
            run = tunesmith.train({"preset": "classify-small", "name": "v", "output_dir": tmp,
                                   "data": {"train": [str(DATA / "sst2-sweep-train.jsonl")],
                                            "columns": {"text": "sentence"}, "validation_fraction": fraction}},
                                  show_progress=False)
            steps = json.loads((run / "manifest.json").read_text())["result"]["steps"]
            print(f"validation_fraction {fraction}: {steps} steps, sweep-val accuracy {accuracy(run / 'model', val)}")


if __name__ == "__main__":
    main()
