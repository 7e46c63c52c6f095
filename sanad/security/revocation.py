"""Revoked credentials: client certificates by serial number, bearer tokens by subject, each a
file read again when it changes (sanad.security.watched_file says how).

Certificates. grpcio's credentials take no certificate revocation list, so TLS accepts a
certificate that chains to the CA until it expires (825 days for `make certs`' clients). A call
that comes with a certificate named in this file is refused as UNAUTHENTICATED, whatever bearer
token it also brings. A serial number is unique only under its CA: the file names certificates
of the CA SANAD_TLS_CA_FILE trusts. The file holds one serial number a line, in hex as
`openssl x509 -noout -serial` prints it (`serial=` may stay, colons and a `0x` too).

Tokens. A token cannot be revoked alone (ours carry no id), and retiring its signing key
revokes everyone's: the file names subjects instead, one a line, each optionally followed by
`before=<time>` (ISO 8601 with its zone, as `2026-12-05T10:00:00Z`). Every token of a subject
issued before that time (by its iat), or every token of it without a time, is refused as
UNAUTHENTICATED; a system whose token leaked gets a new one issued after the time and goes on.
A token without an iat of a listed subject is refused whatever the time.

In both files a line starting with `#`, or the rest of a line from a ` #`, is a comment, and an
empty file revokes nothing.
"""

import functools
import math
import re
import string
from collections.abc import Callable, Mapping, Sized
from datetime import datetime
from types import MappingProxyType
from typing import TypeVar

from cryptography import x509
from prometheus_client import Counter, Gauge

from sanad.security.watched_file import FileKind, WatchedFile
from sanad.telemetry.metrics import (
    AUTH_REVOKED_CERTS,
    AUTH_REVOKED_CERTS_FILE_FAILING,
    AUTH_REVOKED_CERTS_RELOADS,
    AUTH_REVOKED_TOKENS,
    AUTH_REVOKED_TOKENS_FILE_FAILING,
    AUTH_REVOKED_TOKENS_RELOADS,
)

# A comment: from a # that starts the line or follows a space (a subject may hold a #).
_COMMENT = re.compile(r"(^|\s)#.*$")
_HEX = frozenset(string.hexdigits)
# What follows a revoked subject to name the time before which its tokens are refused.
BEFORE = "before="
Listed = TypeVar("Listed", bound=Sized)


class RevocationFileError(ValueError):
    """A revocation file that cannot be used; the message names the line."""


def _lines(data: bytes) -> list[tuple[int, str]]:
    """A revocation file's numbered lines without their comments, blank ones left out."""
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as error:
        raise RevocationFileError("it is not UTF-8 text") from error
    lines = [(n, _COMMENT.sub("", line).strip()) for n, line in enumerate(text.splitlines(), 1)]
    return [(number, written) for number, written in lines if written]


def parse_serials(data: bytes) -> frozenset[int]:
    """The serial numbers a revoked-certificates file lists."""
    serials = set()
    for number, line in _lines(data):
        written = line.lower()
        digits = written.removeprefix("serial=").removeprefix("0x").replace(":", "")
        if not digits or not set(digits) <= _HEX:
            raise RevocationFileError(
                f"line {number} is not a serial number in hex (as `openssl x509 -noout -serial`"
                " prints it)"
            )
        serials.add(int(digits, 16))
    return frozenset(serials)


def _revocation_list(
    name: str, parse: Callable[[bytes], Listed], unit: str, metrics: tuple[Gauge, Counter, Gauge]
) -> FileKind[Listed]:
    """A kind of revocation file: counted by its entries, shown by their number alone."""
    entries, reloads, failing = metrics
    return FileKind(
        name=name,
        parse=parse,
        errors=(RevocationFileError,),
        count=len,
        unit=unit,
        shown=lambda listed: f"{len(listed)} {unit}",
        entries=entries,
        reloads=reloads,
        failing=failing,
    )


REVOKED_CERTS_FILE = _revocation_list(
    "revoked-certificates file",
    parse_serials,
    "revoked serial(s)",
    (AUTH_REVOKED_CERTS, AUTH_REVOKED_CERTS_RELOADS, AUTH_REVOKED_CERTS_FILE_FAILING),
)


class RevokedCertificates(WatchedFile[frozenset[int]]):
    """The serial numbers of one file, re-read after it changes; the first read must succeed."""

    KIND = REVOKED_CERTS_FILE

    def names(self, pem: bytes) -> bool:
        """Whether this PEM certificate is revoked."""
        return serial_number(pem) in self.current()


def parse_subjects(data: bytes) -> Mapping[str, float]:
    """A revoked-tokens file: subject -> the time (epoch seconds) before which its tokens are
    refused, infinite for every one of them."""
    subjects: dict[str, float] = {}
    for number, line in _lines(data):
        subject, _, last = line.rpartition(" ")
        if not last.startswith(BEFORE):
            subject, cutoff = line, math.inf
        else:
            cutoff = _time(last.removeprefix(BEFORE), number)
        subject = subject.strip()
        if not subject:
            raise RevocationFileError(f"line {number} names no subject")
        subjects[subject] = max(cutoff, subjects.get(subject, -math.inf))
    return MappingProxyType(subjects)


def _time(written: str, number: int) -> float:
    try:
        when = datetime.fromisoformat(written)
    except ValueError:
        when = None
    if when is None or when.tzinfo is None:
        raise RevocationFileError(
            f"line {number}: {BEFORE} takes an ISO 8601 time with its zone (2026-12-05T10:00:00Z)"
        )
    return when.timestamp()


REVOKED_TOKENS_FILE = _revocation_list(
    "revoked-tokens file",
    parse_subjects,
    "revoked subject(s)",
    (AUTH_REVOKED_TOKENS, AUTH_REVOKED_TOKENS_RELOADS, AUTH_REVOKED_TOKENS_FILE_FAILING),
)


class RevokedTokens(WatchedFile[Mapping[str, float]]):
    """The subjects of one file, re-read after it changes; the first read must succeed."""

    KIND = REVOKED_TOKENS_FILE

    def refuses(self, subject: str, issued_at: float | None) -> bool:
        """Whether a token of subject issued at issued_at (its iat; None without one) is
        revoked."""
        cutoff = self.current().get(subject)
        return cutoff is not None and (issued_at is None or issued_at < cutoff)


@functools.lru_cache(maxsize=1024)
def serial_number(pem: bytes) -> int:
    """A PEM certificate's serial number (parsed once per certificate, as its identity is)."""
    return int(x509.load_pem_x509_certificate(pem).serial_number)
