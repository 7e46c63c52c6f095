"""Time-sortable ids and the civil-number hash and mask."""

import random

from sanad.domain.ids import id_of, id_time_ms, new_id
from sanad.domain.privacy import civil_hash, is_well_formed, mask


def test_ids_sort_by_creation_time() -> None:
    ids = [new_id(now_ms=t) for t in (1_700_000_000_000, 1_700_000_000_001, 1_800_000_000_000)]
    assert ids == sorted(ids)
    assert all(len(i) == 26 for i in ids)


def test_the_time_can_be_read_back_from_an_id() -> None:
    assert id_time_ms(new_id(now_ms=1_732_000_000_123)) == 1_732_000_000_123


def test_ids_made_in_the_same_millisecond_differ() -> None:
    assert len({new_id(now_ms=5) for _ in range(1000)}) == 1000


def test_an_id_is_its_128_bits_in_crockford_base32_digit_by_digit() -> None:
    # Batch workers derive transaction ids with id_of: its output must never change.
    assert id_of(1_732_000_000_123, 0x0123456789ABCDEF0123) == "01JD1KXA3V04HMASW9NF6YY093"
    assert id_of(2**48 - 1, 2**80 - 1) == "7" + "Z" * 25
    assert id_of(0, 1) == "0" * 25 + "1"
    alphabet = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"
    draw = random.Random(7)
    for _ in range(2000):
        millis, entropy = draw.getrandbits(48), draw.getrandbits(80)
        value = (millis << 80) | entropy
        digits = "".join(alphabet[(value >> (5 * place)) & 31] for place in reversed(range(26)))
        assert id_of(millis, entropy) == digits


def test_civil_numbers_are_hashed_with_the_secret_and_masked() -> None:
    first = civil_hash("12345678", b"secret-a")
    assert first == civil_hash("12345678", b"secret-a")
    assert first != civil_hash("12345678", b"secret-b")
    assert "12345678" not in first
    assert mask("12345678") == "*****678"


def test_a_value_shorter_than_a_civil_number_is_masked_whole() -> None:
    """A malformed number (a refused row) shows no more than a well-formed one would."""
    assert [mask(v) for v in ("12ab", "12345", "", "123456")] == ["****", "*****", "", "***456"]


def test_only_digit_civil_numbers_of_plausible_length_are_well_formed() -> None:
    assert is_well_formed("12345678")
    for bad in ("", "12345", "12345678901", "1234abcd", "١٢٣٤٥٦٧٨", " 12345678"):
        assert not is_well_formed(bad)
