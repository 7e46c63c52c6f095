"""The settings every deployable shares; each deployable extends them with its own.

Security settings (DESIGN section 6; the operator's guide is in README "Security"):

- gRPC TLS: SANAD_TLS_CERT_FILE + SANAD_TLS_KEY_FILE turn on TLS for every gRPC port this process
  serves and are also its client certificate towards other services; SANAD_TLS_CA_FILE is the CA
  that client and server certificates must chain to; SANAD_TLS_CLIENT_AUTH=true requires a client
  certificate (mutual TLS). Production requires it: services call each other with their
  certificates and never with tokens, so a port without it would refuse them at run time.
- Authentication: SANAD_AUTH_MODE=dev treats a call without credentials as the dev admin (today's
  local behaviour); `required` refuses it with UNAUTHENTICATED. Credentials are a client
  certificate (CN = subject, OU = role, URI SAN `urn:sanad:agency:<code>` or
  `urn:sanad:center:<id>` = scope) or an ES256 JWT bearer token verified with
  SANAD_AUTH_JWT_PUBLIC_KEY_FILE, SANAD_AUTH_JWT_ISSUER and SANAD_AUTH_JWT_AUDIENCE. The key
  file is a JWKS document (keys chosen by the token's `kid`) or one PEM public key, and is read
  again within SANAD_AUTH_JWT_KEYS_RELOAD_S of a change, so signing keys rotate without a
  restart (sanad.security.key_file).
- AMQP TLS: use an `amqps://` SANAD_AMQP_URL; aio-pika reads `cafile`, `certfile` and `keyfile`
  from its query string. MongoDB TLS: SANAD_MONGO_TLS_CA_FILE and SANAD_MONGO_TLS_CERT_KEY_FILE
  (or the same options in SANAD_MONGO_URL). Production refuses either connection in plaintext or
  without verifying the server's certificate: they carry civil-ID hashes, fees and passwords.
- Rate limits: SANAD_RATE_LIMIT_PER_S and _BURST, per identity and per replica (each process
  keeps its own buckets, so N replicas behind a balancer admit up to N times the rate).
  Production refuses 0 (off). SANAD_MAX_STREAMS_PER_IDENTITY caps the streaming calls one
  identity holds open at once, per replica (0: no cap).
"""

import math
from collections.abc import Mapping
from enum import StrEnum
from typing import Any, ClassVar

from pydantic import Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict
from pymongo.errors import ConfigurationError, InvalidURI
from pymongo.uri_parser import parse_uri, split_options
from yarl import URL

DEV_CIVIL_ID_SECRET = "dev-only-civil-id-secret"  # noqa: S105 - the dev default production refuses
# Shortest civil-ID secret production takes, in bytes: the HMAC-SHA256 key is as strong as this.
MIN_CIVIL_ID_SECRET_BYTES = 32
# Longest SANAD_AUTH_JWT_KEYS_RELOAD_S production takes: how long a retired key still verifies.
MAX_PRODUCTION_KEYS_RELOAD_S = 300
# RabbitMQ's default account: aio-pika logs in as it when the AMQP URL names no user.
AMQP_GUEST = "guest"
# AMQP's prefetch count is 16 bits, and 0 would mean no limit at all; RabbitMQ refuses a message
# body over 128 MiB (its max_message_size at most).
AMQP_MAX_PREFETCH = 65_535
AMQP_MAX_BODY_BYTES = 128 * 1024 * 1024


class Profile(StrEnum):
    """Where a process runs: `dev` allows plaintext and default secrets, `production` does not."""

    DEV = "dev"
    PRODUCTION = "production"


class AuthMode(StrEnum):
    """`dev`: a call without credentials acts as the dev admin; `required`: it is refused."""

    DEV = "dev"
    REQUIRED = "required"


class CommonSettings(BaseSettings):
    """Read once from the environment (prefix SANAD_) in each deployable's main."""

    model_config = SettingsConfigDict(env_prefix="SANAD_", extra="ignore", frozen=True)

    # Whether the deployable connects to RabbitMQ; the production checks of SANAD_AMQP_URL
    # apply only to those that do (not the registry or the metrics service).
    uses_amqp: ClassVar[bool] = True
    # Whether the deployable hashes civil numbers with SANAD_CIVIL_ID_SECRET (intake and the
    # batch worker); production refuses a weak secret only there, and the deployments give the
    # secret to those alone: with it, any 8-digit civil number is found from its hash at once.
    uses_civil_id_secret: ClassVar[bool] = True

    profile: Profile = Profile.DEV
    log_level: str = "INFO"
    # Human-friendly lines instead of JSON; for a terminal, never for production.
    log_plain: bool = False

    mongo_url: str = "mongodb://127.0.0.1:27717/?directConnection=true"
    mongo_database: str = "sanad"
    mongo_timeout_ms: int = Field(default=5000, ge=1, le=600_000)
    # Longest wait for any one MongoDB reply: a server that stops answering becomes a network
    # error (workers back off and retry) instead of a hang. Well above any real operation.
    mongo_socket_timeout_ms: int = Field(default=30000, ge=1, le=3_600_000)
    # TLS towards MongoDB; empty leaves whatever SANAD_MONGO_URL says.
    mongo_tls_ca_file: str = ""
    mongo_tls_cert_key_file: str = ""

    amqp_url: str = "amqp://guest:guest@127.0.0.1:5672/"
    # Prefix of every exchange and queue name; tests use a unique one per run.
    amqp_prefix: str = "sanad"
    amqp_timeout_s: float = Field(default=5.0, gt=0, le=600)
    # The AMQP heartbeat the processes ask for, unless SANAD_AMQP_URL names one: a connection
    # that brings no frame for three of them (plus a second each) is taken for dead and opened
    # again. With RabbitMQ's 60 s a partitioned connection (no close ever arrives) went unseen
    # for 183-213 s, health SERVING meanwhile, longer than a parked change waits for the one
    # such a worker held.
    amqp_heartbeat_s: int = Field(default=10, ge=1, le=600)

    civil_id_secret: SecretStr = SecretStr(DEV_CIVIL_ID_SECRET)

    # How long SIGTERM waits for in-flight calls and batches.
    shutdown_grace_s: float = Field(default=10.0, ge=0, le=3600)
    # Largest gRPC message accepted or sent, in bytes: at least intake's and metrics' request
    # limit (sanad.rpc.server.SMALL_REQUEST_BYTES), at most what gRPC's 32-bit options hold.
    grpc_max_message_bytes: int = Field(default=4 * 1024 * 1024, ge=64 * 1024, le=2**31 - 1)
    # Longest wait on another service for a caller: the deadline of an outbound unary gRPC call,
    # and how long a report waits for metrics' copy of the registry to finish its first replay.
    grpc_outbound_timeout_s: float = Field(default=10.0, gt=0, le=3600)

    # gRPC TLS: this process's certificate and key (served, and presented as a client).
    tls_cert_file: str = ""
    tls_key_file: str = ""
    # The CA every peer certificate must chain to.
    tls_ca_file: str = ""
    # Require a client certificate from every caller (mutual TLS).
    tls_client_auth: bool = False
    # Expected name in the server certificates of services this process calls; empty: the host.
    tls_server_name: str = ""

    auth_mode: AuthMode = AuthMode.DEV
    # A JWKS document (RFC 7517; several keys, each named by its kid) or one PEM public key.
    auth_jwt_public_key_file: str = ""
    # At most this often verification looks whether the key file (and the revoked-certificates
    # file) changed, and reads it if so.
    auth_jwt_keys_reload_s: float = 5.0
    auth_jwt_issuer: str = "sanad-mesh"
    auth_jwt_audience: str = "sanad-mesh"
    # Longest bearer token accepted, from its iat (or now) to its exp; make certs issues 30 days.
    auth_jwt_max_lifetime_s: int = Field(default=31 * 24 * 3600, ge=1)
    # Serial numbers of client certificates refused whatever they name, one a line in hex
    # (sanad.security.revocation); read again when it changes, as the JWT key file is.
    auth_revoked_certs_file: str = ""
    # Subjects whose bearer tokens are refused, one a line, each optionally with the time before
    # which its tokens were issued (sanad.security.revocation); read again as the key file is.
    auth_revoked_tokens_file: str = ""
    # Agency whose ministry identities may register centres and change licences.
    auth_licensing_agency: str = "MOCIIP"

    # RabbitMQ users allowed to submit batches for any centre (comma-separated), besides
    # `batch-<centre id>` users who submit for their own centre only.
    batch_trusted_users: str = ""

    # Per-identity token bucket: calls per second and burst; 0 turns the limit off (dev only:
    # production refuses it). Each replica keeps its own buckets: the limit is per replica.
    rate_limit_per_s: float = 0.0
    rate_limit_burst: int = Field(default=100, ge=1)
    # Streaming calls (watches, bidi submissions) one identity may hold open at once, per
    # replica: each watch polls MongoDB for as long as it stays open. 0 turns the cap off.
    max_streams_per_identity: int = Field(default=100, ge=0)

    @property
    def grpc_tls(self) -> bool:
        """True when this process serves and calls gRPC over TLS."""
        return bool(self.tls_cert_file and self.tls_key_file)

    @field_validator("mongo_url")
    @classmethod
    def _refuse_a_url_pymongo_refuses(cls, url: str) -> str:
        """A URL pymongo cannot build a client from, refused with the settings (it failed
        every process later, with a traceback)."""
        if problem := mongo_url_problem(url):
            raise ValueError(problem)
        return url

    @model_validator(mode="after")
    def _refuse_settings_that_disagree(self) -> "CommonSettings":
        """Every check across settings at once, one line each (sanad.runtime prints them): an
        operator fixes them in one go."""
        if problems := self.cross_problems():
            raise ValueError("\n".join(problems))
        return self

    def cross_problems(self) -> list[str]:
        """What is wrong with settings together, each line naming its variables; a
        deployable's settings add their own (and run only once every setting passed its own
        check: sanad.runtime.load_settings runs them again without the refused ones)."""
        problems = []
        if self.profile is Profile.PRODUCTION:
            problems += [f"production refuses {problem}" for problem in self._production_problems()]
        if bool(self.tls_cert_file) != bool(self.tls_key_file):
            problems.append("SANAD_TLS_CERT_FILE and SANAD_TLS_KEY_FILE go together")
        if self.tls_client_auth and not (self.grpc_tls and self.tls_ca_file):
            problems.append("SANAD_TLS_CLIENT_AUTH needs a certificate, its key and a CA")
        if not (math.isfinite(self.auth_jwt_keys_reload_s) and self.auth_jwt_keys_reload_s > 0):
            problems.append("SANAD_AUTH_JWT_KEYS_RELOAD_S is a number of seconds above 0")
        return problems

    def _production_problems(self) -> list[str]:
        problems = self._secret_problems() if self.uses_civil_id_secret else []
        if self.uses_amqp and amqp_user(self.amqp_url) == AMQP_GUEST:
            problems.append("RabbitMQ's default guest account")
        if AMQP_GUEST in self.batch_trusted_user_names:
            problems.append("guest in SANAD_BATCH_TRUSTED_USERS: any guest login could submit")
        if not self.grpc_tls:
            problems.append("plaintext gRPC: set SANAD_TLS_CERT_FILE and SANAD_TLS_KEY_FILE")
        if not self.tls_ca_file:
            problems.append("a missing CA: set SANAD_TLS_CA_FILE")
        if self.auth_mode is AuthMode.DEV:
            problems.append("SANAD_AUTH_MODE=dev: set it to required")
        if not self.tls_client_auth:
            # DESIGN section 6; other services call with certificates, never tokens.
            problems.append("SANAD_TLS_CLIENT_AUTH=false: every gRPC port serves mutual TLS")
        if not (math.isfinite(self.rate_limit_per_s) and self.rate_limit_per_s > 0):
            problems.append(
                "no per-identity rate limit: set SANAD_RATE_LIMIT_PER_S above 0 (per replica)"
            )
        if self.auth_jwt_keys_reload_s > MAX_PRODUCTION_KEYS_RELOAD_S:
            problems.append(
                "a JWT key file checked less often than every "
                f"{MAX_PRODUCTION_KEYS_RELOAD_S} s: a retired key must stop working soon"
            )
        if self.max_streams_per_identity <= 0:
            problems.append(
                "no cap on open streams: set SANAD_MAX_STREAMS_PER_IDENTITY above 0 (per replica)"
            )
        if self.uses_amqp:
            problems += amqp_tls_problems(self.amqp_url)
            if heartbeat_off(self.amqp_url):
                problems.append(
                    "an AMQP URL that turns heartbeats off: a partitioned connection would"
                    " never be seen (drop its heartbeat, or give one from 1 to 600)"
                )
        problems += mongo_tls_problems(
            self.mongo_url, self.mongo_tls_ca_file, self.mongo_tls_cert_key_file
        )
        return problems

    def _secret_problems(self) -> list[str]:
        secret = self.civil_id_secret.get_secret_value()
        if secret == DEV_CIVIL_ID_SECRET:
            return ["the default SANAD_CIVIL_ID_SECRET"]
        if len(secret.encode()) < MIN_CIVIL_ID_SECRET_BYTES:
            return [f"a SANAD_CIVIL_ID_SECRET under {MIN_CIVIL_ID_SECRET_BYTES} bytes"]
        return []

    @property
    def broker_url(self) -> str:
        """SANAD_AMQP_URL as the processes connect with: with SANAD_AMQP_HEARTBEAT_S as its
        heartbeat unless it names one itself (aiormq reads `heartbeat` from the URL)."""
        return with_heartbeat(self.amqp_url, self.amqp_heartbeat_s)

    @property
    def batch_trusted_user_names(self) -> frozenset[str]:
        """SANAD_BATCH_TRUSTED_USERS as names (user_names)."""
        return user_names(self.batch_trusted_users)


class ServerSettings(CommonSettings):
    """Settings of a process that serves gRPC."""

    grpc_host: str = "0.0.0.0"
    # After SIGTERM, how long the server goes on taking calls while its health says NOT_SERVING,
    # before it stops taking them and drains (shutdown_grace_s): readiness probes and load
    # balancers see NOT_SERVING and stop sending calls, instead of having them refused. The
    # deployments set it under the pod's termination grace with shutdown_grace_s.
    shutdown_notice_s: float = Field(default=0.0, ge=0.0, le=60.0)
    # Connections the gRPC server holds at once; more are closed as they open (the caller sees
    # UNAVAILABLE). 21,000 idle connections took every open file intake had (20,000 here), so it
    # could open no connection to MongoDB either, and 369 MB. Never within
    # sanad.rpc.server.SPARE_FILES of the process's open-file limit.
    grpc_max_connections: int = Field(default=4096, ge=1)


class RegistryFollowerSettings(ServerSettings):
    """Settings of a process that keeps a copy of the registry, followed through its watch
    streams (intake, the batch worker, metrics)."""

    # Where the registry's gRPC endpoint is, for its watch streams.
    registry_target: str = "127.0.0.1:50051"
    # How long the copy is still used after its watch stream breaks (a registry restart or
    # deploy) before work that needs it is refused as UNAVAILABLE (the batch worker holds its
    # batches) until the stream is back: the registry may be changing where this process
    # cannot see it. 0 refuses from the first moment the stream breaks.
    registry_outage_grace_s: float = Field(default=60.0, ge=0.0, le=3600.0)


# Connection-string options that turn the server's verification off (tlsInsecure sets both).
_MONGO_UNVERIFIED = ("tlsallowinvalidcertificates", "tlsallowinvalidhostnames")
# Options that name TLS files: pymongo turns TLS on when one is given.
MONGO_TLS_FILES = ("tlscafile", "tlscertificatekeyfile")


def user_names(setting: str) -> frozenset[str]:
    """A setting that lists RabbitMQ users as names: comma-separated, spaces and blanks dropped."""
    return frozenset(user.strip() for user in setting.split(",")) - {""}


def amqp_user(url: str) -> str:
    """The RabbitMQ user an AMQP URL logs in as, read as aiormq reads it: the URL's user,
    percent-decoded, or guest when it names none (`amqps://host/`, `amqps://:pw@host/`)."""
    return URL(url).user or AMQP_GUEST


def with_heartbeat(url: str, seconds: int) -> str:
    """The AMQP URL asking for this heartbeat, unless it asks for one already. Read and written
    with yarl, as aio-pika reads it."""
    parsed = URL(url)
    if "heartbeat" in parsed.query:
        return url
    return str(parsed.update_query(heartbeat=seconds))


def heartbeat_off(url: str) -> bool:
    """Whether an AMQP URL turns heartbeats off as aiormq reads it: heartbeat 0, or a value
    aiormq takes for 0 (not a number, or 65535 and over)."""
    given = URL(url).query.get("heartbeat")
    if given is None:
        return False
    try:
        seconds = int(given)
    except ValueError:
        return True
    return not 0 < seconds < 65535


def amqp_tls_problems(url: str) -> list[str]:
    """Why an AMQP URL is unsafe for production: plaintext, or a server it does not verify.

    Read with yarl, as aiormq reads it: TLS exactly for amqps, verification off unless every
    `no_verify_ssl` is "0" (aiormq reads the first; a bare key counts as set).
    """
    parsed = URL(url)
    if parsed.scheme != "amqps":
        return ["plaintext AMQP: use an amqps:// SANAD_AMQP_URL"]
    if any(value != "0" for value in parsed.query.getall("no_verify_ssl", [])):
        return ["an AMQP URL with no_verify_ssl: the broker's certificate must be verified"]
    return []


def mongo_url_problem(url: str) -> str | None:
    """Why pymongo would refuse the URL's scheme, user, hosts or ports as it builds a client,
    or None. A mongodb+srv:// name is not resolved here (the client does that when it runs),
    and options are left to production's checks and the client (which reads the TLS files
    they name). pymongo's words name the part it refuses, never the password."""
    if url.startswith("mongodb+srv://"):
        return None
    try:
        parse_uri(url, validate=False, warn=True)
    except (ConfigurationError, ValueError) as error:
        return f"pymongo refuses it: {error}"
    return None


def mongo_url_options(url: str) -> Mapping[str, Any]:
    """A MongoDB URL's options as pymongo reads them: after the first `?`, split on `&` or `;`,
    by lower-case name; InvalidURI or ValueError for options it refuses."""
    _, _, query = url.partition("?")
    return split_options(query, validate=False) if query else {}


def mongo_tls_problems(url: str, ca_file: str = "", cert_key_file: str = "") -> list[str]:
    """Why a MongoDB connection is unsafe for production: plaintext, or a server unverified.

    Read as pymongo reads it: options after the first `?`, split on `&` or `;`, names in any
    case, booleans exactly "true" or "false" (pymongo drops any other value with a warning).
    TLS is on with SANAD_MONGO_TLS_CA_FILE or _CERT_KEY_FILE (sanad.mongo passes tls=True,
    which wins over the URL), with tls=true or ssl=true, or, unless tls/ssl=false, with a TLS
    file in the URL or a mongodb+srv:// URL.
    """
    try:
        options = mongo_url_options(url)
    except (InvalidURI, ValueError) as error:
        return [f"a SANAD_MONGO_URL whose options pymongo refuses: {error}"]
    switch = options.get("tls")  # ssl=... arrives as tls
    if switch not in (None, "true", "false"):
        return [f"tls={switch} in SANAD_MONGO_URL: pymongo ignores it; write tls=true"]
    implied = url.startswith("mongodb+srv://") or any(name in options for name in MONGO_TLS_FILES)
    on = bool(ca_file or cert_key_file) or switch == "true" or (switch is None and implied)
    if not on:
        return ["plaintext MongoDB: set SANAD_MONGO_TLS_CA_FILE or tls=true in SANAD_MONGO_URL"]
    if any(options.get(name, "false") != "false" for name in _MONGO_UNVERIFIED):
        return ["a MongoDB URL that does not verify the server's certificate or host name"]
    return []
