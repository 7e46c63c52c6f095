"""Failing one service's MongoDB commands on purpose, and reading the audit trail they leave.

The failpoint-enabled server comes from conftest's `failpoint_database`. `failCommand` matches
the connections of one application name (each service's client names itself), so the test's
own view of the database, opened here under another name, is never failed.
"""

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from pymongo import AsyncMongoClient

from sanad.mongo import Document
from sanad.security.audit import COLLECTION


@asynccontextmanager
async def own_view(mongo_url: str, database: str) -> AsyncIterator[Any]:
    """The test's view of the database, on connections the failpoints never match; every
    failpoint is off again when it closes."""
    client: AsyncMongoClient[Document] = AsyncMongoClient(
        mongo_url, appname="atomicity-test", tz_aware=True
    )
    try:
        yield client[database]
    finally:
        await heal(client[database])
        await client.close()


async def fail(db: Any, app: str, command: str, mode: Any, **data: Any) -> None:
    """Fail `app`'s `command`s as `mode` says (alwaysOn, {times}, {skip}...)."""
    await db.client.admin.command(
        "configureFailPoint",
        "failCommand",
        mode=mode,
        data={"failCommands": [command], "appName": app, **data},
    )


async def heal(db: Any) -> None:
    await db.client.admin.command("configureFailPoint", "failCommand", mode="off")


async def events_of(db: Any, request_id: str) -> list[tuple[str, dict[str, str]]]:
    """The outcomes and targets of the trail's events of one request id, oldest first."""
    found = db[COLLECTION].find({"request_id": request_id}).sort("_id", 1)
    return [(e["outcome"], e["target"]) for e in await found.to_list()]
