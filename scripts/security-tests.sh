#!/usr/bin/env bash
# The security test group, checking every `fn security_*` ran and passed (xtask/src/security.rs).
exec cargo xtask security-tests -- "$@"
