"""Identity tables, one migration list per dialect (SQLite and Postgres mirror each other).

Invariants, written where the schema is defined:

``tenants``
    An isolated namespace (the namespace tables key every row by ``tenant_id``). ``name`` is
    unique. ``plan`` is free|pro|team and is changed only by an administrator on the server
    (``meshfs-server admin set-plan``), never through the API, so nobody raises their own tier.
    ``retention_*`` columns override the plan's preset when set (owners only).
``users``
    Local accounts. ``password_hash`` is an argon2id PHC string, or NULL for a user that can
    only sign in by an administrator approving a device code. A ``disabled`` user's sessions
    stop working on their next request.
``memberships``
    (tenant, user) -> role owner|writer|reader. A user may belong to several tenants; a
    session is bound to one.
``device_codes``
    RFC 8628 pending logins. ``device_code_hash`` is SHA-256 of the secret the device polls
    with (the secret itself is never stored). ``user_code`` is what the person types; it is
    unique among codes that are not yet consumed/expired. status: pending -> approved|denied ->
    consumed; an approved code turns into exactly one session (single use).
``sessions``
    A signed-in device (``kind = 'device'``) or an agent token (``kind = 'agent'``). Access
    tokens carry ``sid``; every request checks that the session is not revoked, so revocation
    takes effect on the very next request. Agent sessions store ``token_hash`` (SHA-256 of the
    opaque bearer token), ``path_prefix``, ``can_write`` and ``expires_at``.
``refresh_tokens``
    Opaque refresh tokens stored as SHA-256 hashes. ``family`` = the session id: every rotation
    marks the presented token used and issues a successor in the same family; presenting a used
    token again revokes the whole family (the session) - that is theft detection.
``audit``
    Per-tenant log of every mutation and auth event (tenant_id may be NULL for events that
    cannot be attributed to a tenant, e.g. a failed sign-in with an unknown user).
``signing_keys`` (Postgres only)
    The access-token key ring shared by every server process (see ``keys.TableKeys``): one
    row per key, ``generation`` numbers them and the highest is current; ``jwk`` is the private
    Ed25519 JWK. On SQLite (one process) the ring is a file in the data directory instead.
``rate_buckets`` (Postgres only)
    One token bucket per key (``tenant:<id>``) shared by every server process: ``tokens`` as of
    ``updated_at`` (database clock, epoch seconds). Processes lease slices of it (see
    ``ratelimit.LeasedBuckets``); ``granted`` is the size of the last lease, returned by the
    same statement. On SQLite the buckets live in the memory of the one process.

The Postgres columns use the same names and compatible types as SQLite's (REAL -> DOUBLE
PRECISION, flags stay INTEGER 0/1), so identity's one body of SQL runs on both unchanged.
"""

from __future__ import annotations

from meshfs_server.auth.store import Dialect

IDENTITY_MIGRATIONS: list[str] = [
    """
    CREATE TABLE tenants (
        tenant_id TEXT PRIMARY KEY,
        name TEXT NOT NULL UNIQUE,
        plan TEXT NOT NULL DEFAULT 'free' CHECK (plan IN ('free', 'pro', 'team')),
        retention_max_versions INTEGER,
        retention_max_days INTEGER,
        retention_grace_days INTEGER,
        created_at REAL NOT NULL
    );
    CREATE TABLE users (
        user_id TEXT PRIMARY KEY,
        username TEXT NOT NULL UNIQUE,
        password_hash TEXT,
        disabled INTEGER NOT NULL DEFAULT 0,
        created_at REAL NOT NULL
    );
    CREATE TABLE memberships (
        tenant_id TEXT NOT NULL REFERENCES tenants (tenant_id),
        user_id TEXT NOT NULL REFERENCES users (user_id),
        role TEXT NOT NULL CHECK (role IN ('owner', 'writer', 'reader')),
        created_at REAL NOT NULL,
        PRIMARY KEY (tenant_id, user_id)
    );
    CREATE INDEX memberships_by_user ON memberships (user_id);
    CREATE TABLE device_codes (
        device_code_hash TEXT PRIMARY KEY,
        user_code TEXT NOT NULL,
        client_name TEXT NOT NULL,
        scope TEXT NOT NULL,
        created_at REAL NOT NULL,
        expires_at REAL NOT NULL,
        interval INTEGER NOT NULL,
        last_polled_at REAL,
        status TEXT NOT NULL CHECK (status IN ('pending', 'approved', 'denied', 'consumed')),
        user_id TEXT,
        tenant_id TEXT,
        client_address TEXT
    );
    CREATE INDEX device_codes_by_user_code ON device_codes (user_code, status);
    CREATE TABLE sessions (
        session_id TEXT PRIMARY KEY,
        kind TEXT NOT NULL CHECK (kind IN ('device', 'agent')),
        user_id TEXT NOT NULL REFERENCES users (user_id),
        tenant_id TEXT NOT NULL REFERENCES tenants (tenant_id),
        name TEXT NOT NULL,
        scope TEXT NOT NULL,
        created_at REAL NOT NULL,
        last_used_at REAL,
        expires_at REAL,
        revoked_at REAL,
        revoked_reason TEXT,
        token_hash TEXT UNIQUE,
        path_prefix TEXT NOT NULL DEFAULT '/',
        can_write INTEGER NOT NULL DEFAULT 1
    );
    CREATE INDEX sessions_by_user ON sessions (tenant_id, user_id);
    CREATE TABLE refresh_tokens (
        token_hash TEXT PRIMARY KEY,
        session_id TEXT NOT NULL REFERENCES sessions (session_id),
        family TEXT NOT NULL,
        created_at REAL NOT NULL,
        expires_at REAL NOT NULL,
        used_at REAL
    );
    CREATE INDEX refresh_tokens_by_family ON refresh_tokens (family);
    CREATE TABLE audit (
        audit_id INTEGER PRIMARY KEY AUTOINCREMENT,
        tenant_id TEXT,
        at REAL NOT NULL,
        action TEXT NOT NULL,
        outcome TEXT NOT NULL,
        user_id TEXT,
        session_id TEXT,
        device_name TEXT,
        agent_name TEXT,
        client_address TEXT,
        target TEXT,
        detail TEXT
    );
    CREATE INDEX audit_by_tenant ON audit (tenant_id, audit_id)
    """,
]

POSTGRES_IDENTITY_MIGRATIONS: list[str] = [
    """
    CREATE TABLE tenants (
        tenant_id TEXT PRIMARY KEY,
        name TEXT NOT NULL UNIQUE,
        plan TEXT NOT NULL DEFAULT 'free' CHECK (plan IN ('free', 'pro', 'team')),
        retention_max_versions INTEGER,
        retention_max_days INTEGER,
        retention_grace_days INTEGER,
        created_at DOUBLE PRECISION NOT NULL
    );
    CREATE TABLE users (
        user_id TEXT PRIMARY KEY,
        username TEXT NOT NULL UNIQUE,
        password_hash TEXT,
        disabled INTEGER NOT NULL DEFAULT 0,
        created_at DOUBLE PRECISION NOT NULL
    );
    CREATE TABLE memberships (
        tenant_id TEXT NOT NULL REFERENCES tenants (tenant_id),
        user_id TEXT NOT NULL REFERENCES users (user_id),
        role TEXT NOT NULL CHECK (role IN ('owner', 'writer', 'reader')),
        created_at DOUBLE PRECISION NOT NULL,
        PRIMARY KEY (tenant_id, user_id)
    );
    CREATE INDEX memberships_by_user ON memberships (user_id);
    CREATE TABLE device_codes (
        device_code_hash TEXT PRIMARY KEY,
        user_code TEXT NOT NULL,
        client_name TEXT NOT NULL,
        scope TEXT NOT NULL,
        created_at DOUBLE PRECISION NOT NULL,
        expires_at DOUBLE PRECISION NOT NULL,
        interval INTEGER NOT NULL,
        last_polled_at DOUBLE PRECISION,
        status TEXT NOT NULL CHECK (status IN ('pending', 'approved', 'denied', 'consumed')),
        user_id TEXT,
        tenant_id TEXT,
        client_address TEXT
    );
    CREATE INDEX device_codes_by_user_code ON device_codes (user_code, status);
    CREATE TABLE sessions (
        session_id TEXT PRIMARY KEY,
        kind TEXT NOT NULL CHECK (kind IN ('device', 'agent')),
        user_id TEXT NOT NULL REFERENCES users (user_id),
        tenant_id TEXT NOT NULL REFERENCES tenants (tenant_id),
        name TEXT NOT NULL,
        scope TEXT NOT NULL,
        created_at DOUBLE PRECISION NOT NULL,
        last_used_at DOUBLE PRECISION,
        expires_at DOUBLE PRECISION,
        revoked_at DOUBLE PRECISION,
        revoked_reason TEXT,
        token_hash TEXT UNIQUE,
        path_prefix TEXT NOT NULL DEFAULT '/',
        can_write INTEGER NOT NULL DEFAULT 1
    );
    CREATE INDEX sessions_by_user ON sessions (tenant_id, user_id);
    CREATE TABLE refresh_tokens (
        token_hash TEXT PRIMARY KEY,
        session_id TEXT NOT NULL REFERENCES sessions (session_id),
        family TEXT NOT NULL,
        created_at DOUBLE PRECISION NOT NULL,
        expires_at DOUBLE PRECISION NOT NULL,
        used_at DOUBLE PRECISION
    );
    CREATE INDEX refresh_tokens_by_family ON refresh_tokens (family);
    CREATE TABLE audit (
        audit_id BIGINT GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY,
        tenant_id TEXT,
        at DOUBLE PRECISION NOT NULL,
        action TEXT NOT NULL,
        outcome TEXT NOT NULL,
        user_id TEXT,
        session_id TEXT,
        device_name TEXT,
        agent_name TEXT,
        client_address TEXT,
        target TEXT,
        detail TEXT
    );
    CREATE INDEX audit_by_tenant ON audit (tenant_id, audit_id);
    CREATE TABLE signing_keys (
        generation BIGINT PRIMARY KEY,
        kid TEXT NOT NULL UNIQUE,
        jwk TEXT NOT NULL,
        created_at DOUBLE PRECISION NOT NULL
    );
    CREATE TABLE rate_buckets (
        bucket_key TEXT PRIMARY KEY,
        tokens DOUBLE PRECISION NOT NULL,
        updated_at DOUBLE PRECISION NOT NULL,
        granted DOUBLE PRECISION NOT NULL DEFAULT 0
    )
    """,
]


def identity_migrations(dialect: Dialect) -> list[str]:
    """The migration scripts of *dialect*."""
    return POSTGRES_IDENTITY_MIGRATIONS if dialect == "postgres" else IDENTITY_MIGRATIONS
