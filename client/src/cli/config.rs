//! `leotest config --action update|get`.

use std::path::PathBuf;

use clap::{Args, ValueEnum};
use leotest_client::leotest_proto::unary;

use super::{output, read_small_file, CliError, CliResult, Global, Output};

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub(crate) enum ConfigAction {
    Update,
    Get,
}

#[derive(Debug, Args)]
#[command(after_help = "The JSON file uses the `settings` message: \
{\"datastore\": {\"blob\": {\"connectionString\": \"..\", \"container\": \"..\", \"artifactPath\": \"..\"}}, \"weather\": {\"apikey\": \"..\"}}")]
pub(crate) struct ConfigArgs {
    /// Action
    #[arg(long, value_enum)]
    pub action: ConfigAction,
    /// Path to the config JSON (update)
    #[arg(long)]
    pub path: Option<PathBuf>,
}

pub(super) async fn run(global: &Global, out: &Output, args: ConfigArgs) -> CliResult {
    match args.action {
        ConfigAction::Update => {
            let path = args.path.ok_or_else(|| {
                CliError::Usage("usage: leotest config --action=update --path=PATH_TO_JSON".into())
            })?;
            let text = read_small_file(&path)?;
            let settings: unary::Settings = output::from_json(&text, "settings")?;
            let client = global.connect().await?;
            let reply = client
                .update_global_config(unary::MessageUpdateGlobalConfig {
                    config: Some(settings),
                })
                .await?;
            out.reply(&reply, "message_update_global_config_response")
        }
        ConfigAction::Get => {
            let client = global.connect().await?;
            let reply = client
                .get_global_config(unary::MessageGetGlobalConfig {})
                .await?;
            out.reply(&reply, "message_get_global_config_response")
        }
    }
}
