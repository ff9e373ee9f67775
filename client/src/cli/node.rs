//! `leotest node --action register|get|update|delete|scavenger-set|scavenger-unset|...`.

use clap::{Args, ValueEnum};
use leotest_client::leotest_proto::unary;

use super::{given, CliError, CliResult, Global, Output};

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub(crate) enum NodeAction {
    Register,
    Get,
    Update,
    Delete,
    ScavengerSet,
    ScavengerUnset,
    /// Show whether scavenger mode is on (new)
    ScavengerGet,
    /// Report a heartbeat for --nodeid (new)
    Heartbeat,
}

#[derive(Debug, Args)]
pub(crate) struct NodeArgs {
    /// Action to perform on the node
    #[arg(long, value_enum)]
    pub action: NodeAction,
    /// Node id
    #[arg(long)]
    pub nodeid: Option<String>,
    /// Name
    #[arg(long)]
    pub name: Option<String>,
    /// Location
    #[arg(long)]
    pub location: Option<String>,
    /// Last active time
    #[arg(long)]
    pub last_active: Option<String>,
    /// Public IP address of the node
    #[arg(long)]
    pub public_ip: Option<String>,
    /// Description
    #[arg(long)]
    pub description: Option<String>,
    /// Coordinates
    #[arg(long)]
    pub coords: Option<String>,
    /// Provider
    #[arg(long)]
    pub provider: Option<String>,
    /// get: only nodes active within --active-thres seconds
    #[arg(long, conflicts_with = "no_active")]
    pub active: bool,
    /// get: all nodes (default)
    #[arg(long)]
    pub no_active: bool,
    /// Active threshold in seconds (sent as given, 0 included)
    #[arg(long, default_value_t = 600, value_parser = clap::value_parser!(i32).range(0..))]
    pub active_thres: i32,
    /// delete: also delete the node's jobs
    #[arg(long, conflicts_with = "no_delete_jobs")]
    pub delete_jobs: bool,
    /// delete: keep the node's jobs (default)
    #[arg(long)]
    pub no_delete_jobs: bool,
}

fn opt(v: &Option<String>) -> String {
    v.clone().unwrap_or_default()
}

impl NodeArgs {
    fn require_nodeid(&self) -> Result<String, CliError> {
        self.nodeid
            .clone()
            .filter(|n| !n.is_empty())
            .ok_or_else(|| CliError::Usage("this node action needs --nodeid".into()))
    }

    /// `get_nodes`: the filters the user gave, as the original client (`--active` only when
    /// set; `--active-thres` always, its default 600 included, as the original CLI sends it).
    pub(super) fn get_request(&self) -> unary::MessageGetNodes {
        unary::MessageGetNodes {
            nodeid: given(&self.nodeid),
            location: given(&self.location),
            name: given(&self.name),
            provider: given(&self.provider),
            active: self.active.then_some(true),
            active_thres: Some(self.active_thres),
        }
    }

    /// `update_node`: only the fields the user gave; the others stay as they are.
    pub(super) fn update_request(&self) -> Result<unary::MessageUpdateNode, CliError> {
        Ok(unary::MessageUpdateNode {
            nodeid: self.require_nodeid()?,
            name: given(&self.name),
            description: given(&self.description),
            last_active: given(&self.last_active),
            coords: given(&self.coords),
            location: given(&self.location),
            provider: given(&self.provider),
            public_ip: given(&self.public_ip),
        })
    }
}

pub(super) async fn run(global: &Global, out: &Output, args: NodeArgs) -> CliResult {
    match args.action {
        NodeAction::Register => {
            let node = unary::Node {
                nodeid: args.require_nodeid()?,
                name: opt(&args.name),
                description: opt(&args.description),
                coords: opt(&args.coords),
                location: opt(&args.location),
                provider: opt(&args.provider),
                ..Default::default()
            };
            let client = global.connect().await?;
            let reply = client
                .register_node(unary::MessageRegisterNode { node: Some(node) })
                .await?;
            out.reply(&reply, "message_register_node_response")
        }
        NodeAction::Get => {
            let client = global.connect().await?;
            let reply = client.get_nodes(args.get_request()).await?;
            out.reply(&reply, "message_get_nodes_response")
        }
        NodeAction::Update => {
            let request = args.update_request()?;
            let client = global.connect().await?;
            let reply = client.update_node(request).await?;
            out.reply(&reply, "message_update_node_response")
        }
        NodeAction::Delete => {
            let nodeid = args.require_nodeid()?;
            let client = global.connect().await?;
            let reply = client
                .delete_node(unary::MessageDeleteNode {
                    nodeid,
                    delete_jobs: args.delete_jobs,
                })
                .await?;
            out.reply(&reply, "message_delete_node_response")
        }
        NodeAction::ScavengerSet | NodeAction::ScavengerUnset => {
            let nodeid = args.require_nodeid()?;
            let client = global.connect().await?;
            let reply = client
                .set_scavenger_status(unary::MessageSetScavengerStatus {
                    nodeid,
                    scavenger_mode_active: args.action == NodeAction::ScavengerSet,
                })
                .await?;
            out.reply(&reply, "message_set_scavenger_status_response")
        }
        NodeAction::ScavengerGet => {
            let nodeid = args.require_nodeid()?;
            let client = global.connect().await?;
            let reply = client
                .get_scavenger_status(unary::MessageGetScavengerStatus { nodeid })
                .await?;
            out.reply(&reply, "message_get_scavenger_status_response")
        }
        NodeAction::Heartbeat => {
            let nodeid = args.require_nodeid()?;
            let client = global.connect().await?;
            let reply = client
                .report_heartbeat(unary::MessageHeartbeat { nodeid })
                .await?;
            out.reply(&reply, "message_heartbeat_response")
        }
    }
}
