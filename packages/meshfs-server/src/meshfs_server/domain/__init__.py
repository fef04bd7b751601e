"""MeshFS domain rules: namespace, writes and versions, change feed. No SQL, no HTTP."""
