"""Where a centre's transactions count: a governorate and one of its wilayats."""

from dataclasses import dataclass


@dataclass(frozen=True)
class Place:
    """A governorate's and a wilayat's codes, as the registry lists them."""

    governorate_code: str
    wilayat_code: str
