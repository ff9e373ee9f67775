//! Operator side of tokens: the `leotest-orchestrator tokens audit|rotate` subcommand.
//!
//! The subcommand works on the store the server is configured with (same flags). MongoDB can
//! be changed while the server runs: every request reads the user from the database, so a
//! rotated token takes effect at once. The embedded store is opened by one process at a time
//! and the server keeps its users in memory, so stop the server, run the subcommand, start
//! it again (a restart takes a second; no RPC of the original contract could carry a rotation,
//! and a second, local admin endpoint would be new attack surface).

use clap::{Args, Subcommand};

use super::{derivable_users, issue, state_of, stored_form, TokenState, TokenStorage};
use crate::config::{ServerConfig, StoreKind};
use crate::logsafe::untrusted;
use crate::store::{Store, StoreError};

/// `tokens` subcommand.
#[derive(Debug, Clone, Args)]
pub struct TokensArgs {
    /// What to do.
    #[command(subcommand)]
    pub action: TokensAction,
}

/// What `tokens` does.
#[derive(Debug, Clone, Subcommand)]
pub enum TokensAction {
    /// List every user with the state of its stored token (derivable, plain, hashed, none);
    /// never prints a token.
    Audit,
    /// Give users a fresh random token and print `ID TOKEN` per user (the only time the token
    /// is shown). Both old tokens stop working. `admin` is refused: its token is
    /// --admin-access-token, re-applied at every start.
    Rotate {
        /// Users to rotate.
        ids: Vec<String>,
        /// Rotate every user whose token is derivable from its profile.
        #[arg(long)]
        all_derivable: bool,
    },
}

/// Why the subcommand failed.
#[derive(Debug, thiserror::Error)]
pub enum TokensError {
    /// The store failed.
    #[error("{0}")]
    Store(#[from] StoreError),
    /// The embedded store is held by a running orchestrator.
    #[error(
        "cannot open the embedded store ({0}); it is used by one process at a time: stop the \
         orchestrator, run this again, then start it"
    )]
    EmbeddedBusy(String),
    /// The store could not be opened.
    #[error("cannot open the store: {0}")]
    Open(String),
    /// No user has this id.
    #[error("no user with id {0}")]
    NoSuchUser(String),
    /// The admin's token cannot be rotated here.
    #[error("the admin token is --admin-access-token (re-applied at every start): change that")]
    Admin,
    /// Neither user ids nor `--all-derivable` were given.
    #[error("nothing to rotate: name user ids or pass --all-derivable")]
    NothingToRotate,
    /// The system's random source failed.
    #[error(transparent)]
    Randomness(#[from] super::RandomnessError),
}

/// Gives `id` a fresh token (stored as `storage` says) and returns it. Both previous tokens
/// stop working; name, role and team are kept.
pub async fn rotate(
    store: &dyn Store,
    id: &str,
    storage: TokenStorage,
) -> Result<String, TokensError> {
    if id == "admin" {
        return Err(TokensError::Admin);
    }
    let mut user = store
        .get_user(id)
        .await?
        .ok_or_else(|| TokensError::NoSuchUser(untrusted(id).to_string()))?;
    let token = issue()?;
    user.static_access_token = stored_form(&token, storage);
    user.access_token = String::new();
    store.put_user(&user).await?;
    tracing::info!(id = %untrusted(id), "token rotated");
    Ok(token)
}

async fn open(cfg: &ServerConfig) -> Result<std::sync::Arc<dyn Store>, TokensError> {
    crate::server::open_store(cfg)
        .await
        .map_err(|e| match cfg.store_kind() {
            StoreKind::Embedded => TokensError::EmbeddedBusy(e.to_string()),
            StoreKind::Mongo => TokensError::Open(e.to_string()),
        })
}

/// Runs `tokens audit|rotate` against the configured store; output goes to stdout.
pub async fn run(cfg: &ServerConfig, args: TokensArgs) -> Result<(), TokensError> {
    let store = open(cfg).await?;
    match args.action {
        TokensAction::Audit => {
            let users = store.list_users().await?;
            let mut derivable = 0usize;
            println!("{:<40} {:<10} TOKEN", "ID", "ROLE");
            for u in &users {
                let state = if u.id == "admin" {
                    "admin-flag"
                } else {
                    let s = state_of(u);
                    if s == TokenState::Derivable {
                        derivable += 1;
                    }
                    s.name()
                };
                println!("{:<40} {:<10} {state}", untrusted(&u.id), u.role.name());
            }
            println!("{} users, {derivable} with a derivable token", users.len());
        }
        TokensAction::Rotate { ids, all_derivable } => {
            let mut targets = ids;
            if all_derivable {
                targets.extend(
                    derivable_users(store.as_ref())
                        .await?
                        .into_iter()
                        .map(|u| u.id),
                );
            }
            let mut seen = std::collections::HashSet::new();
            targets.retain(|id| seen.insert(id.clone()));
            if targets.is_empty() {
                return Err(TokensError::NothingToRotate);
            }
            for id in targets {
                let token = rotate(store.as_ref(), &id, cfg.token_storage).await?;
                println!("{} {token}", untrusted(&id));
            }
        }
    }
    Ok(())
}
