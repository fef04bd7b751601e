"""Storage adapters implementing the ports in :mod:`meshfs_server.domain.ports`."""
