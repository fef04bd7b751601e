"""Wire models (meshfs_common.models): JSON round trips and tolerant decoding."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import msgspec
import pytest
from hypothesis import given
from hypothesis import strategies as st

from meshfs_common import models
from meshfs_common.models import decode, encode

T0 = datetime(2025, 1, 2, 3, 4, 5, 678901, tzinfo=UTC)
WRITER = models.Writer(user_id="u1", session_id="s1", device_name="laptop")
ENTRY = models.Entry(
    node_id="n1",
    path="/docs/a.txt",
    name="a.txt",
    kind="file",
    created_at=T0,
    modified_at=T0 + timedelta(seconds=1),
    size=12,
    version_id="v1",
    content_hash="ab" * 32,
    mode=0o644,
    uid=1000,
    gid=1000,
    mtime_ns=1_735_787_046_678_901_000,
    atime_ns=1_735_787_046_678_901_000,
    ctime_ns=1_735_787_046_678_901_123,
)
LINK = models.Entry(
    node_id="n2", path="/docs/l", name="l", kind="symlink", created_at=T0, modified_at=T0,
    mode=0o777, target="a.txt",
)  # fmt: skip
DIR = models.Entry(
    node_id="n0", path="/docs", name="docs", kind="dir", created_at=T0, modified_at=T0
)
VERSION = models.Version(
    version_id="v1", node_id="n1", size=12, content_hash="ab" * 32, created_at=T0, writer=WRITER
)
SIDE = models.DiffSide(
    version_id="v1",
    size=12,
    content_hash="ab" * 32,
    media_type="text/plain",
    created_at=T0,
    writer=WRITER,
)
CHANGE = models.FileChange(
    path="/docs/b.txt",
    node_id="n1",
    kind="file",
    status="renamed",
    old_path="/docs/a.txt",
    old_version_id="v0",
    version_id="v1",
    size=12,
    content_changed=True,
    added=2,
    removed=1,
    writers=[WRITER],
    first_seq=4,
    last_seq=7,
)
SNAPSHOT = models.Snapshot(
    snapshot_id="s1",
    name="before",
    path="/docs",
    node_id="n0",
    cursor=3,
    created_at=T0,
    created_by=WRITER,
    files=2,
    directories=1,
    bytes=24,
)
EVENT = models.ChangeEvent(
    seq=7,
    type="rename",
    node_id="n1",
    kind="file",
    path="/docs/b.txt",
    old_path="/docs/a.txt",
    at=T0,
    writer=WRITER,
)

EXAMPLES: dict[type[models.Model], models.Model] = {
    models.ErrorBody: models.ErrorBody(
        error="not_found", error_description="no such file", detail={"path": "/a", "n": [1, 2]}
    ),
    models.Writer: WRITER,
    models.Entry: ENTRY,
    models.ListPage: models.ListPage(
        path="/docs", entries=[ENTRY, DIR, LINK], has_more=True, next_after="a.txt"
    ),
    models.MkdirRequest: models.MkdirRequest(path="/a/b", parents=False),
    models.AttributesRequest: models.AttributesRequest(
        path="/a", mode=0o4755, uid=1000, gid=100, mtime_ns=1_700_000_000_123_456_789, atime_ns=0
    ),
    models.SymlinkRequest: models.SymlinkRequest(path="/l", target="../x//y", uid=1),
    models.MknodRequest: models.MknodRequest(path="/d", kind="chardev", mode=0o600, rdev=259),
    models.DirectDownload: models.DirectDownload(
        version_id="V",
        node_id="N",
        size=5,
        content_hash="c" * 64,
        chunk_size=4 << 20,
        chunks=["d" * 64],
        urls=["http://store.test/t/dd/dddd?X-Amz-Signature=s"],
        expires_in=900,
    ),
    models.RenameRequest: models.RenameRequest(path="/a", new_path="/b", exchange=True),
    models.CopyRequest: models.CopyRequest(path="/a", new_path="/b", overwrite=True),
    models.FsStats: models.FsStats(
        total_bytes=10 << 30,
        files=3,
        directories=2,
        used_bytes=150,
        free_bytes=9 << 30,
        chunk_size=4 * 1024 * 1024,
    ),
    models.VersionChunks: models.VersionChunks(
        node_id="n1",
        version_id="v1",
        size=5,
        content_hash="cd" * 32,
        chunk_size=4 * 1024 * 1024,
        chunks=["ef" * 32],
    ),
    models.LinkRequest: models.LinkRequest(path="/a", new_path="/b"),
    models.XattrInfo: models.XattrInfo(name="user.origin", size=12),
    models.XattrList: models.XattrList(
        path="/a", node_id="n1", xattrs=[models.XattrInfo(name="user.origin", size=12)]
    ),
    models.DeleteResult: models.DeleteResult(
        entry=models.Entry(**{**msgspec.structs.asdict(ENTRY), "deleted_at": T0}),
        deleted_nodes=3,
    ),
    models.RestoreRequest: models.RestoreRequest(path="/restored.txt"),
    models.Version: VERSION,
    models.VersionPage: models.VersionPage(node_id="n1", versions=[VERSION], next_before="v0"),
    models.CommitResult: models.CommitResult(entry=ENTRY, version=VERSION, created_version=True),
    models.UploadInitRequest: models.UploadInitRequest(
        path="/big.bin",
        size=5,
        content_hash="cd" * 32,
        base_version="v1",
        replace={0: "ef" * 32},
    ),
    models.UploadInitResponse: models.UploadInitResponse(
        upload_id="up1", chunk_size=4 * 1024 * 1024, missing=[0, 2], expires_at=T0
    ),
    models.UploadPartResponse: models.UploadPartResponse(
        upload_id="up1", index=2, chunk="ef" * 32, missing=[0]
    ),
    models.UploadCommitRequest: models.UploadCommitRequest(upload_id="up1"),
    models.ChangeEvent: EVENT,
    models.PullResponse: models.PullResponse(events=[EVENT], cursor=7, has_more=True),
    models.StreamMessage: models.StreamMessage(type="event", cursor=7, event=EVENT),
    models.DeviceStartRequest: models.DeviceStartRequest(client_name="cli", scope="files"),
    models.DeviceStartResponse: models.DeviceStartResponse(
        device_code="dc",
        user_code="ABCD-EFGH",
        verification_uri="http://127.0.0.1/activate",
        verification_uri_complete="http://127.0.0.1/activate?user_code=ABCD-EFGH",
        expires_in=600,
        interval=5,
    ),
    models.DevicePollRequest: models.DevicePollRequest(device_code="dc"),
    models.DeviceActivateRequest: models.DeviceActivateRequest(
        user_code="ABCD-EFGH", approve=False
    ),
    models.TokenResponse: models.TokenResponse(
        access_token="at",
        expires_in=900,
        user_id="u1",
        tenant_id="t1",
        session_id="s1",
        refresh_token="rt",
    ),
    models.RefreshRequest: models.RefreshRequest(refresh_token="rt"),
    models.LogoutRequest: models.LogoutRequest(refresh_token="rt"),
    models.Whoami: models.Whoami(
        user_id="u1", username="ada", tenant_id="t1", tenant_name="home", scope="files"
    ),
    models.Health: models.Health(status="degraded", version="0.1.0", checks={"db": "ok"}),
    models.ToolCallRecord: models.ToolCallRecord(
        tool="edit", target="/docs/a.txt", outcome="error:not_found"
    ),
    models.DiffSide: SIDE,
    models.FileDiff: models.FileDiff(
        path="/docs/a.txt",
        node_id="n1",
        old=models.DiffSide(),
        new=SIDE,
        identical=False,
        unified="--- /dev/null\n+++ b/docs/a.txt@v1\n@@ -0,0 +1 @@\n+hello\n",
        added=1,
        text_limit=1 << 20,
    ),
    models.FileChange: CHANGE,
    models.ChangeSummary: models.ChangeSummary(
        path="/docs", from_cursor=3, to_cursor=7, changes=[CHANGE], history_trimmed=True
    ),
    models.SnapshotCreateRequest: models.SnapshotCreateRequest(path="/docs", name="before"),
    models.Snapshot: SNAPSHOT,
    models.SnapshotList: models.SnapshotList(snapshots=[SNAPSHOT]),
    models.SnapshotDiff: models.SnapshotDiff(snapshot=SNAPSHOT, cursor=9, changes=[CHANGE]),
    models.SnapshotRestoreResult: models.SnapshotRestoreResult(
        snapshot=SNAPSHOT, undo=SNAPSHOT, cursor=10, changes=[CHANGE]
    ),
}


def _all_models() -> list[type[models.Model]]:
    return [
        value
        for value in vars(models).values()
        if isinstance(value, type)
        and issubclass(value, models.Model)
        and value is not models.Model
        and value.__module__ == models.__name__
    ]


def test_every_model_has_an_example() -> None:
    # A new model must be added to EXAMPLES so that it is round-tripped below.
    assert set(_all_models()) == set(EXAMPLES)


@pytest.mark.parametrize("model", list(EXAMPLES), ids=lambda m: m.__name__)
def test_round_trip(model: type[models.Model]) -> None:
    value = EXAMPLES[model]
    data = encode(value)
    assert decode(data, model) == value
    assert decode(data.decode(), model) == value  # str input too


@pytest.mark.parametrize("model", list(EXAMPLES), ids=lambda m: m.__name__)
def test_unknown_fields_are_ignored(model: type[models.Model]) -> None:
    # Older clients must keep working when a newer server adds fields.
    value = EXAMPLES[model]
    body = json.loads(encode(value))
    body["field_from_the_future"] = {"nested": [1, 2, 3]}
    assert decode(json.dumps(body), model) == value


def _required(model: type[models.Model]) -> list[str]:
    info = msgspec.inspect.type_info(model)
    assert isinstance(info, msgspec.inspect.StructType)
    return [f.encode_name for f in info.fields if f.required]


@pytest.mark.parametrize(
    ("model", "field"),
    [(m, f) for m in EXAMPLES for f in _required(m)],
    ids=lambda x: x if isinstance(x, str) else x.__name__,
)
def test_missing_required_field_is_a_validation_error(
    model: type[models.Model], field: str
) -> None:
    body = json.loads(encode(EXAMPLES[model]))
    del body[field]
    with pytest.raises(msgspec.ValidationError, match=field):
        decode(json.dumps(body), model)


def test_optional_fields_may_be_absent_on_the_wire() -> None:
    # A minimal body (what an older peer sends) decodes with the documented defaults.
    page = decode(b'{"path": "/", "entries": []}', models.ListPage)
    assert page == models.ListPage(path="/", entries=[], has_more=False, next_after=None)
    entry = decode(
        b'{"node_id": "n0", "path": "/docs", "name": "docs", "kind": "dir",'
        b' "created_at": "2025-01-02T03:04:05.678901Z",'
        b' "modified_at": "2025-01-02T03:04:05.678901Z"}',
        models.Entry,
    )
    assert entry == DIR
    assert entry.size == 0
    assert entry.version_id is None


def test_times_are_rfc3339_utc() -> None:
    body = json.loads(encode(ENTRY))
    assert body["created_at"] == "2025-01-02T03:04:05.678901Z"
    parsed = decode(
        b'{"seq":1,"type":"mkdir","node_id":"n","kind":"dir","path":"/d",'
        b'"at":"2025-01-02T05:04:05+02:00"}',
        models.ChangeEvent,
    )
    assert parsed.at == datetime(2025, 1, 2, 3, 4, 5, tzinfo=UTC)


@pytest.mark.parametrize(
    ("model", "patch"),
    [
        (models.Entry, {"kind": "door"}),
        (models.Entry, {"mode": "0644"}),
        (models.MknodRequest, {"kind": "file"}),
        (models.Entry, {"size": "12"}),
        (models.ChangeEvent, {"type": "chmod"}),
        (models.ChangeEvent, {"seq": 1.5}),
        (models.StreamMessage, {"type": "bogus"}),
        (models.Health, {"status": "fine"}),
    ],
)
def test_wrong_types_and_literals_are_validation_errors(
    model: type[models.Model], patch: dict[str, Any]
) -> None:
    body = {**json.loads(encode(EXAMPLES[model])), **patch}
    with pytest.raises(msgspec.ValidationError):
        decode(json.dumps(body), model)


def test_malformed_json_is_a_decode_error() -> None:
    with pytest.raises(msgspec.DecodeError):
        decode(b'{"path": "/", "entries": [', models.ListPage)


names = st.text(min_size=1, max_size=20)
times = st.datetimes(
    min_value=datetime(1970, 1, 2), max_value=datetime(9999, 1, 1), timezones=st.just(UTC)
)
entries = st.builds(
    models.Entry,
    node_id=names,
    path=names,
    name=names,
    kind=st.sampled_from(["file", "dir"]),
    created_at=times,
    modified_at=times,
    size=st.integers(min_value=0, max_value=2**63 - 1),
    version_id=st.none() | names,
    content_hash=st.none() | names,
    deleted_at=st.none() | times,
)
events = st.builds(
    models.ChangeEvent,
    seq=st.integers(min_value=1, max_value=2**63 - 1),
    type=st.sampled_from(["mkdir", "write", "rename", "delete", "restore"]),
    node_id=names,
    kind=st.sampled_from(["file", "dir"]),
    path=names,
    at=times,
    old_path=st.none() | names,
    size=st.none() | st.integers(min_value=0, max_value=2**40),
    writer=st.none() | st.builds(models.Writer, user_id=names, agent_name=st.none() | names),
)


@given(st.lists(entries, max_size=5), st.booleans(), st.none() | names)
def test_list_pages_round_trip(
    items: list[models.Entry], has_more: bool, after: str | None
) -> None:
    page = models.ListPage(path="/", entries=items, has_more=has_more, next_after=after)
    assert decode(encode(page), models.ListPage) == page


@given(st.lists(events, max_size=5), st.integers(min_value=0, max_value=2**63 - 1))
def test_pull_responses_round_trip(items: list[models.ChangeEvent], cursor: int) -> None:
    pull = models.PullResponse(events=items, cursor=cursor)
    assert decode(encode(pull), models.PullResponse) == pull


def test_non_utc_offsets_keep_the_instant() -> None:
    plus2 = datetime(2025, 1, 2, 5, 4, 5, tzinfo=timezone(timedelta(hours=2)))
    event = models.ChangeEvent(seq=1, type="mkdir", node_id="n", kind="dir", path="/d", at=plus2)
    assert decode(encode(event), models.ChangeEvent).at == T0.replace(microsecond=0)
