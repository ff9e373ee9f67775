//! `cargo xtask security-tests [-- ARGS]`: the security test group (formerly
//! scripts/security-tests.sh), every test named `security_*` in the workspace: the attacks of
//! the adversarial review (issue 15) and the regression tests of what held (docs/security.md
//! maps each attack to its test). Builds the orchestrator binary the client and kernel-service
//! tests start, runs `cargo test --workspace --locked security_ -- ARGS`, then checks that
//! every `fn security_*` defined in the workspace's crates ran and passed: a group that
//! matched less (a filter typo, a test left out of a binary) must not pass silently.
//!
//! Starts a MongoDB-wire server (scripts/start-mongo-wire.sh, port `LEOTEST_TEST_MONGO_PORT`,
//! 27018) when `LEOTEST_TEST_MONGO_URI` is unset, and stops it at the end.

use std::collections::BTreeSet;
use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::Stdio;

use anyhow::{bail, Context, Result};

use crate::child_env;
use crate::mongo_wire::MongoWire;

/// This crate's directory: a tool, whose tests mention `fn security_` in their fixtures.
const SELF_DIR: &str = "xtask";

/// The whole run; `Ok(false)` when a defined security test did not run and pass.
pub(crate) fn run(test_args: &[String]) -> Result<bool> {
    // Stopped again at the end if this run started it.
    let mongo = MongoWire::from_env_or_start()?;

    // The orchestrator binary must exist before the client and kernel-service tests start it.
    let built = child_env::cargo()
        .args(["build", "--locked", "-p", "leotest-orchestrator"])
        .status()
        .context("running cargo build")?;
    if !built.success() {
        bail!("cargo build -p leotest-orchestrator: {built}");
    }

    let mut child = child_env::cargo()
        .args(["test", "--workspace", "--locked", "security_", "--"])
        .args(test_args)
        .env("LEOTEST_TEST_MONGO_URI", mongo.uri())
        .stdout(Stdio::piped())
        .spawn()
        .context("running cargo test")?;
    let mut passed = BTreeSet::new();
    if let Some(stdout) = child.stdout.take() {
        // Shown as it comes (the bash harness's `tee`), parsed on the way.
        for line in BufReader::new(stdout).lines() {
            let line = line.context("reading cargo test's output")?;
            println!("{line}");
            passed.extend(passed_security_test(&line));
        }
    }
    let status = child.wait().context("waiting for cargo test")?;

    let defined = defined_security_tests(Path::new("."))?;
    // Fail closed: a manifest this reader cannot follow must not turn into "all 0 passed".
    if defined.is_empty() {
        bail!("no fn security_* found in the workspace members of Cargo.toml");
    }
    let missing: Vec<&String> = defined.difference(&passed).collect();
    if !missing.is_empty() {
        eprintln!(
            "security-tests: {} of {} defined security_ tests did not pass:",
            missing.len(),
            defined.len()
        );
        for m in &missing {
            eprintln!("  {m}");
        }
    }
    if !status.success() {
        eprintln!("security-tests: cargo test failed ({status})");
    }
    if !status.success() || !missing.is_empty() {
        return Ok(false);
    }
    println!("security-tests: all {} tests passed", defined.len());
    Ok(true)
}

/// The test name of a passing `security_*` test's line of the libtest output
/// (`test path::to::security_name ... ok`).
fn passed_security_test(line: &str) -> Option<String> {
    let path = line.strip_prefix("test ")?.strip_suffix(" ... ok")?;
    let name = path.rsplit("::").next()?;
    (name.starts_with("security_") && is_ident(name)).then(|| name.to_string())
}

fn is_ident(s: &str) -> bool {
    !s.is_empty() && s.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
}

/// Every `fn security_*` name in the source text `src` (what `grep -oE 'fn security_[a-z0-9_]+'`
/// found).
fn security_fns(src: &str) -> impl Iterator<Item = String> + '_ {
    src.match_indices("fn security_")
        .filter_map(move |(at, _)| {
            // A whole word: `fn` not the end of a longer identifier.
            let before = src[..at].chars().next_back();
            if before.is_some_and(|c| c.is_ascii_alphanumeric() || c == '_') {
                return None;
            }
            let rest = &src[at + "fn ".len()..];
            let end = rest
                .find(|c: char| !(c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_'))
                .unwrap_or(rest.len());
            Some(rest[..end].to_string())
        })
}

/// The workspace members of the `Cargo.toml` text `manifest` (its `members = [...]` list).
fn workspace_members(manifest: &str) -> Vec<String> {
    let Some(start) = manifest.find("members") else {
        return Vec::new();
    };
    let list = &manifest[start..];
    let (Some(open), Some(close)) = (list.find('['), list.find(']')) else {
        return Vec::new();
    };
    list[open + 1..close]
        .split(',')
        .map(|m| m.trim().trim_matches('"').to_string())
        .filter(|m| !m.is_empty())
        .collect()
}

/// Every `fn security_*` in the `.rs` files of the workspace's crates under `root` (this
/// crate excepted).
fn defined_security_tests(root: &Path) -> Result<BTreeSet<String>> {
    let manifest =
        std::fs::read_to_string(root.join("Cargo.toml")).context("reading Cargo.toml")?;
    let mut names = BTreeSet::new();
    for member in workspace_members(&manifest) {
        if member != SELF_DIR {
            collect(&root.join(member), &mut names)?;
        }
    }
    Ok(names)
}

fn collect(dir: &Path, names: &mut BTreeSet<String>) -> Result<()> {
    for entry in std::fs::read_dir(dir).with_context(|| format!("reading {}", dir.display()))? {
        let entry = entry?;
        let path = entry.path();
        let kind = entry.file_type()?;
        // A crate's own build output (a nested target/) holds copies of sources.
        if kind.is_dir() && entry.file_name() != "target" {
            collect(&path, names)?;
        } else if kind.is_file() && path.extension().is_some_and(|e| e == "rs") {
            let src = std::fs::read_to_string(&path)
                .with_context(|| format!("reading {}", path.display()))?;
            names.extend(security_fns(&src));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passing_attack_tests_are_read_from_libtest_lines() {
        let out = "running 3 tests\n\
            test identity::tests::security_spoofed_peer_is_refused ... ok\n\
            test security_top_level ... ok\n\
            test auth::tests::security_token_reuse ... FAILED\n\
            test auth::tests::not_security_related ... ok\n\
            test security_ignored_one ... ignored\n\
            test result: FAILED. 2 passed; 1 failed; 1 ignored\n";
        let passed: BTreeSet<String> = out.lines().filter_map(passed_security_test).collect();
        assert_eq!(
            passed.into_iter().collect::<Vec<_>>(),
            ["security_spoofed_peer_is_refused", "security_top_level"]
        );
    }

    #[test]
    fn defined_tests_are_whole_fn_names() {
        let src = "#[test]\nfn security_a_1() {}\nasync fn security_b(x: u8) {}\n\
            fn not_security_c() {}\nfn security_d<T>() {}\n// myfn security_e\n";
        let names: Vec<String> = security_fns(src).collect();
        assert_eq!(names, ["security_a_1", "security_b", "security_d"]);
    }

    #[test]
    fn a_test_that_did_not_pass_is_named() {
        let defined: BTreeSet<String> = ["security_a", "security_b", "security_c"]
            .map(String::from)
            .into();
        let passed: BTreeSet<String> = ["security_a", "security_c", "security_elsewhere"]
            .map(String::from)
            .into();
        let missing: Vec<&String> = defined.difference(&passed).collect();
        assert_eq!(missing, ["security_b"]);
    }

    #[test]
    fn members_are_read_from_the_manifest() {
        let m = "[workspace]\nresolver = \"2\"\nmembers = [\"proto\", \"wire\",\n \"xtask\"]\nexclude = [\"x\"]\n";
        assert_eq!(workspace_members(m), ["proto", "wire", "xtask"]);
    }

    #[test]
    fn the_workspace_defines_attack_tests() {
        // From xtask/ (cargo test's working directory) to the workspace root.
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
        let names = defined_security_tests(&root).expect("walk");
        assert!(
            names.contains("security_control_characters_are_escaped"),
            "{names:?}"
        );
        assert!(
            !names.contains("security_a_1"),
            "this crate's fixtures are not tests"
        );
    }
}
