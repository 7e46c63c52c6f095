"""The registry takes bearer tokens of a rotated signing key without a restart, and refuses the
retired key's once the JWKS no longer lists it."""

import asyncio
import json
import os
from collections.abc import AsyncIterator
from pathlib import Path

import grpc
import pytest

from sanad.v1 import registry_pb2, registry_pb2_grpc
from services.registry.app import build_app as build_registry
from services.registry.settings import RegistrySettings
from tests.integration.conftest import in_process_settings
from tests.integration.registry_support import visa_renewal
from tests.unit.signing_keys import SigningKey, jwks

pytestmark = pytest.mark.integration

RELOAD_S = 0.2


def replace(path: Path, data: bytes) -> None:
    """Write the key file as Kubernetes does: the new version swapped in by a symlink."""
    version = path.parent / f"..{os.urandom(4).hex()}"
    version.mkdir()
    (version / path.name).write_bytes(data)
    staged = path.parent / "..data_tmp"
    staged.symlink_to(version.name)
    os.replace(staged, path.parent / "..data")


@pytest.fixture
async def registry(
    mongo_url: str, database_name: str, tmp_path: Path, pki: Path
) -> AsyncIterator[tuple[registry_pb2_grpc.RegistryServiceStub, Path]]:
    """A registry whose JWKS starts with make certs' key, mounted as a Kubernetes Secret is."""
    keys = tmp_path / "jwks.json"
    (tmp_path / "..data").symlink_to("..start")
    (tmp_path / "..start").mkdir()
    (tmp_path / "..start" / "jwks.json").write_bytes((pki / "jwt-signing.jwks.json").read_bytes())
    keys.symlink_to("..data/jwks.json")
    settings = in_process_settings(
        mongo_url,
        database_name,
        auth_mode="required",
        auth_jwt_public_key_file=str(keys),
        auth_jwt_keys_reload_s=RELOAD_S,
    )
    app = build_registry(RegistrySettings(**settings))
    port = await app.start(0)
    async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
        yield registry_pb2_grpc.RegistryServiceStub(channel), keys
    await app.stop()


async def answer(stub: registry_pb2_grpc.RegistryServiceStub, token: str) -> str:
    try:
        await stub.ListAgencies(
            registry_pb2.ListAgenciesRequest(),
            metadata=(("authorization", f"Bearer {token}"),),
            timeout=10,
        )
    except grpc.aio.AioRpcError as error:
        return f"{error.code().name}: {error.details()}"
    return "OK"


async def test_a_rotated_signing_key_is_taken_and_the_retired_one_refused(
    registry: tuple[registry_pb2_grpc.RegistryServiceStub, Path], pki: Path
) -> None:
    stub, keys = registry
    dev = (pki / "tokens" / "admin.jwt").read_text().strip()  # names make certs' kid
    dev_jwk = json.loads(keys.read_bytes())["keys"][0]
    new = SigningKey()
    assert await answer(stub, dev) == "OK"
    assert (await answer(stub, new.named())).startswith("UNAUTHENTICATED: bad bearer token: unk")

    replace(keys, jwks(dev_jwk, new.jwk))  # the next key published beside the current one
    await asyncio.sleep(RELOAD_S * 2)
    assert await answer(stub, new.named()) == "OK"
    assert await answer(stub, dev) == "OK"

    replace(keys, b"{ half-written")  # a bad update: the keys in use stay
    await asyncio.sleep(RELOAD_S * 2)
    assert await answer(stub, new.named()) == "OK"

    replace(keys, jwks(new.jwk))  # the old key retired
    await asyncio.sleep(RELOAD_S * 2)
    assert await answer(stub, new.named()) == "OK"
    assert (await answer(stub, dev)).startswith("UNAUTHENTICATED: bad bearer token: unknown key id")


async def test_an_open_stream_ends_once_its_tokens_key_is_retired(
    registry: tuple[registry_pb2_grpc.RegistryServiceStub, Path], pki: Path
) -> None:
    stub, keys = registry
    dev = (pki / "tokens" / "admin.jwt").read_text().strip()
    dev_jwk = json.loads(keys.read_bytes())["keys"][0]
    new = SigningKey()
    replace(keys, jwks(dev_jwk, new.jwk))
    await asyncio.sleep(RELOAD_S * 2)
    watch = stub.WatchCatalog(
        registry_pb2.WatchCatalogRequest(since_revision=0),
        metadata=(("authorization", f"Bearer {dev}"),),
    )
    while not (await asyncio.wait_for(watch.read(), timeout=10)).HasField("synced"):
        pass

    replace(keys, jwks(new.jwk))  # the dev key retired while its token's stream is open
    await asyncio.sleep(RELOAD_S * 3)
    await stub.AddCatalogService(
        registry_pb2.AddCatalogServiceRequest(
            service=visa_renewal(f"ROP-{os.urandom(4).hex().upper()}")
        ),
        metadata=(("authorization", f"Bearer {new.named()}"),),
        timeout=10,
    )

    # The change is not sent to the retired key's token: the stream ends instead.
    with pytest.raises(grpc.aio.AioRpcError) as ended:
        await asyncio.wait_for(watch.read(), timeout=10)
    assert ended.value.code() is grpc.StatusCode.UNAUTHENTICATED
    assert "no longer holds: bad bearer token: unknown key id" in str(ended.value.details())
