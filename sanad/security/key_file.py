"""The JWT key file, read again when it changes: signing keys rotate without a restart
(sanad.security.watched_file says how)."""

from sanad.security.jwks import KeyFileError, KeySet, parse_keys
from sanad.security.watched_file import FileKind, WatchedFile
from sanad.telemetry.metrics import AUTH_JWT_KEY_FILE_FAILING, AUTH_JWT_KEY_RELOADS, AUTH_JWT_KEYS


def _kids(keys: KeySet) -> str:
    """The key ids, for the log: public names, never key material."""
    return ", ".join(key.kid or "(no kid)" for key in keys.keys)


KEY_FILE = FileKind(
    name="JWT key file",
    parse=parse_keys,
    errors=(KeyFileError,),
    count=lambda keys: len(keys.keys),
    unit="key(s)",
    shown=_kids,
    entries=AUTH_JWT_KEYS,
    reloads=AUTH_JWT_KEY_RELOADS,
    failing=AUTH_JWT_KEY_FILE_FAILING,
)


class ReloadingKeys(WatchedFile[KeySet]):
    """The keys of one file, re-read after it changes; the first read must succeed."""

    KIND = KEY_FILE

    @property
    def keys(self) -> KeySet:
        return self.content
