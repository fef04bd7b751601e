"""Tenant policy as domain services: plans, storage quota, retention and the audit log.

The content flow sees quota only through the :class:`~meshfs_server.domain.ports.QuotaPolicy`
port; retention prunes through the namespace and the change feed.
"""
