#!/usr/bin/env bash
# Runs every test: unit, property, interop, real-KVM guests, config regress.
# Needs root and /dev/kvm for the KVM tests; without them those tests print
# one "SKIPPED: <reason>" line each.
set -euo pipefail
cd "$(dirname "$0")/.."
bash .ci/install-deps
cargo test --workspace --release
