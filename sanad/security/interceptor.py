"""The one authorization interceptor: admit (authenticate, rate-limit: sanad.security.admission),
apply the policy table, audit.

It runs inside the bookkeeping interceptor (sanad.rpc.interceptors), so the domain errors it
raises (Unauthenticated, PermissionDenied, RateLimited) become status codes there, with the
request id already set. It sets sanad.security.identity.current() for the handler, and caps the
streaming calls each identity holds open. A streaming call's credential is checked again, at
most every `recheck_s`, before each answer of a server stream and each item of a client stream,
and by a timer while the call waits (sanad.security.standing): a token that expired, whose key
was retired or that was revoked, or a certificate revoked since, ends the call UNAUTHENTICATED
instead of being served for as long as it stays open, idle or not. The open methods' streams
(a Health Watch, reflection) are ended so once their client certificate is revoked.

A request whose bytes are not the method's message reaches it as a marker
(sanad.rpc.undecodable) and is refused Invalid only once its caller was authenticated, charged
and authorized (the table's limits see no request): bad bytes need credentials, cost a token
and are audited as any call.
"""

import asyncio
import logging
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from datetime import UTC, datetime
from functools import partial
from typing import Any

import grpc

from sanad import errors
from sanad.deadline import ITEMS_MARGIN_S, Deadline, caller_deadline
from sanad.rpc.handlers import checked, rebuilt
from sanad.rpc.interceptors import cancelled_code
from sanad.rpc.status import code_of
from sanad.rpc.undecodable import Undecodable, handed_on, lenient
from sanad.security import audit_items, audit_offer, policy
from sanad.security.admission import UNKNOWN_CALLER, Admission
from sanad.security.audit import NOTE_KEY, AuditEvent
from sanad.security.audit_log import AuditLog
from sanad.security.authenticate import Authenticator, source
from sanad.security.identity import Identity, set_current
from sanad.security.limits import RateLimiter, StreamCap
from sanad.security.standing import Standing, kept
from sanad.settings import AuthMode, CommonSettings
from sanad.telemetry.logs import request_id_var

log = logging.getLogger("sanad.security")


class SecurityInterceptor(grpc.aio.ServerInterceptor):
    """Admits or refuses every call by the policy table and audits the state-changing ones."""

    def __init__(
        self,
        admission: Admission,
        licensing_agency: str,
        audit_log: AuditLog | None = None,
        recorded_by: str = "",
        recheck_s: float = 5.0,
    ) -> None:
        self.admission = admission
        self.licensing_agency = licensing_agency
        self.audit_log = audit_log
        self.recorded_by = recorded_by
        self.recheck_s = recheck_s

    async def intercept_service(
        self,
        continuation: Callable[[grpc.HandlerCallDetails], Awaitable[grpc.RpcMethodHandler]],
        handler_call_details: grpc.HandlerCallDetails,
    ) -> grpc.RpcMethodHandler:
        handler = await continuation(handler_call_details)
        method = handler_call_details.method
        if handler is None:
            return handler
        if policy.is_open(method):
            # No identity, no charge, no audit; but a revoked certificate is refused here too.
            if self.admission.authenticator.revoked is None:
                return handler
            return rebuilt(handler, self._open)
        rule = policy.POLICY.get(method)
        if rule is None and self.admission.authenticator.mode is AuthMode.DEV:
            return handler  # a dev-only service outside the table (tests, benchmarks)
        guard = _Guard(self, method, rule)
        # Lenient: the guard refuses an undecodable request itself, after admitting its caller.
        return rebuilt(handler, guard.wrap, lenient(handler.request_deserializer))

    def _open(
        self, behaviour: Callable[..., Any], streamed: bool, streaming: bool
    ) -> Callable[..., Any]:
        """An open method's behaviour, refused to a revoked certificate; a stream (a Health
        Watch, a reflection stream) is also ended once its certificate is revoked."""
        check = self.admission.authenticator.refuse_revoked
        if streamed or streaming:
            return kept(behaviour, check, self.recheck_s)
        return checked(behaviour, check)

    def authorize(
        self, method: str, rule: policy.Rule | None, identity: Identity, request: Any
    ) -> None:
        """PermissionDenied unless the table allows it; then current() is this identity.

        A unary request whose bytes were not the method's message is judged by the caller's
        role alone: the table's limits (own centre, own agency) have no fields to read, and the
        request is refused Invalid next, so no limit is skipped for a request acted on. A role
        that may call the method learns its bytes were bad (DESIGN §5, invariant 6), not that
        it may not call what it may.
        """
        if isinstance(request, Undecodable):
            allowed = rule is not None and policy.admits(rule, identity)
        else:
            allowed = rule is not None and policy.allows(
                rule, identity, request, self.licensing_agency
            )
        if not allowed:
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

    def wrap(
        self, behaviour: Callable[..., Any], streamed: bool, streaming: bool
    ) -> Callable[..., Any]:
        """The guarded behaviour of a call whose requests (streamed) or answers (streaming)
        are a stream."""
        if streaming:
            return self.streaming(behaviour, streamed)
        return self.unary(behaviour, streamed)

    def unary(self, behaviour: Callable[..., Any], streamed: bool) -> Callable[..., Any]:
        async def wrapped(request: Any, context: Any) -> Any:
            # Read once, as the call begins: a Deadline read later keeps back a smaller margin.
            deadline = caller_deadline(context)
            shown = _shown(request, streamed)
            identity = UNKNOWN_CALLER
            offered = None
            admitted = False
            try:
                # Authenticated before charged: a refused call's event names its caller.
                identity = self.owner.admission.identify(context)
                self.owner.admission.charge(identity, streamed)
                self.owner.authorize(self.method, self.rule, identity, _judged(request, streamed))
                request = handed_on(request, streamed)
                admitted = True
                if self.audit_log is not None and not streamed:
                    offered = audit_offer.offer(partial(self._succeeded, identity, request))
                response = await behaviour(request, context)
            except BaseException as error:
                if self._audits(error, identity, context, admitted=admitted):
                    outcome = _outcome(error, context)
                    note = _note(error, identity, context)
                    await self._audit(
                        deadline, identity, shown, None, outcome, offered=offered, note=note
                    )
                raise
            outcome = _outcome(None, context)
            # A handler that took the OK event stored it with its own durable write.
            if offered is None or not offered.taken or outcome != grpc.StatusCode.OK.name:
                await self._audit(deadline, identity, shown, response, outcome, offered=offered)
            return response

        return wrapped

    def streaming(self, behaviour: Callable[..., Any], streamed: bool) -> Callable[..., Any]:
        async def wrapped(request: Any, context: Any) -> AsyncIterator[Any]:
            deadline = caller_deadline(context)  # read once, as in unary()
            # The items' events keep back what their own calls do (the servicer's ITEMS_MARGIN_S).
            items_deadline = caller_deadline(context, ITEMS_MARGIN_S)
            shown = _shown(request, streamed)
            identity = UNKNOWN_CALLER
            items: audit_items.ItemAudit | None = None
            admitted = False
            try:
                # Authenticated before charged: a refused call's event names its caller.
                identity = self.owner.admission.identify(context)
                self.owner.admission.charge(identity, streamed)
                self.owner.authorize(self.method, self.rule, identity, _judged(request, streamed))
                request = handed_on(request, streamed)
                self.owner.admission.open_stream(self.method, identity)
                admitted = True
                if self.audit_log is not None and streamed and self.item_targets:
                    items = self._items(identity, self.audit_log, items_deadline)
                    audit_items.begin(items)
                standing = _Standing(self.owner, context, identity)
                if streamed:  # checked before each item is read: answers of items taken go out
                    request = standing.guarded(request)
                try:
                    with standing.watched():
                        responses = behaviour(request, context)
                        if not streamed:  # a server stream's wait for its next answer ends too
                            responses = standing.answers(responses)
                        async for response in responses:
                            if not streamed:
                                standing.check()
                            yield response
                finally:  # however it ends: normally, with an error, or cancelled
                    self.owner.admission.close_stream(identity)
            except BaseException as error:
                if self._audits(error, identity, context, admitted=admitted):
                    outcome = _outcome(error, context)
                    note = _note(error, identity, context)
                    await self._audit(
                        deadline, identity, shown, None, outcome, items=items, note=note
                    )
                raise
            outcome = _outcome(None, context)
            await self._audit(deadline, identity, shown, None, outcome, items=items)

        return wrapped

    def _audits(
        self, error: BaseException, identity: Identity, context: Any, *, admitted: bool
    ) -> bool:
        """Whether a call that failed is audited: a method that changes nothing never is, and
        its refusals for the caller's limits spend nothing of the caller's budget for audited
        ones (reads refused for the rate used it up, leaving its refused changes unaudited)."""
        if self.audit_log is None:
            return False
        return admitted or self.owner.admission.audits_refusal(error, identity, context)

    def _items(
        self, identity: Identity, log: AuditLog, deadline: Deadline
    ) -> audit_items.ItemAudit:
        """The audit of this call's items: each an event of this RPC, caller and request id,
        whose write an item's answer waits for no longer than the call's deadline allows."""

        def build(target: Mapping[str, str], outcome: str) -> AuditEvent:
            return self.owner.event(self.method, identity, dict(target), outcome)

        return audit_items.ItemAudit(build, log, self.item_targets, self.results, deadline.left)

    async def _audit(
        self,
        deadline: Deadline,
        identity: Identity,
        request: Any,
        response: Any,
        outcome: str,
        *,
        offered: audit_offer.Offer | None = None,
        items: audit_items.ItemAudit | None = None,
        note: str = "",
    ) -> None:
        """Record the call's event. A call that failed after its handler carried the OK event
        (a submission whose confirm came too late for the caller's deadline, which the ingest
        worker may store after all) names the results that event names, its transaction id. A
        streaming call whose items were audited counts them by outcome, once those its handler
        left unanswered have ended. The answer waits for the event's write no longer than the
        caller waits for the answer (AuditLog.record). A note the error kept for the trail
        alone (errors.NotFound.audit_note) is its target's NOTE_KEY."""
        if self.audit_log is None:
            return
        results = policy.field_values(response, self.results)
        if offered is not None and offered.taken:
            results = {**offered.results, **results}
        target = self._target(request, results)
        if note:
            target[NOTE_KEY] = note
        try:
            if items is not None:
                await items.settle()
        finally:  # written even when the call is cancelled again meanwhile (the server stops)
            counted = dict(items.outcomes) if items is not None else {}
            await self.audit_log.record(
                self.owner.event(self.method, identity, target, outcome, counted),
                within_s=deadline.left(),
            )

    def _succeeded(
        self, identity: Identity, request: Any, results: Mapping[str, str]
    ) -> AuditEvent:
        """The OK event a handler carries, with the results it names."""
        target = self._target(request, results)
        return self.owner.event(self.method, identity, target, grpc.StatusCode.OK.name)

    def _target(self, request: Any, results: Mapping[str, str]) -> dict[str, str]:
        return policy.audit_target(request, self.targets, self.results, results)


class _Standing(Standing):
    """A guarded streaming call's credential, verified again (sanad.security.standing): its
    token's signature against the keys in use, its expiry, its revocation. A refused item of a
    client stream ends the reading; the handler answers the items it took, then the call ends
    UNAUTHENTICATED. A client certificate, verified by TLS as the connection opens, is looked at
    again for its revocation only (sanad.security.revocation)."""

    def __init__(self, owner: SecurityInterceptor, context: Any, identity: Identity) -> None:
        super().__init__(self._verify, owner.recheck_s)
        self.authenticator = owner.admission.authenticator
        self.context = context
        self.identity = identity

    def _verify(self) -> None:
        try:
            again = self.authenticator.identify(self.context)
        except errors.Unauthenticated as error:
            raise errors.Unauthenticated(
                f"the credential this call was opened with no longer holds: {error.message}"
            ) from None
        except Exception:  # as Admission.identify: a check failing in a way nobody foresaw
            log.exception("the credential of a streaming call could not be checked again")
            raise errors.Unauthenticated(
                "the credential this call was opened with could not be checked again"
            ) from None
        if again != self.identity:  # the metadata of a call does not change; kept honest
            raise errors.Unauthenticated("the credential this call was opened with changed")


def _judged(request: Any, streamed: bool) -> Any:
    """What the policy table judges: none for a client stream (its items come later), else the
    request as it came, an Undecodable marker included (judged by role: authorize)."""
    return None if streamed else request


def _shown(request: Any, streamed: bool) -> Any:
    """The request the audit trail sees: what the table judges, but none for bytes that were
    not the method's message."""
    judged = _judged(request, streamed)
    return None if isinstance(judged, Undecodable) else judged


def _note(error: BaseException, identity: Identity, context: Any) -> str:
    """What the error tells the audit trail and not the caller; for a call refused before its
    caller was identified, where it came from: the identity of the client certificate TLS
    verified (a bad bearer token came with it), else the peer's address."""
    if identity is UNKNOWN_CALLER:
        return f"unauthenticated, from {source(context)}"
    return error.audit_note if isinstance(error, errors.NotFound) else ""


def _outcome(error: BaseException | None, context: Any) -> str:
    if isinstance(error, errors.DomainError):
        return code_of(error).name
    if isinstance(error, asyncio.CancelledError | GeneratorExit):
        # gRPC cancelled the call: at an await, or (GeneratorExit) at a stream's yield while
        # an answer was being sent. Named as the call's metrics and log line name it.
        return cancelled_code(context).name
    if error is not None and not isinstance(error, grpc.aio.AbortError):
        return grpc.StatusCode.INTERNAL.name
    code = context.code()
    return code.name if isinstance(code, grpc.StatusCode) else grpc.StatusCode.OK.name


def security_interceptor(
    settings: CommonSettings,
    authenticator: Authenticator,
    audit_log: AuditLog | None = None,
    recorded_by: str = "",
) -> SecurityInterceptor:
    """The interceptor a server built from these settings runs, with `authenticator` (read
    from the settings' key file: Authenticator.from_settings)."""
    admission = Admission(
        authenticator,
        RateLimiter(settings.rate_limit_per_s, settings.rate_limit_burst),
        StreamCap(settings.max_streams_per_identity),
    )
    return SecurityInterceptor(
        admission,
        settings.auth_licensing_agency,
        audit_log,
        recorded_by,
        # A retired key's tokens are refused within the key file's reload interval, open
        # streams included.
        recheck_s=settings.auth_jwt_keys_reload_s,
    )
