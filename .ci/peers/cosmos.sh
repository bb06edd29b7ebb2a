# The Cosmos DB peer: @vercel/cosmosdb-server from npm, installed under .peers/cosmos (git-ignored).
# Sourced by .ci/run (set -euo pipefail, cwd = repo root); tests/peers/cosmos.py starts and stops it.
cosmos_version="1.0.1"
cosmos_dir=".peers/cosmos"
cosmos_bin="$cosmos_dir/node_modules/.bin/cosmosdb-server"
if ! command -v npm >/dev/null; then
  echo "installing nodejs and npm for the Cosmos DB peer" >&2
  (apt-get update -qq && apt-get install -y -qq nodejs npm) >/dev/null
fi
if [ ! -x "$cosmos_bin" ] || ! grep -q "\"version\": \"$cosmos_version\"" "$cosmos_dir/node_modules/@vercel/cosmosdb-server/package.json"; then
  echo "installing @vercel/cosmosdb-server@$cosmos_version into $cosmos_dir" >&2
  mkdir -p "$cosmos_dir"
  npm install --prefix "$cosmos_dir" --no-audit --no-fund --silent "@vercel/cosmosdb-server@$cosmos_version" >/dev/null
fi
[ -x "$cosmos_bin" ] || { echo "the Cosmos DB peer is missing: $cosmos_bin" >&2; exit 1; }
SPINE_TEST_COSMOS_PACKAGE="$(pwd)/$cosmos_dir/node_modules/@vercel/cosmosdb-server"
export SPINE_TEST_COSMOS_PACKAGE
