"""The server interceptor every service runs: request ids, RED metrics, logs, error mapping.

Servicers raise domain errors; this is the one place they become gRPC status
codes. Anything else becomes INTERNAL with the request id and no stack trace. A request (or a
streamed item) whose bytes are not the method's message is INVALID_ARGUMENT: parsed leniently
here, refused by the security interceptor after it admitted the caller for the methods it
guards, and here, before anything else sees it, for the rest (sanad.rpc.undecodable).
"""

import asyncio
import inspect
import logging
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from typing import Any

import grpc
from google.protobuf import descriptor_pool

from sanad import errors
from sanad.rpc.handlers import checked, rebuilt
from sanad.rpc.status import code_of, cut, send_status, to_status
from sanad.rpc.undecodable import handed_on, is_lenient, lenient
from sanad.telemetry.logs import REQUEST_ID_KEY, LineBudget, request_id_var
from sanad.telemetry.metrics import GRPC_HANDLED, GRPC_LATENCY, GRPC_STARTED

log = logging.getLogger("sanad.rpc")

# How near its deadline a cancelled call counts as one whose deadline passed (cancelled_code).
DEADLINE_SLACK_S = 0.1
# Lines of calls failed by an outage or an overload, which fails every call: at most 10 a second
# for each method and code (see _Call.finish). Every other failure keeps its line.
FAILURE_LINES = LineBudget(lines=10, per_s=1.0)
BUDGETED = frozenset(
    {
        grpc.StatusCode.UNAVAILABLE,
        grpc.StatusCode.DEADLINE_EXCEEDED,
        grpc.StatusCode.RESOURCE_EXHAUSTED,
        grpc.StatusCode.CANCELLED,
    }
)


def _split(method: str) -> tuple[str, str]:
    _, service, name = method.split("/", 2)
    return service, name


def _rpc_type(handler: grpc.RpcMethodHandler) -> str:
    """The grpc_type label of a method, named as go-grpc-prometheus names it."""
    return _kind(handler.request_streaming, handler.response_streaming)


def _kind(request_streaming: bool, response_streaming: bool) -> str:
    if request_streaming:
        return "bidi_stream" if response_streaming else "client_stream"
    return "server_stream" if response_streaming else "unary"


def _request_id(metadata: Any) -> str:
    for key, value in metadata or ():
        if key == REQUEST_ID_KEY and isinstance(value, str) and 0 < len(value) <= 128:
            return value
    return uuid.uuid4().hex


class _Method:
    """One method's metric children, looked up once per method instead of on every call."""

    def __init__(self, method: str, kind: str) -> None:
        self.service, self.name = _split(method)
        self._labels = (kind, self.service, self.name)
        self.started = GRPC_STARTED.labels(*self._labels)
        self.latency = GRPC_LATENCY.labels(*self._labels)
        self._handled: dict[grpc.StatusCode, Any] = {}

    def handled(self, code: grpc.StatusCode) -> Any:
        counter = self._handled.get(code)
        if counter is None:
            counter = self._handled[code] = GRPC_HANDLED.labels(*self._labels, code.name)
        return counter


class _Call:
    """Bookkeeping of one RPC: request id, metrics and the final log line."""

    def __init__(self, method: _Method, metadata: Any) -> None:
        self.method = method
        self.service, self.name = method.service, method.name
        self.request_id = _request_id(metadata)
        self.start = time.perf_counter()
        self.finished = False
        method.started.inc()

    def begin(self, context: grpc.aio.ServicerContext) -> None:
        request_id_var.set(self.request_id)
        context.set_trailing_metadata(((REQUEST_ID_KEY, self.request_id),))

    async def fail(self, context: grpc.aio.ServicerContext, error: Exception) -> None:
        if isinstance(error, errors.DomainError):
            # Cut as the caller's status is: a message may repeat what the caller sent.
            self.finish(code_of(error), cut(error.message))
            status = to_status(error)
            # The status details travel in the trailers, which abort_with_status would set in
            # place of the request id begin() put there: a failed call returns both.
            trailers = (*status.trailing_metadata, (REQUEST_ID_KEY, self.request_id))
            await send_status(context, context.abort(status.code, status.details, trailers))
        log.exception("unhandled error in %s/%s", self.service, self.name)
        self.finish(grpc.StatusCode.INTERNAL, "internal error")
        await send_status(
            context,
            context.abort(
                grpc.StatusCode.INTERNAL, f"internal error; quote request id {self.request_id}"
            ),
        )

    def finish(self, code: grpc.StatusCode, detail: str = "") -> None:
        """Count, time and log the call's end, once."""
        if self.finished:
            return
        self.finished = True
        elapsed = time.perf_counter() - self.start
        self.method.handled(code).inc()
        self.method.latency.observe(elapsed)
        # OK calls at DEBUG: at thousands of calls a second a line each costs more than the
        # call; the counters above keep the totals. Failed calls are WARNING lines, those an
        # outage or overload fails (BUDGETED) up to FAILURE_LINES' budget a method and code.
        level = logging.DEBUG if code is grpc.StatusCode.OK else logging.WARNING
        if not log.isEnabledFor(level):
            return
        fields = {
            "grpc_code": code.name,
            "duration_ms": round(elapsed * 1000, 2),
            "detail": detail,
        }
        if code in BUDGETED:
            budgeted = FAILURE_LINES.fields((self.service, self.name, code), fields)
            if budgeted is None:
                return
            fields = budgeted
        log.log(level, "%s/%s %s", self.service, self.name, code.name, extra=fields)


def _finished_code(context: grpc.aio.ServicerContext) -> grpc.StatusCode:
    code = context.code()
    return code if isinstance(code, grpc.StatusCode) else grpc.StatusCode.OK


def cancelled_code(context: grpc.aio.ServicerContext) -> grpc.StatusCode:
    """Why gRPC cancelled a handler: the caller's deadline passed, or the caller went away.

    A cancel within DEADLINE_SLACK_S of the deadline is the deadline's: this server's deadline
    counts from when the request arrived, later than the caller's by the request's way here, so
    the caller, its own deadline passed, may end the call while a little of this one is left."""
    left = context.time_remaining()
    if left is not None and left <= DEADLINE_SLACK_S:
        return grpc.StatusCode.DEADLINE_EXCEEDED
    return grpc.StatusCode.CANCELLED


def _stopping(context: Any) -> None:
    raise errors.Unavailable(
        "this server is stopping; retry, and another replica, or this one restarted, will answer"
    )


class StopGate(grpc.aio.ServerInterceptor):
    """Once `bookkeeping` is stopping (ServerInterceptor.refuse_new_calls), answers every call
    UNAVAILABLE instead of handing it to its service. It runs within the security interceptor:
    the caller is authenticated and authorized first, and a refused change is audited (who,
    what, when, UNAVAILABLE) as every other refusal is; refused before it, the trail missed
    the changes a stopping server turned away."""

    def __init__(self, bookkeeping: "ServerInterceptor") -> None:
        self.bookkeeping = bookkeeping

    async def intercept_service(
        self,
        continuation: Callable[[grpc.HandlerCallDetails], Awaitable[grpc.RpcMethodHandler]],
        handler_call_details: grpc.HandlerCallDetails,
    ) -> grpc.RpcMethodHandler:
        handler = await continuation(handler_call_details)
        if handler is None or not self.bookkeeping.stopping:
            return handler
        return rebuilt(handler, lambda behaviour, *_: checked(behaviour, _stopping))


class ServerInterceptor(grpc.aio.ServerInterceptor):
    """Wraps every handler kind of every service with the same bookkeeping."""

    def __init__(self, max_request_bytes: int | None = None) -> None:
        # Larger requests are refused Invalid by the layer that refuses undecodable ones
        # (sanad.rpc.undecodable), counted and audited as any refusal.
        self.max_request_bytes = max_request_bytes
        self._methods: dict[str, _Method] = {}
        # Calls to a method the server does not have (a client built against another contract):
        # counted and logged under one fixed name, whatever path the caller sends.
        self._unknown = _Method("/unknown/unknown", "unary")
        self._unknown_lines = LineBudget()
        self.stopping = False
        self._arrived = 0.0  # when the last call arrived, once stopping

    def prepare(self, services: Sequence[str]) -> None:
        """Create the metric series of every method of these services, every status code of
        each at zero: a series created at its first call is first scraped at 1, and rate() and
        increase() never see that call (a method's first INTERNAL would reach no alert)."""
        for name in services:
            try:
                service = descriptor_pool.Default().FindServiceByName(name)
            except KeyError:  # served by generic handlers only (no descriptor): at first call
                continue
            for method in service.methods:
                kind = _kind(method.client_streaming, method.server_streaming)
                path = f"/{service.full_name}/{method.name}"
                prepared = self._methods.setdefault(path, _Method(path, kind))
                for code in grpc.StatusCode:
                    prepared.handled(code)
        for code in grpc.StatusCode:
            self._unknown.handled(code)

    async def refuse_new_calls(self, longest_s: float, quiet_s: float) -> None:
        """Answer every call from now on UNAVAILABLE at once (StopGate), the server being about
        to stop; return once no call has arrived for quiet_s, or after longest_s.

        gRPC cancels the calls it has taken and not yet handed to a handler when the server
        stops, and their callers see CANCELLED, which no retry policy retries
        (grpc/grpc#41785). Refused here first, quickly, calls no longer wait in that queue: a
        quiet moment says it is empty. An idle server stops after quiet_s.
        """
        self.stopping = True
        self._arrived = time.monotonic()
        ends = self._arrived + longest_s
        while True:
            now, quiet = time.monotonic(), self._arrived + quiet_s
            if now >= quiet or now >= ends:
                return
            await asyncio.sleep(min(ends, quiet) - now)

    def _method(self, name: str, handler: grpc.RpcMethodHandler) -> _Method:
        found = self._methods.get(name)
        if found is None:  # a method's kind never changes: its name is key enough
            found = self._methods[name] = _Method(name, _rpc_type(handler))
        return found

    async def intercept_service(
        self,
        continuation: Callable[[grpc.HandlerCallDetails], Awaitable[grpc.RpcMethodHandler]],
        handler_call_details: grpc.HandlerCallDetails,
    ) -> grpc.RpcMethodHandler:
        handler = await continuation(handler_call_details)
        if handler is None:
            self._unknown.started.inc()
            self._unknown.handled(grpc.StatusCode.UNIMPLEMENTED).inc()
            fields = self._unknown_lines.fields("unknown", {"grpc_method": "unknown"})
            if fields is not None:
                log.warning(
                    "a call to a method this server does not have: %.200r",
                    handler_call_details.method,
                    extra=fields,
                )
            return handler
        if self.stopping:  # refused by the StopGate, within the security interceptor
            self._arrived = time.monotonic()
        method = self._method(handler_call_details.method, handler)
        metadata = handler_call_details.invocation_metadata
        # A parser made lenient already (the security interceptor's, for the methods it
        # guards) is refused by its own layer; any other is made lenient and refused here.
        refuses = not is_lenient(handler.request_deserializer)
        parse = lenient(handler.request_deserializer, self.max_request_bytes)
        if handler.unary_unary:
            return grpc.unary_unary_rpc_method_handler(
                _unary(handler.unary_unary, method, metadata, refuses=refuses),
                parse,
                handler.response_serializer,
            )
        if handler.stream_unary:
            return grpc.stream_unary_rpc_method_handler(
                _unary(handler.stream_unary, method, metadata, refuses=refuses, streamed=True),
                parse,
                handler.response_serializer,
            )
        if handler.stream_stream:
            return grpc.stream_stream_rpc_method_handler(
                _streaming(handler.stream_stream, method, metadata, refuses=refuses, streamed=True),
                parse,
                handler.response_serializer,
            )
        return grpc.unary_stream_rpc_method_handler(
            _streaming(handler.unary_stream, method, metadata, refuses=refuses),
            parse,
            handler.response_serializer,
        )


def _unary(
    behaviour: Callable[..., Any],
    method: _Method,
    metadata: Any,
    *,
    refuses: bool = True,
    streamed: bool = False,
) -> Callable[..., Any]:
    async def wrapped(request: Any, context: grpc.aio.ServicerContext) -> Any:
        call = _Call(method, metadata)
        call.begin(context)
        try:
            handed = handed_on(request, streamed) if refuses else request
            response = await behaviour(handed, context)
        except asyncio.CancelledError:
            call.finish(cancelled_code(context))  # counted and timed like every other end
            raise
        except Exception as error:
            if isinstance(error, grpc.aio.AbortError):
                call.finish(_finished_code(context))
                raise
            await call.fail(context, error)
        call.finish(_finished_code(context))
        return response

    return wrapped


def _streaming(
    behaviour: Callable[..., Any],
    method: _Method,
    metadata: Any,
    *,
    refuses: bool = True,
    streamed: bool = False,
) -> Callable[..., Any]:
    if not inspect.isasyncgenfunction(behaviour):
        # A handler that writes its responses with context.write and returns (grpc_health's
        # Watch): wrapped as a unary one is; iterating it would fail every call as INTERNAL.
        return _unary(behaviour, method, metadata, refuses=refuses, streamed=streamed)

    async def wrapped(request: Any, context: grpc.aio.ServicerContext) -> AsyncIterator[Any]:
        call = _Call(method, metadata)
        call.begin(context)
        try:
            handed = handed_on(request, streamed) if refuses else request
            async for response in behaviour(handed, context):
                yield response
        except asyncio.CancelledError:
            call.finish(cancelled_code(context))
            raise
        except Exception as error:
            if isinstance(error, grpc.aio.AbortError):
                call.finish(_finished_code(context))
                raise
            await call.fail(context, error)
        else:
            call.finish(_finished_code(context))
        finally:
            # Cancelled while gRPC was sending a response, the stream is closed at its yield
            # (GeneratorExit), which no handler above sees: it still ends, as cancelled.
            if not call.finished:
                call.finish(cancelled_code(context))

    return wrapped
