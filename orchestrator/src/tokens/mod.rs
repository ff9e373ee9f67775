//! Static access tokens: issuing unguessable ones, the form they are stored in, checking a
//! presented token against a stored one, and recognising the original's derivable tokens.
//!
//! The original issued `hex(sha256(id + name + team))`, computable by anyone who can read a
//! user's profile (`get_user`, `get_nodes`). New tokens are 32 bytes from the operating
//! system's CSPRNG, printed as 64 lowercase hex digits: the same shape as the original's, in
//! the same place of the reply (`... access_token=<token>`), so every client that parses them
//! keeps working. Tokens the original stored keep authenticating; [`derivable_users`] finds the
//! derivable ones, [`warn_derivable`] names them at start-up and [`admin`] rotates them.

pub mod admin;

use clap::ValueEnum;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use crate::logsafe::untrusted;
use crate::store::{Store, StoreError, User};

/// Random bytes in a new token (256 bits).
pub const TOKEN_BYTES: usize = 32;
/// Marks a stored value as a SHA-256 digest of the token rather than the token itself. No
/// token the original issued (64 hex digits, or the admin flag's value) has this form, so
/// legacy plaintext values are told apart from digests without a schema change.
const DIGEST_PREFIX: &str = "sha256:";
/// Ids listed in the start-up warning (the count is always complete).
const WARN_MAX_IDS: usize = 20;

/// How newly issued tokens are written to the store (`--token-storage`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, ValueEnum)]
pub enum TokenStorage {
    /// Only `sha256:<hex digest>` is stored: a copy of the database does not reveal tokens.
    /// The original orchestrator cannot authenticate such users (docs/compatibility.md).
    #[default]
    Hashed,
    /// The token itself, as the original stores it: the database stays fully usable by the
    /// original (rollback, sharing); a copy of it reveals every token.
    Plain,
}

/// The operating system's random source failed (no token can be issued).
#[derive(Debug, thiserror::Error)]
#[error("no OS randomness for a token: {0}")]
pub struct RandomnessError(String);

/// A fresh token: 32 bytes from the OS CSPRNG as 64 lowercase hex digits.
pub fn issue() -> Result<String, RandomnessError> {
    let mut bytes = [0u8; TOKEN_BYTES];
    getrandom::fill(&mut bytes).map_err(|e| RandomnessError(e.to_string()))?;
    Ok(hex::encode(bytes))
}

fn digest_hex(token: &str) -> String {
    hex::encode(Sha256::digest(token.as_bytes()))
}

/// What is written to `static_access_token` / `access_token` for `token`.
pub fn stored_form(token: &str, storage: TokenStorage) -> String {
    match storage {
        TokenStorage::Hashed => format!("{DIGEST_PREFIX}{}", digest_hex(token)),
        TokenStorage::Plain => token.to_string(),
    }
}

/// Whether a stored value is a digest written by [`stored_form`].
pub fn is_digest(stored: &str) -> bool {
    stored.starts_with(DIGEST_PREFIX)
}

/// Whether `presented` is the token behind `stored` (either form), in constant time with
/// respect to both values. An empty stored value never matches (as in the original).
pub fn matches(presented: &str, stored: &str) -> bool {
    if stored.is_empty() {
        return false;
    }
    let presented = Sha256::digest(presented.as_bytes());
    match stored.strip_prefix(DIGEST_PREFIX) {
        Some(hex_digest) => {
            // A malformed digest decodes to nothing and can match nothing.
            let want = hex::decode(hex_digest).unwrap_or_default();
            presented[..].ct_eq(&want).into()
        }
        // Legacy plaintext: compare digests so the time depends on neither content nor length.
        None => presented.ct_eq(&Sha256::digest(stored.as_bytes())).into(),
    }
}

/// The original's token for a profile: `hex(sha256(id + name + team))` (for nodes, team is
/// the description sent at registration). Only used to recognise such tokens.
pub fn original_derivation(id: &str, name: &str, team: &str) -> String {
    let mut h = Sha256::new();
    h.update(id.as_bytes());
    h.update(name.as_bytes());
    h.update(team.as_bytes());
    hex::encode(h.finalize())
}

/// How a user's stored tokens look to the audit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TokenState {
    /// A stored token equals the original's derivation from the user's current profile:
    /// anyone who can call `get_user` / `get_nodes` can compute it.
    Derivable,
    /// A plaintext token that is not derivable from the current profile. It may still be
    /// derivable from an earlier name/team (the original issued it before a `modify_user`).
    Plain,
    /// Only digests of tokens issued by leotest-rs.
    Hashed,
    /// No usable token (the user cannot authenticate with a static token).
    None,
}

impl TokenState {
    /// Name used in `tokens audit` output.
    pub fn name(self) -> &'static str {
        match self {
            TokenState::Derivable => "derivable",
            TokenState::Plain => "plain",
            TokenState::Hashed => "hashed",
            TokenState::None => "none",
        }
    }
}

/// Classifies the stored tokens of `user`.
pub fn state_of(user: &User) -> TokenState {
    let slots = [&user.static_access_token, &user.access_token];
    let derived = original_derivation(&user.id, &user.name, &user.team);
    if slots.iter().any(|s| s.as_str() == derived) {
        return TokenState::Derivable;
    }
    if slots.iter().any(|s| !s.is_empty() && !is_digest(s)) {
        return TokenState::Plain;
    }
    if slots.iter().any(|s| is_digest(s)) {
        return TokenState::Hashed;
    }
    TokenState::None
}

/// Users whose token anyone can compute from their profile (the admin is never one: its token
/// is the flag's value).
pub async fn derivable_users(store: &dyn Store) -> Result<Vec<User>, StoreError> {
    Ok(store
        .list_users()
        .await?
        .into_iter()
        .filter(|u| u.id != "admin" && state_of(u) == TokenState::Derivable)
        .collect())
}

/// Logs a warning naming the users (never their tokens) that still hold a derivable token.
pub async fn warn_derivable(store: &dyn Store) {
    match derivable_users(store).await {
        Ok(users) if users.is_empty() => {}
        Ok(users) => {
            let ids: Vec<String> = users
                .iter()
                .take(WARN_MAX_IDS)
                .map(|u| untrusted(&u.id).to_string())
                .collect();
            tracing::warn!(
                count = users.len(),
                ids = %ids.join(","),
                "users hold a token derivable from their profile (the original's \
                 sha256(id+name+team)): anyone who can read the profile can act as them; \
                 rotate with `leotest-orchestrator tokens rotate --all-derivable` \
                 (embedded store: with the server stopped)"
            );
        }
        Err(e) => tracing::warn!(error = %e, "cannot audit stored tokens"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::Role;

    fn user(id: &str, name: &str, team: &str, static_token: &str, token: &str) -> User {
        User {
            id: id.into(),
            name: name.into(),
            role: Role::User,
            team: team.into(),
            static_access_token: static_token.into(),
            access_token: token.into(),
        }
    }

    #[test]
    fn issued_tokens_have_the_original_shape_and_differ() {
        let a = issue().expect("randomness");
        let b = issue().expect("randomness");
        assert_eq!(a.len(), 2 * TOKEN_BYTES);
        assert!(a
            .bytes()
            .all(|c| c.is_ascii_hexdigit() && !c.is_ascii_uppercase()));
        assert_ne!(a, b);
    }

    #[test]
    fn both_stored_forms_authenticate_and_nothing_else_does() {
        let t = issue().expect("randomness");
        for storage in [TokenStorage::Hashed, TokenStorage::Plain] {
            let stored = stored_form(&t, storage);
            assert!(matches(&t, &stored), "{storage:?}");
            assert!(!matches(&format!("{t}x"), &stored));
            assert!(!matches("", &stored));
        }
        let hashed = stored_form(&t, TokenStorage::Hashed);
        assert!(is_digest(&hashed));
        assert!(!hashed.contains(&t));
        // The digest itself is not a token.
        assert!(!matches(&hashed, &hashed));
        assert!(!matches("", ""));
        assert!(!matches("sha256:", "sha256:"));
        assert!(!matches("x", "sha256:zz"));
    }

    #[test]
    fn derivation_is_the_originals_sha256_of_the_concatenation() {
        let want = hex::encode(Sha256::digest(b"alicealice smithteam-a"));
        assert_eq!(original_derivation("alice", "alice smith", "team-a"), want);
    }

    #[test]
    fn audit_states() {
        let d = original_derivation("u", "n", "t");
        assert_eq!(
            state_of(&user("u", "n", "t", &d, "")),
            TokenState::Derivable
        );
        assert_eq!(
            state_of(&user("u", "n", "t", "x", &d)),
            TokenState::Derivable
        );
        assert_eq!(state_of(&user("u", "n2", "t", &d, "")), TokenState::Plain);
        let h = stored_form("secret", TokenStorage::Hashed);
        assert_eq!(state_of(&user("u", "n", "t", &h, "")), TokenState::Hashed);
        assert_eq!(
            state_of(&user("u", "n", "t", &h, "plain")),
            TokenState::Plain
        );
        assert_eq!(state_of(&user("u", "n", "t", "", "")), TokenState::None);
    }
}
