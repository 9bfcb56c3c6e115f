# Shared by scripts/run and scripts/test: find Python >= 3.12 and keep .venv in step with the
# pinned requirements (reinstalls only when a requirements file changed). Sourced, not run.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"

find_python() {
  local candidates=("${KOMMO_HUB_PYTHON:-}" python3.13 python3.12 python3)
  local pyenv_root="${PYENV_ROOT:-$HOME/.pyenv}"
  for dir in "$pyenv_root"/versions/3.1[2-9]* /usr/local/bin /usr/bin; do
    [ -x "$dir/bin/python" ] && candidates+=("$dir/bin/python")
    [ -x "$dir/python3.12" ] && candidates+=("$dir/python3.12")
    [ -x "$dir/python3.13" ] && candidates+=("$dir/python3.13")
  done
  for py in "${candidates[@]}"; do
    [ -n "$py" ] || continue
    command -v "$py" >/dev/null 2>&1 || continue
    if "$py" -c 'import sys; sys.exit(0 if sys.version_info >= (3, 12) else 1)' 2>/dev/null; then
      command -v "$py"; return 0
    fi
  done
  echo "Kommo Hub needs Python 3.12 or newer (Django 6). Install it, or point KOMMO_HUB_PYTHON at it." >&2
  return 1
}

ensure_venv() {
  local reqs="$1"
  local stamp=".venv/.requirements.sha256"
  local want
  want="$(cat requirements*.txt | sha256sum | cut -d' ' -f1)-$reqs"
  if [ ! -x .venv/bin/python ] || ! .venv/bin/python -c 'import sys; sys.exit(0 if sys.version_info >= (3, 12) else 1)'; then
    rm -rf .venv
    "$(find_python)" -m venv .venv
  fi
  if [ "$(cat "$stamp" 2>/dev/null)" != "$want" ]; then
    echo "Installing dependencies ($reqs)…"
    .venv/bin/python -m pip install --quiet --disable-pip-version-check -r "$reqs"
    echo "$want" > "$stamp"
  fi
  export PATH="$ROOT/.venv/bin:$PATH"
}

# A .env with fresh random secrets on first run, so the receivers work out of the box.
ensure_env_file() {
  [ -f .env ] && return 0
  local gen='import secrets; print(secrets.token_urlsafe(24))'
  {
    echo "# Written by scripts/run on first start; edit freely (see .env.example)."
    echo "DJANGO_SECRET_KEY=$(.venv/bin/python -c "$gen")$(.venv/bin/python -c "$gen")"
    for name in KOMMO_WEBHOOK_SECRET RDSTATION_WEBHOOK_SECRET FORMS_WEBHOOK_SECRET N8N_CALLBACK_SECRET SUPABASE_WEBHOOK_SECRET; do
      echo "$name=$(.venv/bin/python -c "$gen")"
    done
  } > .env
  chmod 600 .env
  echo "Wrote .env with new webhook secrets."
}
