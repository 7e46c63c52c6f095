"""The production profile refuses every unsafe setting; the dev profile keeps today's defaults."""

import os
from pathlib import Path

import pytest
from pydantic import ValidationError

from sanad import mongo
from sanad.devstack import secure
from sanad.devstack.__main__ import DEFAULT_AMQP_URL
from sanad.devstack.layout import child_env, processes
from sanad.settings import AuthMode, ServerSettings
from services.intake.settings import IntakeSettings
from services.metrics.settings import MetricsSettings
from services.registry.settings import RegistrySettings
from workers.batch.settings import BatchSettings
from workers.ingest.settings import IngestSettings

SETTINGS = {
    "services.registry": RegistrySettings,
    "services.intake": IntakeSettings,
    "services.metrics": MetricsSettings,
    "workers.ingest": IngestSettings,
    "workers.batch": BatchSettings,
}

SAFE = {
    "profile": "production",
    "civil_id_secret": "a-real-secret-from-the-vault-32-bytes-at-least",
    "amqp_url": "amqps://intake:pw@rabbit:5671/?cafile=/certs/ca.pem",
    "mongo_url": "mongodb://intake:pw@mongo-0:27017/admin?replicaSet=rs&ssl=true",
    "mongo_tls_ca_file": "/certs/ca.pem",
    "tls_cert_file": "/certs/intake.pem",
    "tls_key_file": "/certs/intake.key",
    "tls_ca_file": "/certs/ca.pem",
    "tls_client_auth": True,
    "auth_mode": "required",
    "rate_limit_per_s": 50,
}


def plain_mongo(url: str) -> dict[str, object]:
    """A change to SAFE: this MongoDB URL, and no CA from the settings to turn TLS on."""
    return {"mongo_url": url, "mongo_tls_ca_file": ""}


def test_dev_defaults_keep_plaintext_and_the_dev_identity() -> None:
    settings = ServerSettings()
    assert not settings.grpc_tls
    assert settings.auth_mode is AuthMode.DEV
    assert settings.rate_limit_per_s == 0


@pytest.mark.parametrize("mode", ["secure", "plaintext"])
def test_every_devstack_child_loads_its_settings(
    mode: str, pki: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # What `make run` gives each child (guest broker, guest trusted with batches): dev profile.
    shared = secure.prepare(pki, DEFAULT_AMQP_URL) if mode == "secure" else {}
    for variable in [v for v in os.environ if v.startswith("SANAD_")]:
        monkeypatch.delenv(variable)
    for name, module in processes(2):
        with monkeypatch.context() as child:
            for variable, value in child_env(shared, name).items():
                child.setenv(variable, value)
            loaded = SETTINGS[module]()
        assert loaded.grpc_tls is (mode == "secure")


def test_production_starts_with_safe_settings() -> None:
    assert ServerSettings(**SAFE).grpc_tls


def test_production_takes_jwt_tokens_beside_mutual_tls() -> None:
    ServerSettings(**{**SAFE, "auth_jwt_public_key_file": "/k.pem"})


def test_production_refuses_tls_without_client_certificates_even_with_a_jwt_key() -> None:
    # Services call each other with their certificates, never tokens: without mutual TLS their
    # calls would arrive without credentials and be refused at run time.
    with pytest.raises(ValidationError, match="SANAD_TLS_CLIENT_AUTH=false"):
        ServerSettings(**{**SAFE, "tls_client_auth": False, "auth_jwt_public_key_file": "/k.pem"})


@pytest.mark.parametrize("rate", [0, -1, float("nan"), float("inf")])
def test_production_refuses_running_without_a_rate_limit(rate: float) -> None:
    with pytest.raises(ValidationError, match="SANAD_RATE_LIMIT_PER_S above 0"):
        ServerSettings(**{**SAFE, "rate_limit_per_s": rate})


def test_production_refuses_running_without_a_cap_on_open_streams() -> None:
    # Below 0 is refused in any profile (test_refused_settings).
    with pytest.raises(ValidationError, match="SANAD_MAX_STREAMS_PER_IDENTITY above 0"):
        ServerSettings(**{**SAFE, "max_streams_per_identity": 0})


@pytest.mark.parametrize("secret", ["x" * 31, "é" * 15 + "x"])
def test_production_refuses_a_civil_id_secret_under_32_bytes(secret: str) -> None:
    with pytest.raises(ValidationError, match="SANAD_CIVIL_ID_SECRET under 32 bytes") as refused:
        ServerSettings(**{**SAFE, "civil_id_secret": secret})
    assert secret not in str(refused.value)


@pytest.mark.parametrize("name", SETTINGS)
def test_production_asks_a_civil_id_secret_only_of_the_processes_that_hash_civil_numbers(
    name: str,
) -> None:
    settings = SETTINGS[name]
    without = {**SAFE, "civil_id_secret": "dev-only-civil-id-secret"}
    if name == "workers.ingest":
        without["ingest_publishers"] = "intake"  # its own production setting
    if name in ("services.intake", "workers.batch"):
        with pytest.raises(ValidationError, match="the default SANAD_CIVIL_ID_SECRET"):
            settings(**without)
    else:
        assert not settings.uses_civil_id_secret
        settings(**without)  # it never reads the secret; its deployment is not given one


def test_production_takes_a_civil_id_secret_of_32_bytes() -> None:
    ServerSettings(**{**SAFE, "civil_id_secret": "é" * 16})  # 16 characters, 32 bytes


@pytest.mark.parametrize("users", ["guest", "migration, guest", " guest ,"])
def test_production_refuses_trusting_the_guest_account_with_batches(users: str) -> None:
    with pytest.raises(ValidationError, match="guest in SANAD_BATCH_TRUSTED_USERS"):
        ServerSettings(**{**SAFE, "batch_trusted_users": users})


def test_production_trusts_named_batch_users() -> None:
    ServerSettings(**{**SAFE, "batch_trusted_users": "migration, moh-loader,guests"})


@pytest.mark.parametrize(
    "amqp_url",
    [
        "amqps://rabbit:5671/sanad?cafile=/certs/ca.pem",  # no user: aio-pika logs in as guest
        "amqps://:pw@rabbit/?cafile=/certs/ca.pem",
        "amqps://guest:a-new-password@rabbit/?cafile=/certs/ca.pem",
        "amqps://gu%65st:pw@rabbit/?cafile=/certs/ca.pem",  # percent-decoded as aiormq does
    ],
)
def test_production_refuses_an_amqp_url_that_logs_in_as_guest(amqp_url: str) -> None:
    with pytest.raises(ValidationError, match="guest account"):
        IntakeSettings(**{**SAFE, "amqp_url": amqp_url})


@pytest.mark.parametrize(
    ("change", "complaint"),
    [
        ({"civil_id_secret": "dev-only-civil-id-secret"}, "SANAD_CIVIL_ID_SECRET"),
        ({"amqp_url": "amqp://guest:guest@rabbit:5672/"}, "guest"),
        ({"tls_cert_file": "", "tls_key_file": ""}, "plaintext gRPC"),
        ({"tls_ca_file": "", "tls_client_auth": False}, "missing CA"),
        ({"auth_mode": "dev"}, "SANAD_AUTH_MODE=dev"),
        ({"tls_client_auth": False}, "SANAD_TLS_CLIENT_AUTH=false"),
        ({"rate_limit_per_s": 0}, "no per-identity rate limit"),
        ({"civil_id_secret": "a-real-but-short-secret"}, "under 32 bytes"),
        ({"batch_trusted_users": "guest"}, "SANAD_BATCH_TRUSTED_USERS"),
        ({"amqp_url": "amqps://rabbit:5671/sanad?cafile=/c.pem"}, "guest"),
        ({"amqp_url": "amqp://intake:pw@rabbit:5672/"}, "plaintext AMQP"),
        # aiormq reads the first no_verify_ssl, and a bare or empty one turns checks off.
        ({"amqp_url": "amqps://intake:pw@rabbit/?no_verify_ssl=1"}, "no_verify_ssl"),
        ({"amqp_url": "amqps://intake:pw@rabbit/?no_verify_ssl"}, "no_verify_ssl"),
        ({"amqp_url": "amqps://intake:pw@rabbit/?no_verify_ssl="}, "no_verify_ssl"),
        ({"amqp_url": "amqps://i:pw@rabbit/?no_verify_ssl=1&no_verify_ssl=0"}, "no_verify_ssl"),
        # aiormq takes 0, a value that is no number and 65535 and over as no heartbeat at all.
        ({"amqp_url": "amqps://intake:pw@rabbit/?heartbeat=0"}, "turns heartbeats off"),
        ({"amqp_url": "amqps://intake:pw@rabbit/?heartbeat=never"}, "turns heartbeats off"),
        ({"amqp_url": "amqps://intake:pw@rabbit/?heartbeat=65535"}, "turns heartbeats off"),
        (plain_mongo("mongodb://intake:pw@mongo-0:27017/admin"), "plaintext MongoDB"),
        (plain_mongo("mongodb+srv://intake:pw@mongo.example/?tls=false"), "plaintext MongoDB"),
        # pymongo splits options on ";" too, and drops a boolean that is not exactly "true".
        (plain_mongo("mongodb+srv://mongo.example/?appName=x;tls=false"), "plaintext MongoDB"),
        (plain_mongo("mongodb://m-0:27017/?TLS=True"), "pymongo ignores it"),
        ({"mongo_url": "mongodb://mongo-0/?tls=true&tlsInsecure=true"}, "does not verify"),
        ({"mongo_url": "mongodb://m-0/admin?ssl=true;tlsInsecure=true"}, "does not verify"),
        ({"mongo_url": "mongodb://m/?ssl=true&tlsAllowInvalidHostnames=TRUE"}, "does not verify"),
        # pymongo reads everything after the first "?" as options, a "#" in a password too.
        ({"mongo_url": "mongodb://u:p#w@m-0/admin?ssl=true&tlsInsecure=true"}, "does not verify"),
        ({"mongo_url": "mongodb://m-0/?tls=true&ssl=false"}, "pymongo refuses"),
    ],
)
def test_production_refuses_an_unsafe_setting(change: dict[str, object], complaint: str) -> None:
    with pytest.raises(ValidationError, match=complaint):
        ServerSettings(**{**SAFE, **change})


@pytest.mark.parametrize(
    ("mongo_url", "ca_file"),
    [
        ("mongodb://m-0:27017,m-1:27017/admin?replicaSet=rs&ssl=true", ""),
        ("mongodb://m-0:27017/?TLS=true", ""),
        ("mongodb+srv://sanad-mongodb-svc.sanad.svc.cluster.local/admin", ""),
        ("mongodb://m-0:27017/admin?tlsCAFile=/certs/ca.pem", ""),
        ("mongodb://m-0:27017/admin", "/certs/ca.pem"),
        ("mongodb://m-0:27017/admin?tls=false", "/certs/ca.pem"),  # tls=True from settings wins
    ],
)
def test_production_takes_mongodb_over_tls_however_it_is_turned_on(
    mongo_url: str, ca_file: str
) -> None:
    ServerSettings(**{**SAFE, "mongo_url": mongo_url, "mongo_tls_ca_file": ca_file})


def test_a_client_certificate_alone_turns_mongodb_tls_on() -> None:
    ServerSettings(
        **{
            **SAFE,
            "mongo_url": "mongodb://m-0:27017/admin",
            "mongo_tls_ca_file": "",
            "mongo_tls_cert_key_file": "/certs/intake-with-key.pem",
        }
    )


@pytest.mark.parametrize("settings", [RegistrySettings, MetricsSettings])
def test_services_without_a_broker_connection_need_no_amqp_url_in_production(
    settings: type[ServerSettings],
) -> None:
    unset = {k: v for k, v in SAFE.items() if k != "amqp_url"}
    settings(**unset)  # the guest default URL, plaintext too, is never dialled there
    with pytest.raises(ValidationError, match="guest"):
        IntakeSettings(**unset)


def test_a_certificate_without_its_key_is_refused_in_any_profile() -> None:
    with pytest.raises(ValidationError, match="go together"):
        ServerSettings(tls_cert_file="/certs/a.pem")


def test_mutual_tls_without_a_ca_is_refused() -> None:
    with pytest.raises(ValidationError, match="CLIENT_AUTH"):
        ServerSettings(tls_cert_file="/a.pem", tls_key_file="/a.key", tls_client_auth=True)


def test_settings_come_from_sanad_environment_variables(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SANAD_AUTH_MODE", "required")
    monkeypatch.setenv("SANAD_RATE_LIMIT_PER_S", "5")
    settings = ServerSettings()
    assert settings.auth_mode is AuthMode.REQUIRED
    assert settings.rate_limit_per_s == 5


def test_mongo_tls_files_become_pymongo_options() -> None:
    settings = ServerSettings(mongo_tls_ca_file="/ca.pem", mongo_tls_cert_key_file="/me.pem")
    assert mongo.tls_options(settings) == {
        "tls": True,
        "tlsCAFile": "/ca.pem",
        "tlsCertificateKeyFile": "/me.pem",
    }
    assert mongo.tls_options(ServerSettings()) == {}


async def test_every_mongodb_reply_is_awaited_for_a_bounded_time() -> None:
    client = mongo.connect(ServerSettings(mongo_socket_timeout_ms=1234), "test")
    try:
        assert client.options.pool_options.socket_timeout == 1.234
        assert client.options.pool_options.connect_timeout == 5.0
    finally:
        await client.close()
