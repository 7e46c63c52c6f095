"""Citizens' civil numbers: validated, stored only as a keyed hash and a masked form."""

import hashlib
import hmac
import re

# Omani civil numbers are digit strings; we accept 6 to 10 digits so older and
# newer cards both pass, and refuse anything else.
FEWEST_DIGITS, MOST_DIGITS = 6, 10
_CIVIL_NUMBER = re.compile(rf"[0-9]{{{FEWEST_DIGITS},{MOST_DIGITS}}}")


def is_well_formed(civil_number: str) -> bool:
    """True for a digits-only civil number of plausible length."""
    return _CIVIL_NUMBER.fullmatch(civil_number) is not None


def civil_hash(civil_number: str, secret: bytes) -> str:
    """HMAC-SHA256 of the civil number under the deployment's secret, hex."""
    return hmac.new(secret, civil_number.encode(), hashlib.sha256).hexdigest()


def mask(civil_number: str) -> str:
    """Every character but the last three replaced by '*'; every one of a value shorter than a
    well-formed number (a malformed one, refused), which would show most of itself."""
    if len(civil_number) < FEWEST_DIGITS:
        return "*" * len(civil_number)
    return "*" * (len(civil_number) - 3) + civil_number[-3:]
