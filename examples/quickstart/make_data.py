"""Generate the quickstart task: turn a sentence about a person into a fixed JSON record.

The task is measurable: a reply scores when it parses as JSON and equals the expected record
(same keys, same values). The base model has never seen this schema, so it scores ~0; a short
LoRA run teaches it. Held-out rows use first and last names that never occur in training, so the
score measures the skill, not memorised names. Deterministic: `python make_data.py` rewrites
train.jsonl and heldout.jsonl byte for byte.
"""

import json
import random
from pathlib import Path

FIRST_TRAIN = ["Maria", "James", "Aisha", "Kenji", "Olga", "Pedro", "Fatima", "Liam", "Chen", "Sofia", "Omar",
               "Greta", "Ravi", "Nadia", "Tomas", "Yuki", "Elena", "Kwame", "Ingrid", "Diego", "Hana", "Lucas",
               "Amara", "Sven"]
LAST_TRAIN = ["Lopez", "Smith", "Khan", "Tanaka", "Petrova", "Silva", "Haddad", "Murphy", "Wang", "Rossi",
              "Farouk", "Berg", "Patel", "Novak", "Kowalski", "Sato", "Garcia", "Mensah", "Larsen", "Torres"]
FIRST_HELDOUT = ["Beatriz", "Arjun", "Leila", "Marco", "Zofia", "Tariq", "Freya", "Emeka", "Mei", "Anton"]
LAST_HELDOUT = ["Moreau", "Okafor", "Lindqvist", "Horvat", "Nakamura", "Quispe", "Brennan", "Dubois"]
CITIES = ["Madrid", "Toronto", "Lagos", "Osaka", "Berlin", "Lima", "Cairo", "Dublin", "Mumbai", "Oslo", "Austin",
          "Nairobi", "Lisbon", "Seoul", "Krakow", "Denver"]
JOBS = ["nurse", "teacher", "plumber", "software engineer", "chef", "pilot", "architect", "accountant",
        "electrician", "journalist", "pharmacist", "photographer", "dentist", "farmer", "librarian", "lawyer"]
TEMPLATES = [
    "{name} is {age} years old and works as a {job} in {city}.",
    "Meet {name}, a {age}-year-old {job} based in {city}.",
    "{name} ({age}) lives in {city}, where they work as a {job}.",
    "Our new {job}, {name}, is {age} and just moved to {city}.",
    "Living in {city}, {name} has been a {job} for years and is now {age}.",
    "At {age}, {name} is the busiest {job} in all of {city}.",
    "{city} is home to {name}, a {job} aged {age}.",
    "Name: {name}. Age: {age}. Works as a {job} in {city}.",
]
INSTRUCTIONS = [
    "Extract the person's details as a JSON record.",
    "Turn this into a contact record.",
    "Give me the profile of the person below.",
    "Convert the text to our person schema.",
]


def make(rng: random.Random, firsts: list[str], lasts: list[str], n: int) -> list[dict]:
    rows = []
    for _ in range(n):
        record = {"name": f"{rng.choice(firsts)} {rng.choice(lasts)}", "age": rng.randint(19, 78),
                  "city": rng.choice(CITIES), "job": rng.choice(JOBS)}
        sentence = rng.choice(TEMPLATES).format(**record)
        rows.append({"instruction": rng.choice(INSTRUCTIONS), "input": sentence,
                     "output": json.dumps(record), "expected": record})
    return rows


def main() -> None:
    here = Path(__file__).parent
    rng = random.Random(1234)
    train = make(rng, FIRST_TRAIN, LAST_TRAIN, 320)
    heldout = make(rng, FIRST_HELDOUT, LAST_HELDOUT, 30)
    with open(here / "train.jsonl", "w") as f:
        for r in train:
            f.write(json.dumps({k: r[k] for k in ("instruction", "input", "output")}) + "\n")
    with open(here / "heldout.jsonl", "w") as f:
        for r in heldout:
            f.write(json.dumps({k: r[k] for k in ("instruction", "input", "expected")}) + "\n")


if __name__ == "__main__":
    main()
