# Headless Chromium, the browser of tests/browser (a page on another origin follows Spine with
# clients/js/spine.js). Sourced by .ci/run (set -euo pipefail, cwd = repo root); the tests start
# and stop the browser themselves (tests/browser/cdp.py) and find it through SPINE_CHROMIUM.
chromium_bin="${SPINE_CHROMIUM:-/usr/bin/chromium}"
if [ ! -x "$chromium_bin" ]; then
  echo "installing chromium for the browser tests" >&2
  (apt-get update -qq && apt-get install -y -qq chromium) >/dev/null 2>&1 \
    || (sudo apt-get update -qq && sudo apt-get install -y -qq chromium) >/dev/null \
    || echo "could not install chromium: the browser tests will fail under CI=true" >&2
  chromium_bin=/usr/bin/chromium
fi
if [ -x "$chromium_bin" ]; then
  SPINE_CHROMIUM="$chromium_bin"
  export SPINE_CHROMIUM
fi
unset chromium_bin
