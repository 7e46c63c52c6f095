"""Who is calling: the identity recorded as actor on every change."""

import grpc

from sanad.security.identity import DEV_ADMIN, current

IDENTITY_KEY = "x-sanad-identity"


def caller(context: grpc.aio.ServicerContext) -> str:
    """The authenticated caller (role:subject@scope).

    Without a credential in the dev auth mode the caller is the dev admin; then the free-text
    x-sanad-identity header (or the peer address) names the actor, as before authentication.
    """
    identity = current()
    if identity is not DEV_ADMIN:
        return identity.actor
    for key, value in context.invocation_metadata() or ():
        if key == IDENTITY_KEY and isinstance(value, str) and value:
            return value[:128]
    return f"anonymous@{context.peer()}"
