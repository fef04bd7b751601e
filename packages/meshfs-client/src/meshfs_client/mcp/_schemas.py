"""Arguments and results of the MCP tools, as msgspec Structs.

Each tool's input and output JSON Schema is generated from these classes, and the arguments an
agent sends are decoded into them (unknown or mistyped fields are refused with a message that
names them), so what the schema promises and what the tool accepts cannot drift apart.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

import msgspec

from meshfs_common.models import Entry, Version

Path = Annotated[str, msgspec.Meta(description="MeshFS path, e.g. /proj/notes.md")]
Line = Annotated[int, msgspec.Meta(ge=1)]
IfMatch = Annotated[
    str | None,
    msgspec.Meta(description="only succeed when the file's head is still this version_id"),
]


class Args(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """Base of every tool's arguments: unknown fields are an error, not silently ignored."""


class Output(msgspec.Struct, kw_only=True):
    """Base of every tool's structured result."""


# --- arguments ---------------------------------------------------------------------------------


class ReadArgs(Args):
    """Read a text file, optionally only some lines."""

    path: Path
    start_line: Annotated[Line, msgspec.Meta(description="first line, 1-based")] = 1
    end_line: Annotated[Line | None, msgspec.Meta(description="last line, inclusive")] = None
    version_id: Annotated[str | None, msgspec.Meta(description="an older version")] = None


class WriteArgs(Args):
    """Create or replace a text file (every write is a new version)."""

    path: Path
    content: Annotated[str, msgspec.Meta(description="the whole new text (UTF-8)")]
    if_match: IfMatch = None
    create_only: Annotated[bool, msgspec.Meta(description="fail if the file exists")] = False


class EditArgs(Args):
    """Replace an exact piece of text in a file."""

    path: Path
    old_text: Annotated[str, msgspec.Meta(description="exact text to find; must be unique")]
    new_text: str
    replace_all: Annotated[bool, msgspec.Meta(description="replace every occurrence")] = False
    if_match: IfMatch = None


class PathArgs(Args):
    """A single path."""

    path: Path


class ListArgs(Args):
    """List one directory."""

    path: Path = "/"
    include_deleted: Annotated[bool, msgspec.Meta(description="also deleted entries")] = False
    limit: Annotated[int, msgspec.Meta(ge=1, le=5000)] = 1000


class TreeArgs(Args):
    """The tree below a directory, to a depth."""

    path: Path = "/"
    depth: Annotated[int, msgspec.Meta(ge=1, le=20, description="levels below path")] = 3
    max_entries: Annotated[int, msgspec.Meta(ge=1, le=5000)] = 500


class SearchArgs(Args):
    """Find files by name (glob) and/or by content (grep)."""

    path: Path = "/"
    name: Annotated[
        str | None,
        msgspec.Meta(description="glob on the name, e.g. *.py (on the path if it has a /)"),
    ] = None
    text: Annotated[str | None, msgspec.Meta(description="text to find inside files")] = None
    regex: Annotated[bool, msgspec.Meta(description="text is a regular expression")] = False
    ignore_case: bool = False
    max_results: Annotated[int, msgspec.Meta(ge=1, le=1000)] = 100


class MkdirArgs(Args):
    """Create a directory."""

    path: Path
    parents: Annotated[bool, msgspec.Meta(description="also create missing parents")] = True


class MoveArgs(Args):
    """Move or rename a file or directory."""

    path: Path
    new_path: Path
    overwrite: Annotated[bool, msgspec.Meta(description="replace an existing target")] = False
    if_match: IfMatch = None


class DeleteArgs(Args):
    """Delete a file, or a directory with recursive (history is kept; restore undoes it)."""

    path: Path
    recursive: bool = False
    if_match: IfMatch = None


class VersionsArgs(Args):
    """A file's versions, newest first."""

    path: Path
    limit: Annotated[int, msgspec.Meta(ge=1, le=1000)] = 20


class RestoreArgs(Args):
    """Make an old version the head again (also undeletes)."""

    path: Path
    version_id: str
    to_path: Annotated[str | None, msgspec.Meta(description="restore under another path")] = None


class DiffArgs(Args):
    """Unified diff between two versions of a file (default: previous version -> head)."""

    path: Path
    v1: Annotated[str | None, msgspec.Meta(description="older version_id")] = None
    v2: Annotated[str | None, msgspec.Meta(description="newer version_id (default: head)")] = None


class ChangesArgs(Args):
    """Everything changed under a path since a cursor or a time, grouped per file."""

    path: Path = "/"
    since_cursor: Annotated[int, msgspec.Meta(ge=0, description="change-feed cursor")] | None = None
    since_time: (
        Annotated[
            datetime,
            msgspec.Meta(tz=True, description="RFC 3339 time with a zone, e.g. 2026-05-01T09:00Z"),
        ]
        | None
    ) = None


# --- results -----------------------------------------------------------------------------------


class ReadOutput(Output):
    """A window of a text file, or the description of a binary one."""

    path: str
    version_id: str | None
    size: int
    mime_type: str
    binary: bool
    text: str | None = None
    start_line: int = 0
    end_line: int = 0
    total_lines: int = 0
    truncated: bool = False


class WriteOutput(Output):
    """The version a write or edit committed."""

    path: str
    version_id: str
    size: int
    created_version: bool


class EditOutput(WriteOutput):
    """An edit: the new version and the change as a unified diff."""

    replacements: int
    diff: str


class ListOutput(Output):
    """One directory's entries, sorted by name."""

    path: str
    entries: list[Entry]
    truncated: bool


class TreeNode(Output):
    """One entry of a tree."""

    path: str
    kind: str
    depth: int
    size: int = 0


class TreeOutput(Output):
    """The tree below a path (``text`` is an indented drawing of ``entries``)."""

    path: str
    text: str
    entries: list[TreeNode]
    truncated: bool


class SearchMatch(Output):
    """A file whose name matched, or one matching line of it (``line`` set)."""

    path: str
    line: int | None = None
    text: str | None = None


class SearchOutput(Output):
    """Matches in tree order; ``truncated`` when the result cap stopped the search."""

    matches: list[SearchMatch]
    truncated: bool
    files_searched: int


class EntryOutput(Output):
    """A file or directory."""

    entry: Entry


class DeleteOutput(Output):
    """What a delete tombstoned."""

    entry: Entry
    deleted_nodes: int


class VersionsOutput(Output):
    """A file's versions, newest first; ``writer`` says who wrote each (person or agent)."""

    path: str
    node_id: str
    versions: list[Version]
    has_more: bool


def object_schema(model: type[msgspec.Struct]) -> dict[str, Any]:
    """The JSON Schema of *model* with the object at the top level (as MCP requires) and the
    models it refers to under ``$defs``."""
    _, components = msgspec.json.schema_components([model], ref_template="#/$defs/{name}")
    top = dict(components.pop(model.__name__))
    if components:
        top["$defs"] = components
    return top
