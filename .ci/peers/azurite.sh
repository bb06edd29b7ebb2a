# Azurite, Microsoft's Azure Storage emulator from npm: the peer of the azure_blob object store's
# contract suite and bench. Installed once under .peers/azurite (git-ignored); the tests and the
# bench start its blob service and stop it (tests/peers/azurite.py), finding it through this variable.
# Sourced by .ci/run (set -euo pipefail, cwd = repo root).
azurite_version="3.37.0"
azurite_dir=".peers/azurite"
azurite_bin="$azurite_dir/node_modules/.bin/azurite-blob"
if ! command -v npm >/dev/null; then
  echo "installing nodejs and npm for Azurite" >&2
  (apt-get update -qq && apt-get install -y -qq nodejs npm) >/dev/null
fi
if [ ! -x "$azurite_bin" ] || ! grep -q "\"version\": \"$azurite_version\"" "$azurite_dir/node_modules/azurite/package.json"; then
  echo "installing azurite@$azurite_version into $azurite_dir" >&2
  mkdir -p "$azurite_dir"
  npm install --prefix "$azurite_dir" --no-save --no-audit --no-fund --loglevel=error "azurite@$azurite_version" >/dev/null
fi
[ -x "$azurite_bin" ] || { echo "Azurite is missing: $azurite_bin" >&2; exit 1; }
SPINE_TEST_AZURITE_BLOB="$(pwd)/$azurite_bin"
export SPINE_TEST_AZURITE_BLOB
