#!/usr/bin/env bash
# The security test group, checking every `fn security_*` ran and passed (xtask/src/security.rs).
cd "$(dirname "$0")/.."
exec cargo xtask security-tests -- "$@"
