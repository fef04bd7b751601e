#!/usr/bin/env bash
# The one test command: bootstrap the machine, then run every gate session of noxfile.py.
#
#   scripts/test.sh                 # lint, typecheck, tests, integration, wheels
#   scripts/test.sh -s tests        # extra arguments go to nox (replacing the default sessions)
#
# Exits non-zero when any session fails. pytest collecting no tests (exit code 5) fails its
# session. With CI set, session venvs are built fresh; locally they are reused.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"

"$ROOT/scripts/bootstrap.sh"
# shellcheck source=scripts/_lib.sh
source "$ROOT/scripts/_lib.sh"
meshfs_user_path

if [[ -n "${CI:-}" ]]; then
    reuse=(--no-reuse-existing-virtualenvs)
else
    reuse=(--reuse-existing-virtualenvs)
fi

if [[ $# -gt 0 ]]; then
    exec nox "${reuse[@]}" --non-interactive "$@"
fi
exec nox "${reuse[@]}" --non-interactive -s lint typecheck tests integration wheels
