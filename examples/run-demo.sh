#!/usr/bin/env bash
# Runs examples/hello on the embedded default (SQLite, no services) in a fresh scratch git repository.
set -euo pipefail
here="$(cd "$(dirname "$0")/.." && pwd)"
scratch="$(mktemp -d "${TMPDIR:-/tmp}/tgz-demo-XXXXXX")"
git -C "$scratch" init -q -b main
git -C "$scratch" -c user.email=demo@example.com -c user.name=demo commit -q --allow-empty -m "empty repository"
echo "Scratch repository: $scratch"
node "$here/dist/cli/main.js" run "$here/examples/hello/protocol.json" --repo "$scratch"
echo
echo "What the protocol built:"
git -C "$scratch" status --short
echo "Inspect it with: node $here/dist/cli/main.js events <run-id>"
