"""Identity and access: users, tenants, device logins, sessions, tokens and safety controls.

The server builds one :class:`Identity` per process (``Identity.open(db, settings)``); routes
ask it who a request speaks for (``authenticate``), and ``identity.http.routes`` serve the
``/auth/*`` endpoints.
"""

from __future__ import annotations

from meshfs_server.identity.service import Identity, Principal

__all__ = ["Identity", "Principal"]
