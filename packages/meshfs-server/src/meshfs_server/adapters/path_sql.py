"""A path resolved in one statement, the same on SQLite and Postgres.

:func:`chain_statement` joins one ``nodes`` row per name: the first is the live child of a
given directory, each next one the live child of the one before, every one but the last a
directory; the last is read as its node (:data:`~meshfs_server.adapters.link_sql.NODE_READ`:
a hard link reads as its file, and ``nlink`` is counted for that one node only, never for the
directories on the way). A row comes back only when the whole path is there; the caller walks
name by name only to tell a missing name from a file (or a symbolic link) on the way, which is
the rare case. Every joined row is matched on the tenant.

A row's own ``kind`` decides whether the chain goes on: a hard link's row always says
``'file'`` and no directory has links, so the row's kind is ``'dir'`` exactly when the name is
a directory.

At most :data:`CHAIN_LIMIT` names go into one statement (a deeper path takes one statement per
that many names): Postgres plans a join of more tables than ``geqo_threshold`` (12) by a
randomised search, and SQLite joins at most 64.
"""

from __future__ import annotations

from meshfs_server.adapters.link_sql import NODE_FROM, NODE_READ

#: The most names one statement walks.
CHAIN_LIMIT = 8

_STATEMENTS: dict[int, str] = {}


def chain_statement(count: int) -> str:
    """The statement that walks *count* names (1 to :data:`CHAIN_LIMIT`) down from a
    directory; its parameters are :func:`chain_params`."""
    found = _STATEMENTS.get(count)
    if found is None:
        if not 1 <= count <= CHAIN_LIMIT:
            raise ValueError(f"a chain walks 1 to {CHAIN_LIMIT} names, not {count}")
        aliases = [f"n{i}" for i in range(1, count)] + ["e"]
        # CROSS JOIN fixes the order on SQLite (on Postgres it is a plain join): from the
        # first name down, each row found by its parent and name through an index. Left to
        # itself, SQLite (no statistics) began at the last name with only the tenant known
        # and scanned every node of the tenant: a stat cost grew with the tenant's size.
        tables = "".join(f"nodes {a} CROSS JOIN " for a in aliases[:-1])
        where: list[str] = []
        for i, alias in enumerate(aliases):
            parent = "?" if i == 0 else f"{aliases[i - 1]}.node_id"
            where.append(
                f"{alias}.tenant_id = ? AND {alias}.parent_id = {parent}"
                f" AND {alias}.name = ? AND {alias}.deleted_at IS NULL"
            )
            if alias != "e":
                where.append(f"{alias}.kind = 'dir'")
        found = _STATEMENTS[count] = (
            f"SELECT {NODE_READ} FROM {tables}{NODE_FROM} WHERE {' AND '.join(where)}"
        )
    return found


def chain_params(tenant_id: str, parent_id: str, names: tuple[str, ...]) -> tuple[str, ...]:
    """The parameters of :func:`chain_statement` for *names* under the directory *parent_id*."""
    params = [tenant_id, parent_id, names[0]]
    for name in names[1:]:
        params += (tenant_id, name)
    return tuple(params)
