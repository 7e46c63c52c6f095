"""The settings every deployable shares; each deployable extends them with its own."""

from enum import StrEnum

from pydantic import SecretStr, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

DEV_CIVIL_ID_SECRET = "dev-only-civil-id-secret"  # noqa: S105 - the dev default production refuses


class Profile(StrEnum):
    """Where a process runs: `dev` allows plaintext and default secrets, `production` does not."""

    DEV = "dev"
    PRODUCTION = "production"


class CommonSettings(BaseSettings):
    """Read once from the environment (prefix SANAD_) in each deployable's main."""

    model_config = SettingsConfigDict(env_prefix="SANAD_", extra="ignore", frozen=True)

    profile: Profile = Profile.DEV
    log_level: str = "INFO"
    # Human-friendly lines instead of JSON; for a terminal, never for production.
    log_plain: bool = False

    mongo_url: str = "mongodb://127.0.0.1:27717/?directConnection=true"
    mongo_database: str = "sanad"
    mongo_timeout_ms: int = 5000

    amqp_url: str = "amqp://guest:guest@127.0.0.1:5672/"
    # Prefix of every exchange and queue name; tests use a unique one per run.
    amqp_prefix: str = "sanad"
    amqp_timeout_s: float = 5.0

    civil_id_secret: SecretStr = SecretStr(DEV_CIVIL_ID_SECRET)

    # How long SIGTERM waits for in-flight calls and batches.
    shutdown_grace_s: float = 10.0
    # Largest gRPC message accepted or sent, in bytes.
    grpc_max_message_bytes: int = 4 * 1024 * 1024

    @model_validator(mode="after")
    def _refuse_unsafe_production(self) -> "CommonSettings":
        if self.profile is Profile.PRODUCTION:
            if self.civil_id_secret.get_secret_value() == DEV_CIVIL_ID_SECRET:
                raise ValueError("production refuses the default SANAD_CIVIL_ID_SECRET")
            if "guest:guest@" in self.amqp_url:
                raise ValueError("production refuses RabbitMQ's default guest account")
        return self


class ServerSettings(CommonSettings):
    """Settings of a process that serves gRPC."""

    grpc_host: str = "0.0.0.0"
