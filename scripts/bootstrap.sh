#!/usr/bin/env bash
# Make this machine able to build and test MeshFS. Idempotent and fast on a second run.
#
#   scripts/bootstrap.sh          # apt packages (when missing), uv + nox, the workspace venv
#   MESHFS_SKIP_APT=1 scripts/bootstrap.sh   # skip the apt step (no root, or managed elsewhere)
#
# Needs python3 with pip. apt-get runs only when a package is missing, with one `update`.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"

log() { printf 'bootstrap: %s\n' "$*" >&2; }

# --- system packages ----------------------------------------------------------------------------
# fuse3/libfuse3-dev/pkg-config/gcc: pyfuse3 has no wheel and compiles against libfuse3.
# postgresql-15: the metadata store's tests start a throwaway cluster from its binaries.
# chromium + chromium-driver: headless browser tests of the web UI.
# rclone + s3fs: the mount benchmark's peers (scripts/bench/mount.py), on the same bucket.
# rsync, git, make: tools the mount's workflow tests run (packages/meshfs-fuse/tests).
APT_PACKAGES=(fuse3 libfuse3-dev pkg-config gcc chromium chromium-driver rclone s3fs rsync git make sqlite3)
PG_BIN=/usr/lib/postgresql/15/bin
if [[ ! -x "$PG_BIN/initdb" ]]; then
    APT_PACKAGES+=(postgresql-15)
fi

missing=()
for pkg in "${APT_PACKAGES[@]}"; do
    if ! dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q '^install ok installed$'; then
        missing+=("$pkg")
    fi
done

if [[ ${#missing[@]} -gt 0 && -z "${MESHFS_SKIP_APT:-}" ]]; then
    if [[ $(id -u) -ne 0 ]]; then
        SUDO=sudo
    else
        SUDO=
    fi
    log "installing apt packages: ${missing[*]}"
    export DEBIAN_FRONTEND=noninteractive
    $SUDO apt-get update -qq
    # postgresql-15 would otherwise create and start a cluster we do not use.
    if [[ " ${missing[*]} " == *" postgresql-15 "* ]]; then
        $SUDO mkdir -p /etc/postgresql-common/createcluster.d
        echo "create_main_cluster = false" \
            | $SUDO tee /etc/postgresql-common/createcluster.d/meshfs.conf >/dev/null
    fi
    $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
elif [[ ${#missing[@]} -gt 0 ]]; then
    log "MESHFS_SKIP_APT set; not installing: ${missing[*]}"
else
    log "apt packages present"
fi

# --- uv and nox ---------------------------------------------------------------------------------
# shellcheck source=scripts/_lib.sh
source "$ROOT/scripts/_lib.sh"
meshfs_ensure_tool uv nox

# --- the workspace venv (.venv) -----------------------------------------------------------------
log "uv sync (workspace venv at .venv)"
uv sync --quiet --all-packages --group dev
log "ready"
