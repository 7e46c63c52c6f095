"""Who gets in, how often: each call charged to its caller's rate, the streams each caller holds
open capped, and a flood of refusals kept out of the audit trail.

Every call is charged to its caller's rate, a call that fails authentication too (to the
certificate or address it came from: authenticate.source), so bad credentials cannot flood a
service or its audit trail. A caller's calls refused for its rate or its open streams are
audited at most REFUSALS_AUDITED_PER_S after a burst: each would otherwise cost the trail a
write, which the limit is there to spare; the gRPC metrics count them all (RESOURCE_EXHAUSTED).
"""

import contextvars
import logging
from collections.abc import Callable
from typing import Any

from sanad import errors
from sanad.security.authenticate import Authenticator, source
from sanad.security.identity import Identity, Role
from sanad.security.limits import RateLimiter, StreamCap
from sanad.telemetry.logs import LineBudget

log = logging.getLogger("sanad.security")

UNKNOWN_CALLER = Identity(subject="(unauthenticated)", role=Role.SERVICE)
# A caller's refusals for its rate (or its open streams) written to the audit trail: a burst,
# then at most this many a second.
REFUSALS_AUDITED_PER_S = 1.0
REFUSALS_AUDITED_BURST = 10
# Lines of refusals at the stream cap, a method (keys are the policy table's methods).
STREAM_CAP_LINES = LineBudget()

ItemCharge = Callable[[], None]
_item_charge: contextvars.ContextVar[ItemCharge | None] = contextvars.ContextVar(
    "item_charge", default=None
)


def item_charge() -> ItemCharge:
    """What a handler calls for each item a client-streaming call carries: RateLimited when the
    caller is over its rate. The call itself paid for its first item; with no limiter in front
    (a dev-only service outside the policy table) it never refuses."""
    return _item_charge.get() or _free


def _free() -> None:
    """No limiter: every item passes."""


class _PerItem:
    """Charges the caller's bucket per streamed item after the first (the call's own token)."""

    def __init__(self, limiter: RateLimiter, key: str) -> None:
        self.limiter, self.key = limiter, key
        self.first = True

    def __call__(self) -> None:
        if self.first:
            self.first = False
            return
        self.limiter.take(self.key)


class Admission:
    """Identifies each call's caller and charges it; holds each caller's stream slots."""

    def __init__(
        self,
        authenticator: Authenticator,
        limiter: RateLimiter,
        streams: StreamCap | None = None,
        audited_refusals: RateLimiter | None = None,
    ) -> None:
        self.authenticator = authenticator
        self.limiter = limiter
        self.streams = streams or StreamCap(0)
        self.audited_refusals = audited_refusals or RateLimiter(
            REFUSALS_AUDITED_PER_S, REFUSALS_AUDITED_BURST
        )

    def identify(self, context: Any) -> Identity:
        """The caller, or Unauthenticated for a bad credential or none (required mode).

        A call that fails authentication is charged one token of its source's rate, so failing
        costs a caller its rate as calls do: over it, such calls get RESOURCE_EXHAUSTED. A
        check that fails in a way none of its refusals names (a bug of ours or of a library,
        on a credential nobody foresaw) fails authentication too, charged the same; it is
        logged with its traceback, after the charge, so at most at its source's rate.
        """
        try:
            return self.authenticator.identify(context)
        except errors.Unauthenticated:
            self.limiter.take(source(context))
            raise
        except Exception:
            self.limiter.take(source(context))
            log.exception("checking a credential failed unexpectedly: refused as unauthenticated")
            raise errors.Unauthenticated("the credential could not be checked") from None

    def charge(self, identity: Identity, streamed: bool = False) -> None:
        """RateLimited when the caller is over its rate.

        One token per call; a client-streaming call's handler charges its further items through
        item_charge(), so one stream of many submissions cannot bypass the caller's rate.
        """
        self.limiter.take(identity.actor)
        if streamed:
            _item_charge.set(_PerItem(self.limiter, identity.actor))

    def open_stream(self, method: str, identity: Identity) -> None:
        """Take one of the caller's stream slots; a refusal is logged, within a budget of lines
        a method (the rate limit let 300 through in under half a second, a line each), and
        raised as RESOURCE_EXHAUSTED."""
        try:
            self.streams.acquire(identity.actor)
        except errors.RateLimited:
            fields = STREAM_CAP_LINES.fields(method, {})
            if fields is not None:
                log.warning(
                    "%s refused: %s holds %d open streaming calls, the cap",
                    method,
                    identity.actor,
                    self.streams.limit,
                    extra=fields,
                )
            raise

    def close_stream(self, identity: Identity) -> None:
        """Give back the slot open_stream took."""
        self.streams.release(identity.actor)

    def audits_refusal(self, error: BaseException, identity: Identity, context: Any) -> bool:
        """Whether the event of a call refused before its handler ran is written: always, but
        for a caller's refusals for its limits beyond a burst and REFUSALS_AUDITED_PER_S."""
        if not isinstance(error, errors.RateLimited):
            return True
        caller = identity.actor if identity is not UNKNOWN_CALLER else source(context)
        try:
            self.audited_refusals.take(caller)
        except errors.RateLimited:
            return False
        return True
