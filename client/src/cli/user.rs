//! `leotest user --action register|get|modify|delete`.

use clap::{Args, ValueEnum};
use leotest_client::leotest_proto::unary;

use super::{CliError, CliResult, Global, Output};

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum UserAction {
    Register,
    Get,
    Modify,
    Delete,
}

/// Role names as the original CLI spells them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Role {
    Admin,
    User,
    #[value(name = "user_priv")]
    UserPriv,
    Node,
    #[value(name = "node_priv")]
    NodePriv,
}

impl From<Role> for unary::UserRoles {
    fn from(role: Role) -> Self {
        match role {
            Role::Admin => unary::UserRoles::Admin,
            Role::User => unary::UserRoles::User,
            Role::UserPriv => unary::UserRoles::UserPriv,
            Role::Node => unary::UserRoles::Node,
            Role::NodePriv => unary::UserRoles::NodePriv,
        }
    }
}

#[derive(Debug, Args)]
#[command(
    after_help = "Example: leotest user --action=register --id=alice --name=Alice --role=user --team=lab"
)]
pub struct UserArgs {
    /// Action to perform on the user
    #[arg(long, value_enum)]
    pub action: UserAction,
    /// User id
    #[arg(long)]
    pub id: String,
    /// Name of the user (register, modify)
    #[arg(long)]
    pub name: Option<String>,
    /// Role (required for register and modify)
    #[arg(long, value_enum)]
    pub role: Option<Role>,
    /// Team (register, modify)
    #[arg(long)]
    pub team: Option<String>,
}

fn role_for(args: &UserArgs) -> Result<i32, CliError> {
    args.role
        .map(|r| unary::UserRoles::from(r) as i32)
        .ok_or_else(|| CliError::Usage("user register/modify needs --role".into()))
}

pub async fn run(global: &Global, out: &Output, args: UserArgs) -> CliResult {
    let name = args.name.clone().unwrap_or_default();
    let team = args.team.clone().unwrap_or_default();
    match args.action {
        UserAction::Register => {
            let role = role_for(&args)?;
            let client = global.connect().await?;
            let reply = client
                .register_user(unary::MessageRegisterUser {
                    id: args.id,
                    name,
                    role,
                    team,
                })
                .await?;
            out.reply(&reply, "message_register_user_response")
        }
        UserAction::Get => {
            let client = global.connect().await?;
            let reply = client
                .get_user(unary::MessageGetUser { userid: args.id })
                .await?;
            out.reply(&reply, "message_get_user_response")
        }
        UserAction::Modify => {
            let role = role_for(&args)?;
            let client = global.connect().await?;
            let reply = client
                .modify_user(unary::MessageModifyUser {
                    id: args.id,
                    name,
                    role,
                    team,
                })
                .await?;
            out.reply(&reply, "message_modify_user_response")
        }
        UserAction::Delete => {
            let client = global.connect().await?;
            let reply = client
                .delete_user(unary::MessageDeleteUser { userid: args.id })
                .await?;
            out.reply(&reply, "message_delete_user_response")
        }
    }
}
