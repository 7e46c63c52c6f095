"""Who is calling: the identity recorded as actor on every change."""

import grpc

from sanad.security.identity import DEV_ADMIN, current

IDENTITY_KEY = "x-sanad-identity"
# The dev caller that names itself in no header. One name, not its peer address: request ids
# are unique per caller, and a retry over a new connection (a new port) must meet its first
# claim, not get a new transaction id.
ANONYMOUS = "anonymous"


def caller(context: grpc.aio.ServicerContext) -> str:
    """The authenticated caller (role:subject@scope).

    Without a credential in the dev auth mode the caller is the dev admin; then the free-text
    x-sanad-identity header names the actor, as before authentication, and without it every
    such caller is ANONYMOUS (one caller, sharing one space of request ids).
    """
    identity = current()
    if identity is not DEV_ADMIN:
        return identity.actor
    for key, value in context.invocation_metadata() or ():
        if key == IDENTITY_KEY and isinstance(value, str) and value:
            return value[:128]
    return ANONYMOUS
