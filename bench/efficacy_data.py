"""The splits the presets were swept on and judged on, made from ../shared/data (beside the checkout).

Sweep rows and judging rows never meet: each set is cut by position (its rows are already in a
random or source order), the sweeps see only the "sweep-*" files, and bench/efficacy.py trains on
"train" (which holds the sweep rows) and judges on "judge" (which holds none of them).

    .venv/bin/python bench/efficacy_data.py      # writes bench/efficacy_data/ (git-ignored)
"""

from __future__ import annotations

from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared" / "data"
OUT = ROOT / "bench" / "efficacy_data"

# set -> (source file, {split: (first row, end row)})
ROWS = {
    "sst2": ("sst2/sst2_train_sample2000.jsonl",
             {"sweep-train": (0, 1200), "sweep-val": (1200, 1600), "train": (0, 1600), "judge": (1600, 2000)}),
    "hh": ("hh_rlhf/harmless-base_test_shared.jsonl",
           {"sweep-train": (0, 300), "sweep-val": (300, 400), "train": (0, 500), "judge": (1000, 1201)}),
}
# raw text: fractions of the blank-line blocks, in order
TEXT = {"shakespeare": ("raw_text/tinyshakespeare_part1.txt",
                        {"sweep-train": (0.0, 0.3), "sweep-val": (0.3, 0.35), "train": (0.0, 0.8),
                         "judge": (0.8, 1.0)})}


def make() -> Path:
    if not SHARED.is_dir():
        raise SystemExit(f"{SHARED} is missing: the efficacy splits come from ../shared/data beside the checkout")
    OUT.mkdir(parents=True, exist_ok=True)
    for name, (src, splits) in ROWS.items():
        rows = (SHARED / src).read_text(encoding="utf-8").splitlines()
        for split, (a, b) in splits.items():
            (OUT / f"{name}-{split}.jsonl").write_text("\n".join(rows[a:b]) + "\n", encoding="utf-8")
    for name, (src, splits) in TEXT.items():
        blocks = [b for b in (SHARED / src).read_text(encoding="utf-8").split("\n\n") if b.strip()]
        for split, (a, b) in splits.items():
            part = blocks[int(a * len(blocks)):int(b * len(blocks))]
            (OUT / f"{name}-{split}.txt").write_text("\n\n".join(part) + "\n", encoding="utf-8")
    return OUT


def check_disjoint() -> None:
    """No judging row (or text block) is in any sweep or training file."""
    for name in [*ROWS, *TEXT]:
        suffix = "jsonl" if name in ROWS else "txt"
        sep = "\n" if name in ROWS else "\n\n"
        judge = set((OUT / f"{name}-judge.{suffix}").read_text(encoding="utf-8").split(sep)) - {"", "\n"}
        for split in ("sweep-train", "sweep-val", "train"):
            seen = set((OUT / f"{name}-{split}.{suffix}").read_text(encoding="utf-8").split(sep))
            assert not judge & seen, f"{name}: judging rows in {split}"


if __name__ == "__main__":
    print(make())
    check_disjoint()
    print("judging rows are in no sweep or training file")
