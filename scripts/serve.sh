#!/usr/bin/env bash
# Start a MeshFS server from this checkout: scripts/serve.sh [meshfs-server serve options]
#
# Works on a machine with only python3 + pip: installs uv when missing, then installs what
# serving and the README's quickstart need - the server and the `meshfs` client with their
# dependencies, no test or lint tools - into .venv (or $UV_PROJECT_ENVIRONMENT). A .venv that
# scripts/bootstrap.sh made keeps its development packages.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"

# shellcheck source=scripts/_lib.sh
source "$ROOT/scripts/_lib.sh"
meshfs_ensure_tool uv
uv sync --quiet --inexact --no-dev --package meshfs-server --package meshfs-client

VENV="${UV_PROJECT_ENVIRONMENT:-$ROOT/.venv}"
case "$VENV" in /*) ;; *) VENV="$ROOT/$VENV" ;; esac
printf 'meshfs and meshfs-server are in %s/bin; to run them from anywhere:\n' "$VENV" >&2
printf '  export PATH="%s/bin:$PATH"\n' "$VENV" >&2
exec "$VENV/bin/meshfs-server" serve "$@"
