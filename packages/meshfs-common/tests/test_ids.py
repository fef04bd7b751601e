"""Identifiers (meshfs_common.ids)."""

from __future__ import annotations

import pytest

from meshfs_common import ids
from meshfs_common.ids import is_id, new_id

CROCKFORD = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"


def _decode(text: str) -> int:
    value = 0
    for char in text:
        value = value * 32 + CROCKFORD.index(char)
    return value


def test_shape() -> None:
    for _ in range(1000):
        value = new_id()
        assert len(value) == 26
        assert set(value) <= set(CROCKFORD)
        assert is_id(value)


def test_ids_are_unique() -> None:
    made = [new_id() for _ in range(20_000)]
    assert len(set(made)) == len(made)


def test_time_prefix_is_the_millisecond_clock(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(ids.time, "time", lambda: 1_700_000_000.123)
    value = new_id()
    # 26 chars = 130 bits: 2 zero bits, 48 bits of milliseconds, 80 random bits.
    assert _decode(value[:10]) == 1_700_000_000_123
    assert value[0] in "01234567"


def test_ids_sort_by_creation_time(monkeypatch: pytest.MonkeyPatch) -> None:
    clock = iter(1_700_000_000 + i / 1000 for i in range(0, 5000, 7))
    made = []
    for now in clock:
        monkeypatch.setattr(ids.time, "time", lambda now=now: now)
        made.append(new_id())
    assert sorted(made) == made


def test_ids_made_in_one_millisecond_differ_in_the_random_part(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(ids.time, "time", lambda: 1_700_000_000.5)
    made = {new_id() for _ in range(1000)}
    assert len(made) == 1000
    assert len({m[:10] for m in made}) == 1


@pytest.mark.parametrize(
    "text",
    [
        "",
        "0" * 25,
        "0" * 27,
        "0" * 25 + "I",
        "0" * 25 + "L",
        "0" * 25 + "O",
        "0" * 25 + "U",
        "0" * 25 + "a",
        "0" * 25 + "-",
    ],
)
def test_is_id_refuses_other_shapes(text: str) -> None:
    assert not is_id(text)
