#!/usr/bin/env bash
# Start a MeshFS server from this checkout: scripts/serve.sh [meshfs-server serve options]
# Works on a machine with only python3 + pip: installs uv when missing and syncs the venv.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"

# shellcheck source=scripts/_lib.sh
source "$ROOT/scripts/_lib.sh"
meshfs_ensure_tool uv
exec uv run --package meshfs-server meshfs-server serve "$@"
