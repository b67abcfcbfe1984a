"""Flag toxic training rows two ways: a small word list (fast, exact, explainable) and a local
sequence-classification model (catches what no list can, at the cost of a forward pass).

The word list is toxic_words.yaml beside this file. Matching is whole-word and case-insensitive,
so the Scunthorpe problem (a bad word inside an innocent one) cannot arise; letters repeated for
emphasis ("fuuuck") and a plural "s" still match.
"""

from __future__ import annotations

import json
import re
from functools import cache
from pathlib import Path

from tunesmith.errors import fail

WORDLIST_FILE = Path(__file__).with_name("toxic_words.yaml")


# --------------------------------------------------------------------------- word list


def _normalize(term: str) -> str:
    return " ".join(term.lower().split())


def _read_terms(path: Path) -> list:
    """Entries of a word-list file: .txt one per line ("#" starts a comment), or a YAML/JSON list
    (or a mapping with a `words` list, the shape of the shipped file)."""
    text = path.read_text(encoding="utf-8")
    if path.suffix in (".yaml", ".yml", ".json"):
        import yaml

        data = json.loads(text) if path.suffix == ".json" else yaml.safe_load(text)
        if isinstance(data, dict):
            data = data.get("words")
        if not isinstance(data, list) or not all(isinstance(w, str) for w in data):
            raise fail("a word list must be a list of strings (or a mapping with a `words` list)",
                       "write one word or phrase per item", file=str(path))
        return data
    return [line.split("#", 1)[0] for line in text.splitlines()]


@cache
def _default_wordlist() -> frozenset[str]:
    return frozenset(_normalize(w) for w in _read_terms(WORDLIST_FILE) if w.strip())


def load_wordlist(path: str | None = None) -> set[str]:
    """The shipped word list, or the list in `path`, which REPLACES it (so a project can narrow it
    as well as widen it); to add to the shipped list, use `load_wordlist() | load_wordlist(path)`.

    Entries are lower-cased, with runs of whitespace made single spaces; a phrase matches as a whole.
    """
    if path is None:
        return set(_default_wordlist())
    p = Path(path)
    if not p.is_file():
        raise fail("word list not found", "give a .txt file (one entry per line) or a YAML/JSON list",
                   file=str(p))
    return {_normalize(w) for w in _read_terms(p) if w.strip()}


def _term_regex(term: str) -> str:
    # each letter may repeat ("shiiit"), which never shortens the word: "ass" still needs two s's
    parts = []
    for c in term:
        if c == " ":
            parts.append(r"\s+")
        elif c.isalpha():
            parts.append(re.escape(c) + "+")
        else:
            parts.append(re.escape(c))
    return "".join(parts)


@cache
def _compile(words: frozenset[str]) -> tuple[re.Pattern | None, tuple[str, ...]]:
    """One alternation for the whole list; the named group that matched tells which term it was."""
    terms = tuple(sorted(words, key=lambda w: (-len(w), w)))  # longest first: "fucking" before "fuck"
    if not terms:
        return None, ()
    body = "|".join(f"(?P<t{i}>{_term_regex(t)})" for i, t in enumerate(terms))
    # look-arounds rather than \b so that an entry starting or ending in punctuation still works
    return re.compile(rf"(?<!\w)(?:{body})s?(?!\w)", re.IGNORECASE), terms


def toxic_terms(text: str, words: set[str] | None = None) -> list[str]:
    """The list terms found in `text`, one per occurrence in order of appearance, each as written
    in the list (lower case). Whole words only: "Scunthorpe" and "assessment" match nothing."""
    if words is None:
        pattern, terms = _compile(_default_wordlist())
    else:
        pattern, terms = _compile(frozenset(_normalize(w) for w in words if w.strip()))
    if pattern is None:
        return []
    return [terms[int(m.lastgroup[1:])] for m in pattern.finditer(text)]


# --------------------------------------------------------------------------- classifier


def _label_index(config, label: str | None, path: Path) -> int:
    """Which output is "toxic": the named label, the only output, or label 1 of a binary model."""
    names = {int(i): str(n) for i, n in (config.id2label or {}).items()}
    if label is not None:
        for i, name in names.items():
            if name.lower() == label.lower():
                return i
        raise fail(f"label '{label}' is not one of the model's labels ({', '.join(names.values())})",
                   "pass one of those as label=", file=str(path / "config.json"), field="id2label")
    if config.num_labels <= 2:
        # a binary classifier's positive class is label 1 by near-universal convention
        return config.num_labels - 1
    for i, name in names.items():
        if name.lower() in ("toxic", "toxicity"):
            return i
    raise fail(f"the model has {config.num_labels} labels ({', '.join(names.values())}) and none is 'toxic'",
               "pass label= naming the one to score", file=str(path / "config.json"), field="id2label")


class ToxicityClassifier:
    """A local sequence-classification model that scores texts for toxicity, from 0 to 1.

    `model_path` is a folder written by `save_pretrained` (config, weights and tokenizer); nothing
    is ever downloaded. The score is the probability of `label` (default: label 1 of a binary
    model, the single output of a one-logit model, or the label named "toxic"), softmax over the
    labels, or a sigmoid per label for one-logit and multi-label models.
    """

    def __init__(self, model_path: str, threshold: float = 0.5, label: str | None = None, *,
                 batch_size: int = 32, max_length: int = 512, device: str | None = None):
        path = Path(model_path)
        if not (path / "config.json").is_file():
            raise fail("toxicity model not found (no config.json)",
                       "give a local folder saved with save_pretrained (model and tokenizer); "
                       "tunesmith never downloads models", file=str(path))
        if not 0.0 <= threshold <= 1.0:
            raise fail(f"threshold must be between 0 and 1, got {threshold}", "use e.g. 0.5", field="threshold")
        import torch
        from transformers import AutoModelForSequenceClassification, AutoTokenizer

        try:
            self.tokenizer = AutoTokenizer.from_pretrained(path, local_files_only=True)
            self.model = AutoModelForSequenceClassification.from_pretrained(path, local_files_only=True)
        except (OSError, ValueError) as e:
            raise fail(f"cannot load the toxicity model: {e}",
                       "the folder needs the tokenizer files as well as config.json and the weights",
                       file=str(path)) from None
        self.device = device or ("cuda" if torch.cuda.is_available() else "cpu")
        self.model.to(self.device).eval()
        cfg = self.model.config
        self.index = _label_index(cfg, label, path)
        self.multi_label = cfg.num_labels == 1 or cfg.problem_type == "multi_label_classification"
        # a text longer than the position table crashes the model, and a tokenizer saved without
        # model_max_length reports a huge number, so take the smallest of the three limits
        limits = [max_length, self.tokenizer.model_max_length, getattr(cfg, "max_position_embeddings", None)]
        self.max_length = min(x for x in limits if isinstance(x, int) and x > 0)
        self.threshold, self.batch_size = threshold, batch_size

    def score(self, texts: list[str]) -> list[float]:
        """Probability of the toxic label for each text, in [0, 1], one per text."""
        import torch

        scores: list[float] = []
        for i in range(0, len(texts), self.batch_size):
            batch = self.tokenizer(list(texts[i:i + self.batch_size]), padding=True, truncation=True,
                                   max_length=self.max_length, return_tensors="pt").to(self.device)
            with torch.no_grad():
                logits = self.model(**batch).logits.float()  # fp16 softmax can round tiny scores to 0
            probs = logits.sigmoid() if self.multi_label else logits.softmax(dim=-1)
            scores += probs[:, self.index].tolist()
        return scores

    def is_toxic(self, texts: list[str]) -> list[bool]:
        """score >= threshold, per text."""
        return [s >= self.threshold for s in self.score(texts)]
