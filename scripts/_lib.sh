# shellcheck shell=bash
# Helpers sourced by the scripts in this directory.

# Put pip's --user script directory on PATH (where a fallback install puts uv and nox).
meshfs_user_path() {
    local base
    base="$(python3 -m site --user-base 2>/dev/null || true)"
    if [[ -n "$base" && ":$PATH:" != *":$base/bin:"* ]]; then
        PATH="$base/bin:$PATH"
        export PATH
    fi
}

# meshfs_ensure_tool NAME...: pip-install each missing command-line tool (uv, nox).
meshfs_ensure_tool() {
    local tool
    meshfs_user_path
    for tool in "$@"; do
        command -v "$tool" >/dev/null 2>&1 && continue
        printf 'installing %s with pip\n' "$tool" >&2
        # A Debian system python refuses plain pip installs (PEP 668); fall back to --user.
        python3 -m pip install --quiet "$tool" \
            || python3 -m pip install --quiet --user --break-system-packages "$tool"
        if command -v pyenv >/dev/null 2>&1; then pyenv rehash || true; fi
        hash -r
        command -v "$tool" >/dev/null 2>&1 || {
            printf '%s was installed but is not on PATH\n' "$tool" >&2
            return 1
        }
    done
}
