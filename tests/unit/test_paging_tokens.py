"""Page sizes and opaque page tokens."""

import base64

import pytest

from sanad.errors import Invalid
from sanad.paging import decode_token, encode_token, page_size
from services.registry.listing import CenterFilter

FILTERS = CenterFilter(governorate_code="DA", query="نزوى")


def test_a_page_token_round_trips_to_the_key_it_was_made_from() -> None:
    token = encode_token("centers", FILTERS, "01JABCDEF")
    assert "01JABCDEF" not in token
    assert decode_token("centers", CenterFilter(governorate_code="DA", query="نزوى"), token) == (
        "01JABCDEF"
    )


def test_no_key_means_no_token_and_no_token_means_the_first_page() -> None:
    assert encode_token("centers", FILTERS, "") == ""
    assert decode_token("centers", FILTERS, "") == ""


@pytest.mark.parametrize(
    "token",
    [
        "not base64 at all!",
        base64.urlsafe_b64encode(b"\xff\xfe").decode(),
        base64.urlsafe_b64encode(b"centers").decode(),
        encode_token("catalog", FILTERS, "X"),
        encode_token("centers", CenterFilter(governorate_code="MA"), "X"),
    ],
)
def test_a_token_from_elsewhere_is_refused_on_page_token(token: str) -> None:
    with pytest.raises(Invalid) as caught:
        decode_token("centers", FILTERS, token)
    assert [v.field for v in caught.value.violations] == ["page_token"]


def test_page_size_defaults_caps_and_refuses_negatives() -> None:
    assert page_size(0, 50, 500) == 50
    assert page_size(7, 50, 500) == 7
    assert page_size(10_000, 50, 500) == 500
    with pytest.raises(Invalid) as caught:
        page_size(-1, 50, 500)
    assert caught.value.violations[0].field == "page_size"
