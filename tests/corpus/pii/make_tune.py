"""Write tune.jsonl, the labelled set the PII detector (tunesmith/data/pii.py) is tuned on.

    .venv/bin/python tests/corpus/pii/make_tune.py

Deterministic (fixed seed). Rows follow CONVENTION.md beside this file: positives of every type in
seven languages, hard negatives of every look-alike the convention lists, and mixed rows that hold
both. Templates name their slots as {{slot}}: a PII slot (email, phone, ...) becomes a labelled
entity, an `n_` slot becomes a look-alike with no label. Offsets are computed while the text is
assembled and checked with `text[start:end] == value`.
"""

from __future__ import annotations

import json
import random
import re
from pathlib import Path

SEED = 20240611
OUT = Path(__file__).with_name("tune.jsonl")
LANGS = ("en", "es", "de", "fr", "it", "nl", "pt")
TYPES = ("email", "phone", "credit_card", "iban", "ip", "us_ssn")
SLOT = re.compile(r"\{\{(\w+)\}\}")
# which PII type each positive slot produces ("_l": a label word stands before it in the template,
# so the forms that need one may be drawn)
SLOT_TYPE = {"email": "email", "phone": "phone", "phone_l": "phone", "card": "credit_card",
             "iban": "iban", "ip": "ip", "ip6": "ip", "ssn": "us_ssn", "ssn_l": "us_ssn"}

# ------------------------------------------------------------------------------------ values


def fill_mask(rng: random.Random, mask: str) -> str:
    """'#' any digit, 'N' 2-9, 'Z' 1-9; everything else is kept."""
    out = []
    for c in mask:
        if c == "#":
            out.append(str(rng.randint(0, 9)))
        elif c == "N":
            out.append(str(rng.randint(2, 9)))
        elif c == "Z":
            out.append(str(rng.randint(1, 9)))
        else:
            out.append(c)
    return "".join(out)


# (mask, needs a label word before it)
PHONE_FORMATS = {
    "en": [("(N##) ###-####", 0), ("N##-###-####", 0), ("N##.###.####", 0), ("1-800-###-####", 0),
           ("+1 N##-###-####", 0), ("+1 (N##) ###-####", 0), ("N#########", 1), ("1N#########", 1),
           ("N## ### ####", 0), ("07### ######", 0), ("07#########", 0), ("(020) 7### ####", 0),
           ("020 7### ####", 0), ("0161 ### ####", 0), ("+44 20 7### ####", 0), ("+44 7### ######", 0),
           ("+44 (0)20 7### ####", 0), ("1 (800) ###-####", 0), ("1.800.###.####", 0), ("+1 N## ### ####", 0),
           ("+1N#########", 0), ("0800 ### ####", 0), ("01632 ######", 0), ("(N##)###-####", 0), ("(N##)-###-####", 0)],
    "es": [("6## ### ###", 0), ("6## ## ## ##", 0), ("9## ### ###", 0), ("7## ### ###", 0), ("6########", 1),
           ("9########", 1), ("+34 6## ### ###", 0), ("0034 9## ## ## ##", 0), ("+34 6########", 0),
           ("+34 91 ### ## ##", 0), ("8## ## ## ##", 0), ("(+34) 6## ### ###", 0), ("+34 6## ## ## ##", 0),
           ("91 ### ## ##", 0), ("93 ### ## ##", 0)],
    "fr": [("01 ## ## ## ##", 0), ("06 ## ## ## ##", 0), ("07 ## ## ## ##", 0), ("04 ## ## ## ##", 0),
           ("06########", 1), ("01########", 1), ("+33 1 ## ## ## ##", 0), ("+33 6 ## ## ## ##", 0),
           ("+33 (0)6 ## ## ## ##", 0), ("0033 1 ## ## ## ##", 0), ("06.##.##.##.##", 0), ("01-##-##-##-##", 0),
           ("+33 (0)1 ## ## ## ##", 0), ("01.##.##.##.##", 0)],
    "de": [("030 #######", 0), ("030/#######", 0), ("0171 #######", 0), ("089 ########", 0),
           ("(030) #######", 0), ("0221 ######", 0), ("030 ########", 0), ("+49 30 #######", 0),
           ("0049 30 #######", 0), ("+49 171 #######", 0), ("+49 (0)89 ########", 0), ("030#######", 1),
           ("0151 ########", 0), ("040 / ######", 0), ("069-#######", 0), ("+49 (0) 30 #######", 0),
           ("0171/#######", 0), ("+49-30-#######", 0)],
    "it": [("06 #### ####", 0), ("02 #### ####", 0), ("347 ### ####", 0), ("333 #######", 0),
           ("+39 06 #### ####", 0), ("+39 347 ### ####", 0), ("3#########", 1), ("055 ### ####", 0),
           ("0039 02 #### ####", 0), ("06-####-####", 0), ("+39 06 ########", 0), ("02 ########", 0),
           ("333-#######", 0)],
    "nl": [("020 ### ####", 0), ("06 ########", 0), ("06-########", 0), ("010-#######", 0),
           ("+31 6 ########", 0), ("+31 20 ### ####", 0), ("06########", 1), ("030 ### ####", 0),
           ("0031 6 ########", 0), ("020-### ####", 0), ("+31 (0)20 ### ####", 0), ("0031 20 ### ####", 0)],
    "pt": [("912 ### ###", 0), ("21# ### ###", 0), ("21 ### ####", 0), ("+351 912 ### ###", 0),
           ("+351 21 ### ####", 0), ("9########", 1), ("00351 9## ### ###", 0), ("96# ### ###", 0),
           ("22# ### ###", 0), ("(+351) 912 ### ###", 0), ("+351 2## ### ###", 0)],
}
EXTENSIONS = [" x{n}", " x {n}", " ext. {n}", " ext {n}", " extension {n}", " Ext. {n}", "x{n}", " EXT {n}"]

FIRST = {"en": ["john", "mary", "david", "sarah", "mike", "emily", "chris", "olivia"],
         "es": ["javier", "lucia", "carmen", "pablo", "maria", "alejandro", "sofia"],
         "de": ["jonas", "anna", "lukas", "lea", "felix", "katrin", "juergen"],
         "fr": ["camille", "louis", "chloe", "hugo", "manon", "antoine", "ines"],
         "it": ["giulia", "marco", "francesca", "luca", "chiara", "matteo"],
         "nl": ["daan", "sanne", "bram", "femke", "joris", "lotte", "sven"],
         "pt": ["joao", "beatriz", "tiago", "mariana", "rui", "ines", "goncalo"]}
LAST = {"en": ["smith", "johnson", "brown", "miller", "davis", "wilson"],
        "es": ["garcia", "fernandez", "lopez", "martin", "ruiz", "navarro"],
        "de": ["mueller", "schmidt", "schneider", "fischer", "weber", "wagner"],
        "fr": ["martin", "bernard", "dubois", "leroy", "moreau", "lefebvre"],
        "it": ["rossi", "russo", "ferrari", "esposito", "bianchi", "romano"],
        "nl": ["dejong", "jansen", "devries", "bakker", "visser", "smit"],
        "pt": ["silva", "santos", "ferreira", "pereira", "oliveira", "costa"]}
DOMAINS = {"en": ["example.com", "mail.co.uk", "acme-corp.com", "uni.edu", "gmail.com", "support.example.org"],
           "es": ["empresa.es", "correo.com.mx", "gmail.com", "hotmail.es", "ayto-madrid.es"],
           "de": ["firma.de", "web.de", "gmx.net", "uni-hamburg.de", "mail.example.at"],
           "fr": ["societe.fr", "orange.fr", "laposte.net", "free.fr", "exemple.be"],
           "it": ["azienda.it", "libero.it", "tiscali.it", "comune.roma.it", "pec.example.it"],
           "nl": ["bedrijf.nl", "ziggo.nl", "kpnmail.nl", "gemeente.example.nl", "telenet.be"],
           "pt": ["empresa.pt", "sapo.pt", "gmail.com", "uol.com.br", "exemplo.com.br"]}

IBAN_BBAN = {"DE": "##################", "ES": "####################", "FR": "##########AAAAAAAAAAA##",
             "IT": "A######################", "NL": "AAAA##########", "PT": "#####################",
             "GB": "AAAA##############", "BE": "############", "AT": "################",
             "CH": "#################", "IE": "AAAA##############", "LU": "################"}
# registered total lengths (SWIFT IBAN registry), checked against the masks above
IBAN_LENGTH = {"DE": 22, "ES": 24, "FR": 27, "IT": 27, "NL": 18, "PT": 25, "GB": 22, "BE": 16, "AT": 20,
               "CH": 21, "IE": 22, "LU": 20}
assert all(len(IBAN_BBAN[c]) + 4 == n for c, n in IBAN_LENGTH.items())
IBAN_BY_LANG = {"en": ["GB", "IE", "DE"], "es": ["ES", "ES", "FR"], "de": ["DE", "AT", "CH"],
                "fr": ["FR", "BE", "LU"], "it": ["IT", "IT", "CH"], "nl": ["NL", "BE", "DE"],
                "pt": ["PT", "PT", "ES"]}


def email(rng: random.Random, lang: str) -> str:
    first, last = rng.choice(FIRST[lang]), rng.choice(LAST[lang])
    local = rng.choice([f"{first}.{last}", f"{first[0]}{last}", f"{first}_{last}", f"{first}{rng.randint(1, 99)}",
                        f"{first}+{rng.choice(['news', 'shop', 'work'])}", f"{last}.{first[0]}", "info", "contact"])
    address = f"{local}@{rng.choice(DOMAINS[lang])}"
    return address.upper() if rng.random() < 0.05 else address


def phone(rng: random.Random, lang: str, labelled: bool) -> str:
    formats = [m for m, needs in PHONE_FORMATS[lang] if labelled or not needs]
    number = fill_mask(rng, rng.choice(formats))
    if rng.random() < (0.25 if lang == "en" else 0.08):
        number += rng.choice(EXTENSIONS).format(n=rng.randint(1, 9999))
    return number


def luhn_digit(body: str) -> str:
    total = 0
    for i, c in enumerate(reversed(body)):
        d = int(c)
        if i % 2 == 0:
            d = d * 2 - 9 if d > 4 else d * 2
        total += d
    return str((10 - total % 10) % 10)


def card_digits(rng: random.Random) -> str:
    prefix, length = rng.choice([("4", 16), ("4", 16), ("51", 16), ("55", 16), ("2221", 16), ("34", 15),
                                 ("37", 15), ("6011", 16), ("35", 16), ("36", 14), ("4", 13), ("4", 19)])
    body = prefix + "".join(str(rng.randint(0, 9)) for _ in range(length - len(prefix) - 1))
    return body + luhn_digit(body)


def group_card(rng: random.Random, digits: str) -> str:
    style = rng.choice(["compact", "space", "space", "dash"])
    if style == "compact":
        return digits
    sep = " " if style == "space" else "-"
    if len(digits) == 15:
        return sep.join([digits[:4], digits[4:10], digits[10:]])
    if len(digits) == 14:
        return sep.join([digits[:4], digits[4:10], digits[10:]])
    return sep.join(digits[i:i + 4] for i in range(0, len(digits), 4))


def card(rng: random.Random) -> str:
    return group_card(rng, card_digits(rng))


def bad_card(rng: random.Random) -> str:
    digits = card_digits(rng)
    wrong = str((int(digits[-1]) + rng.randint(1, 9)) % 10)
    return group_card(rng, digits[:-1] + wrong)


def iban_compact(rng: random.Random, country: str) -> str:
    bban = "".join(rng.choice("ABCDEFGHIJKLMNOPQRSTUVWXYZ") if c == "A" else str(rng.randint(0, 9))
                   for c in IBAN_BBAN[country])
    numeric = "".join(str(int(c, 36)) for c in bban + country + "00")
    return f"{country}{98 - int(numeric) % 97:02d}{bban}"


def group_iban(rng: random.Random, compact: str) -> str:
    if rng.random() < 0.4:
        return compact
    return " ".join(compact[i:i + 4] for i in range(0, len(compact), 4))


def iban(rng: random.Random, lang: str) -> str:
    return group_iban(rng, iban_compact(rng, rng.choice(IBAN_BY_LANG[lang])))


def bad_iban(rng: random.Random, lang: str) -> str:
    compact = iban_compact(rng, rng.choice(IBAN_BY_LANG[lang]))
    i = rng.randrange(4, len(compact))
    while not compact[i].isdigit():
        i = rng.randrange(4, len(compact))
    # one changed digit: mod-97 always catches a single substitution
    compact = compact[:i] + str((int(compact[i]) + rng.randint(1, 9)) % 10) + compact[i + 1:]
    return group_iban(rng, compact)


def ipv4(rng: random.Random) -> str:
    first = rng.choice([10, 172, 192, 8, 81, 203, 185, 62, 94, 212])
    return ".".join(str(x) for x in [first, rng.randint(0, 255), rng.randint(0, 255), rng.randint(1, 254)])


def ipv6(rng: random.Random) -> str:
    groups = [f"{rng.randint(0, 0xffff):x}" for _ in range(8)]
    style = rng.choice(["full", "compressed", "doc", "linklocal", "mapped"])
    if style == "mapped":  # IPv4-mapped: 32 bits written as a dotted quad
        return "::ffff:" + ipv4(rng)
    if style == "full":
        return ":".join(groups)
    if style == "doc":
        return "2001:db8::" + ":".join(groups[:rng.randint(1, 3)])
    if style == "linklocal":
        return "fe80::" + ":".join(groups[:4])
    return ":".join(groups[:3]) + "::" + groups[7]


def ssn_parts(rng: random.Random) -> tuple[str, str, str]:
    area = rng.choice([a for a in range(1, 900) if a != 666])
    return f"{area:03d}", f"{rng.randint(1, 99):02d}", f"{rng.randint(1, 9999):04d}"


def ssn(rng: random.Random, labelled: bool) -> str:
    a, g, s = ssn_parts(rng)
    style = rng.choice(["dash", "dash", "space"] + (["bare", "bare"] if labelled else []))
    return {"dash": f"{a}-{g}-{s}", "space": f"{a} {g} {s}", "bare": f"{a}{g}{s}"}[style]


def positive(rng: random.Random, slot: str, lang: str) -> str:
    return {
        "email": lambda: email(rng, lang), "phone": lambda: phone(rng, lang, False),
        "phone_l": lambda: phone(rng, lang, True), "card": lambda: card(rng), "iban": lambda: iban(rng, lang),
        "ip": lambda: ipv4(rng), "ip6": lambda: ipv6(rng), "ssn": lambda: ssn(rng, False),
        "ssn_l": lambda: ssn(rng, True),
    }[slot]()


# ------------------------------------------------------------------------------------ look-alikes


def negative(rng: random.Random, slot: str, lang: str) -> str:
    a, g, s = ssn_parts(rng)
    d = lambda n: "".join(str(rng.randint(0, 9)) for _ in range(n))  # noqa: E731
    choices = {
        "n_retina": lambda: f"{rng.choice(['icon', 'logo', 'btn-close', 'avatar', 'hero', 'sprite'])}@"
                            f"{rng.choice(['2x', '3x', '1.5x', '2x', '3x'])}."
                            f"{rng.choice(['png', 'jpg', 'webp', 'gif', 'PNG', 'svg'])}",
        "n_handle": lambda: "@" + rng.choice(["maria_g", "jdoe", "devops_team", "lukas.m", "support"]),
        "n_localhost": lambda: rng.choice(["root@localhost", "postgres@localhost", "admin@server",
                                           "name@example", "user@intranet"]),
        "n_pkg": lambda: rng.choice(["lodash@4.17.21", "react@18.2.0", "typescript@5.3.3", "@types/node@20.10.5",
                                     "vue@3.4.15", "express@4.18.2", "left-pad@1.3.0"]),
        "n_date": lambda: rng.choice([f"{rng.randint(1, 28):02d}/{rng.randint(1, 12):02d}/20{rng.randint(10, 30)}",
                                      f"20{rng.randint(10, 30)}-{rng.randint(1, 12):02d}-{rng.randint(1, 28):02d}",
                                      f"{rng.randint(1, 28):02d}.{rng.randint(1, 12):02d}.20{rng.randint(10, 30)}",
                                      f"{rng.randint(1, 28):02d}-{rng.randint(1, 12):02d}-20{rng.randint(10, 30)}"]),
        "n_time": lambda: rng.choice([f"{rng.randint(0, 23):02d}:{rng.randint(0, 59):02d}",
                                      f"{rng.randint(0, 23):02d}:{rng.randint(0, 59):02d}:{rng.randint(0, 59):02d}"]),
        "n_price": lambda: rng.choice([f"{rng.randint(1, 9)} {d(3)} {d(3)} €", f"${rng.randint(1, 999)},{d(3)}.{d(2)}",
                                       f"{rng.randint(1, 99)}.{d(3)},{d(2)} €", f"€{rng.randint(1, 999)}.{d(2)}",
                                       f"{rng.randint(1, 9)}.{d(3)}.{d(3)} €", f"£{rng.randint(1, 99)},{d(3)}"]),
        "n_isbn": lambda: rng.choice(["978-0-306-40615-7", "978-3-16-148410-0", "0-306-40615-2",
                                      "978-84-376-0494-7", "979-10-90636-07-1", "9780306406157"]),
        "n_postal": lambda: {"en": "94105-1234", "es": "28013", "de": "10115", "fr": "75008", "it": "00184",
                             "nl": "1012 AB", "pt": "1000-001"}[lang],
        "n_year": lambda: str(rng.randint(1950, 2030)),
        "n_ver": lambda: rng.choice(["v2.3.1", "3.10.12", "10.0.19041.1", "1.2.3", "v4.17.21", "2.0.0-rc.1"]),
        "n_digits10": lambda: str(rng.randint(2, 9)) + d(9),
        "n_digits9": lambda: str(rng.randint(1, 8)) + d(8),
        "n_0digits10": lambda: "0" + str(rng.randint(1, 9)) + d(8),
        "n_digits12": lambda: str(rng.randint(1, 9)) + d(11),
        "n_itin": lambda: f"9{d(2)}-{rng.randint(70, 88)}-{d(4)}",
        "n_ssnchain": lambda: f"{a}-{g}-{s}-{d(2)}",
        "n_badssn": lambda: rng.choice([f"000-{g}-{s}", f"666-{g}-{s}", f"{a}-00-{s}", f"{a}-{g}-0000",
                                        f"9{d(2)}-{g}-{s}"]),
        "n_badcard": lambda: bad_card(rng),
        "n_longrun": lambda: card_digits(rng) + d(rng.randint(4, 8)),
        "n_badiban": lambda: bad_iban(rng, lang),
        "n_quad": lambda: f"{rng.randint(1, 20)}.{rng.randint(0, 9)}.{rng.randint(0, 9)}.{rng.randint(0, 99)}",
        "n_oidlong": lambda: rng.choice(["1.3.6.1.4.1.311", "1.3.6.1.2.1.1.3.0", "2.16.840.1.101.3.4.2.1",
                                         "1.2.840.113549.1.1.11"]),
        "n_ua": lambda: rng.choice(["Chrome/120.0.0.0", "Edg/120.0.0.0", "Chrome/119.0.6045.105",
                                    "OPR/105.0.0.0", "Firefox/115.0", "Safari/537.36"]),
        "n_mac": lambda: ":".join(f"{rng.randint(0, 255):02X}" for _ in range(6)),
        "n_badip": lambda: rng.choice([f"{rng.randint(256, 999)}.{rng.randint(0, 255)}.1.1",
                                       f"192.168.{rng.randint(0, 255)}.{rng.randint(256, 400)}",
                                       f"10.0.0{rng.randint(1, 9)}.1"]),
        "n_bigcount": lambda: f"{rng.choice([2, 6, 7, 8, 9])}{d(2)} {d(3)} {d(3)}",
        "n_bigamount": lambda: f"{rng.randint(1, 9)}." + ".".join(str(rng.randint(100, 255)) for _ in range(3)),
        "n_partchain": lambda: f"0{d(2)}-{d(2)}-{d(4)}-{d(2)}",
        "n_badssn0": lambda: rng.choice([f"0{d(2)}-00-{s}", f"0{d(2)}-{g}-0000", f"0{d(2)} 00 {s}"]),
    }
    return choices[slot]()


# ------------------------------------------------------------------------------------ templates
# POSITIVE / NEGATIVE per language; NEUTRAL_* are logs, CSV, JSON and code, labelled "en"; MIXED
# rows hold real PII next to a look-alike. "phone_l" and "ssn_l" stand only where a label word
# ("call", "Telefon", "SSN") is a few words before them.

POSITIVE = {
    "en": [
        "Please send the signed contract to {{email}} by Friday.",
        "Contact: {{email}}",
        'From: "Jane Roe" <{{email}}>',
        "{{email}} wrote: thanks for the quick reply!",
        "cc {{email}}; {{email}}",
        "Reply-To: {{email}}\nSubject: invoice overdue",
        "i changed my login email to {{email}} - can you confirm?",
        "Call me at {{phone_l}} after 5pm.",
        "Phone: {{phone_l}}",
        "Our office number is {{phone}} (Mon-Fri, 9-5).",
        "Tel.: {{phone_l}} / Fax: {{phone_l}}",
        "{{phone}} is my cell, text anytime",
        "Customer service: {{phone}}",
        "Ticket #4821 - customer called back from {{phone}} about the refund.",
        "hey, can you ring me on {{phone_l}}? thx",
        "Emergency contact (mobile): {{phone_l}}.",
        "please dial {{phone_l}}",
        "SSN: {{ssn_l}}",
        "Employee social security number {{ssn_l}} is on file.",
        "Social Security No. {{ssn_l}} (verified)",
        "SS# {{ssn_l}}",
        "W-2 form shows {{ssn}} for the employee.",
        "{{ssn}} - please redact before sharing",
        "Applicant SSN#{{ssn_l}}, DOB 04/12/1988",
        "Card number: {{card}} exp 09/27",
        "Charge {{card}}, CVV 123.",
        "pls use my visa {{card}} for the order",
        "The test card {{card}} was declined twice.",
        "{{card}}",
        "Please wire the deposit to IBAN {{iban}}.",
        "IBAN:{{iban}}",
        "Account {{iban}} (BIC DEUTDEFF), reference: rent May",
        "Failed login from {{ip}} at 03:14.",
        "ssh admin@{{ip}} -p 2222",
        "Server {{ip6}} is unreachable since this morning.",
        "X-Forwarded-For: {{ip}}, {{ip}}",
        "open http://{{ip}}/admin in the browser",
        "Hi, I'm Mary ({{email}}, {{phone}}), my card is {{card}}.",
        "Text me: {{phone_l}}!",
        'He read out "{{phone}}" twice.',
        "Numbers on file: {{phone}}, {{phone}}.",
        "tel:{{phone}}",
        "SSN:{{ssn_l}}",
        "IP:{{ip6}}",
        "curl -g http://[{{ip6}}]:443/health",
        "{{ip}}:8080 refused the connection",
        "Firewall rule allows {{ip}} only.",
        "The build server at {{ip}} is down again.",
        "Wire to {{iban}}",
        "visa {{card}} mastercard {{card}}",
        "reach me anytime ({{phone_l}})",
        "Social security number on the W-4: {{ssn_l}}.",
    ],
    "es": [
        "Escríbeme a {{email}} cuando puedas.",
        "Correo: {{email}}",
        "Mi correo electrónico es {{email}}, gracias.",
        "Enviado desde {{email}}",
        "¿Puedes reenviarlo a {{email}}?",
        "Llámame al {{phone_l}}.",
        "Teléfono: {{phone_l}}",
        "Mi móvil es el {{phone_l}}, escríbeme por WhatsApp.",
        "Para cualquier duda, contacte con nosotros en el {{phone}}.",
        "{{phone}} (oficina, de 9 a 14 h)",
        "Tfno. {{phone_l}} - preguntar por Ana",
        "Atención al cliente: {{phone}}",
        "Número de la seguridad social (EE. UU.): {{ssn_l}}",
        "SSN del empleado: {{ssn_l}}",
        "El formulario W-4 tiene el número {{ssn}} del trabajador.",
        "Pago con tarjeta {{card}}, caducidad 11/26.",
        "Número de tarjeta: {{card}}",
        "Mi tarjeta {{card}} fue rechazada, ¿por qué?",
        "Transferencia al IBAN {{iban}} antes del día 5.",
        "Cuenta bancaria: {{iban}}",
        "Datos bancarios - titular: Lucía Ruiz; IBAN: {{iban}}.",
        "Acceso bloqueado desde la IP {{ip}}.",
        "El servidor {{ip}} no responde al ping.",
        "Dirección IPv6 asignada: {{ip6}}",
        "Contacto: {{email}} / {{phone}}",
        "Móvil/WhatsApp: {{phone_l}}",
        "Número de Seguro Social: {{ssn_l}}",
        "IP:{{ip}}",
        "Hola, soy Pablo; mi email es {{email}} y mi teléfono {{phone_l}}.",
        "Puedes llamarme cuando quieras al {{phone_l}}",
    ],
    "de": [
        "Bitte schicken Sie die Unterlagen an {{email}}.",
        "E-Mail: {{email}}",
        "Rückfragen gerne an {{email}}!",
        "{{email}} hat die Datei freigegeben.",
        "Rufen Sie mich unter {{phone_l}} an.",
        "Telefon: {{phone_l}}",
        "Handy {{phone_l}}, tagsüber erreichbar.",
        "Tel./Fax: {{phone}}",
        "Sie erreichen unser Büro unter {{phone}} (Mo-Fr).",
        "Kundenservice: {{phone}}",
        "Durchwahl bitte über die Zentrale {{phone}}",
        "Sozialversicherungsnummer (USA, SSN): {{ssn_l}}",
        "SSN {{ssn_l}} des Mitarbeiters liegt vor.",
        "Die US-Steuerunterlagen nennen {{ssn}} als Nummer.",
        "Kreditkarte: {{card}}, gültig bis 03/28",
        "Bitte belasten Sie meine Karte {{card}}.",
        "Kartennummer {{card}} wurde gesperrt.",
        "Überweisung auf IBAN {{iban}}, Verwendungszweck: Miete",
        "Bankverbindung: {{iban}} (Sparkasse)",
        "IBAN {{iban}}; BIC: COBADEFFXXX",
        "Fehlgeschlagener Login von {{ip}} um 02:13 Uhr.",
        "Der Server {{ip}} ist seit gestern offline.",
        "IPv6 des Routers: {{ip6}}",
        "Anfragen an {{email}} oder telefonisch unter {{phone_l}}.",
        "Fon {{phone_l}} · Fax {{phone_l}}",
        "Mobil: {{phone_l}}",
        "Rückfragen telefonisch unter {{phone_l}}",
        "Firewall-Regel erlaubt nur {{ip}}.",
        "Zahlung per Karte ({{card}}) erhalten.",
    ],
    "fr": [
        "Merci d'envoyer le dossier à {{email}}.",
        "Courriel : {{email}}",
        "Écrivez-nous ({{email}}) pour toute question.",
        "{{email}} a répondu hier soir.",
        "Appelez-moi au {{phone_l}}.",
        "Tél. : {{phone_l}}",
        "Mon portable : {{phone_l}}, de préférence le soir.",
        "Le secrétariat est joignable au {{phone}} du lundi au vendredi.",
        "Standard : {{phone}}",
        "{{phone}} - demander M. Dubois",
        "Numéro de sécurité sociale américain (SSN) : {{ssn_l}}",
        "SSN : {{ssn_l}}",
        "Le formulaire W-9 indique {{ssn}}.",
        "Carte bancaire n° {{card}}, expire fin 2026.",
        "Paiement refusé pour la carte {{card}}.",
        "Veuillez virer le montant sur l'IBAN {{iban}}.",
        "RIB / IBAN : {{iban}}",
        "Coordonnées bancaires : {{iban}} (BNP Paribas)",
        "Connexion suspecte depuis l'adresse {{ip}}.",
        "Le serveur {{ip}} redémarre à 3 h.",
        "Adresse IPv6 : {{ip6}}",
        "Contact : {{email}}, tél. {{phone_l}}",
        "Pour nous joindre : {{phone_l}}",
        "Portable/WhatsApp : {{phone_l}}",
        "Adresse du poste : {{ip}} (DHCP)",
    ],
    "it": [
        "Inviate il curriculum a {{email}}.",
        "Email: {{email}}",
        "Per informazioni scrivere a {{email}}, grazie.",
        "{{email}} ha condiviso il file con te.",
        "Chiamami al {{phone_l}}.",
        "Tel. {{phone_l}}",
        "Cellulare: {{phone_l}}",
        "Per informazioni: {{phone}} (orario d'ufficio)",
        "L'ufficio risponde al {{phone}} dalle 9 alle 13.",
        "{{phone}} - chiedere di Giulia",
        "Numero di previdenza sociale USA (SSN): {{ssn_l}}",
        "SSN {{ssn_l}} del dipendente americano.",
        "Il modulo W-2 riporta {{ssn}}.",
        "Carta di credito {{card}}, scadenza 05/27.",
        "Pagamento con la carta {{card}} non riuscito.",
        "Bonifico sull'IBAN {{iban}} entro fine mese.",
        "Coordinate bancarie: {{iban}}",
        "IBAN: {{iban}} - intestato a Marco Rossi",
        "Accesso non autorizzato dall'indirizzo {{ip}}.",
        "Il server {{ip}} è di nuovo raggiungibile.",
        "Indirizzo IPv6 del gateway: {{ip6}}",
        "Contatti: {{email}}, cell. {{phone_l}}",
        "Chiamaci al numero {{phone_l}}",
        "Telefono fisso: {{phone_l}}",
        "Indirizzo IP del client: {{ip}}",
    ],
    "nl": [
        "Stuur de offerte naar {{email}}.",
        "E-mail: {{email}}",
        "Vragen? Mail ons op {{email}}!",
        "{{email}} heeft de uitnodiging geaccepteerd.",
        "Bel me op {{phone_l}}.",
        "Telefoon: {{phone_l}}",
        "Mobiel {{phone_l}} (ook WhatsApp)",
        "Bereikbaar via {{phone}} op werkdagen.",
        "Klantenservice: {{phone}}",
        "{{phone}} - vraag naar Sanne",
        "Amerikaans social security number (SSN): {{ssn_l}}",
        "SSN {{ssn_l}} van de medewerker in de VS.",
        "Het W-2 formulier vermeldt {{ssn}}.",
        "Creditcard: {{card}}, geldig tot 08/26",
        "Betaling met kaart {{card}} mislukt.",
        "Maak het bedrag over naar {{iban}} t.n.v. J. de Vries.",
        "IBAN: {{iban}}",
        "Rekeningnummer (IBAN) {{iban}}, BIC INGBNL2A",
        "Inlogpoging vanaf {{ip}} geblokkeerd.",
        "De server {{ip}} reageert niet meer.",
        "IPv6-adres: {{ip6}}",
        "Contact: {{email}} of bel {{phone_l}}",
        "Telefoonnummer: {{phone_l}}",
        "GSM {{phone_l}}",
        "IP-adres van de printer: {{ip}}",
    ],
    "pt": [
        "Envie os documentos para {{email}}.",
        "E-mail: {{email}}",
        "Qualquer dúvida, escreva para {{email}}.",
        "{{email}} respondeu ao pedido.",
        "Liga-me para o {{phone_l}}.",
        "Telefone: {{phone_l}}",
        "Telemóvel: {{phone_l}}",
        "Atendimento geral: {{phone}} (dias úteis)",
        "A loja atende pelo {{phone}} até às 19h.",
        "{{phone}} - falar com a Beatriz",
        "Número da segurança social dos EUA (SSN): {{ssn_l}}",
        "SSN {{ssn_l}} do funcionário americano.",
        "O formulário W-2 mostra {{ssn}}.",
        "Cartão de crédito {{card}}, validade 10/27.",
        "O pagamento com o cartão {{card}} falhou.",
        "Transferência para o IBAN {{iban}}.",
        "Dados bancários: {{iban}}",
        "NIB/IBAN {{iban}} - titular: Rui Costa",
        "Tentativa de acesso a partir do IP {{ip}}.",
        "O servidor {{ip}} está em baixo.",
        "Endereço IPv6: {{ip6}}",
        "Contacto: {{email}}, tel. {{phone_l}}",
        "Ligue para {{phone_l}}",
        "Celular: {{phone_l}}",
        "Endereço IP do cliente: {{ip}}",
    ],
}

NEUTRAL_POSITIVE = [
    "2024-03-12 10:31:07 INFO login ok user={{email}} src={{ip}}",
    "2024-03-12T10:31:07Z WARN auth failed for {{email}} from {{ip6}}",
    "id,name,phone,email\n17,Ana Ruiz,{{phone}},{{email}}",
    "name;iban;amount\nMüller GmbH;{{iban}};1200,00",
    '{"user": {"email": "{{email}}", "phone": "{{phone_l}}"}}',
    '{"card": "{{card}}", "ssn": "{{ssn_l}}"}',
    "# TODO: remove hardcoded test card {{card}} before release",
    "// fallback DNS server {{ip}}",
    "assert client_ip == '{{ip}}'",
    "[10:02] <maria> my cell is {{phone_l}}",
    "[10:03] <tom> ok, and your SSN? [10:04] <maria> {{ssn}}",
    "ALLOWED_HOSTS = ['{{ip}}', '{{ip6}}']",
    "<td>{{email}}</td><td>{{phone}}</td>",
    "| {{iban}} | paid |",
    "DEFAULT_FROM_EMAIL = \"{{email}}\"  # settings.py",
]

NEGATIVE = {
    "en": [
        "Order #{{n_digits10}} shipped on {{n_date}}.",
        "Invoice {{n_0digits10}} is due {{n_date}}.",
        "Tracking number: {{n_digits10}}",
        "ISBN {{n_isbn}}",
        "The meeting is at {{n_time}} on {{n_date}}.",
        "Total: {{n_price}}",
        "Zip code {{n_postal}}",
        "Released in {{n_year}}, updated {{n_year}}.",
        "Upgrade to {{n_ver}} fixes the crash.",
        "Request took {{n_digits10}} ns",
        "ITIN {{n_itin}} belongs to a non-resident.",
        "Part no. {{n_ssnchain}} is back in stock.",
        "Example of an invalid SSN: {{n_badssn}}",
        "Batch {{n_digits9}} passed QA.",
        "Card {{n_badcard}} failed the checksum.",
        "Serial {{n_longrun}}",
        "IBAN {{n_badiban}} was rejected (check digits).",
        "Please run version {{n_quad}} or later.",
        "build {{n_quad}} is out",
        "OID {{n_quad}} identifies the MIB node.",
        "snmpwalk -v2c -c public host {{n_oidlong}}",
        "User-Agent: Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) "
        "{{n_ua}} Safari/537.36",
        "See section {{n_quad}} of the spec.",
        "§ {{n_quad}} applies here.",
        "Uptime 12:30:45, MAC {{n_mac}}",
        "{{n_badip}} is not a valid address",
        "Use icon {{n_retina}} on retina screens.",
        "ping {{n_handle}} on Slack",
        "cron mails go to {{n_localhost}}",
        "npm install {{n_pkg}}",
        "The speed of light is 299 792 458 m/s.",
        "Version: {{n_quad}}",
        "v{{n_quad}} release notes",
        "Account balance: {{n_price}} as of {{n_date}}",
        "Invalid SSN {{n_badssn0}} rejected by the form.",
        "Replace part {{n_partchain}} (gasket kit).",
        "Hotel Excelsior, voucher {{n_digits10}}",
        "Textbook ISBN {{n_isbn}}",
        "Version is {{n_quad}}",
        "firmware {{n_quad}} fixes the bug",
        "sprite sheet {{n_retina}} and {{n_retina}}",
        "ETA {{n_time}}, ref {{n_digits10}}",
        "Build: {{n_quad}}",
    ],
    "es": [
        "Pedido nº {{n_digits9}} enviado el {{n_date}}.",
        "Factura {{n_0digits10}}, vencimiento {{n_date}}.",
        "Número de seguimiento: {{n_digits10}}",
        "Precio final: {{n_price}}",
        "Código postal {{n_postal}}, Madrid",
        "La reunión es a las {{n_time}} del {{n_date}}.",
        "ISBN {{n_isbn}} (edición de {{n_year}})",
        "Referencia {{n_digits9}}",
        "DNI 12345678Z",
        "La facturación anual fue de {{n_bigcount}} euros.",
        "Actualiza a la versión {{n_quad}}.",
        "Sección {{n_quad}} del reglamento.",
        "Tarjeta {{n_badcard}} no válida (checksum).",
        "El IBAN {{n_badiban}} es incorrecto.",
        "Logo en alta resolución: {{n_retina}}",
        "Síguenos en {{n_handle}}",
        "Instala {{n_pkg}} con npm.",
        "ITIN {{n_itin}} (no es un SSN)",
        "Pieza {{n_ssnchain}} agotada.",
        "Localizador de reserva {{n_digits10}}",
        "El SSN {{n_badssn0}} no es válido.",
        "versión {{n_quad}} instalada",
        "Importe total: {{n_bigcount}} €",
    ],
    "de": [
        "Bestellnummer: {{n_0digits10}}",
        "Rechnung Nr. {{n_digits10}} vom {{n_date}}",
        "Sendungsnummer 00340434161234567890",
        "Preis: {{n_price}}",
        "PLZ {{n_postal}} Berlin",
        "Termin am {{n_date}} um {{n_time}} Uhr.",
        "Kundennummer {{n_digits9}}",
        "ISBN {{n_isbn}}",
        "Artikelnummer {{n_ssnchain}}",
        "Bitte auf Version {{n_quad}} aktualisieren.",
        "Abschnitt {{n_quad}} der Norm gilt.",
        "Gemäß § {{n_quad}} ist das zulässig.",
        "Die Karte {{n_badcard}} ist ungültig.",
        "IBAN {{n_badiban}} hat eine falsche Prüfziffer.",
        "MAC-Adresse {{n_mac}}",
        "Icon: {{n_retina}}",
        "Paket {{n_pkg}} installieren",
        "Auftrag {{n_digits10}} wurde storniert.",
        "Steuernummer {{n_0digits10}}",
        "Im Jahr {{n_year}} hatte die Stadt 1 234 567 Einwohner.",
        "Der Umsatz betrug {{n_bigamount}} €.",
        "Firmware-Version {{n_quad}}",
        "Teil {{n_partchain}} nachbestellen",
    ],
    "fr": [
        "Commande n° {{n_0digits10}} expédiée le {{n_date}}.",
        "Facture {{n_digits10}} à régler avant le {{n_date}}.",
        "Prix : {{n_price}}",
        "Code postal {{n_postal}} Paris",
        "Rendez-vous le {{n_date}} à {{n_time}}.",
        "SIREN 732 829 320",
        "Numéro de suivi du colis : {{n_digits10}}",
        "ISBN {{n_isbn}}",
        "Mettez à jour vers la version {{n_quad}}.",
        "Voir l'article {{n_quad}} du contrat.",
        "Chapitre {{n_quad}}",
        "La carte {{n_badcard}} est refusée (clé de Luhn).",
        "IBAN {{n_badiban}} invalide.",
        "Image {{n_retina}} pour écrans Retina",
        "Suivez {{n_handle}} sur Twitter",
        "Installez {{n_pkg}}",
        "Dossier {{n_digits9}} clôturé en {{n_year}}.",
        "La population est de {{n_price}}",
        "Référence {{n_ssnchain}}",
        "Horodatage 12:30:45",
        "Chiffre d'affaires : {{n_bigcount}} €",
        "alinéa {{n_quad}}",
    ],
    "it": [
        "Ordine n. {{n_digits10}} spedito il {{n_date}}.",
        "Fattura {{n_0digits10}} scadenza {{n_date}}",
        "Prezzo: {{n_price}}",
        "CAP {{n_postal}} Roma",
        "Appuntamento il {{n_date}} alle {{n_time}}.",
        "Partita IVA 01234567890",
        "Codice spedizione {{n_digits10}}",
        "ISBN {{n_isbn}}",
        "Aggiornare alla versione {{n_quad}}.",
        "Sezione {{n_quad}} del manuale.",
        "Articolo {{n_quad}} del regolamento.",
        "Carta {{n_badcard}} non valida.",
        "IBAN {{n_badiban}} errato.",
        "Icona {{n_retina}}",
        "Seguici su {{n_handle}}",
        "npm i {{n_pkg}}",
        "Pratica {{n_digits9}} archiviata nel {{n_year}}.",
        "OID {{n_oidlong}}",
        "Codice articolo {{n_ssnchain}}",
        "Build {{n_quad}} disponibile.",
        "Clausola {{n_quad}} del contratto.",
        "Fatturato {{n_bigamount}} euro",
    ],
    "nl": [
        "Bestelnummer {{n_digits10}} verzonden op {{n_date}}.",
        "Factuur {{n_0digits10}} vervalt op {{n_date}}.",
        "Prijs: {{n_price}}",
        "Postcode {{n_postal}} Amsterdam",
        "Afspraak op {{n_date}} om {{n_time}}.",
        "KvK 12345678",
        "BSN {{n_digits9}}",
        "ISBN {{n_isbn}}",
        "Update naar versie {{n_quad}}.",
        "Zie hoofdstuk {{n_quad}}.",
        "Kaart {{n_badcard}} is ongeldig.",
        "IBAN {{n_badiban}} klopt niet.",
        "Afbeelding {{n_retina}}",
        "Volg {{n_handle}}",
        "Installeer {{n_pkg}}",
        "Zending {{n_digits10}} is onderweg.",
        "Onderdeel {{n_ssnchain}}",
        "In {{n_year}} telde de stad 1 234 567 inwoners.",
        "MAC {{n_mac}}",
        "Klantnummer {{n_digits9}}",
        "Artikel {{n_quad}} van de wet",
        "Versie: {{n_quad}}",
    ],
    "pt": [
        "Encomenda n.º {{n_digits9}} enviada a {{n_date}}.",
        "Fatura {{n_digits10}} com vencimento a {{n_date}}.",
        "Preço: {{n_price}}",
        "Código postal {{n_postal}} Lisboa",
        "Reunião a {{n_date}} às {{n_time}}.",
        "NIF 123456789",
        "Número de rastreio: {{n_digits10}}",
        "ISBN {{n_isbn}}",
        "Atualize para a versão {{n_quad}}.",
        "Ver secção {{n_quad}} do contrato.",
        "Artigo {{n_quad}} do regulamento.",
        "Cartão {{n_badcard}} inválido.",
        "IBAN {{n_badiban}} incorreto.",
        "Ícone {{n_retina}}",
        "Segue {{n_handle}}",
        "npm install {{n_pkg}}",
        "Processo {{n_digits9}} arquivado em {{n_year}}.",
        "Referência {{n_ssnchain}}",
        "A empresa faturou {{n_bigcount}} euros.",
        "Conta {{n_digits12}}",
        "Compilação {{n_quad}} publicada.",
        "O SSN {{n_badssn0}} não é válido.",
        "Peça {{n_partchain}}",
    ],
}

NEUTRAL_NEGATIVE = [
    "2024-03-12 10:31:07 INFO build {{n_quad}} deployed in {{n_digits10}} ns",
    "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) {{n_ua}} Safari/537.36",
    "Mozilla/5.0 (Windows NT 10.0; rv:115.0) Gecko/20100101 Firefox/115.0",
    "snmpget -v2c -c public localhost oid: {{n_quad}}",
    "<img src=\"img/{{n_retina}}\" srcset=\"img/{{n_retina}} 2x\">",
    '"dependencies": {"lodash": "^4.17.21"}  // {{n_pkg}}',
    "xs = original_list[::-1]  # reversed, see {{n_handle}}",
    "ts=1700000000 latency_ms=5551234567",
    "order_id,total\n{{n_digits10}},{{n_price}}",
    "@media (min-resolution: 2dppx) { background: url({{n_retina}}); }",
    "mac={{n_mac}} t={{n_time}}",
    "FROM python:3.11.7-slim  # {{n_ver}}",
    # the look-alikes CONVENTION.md names, as written there
    "icon@2x.png, logo@3x.jpg, @handle, user@localhost, name@example, lodash@4.17.21",
    "Order #5551234567, invoice 0123456789, ISBN 978-0-306-40615-7",
    "dates 01/02/2023, 2023-01-02, 12.03.2024; price 1 234 567 €",
    "ITIN 912-78-1234, part 123-45-6789-01, id 123456789",
    "version 1.2.3.4, v10.0.0.1, Version: 2.0.0.1, build 4.2.1.0",
    "OID 1.3.6.1, oid: 2.5.4.3, 1.3.6.1.4.1.311",
    "Chrome/120.0.0.0 Safari/537.36 Firefox/115.0 AppleWebKit/537.36 Edg/120.0.0.0",
    "section 1.2.3.4, § 2.1.1.3, 12:30:45, 00:1A:2B:3C:4D:5E",
]

MIXED = [
    ("en", "Order #{{n_digits10}} - please call me at {{phone}} instead."),
    ("en", "Server {{ip}} runs firmware version {{n_quad}}."),
    ("en", "{{n_retina}} was uploaded by {{email}}"),
    ("en", "ITIN {{n_itin}} was replaced by SSN {{ssn_l}}."),
    ("en", "Card {{n_badcard}} failed, card {{card}} went through."),
    ("es", "Pedido {{n_digits9}}: llámame al {{phone_l}}"),
    ("de", "IBAN {{n_badiban}} ist falsch, richtig ist {{iban}}."),
    ("fr", "Facture {{n_0digits10}}, contact : {{email}}"),
    ("it", "Versione {{n_quad}} installata su {{ip}}"),
    ("nl", "Bestelling {{n_digits10}}; bel {{phone_l}} bij vragen."),
    ("pt", "Fatura {{n_digits10}} paga com o cartão {{card}}."),
    ("en", "User-Agent {{n_ua}} from {{ip}}"),
    ("en", "SSN {{ssn_l}}; ITIN {{n_itin}}"),
    ("de", "Bestellnummer {{n_0digits10}}, Rückfragen telefonisch unter {{phone_l}}"),
    ("es", "Versión {{n_quad}} desplegada en {{ip}}"),
    ("fr", "Logo {{n_retina}} - contact {{email}}"),
    ("en", "{{n_pkg}} maintainer: {{email}}"),
    ("nl", "BSN {{n_digits9}}, telefoon {{phone_l}}"),
]

# ------------------------------------------------------------------------------------ rows


def render(rng: random.Random, template: str, lang: str) -> tuple[str, list[dict]]:
    parts, entities, pos = [], [], 0
    cursor = 0
    for m in SLOT.finditer(template):
        literal = template[cursor:m.start()]
        parts.append(literal)
        pos += len(literal)
        slot = m.group(1)
        value = negative(rng, slot, lang) if slot.startswith("n_") else positive(rng, slot, lang)
        if not slot.startswith("n_"):
            entities.append({"type": SLOT_TYPE[slot], "start": pos, "end": pos + len(value), "value": value})
        parts.append(value)
        pos += len(value)
        cursor = m.end()
    parts.append(template[cursor:])
    text = "".join(parts)
    for e in entities:
        assert text[e["start"]:e["end"]] == e.pop("value"), (template, text)
    return text, entities


def slot_types(template: str) -> set[str]:
    return {SLOT_TYPE[s] for s in SLOT.findall(template) if s in SLOT_TYPE}


def build(rng: random.Random) -> list[dict]:
    rows: list[dict] = []

    def add(kind: str, lang: str, template: str) -> None:
        text, entities = render(rng, template, lang)
        rows.append({"id": f"tune-{len(rows):04d}", "lang": lang, "kind": kind, "text": text,
                     "entities": entities})

    # positives: each language in turn, each type in turn, a template that holds that type
    for i in range(490):
        lang, pii = LANGS[i % len(LANGS)], TYPES[(i // len(LANGS)) % len(TYPES)]
        pool = [t for t in POSITIVE[lang] if pii in slot_types(t)]
        neutral = [t for t in NEUTRAL_POSITIVE if pii in slot_types(t)]
        if neutral and rng.random() < 0.2:
            add("positive", "en", rng.choice(neutral))
        else:
            add("positive", lang, rng.choice(pool))
    # hard negatives: every template of every language at least once, then more at random
    for lang in LANGS:
        for template in NEGATIVE[lang]:
            add("hard_negative", lang, template)
    for template in NEUTRAL_NEGATIVE:
        add("hard_negative", "en", template)
    for i in range(150):
        lang = LANGS[i % len(LANGS)]
        add("hard_negative", lang, rng.choice(NEGATIVE[lang]))
    # mixed: the written ones, then a positive sentence next to a look-alike sentence
    for lang, template in MIXED:
        add("mixed", lang, template)
    for i in range(70):
        lang = LANGS[i % len(LANGS)]
        sep = rng.choice([". ", "\n", " | ", "; ", "\n\n", " - "])
        pair = [rng.choice(POSITIVE[lang]), rng.choice(NEGATIVE[lang])]
        rng.shuffle(pair)
        add("mixed", lang, sep.join(pair))
    return rows


def main() -> None:
    rows = build(random.Random(SEED))
    with OUT.open("w", encoding="utf-8") as f:
        for row in rows:
            f.write(json.dumps(row, ensure_ascii=False) + "\n")
    kinds = {k: sum(r["kind"] == k for r in rows) for k in ("positive", "hard_negative", "mixed")}
    per_type = {t: sum(e["type"] == t for r in rows for e in r["entities"]) for t in TYPES}
    print(f"wrote {len(rows)} rows to {OUT}: {kinds}; entities {per_type}")


if __name__ == "__main__":
    main()
