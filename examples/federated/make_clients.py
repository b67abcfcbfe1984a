"""Deal the quickstart's training rows to three federated clients, non-IID: each client holds the
rows written with its own sentence templates (client-a: templates 1-3, client-b: 4-6, client-c:
7-8 of examples/quickstart/make_data.py), so no client alone sees every way a person is described,
and the held-out prompts (examples/quickstart/heldout.jsonl) use all of them. Deterministic:
`python make_clients.py` rewrites the three files byte for byte.
"""

import json
import re
import sys
from pathlib import Path

HERE = Path(__file__).parent
sys.path.insert(0, str(HERE.parent / "quickstart"))
from make_data import TEMPLATES  # noqa: E402  (the quickstart's own templates: one source of truth)

GROUPS = {"client-a.jsonl": TEMPLATES[0:3], "client-b.jsonl": TEMPLATES[3:6], "client-c.jsonl": TEMPLATES[6:8]}


def pattern(template: str) -> re.Pattern:
    return re.compile("^" + re.sub(r"\\\{\w+\\\}", "(.+)", re.escape(template)) + "$")


def main() -> None:
    rows = [json.loads(line) for line in (HERE.parent / "quickstart" / "train.jsonl").read_text().splitlines()]
    for name, templates in GROUPS.items():
        pats = [pattern(t) for t in templates]
        mine = [r for r in rows if any(p.match(r["input"]) for p in pats)]
        (HERE / name).write_text("".join(json.dumps(r) + "\n" for r in mine))
        print(f"{name}: {len(mine)} rows")


if __name__ == "__main__":
    main()
