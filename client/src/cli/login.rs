//! `leotest login`, `whoami`, `logout` and `context list|use|delete`: saved credentials.
//!
//! `login` takes the usual global options (`--grpc-host`, `--grpc-port`, `--ca-cert`,
//! `--tls-domain`, `--userid`, `--context`) and a token from `--access-token-file`,
//! `--access-token`, `LEOTEST_ACCESS_TOKEN(_FILE)`, `--jwt-access-token`, or else the first
//! line of standard input; checks them against the orchestrator, and only then saves them.

use std::io::{BufRead, IsTerminal, Read, Write};

use clap::{Args, Subcommand};
use leotest_client::leotest_proto::unary;
use leotest_client::Credentials;
use serde_json::json;

use super::profile::{self, Context, Profile};
use super::{CliError, CliResult, Global, GlobalArgs, Outcome, Output};

/// Longest token line read from standard input.
const MAX_STDIN_TOKEN: usize = 16 * 1024;

#[derive(Debug, Args)]
#[command(after_help = "\
Examples:
  leotest login --grpc-host orch.example.org --ca-cert server.crt --userid alice < token.txt
  leotest login --context lab --grpc-host 10.0.0.5 --userid admin --access-token-file admin.token
The CA file is copied into the profile ($XDG_CONFIG_HOME/leotest, else ~/.config/leotest;
mode 0600), so later commands work from any directory. The context becomes the current one.")]
pub(crate) struct LoginArgs {
    /// Save without checking the credentials against the orchestrator
    #[arg(long)]
    pub no_verify: bool,
}

#[derive(Debug, Args)]
pub(crate) struct LogoutArgs {
    /// Forget the whole context (server and CA too), not only its token
    #[arg(long)]
    pub forget: bool,
}

#[derive(Debug, Args)]
pub(crate) struct ContextArgs {
    #[command(subcommand)]
    pub command: ContextCmd,
}

#[derive(Debug, Subcommand)]
pub(crate) enum ContextCmd {
    /// List saved contexts (the current one marked *)
    List,
    /// Make NAME the current context
    Use { name: String },
    /// Delete context NAME and its CA copy
    Delete { name: String },
}

/// One line from standard input (a token piped in, or typed after a prompt).
fn token_from_stdin() -> Result<String, CliError> {
    let stdin = std::io::stdin();
    if stdin.is_terminal() {
        eprint!("access token: ");
        let _ = std::io::stderr().flush();
    }
    let mut line = String::new();
    stdin
        .lock()
        .take(MAX_STDIN_TOKEN as u64)
        .read_line(&mut line)
        .map_err(|e| CliError::Other(format!("cannot read the token from stdin: {e}")))?;
    let token = line.trim().to_string();
    if token.is_empty() {
        return Err(CliError::Usage(
            "no token: pass --access-token-file FILE, set LEOTEST_ACCESS_TOKEN, or pipe the \
             token on standard input"
                .into(),
        ));
    }
    Ok(token)
}

/// Who the credentials are, as the orchestrator says: the user record for a static token,
/// the JWT's acceptance otherwise.
async fn identify(global: &Global) -> Result<serde_json::Value, CliError> {
    let client = global.connect().await?;
    let mut who = json!({
        "context": global.context.clone().unwrap_or_default(),
        "server": global.address(),
        "ca_cert": global.ca_cert.display().to_string(),
        "tls_domain": global.tls_domain,
    });
    match global.credentials() {
        Some(Credentials::Jwt(_)) => {
            // Any call proves the JWT; the user id is inside it, and the server does not echo it.
            client
                .get_global_config(unary::MessageGetGlobalConfig {})
                .await?;
            who["auth"] = json!("jwt");
        }
        _ => {
            let reply = client
                .get_user(unary::MessageGetUser {
                    userid: global.userid.clone(),
                })
                .await?;
            let v = super::output::to_json(&reply, "message_get_user_response")?;
            if v["exists"] == json!(false) {
                return Err(CliError::NotFound(format!(
                    "user {:?} not found",
                    global.userid
                )));
            }
            who["auth"] = json!("token");
            who["userid"] = json!(global.userid);
            who["name"] = v["name"].clone();
            who["role"] = v["role"].clone();
            who["team"] = v["team"].clone();
        }
    }
    Ok(who)
}

pub(super) async fn login(args: &GlobalArgs, out: &Output, login: LoginArgs) -> CliResult {
    if let Some(n) = &args.context {
        profile::check_name(n)?;
    }
    let (mut prof, _) = Profile::load()?;
    let name = prof.context_name(args.context.as_deref());
    // The saved context fills in what is not given, except the token: a login takes a fresh one.
    let mut base = prof.contexts.get(&name).cloned().unwrap_or_default();
    base.access_token = None;
    base.jwt_access_token = None;
    let mut global = args.resolve_with(Some(&base), Some(name.clone()))?;
    if global.credentials().is_none() {
        global.set_token(token_from_stdin()?);
    }
    let ca_copy = profile::store_ca(&name, &global.ca_cert).map_err(|e| match e {
        CliError::ReadFile { path, source } => {
            CliError::Client(leotest_client::ClientError::CaCert { path, source })
        }
        other => other,
    })?;
    global.ca_cert = ca_copy.clone();
    let who = if login.no_verify {
        json!({"context": name, "server": global.address(), "verified": false})
    } else {
        identify(&global).await?
    };
    let mut ctx = Context {
        grpc_host: Some(global.grpc_host.clone()),
        grpc_port: Some(global.grpc_port),
        ca_cert: Some(ca_copy),
        // Only a name asked for is pinned; otherwise it follows the host (as at login).
        tls_domain: args.tls_domain.clone().or(base.tls_domain),
        userid: None,
        access_token: None,
        jwt_access_token: None,
    };
    match global.credentials() {
        Some(Credentials::Jwt(j)) => ctx.jwt_access_token = Some(j.clone()),
        Some(Credentials::Static {
            userid,
            access_token,
        }) => {
            ctx.userid = Some(userid.clone());
            ctx.access_token = Some(access_token.clone());
        }
        None => {}
    }
    prof.contexts.insert(name.clone(), ctx);
    prof.current = Some(name.clone());
    let path = prof.save()?;
    let mut who = who;
    who["profile"] = json!(path.display().to_string());
    if out.structured() || out.fields.is_some() {
        out.value(&who)?;
    } else {
        let user = who["userid"].as_str().unwrap_or("(JWT)");
        let role = who["role"].as_str().unwrap_or("");
        println!(
            "Logged in to {} as {user}{} (context {name:?}, saved in {}).",
            global.address(),
            if role.is_empty() {
                String::new()
            } else {
                format!(" ({role})")
            },
            path.display()
        );
    }
    Ok(Outcome::Ok)
}

pub(super) async fn whoami(global: &Global, out: &Output) -> CliResult {
    let who = identify(global).await?;
    out.value(&who)?;
    Ok(Outcome::Ok)
}

pub(super) fn logout(args: &GlobalArgs, out: &Output, logout: LogoutArgs) -> CliResult {
    let (mut prof, _) = Profile::load()?;
    let name = prof.context_name(args.context.as_deref());
    let Some(ctx) = prof.contexts.get_mut(&name) else {
        return Err(CliError::NotFound(format!("no saved context {name:?}")));
    };
    if logout.forget {
        if let Some(ca) = ctx.ca_cert.take() {
            let _ = std::fs::remove_file(ca);
        }
        prof.contexts.remove(&name);
        if prof.current.as_deref() == Some(name.as_str()) {
            prof.current = None;
        }
    } else {
        ctx.access_token = None;
        ctx.jwt_access_token = None;
    }
    prof.save()?;
    let what = if logout.forget {
        "forgotten"
    } else {
        "logged out"
    };
    if out.structured() {
        out.value(&json!({"context": name, "result": what}))?;
    } else {
        println!("Context {name:?} {what}.");
    }
    Ok(Outcome::Ok)
}

pub(super) fn context(_args: &GlobalArgs, out: &Output, args: ContextArgs) -> CliResult {
    let (mut prof, _) = Profile::load()?;
    match args.command {
        ContextCmd::List => {
            let current = prof.current.clone().unwrap_or_default();
            let items: Vec<serde_json::Value> = prof
                .contexts
                .iter()
                .map(|(name, c)| {
                    json!({
                        "current": if *name == current { "*" } else { "" },
                        "name": name,
                        "server": format!(
                            "{}:{}",
                            c.grpc_host.as_deref().unwrap_or(super::global::DEFAULT_HOST),
                            c.grpc_port.unwrap_or(super::global::DEFAULT_PORT)
                        ),
                        "userid": c.userid.clone().unwrap_or_default(),
                        "logged_in": c.access_token.is_some() || c.jwt_access_token.is_some(),
                    })
                })
                .collect();
            out.value(&json!({ "contexts": items }))?;
            Ok(Outcome::Ok)
        }
        ContextCmd::Use { name } => {
            profile::check_name(&name)?;
            if !prof.contexts.contains_key(&name) {
                return Err(CliError::NotFound(format!("no saved context {name:?}")));
            }
            prof.current = Some(name.clone());
            prof.save()?;
            if !out.structured() {
                println!("Current context: {name}");
            }
            Ok(Outcome::Ok)
        }
        ContextCmd::Delete { name } => {
            profile::check_name(&name)?;
            let Some(ctx) = prof.contexts.remove(&name) else {
                return Err(CliError::NotFound(format!("no saved context {name:?}")));
            };
            if let Some(ca) = ctx.ca_cert {
                let _ = std::fs::remove_file(ca);
            }
            if prof.current.as_deref() == Some(name.as_str()) {
                prof.current = None;
            }
            prof.save()?;
            if !out.structured() {
                println!("Deleted context {name}");
            }
            Ok(Outcome::Ok)
        }
    }
}
