#!/usr/bin/env bash
# `cargo deny check` with all four checks of deny.toml: advisories, bans, licenses, sources.
#
#   scripts/deny.sh                 advisories from the RustSec snapshot kept in the repository
#                                   (.ci/advisory-db.tar.gz; no network needed: CI runs this)
#   scripts/deny.sh --fetch         advisories from the live RustSec database (needs GitHub)
#   scripts/deny.sh --refresh DIR   replace the snapshot with DIR, a clone of rustsec/advisory-db,
#                                   then check against it
#
# cargo-deny reads advisories only from a git repository under its db-path, named after the
# database's URL, and fetches it from GitHub unless --disable-fetch. CI has no route to GitHub,
# so the snapshot is unpacked here as that repository. A snapshot only knows what was published
# before its date: the check prints that date and fails once it is more than a year old.
set -euo pipefail
cd "$(dirname "$0")/.."

SNAPSHOT=.ci/advisory-db.tar.gz
META=.ci/advisory-db.txt
ROOT=target/advisory-dbs
# cargo-deny 0.20's directory for https://github.com/RustSec/advisory-db (tame-index's
# url_to_local_dir): a different cargo-deny may name it differently, which makes the check fail
# with "failed to open advisory database" rather than pass without advisories.
DIR=advisory-db-3157b0e258782691
MAX_AGE_DAYS=365

usage() { echo "usage: $0 [--fetch | --refresh ADVISORY-DB-CLONE]" >&2; exit 2; }
meta() { sed -n "s/^$1=//p" "$META"; }

case "${1:-}" in
    --fetch)
        [ $# -eq 1 ] || usage
        exec cargo deny --locked check --hide-inclusion-graph
        ;;
    --refresh)
        [ $# -eq 2 ] && git -C "$2" cat-file -e HEAD:crates 2>/dev/null || usage
        git -C "$2" archive --format=tar HEAD crates rust support.toml LICENSE.txt README.md |
            gzip -9n >"$SNAPSHOT.tmp"
        mv "$SNAPSHOT.tmp" "$SNAPSHOT"
        sed -i -e "s/^commit=.*/commit=$(git -C "$2" rev-parse HEAD)/" \
            -e "s/^date=.*/date=$(git -C "$2" log -1 --format=%cI HEAD)/" "$META"
        ;;
    '') ;;
    *) usage ;;
esac

commit=$(meta commit)
date=$(meta date)
age_days=$((($(date +%s) - $(date -d "$date" +%s)) / 86400))
echo "deny: advisories from the RustSec snapshot of $date (commit ${commit:0:12}, $age_days days old)"
if [ "$age_days" -gt "$MAX_AGE_DAYS" ]; then
    echo "deny: the snapshot is older than $MAX_AGE_DAYS days: refresh it (scripts/deny.sh --refresh)" >&2
    exit 1
fi

db=$ROOT/$DIR
rm -rf "$db"
mkdir -p "$db"
tar -xzf "$SNAPSHOT" -C "$db"
# One commit dated as the snapshot, so that `git log` in the unpacked database tells its age.
git -C "$db" init -q
git -C "$db" add -A
GIT_AUTHOR_DATE=$date GIT_COMMITTER_DATE=$date git -C "$db" \
    -c user.name=leotest-rs -c user.email=ci@leotest-rs.invalid -c commit.gpgsign=false \
    commit -q -m "RustSec advisory-db $commit"

# cargo-deny reads the metadata of every package of Cargo.lock, for every platform (windows-sys
# included), while a build on this machine downloaded only what Linux needs: fetch the rest
# from crates.io first (the registry CI reaches), then keep cargo-deny offline (--frozen: no
# advisory fetch, no other download).
cargo fetch --locked --quiet
LEOTEST_ADVISORY_DBS=$PWD/$ROOT cargo deny --frozen check --hide-inclusion-graph
