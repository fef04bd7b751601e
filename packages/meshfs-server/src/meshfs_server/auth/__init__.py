"""Accounts, sessions and refresh rotation, tokens and signing keys, the device flow and rate
limits, behind the :class:`~meshfs_server.auth.store.AuthStore` port.

The server builds one :class:`~meshfs_server.auth.service.Identity` per process
(``Identity.open(store, settings)``); the HTTP layer asks it who a token speaks for
(:mod:`meshfs_server.http.authn`) and :mod:`meshfs_server.http.auth` serves ``/auth/*``.
"""
