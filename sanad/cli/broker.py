"""How sanadctl's broker commands (batch submit, dead-letters, seed) name a broker and say why it
failed them: one wording, never the URL's credentials."""

from urllib.parse import unquote, urlsplit

from aio_pika.exceptions import ProbableAuthenticationError
from aiormq.exceptions import InvalidFrameError

from sanad.amqp.publisher import refusal

DEFAULT_AMQP_URL = "amqp://guest:guest@127.0.0.1:5672/"
NOT_AN_AMQP_URL = "the RabbitMQ URL is not an amqp:// or amqps:// URL with a host"


def where(url: str) -> str | None:
    """host:port of an AMQP URL, without its credentials; None when it is no AMQP URL."""
    try:
        parts = urlsplit(url)  # "amqp://[::1" is refused here already
        port = parts.port or (5671 if parts.scheme == "amqps" else 5672)
    except ValueError:
        return None
    if parts.scheme not in ("amqp", "amqps") or not parts.hostname:
        return None
    return f"{parts.hostname}:{port}"


def failure(error: Exception, refused_what: str, url: str | None = None) -> str:
    """Why the broker failed a command: what it refused (`refused_what`: "the batch", "a
    letter"...) and why, or why it could not be used at all; `url` names the user and vhost."""
    if (refused := refusal(error)) is not None:
        return f"the broker refused {refused_what}: {refused}"
    if isinstance(error, ProbableAuthenticationError):
        return "the broker refused the user name or password"
    if _vhost_refused(error):
        whom = "this user on this vhost"
        if url is not None:
            parts = urlsplit(url)
            vhost = unquote(parts.path[1:]) or "/"
            whom = f"user {unquote(parts.username or 'guest')!r} on vhost {vhost!r}"
        return f"the broker refused {whom}: the user has no permission there, or no such vhost"
    return str(error.args[-1] if error.args else error) or type(error).__name__


def remedy(error: Exception) -> str:
    """What to do, after `failure`'s words, when the broker could not be used at all: nothing
    answered at its address, or it refused the login or the vhost. Empty for other failures,
    whose words say what to do themselves."""
    setting = "--amqp-url or SANAD_AMQP_URL"
    if isinstance(error, ProbableAuthenticationError) or _vhost_refused(error):
        return f": give the user, password and vhost it takes with {setting}"
    if isinstance(error, TimeoutError):
        return f" ({setting})"
    if isinstance(error, OSError):  # refused, unreachable, a name that does not resolve
        return f": start RabbitMQ, or give its address with {setting}"
    return ""


def _vhost_refused(error: Exception) -> bool:
    """Whether the broker closed the connection instead of opening it: aiormq then says it
    expected Connection.OpenOk and got Connection.Close, and drops the broker's reason."""
    text = str(error)
    return (
        isinstance(error, InvalidFrameError)
        and "Connection.OpenOk" in text
        and "Connection.Close" in text
    )
