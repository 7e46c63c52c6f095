"""A listing reply keeps the leading entities that fit the message limit and continues after
the last one it kept; one entity alone always goes out, so paging proceeds."""

from sanad.rpc.replies import fitted, reply_budget
from sanad.v1 import registry_pb2 as pb

LIMIT = 64 * 1024


def centres(count: int, name_length: int) -> list[pb.Center]:
    return [pb.Center(id=f"C{n:03d}", name_en="n" * name_length) for n in range(count)]


def by_id(center: pb.Center) -> str:
    return center.id


def test_a_page_that_fits_is_kept_whole_with_its_own_next_key() -> None:
    page = centres(10, 100)
    assert fitted(page, by_id, "C009", LIMIT) == (page, "C009")
    assert fitted(page, by_id, "", LIMIT) == (page, "")


def test_a_page_too_large_is_cut_and_continues_after_its_last_kept_entity() -> None:
    page = centres(20, 10_000)
    kept, after = fitted(page, by_id, "", LIMIT)
    assert 1 < len(kept) < 20
    assert kept == page[: len(kept)]
    assert after == kept[-1].id
    reply = pb.ListCentersResponse(centers=kept, next_page_token="t" * 100)
    assert reply.ByteSize() <= LIMIT
    with_next = pb.ListCentersResponse(centers=page[: len(kept) + 1])
    assert with_next.ByteSize() > reply_budget(LIMIT)


def test_one_entity_goes_out_alone_even_past_the_budget() -> None:
    page = centres(3, 62_000)
    assert fitted(page, by_id, "", LIMIT) == (page[:1], "C000")
