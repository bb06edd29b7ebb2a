# The Cloud Firestore emulator, the peer of the firestore contract suites. Sourced by .ci/run
# (set -euo pipefail, cwd = repo root); tests/peers/firestore.py starts and stops it and finds
# the jar through SPINE_FIRESTORE_EMULATOR_JAR.
#
# The emulator is Google's own Java program and ships only with the Google Cloud SDK: the Debian
# package google-cloud-cli-firestore-emulator of Google's apt repository (this project's machines
# come with it), or a jar that firebase-tools downloads from Google's storage at first use. No
# PyPI, npm or Debian package carries it, and those are the only registries these machines reach:
# where it is missing it cannot be installed from here. Then this says so, and under CI=true the
# firestore tests fail with the same reason (locally they skip).
firestore_find_jar() {
  local sdk candidate
  sdk="$(command -v gcloud >/dev/null && dirname "$(dirname "$(readlink -f "$(command -v gcloud)")")" || true)"
  for candidate in \
    "${SPINE_FIRESTORE_EMULATOR_JAR:-}" \
    /usr/lib/google-cloud-sdk/platform/cloud-firestore-emulator/cloud-firestore-emulator.jar \
    /usr/share/google-cloud-sdk/platform/cloud-firestore-emulator/cloud-firestore-emulator.jar \
    /opt/google-cloud-sdk/platform/cloud-firestore-emulator/cloud-firestore-emulator.jar \
    "${sdk:+$sdk/platform/cloud-firestore-emulator/cloud-firestore-emulator.jar}"; do
    if [ -n "$candidate" ] && [ -f "$candidate" ]; then
      echo "$candidate"
      return 0
    fi
  done
  return 1
}

if ! command -v java >/dev/null; then
  echo "installing a Java runtime for the Cloud Firestore emulator" >&2
  (apt-get update -qq && apt-get install -y -qq openjdk-17-jre-headless) >/dev/null \
    || echo "could not install Java: the firestore tests will fail under CI=true" >&2
fi
firestore_policy="$(apt-cache policy google-cloud-cli-firestore-emulator 2>/dev/null || true)"
if ! firestore_find_jar >/dev/null && [[ "$firestore_policy" == *"Candidate: "[0-9]* ]]; then
  # Only where Google's apt repository is configured: then it is an ordinary install.
  echo "installing google-cloud-cli-firestore-emulator" >&2
  apt-get install -y -qq google-cloud-cli-firestore-emulator >/dev/null \
    || echo "could not install google-cloud-cli-firestore-emulator" >&2
fi
if SPINE_FIRESTORE_EMULATOR_JAR="$(firestore_find_jar)"; then
  export SPINE_FIRESTORE_EMULATOR_JAR
else
  unset SPINE_FIRESTORE_EMULATOR_JAR
  cat >&2 <<'EOF'
WARNING: the Cloud Firestore emulator is not installed on this machine (looked for
  cloud-firestore-emulator.jar under /usr/lib, /usr/share and /opt google-cloud-sdk, and beside gcloud).
  It ships only with the Google Cloud SDK (package google-cloud-cli-firestore-emulator of Google's
  apt repository), which no registry reachable from here carries. The firestore contract and
  adapter tests will FAIL under CI=true (and skip locally). Install the Google Cloud SDK's
  emulator component, or set SPINE_FIRESTORE_EMULATOR_JAR to its jar.
EOF
fi
unset -f firestore_find_jar
unset firestore_policy
