"""Revoked client certificates: a file of their serial numbers, read again when it changes
(sanad.security.watched_file says how).

grpcio's credentials take no certificate revocation list, so TLS accepts a certificate that
chains to the CA until it expires (825 days for `make certs`' clients). A call that comes with a
certificate named in this file is refused as UNAUTHENTICATED, whatever bearer token it also
brings. A serial number is unique only under its CA: the file names certificates of the CA
SANAD_TLS_CA_FILE trusts.

The file holds one serial number a line, in hex as `openssl x509 -noout -serial` prints it
(`serial=` may stay, colons and a `0x` too); `#` starts a comment, and an empty file revokes
nothing.
"""

import functools
import string
import time
from collections.abc import Callable

from cryptography import x509

from sanad.security.watched_file import FileKind, WatchedFile
from sanad.telemetry.metrics import (
    AUTH_REVOKED_CERTS,
    AUTH_REVOKED_CERTS_FILE_FAILING,
    AUTH_REVOKED_CERTS_RELOADS,
)

_HEX = frozenset(string.hexdigits)


class RevocationFileError(ValueError):
    """A revocation file that is not a list of serial numbers; the message names the line."""


def parse_serials(data: bytes) -> frozenset[int]:
    """The serial numbers a revocation file lists."""
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as error:
        raise RevocationFileError("it is not UTF-8 text") from error
    serials = set()
    for number, line in enumerate(text.splitlines(), start=1):
        written = line.split("#", 1)[0].strip().lower()
        if not written:
            continue
        digits = written.removeprefix("serial=").removeprefix("0x").replace(":", "")
        if not digits or not set(digits) <= _HEX:
            raise RevocationFileError(
                f"line {number} is not a serial number in hex (as `openssl x509 -noout -serial`"
                " prints it)"
            )
        serials.add(int(digits, 16))
    return frozenset(serials)


REVOCATION_FILE = FileKind(
    name="revoked-certificates file",
    parse=parse_serials,
    errors=(RevocationFileError,),
    count=len,
    unit="revoked serial(s)",
    shown=lambda serials: f"{len(serials)} revoked serial(s)",
    entries=AUTH_REVOKED_CERTS,
    reloads=AUTH_REVOKED_CERTS_RELOADS,
    failing=AUTH_REVOKED_CERTS_FILE_FAILING,
)


class RevokedCertificates(WatchedFile[frozenset[int]]):
    """The serial numbers of one file, re-read after it changes; the first read must succeed."""

    def __init__(
        self, path: str, every_s: float, clock: Callable[[], float] = time.monotonic
    ) -> None:
        super().__init__(REVOCATION_FILE, path, every_s, clock)

    def names(self, pem: bytes) -> bool:
        """Whether this PEM certificate is revoked."""
        return serial_number(pem) in self.current()


@functools.lru_cache(maxsize=1024)
def serial_number(pem: bytes) -> int:
    """A PEM certificate's serial number (parsed once per certificate, as its identity is)."""
    return int(x509.load_pem_x509_certificate(pem).serial_number)
