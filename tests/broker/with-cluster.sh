#!/usr/bin/env bash
# Runs a command with the 3-node cluster of tests/broker/cluster.sh up: starts it unless it
# runs, runs the command, and stops it again only if this script started it (also when the
# command fails or is interrupted). Exit status: the command's.
#
# Usage: tests/broker/with-cluster.sh <command> [args...]
set -uo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
started=0
cleanup() {
  if ((started)); then
    bash "$here/cluster.sh" down >/dev/null 2>&1 || echo "with-cluster.sh: could not stop the cluster" >&2
  fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM
if ! bash "$here/cluster.sh" status >/dev/null 2>&1; then
  bash "$here/cluster.sh" up || exit 1
  started=1
fi
"$@"
