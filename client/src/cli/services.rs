//! `leotest services --name kernel --action verify --verify-userid ID`.

use clap::{Args, ValueEnum};

use super::{CliResult, Global, Output};

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub(crate) enum ServiceName {
    Kernel,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub(crate) enum ServiceAction {
    Verify,
}

#[derive(Debug, Args)]
pub(crate) struct ServicesArgs {
    /// Name of the service
    #[arg(long, value_enum)]
    pub name: ServiceName,
    /// Verify whether the user has access to the service
    #[arg(long, value_enum)]
    pub action: ServiceAction,
    /// User id to verify
    #[arg(long)]
    pub verify_userid: String,
}

pub(super) async fn run(global: &Global, out: &Output, args: ServicesArgs) -> CliResult {
    match (args.name, args.action) {
        (ServiceName::Kernel, ServiceAction::Verify) => {
            let client = global.connect().await?;
            let reply = client.kernel_access(&args.verify_userid).await?;
            out.reply(&reply, "message_kernel_access_response")
        }
    }
}
