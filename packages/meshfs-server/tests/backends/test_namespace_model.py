"""The Hypothesis namespace model (meshfs_server_model.py) on the embedded default: real SQLite
and a local directory behind a server's services. test_backend_model.py runs it on Postgres +
S3, tests/unit/test_namespace_model_memory.py on the in-memory ports."""

from __future__ import annotations

from meshfs_server_model import NamespaceMachine

TestNamespaceModel = NamespaceMachine.TestCase
