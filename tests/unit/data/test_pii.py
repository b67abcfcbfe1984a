"""PII: checksummed cards and IBANs, valid IPs and SSNs, phones that are not years or prices,
context words (labels that an ambiguous form needs, words that veto a look-alike), exact
redaction strings, and the redact / drop / report policies. Spans follow
tests/corpus/pii/CONVENTION.md; test_pii_quality.py scores the labelled sets."""

from __future__ import annotations

import pytest

from tunesmith.data.pii import PiiMatch, apply_pii_policy, count_by_type, find_pii, pii_types, redact
from tunesmith.errors import TunesmithError


def found(text: str, types: list[str] | None = None) -> list[tuple[str, str]]:
    return [(m.type, m.text) for m in find_pii(text, types)]


# --------------------------------------------------------------------------- credit cards (Luhn)


@pytest.mark.parametrize("number", ["4111 1111 1111 1111", "4111-1111-1111-1111", "4111111111111111",
                                    "5500 0000 0000 0004", "378282246310005", "6011111111111117"])
def test_luhn_valid_cards_are_found(number):
    assert found(f"card: {number}, thanks") == [("credit_card", number)]


@pytest.mark.parametrize("number", ["4111 1111 1111 1112", "4111111111111113", "378282246310006",
                                    "0000 0000 0000 0000"])
def test_cards_failing_luhn_are_not_reported(number):
    assert found(f"card: {number}, thanks") == []


def test_card_inside_a_longer_digit_run_is_not_a_card():
    assert found("id 41111111111111110000000", ["credit_card"]) == []
    assert found("id 4111111111111111123", ["credit_card"]) == []


def test_card_followed_by_cvv_keeps_the_card_only():
    assert found("4111 1111 1111 1111 123 exp 12/27") == [("credit_card", "4111 1111 1111 1111")]


def test_card_inside_a_longer_grouped_number_is_not_a_card():
    # a fifth group of four, or a dash-joined tail, makes it one longer number
    assert found("ref 4111 1111 1111 1111 0000", ["credit_card"]) == []
    assert found("ref 4111-1111-1111-1111-978", ["credit_card"]) == []


def test_card_digits_inside_an_invalid_iban_are_not_a_card():
    # "PT41 2626 ..." fails mod-97; the digits after the country code are no card of their own
    assert found("IBAN PT41 2626 6699 8478 4742 9880 2 incorreto.") == []


# --------------------------------------------------------------------------- IBAN (mod 97)


def test_valid_ibans_spaced_and_compact():
    assert found("pay GB82 WEST 1234 5698 7654 32 today") == [("iban", "GB82 WEST 1234 5698 7654 32")]
    assert found("DE89370400440532013000.") == [("iban", "DE89370400440532013000")]
    assert found("FR14 2004 1010 0505 0001 3M02 606") == [("iban", "FR14 2004 1010 0505 0001 3M02 606")]


@pytest.mark.parametrize("text", ["GB82 WEST 1234 5698 7654 33", "GB83 WEST 1234 5698 7654 32",
                                  "DE89370400440532013001"])
def test_one_changed_digit_breaks_the_iban(text):
    assert found(text, ["iban"]) == []


def test_iban_stops_at_its_country_length():
    # the regex alone would run on into the upper-case word that follows
    assert found("GB82 WEST 1234 5698 7654 32 IS MINE") == [("iban", "GB82 WEST 1234 5698 7654 32")]
    assert found("GB82WEST12345698765432XYZ", ["iban"]) == []


# --------------------------------------------------------------------------- IP addresses


def test_ipv4_valid_and_invalid():
    assert found("from 192.168.1.1 and 8.8.8.8.") == [("ip", "192.168.1.1"), ("ip", "8.8.8.8")]
    assert found("999.1.1.1 and 10.0.0.256", ["ip"]) == []


@pytest.mark.parametrize("text", ["version 1.2.3.4", "v10.0.0.1", "Version: 2.0.0.1", "build 4.2.1.0",
                                  "OID 1.3.6.1", "oid: 2.5.4.3", "snmpwalk 1.3.6.1.4.1.311",
                                  "Chrome/120.0.0.0 Safari/537.36", "Edg/120.0.0.0", "section 1.2.3.4",
                                  "§ 2.1.1.3", "versión 1.2.3.4", "Abschnitt 1.2.3.4", "secção 8.1.3.2",
                                  "Umsatz 1.200.100.200 €"])
def test_versions_oids_user_agents_and_sections_are_not_ips(text):
    assert found(text) == []


def test_ip_words_veto_only_the_number_right_after_them():
    # the firmware's version is vetoed, the server's address is not
    assert found("Server 10.0.0.5 runs firmware version 1.2.3.4.") == [("ip", "10.0.0.5")]
    assert found("Firewall rule allows 10.0.0.1 only") == [("ip", "10.0.0.1")]
    assert found("open http://10.0.0.1/admin and IP:2001:db8::2eb") == [("ip", "10.0.0.1"), ("ip", "2001:db8::2eb")]


def test_ipv4_mapped_ipv6_is_one_address():
    assert found("ip=::ffff:192.0.2.116 status=OK") == [("ip", "::ffff:192.0.2.116")]


def test_ipv6_validated_by_ipaddress():
    assert found("host 2001:db8::1 and fe80::1ff:fe23:4567:890a.") == [
        ("ip", "2001:db8::1"), ("ip", "fe80::1ff:fe23:4567:890a")]
    # times, MAC addresses and C++ scopes look like IPv6 candidates but are not addresses
    assert found("at 12:30:45, mac 00:1A:2B:3C:4D:5E, std::vector", ["ip"]) == []


# --------------------------------------------------------------------------- US SSN


def test_ssn_valid():
    assert found("SSN 123-45-6789.") == [("us_ssn", "123-45-6789")]


@pytest.mark.parametrize("ssn", ["000-12-3456", "666-12-3456", "900-12-3456", "999-12-3456",
                                 "123-00-4567", "123-45-0000", "079-19-0000", "012-00-3456", "020 00 6213"])
def test_ssn_never_issued_numbers_are_excluded(ssn):
    # nor read as a phone number instead: the SSN shape 3-2-4 is never a phone
    assert found(f"SSN {ssn}.") == []


def test_ssn_with_spaces():
    assert found("SSN 123 45 6789, thanks") == [("us_ssn", "123 45 6789")]
    assert found("ITIN 912 78 1234") == []


@pytest.mark.parametrize("label", ["SSN", "SSN:", "SSN#", "SS#", "Social Security No.", "soc. sec.",
                                   "social security number is", "Número de Seguro Social:"])
def test_nine_bare_digits_are_an_ssn_after_its_label(label):
    assert found(f"{label} 123456789") == [("us_ssn", "123456789")]


@pytest.mark.parametrize("text", ["123456789", "ref 123456789", "BSN 123456789", "SSN 912345678",
                                  "SSN 000123456"])
def test_nine_bare_digits_without_a_label_or_invalid_are_no_ssn(text):
    assert found(text) == []


def test_ssn_inside_a_dash_chain_is_a_part_number():
    assert found("Replace part 123-45-6789-01 and 014-51-6592-23.") == []


# --------------------------------------------------------------------------- email and phone


def test_emails():
    assert found("write to john.doe@example.com or jane_d+tag@mail.co.uk.") == [
        ("email", "john.doe@example.com"), ("email", "jane_d+tag@mail.co.uk")]
    assert found("@handle, user@localhost, a@b.c, name@example") == []


@pytest.mark.parametrize("text", ["icon@2x.png", "logo@3x.jpg", "sprite@1.5x.PNG", "chart@large.svg",
                                  "npm i lodash@4.17.21 @types/node@20.10.5", "pkg@1.2.beta"])
def test_file_names_and_package_specs_are_not_emails(text):
    assert found(text) == []


@pytest.mark.parametrize("phone", ["+44 20 7946 0958", "+1 (555) 123-4567", "+33 1 23 45 67 89",
                                   "0049 30 1234567", "(555) 123-4567", "555-123-4567", "555.123.4567",
                                   "1-800-555-1234", "020 7946 0958", "030/1234567", "06-12345678"])
def test_phone_formats(phone):
    assert found(f"call {phone} now") == [("phone", phone)]


@pytest.mark.parametrize(("text", "phone"), [
    ("Call (555) 123-4567 ext. 931 today", "(555) 123-4567 ext. 931"),
    ("555-123-4567 x15, thanks", "555-123-4567 x15"),
    ("555-123-4567x15", "555-123-4567x15"),
    ("+1 555 123 4567 extension 4.", "+1 555 123 4567 extension 4"),
    ("Please call 1-800-555-1234 ext 12.", "1-800-555-1234 ext 12"),
    ("Tel. +44 20 7946 0958 x 7", "+44 20 7946 0958 x 7"),
])
def test_phone_extension_belongs_to_the_number(text, phone):
    assert found(text) == [("phone", phone)]


@pytest.mark.parametrize("phone", ["07700 900123", "07700900123", "(020) 7946 0958", "020 7946 0958",
                                   "0161 496 0000", "+44 (0)20 7946 0958",  # UK
                                   "612 345 678", "612 34 56 78", "912 345 678", "91 234 56 78", "+34 612 345 678",
                                   "(+34) 612 345 678", "0034 612 345 678",  # ES
                                   "01 23 45 67 89", "06 12 34 56 78", "06.12.34.56.78", "+33 (0)1 23 45 67 89",
                                   "0171 2345678", "040 / 123456", "+49 (0) 30 1234567",  # FR, DE
                                   "06 1234 5678", "347 123 4567", "347 1234567",  # IT
                                   "020 123 4567", "06-12345678", "020-123 4567",  # NL
                                   "212 345 678", "21 234 5678", "+351 912 345 678"])  # PT
def test_national_phone_formats(phone):
    assert found(f"Office: {phone}.") == [("phone", phone)]


@pytest.mark.parametrize(("text", "phone"), [
    ("call 5551234567", "5551234567"), ("Phone: 15551234567", "15551234567"),
    ("Teléfono 612345678", "612345678"), ("Llámame cuando quieras al 612345678", "612345678"),
    ("Handy: 01712345678", "01712345678"), ("Tél. : 0612345678", "0612345678"),
    ("cellulare 3471234567", "3471234567"), ('{"phone": "5551234567"}', "5551234567"),
])
def test_bare_digit_runs_are_phones_after_a_phone_word(text, phone):
    assert found(text) == [("phone", phone)]


@pytest.mark.parametrize("text", ["5551234567", "my number is 5551234567", "612345678", "0612345678",
                                  "timestamp 1700000000 ms", "Hotel Excelsior, voucher 5551234567"])
def test_bare_digit_runs_without_a_phone_word_are_not_phones(text):
    assert found(text) == []


@pytest.mark.parametrize("text", ["Order #5551234567", "invoice 0123456789", "Pedido n.º 612345678",
                                  "número de pedido 612345678", "Bestellnummer: 030 1234567",
                                  "Commande n° 06 12 34 56 78", "tracking number: 555-123-4567",
                                  "SIREN 732 829 320", "La empresa facturó 612 345 678 euros.",
                                  "The speed of light is 299 792 458 m/s."])
def test_order_numbers_and_quantities_are_not_phones(text):
    assert found(text) == []


def test_the_nearer_word_wins_between_a_label_and_a_veto():
    assert found("Order #4521, call 5551234567") == [("phone", "5551234567")]
    assert found("Kundennummer / Telefon: 030 1234567") == [("phone", "030 1234567")]
    assert found("Call about order 5551234567") == []
    # a veto word in the previous sentence says nothing about this number
    assert found("Your order is ready; 555-123-4567 is my cell.") == [("phone", "555-123-4567")]


@pytest.mark.parametrize("text", ["in 2023 and 1999-2024", "costs $1,234.56 or €1.299,00 or 0.99",
                                  "on 12/31/2023, 01/02/2023, 2023-10-12 or 05-11-2023 10:30",
                                  "v1.2.3, Python 3.10.12, build 10.0.19041.1", "ISBN 978-3-16-148410-0",
                                  "up +5% to 1,250,000 units", "timestamp 1700000000"])
def test_years_prices_dates_versions_are_not_phones(text):
    assert found(text) == []


# --------------------------------------------------------------------------- overlaps and types


def test_matches_are_sorted_and_never_overlap():
    text = "a@b.io 4111 1111 1111 1111 123-45-6789 +44 20 7946 0958 10.0.0.1"
    ms = find_pii(text)
    assert [m.type for m in ms] == ["email", "credit_card", "us_ssn", "phone", "ip"]
    assert all(a.end <= b.start for a, b in zip(ms, ms[1:]))
    assert all(text[m.start:m.end] == m.text for m in ms)


def test_overlap_keeps_the_ssn_over_a_phone_reading():
    # 012 34 5678 has the SSN shape and would read as a European national number too
    assert found("id 012-34-5678") == [("us_ssn", "012-34-5678")]
    assert found("ssn 012 34 5678") == [("us_ssn", "012 34 5678")]


def test_types_filter_and_unknown_type():
    text = "a@b.io 123-45-6789"
    assert found(text, ["us_ssn"]) == [("us_ssn", "123-45-6789")]
    assert set(pii_types()) == {"email", "phone", "credit_card", "iban", "ip", "us_ssn"}
    with pytest.raises(TunesmithError, match="did you mean 'email'"):
        find_pii(text, ["emial"])


# --------------------------------------------------------------------------- redaction and policies


def test_redact_tag_exact_output():
    text = ("Mail john@example.com, call +1 (555) 123-4567, card 4111 1111 1111 1111, "
            "IBAN GB82 WEST 1234 5698 7654 32, host 192.168.0.1, SSN 123-45-6789.")
    assert redact(text, find_pii(text)) == (
        "Mail [EMAIL], call [PHONE], card [CREDIT_CARD], IBAN [IBAN], host [IP], SSN [US_SSN].")


def test_redact_mask_keeps_length_and_unknown_style_fails():
    text = "ssn 123-45-6789!"
    assert redact(text, find_pii(text), style="mask") == "ssn ***********!"
    with pytest.raises(TunesmithError, match="style"):
        redact(text, [], style="blur")


def test_redact_with_no_matches_is_identity():
    assert redact("nothing here", []) == "nothing here"
    assert redact("x", [PiiMatch("custom", 0, 1, "x")]) == "[CUSTOM]"


def test_count_by_type():
    text = "a@b.io, c@d.io, 123-45-6789"
    assert count_by_type(find_pii(text)) == {"email": 2, "us_ssn": 1}
    assert count_by_type([]) == {}


def test_policies():
    text = "reach me at a@b.io or 555-123-4567"
    assert apply_pii_policy(text, "redact") == ("reach me at [EMAIL] or [PHONE]", {"email": 1, "phone": 1})
    assert apply_pii_policy(text, "drop") == (None, {"email": 1, "phone": 1})
    assert apply_pii_policy(text, "report") == (text, {"email": 1, "phone": 1})
    clean = "no personal data in 2024"
    for policy in ("redact", "drop", "report"):
        assert apply_pii_policy(clean, policy) == (clean, {})
    with pytest.raises(TunesmithError, match="unknown PII policy 'mask'"):
        apply_pii_policy(text, "mask")


def test_pattern_table_errors_name_the_file_and_fix(monkeypatch):
    from tunesmith.data import pii

    table = pii._table()
    broken = {**table, "types": {**table["types"], "phone": {**table["types"]["phone"],
                                                             "patterns": [{"regex": "x", "veto": ["nope"]}]}}}
    monkeypatch.setattr(pii, "_table", lambda: broken)
    pii._patterns.cache_clear()
    try:
        with pytest.raises(TunesmithError, match="unknown word list 'nope'"):
            pii._patterns()
    finally:
        pii._patterns.cache_clear()


def test_python_slices_are_not_ipv6_addresses():
    from tunesmith.data.pii import find_pii

    assert find_pii("reversed_list = original_list[::-1] and xs[::2]") == []
    assert [m.text for m in find_pii("host 2001:db8::8a2e:370:7334 is up")] == ["2001:db8::8a2e:370:7334"]
