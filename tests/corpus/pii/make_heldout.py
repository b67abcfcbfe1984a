"""Write the held-out PII test set, tests/corpus/pii/heldout.jsonl (fixed seed, deterministic).

    python tests/corpus/pii/make_heldout.py          # rewrites heldout.jsonl and prints the counts

The set is labelled by the convention in CONVENTION.md (copied into README.md) and was written
without looking at the detector's rules; do not tune the detector on it.

Every row comes from a hand-written template whose slots are filled with synthetic values:

* labelled slots (email, phone, card, iban, ip, ssn and their variants) become entities; the
  offsets are computed while the text is assembled and checked with `text[start:end] == value`;
* look-alike slots (icon@2x.png, Luhn-invalid cards, ITINs, version strings, ...) are never
  labelled; the row's `lookalikes` field lists which kinds it holds.

A row is `positive` (labelled slots only), `mixed` (both) or `hard_negative` (look-alikes only).
After assembly every row is scanned for PII the template did not mean to put there (a Luhn-valid
13-19 digit run, a valid SSN, an address or a dotted quad outside the slots); such a row is drawn
again, and a template whose literal text carries such a thing fails the run.
"""

from __future__ import annotations

import json
import random
import re
import string
import sys
from collections import Counter
from pathlib import Path

SEED = 20240611
HERE = Path(__file__).resolve().parent
OUT = HERE / "heldout.jsonl"
LANGS = ("en", "es", "de", "fr", "it", "nl", "pt")

# ============================================================================ checksums


def luhn_ok(digits: str) -> bool:
    total = 0
    for i, ch in enumerate(reversed(digits)):
        d = int(ch)
        if i % 2 == 1:
            d *= 2
            if d > 9:
                d -= 9
        total += d
    return total % 10 == 0


def luhn_complete(partial: str) -> str:
    """partial + the check digit that makes it Luhn-valid."""
    for c in "0123456789":
        if luhn_ok(partial + c):
            return partial + c
    raise AssertionError(partial)


IBAN_LEN = {"GB": 22, "DE": 22, "FR": 27, "ES": 24, "IT": 27, "NL": 18, "BE": 16, "PT": 25,
            "CH": 21, "AT": 20}


def _iban_number(s: str) -> int:
    return int("".join(str(int(ch, 36)) for ch in s))


def iban_checked(cc: str, bban: str) -> str:
    check = 98 - _iban_number(bban + cc + "00") % 97
    return f"{cc}{check:02d}{bban}"


def iban_ok(iban: str) -> bool:
    s = iban.replace(" ", "")
    return (s[:2] in IBAN_LEN and len(s) == IBAN_LEN[s[:2]]
            and _iban_number(s[4:] + s[:4]) % 97 == 1)


def ssn_ok(area: int, group: int, serial: int) -> bool:
    return 0 < area < 900 and area != 666 and group != 0 and serial != 0


DIGIT_RUN = re.compile(r"\d(?:[ -]?\d)*")


def has_card_like_run(s: str) -> bool:
    """A maximal run of digits (single spaces/dashes allowed) of 13-19 digits passing Luhn."""
    for m in DIGIT_RUN.finditer(s):
        d = re.sub(r"\D", "", m.group())
        if 13 <= len(d) <= 19 and luhn_ok(d):
            return True
    return False


# ============================================================================ value generators


def digits(rng: random.Random, n: int) -> str:
    return "".join(rng.choice(string.digits) for _ in range(n))


def group(s: str, sizes, sep: str) -> str:
    out, i = [], 0
    for n in sizes:
        out.append(s[i:i + n])
        i += n
    assert i == len(s), (s, sizes)
    return sep.join(out)


# ---------------------------------------------------------------- email

NAMES = {
    "en": (["olivia", "james", "priya", "dana", "jordan", "sam", "morgan", "grace", "tunde", "mei"],
           ["hart", "okafor", "natarajan", "whitfield", "blake", "reilly", "chen", "porter", "adeyemi", "lin"]),
    "es": (["maria", "lucia", "pablo", "carmen", "javier", "ana", "diego", "marta", "sergio", "elena"],
           ["garcia", "fernandez", "ruiz", "diaz", "lopez", "moreno", "gil", "navarro", "romero", "torres"]),
    "de": (["anna", "lukas", "sabine", "jonas", "katrin", "felix", "julia", "moritz", "petra", "tobias"],
           ["mueller", "schmidt", "weber", "becker", "hoffmann", "schulz", "wagner", "koch", "richter", "wolf"]),
    "fr": (["sophie", "thomas", "camille", "lea", "julien", "manon", "hugo", "chloe", "antoine", "ines"],
           ["martin", "bernard", "dubois", "petit", "lefevre", "moreau", "laurent", "simon", "michel", "garnier"]),
    "it": (["luca", "giulia", "marco", "chiara", "franco", "sara", "matteo", "elisa", "davide", "martina"],
           ["rossi", "bianchi", "ferrari", "esposito", "romano", "colombo", "ricci", "marino", "greco", "bruno"]),
    "nl": (["jan", "sanne", "pieter", "emma", "daan", "lotte", "bram", "femke", "thijs", "anouk"],
           ["devries", "jansen", "bakker", "visser", "smit", "meijer", "mulder", "bos", "vos", "peters"]),
    "pt": (["joao", "ana", "rui", "beatriz", "tiago", "ines", "miguel", "rita", "pedro", "catarina"],
           ["silva", "santos", "ferreira", "costa", "oliveira", "sousa", "rodrigues", "martins", "pereira", "lopes"]),
}
TAGS = {"en": "billing", "es": "facturas", "de": "rechnung", "fr": "factures", "it": "fatture",
        "nl": "facturen", "pt": "faturas"}
DOMAINS = ["example.com", "example.org", "example.net", "mail.example.com", "support.example.org",
           "eu.example.net", "shop.example.com", "example.com"]


def gen_email(rng, lang):
    first, last = rng.choice(NAMES[lang][0]), rng.choice(NAMES[lang][1])
    style = rng.randrange(8)
    local = [f"{first}.{last}", f"{first[0]}.{last}", f"{first}_{last}", f"{first}{last}",
             f"{first}.{last}+{TAGS[lang]}", f"{first}{rng.randint(1, 99)}", f"{first[0]}{last}",
             f"{first}-{last}"][style]
    addr = f"{local}@{rng.choice(DOMAINS)}"
    if rng.random() < 0.08:
        addr = addr[0].upper() + addr[1:]
    return addr


# ---------------------------------------------------------------- phone

US_AREAS = ["202", "212", "305", "312", "415", "503", "617", "646", "702", "713", "808", "917"]
TOLL_FREE = ["800", "888", "877"]
EXTS = [" x{n}", " x {n}", " ext. {n}", " ext {n}", " extension {n}", " Ext. {n}"]


def _us(rng, bare=False):
    a = rng.choice(US_AREAS)
    line = f"01{rng.randrange(100):02d}"
    if bare:
        return f"{a}555{line}"
    style = rng.randrange(8)
    return [f"({a}) 555-{line}", f"{a}-555-{line}", f"{a}.555.{line}",
            f"1-{rng.choice(TOLL_FREE)}-555-{line}", f"+1 {a} 555 {line}", f"+1 ({a}) 555-{line}",
            f"+1-{a}-555-{line}", f"({a}) 555-{line}"][style]


def _us_intl(rng):
    a, line = rng.choice(US_AREAS), f"01{rng.randrange(100):02d}"
    return rng.choice([f"+1 {a} 555 {line}", f"+1 ({a}) 555-{line}", f"+1-{a}-555-{line}"])


def _uk(rng, intl=None):
    kind = rng.randrange(5)
    if kind == 0:       # drama mobile range 07700 900000-900999
        n = f"900{rng.randrange(1000):03d}"
        nat, intl_v = [f"07700 {n}", f"07700{n}"], [f"+44 7700 {n}", f"0044 7700 {n}"]
    elif kind == 1:     # London drama range 020 7946 0000-0999
        n = f"0{rng.randrange(1000):03d}"
        nat, intl_v = [f"020 7946 {n}", f"(020) 7946 {n}"], [f"+44 20 7946 {n}"]
    else:               # Manchester / Leeds / Bristol drama ranges 0xxx 496 0000-0999
        code = ["161", "113", "117"][kind - 2]
        n = f"0{rng.randrange(1000):03d}"
        nat, intl_v = [f"0{code} 496 {n}", f"(0{code}) 496 {n}"], [f"+44 {code} 496 {n}"]
    if intl is None:
        intl = rng.random() < 0.3
    return rng.choice(intl_v if intl else nat)


def _es(rng, intl=False, bare=False):
    first = rng.choice(["6", "6", "6", "7", "9"])
    if first == "7":
        n = "7" + rng.choice("1234") + digits(rng, 7)
    elif first == "9":
        n = "9" + rng.choice("13456") + digits(rng, 7)
    else:
        n = "6" + digits(rng, 8)
    if bare:
        return n
    body = rng.choice([group(n, (3, 3, 3), " "), group(n, (3, 2, 2, 2), " ")])
    if intl:
        return rng.choice(["+34 ", "0034 ", "+34 "]) + body
    return body


def _de(rng, intl=False, bare=False):
    if rng.random() < 0.5:
        area, sub = rng.choice(["30", "40", "89", "69", "221"]), digits(rng, 7)
        if sub[0] == "0":
            sub = "2" + sub[1:]
    else:
        area, sub = rng.choice(["151", "160", "170", "171", "176"]), digits(rng, 7)
    if bare:
        return f"0{area}{sub}"
    if intl:
        return rng.choice([f"+49 {area} {sub}", f"0049 {area} {sub}", f"+49 {area} {sub}"])
    return rng.choice([f"0{area} {sub}", f"0{area}/{sub}", f"0{area} {sub}", f"0{area}-{sub}"])


def _fr(rng, intl=False, bare=False):
    if rng.random() < 0.6:      # ARCEP ranges kept for fiction
        n = rng.choice(["0199 00", "0639 98", "0261 91", "0465 71"]).replace(" ", "") + digits(rng, 4)
    else:
        n = "0" + rng.choice("1234567") + digits(rng, 8)
    if bare:
        return n
    if intl:
        return rng.choice(["+33 ", "0033 ", "+33 "]) + n[1] + " " + group(n[2:], (2, 2, 2, 2), " ")
    if rng.random() < 0.1:
        return group(n, (2, 2, 2, 2, 2), ".")
    return group(n, (2, 2, 2, 2, 2), " ")


def _it(rng, intl=False, bare=False):
    if rng.random() < 0.5:
        area = rng.choice(["06", "02"])
        n, fmt = area + digits(rng, 8), (2, 4, 4)
    else:
        n, fmt = "3" + rng.choice("234589") + digits(rng, 8), (3, 3, 4)
    if bare:
        return n
    body = group(n, fmt, " ")
    if intl:
        return rng.choice(["+39 ", "0039 ", "+39 "]) + body
    return body


def _nl(rng, intl=False, bare=False):
    if rng.random() < 0.5:
        area = rng.choice(["20", "10", "30", "70"])
        sub = rng.choice("23456789") + digits(rng, 6)
        if bare:
            return f"0{area}{sub}"
        if intl:
            return rng.choice(["+31 ", "0031 "]) + f"{area} {sub[:3]} {sub[3:]}"
        return f"0{area} {sub[:3]} {sub[3:]}"
    sub = rng.choice("12345678") + digits(rng, 7)
    if bare:
        return f"06{sub}"
    if intl:
        return rng.choice(["+31 6 ", "0031 6 ", "+31 6 "]) + sub
    return rng.choice([f"06 {sub}", f"06-{sub}", f"06 {sub}"])


def _pt(rng, intl=False, bare=False):
    if rng.random() < 0.6:
        n, fmt = "9" + rng.choice("1236") + digits(rng, 7), (3, 3, 3)
    else:
        n, fmt = rng.choice(["21", "22"]) + rng.choice("23456789") + digits(rng, 6), (2, 3, 4)
    if bare:
        return n
    body = group(n, fmt, " ")
    if intl:
        return rng.choice(["+351 ", "00351 ", "+351 "]) + body
    return body


NATIONAL = {"es": _es, "de": _de, "fr": _fr, "it": _it, "nl": _nl, "pt": _pt}


def gen_phone(rng, lang, variant=""):
    if variant == "us":
        return _us(rng)
    if variant == "uk":
        return _uk(rng)
    if lang == "en":
        if variant == "bare":
            return _us(rng, bare=True)
        if variant == "intl":
            return rng.choice([_us_intl(rng), _uk(rng, intl=True)])
        return _us(rng) if rng.random() < 0.55 else _uk(rng)
    fn = NATIONAL[lang]
    if variant == "bare":
        return fn(rng, bare=True)
    if variant == "intl":
        return fn(rng, intl=True)
    return fn(rng, intl=rng.random() < 0.3)


def gen_phone_ext(rng, lang):
    n = str(rng.choice([rng.randint(1, 9), rng.randint(10, 99), rng.randint(100, 999), rng.randint(1000, 4999)]))
    return gen_phone(rng, lang) + rng.choice(EXTS).format(n=n)


# ---------------------------------------------------------------- cards

CARD_BRANDS = ("visa", "mastercard", "amex", "discover", "diners")


def _card_digits(rng, brand):
    if brand == "visa":
        return luhn_complete("4" + digits(rng, 14))
    if brand == "mastercard":
        prefix = str(rng.randint(51, 55)) if rng.random() < 0.7 else str(rng.randint(2221, 2720))
        return luhn_complete(prefix + digits(rng, 15 - len(prefix)))
    if brand == "amex":
        return luhn_complete(rng.choice(["34", "37"]) + digits(rng, 12))
    if brand == "discover":
        prefix = rng.choice(["6011", "65", "644", "649"])
        return luhn_complete(prefix + digits(rng, 15 - len(prefix)))
    prefix = rng.choice(["36", "300", "305", "38"])         # Diners Club, 14 digits
    return luhn_complete(prefix + digits(rng, 13 - len(prefix)))


def _card_format(rng, d):
    sep = rng.choice(["", " ", "-"])
    if not sep:
        return d
    sizes = {16: (4, 4, 4, 4), 15: (4, 6, 5), 14: (4, 6, 4)}[len(d)]
    return group(d, sizes, sep)


def gen_card(rng):
    return _card_format(rng, _card_digits(rng, rng.choice(CARD_BRANDS)))


def gen_card_bad(rng):
    d = _card_digits(rng, rng.choice(CARD_BRANDS))
    wrong = rng.choice([c for c in "0123456789" if c != d[-1]])
    d = d[:-1] + wrong
    assert not luhn_ok(d)
    return _card_format(rng, d)


def gen_longnum(rng):
    """A valid card number buried in a longer digit run (20-23 digits, unbroken)."""
    while True:
        s = digits(rng, rng.randint(2, 4)) + _card_digits(rng, "visa") + digits(rng, rng.randint(1, 3))
        if len(s) >= 20:
            return s


def gen_luhn_len(rng):
    """Luhn-valid, but 12 or 20 digits long: outside 13-19."""
    n = rng.choice([12, 20])
    d = luhn_complete(rng.choice("3456") + digits(rng, n - 2))
    return group(d, (4, 4, 4), rng.choice([" ", "-"])) if n == 12 else d


# ---------------------------------------------------------------- IBAN

LETTERS = string.ascii_uppercase


def _es_dc(s10: str) -> str:
    w = (1, 2, 4, 8, 5, 10, 9, 7, 3, 6)
    r = 11 - sum(int(c) * k for c, k in zip(s10, w)) % 11
    return {11: "0", 10: "1"}.get(r, str(r))


def _bban(rng, cc):
    if cc == "GB":
        return "".join(rng.choice(LETTERS) for _ in range(4)) + digits(rng, 14)
    if cc == "DE":
        return digits(rng, 18)
    if cc == "FR":
        bank, branch, acct = digits(rng, 5), digits(rng, 5), digits(rng, 11)
        key = 97 - (89 * int(bank) + 15 * int(branch) + 3 * int(acct)) % 97
        return f"{bank}{branch}{acct}{key:02d}"
    if cc == "ES":
        bank, branch, acct = digits(rng, 4), digits(rng, 4), digits(rng, 10)
        return bank + branch + _es_dc("00" + bank + branch) + _es_dc(acct) + acct
    if cc == "IT":
        return rng.choice(LETTERS) + digits(rng, 22)
    if cc == "NL":
        while True:     # Dutch account numbers pass the eleven test
            acct = digits(rng, 10)
            if acct[0] != "0" and sum(int(c) * w for c, w in zip(acct, range(10, 0, -1))) % 11 == 0:
                return "".join(rng.choice(LETTERS) for _ in range(4)) + acct
    if cc == "BE":
        first = digits(rng, 10)
        chk = int(first) % 97 or 97
        return f"{first}{chk:02d}"
    if cc == "PT":
        first = digits(rng, 19)
        chk = 98 - (int(first) * 100) % 97
        return f"{first}{chk:02d}"
    if cc == "CH":
        return digits(rng, 17)
    if cc == "AT":
        return digits(rng, 16)
    raise KeyError(cc)


IBAN_BIAS = {"en": ["GB"], "es": ["ES"], "de": ["DE", "AT", "CH"], "fr": ["FR", "BE", "CH"],
             "it": ["IT", "CH"], "nl": ["NL", "BE"], "pt": ["PT"]}


def _iban_fmt(rng, s):
    if rng.random() < 0.5:
        return s
    return " ".join(s[i:i + 4] for i in range(0, len(s), 4))


def _iban_country(rng, lang):
    return rng.choice(IBAN_BIAS[lang]) if rng.random() < 0.5 else rng.choice(sorted(IBAN_LEN))


def gen_iban(rng, lang):
    cc = _iban_country(rng, lang)
    s = iban_checked(cc, _bban(rng, cc))
    assert iban_ok(s) and len(s) == IBAN_LEN[cc]
    return _iban_fmt(rng, s)


def gen_iban_bad(rng, lang):
    cc = _iban_country(rng, lang)
    s = iban_checked(cc, _bban(rng, cc))
    if rng.random() < 0.5:      # wrong check digits
        good = int(s[2:4])
        bad = rng.choice([n for n in range(2, 99) if n != good])
        s = f"{s[:2]}{bad:02d}{s[4:]}"
    else:                       # one BBAN digit changed (a single-digit change always breaks mod 97)
        pos = rng.choice([i for i in range(4, len(s)) if s[i].isdigit()])
        s = s[:pos] + rng.choice([c for c in string.digits if c != s[pos]]) + s[pos + 1:]
    assert not iban_ok(s)
    return _iban_fmt(rng, s)


def gen_iban_len(rng, lang):
    """mod-97 passes but the length is wrong for the country."""
    cc = _iban_country(rng, lang)
    bban = _bban(rng, cc)
    bban = bban + digits(rng, 1) if rng.random() < 0.5 else bban[:-1]
    s = iban_checked(cc, bban)
    assert not iban_ok(s) and _iban_number(s[4:] + s[:4]) % 97 == 1
    return _iban_fmt(rng, s)


# ---------------------------------------------------------------- IP

def gen_ip4(rng):
    r = rng.random()
    if r < 0.8:
        net = rng.choice(["192.0.2", "198.51.100", "203.0.113"])
        return f"{net}.{rng.randint(1, 254)}"
    if r < 0.9:
        return f"10.{rng.randint(0, 255)}.{rng.randint(0, 255)}.{rng.randint(1, 254)}"
    if r < 0.95:
        return f"192.168.{rng.randint(0, 255)}.{rng.randint(1, 254)}"
    return f"172.{rng.randint(16, 31)}.{rng.randint(0, 255)}.{rng.randint(1, 254)}"


def _h(rng, pad=False):
    v = rng.choice([rng.randint(1, 0xffff), rng.randint(1, 0xfff), rng.randint(1, 0xff)])
    return f"{v:04x}" if pad else f"{v:x}"


def gen_ip6(rng):
    style = rng.randrange(6)
    if style == 0:      # full, zero-padded
        s = "2001:0db8:" + ":".join(_h(rng, True) if rng.random() < 0.7 else "0000" for _ in range(6))
    elif style == 1:    # full, unpadded
        s = "2001:db8:" + ":".join(_h(rng) if rng.random() < 0.7 else "0" for _ in range(6))
    elif style == 2:    # compressed in the middle
        head = ["2001", "db8"] + [_h(rng) for _ in range(rng.randint(0, 2))]
        tail = [_h(rng) for _ in range(rng.randint(1, 3))]
        s = ":".join(head) + "::" + ":".join(tail)
    elif style == 3:    # short compressed
        s = f"2001:db8::{_h(rng)}"
    elif style == 4:    # IPv4-mapped / embedded tail
        s = rng.choice(["::ffff:", "::ffff:", "64:ff9b::", "2001:db8::"]) + gen_ip4(rng)
        if s.startswith("2001") or s.startswith("64"):
            s = s.split("::")[0] + "::" + f"{rng.choice(['192.0.2', '198.51.100', '203.0.113'])}.{rng.randint(1, 254)}"
    else:               # compressed with more groups
        s = f"2001:db8:{_h(rng)}:{_h(rng)}::{_h(rng)}:{_h(rng)}"
    if rng.random() < 0.12 and not re.search(r"\d+\.\d+", s):
        s = s.upper()
    return s


def gen_ip(rng):
    return gen_ip4(rng) if rng.random() < 0.6 else gen_ip6(rng)


def gen_bad_ip(rng):
    net = rng.choice(["192.0.2", "198.51.100", "203.0.113"])
    r = rng.random()
    if r < 0.45:
        return f"{net}.{rng.randint(256, 999)}"
    if r < 0.75:
        a, b, c = net.split(".")
        return f"{a}.{b}.{rng.randint(256, 999)}.{rng.randint(1, 254)}"
    return f"{net}.0{rng.randint(1, 99)}"          # leading zero


# ---------------------------------------------------------------- SSN

def _ssn_parts(rng):
    while True:
        a, g, s = rng.randint(1, 899), rng.randint(1, 99), rng.randint(1, 9999)
        if ssn_ok(a, g, s) and (a, g, s) not in ((78, 5, 1120), (219, 9, 9999), (123, 45, 6789)):
            return a, g, s


def gen_ssn(rng):
    a, g, s = _ssn_parts(rng)
    sep = "-" if rng.random() < 0.7 else " "
    return f"{a:03d}{sep}{g:02d}{sep}{s:04d}"


def gen_ssn_bare(rng):
    a, g, s = _ssn_parts(rng)
    return f"{a:03d}{g:02d}{s:04d}"


def gen_itin(rng):
    g = rng.choice(list(range(50, 66)) + list(range(70, 89)) + [90, 91, 92] + list(range(94, 100)))
    sep = "-" if rng.random() < 0.8 else " "
    return f"9{rng.randint(0, 99):02d}{sep}{g:02d}{sep}{rng.randint(0, 9999):04d}"


def gen_ssn_bad(rng):
    a, g, s = _ssn_parts(rng)
    kind = rng.randrange(5)
    if kind == 0:
        a = 0
    elif kind == 1:
        a = 666
    elif kind == 2:
        a, g = rng.randint(900, 999), rng.choice(list(range(1, 50)) + [66, 67, 68, 69, 89, 93])
    elif kind == 3:
        g = 0
    else:
        s = 0
    assert not ssn_ok(a, g, s)
    sep = "-" if rng.random() < 0.8 else " "
    return f"{a:03d}{sep}{g:02d}{sep}{s:04d}"


def gen_nine(rng):
    while True:
        a, g, s = rng.randint(100, 599), rng.randint(1, 99), rng.randint(1, 9999)
        if ssn_ok(a, g, s):
            return f"{a:03d}{g:02d}{s:04d}"


def gen_partno(rng):
    a, g, s = _ssn_parts(rng)
    core = f"{a:03d}-{g:02d}-{s:04d}"
    return core + f"-{rng.randint(1, 99):02d}" if rng.random() < 0.6 else f"{rng.randint(10, 99)}-{core}"


# ---------------------------------------------------------------- other look-alikes

RETINA = ["icon@2x.png", "logo@3x.jpg", "avatar@2x.webp", "hero-banner@2x.jpg", "btn_close@3x.png",
          "splash@2x.png", "checkmark@3x.png", "header-bg@2x.jpg"]
PKGS = ["lodash@4.17.21", "react@18.2.0", "@types/node@20.11.5", "@angular/core@17.3.0",
        "typescript@5.4.5", "left-pad@1.3.0", "express@4.19.2", "vite@5.2.11", "eslint@8.57.0"]
HANDLES = ["@ana_ruiz", "@devops", "@jmuller", "@sophie.m", "@luca_r", "@pbakker", "@tiago", "@release-bot"]
LOCALS = ["root@localhost", "admin@localhost", "deploy@localhost", "www-data@localhost", "postgres@localhost"]
NOTLD = ["maria@example", "support@intranet", "jan@fileserver", "backup@nas", "ops@example", "it@corp"]
OIDS_LONG = ["1.3.6.1.4.1.311.21.7", "1.3.6.1.2.1.1.3.0", "2.16.840.1.101.3.4.2.1",
             "1.2.840.113549.1.1.11", "1.3.6.1.2.1.2.2.1.10", "1.3.6.1.4.1.9.9.13.1.3.1.3",
             "1.3.6.1.2.1.25.3.3.1.2", "1.3.6.1.4.1.2021.10.1.3.1", "1.3.6.1.2.1.31.1.1.1.6"]
OIDS_4 = ["2.5.4.3", "2.5.4.6", "2.5.4.10", "2.5.4.11", "2.5.29.17", "2.5.29.19", "1.3.6.1", "2.5.29.15"]


def gen_ua(rng):
    v = rng.randint(110, 126)
    win, webkit = "Windows NT 10.0; Win64; x64", "AppleWebKit/537.36 (KHTML, like Gecko)"
    return rng.choice([
        f"Mozilla/5.0 ({win}) {webkit} Chrome/{v}.0.0.0 Safari/537.36",
        f"Mozilla/5.0 ({win}) {webkit} Chrome/{v}.0.0.0 Safari/537.36 Edg/{v}.0.0.0",
        f"Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) {webkit} Chrome/{v}.0.0.0 Safari/537.36",
        f"Mozilla/5.0 (X11; Linux x86_64; rv:{v - 5}.0) Gecko/20100101 Firefox/{v - 5}.0",
        f"Mozilla/5.0 (Linux; Android 10; K) {webkit} Chrome/{v}.0.0.0 Mobile Safari/537.36",
        f"Mozilla/5.0 ({win}) {webkit} Chrome/{v}.0.0.0 Safari/537.36 OPR/{v - 14}.0.0.0",
        f"Chrome/{v}.0.0.0",
        f"Edg/{v}.0.0.0",
    ])


def gen_ver(rng):
    return rng.choice([
        f"{rng.randint(1, 12)}.{rng.randint(0, 9)}.{rng.randint(0, 9)}.{rng.randint(0, 255)}",
        "1.2.3.4", "2.0.0.1", "10.0.0.1", "4.2.1.0", f"{rng.randint(1, 5)}.{rng.randint(0, 20)}.0.{rng.randint(1, 99)}",
    ])


def gen_vver(rng):
    return rng.choice(["v", "v", "V"]) + gen_ver(rng)


def gen_section(rng):
    return ".".join(str(rng.randint(1, 12)) for _ in range(4))


def gen_mac(rng):
    parts = [f"{rng.randint(0, 255):02X}" for _ in range(6)]
    if rng.random() < 0.4:
        parts = [p.lower() for p in parts]
    return rng.choice([":", ":", "-"]).join(parts)


def gen_time(rng):
    return f"{rng.randint(0, 23):02d}:{rng.randint(0, 59):02d}:{rng.randint(0, 59):02d}"


def gen_stamp(rng):
    return (f"2024-{rng.randint(1, 12):02d}-{rng.randint(1, 28):02d}T{rng.randint(0, 23):02d}:"
            f"{rng.randint(0, 59):02d}:{rng.randint(0, 59):02d}Z")


def gen_date(rng, lang):
    y, m, d = rng.randint(2019, 2025), rng.randint(1, 12), rng.randint(1, 28)
    forms = {
        "en": [f"{m:02d}/{d:02d}/{y}", f"{y}-{m:02d}-{d:02d}", f"{d:02d}/{m:02d}/{y}"],
        "es": [f"{d:02d}/{m:02d}/{y}", f"{d:02d}-{m:02d}-{y}", f"{y}-{m:02d}-{d:02d}"],
        "de": [f"{d:02d}.{m:02d}.{y}", f"{d}.{m}.{y}", f"{y}-{m:02d}-{d:02d}"],
        "fr": [f"{d:02d}/{m:02d}/{y}", f"{y}-{m:02d}-{d:02d}"],
        "it": [f"{d:02d}/{m:02d}/{y}", f"{d:02d}.{m:02d}.{y}"],
        "nl": [f"{d:02d}-{m:02d}-{y}", f"{d:02d}/{m:02d}/{y}"],
        "pt": [f"{d:02d}/{m:02d}/{y}", f"{d:02d}-{m:02d}-{y}", f"{y}-{m:02d}-{d:02d}"],
    }[lang]
    return rng.choice(forms)


def gen_price(rng, lang):
    big = rng.randint(1_000_000, 9_999_999)
    mid = rng.randint(1000, 99999)
    cents = rng.randint(0, 99)
    if lang == "en":
        return rng.choice([f"${big:,}.00", f"${mid:,}.{cents:02d}", f"£{mid:,}.{cents:02d}"])
    space = f"{big:,}".replace(",", " ")
    dots = f"{big:,}".replace(",", ".")
    mid_dots = f"{mid:,}".replace(",", ".")
    mid_space = f"{mid:,}".replace(",", " ")
    if lang in ("fr", "pt"):
        return rng.choice([f"{space} €", f"{mid_space},{cents:02d} €"])
    if lang == "nl":
        return rng.choice([f"€ {dots}", f"€ {mid_dots},{cents:02d}"])
    return rng.choice([f"{dots} €", f"{mid_dots},{cents:02d} €", f"{space} €"])


def gen_postal(rng, lang):
    if lang == "en":
        return rng.choice([f"{rng.randint(10000, 99999)}", f"{rng.randint(10000, 99999)}-{rng.randint(1000, 9999)}",
                           f"EC{rng.randint(1, 4)}A {rng.randint(1, 9)}BB"])
    if lang == "nl":
        return f"{rng.randint(1000, 9999)} {rng.choice(LETTERS)}{rng.choice(LETTERS)}"
    if lang == "pt":
        return f"{rng.randint(1000, 4999)}-{rng.randint(0, 999):03d}"
    if lang == "it":
        return f"{rng.randint(0, 99999):05d}"
    return f"{rng.randint(10000, 99999)}"


def gen_isbn(rng):
    while True:
        if rng.random() < 0.75:
            body = rng.choice(["978", "979"]) + digits(rng, 9)
            chk = (10 - sum(int(c) * (1 if i % 2 == 0 else 3) for i, c in enumerate(body)) % 10) % 10
            full = body + str(chk)
            pub = rng.randint(1, 4)
            s = f"{full[:3]}-{full[3]}-{full[4:4 + pub + 1]}-{full[5 + pub:12]}-{full[12]}"
        else:
            body = digits(rng, 9)
            chk = (11 - sum(int(c) * (10 - i) for i, c in enumerate(body)) % 11) % 11
            s = f"{body[0]}-{body[1:4]}-{body[4:9]}-{'X' if chk == 10 else chk}"
        if not has_card_like_run(s):
            return s


def gen_orderno(rng):
    r = rng.random()
    if r < 0.3:
        return "555" + digits(rng, 7)
    if r < 0.5:
        return "0" + digits(rng, 9)
    return digits(rng, 10)


def gen_digits(rng):
    n = rng.choice([7, 8, 10, 10, 11, 12])
    if rng.random() < 0.3 and n == 10:
        return "0" + rng.choice("1234567") + digits(rng, 8)     # shaped like a French/Dutch number, no context
    return rng.choice("123456789") + digits(rng, n - 1)


def gen_year(rng):
    return str(rng.randint(1968, 2025))


# ============================================================================ slots

POSITIVE = {
    "email": ("email", lambda r, lang: gen_email(r, lang)),
    "phone": ("phone", lambda r, lang: gen_phone(r, lang)),
    "phone_bare": ("phone", lambda r, lang: gen_phone(r, lang, "bare")),
    "phone_intl": ("phone", lambda r, lang: gen_phone(r, lang, "intl")),
    "phone_us": ("phone", lambda r, lang: gen_phone(r, lang, "us")),
    "phone_uk": ("phone", lambda r, lang: gen_phone(r, lang, "uk")),
    "phone_ext": ("phone", lambda r, lang: gen_phone_ext(r, lang)),
    "card": ("credit_card", lambda r, lang: gen_card(r)),
    "iban": ("iban", lambda r, lang: gen_iban(r, lang)),
    "ip": ("ip", lambda r, lang: gen_ip(r)),
    "ip4": ("ip", lambda r, lang: gen_ip4(r)),
    "ip6": ("ip", lambda r, lang: gen_ip6(r)),
    "ssn": ("us_ssn", lambda r, lang: gen_ssn(r)),
    "ssn_bare": ("us_ssn", lambda r, lang: gen_ssn_bare(r)),
}

# look-alike slot -> (the type it imitates, generator)
LOOKALIKE = {
    "retina": ("email", lambda r, lang: r.choice(RETINA)),
    "pkg": ("email", lambda r, lang: r.choice(PKGS)),
    "handle": ("email", lambda r, lang: r.choice(HANDLES)),
    "localmail": ("email", lambda r, lang: r.choice(LOCALS)),
    "notld": ("email", lambda r, lang: r.choice(NOTLD)),
    "date": ("phone", gen_date),
    "stamp": ("phone", lambda r, lang: gen_stamp(r)),
    "price": ("phone", gen_price),
    "orderno": ("phone", lambda r, lang: gen_orderno(r)),
    "isbn": ("phone", lambda r, lang: gen_isbn(r)),
    "postal": ("phone", gen_postal),
    "year": ("phone", lambda r, lang: gen_year(r)),
    "digits": ("phone", lambda r, lang: gen_digits(r)),
    "card_bad": ("credit_card", lambda r, lang: gen_card_bad(r)),
    "longnum": ("credit_card", lambda r, lang: gen_longnum(r)),
    "luhn_len": ("credit_card", lambda r, lang: gen_luhn_len(r)),
    "iban_bad": ("iban", gen_iban_bad),
    "iban_len": ("iban", gen_iban_len),
    "ver": ("ip", lambda r, lang: gen_ver(r)),
    "vver": ("ip", lambda r, lang: gen_vver(r)),
    "oid": ("ip", lambda r, lang: r.choice(OIDS_LONG)),
    "oid4": ("ip", lambda r, lang: r.choice(OIDS_4)),
    "ua": ("ip", lambda r, lang: gen_ua(r)),
    "section": ("ip", lambda r, lang: gen_section(r)),
    "time": ("ip", lambda r, lang: gen_time(r)),
    "mac": ("ip", lambda r, lang: gen_mac(r)),
    "bad_ip": ("ip", lambda r, lang: gen_bad_ip(r)),
    "itin": ("us_ssn", lambda r, lang: gen_itin(r)),
    "ssn_bad": ("us_ssn", lambda r, lang: gen_ssn_bad(r)),
    "nine": ("us_ssn", lambda r, lang: gen_nine(r)),
    "partno": ("us_ssn", lambda r, lang: gen_partno(r)),
}

SLOT = re.compile(r"⟦([a-z0-9_]+)(?:#\d)?⟧")

# ============================================================================ templates
# ⟦name⟧ is a slot; ⟦name#2⟧ a second, independent value for the same slot kind.

T: dict[str, list[str]] = {}

T["en"] = [
    # ---- email
    "Hi team, please update my contact address to ⟦email⟧. Thanks!",
    "⟦email⟧ reported that the export button does nothing on Safari.",
    "From: Dana Whitfield <⟦email⟧>\nSubject: Re: renewal quote\n\nWorks for us, go ahead with the annual plan.",
    "CRM note: lead came in via the webinar, prefers email (⟦email⟧) over calls.",
    "- [ ] send the signed NDA to ⟦email⟧",
    "# TODO(⟦email⟧): remove this feature flag after the Q3 launch",
    "Contact:⟦email⟧",
    "cc ⟦email⟧, ⟦email#2⟧; bcc the shared inbox",
    "<a href=\"mailto:⟦email⟧\">Write to us</a>",
    "Is \"⟦email⟧\" still the right address for invoices?",
    "Unsubscribe request received from ⟦email⟧",
    # ---- phone
    "Customer asked for a callback at ⟦phone⟧ before 5pm.",
    "Name: Priya Natarajan | Tel: ⟦phone⟧ | Preferred: mornings",
    "Please call ⟦phone_bare⟧ if the courier can't find the gate.",
    "Our support line ⟦phone_ext⟧ is open on weekdays.",
    "Mobile:⟦phone⟧",
    "⟦phone⟧ - missed call, no voicemail left.",
    "Reach the night desk on ⟦phone_uk⟧; ask for Sam.",
    "Ring me (⟦phone⟧) when you're outside.",
    "Fax ⟦phone_bare⟧, attention accounts payable.",
    "[09:12] agent: what's the best number to reach you?\n[09:13] customer: ⟦phone_us⟧",
    "Text me at ⟦phone_bare⟧ when the parcel is out for delivery.",
    "Front desk: ⟦phone_ext⟧.",
    "If you're calling from abroad, dial ⟦phone_intl⟧",
    "cell ⟦phone_bare⟧ (after 6pm only)",
    # ---- credit card
    "Charge the deposit to card ⟦card⟧, expiry next March.",
    "Payment method on file: ⟦card⟧",
    "Customer read out ⟦card⟧ over the phone, which we must never store; redact this ticket.",
    "card_number,holder\n⟦card⟧,J. Okafor",
    "Refund to the card (⟦card⟧) will take five business days.",
    "`⟦card⟧` was pasted into the live chat by the user.",
    "// FIXME: hardcoded card ⟦card⟧ in the checkout fixture, remove before release",
    "⟦card⟧",
    # ---- iban
    "Please wire the balance to ⟦iban⟧ by Friday.",
    "Supplier bank details: IBAN:⟦iban⟧ BIC: EXMPGB2L",
    "Their IBAN changed (new one: ⟦iban⟧); confirm by phone before paying.",
    "| Vendor | IBAN |\n|---|---|\n| Acme Tools Ltd | ⟦iban⟧ |",
    "⟦iban⟧ is the account the refund should go to.",
    "Direct debit mandate signed for account ⟦iban⟧.",
    # ---- ip
    "Failed login for admin from ⟦ip⟧, account locked after 5 attempts.",
    "Allowlist request: please add ⟦ip4⟧ and ⟦ip6⟧ to the VPN policy.",
    "upstream timed out while reading response header, client: ⟦ip⟧, server: api",
    "The label printer has the static address ⟦ip4⟧:9100.",
    "curl -g http://[⟦ip6⟧]:8080/health",
    "Geo lookup for ⟦ip⟧ says Frankfurt, but the user claims to be in Leeds.",
    "Jan 12 03:14:07 gw sshd[2211]: Failed password for root from ⟦ip4⟧ port 52144 ssh2",
    "X-Forwarded-For: ⟦ip4⟧, ⟦ip4#2⟧",
    "listen [⟦ip6⟧]:443 ssl;",
    "ip6tables -A INPUT -s ⟦ip6⟧ -j DROP",
    "ssh ops@⟦ip4⟧ -p 2222",
    "IP:⟦ip⟧",
    # ---- ssn
    "Applicant SSN: ⟦ssn⟧",
    "Please verify the social security number ⟦ssn_bare⟧ against the W-2.",
    "⟦ssn⟧ was typed in the comments field by mistake; redact it.",
    "Employee record (SSN# ⟦ssn_bare⟧) updated by HR.",
    "The form listed her Social Security No. as ⟦ssn⟧.",
    "Customer: \"My SSN is ⟦ssn⟧\"",
    "SS# ⟦ssn_bare⟧ verified by phone.",
    "soc. sec. ⟦ssn_bare⟧",
    "ssn,first,last\n⟦ssn⟧,Avery,Stone\n⟦ssn#2⟧,Jamie,Cole",
    # ---- several types
    "New signup: ⟦email⟧, phone ⟦phone⟧, registered from ⟦ip⟧.",
    "Ticket 4821: Jordan Blake (⟦email⟧) disputes a charge on ⟦card⟧. Call back on ⟦phone_us⟧.",
    "Payroll change: SSN ⟦ssn⟧, new deposit account ⟦iban⟧.",
    "id,email,phone,last_ip\n17,⟦email⟧,⟦phone⟧,⟦ip⟧",
    "{\"user\": \"⟦email⟧\", \"ip\": \"⟦ip⟧\", \"plan\": \"pro\"}",
    "Wire from ⟦iban⟧ flagged; sender logged in from ⟦ip6⟧ and listed ⟦email⟧.",
    "INSERT INTO customers (email, phone) VALUES ('⟦email⟧', '⟦phone⟧');",
    "> **Contact:** ⟦email⟧ / ⟦phone⟧",
    # ---- mixed (real PII next to look-alikes)
    "⟦stamp⟧ WARN auth: too many attempts user=⟦email⟧ src=⟦ip⟧",
    "GET /login 200 from ⟦ip⟧ \"⟦ua⟧\"",
    "Her ITIN ⟦itin⟧ was rejected; the correct SSN is ⟦ssn⟧.",
    "Declined: ⟦card_bad⟧ (typo). Retried with ⟦card⟧ and it went through.",
    "Order #⟦orderno⟧: questions to ⟦email⟧ or ⟦phone⟧.",
    "Upgraded to version ⟦ver⟧; the host ⟦ip⟧ needs a reboot.",
    "Icons: ⟦retina⟧ (designer: ⟦email⟧)",
    "Old IBAN ⟦iban_bad⟧ bounced, use ⟦iban⟧ instead.",
    "Installed ⟦pkg⟧ on the box at ⟦ip4⟧.",
    "Switch port with MAC ⟦mac⟧ got lease ⟦ip4⟧ at ⟦time⟧.",
    "Employee ID ⟦nine⟧, SSN ⟦ssn⟧.",
    "Invoice ⟦orderno⟧ ⟦date⟧: billing contact ⟦phone_ext⟧",
    # ---- hard negatives
    "The retina asset ⟦retina⟧ is missing from the build.",
    "package.json pins ⟦pkg⟧; bumping it breaks the tests.",
    "Thanks ⟦handle⟧ for the quick fix!",
    "Cron output is mailed to ⟦localmail⟧ on every host.",
    "The signup form accepted ⟦notld⟧ even though there is no top-level domain.",
    "Order #⟦orderno⟧ placed on ⟦date⟧ for ⟦price⟧.",
    "Invoice ⟦orderno⟧ is overdue since ⟦date⟧.",
    "ISBN ⟦isbn⟧ (first edition, ⟦year⟧).",
    "Ship to: 1 Example Lane, Springfield, ⟦postal⟧",
    "Batch job ⟦digits⟧ finished in 42 s.",
    "Running agent version ⟦ver⟧ since ⟦time⟧ today.",
    "Release notes for ⟦vver⟧ are in the wiki.",
    "Build ⟦ver⟧ failed on the ARM runner.",
    "snmpget -v2c -c public core-sw1 ⟦oid⟧",
    "Poll OID ⟦oid4⟧ to read the certificate's common name.",
    "User-Agent: ⟦ua⟧",
    "As stated in section ⟦section⟧, the warranty does not cover water damage.",
    "Device ⟦mac⟧ connected at ⟦time⟧.",
    "Card number ⟦card_bad⟧ failed validation.",
    "Tracking ⟦longnum⟧ is waiting at the depot.",
    "IBAN ⟦iban_bad⟧ was rejected by the bank.",
    "The account field contained ⟦iban_len⟧, so the payment was held.",
    "ITIN: ⟦itin⟧",
    "SSN ⟦ssn_bad⟧ was never issued; flag the application.",
    "Employee ID ⟦nine⟧, badge reissued.",
    "Replace part ⟦partno⟧ (gasket kit).",
    "Range check failed: ⟦bad_ip⟧ is not a valid address.",
    "Total due: ⟦price⟧, paid ⟦date⟧.",
    "Meeting moved to ⟦date⟧ at ⟦time⟧.",
    "The reference ⟦digits⟧ appears on your statement.",
    "npm install ⟦pkg⟧ --save-exact",
    "<img src=\"/static/⟦retina⟧\" srcset=\"/static/⟦retina#2⟧ 2x\">",
    "git tag ⟦vver⟧ && git push --tags",
    "Wi-Fi client ⟦mac⟧ associated (RSSI -61 dBm)",
    "Total: ⟦price⟧ | Order: ⟦orderno⟧ | Date: ⟦date⟧",
    "isbn,title,year\n⟦isbn⟧,A Field Guide to Examples,⟦year⟧",
    "DEBUG ⟦time⟧ worker 7: retry in 500 ms",
    "assert not luhn_ok(\"⟦card_bad⟧\")",
    "IBAN_FIXTURE_INVALID = \"⟦iban_bad⟧\"",
    "Cluster ID ⟦digits⟧; shard count 12.",
    "Serial: ⟦nine⟧",
    "ITIN ⟦itin⟧ is on the 1040; no SSN has been issued yet.",
    "Ticket closed by ⟦handle⟧ at ⟦time⟧.",
    "Invalid IP in config: ⟦bad_ip⟧",
    "Ledger key ⟦luhn_len⟧ loaded.",
    "Version: ⟦ver⟧",
    "See § ⟦section⟧ for the retention rules.",
    "Test SSN ⟦ssn_bad⟧ (invalid on purpose) in the fixture.",
    "⟦stamp⟧ job ⟦digits⟧ done",
]

T["es"] = [
    # ---- email
    "Hola, soy Lucía. Podéis escribirme a ⟦email⟧ para cualquier duda.",
    "⟦email⟧ solicitó la baja del boletín el lunes.",
    "De: Carmen Díaz <⟦email⟧>\nAsunto: Presupuesto reforma\n\nAdjunto los planos de la cocina.",
    "Nota CRM: prefiere que le contactemos por correo (⟦email⟧), nunca por la mañana.",
    "Correo:⟦email⟧",
    "¿Sigue siendo «⟦email⟧» la dirección para las facturas?",
    # ---- phone
    "Llámame al ⟦phone⟧ a partir de las cinco.",
    "Nombre: Pablo Ruiz | Teléfono: ⟦phone⟧ | Ciudad: Sevilla",
    "Mi móvil es ⟦phone_bare⟧, escríbeme por WhatsApp.",
    "Atención al cliente: ⟦phone_ext⟧ (de lunes a viernes).",
    "⟦phone⟧, ese es el número de la oficina de Valencia.",
    "teléfono:⟦phone_bare⟧",
    "Si no contesto, deja un mensaje en el ⟦phone_intl⟧.",
    "[18:02] Marta: ¿me pasas el número del fontanero?\n[18:03] Diego: ⟦phone⟧",
    # ---- card
    "Pagó con la tarjeta ⟦card⟧ y el cargo aparece duplicado.",
    "Número de tarjeta: ⟦card⟧",
    "El cliente dictó su tarjeta (⟦card⟧) por teléfono; hay que borrarla del ticket.",
    "⟦card⟧ - tarjeta rechazada por fondos insuficientes.",
    # ---- iban
    "Por favor, haced la transferencia a la cuenta ⟦iban⟧ antes del viernes.",
    "IBAN:⟦iban⟧",
    "Datos bancarios del proveedor: titular Reformas Norte S.L., IBAN ⟦iban⟧.",
    "La devolución se hará en ⟦iban⟧; confirma que es correcto.",
    # ---- ip
    "Intento de acceso fallido desde ⟦ip⟧; la cuenta quedó bloqueada.",
    "Añade la IP ⟦ip4⟧ a la lista blanca del cortafuegos, por favor.",
    "El servidor de pruebas responde en [⟦ip6⟧]:8443.",
    "registro: usuario=mlopez ip=⟦ip⟧ resultado=OK",
    # ---- ssn
    "El empleado estadounidense indicó su SSN ⟦ssn⟧ en el alta.",
    "Número de la Seguridad Social de EE. UU. (SSN): ⟦ssn_bare⟧",
    "Formulario W-9 recibido; el número ⟦ssn⟧ figura en la casilla 2.",
    # ---- more single-type
    "Tarjeta:⟦card⟧;caducidad:12/27",
    "// TODO: quitar el IBAN de pruebas ⟦iban⟧ antes de subir a producción",
    "El cortafuegos bloqueó ⟦ip⟧ (demasiadas peticiones).",
    "Cliente de Miami: SS# ⟦ssn_bare⟧, pendiente de verificar.",
    # ---- several types
    "Nuevo cliente: ⟦email⟧, tel. ⟦phone⟧, alta realizada desde ⟦ip⟧.",
    "Reembolso: tarjeta ⟦card⟧ o, si falla, transferencia a ⟦iban⟧.",
    "nombre;correo;teléfono\nMarta Gil;⟦email⟧;⟦phone⟧",
    "Hola Pablo,\n\nte paso los datos de Ana: ⟦email⟧ / ⟦phone⟧.\n\nUn saludo",
    "**Contratista:** Elena Torres, SSN ⟦ssn⟧, cuenta ⟦iban⟧",
    # ---- mixed
    "Pedido nº ⟦orderno⟧: dudas a ⟦email⟧.",
    "La tarjeta ⟦card_bad⟧ dio error; luego pagó con ⟦card⟧ sin problema.",
    "IBAN antiguo ⟦iban_bad⟧ (devuelto), el nuevo es ⟦iban⟧.",
    "Actualizado a la versión ⟦ver⟧ el servidor ⟦ip⟧.",
    "Acceso desde ⟦ip⟧ con navegador ⟦ua⟧",
    # ---- hard negatives
    "El icono ⟦retina⟧ no se ve bien en pantallas grandes.",
    "Instalad ⟦pkg⟧, la versión anterior tiene un fallo.",
    "Gracias ⟦handle⟧ por revisar el PR.",
    "Pedido ⟦orderno⟧ enviado el ⟦date⟧.",
    "Factura ⟦orderno⟧ por importe de ⟦price⟧.",
    "ISBN ⟦isbn⟧, edición de ⟦year⟧.",
    "Dirección de envío: Calle Mayor 12, ⟦postal⟧ Madrid",
    "Referencia interna ⟦digits⟧ archivada.",
    "Servidor actualizado a la versión ⟦ver⟧ a las ⟦time⟧.",
    "Descarga ⟦vver⟧ desde la página de versiones.",
    "Consultar el OID ⟦oid⟧ en el switch.",
    "Cabecera User-Agent: ⟦ua⟧",
    "Según el apartado ⟦section⟧ del contrato, la garantía no cubre golpes.",
    "Dispositivo con MAC ⟦mac⟧ conectado a las ⟦time⟧.",
    "Tarjeta ⟦card_bad⟧ rechazada: número no válido.",
    "Número de seguimiento ⟦longnum⟧.",
    "El banco rechazó el IBAN ⟦iban_bad⟧.",
    "En el campo cuenta aparece ⟦iban_len⟧; el pago queda retenido.",
    "ITIN del contribuyente: ⟦itin⟧",
    "El SSN ⟦ssn_bad⟧ no es válido, revisa el formulario.",
    "Número de empleado ⟦nine⟧.",
    "Pieza de recambio ⟦partno⟧ agotada.",
    "La dirección IP ⟦bad_ip⟧ no es válida.",
    "Total: ⟦price⟧ (IVA incluido).",
    "Reunión el ⟦date⟧ a las ⟦time⟧.",
    "Los correos del sistema van a ⟦localmail⟧.",
    "Expediente ⟦digits⟧ cerrado el ⟦date⟧.",
    "Clave contable ⟦luhn_len⟧ cargada sin errores.",
]

T["de"] = [
    # ---- email
    "Bitte schicken Sie die Unterlagen an ⟦email⟧.",
    "⟦email⟧ hat sich über die lange Lieferzeit beschwert.",
    "Von: Sabine Hoffmann <⟦email⟧>\nBetreff: Angebot Nr. 17\n\nVielen Dank für das Angebot.",
    "E-Mail:⟦email⟧",
    "Ansprechpartnerin ist Frau Weber (⟦email⟧).",
    "# Wartung: bei Fragen an ⟦email⟧ wenden",
    # ---- phone
    "Rufen Sie mich bitte unter ⟦phone⟧ zurück.",
    "Name: Lukas Becker | Telefon: ⟦phone⟧ | Abteilung: Einkauf",
    "Handy: ⟦phone_bare⟧",
    "Die Hotline ⟦phone_ext⟧ ist werktags von 8 bis 18 Uhr erreichbar.",
    "⟦phone⟧ - Rückruf erbeten wegen Reklamation.",
    "Zentrale aus dem Ausland: ⟦phone_intl⟧",
    "Für Rückfragen stehe ich Ihnen unter der Nummer ⟦phone⟧ gern zur Verfügung.",
    "Telefon:⟦phone_bare⟧",
    # ---- card
    "Die Zahlung erfolgte mit der Kreditkarte ⟦card⟧.",
    "Kartennummer: ⟦card⟧",
    "Der Kunde hat seine Karte (⟦card⟧) im Chat gepostet; bitte löschen.",
    "⟦card⟧ wurde als gestohlen gemeldet.",
    # ---- iban
    "Bitte überweisen Sie den Betrag auf das Konto ⟦iban⟧.",
    "IBAN:⟦iban⟧",
    "Unsere neue Bankverbindung lautet ⟦iban⟧; die alte ist ab sofort ungültig.",
    "Kontoinhaber: Max Beispiel, IBAN ⟦iban⟧, Verwendungszweck: Miete Mai",
    # ---- ip
    "Fehlgeschlagene Anmeldung von ⟦ip⟧, Konto gesperrt.",
    "Bitte ⟦ip4⟧ in der Firewall freigeben.",
    "Der Drucker hat die feste Adresse ⟦ip⟧.",
    "Zugriff verweigert: Quelle=⟦ip6⟧; Ziel=intranet",
    # ---- ssn
    "Die US-Sozialversicherungsnummer (SSN) des Mitarbeiters lautet ⟦ssn⟧.",
    "SSN: ⟦ssn_bare⟧",
    "⟦ssn⟧ stand versehentlich im Freitextfeld.",
    # ---- more single-type
    "- [ ] Karte ⟦card⟧ im CRM schwärzen",
    "Lastschriftmandat für ⟦iban⟧ liegt vor.",
    "[⟦ip4⟧] 403 Forbidden /admin",
    "W-4 von Mr. Miller: social security number ⟦ssn_bare⟧",
    # ---- several types
    "Neuer Kunde: ⟦email⟧, Tel. ⟦phone⟧, registriert von ⟦ip⟧.",
    "Rückerstattung auf Karte ⟦card⟧ oder per Überweisung auf ⟦iban⟧.",
    "Name;E-Mail;Telefon\nAnna Schmidt;⟦email⟧;⟦phone⟧",
    "Sehr geehrte Damen und Herren,\n\nbitte buchen Sie die Gebühr von ⟦iban⟧ ab. Rückfragen an ⟦email⟧."
    "\n\nMit freundlichen Grüßen",
    "Support-Chat\nKunde: Meine Karte ist ⟦card⟧, E-Mail ⟦email⟧\nAgent: Bitte keine Kartendaten im Chat!",
    # ---- mixed
    "Bestellung ⟦orderno⟧: Fragen bitte an ⟦email⟧.",
    "Karte ⟦card_bad⟧ abgelehnt, danach erfolgreich mit ⟦card⟧ bezahlt.",
    "Update auf Version ⟦ver⟧ auf Host ⟦ip⟧ eingespielt.",
    "Zugriff von ⟦ip⟧ mit ⟦ua⟧",
    "Gerät ⟦mac⟧ erhielt um ⟦time⟧ die Adresse ⟦ip4⟧.",
    # ---- hard negatives
    "Das Symbol ⟦retina⟧ fehlt im Build.",
    "Wir pinnen ⟦pkg⟧, weil die neue Version bricht.",
    "Danke ⟦handle⟧ für den Hinweis!",
    "Systemmails gehen an ⟦localmail⟧.",
    "Bestellung Nr. ⟦orderno⟧ vom ⟦date⟧.",
    "Rechnung ⟦orderno⟧ über ⟦price⟧ ist fällig.",
    "ISBN ⟦isbn⟧, erschienen ⟦year⟧.",
    "Lieferadresse: Musterstraße 5, ⟦postal⟧ Berlin",
    "Vorgang ⟦digits⟧ wurde abgeschlossen.",
    "Agent auf Version ⟦ver⟧ aktualisiert um ⟦time⟧ Uhr.",
    "Build ⟦ver⟧ ist fehlgeschlagen.",
    "OID ⟦oid4⟧ liefert den Common Name.",
    "snmpwalk liefert für ⟦oid⟧ keinen Wert.",
    "User-Agent: ⟦ua⟧",
    "Gemäß § ⟦section⟧ der AGB ist der Umtausch ausgeschlossen.",
    "MAC-Adresse ⟦mac⟧ ist nicht registriert.",
    "Kartennummer ⟦card_bad⟧ ungültig (Prüfziffer).",
    "Sendungsnummer ⟦longnum⟧",
    "Die Bank lehnte ⟦iban_bad⟧ ab.",
    "Im Kontofeld steht ⟦iban_len⟧; Zahlung angehalten.",
    "ITIN ⟦itin⟧ (keine SSN vorhanden).",
    "Die SSN ⟦ssn_bad⟧ ist ungültig.",
    "Personalnummer ⟦nine⟧",
    "Ersatzteil ⟦partno⟧ nachbestellen.",
    "Adresse ⟦bad_ip⟧ ist ungültig.",
    "Termin am ⟦date⟧ um ⟦time⟧.",
    "Preis: ⟦price⟧ zzgl. MwSt.",
    "Das Formular akzeptierte ⟦notld⟧ ohne Domainendung.",
    "Buchungsschlüssel ⟦luhn_len⟧ importiert.",
]

T["fr"] = [
    # ---- email
    "Bonjour, vous pouvez me joindre à l'adresse ⟦email⟧.",
    "⟦email⟧ demande le remboursement de sa commande.",
    "De : Camille Dubois <⟦email⟧>\nObjet : devis cuisine\n\nMerci pour votre retour.",
    "Courriel:⟦email⟧",
    "Note CRM : contact principal « ⟦email⟧ », relancer en septembre.",
    # ---- phone
    "Merci de me rappeler au ⟦phone⟧ après 18 h.",
    "Nom : Thomas Petit | Tél. : ⟦phone⟧ | Service : comptabilité",
    "Mon portable : ⟦phone_bare⟧",
    "Standard : ⟦phone_ext⟧",
    "⟦phone⟧, c'est le numéro de l'agence de Lyon.",
    "Appelez le ⟦phone_intl⟧ (depuis l'étranger).",
    "téléphone:⟦phone⟧",
    "[14:05] Léa : tu as le numéro du plombier ?\n[14:06] Hugo : ⟦phone⟧",
    # ---- card
    "Le client a payé avec la carte ⟦card⟧.",
    "Numéro de carte : ⟦card⟧",
    "Carte bancaire (⟦card⟧) communiquée par téléphone ; à supprimer du ticket.",
    "⟦card⟧ : opposition faite le jour même.",
    # ---- iban
    "Merci d'effectuer le virement sur le compte ⟦iban⟧.",
    "IBAN:⟦iban⟧",
    "RIB du fournisseur : ⟦iban⟧ (titulaire : Menuiserie Exemple SARL).",
    "Le remboursement sera versé sur ⟦iban⟧.",
    # ---- ip
    "Connexion refusée depuis ⟦ip⟧ après trois essais.",
    "Ajoutez ⟦ip4⟧ à la liste blanche du pare-feu.",
    "Adresse du serveur de test : ⟦ip6⟧.",
    "journal: utilisateur=cdubois ip=⟦ip⟧ statut=OK",
    # ---- ssn
    "Le salarié américain a indiqué son SSN ⟦ssn⟧ sur le formulaire.",
    "Numéro de sécurité sociale américain (SSN) : ⟦ssn_bare⟧",
    "⟦ssn⟧ figure par erreur dans le champ commentaire.",
    # ---- more single-type
    "Paiement refusé pour « ⟦card⟧ » : plafond atteint.",
    "Prélèvement SEPA : mandat signé pour ⟦iban⟧.",
    "Bloquer ⟦ip⟧ ; trop de requêtes en une minute.",
    "Dossier RH (SSN ⟦ssn⟧) transmis au siège de Boston.",
    # ---- several types
    "Nouveau client : ⟦email⟧, tél. ⟦phone⟧, inscription depuis ⟦ip⟧.",
    "Remboursement sur la carte ⟦card⟧ ou par virement sur ⟦iban⟧.",
    "nom;courriel;téléphone\nSophie Martin;⟦email⟧;⟦phone⟧",
    "Bonjour,\n\nvoici les coordonnées de Léa : ⟦email⟧ / ⟦phone⟧.\n\nCordialement",
    "- Contact : ⟦email⟧\n- IP de connexion : ⟦ip⟧\n- Carte : ⟦card⟧",
    # ---- mixed
    "Commande n° ⟦orderno⟧ : questions à ⟦email⟧.",
    "La carte ⟦card_bad⟧ a été refusée, puis paiement accepté avec ⟦card⟧.",
    "Mise à jour en version ⟦ver⟧ du serveur ⟦ip⟧.",
    "Accès depuis ⟦ip⟧ avec ⟦ua⟧",
    "Ancien IBAN ⟦iban_bad⟧ rejeté, nouveau : ⟦iban⟧.",
    # ---- hard negatives
    "L'icône ⟦retina⟧ est floue sur mobile.",
    "On reste sur ⟦pkg⟧ pour l'instant.",
    "Merci ⟦handle⟧ pour la relecture !",
    "Commande ⟦orderno⟧ expédiée le ⟦date⟧.",
    "Facture ⟦orderno⟧ d'un montant de ⟦price⟧.",
    "ISBN ⟦isbn⟧, paru en ⟦year⟧.",
    "Adresse de livraison : 12 rue de l'Exemple, ⟦postal⟧ Paris",
    "Dossier ⟦digits⟧ clôturé.",
    "Agent mis à jour en version ⟦ver⟧ à ⟦time⟧.",
    "Téléchargez ⟦vver⟧ depuis la page des versions.",
    "L'OID ⟦oid⟧ ne renvoie rien.",
    "En-tête User-Agent : ⟦ua⟧",
    "Conformément à l'article ⟦section⟧ des CGV, l'échange est exclu.",
    "Adresse MAC ⟦mac⟧ inconnue du réseau.",
    "Carte ⟦card_bad⟧ refusée : numéro invalide.",
    "Numéro de suivi ⟦longnum⟧",
    "La banque a rejeté l'IBAN ⟦iban_bad⟧.",
    "Le champ compte contient ⟦iban_len⟧ ; paiement bloqué.",
    "ITIN : ⟦itin⟧",
    "Le SSN ⟦ssn_bad⟧ n'est pas valide.",
    "Matricule ⟦nine⟧",
    "Référence pièce ⟦partno⟧ en rupture.",
    "L'adresse ⟦bad_ip⟧ est invalide.",
    "Prix : ⟦price⟧ TTC.",
    "Rendez-vous le ⟦date⟧ à ⟦time⟧.",
    "Les mails système partent vers ⟦localmail⟧.",
    "Identifiant comptable ⟦luhn_len⟧ importé.",
]

T["it"] = [
    # ---- email
    "Buongiorno, potete scrivermi a ⟦email⟧ per qualsiasi domanda.",
    "⟦email⟧ ha chiesto la cancellazione dell'account.",
    "Da: Giulia Bianchi <⟦email⟧>\nOggetto: preventivo\n\nGrazie mille, a presto.",
    "Email:⟦email⟧",
    "Referente: dott. Ferrari (⟦email⟧).",
    # ---- phone
    "Mi richiami al ⟦phone⟧ dopo le 17.",
    "Nome: Luca Rossi | Tel: ⟦phone⟧ | Reparto: vendite",
    "Cellulare: ⟦phone_bare⟧",
    "Assistenza clienti ⟦phone_ext⟧, dal lunedì al venerdì.",
    "⟦phone⟧ è il numero della sede di Torino.",
    "Dall'estero chiamate il ⟦phone_intl⟧.",
    "telefono:⟦phone⟧",
    "telefono ⟦phone_bare⟧ (solo pomeriggio)",
    # ---- card
    "Il cliente ha pagato con la carta ⟦card⟧.",
    "Numero carta: ⟦card⟧",
    "Carta di credito (⟦card⟧) dettata al telefono; da cancellare dal ticket.",
    "⟦card⟧ bloccata per sospetta frode.",
    # ---- iban
    "Effettuare il bonifico sul conto ⟦iban⟧ entro venerdì.",
    "IBAN:⟦iban⟧",
    "Coordinate bancarie del fornitore: ⟦iban⟧ (intestato a Edilizia Esempio S.r.l.).",
    "Il rimborso verrà accreditato su ⟦iban⟧.",
    # ---- ip
    "Accesso negato da ⟦ip⟧ dopo tre tentativi.",
    "Aggiungere ⟦ip4⟧ alla whitelist del firewall.",
    "Il server di staging risponde su ⟦ip6⟧.",
    "log: utente=lrossi ip=⟦ip⟧ esito=OK",
    # ---- ssn
    "Il dipendente statunitense ha indicato il suo SSN ⟦ssn⟧.",
    "Numero di previdenza sociale USA (SSN): ⟦ssn_bare⟧",
    "⟦ssn⟧ è finito per errore nel campo note.",
    # ---- more single-type
    "{\"carta\": \"⟦card⟧\", \"titolare\": \"E. Greco\"}",
    "Addebito SEPA autorizzato su ⟦iban⟧.",
    "Bloccato ⟦ip⟧: troppe richieste.",
    "Pratica visto USA: SSN# ⟦ssn_bare⟧",
    # ---- several types
    "Nuovo cliente: ⟦email⟧, tel. ⟦phone⟧, registrato da ⟦ip⟧.",
    "Rimborso sulla carta ⟦card⟧ oppure bonifico su ⟦iban⟧.",
    "nome;email;telefono\nChiara Romano;⟦email⟧;⟦phone⟧",
    "Ciao Marco,\n\nti giro i contatti di Franco: ⟦email⟧ / ⟦phone⟧.\n\nA presto",
    "| Campo | Valore |\n|---|---|\n| SSN | ⟦ssn⟧ |\n| IBAN | ⟦iban⟧ |",
    # ---- mixed
    "Ordine n. ⟦orderno⟧: domande a ⟦email⟧.",
    "Carta ⟦card_bad⟧ rifiutata, poi pagamento con ⟦card⟧ andato a buon fine.",
    "Aggiornato alla versione ⟦ver⟧ il server ⟦ip⟧.",
    "Accesso da ⟦ip⟧ con ⟦ua⟧",
    "Il vecchio IBAN ⟦iban_bad⟧ è stato respinto; usare ⟦iban⟧.",
    # ---- hard negatives
    "L'icona ⟦retina⟧ manca nel pacchetto.",
    "Restiamo su ⟦pkg⟧ finché non esce la patch.",
    "Grazie ⟦handle⟧ per la segnalazione!",
    "Ordine ⟦orderno⟧ spedito il ⟦date⟧.",
    "Fattura ⟦orderno⟧ di ⟦price⟧.",
    "ISBN ⟦isbn⟧, pubblicato nel ⟦year⟧.",
    "Indirizzo di spedizione: Via Esempio 3, ⟦postal⟧ Roma",
    "Pratica ⟦digits⟧ archiviata.",
    "Agente aggiornato alla versione ⟦ver⟧ alle ⟦time⟧.",
    "Scaricare ⟦vver⟧ dalla pagina delle release.",
    "L'OID ⟦oid4⟧ restituisce il common name.",
    "Intestazione User-Agent: ⟦ua⟧",
    "Ai sensi della sezione ⟦section⟧ del contratto la garanzia decade.",
    "MAC ⟦mac⟧ non autorizzato.",
    "Carta ⟦card_bad⟧ non valida.",
    "Codice di tracciamento ⟦longnum⟧",
    "La banca ha respinto l'IBAN ⟦iban_bad⟧.",
    "Nel campo conto c'è ⟦iban_len⟧; pagamento sospeso.",
    "ITIN: ⟦itin⟧",
    "L'SSN ⟦ssn_bad⟧ non è valido.",
    "Matricola ⟦nine⟧",
    "Codice ricambio ⟦partno⟧ esaurito.",
    "Indirizzo ⟦bad_ip⟧ non valido.",
    "Prezzo: ⟦price⟧ IVA inclusa.",
    "Appuntamento il ⟦date⟧ alle ⟦time⟧.",
    "Il modulo ha accettato ⟦notld⟧ senza dominio di primo livello.",
]

T["nl"] = [
    # ---- email
    "Hoi, je kunt me mailen op ⟦email⟧.",
    "⟦email⟧ wil zijn abonnement opzeggen.",
    "Van: Emma Visser <⟦email⟧>\nOnderwerp: offerte\n\nBedankt voor de snelle reactie.",
    "E-mail:⟦email⟧",
    "Contactpersoon: mevrouw Jansen (⟦email⟧).",
    # ---- phone
    "Bel me terug op ⟦phone⟧ na vijf uur.",
    "Naam: Pieter Bakker | Tel: ⟦phone⟧ | Afdeling: inkoop",
    "Mijn telefoon: ⟦phone_bare⟧",
    "De klantenservice ⟦phone_ext⟧ is op werkdagen bereikbaar.",
    "⟦phone⟧ is het nummer van het kantoor in Utrecht.",
    "Vanuit het buitenland: ⟦phone_intl⟧.",
    "telefoon:⟦phone⟧",
    "[10:31] Bram: wat is het nummer van de loodgieter?\n[10:32] Femke: ⟦phone⟧",
    # ---- card
    "De klant heeft betaald met creditcard ⟦card⟧.",
    "Kaartnummer: ⟦card⟧",
    "Creditcard (⟦card⟧) telefonisch doorgegeven; verwijderen uit het ticket.",
    "⟦card⟧ is geblokkeerd wegens fraude.",
    # ---- iban
    "Graag het bedrag overmaken naar ⟦iban⟧.",
    "IBAN:⟦iban⟧",
    "Bankgegevens leverancier: ⟦iban⟧ t.n.v. Bouwbedrijf Voorbeeld B.V.",
    "De terugbetaling gaat naar ⟦iban⟧.",
    # ---- ip
    "Mislukte login vanaf ⟦ip⟧, account geblokkeerd.",
    "Zet ⟦ip4⟧ op de whitelist van de firewall.",
    "De testserver luistert op ⟦ip6⟧.",
    "log: gebruiker=jdevries ip=⟦ip⟧ status=OK",
    # ---- ssn
    "De Amerikaanse medewerker gaf zijn SSN ⟦ssn⟧ op.",
    "Amerikaans social security number: ⟦ssn_bare⟧",
    "⟦ssn⟧ stond per ongeluk in het opmerkingenveld.",
    # ---- more single-type
    "Betaling mislukt voor kaart ⟦card⟧; klant gevraagd het opnieuw te proberen.",
    "Machtiging voor automatische incasso van ⟦iban⟧ ontvangen.",
    "Geblokkeerd: ⟦ip⟧ (te veel verzoeken)",
    "Dossier expat: SSN ⟦ssn⟧, verhuisd naar Rotterdam.",
    # ---- several types
    "Nieuwe klant: ⟦email⟧, tel. ⟦phone⟧, aangemeld vanaf ⟦ip⟧.",
    "Terugbetaling op kaart ⟦card⟧ of via overboeking naar ⟦iban⟧.",
    "naam;e-mail;telefoon\nLotte Smit;⟦email⟧;⟦phone⟧",
    "Beste Sanne,\n\nhierbij de gegevens van Daan: ⟦email⟧ / ⟦phone⟧.\n\nGroeten",
    "Klant belde vanaf ⟦phone⟧ over de incasso van ⟦iban⟧ (ingelogd vanaf ⟦ip⟧).",
    # ---- mixed
    "Bestelling ⟦orderno⟧: vragen naar ⟦email⟧.",
    "Kaart ⟦card_bad⟧ geweigerd, daarna gelukt met ⟦card⟧.",
    "Server ⟦ip⟧ bijgewerkt naar versie ⟦ver⟧.",
    "Toegang vanaf ⟦ip⟧ met ⟦ua⟧",
    "Oud IBAN ⟦iban_bad⟧ afgewezen, nieuw: ⟦iban⟧.",
    # ---- hard negatives
    "Het icoon ⟦retina⟧ ontbreekt in de build.",
    "We blijven op ⟦pkg⟧ tot de fix uit is.",
    "Dank ⟦handle⟧ voor de review!",
    "Bestelling ⟦orderno⟧ verzonden op ⟦date⟧.",
    "Factuur ⟦orderno⟧ van ⟦price⟧ staat open.",
    "ISBN ⟦isbn⟧, verschenen in ⟦year⟧.",
    "Afleveradres: Voorbeeldstraat 8, ⟦postal⟧ Amsterdam",
    "Dossier ⟦digits⟧ gesloten.",
    "Agent bijgewerkt naar versie ⟦ver⟧ om ⟦time⟧.",
    "Download ⟦vver⟧ via de releasepagina.",
    "OID ⟦oid⟧ geeft geen waarde terug.",
    "User-Agent-header: ⟦ua⟧",
    "Volgens artikel ⟦section⟧ van de voorwaarden vervalt de garantie.",
    "MAC-adres ⟦mac⟧ is onbekend.",
    "Kaart ⟦card_bad⟧ ongeldig.",
    "Trackingcode ⟦longnum⟧",
    "De bank weigerde IBAN ⟦iban_bad⟧.",
    "In het rekeningveld staat ⟦iban_len⟧; betaling aangehouden.",
    "ITIN: ⟦itin⟧",
    "Het SSN ⟦ssn_bad⟧ is ongeldig.",
    "Personeelsnummer ⟦nine⟧",
    "Onderdeel ⟦partno⟧ is uitverkocht.",
    "Adres ⟦bad_ip⟧ is ongeldig.",
    "Prijs: ⟦price⟧ incl. btw.",
    "Afspraak op ⟦date⟧ om ⟦time⟧.",
    "Systeemmails gaan naar ⟦localmail⟧.",
    "Grootboeksleutel ⟦luhn_len⟧ ingelezen.",
]

T["pt"] = [
    # ---- email
    "Olá, podem escrever-me para ⟦email⟧.",
    "⟦email⟧ pediu o cancelamento da assinatura.",
    "De: Beatriz Costa <⟦email⟧>\nAssunto: orçamento\n\nObrigada pela resposta rápida.",
    "Email:⟦email⟧",
    "Responsável: Eng. Ferreira (⟦email⟧).",
    # ---- phone
    "Ligue-me para o ⟦phone⟧ depois das seis.",
    "Nome: Tiago Oliveira | Tel: ⟦phone⟧ | Departamento: compras",
    "Tel.: ⟦phone_bare⟧",
    "Apoio ao cliente: ⟦phone_ext⟧ (dias úteis).",
    "⟦phone⟧ é o número da loja do Porto.",
    "Do estrangeiro, ligue ⟦phone_intl⟧.",
    "telemóvel:⟦phone⟧",
    "[11:20] Rita: tens o número do canalizador?\n[11:21] Pedro: ⟦phone⟧",
    # ---- card
    "O cliente pagou com o cartão ⟦card⟧.",
    "Número do cartão: ⟦card⟧",
    "Cartão de crédito (⟦card⟧) ditado por telefone; apagar do ticket.",
    "⟦card⟧ foi cancelado por suspeita de fraude.",
    # ---- iban
    "Por favor, transfira o valor para ⟦iban⟧.",
    "IBAN:⟦iban⟧",
    "Dados bancários do fornecedor: ⟦iban⟧ (titular: Construções Exemplo, Lda.).",
    "O reembolso será feito para ⟦iban⟧.",
    # ---- ip
    "Tentativa de login falhada a partir de ⟦ip⟧.",
    "Adicione ⟦ip4⟧ à lista branca da firewall.",
    "O servidor de testes responde em ⟦ip6⟧.",
    "log: utilizador=jsilva ip=⟦ip⟧ estado=OK",
    # ---- ssn
    "O funcionário norte-americano indicou o SSN ⟦ssn⟧.",
    "Número da segurança social dos EUA (SSN): ⟦ssn_bare⟧",
    "⟦ssn⟧ ficou por engano no campo de observações.",
    # ---- more single-type
    "Pagamento recusado no cartão ⟦card⟧; limite excedido.",
    "Débito direto autorizado na conta ⟦iban⟧.",
    "Bloqueado ⟦ip⟧ (demasiados pedidos).",
    "Processo de visto: SSN# ⟦ssn_bare⟧ confirmado.",
    # ---- several types
    "Novo cliente: ⟦email⟧, tel. ⟦phone⟧, registo a partir de ⟦ip⟧.",
    "Reembolso no cartão ⟦card⟧ ou por transferência para ⟦iban⟧.",
    "nome;email;telefone\nRita Sousa;⟦email⟧;⟦phone⟧",
    "Olá Rui,\n\nseguem os contactos da Inês: ⟦email⟧ / ⟦phone⟧.\n\nCumprimentos",
    "Pedido de reembolso: cartão ⟦card⟧, SSN ⟦ssn⟧, contacto ⟦email⟧",
    # ---- mixed
    "Encomenda nº ⟦orderno⟧: dúvidas para ⟦email⟧.",
    "Cartão ⟦card_bad⟧ recusado, depois pagou com ⟦card⟧.",
    "Servidor ⟦ip⟧ atualizado para a versão ⟦ver⟧.",
    "Acesso a partir de ⟦ip⟧ com ⟦ua⟧",
    "IBAN antigo ⟦iban_bad⟧ devolvido; o novo é ⟦iban⟧.",
    # ---- hard negatives
    "O ícone ⟦retina⟧ está desfocado.",
    "Mantemos ⟦pkg⟧ até sair a correção.",
    "Obrigado ⟦handle⟧ pela revisão!",
    "Encomenda ⟦orderno⟧ enviada em ⟦date⟧.",
    "Fatura ⟦orderno⟧ no valor de ⟦price⟧.",
    "ISBN ⟦isbn⟧, publicado em ⟦year⟧.",
    "Morada de entrega: Rua do Exemplo 4, ⟦postal⟧ Lisboa",
    "Processo ⟦digits⟧ arquivado.",
    "Agente atualizado para a versão ⟦ver⟧ às ⟦time⟧.",
    "Descarregue ⟦vver⟧ na página de versões.",
    "O OID ⟦oid4⟧ devolve o common name.",
    "Cabeçalho User-Agent: ⟦ua⟧",
    "Nos termos da secção ⟦section⟧ do contrato, a garantia não se aplica.",
    "Endereço MAC ⟦mac⟧ desconhecido.",
    "Cartão ⟦card_bad⟧ inválido.",
    "Código de rastreio ⟦longnum⟧",
    "O banco rejeitou o IBAN ⟦iban_bad⟧.",
    "No campo conta aparece ⟦iban_len⟧; pagamento retido.",
    "ITIN: ⟦itin⟧",
    "O SSN ⟦ssn_bad⟧ não é válido.",
    "Número de funcionário ⟦nine⟧",
    "Peça ⟦partno⟧ esgotada.",
    "O endereço ⟦bad_ip⟧ é inválido.",
    "Preço: ⟦price⟧ com IVA.",
    "Reunião a ⟦date⟧ às ⟦time⟧.",
    "O formulário aceitou ⟦notld⟧ sem domínio de topo.",
]

# ============================================================================ assembly and checks

LITERAL_BAD = re.compile(r"\d{6,}|\d+\.\d+\.\d+\.\d+|\S@\S|\d{3}-\d{2}-\d{4}")
EMAILISH = re.compile(r"[A-Za-z0-9._%+-]+@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*\.[A-Za-z]{2,}(?![A-Za-z0-9])")
QUAD = re.compile(r"(?<![\d.])(\d{1,3})\.(\d{1,3})\.(\d{1,3})\.(\d{1,3})(?![\d.])")
SSNISH = re.compile(r"(?<![\d-])(\d{3})([- ])(\d{2})\2(\d{4})(?![\d-])")
IP_LOOKALIKES = {"ver", "vver", "oid", "oid4", "ua", "section"}


def check_template(tpl: str) -> None:
    for lit in SLOT.split(tpl)[::2]:
        assert not LITERAL_BAD.search(lit), f"template literal carries a look-alike: {tpl!r}"
    for name in SLOT.findall(tpl):
        assert name in POSITIVE or name in LOOKALIKE, (name, tpl)


def render(tpl: str, rng: random.Random, lang: str):
    parts = re.split(r"(⟦[a-z0-9_]+(?:#\d)?⟧)", tpl)
    text, entities, looks, slots = "", [], [], []
    for part in parts:
        m = SLOT.fullmatch(part)
        if not m:
            text += part
            continue
        name = m.group(1)
        if name in POSITIVE:
            etype, fn = POSITIVE[name]
            while True:
                value = fn(rng, lang)
                if etype == "credit_card" or not has_card_like_run(value):
                    break
            start = len(text)
            text += value
            entities.append({"type": etype, "start": start, "end": len(text)})
            assert text[start:len(text)] == value
        else:
            _, fn = LOOKALIKE[name]
            while True:
                value = fn(rng, lang)
                if name == "longnum" or not has_card_like_run(value):
                    break
            start = len(text)
            text += value
            looks.append(name)
            slots.append((name, start, len(text)))
    return text, entities, sorted(set(looks)), slots


def _overlaps(a0, a1, spans):
    return any(a0 < b1 and b0 < a1 for b0, b1 in spans)


def stray_pii(text: str, entities, slots) -> str | None:
    """Something PII-shaped that is neither a labelled entity nor inside a look-alike slot."""
    by_type = {}
    for e in entities:
        by_type.setdefault(e["type"], []).append((e["start"], e["end"]))
    all_ents = [(e["start"], e["end"]) for e in entities]
    for m in DIGIT_RUN.finditer(text):
        d = re.sub(r"\D", "", m.group())
        cards = by_type.get("credit_card", [])
        if 13 <= len(d) <= 19 and luhn_ok(d) and not _overlaps(m.start(), m.end(), cards):
            return f"Luhn-valid run {m.group()!r}"
    for m in SSNISH.finditer(text):
        allowed = by_type.get("us_ssn", []) + [(s, e) for n, s, e in slots if n == "partno"]
        if ssn_ok(int(m.group(1)), int(m.group(3)), int(m.group(4))) and not _overlaps(m.start(), m.end(), allowed):
            return f"SSN-shaped {m.group()!r}"
    for m in EMAILISH.finditer(text):
        if not _overlaps(m.start(), m.end(), by_type.get("email", []) + [(s, e) for n, s, e in slots if n == "retina"]):
            return f"address {m.group()!r}"
    for m in QUAD.finditer(text):
        octets = m.groups()
        valid = all(int(o) <= 255 and (o == "0" or not o.startswith("0")) for o in octets)
        if valid and not _overlaps(m.start(), m.end(), all_ents + [(s, e) for n, s, e in slots if n in IP_LOOKALIKES]):
            return f"dotted quad {m.group()!r}"
    return None


REPS = {"positive": 2, "mixed": 2, "hard_negative": 2}


def build() -> list[dict]:
    rng = random.Random(SEED)
    rows = []
    for lang in LANGS:
        for tpl in T[lang]:
            check_template(tpl)
            names = SLOT.findall(tpl)
            has_pos = any(n in POSITIVE for n in names)
            has_neg = any(n in LOOKALIKE for n in names)
            assert has_pos or has_neg, tpl
            kind = "mixed" if has_pos and has_neg else "positive" if has_pos else "hard_negative"
            for _ in range(REPS[kind]):
                for _attempt in range(100):
                    text, entities, looks, slots = render(tpl, rng, lang)
                    problem = stray_pii(text, entities, slots)
                    if problem is None:
                        break
                else:
                    raise AssertionError(f"{tpl!r}: {problem}")
                rows.append({"lang": lang, "kind": kind, "text": text, "entities": entities,
                             "lookalikes": looks})
    rng.shuffle(rows)
    seen = set()
    out = []
    for r in rows:
        if r["text"] in seen:
            continue
        seen.add(r["text"])
        out.append({"id": f"heldout-{len(out) + 1:04d}", **r})
    return out


def verify(rows: list[dict]) -> None:
    for r in rows:
        ents = sorted(r["entities"], key=lambda e: e["start"])
        assert ents == r["entities"]
        for a, b in zip(ents, ents[1:]):
            assert a["end"] <= b["start"], ("overlap", r)
        if r["kind"] == "hard_negative":
            assert not ents and r["lookalikes"]
        elif r["kind"] == "positive":
            assert ents and not r["lookalikes"]
        else:
            assert ents and r["lookalikes"]
        for e in ents:
            v = r["text"][e["start"]:e["end"]]
            assert v and v == v.strip(), (v, r)
            if e["type"] == "credit_card":
                d = re.sub(r"[ -]", "", v)
                assert d.isdigit() and 13 <= len(d) <= 19 and luhn_ok(d), v
            elif e["type"] == "iban":
                assert iban_ok(v), v
            elif e["type"] == "us_ssn":
                d = re.sub(r"[ -]", "", v)
                assert len(d) == 9 and ssn_ok(int(d[:3]), int(d[3:5]), int(d[5:])), v
            elif e["type"] == "email":
                assert EMAILISH.fullmatch(v), v


def summary(rows: list[dict]) -> str:
    lines = [f"rows: {len(rows)}"]
    lines.append("kind: " + ", ".join(f"{k} {v}" for k, v in sorted(Counter(r["kind"] for r in rows).items())))
    lines.append("lang: " + ", ".join(f"{k} {v}" for k, v in sorted(Counter(r["lang"] for r in rows).items())))
    ents = Counter(e["type"] for r in rows for e in r["entities"])
    lines.append("entities: " + ", ".join(f"{k} {v}" for k, v in sorted(ents.items())))
    looks = Counter(n for r in rows for n in r["lookalikes"])
    by_type = Counter()
    for n, c in looks.items():
        by_type[LOOKALIKE[n][0]] += c
    lines.append("look-alike slots by imitated type: " + ", ".join(f"{k} {v}" for k, v in sorted(by_type.items())))
    lines.append("look-alike slots: " + ", ".join(f"{k} {v}" for k, v in sorted(looks.items())))
    return "\n".join(lines)


def main() -> int:
    rows = build()
    verify(rows)
    with open(OUT, "w", encoding="utf-8", newline="\n") as f:
        for r in rows:
            f.write(json.dumps(r, ensure_ascii=False) + "\n")
    print(summary(rows))
    return 0


if __name__ == "__main__":
    sys.exit(main())
