"""The one authorization interceptor: authenticate, rate-limit, apply the policy table, audit.

Every call is charged to its caller's rate, a call that fails authentication too (to the
certificate or address it came from: authenticate.source), so bad credentials cannot flood a
service or its audit trail. A caller's calls refused for its rate are audited at most
REFUSALS_AUDITED_PER_S after a burst: each would otherwise cost the trail a write, which the
limit is there to spare; the gRPC metrics count them all (RESOURCE_EXHAUSTED).

It runs inside the bookkeeping interceptor (sanad.rpc.interceptors), so the domain errors it
raises (Unauthenticated, PermissionDenied, RateLimited) become status codes there, with the
request id already set. It sets sanad.security.identity.current() for the handler, and caps the
streaming calls each identity holds open.
"""

import asyncio
import contextvars
import logging
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from datetime import UTC, datetime
from functools import partial
from typing import Any

import grpc

from sanad import errors
from sanad.rpc.interceptors import cancelled_code
from sanad.rpc.status import code_of
from sanad.security import audit_items, audit_offer, policy
from sanad.security.audit import AuditEvent
from sanad.security.audit_log import AuditLog
from sanad.security.authenticate import Authenticator, source
from sanad.security.identity import Identity, Role, set_current
from sanad.security.limits import RateLimiter, StreamCap
from sanad.settings import AuthMode, CommonSettings
from sanad.telemetry.logs import request_id_var

log = logging.getLogger("sanad.security")

UNKNOWN_CALLER = Identity(subject="(unauthenticated)", role=Role.SERVICE)
# A caller's refusals for its rate (or its open streams) written to the audit trail: a burst,
# then at most this many a second.
REFUSALS_AUDITED_PER_S = 1.0
REFUSALS_AUDITED_BURST = 10

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


class SecurityInterceptor(grpc.aio.ServerInterceptor):
    """Admits or refuses every call by the policy table and audits the state-changing ones."""

    def __init__(
        self,
        authenticator: Authenticator,
        limiter: RateLimiter,
        licensing_agency: str,
        audit_log: AuditLog | None = None,
        recorded_by: str = "",
        *,
        streams: StreamCap | None = None,
        audited_refusals: RateLimiter | None = None,
    ) -> None:
        self.authenticator = authenticator
        self.limiter = limiter
        self.streams = streams or StreamCap(0)
        self.audited_refusals = audited_refusals or RateLimiter(
            REFUSALS_AUDITED_PER_S, REFUSALS_AUDITED_BURST
        )
        self.licensing_agency = licensing_agency
        self.audit_log = audit_log
        self.recorded_by = recorded_by

    async def intercept_service(
        self,
        continuation: Callable[[grpc.HandlerCallDetails], Awaitable[grpc.RpcMethodHandler]],
        handler_call_details: grpc.HandlerCallDetails,
    ) -> grpc.RpcMethodHandler:
        handler = await continuation(handler_call_details)
        method = handler_call_details.method
        if handler is None or policy.is_open(method):
            return handler
        rule = policy.POLICY.get(method)
        if rule is None and self.authenticator.mode is AuthMode.DEV:
            return handler  # a dev-only service outside the table (tests, benchmarks)
        guard = _Guard(self, method, rule)
        if handler.unary_unary:
            return grpc.unary_unary_rpc_method_handler(
                guard.unary(handler.unary_unary, streamed=False),
                handler.request_deserializer,
                handler.response_serializer,
            )
        if handler.stream_unary:
            return grpc.stream_unary_rpc_method_handler(
                guard.unary(handler.stream_unary, streamed=True),
                handler.request_deserializer,
                handler.response_serializer,
            )
        if handler.unary_stream:
            return grpc.unary_stream_rpc_method_handler(
                guard.streaming(handler.unary_stream, streamed=False),
                handler.request_deserializer,
                handler.response_serializer,
            )
        return grpc.stream_stream_rpc_method_handler(
            guard.streaming(handler.stream_stream, streamed=True),
            handler.request_deserializer,
            handler.response_serializer,
        )

    def identify(self, context: Any) -> Identity:
        """The caller, or Unauthenticated for a bad credential or none (required mode).

        A call that fails authentication is charged one token of its source's rate, so failing
        costs a caller its rate as calls do: over it, such calls get RESOURCE_EXHAUSTED.
        """
        try:
            return self.authenticator.identify(context)
        except errors.Unauthenticated:
            self.limiter.take(source(context))
            raise

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

    def charge(self, identity: Identity, streamed: bool = False) -> None:
        """RateLimited when the caller is over its rate.

        One token per call; a client-streaming call's handler charges its further items through
        item_charge(), so one stream of many submissions cannot bypass the caller's rate.
        """
        self.limiter.take(identity.actor)
        if streamed:
            _item_charge.set(_PerItem(self.limiter, identity.actor))

    def authorize(
        self, method: str, rule: policy.Rule | None, identity: Identity, request: Any
    ) -> None:
        """PermissionDenied unless the table allows it; then current() is this identity."""
        if rule is None or not policy.allows(rule, identity, request, self.licensing_agency):
            raise errors.PermissionDenied(
                f"{identity.role} {identity.subject!r} may not call {method}"
            )
        set_current(identity)

    def event(
        self,
        method: str,
        identity: Identity,
        target: dict[str, str],
        outcome: str,
        item_outcomes: dict[str, int] | None = None,
    ) -> AuditEvent:
        """The audit event of a finished call (only state-changing RPCs are audited); a
        streaming call whose items have events of their own counts them by outcome."""
        return AuditEvent(
            time=datetime.now(UTC),
            subject=identity.subject,
            role="" if identity is UNKNOWN_CALLER else str(identity.role),
            agency_code=identity.agency_code,
            center_id=identity.center_id,
            rpc=method,
            target=target,
            outcome=outcome,
            request_id=request_id_var.get(),
            recorded_by=self.recorded_by,
            item_outcomes=item_outcomes or {},
        )


class _Guard:
    """The wrappers of one method's behaviour."""

    def __init__(self, owner: SecurityInterceptor, method: str, rule: policy.Rule | None) -> None:
        self.owner = owner
        self.method = method
        self.rule = rule
        # Where this method's calls are audited; None when they are not.
        self.audit_log = owner.audit_log if rule is not None and rule.changes else None
        self.targets = rule.targets if rule is not None else ()
        self.results = rule.results if rule is not None else ()
        self.item_targets = rule.item_targets if rule is not None else ()

    def unary(self, behaviour: Callable[..., Any], streamed: bool) -> Callable[..., Any]:
        async def wrapped(request: Any, context: Any) -> Any:
            shown = None if streamed else request
            identity = UNKNOWN_CALLER
            offered = None
            admitted = False
            try:
                # Authenticated before charged: a refused call's event names its caller.
                identity = self.owner.identify(context)
                self.owner.charge(identity, streamed)
                self.owner.authorize(self.method, self.rule, identity, shown)
                admitted = True
                if self.audit_log is not None and not streamed:
                    offered = audit_offer.offer(partial(self._succeeded, identity, request))
                response = await behaviour(request, context)
            except BaseException as error:
                if admitted or self.owner.audits_refusal(error, identity, context):
                    outcome = _outcome(error, context)
                    await self._audit(identity, shown, None, outcome, offered=offered)
                raise
            outcome = _outcome(None, context)
            # A handler that took the OK event stored it with its own durable write.
            if offered is None or not offered.taken or outcome != grpc.StatusCode.OK.name:
                await self._audit(identity, shown, response, outcome, offered=offered)
            return response

        return wrapped

    def streaming(self, behaviour: Callable[..., Any], streamed: bool) -> Callable[..., Any]:
        async def wrapped(request: Any, context: Any) -> AsyncIterator[Any]:
            shown = None if streamed else request
            identity = UNKNOWN_CALLER
            items: audit_items.ItemAudit | None = None
            admitted = False
            try:
                # Authenticated before charged: a refused call's event names its caller.
                identity = self.owner.identify(context)
                self.owner.charge(identity, streamed)
                self.owner.authorize(self.method, self.rule, identity, shown)
                self._open_stream(identity)
                admitted = True
                if self.audit_log is not None and streamed and self.item_targets:
                    items = self._items(identity, self.audit_log)
                    audit_items.begin(items)
                try:
                    async for response in behaviour(request, context):
                        yield response
                finally:  # however it ends: normally, with an error, or cancelled
                    self.owner.streams.release(identity.actor)
            except BaseException as error:
                if admitted or self.owner.audits_refusal(error, identity, context):
                    await self._audit(identity, shown, None, _outcome(error, context), items=items)
                raise
            await self._audit(identity, shown, None, _outcome(None, context), items=items)

        return wrapped

    def _items(self, identity: Identity, log: AuditLog) -> audit_items.ItemAudit:
        """The audit of this call's items: each an event of this RPC, caller and request id."""

        def build(target: Mapping[str, str], outcome: str) -> AuditEvent:
            return self.owner.event(self.method, identity, dict(target), outcome)

        return audit_items.ItemAudit(build, log, self.item_targets, self.results)

    def _open_stream(self, identity: Identity) -> None:
        """Take one of the caller's stream slots; a refusal is logged (each was charged a
        rate-limit token first, which bounds these lines) and raised as RESOURCE_EXHAUSTED."""
        try:
            self.owner.streams.acquire(identity.actor)
        except errors.RateLimited:
            log.warning(
                "%s refused: %s holds %d open streaming calls, the cap",
                self.method,
                identity.actor,
                self.owner.streams.limit,
            )
            raise

    async def _audit(
        self,
        identity: Identity,
        request: Any,
        response: Any,
        outcome: str,
        *,
        offered: audit_offer.Offer | None = None,
        items: audit_items.ItemAudit | None = None,
    ) -> None:
        """Record the call's event. A call that failed after its handler carried the OK event
        (a submission whose confirm came too late for the caller's deadline, which the ingest
        worker may store after all) names the results that event names, its transaction id. A
        streaming call whose items were audited counts them by outcome."""
        if self.audit_log is None:
            return
        results = policy.field_values(response, self.results)
        if offered is not None and offered.taken:
            results = {**offered.results, **results}
        target = self._target(request, results)
        counted = dict(items.outcomes) if items is not None else {}
        await self.audit_log.record(
            self.owner.event(self.method, identity, target, outcome, counted)
        )

    def _succeeded(
        self, identity: Identity, request: Any, results: Mapping[str, str]
    ) -> AuditEvent:
        """The OK event a handler carries, with the results it names."""
        target = self._target(request, results)
        return self.owner.event(self.method, identity, target, grpc.StatusCode.OK.name)

    def _target(self, request: Any, results: Mapping[str, str]) -> dict[str, str]:
        return policy.audit_target(request, self.targets, self.results, results)


def _outcome(error: BaseException | None, context: Any) -> str:
    if isinstance(error, errors.DomainError):
        return code_of(error).name
    if isinstance(error, asyncio.CancelledError):
        return cancelled_code(context).name  # as the call's metrics count it
    if error is not None and not isinstance(error, grpc.aio.AbortError):
        return grpc.StatusCode.INTERNAL.name
    code = context.code()
    return code.name if isinstance(code, grpc.StatusCode) else grpc.StatusCode.OK.name


def security_interceptor(
    settings: CommonSettings, audit_log: AuditLog | None = None, recorded_by: str = ""
) -> SecurityInterceptor:
    """The interceptor a server built from these settings runs."""
    return SecurityInterceptor(
        Authenticator.from_settings(settings),
        RateLimiter(settings.rate_limit_per_s, settings.rate_limit_burst),
        settings.auth_licensing_agency,
        audit_log,
        recorded_by,
        streams=StreamCap(settings.max_streams_per_identity),
    )
