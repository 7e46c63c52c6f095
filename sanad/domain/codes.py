"""How long an id or code a caller sends may be: request ids, registry ids, catalogue and place
codes, licence numbers. Intake, the registry and the batch worker hold them to one bound."""

from collections.abc import Mapping

from sanad.domain.characters import id_violations
from sanad.errors import Violation

# Far above any real id or code, and short: a longer one is refused by field before it is
# stored, or a "not found" or a log line repeats it.
MAX_CODE_LENGTH = 128


def overlong_codes(fields: Mapping[str, str]) -> list[Violation]:
    """A violation for each of fields longer than MAX_CODE_LENGTH, naming the field but not
    the value."""
    return [
        Violation(name, f"must be at most {MAX_CODE_LENGTH} characters")
        for name, value in fields.items()
        if len(value) > MAX_CODE_LENGTH
    ]


def required_code_violations(name: str, value: str) -> list[Violation]:
    """A required id or code, of at most MAX_CODE_LENGTH characters."""
    if not value:
        return [Violation(name, "is required")]
    if len(value) > MAX_CODE_LENGTH:
        return overlong_codes({name: value})
    return []


def request_id_violations(request_id: str, field: str = "request_id") -> list[Violation]:
    """A caller's request id: at most MAX_CODE_LENGTH characters, and characters that show as
    they are (characters.id_violations): it is stored, returned and logged, and a retry must
    name it as the first attempt did."""
    if len(request_id) > MAX_CODE_LENGTH:
        return overlong_codes({field: request_id})
    return id_violations({field: request_id})
