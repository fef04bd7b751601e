"""Query parameters are read the way Starlette reads them, whichever path parses them."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st
from starlette.datastructures import QueryParams

from meshfs_server.http.codec import parse_query

# Names and values as clients send them: plain, percent-escaped, with '+', '=', empty parts.
_PART = st.text(alphabet="ab/.-_~=+%2Fé&", max_size=12)


@given(st.lists(_PART, max_size=6).map("&".join))
def test_every_query_reads_as_starlette_reads_it(query: str) -> None:
    raw = query.encode("utf-8")
    expected = QueryParams(raw)
    assert parse_query(raw) == {name: expected[name] for name in expected}


def test_a_repeated_name_answers_its_last_value() -> None:
    assert parse_query(b"path=/a&path=/b")["path"] == "/b"
    assert parse_query(b"path=/a%20b&path=/c+d")["path"] == "/c d"


def test_a_name_without_a_value_is_present_and_empty() -> None:
    assert parse_query(b"recursive&path=/x") == {"recursive": "", "path": "/x"}
