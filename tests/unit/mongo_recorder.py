"""A recording stand-in for a pymongo database: every call a store makes is noted as the MongoDB
privilege action(s) it needs on its collection, so a test can hold the deployment's roles to
what the code actually does.

The action each call needs is mongod's own rule (its commands' authorization checks): find,
aggregate and count need `find`; insert `insert`; update and replace `update`, plus `insert`
when they upsert; findAndModify `find` + `update` (+ `insert` on upsert, `remove` when it
removes); createIndexes `createIndex`; listIndexes `listIndexes`; dropIndexes `dropIndex`.
A pymongo method not in the table fails the test, so new kinds of access cannot slip past.
"""

from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

from bson.codec_options import DEFAULT_CODEC_OPTIONS
from pymongo import DeleteMany, DeleteOne, InsertOne, ReplaceOne, UpdateMany, UpdateOne

from sanad.retired_indexes import RETIRED

Document = dict[str, Any]
Access = tuple[str, str]  # (collection, action)


def _upserting(kwargs: dict[str, Any]) -> set[str]:
    return {"insert"} if kwargs.get("upsert") else set()


def _bulk(operations: list[Any]) -> set[str]:
    actions: set[str] = set()
    for operation in operations:
        if isinstance(operation, InsertOne):
            actions.add("insert")
        elif isinstance(operation, UpdateOne | UpdateMany | ReplaceOne):
            actions.add("update")
            if operation._upsert:  # pymongo keeps the flag private
                actions.add("insert")
        elif isinstance(operation, DeleteOne | DeleteMany):
            actions.add("remove")
        else:
            raise TypeError(f"unmapped bulk operation {operation!r}")
    return actions


# pymongo collection method -> the actions it needs, from its arguments.
ACTIONS: dict[str, Callable[[tuple[Any, ...], dict[str, Any]], set[str]]] = {
    "find": lambda a, k: {"find"},
    "find_one": lambda a, k: {"find"},
    "aggregate": lambda a, k: {"find"},
    "count_documents": lambda a, k: {"find"},
    "distinct": lambda a, k: {"find"},
    "insert_one": lambda a, k: {"insert"},
    "insert_many": lambda a, k: {"insert"},
    "update_one": lambda a, k: {"update"} | _upserting(k),
    "update_many": lambda a, k: {"update"} | _upserting(k),
    "replace_one": lambda a, k: {"update"} | _upserting(k),
    "find_one_and_update": lambda a, k: {"find", "update"} | _upserting(k),
    "find_one_and_replace": lambda a, k: {"find", "update"} | _upserting(k),
    "find_one_and_delete": lambda a, k: {"find", "remove"},
    "delete_one": lambda a, k: {"remove"},
    "delete_many": lambda a, k: {"remove"},
    "bulk_write": lambda a, k: _bulk(list(a[0])),
    "create_index": lambda a, k: {"createIndex"},
    "create_indexes": lambda a, k: {"createIndex"},
    "index_information": lambda a, k: {"listIndexes"},
    "list_indexes": lambda a, k: {"listIndexes"},
    "drop_index": lambda a, k: {"dropIndex"},
    "drop_indexes": lambda a, k: {"dropIndex"},
    "drop": lambda a, k: {"dropCollection"},
}


class Cursor:
    """An empty (or seeded) cursor: chainable, listable, iterable."""

    def __init__(self, documents: list[Document]) -> None:
        self.documents = documents

    def sort(self, *_: Any, **__: Any) -> "Cursor":
        return self

    skip = limit = batch_size = sort

    async def close(self) -> None:
        pass

    async def to_list(self, *_: Any) -> list[Document]:
        return list(self.documents)

    def __aiter__(self) -> AsyncIterator[Document]:
        return self._iterate()

    async def _iterate(self) -> AsyncIterator[Document]:
        for document in self.documents:
            yield document


@dataclass
class Result:
    """What update_one, replace_one and bulk_write answer: every filter matched."""

    matched_count: int = 1


@dataclass
class RecordingCollection:
    """Notes each call's actions; answers as a collection whose filters all match, holding
    `documents` for reads (none unless seeded) and every retired index (so they get dropped)."""

    name: str
    accesses: set[Access]
    database: "RecordingDatabase"
    documents: list[Document] = field(default_factory=list)

    # Options change how documents are read, not what the call may do.
    codec_options = DEFAULT_CODEC_OPTIONS

    def with_options(self, **_: Any) -> "RecordingCollection":
        return self

    def __getattr__(self, method: str) -> Callable[..., Any]:
        if method.startswith("_"):
            raise AttributeError(method)
        if method not in ACTIONS:
            raise AssertionError(f"{self.name}.{method}: not a pymongo call this recorder maps")

        def call(*args: Any, **kwargs: Any) -> Any:
            self.accesses.update((self.name, a) for a in ACTIONS[method](args, kwargs))
            if method == "find":
                return Cursor(self.documents)
            return self._answer(method, args)

        return call

    async def _answer(self, method: str, args: tuple[Any, ...]) -> Any:
        answers: dict[str, Any] = {
            "find_one": self.documents[0] if self.documents else None,
            "find_one_and_update": {"_id": "x", "value": 1},
            "aggregate": Cursor([]),
            "distinct": ["value"],  # one value, so what a caller does with each is recorded
            "index_information": {name: {} for name in RETIRED.get(self.name, ())},
            "bulk_write": Result(len(list(args[0]))) if args else Result(),
        }
        return answers.get(method, Result())


class RecordingDatabase:
    """db[name] -> a RecordingCollection sharing one set of accesses."""

    def __init__(self, client: "RecordingClient") -> None:
        self.client = client
        self.accesses: set[Access] = set()
        self.collections: dict[str, RecordingCollection] = {}

    def __getitem__(self, name: str) -> RecordingCollection:
        if name not in self.collections:
            self.collections[name] = RecordingCollection(name, self.accesses, self)
        return self.collections[name]


class Session:
    """A client session whose transactions just run their body."""

    async def with_transaction(self, body: Callable[["Session"], Any]) -> Any:
        return await body(self)

    @asynccontextmanager
    async def _transaction(self) -> AsyncIterator[None]:
        yield

    async def start_transaction(self) -> Any:
        return self._transaction()

    async def abort_transaction(self) -> None:
        return None


class RecordingClient:
    """Hands out sessions; all data access goes through the RecordingDatabase."""

    @asynccontextmanager
    async def start_session(self) -> AsyncIterator[Session]:
        yield Session()
