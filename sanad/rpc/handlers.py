"""Handlers rebuilt around a wrapper, in the kind the method has: for interceptors that put a
check or a guard in front of a service's behaviour."""

import inspect
from collections.abc import AsyncIterator, Callable
from typing import Any

import grpc

# (behaviour, request streamed, response streamed) -> the behaviour to serve instead
Wrap = Callable[[Callable[..., Any], bool, bool], Callable[..., Any]]


def rebuilt(
    handler: grpc.RpcMethodHandler,
    wrap: Wrap,
    deserializer: Callable[[bytes], Any] | None = None,
) -> grpc.RpcMethodHandler:
    """A handler of the same kind whose behaviour is wrap(behaviour, request streamed, response
    streamed), its requests read by deserializer (by default, the handler's own)."""
    parse = deserializer or handler.request_deserializer
    serialize = handler.response_serializer
    if handler.unary_unary:
        return grpc.unary_unary_rpc_method_handler(
            wrap(handler.unary_unary, False, False), parse, serialize
        )
    if handler.stream_unary:
        return grpc.stream_unary_rpc_method_handler(
            wrap(handler.stream_unary, True, False), parse, serialize
        )
    if handler.unary_stream:
        return grpc.unary_stream_rpc_method_handler(
            wrap(handler.unary_stream, False, True), parse, serialize
        )
    return grpc.stream_stream_rpc_method_handler(
        wrap(handler.stream_stream, True, True), parse, serialize
    )


def checked(behaviour: Callable[..., Any], check: Callable[[Any], object]) -> Callable[..., Any]:
    """behaviour, run after check(context), in its own kind: an async generator stays one, and a
    handler that writes with context.write and returns (grpc_health's Watch) stays one too."""
    if inspect.isasyncgenfunction(behaviour):

        async def streamed(request: Any, context: Any) -> AsyncIterator[Any]:
            check(context)
            async for response in behaviour(request, context):
                yield response

        return streamed

    async def returned(request: Any, context: Any) -> Any:
        check(context)
        return await behaviour(request, context)

    return returned
