#!/usr/bin/env bash
# Runs the Jest suite on a given Node release line (22, 24, …) whatever the Node on PATH is.
# The binary comes from scripts/node-line.sh (the npm registry, cached in .cache/node<line>/).
# Arguments after the line go to Jest:  bash scripts/test-node.sh 24 __tests__/client
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

line="${1:?usage: scripts/test-node.sh <major line> [jest arguments]}"
shift
bin="$(bash scripts/node-line.sh "$line")"
echo "node $("$bin/node" --version) ($bin/node)"
# First on PATH too, so whatever the tests start by name (node, npm) runs on that line as well.
PATH="$bin:$PATH" exec "$bin/node" node_modules/.bin/jest --runInBand "$@"
