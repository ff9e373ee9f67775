//! `leotest user --action register|get|modify|delete`.

use clap::{Args, ValueEnum};
use leotest_client::leotest_proto::unary;

use super::{CliError, CliResult, Global, Output};

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub(crate) enum UserAction {
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
pub(crate) struct UserArgs {
    /// Action to perform on the user
    #[arg(long, value_enum)]
    pub action: UserAction,
    /// User id
    #[arg(long)]
    pub id: String,
    /// Name of the user (register; modify changes only the fields given)
    #[arg(long)]
    pub name: Option<String>,
    /// Role (required for register; modify keeps the current one when not given)
    #[arg(long, value_enum)]
    pub role: Option<Role>,
    /// Team (register, modify)
    #[arg(long)]
    pub team: Option<String>,
}

fn role_for(args: &UserArgs) -> Result<i32, CliError> {
    args.role
        .map(|r| unary::UserRoles::from(r) as i32)
        .ok_or_else(|| CliError::Usage("user register needs --role".into()))
}

pub(super) async fn run(global: &Global, out: &Output, args: UserArgs) -> CliResult {
    match args.action {
        UserAction::Register => {
            let role = role_for(&args)?;
            let client = global.connect().await?;
            let reply = client
                .register_user(unary::MessageRegisterUser {
                    id: args.id,
                    name: args.name.unwrap_or_default(),
                    role,
                    team: args.team.unwrap_or_default(),
                })
                .await?;
            out.reply(&reply, "message_register_user_response")
        }
        UserAction::Get => {
            let client = global.connect().await?;
            let what = format!("user {:?}", args.id);
            let reply = client
                .get_user(unary::MessageGetUser { userid: args.id })
                .await?;
            out.record(&reply, "message_get_user_response", &what)
        }
        UserAction::Modify => {
            if args.name.is_none() && args.role.is_none() && args.team.is_none() {
                return Err(CliError::Usage(
                    "user modify: give at least one of --name, --role, --team".into(),
                ));
            }
            let client = global.connect().await?;
            // modify_user replaces every field: read the record first so that only the
            // fields given change (the original blanked the others).
            let current = if args.name.is_none() || args.role.is_none() || args.team.is_none() {
                let reply = client
                    .get_user(unary::MessageGetUser {
                        userid: args.id.clone(),
                    })
                    .await?;
                if !reply.exists {
                    return Err(CliError::NotFound(format!("user {:?} not found", args.id)));
                }
                Some(reply)
            } else {
                None
            };
            let keep = |given: Option<String>, f: fn(&unary::MessageGetUserResponse) -> String| {
                given.unwrap_or_else(|| current.as_ref().map(f).unwrap_or_default())
            };
            let role = match (args.role, &current) {
                (Some(r), _) => unary::UserRoles::from(r) as i32,
                (None, Some(c)) => c.role,
                (None, None) => unary::UserRoles::User as i32,
            };
            let reply = client
                .modify_user(unary::MessageModifyUser {
                    name: keep(args.name, |c| c.name.clone()),
                    team: keep(args.team, |c| c.team.clone()),
                    id: args.id,
                    role,
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
