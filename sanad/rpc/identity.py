"""Who is calling: the identity recorded as actor on every change."""

import grpc

IDENTITY_KEY = "x-sanad-identity"


def caller(context: grpc.aio.ServicerContext) -> str:
    """The caller's identity from metadata, or its peer address when none was sent."""
    for key, value in context.invocation_metadata() or ():
        if key == IDENTITY_KEY and isinstance(value, str) and value:
            return value[:128]
    return f"anonymous@{context.peer()}"
