//! User RPCs: register, get, modify and delete users (ADMIN only, except get).

use leotest_proto::unary::*;

use super::{state, validate, Ctx};
use crate::auth::Caller;
use crate::error::{ServiceError, ServiceResult};
use crate::logsafe::untrusted;
use crate::policy;
use crate::store::{Role, User};
use crate::tokens;

/// Validates the fields shared by register and modify; `Err` is the reply message. Name and
/// team are free text.
fn check_profile(id: &str, role: i32) -> Result<Role, String> {
    validate::id("id", id)?;
    Role::from_i32(role).ok_or_else(|| format!("invalid role: {role}"))
}

/// A fresh token for a new identity; a failing OS random source is a server fault.
pub(crate) fn new_token() -> ServiceResult<String> {
    tokens::issue().map_err(|e| ServiceError::Internal(e.to_string()))
}

/// `register_user`: ADMIN registers a user and gets its token.
pub async fn register_user(
    ctx: &Ctx,
    caller: &Caller,
    req: MessageRegisterUser,
) -> ServiceResult<MessageRegisterUserResponse> {
    if !policy::is_admin(caller) {
        return Ok(MessageRegisterUserResponse {
            state: state(false),
            message: policy::denied(caller),
        });
    }
    let role = match check_profile(&req.id, req.role) {
        Ok(role) => role,
        Err(message) => {
            return Ok(MessageRegisterUserResponse {
                state: state(false),
                message,
            })
        }
    };
    let token = new_token()?;
    let user = User {
        id: req.id,
        name: req.name,
        role,
        team: req.team,
        static_access_token: tokens::stored_form(&token, ctx.tokens),
        access_token: String::new(),
    };
    let inserted = ctx.store.add_user(&user).await?;
    tracing::info!(id = %untrusted(&user.id), role = role.name(), inserted, "register_user");
    let message = if inserted {
        format!("user registered access_token={token}")
    } else {
        "user with given id already exists".to_string()
    };
    Ok(MessageRegisterUserResponse {
        state: state(inserted),
        message,
    })
}

/// `get_user`: a user's profile (never its token).
pub async fn get_user(
    ctx: &Ctx,
    _caller: &Caller,
    req: MessageGetUser,
) -> ServiceResult<MessageGetUserResponse> {
    Ok(match ctx.store.get_user(&req.userid).await? {
        Some(user) => MessageGetUserResponse {
            exists: true,
            id: user.id,
            name: user.name,
            role: user.role.as_i32(),
            team: user.team,
        },
        None => MessageGetUserResponse {
            exists: false,
            role: UserRoles::User as i32,
            ..Default::default()
        },
    })
}

/// `modify_user`: ADMIN changes a user's profile.
pub async fn modify_user(
    ctx: &Ctx,
    caller: &Caller,
    req: MessageModifyUser,
) -> ServiceResult<MessageModifyUserResponse> {
    let reply = |ok: bool, message: String| MessageModifyUserResponse {
        state: state(ok),
        message,
    };
    if !policy::is_admin(caller) {
        return Ok(reply(false, policy::denied(caller)));
    }
    let role = match check_profile(&req.id, req.role) {
        Ok(role) => role,
        Err(message) => return Ok(reply(false, message)),
    };
    // Unlike the original, the stored tokens are kept (it erased them).
    let changed = ctx
        .store
        .modify_user(&req.id, &req.name, role, &req.team)
        .await?;
    tracing::info!(id = %untrusted(&req.id), role = role.name(), changed, "modify_user");
    Ok(if changed {
        reply(true, "user updated".to_string())
    } else {
        reply(false, "user with given id does not exist".to_string())
    })
}

/// `delete_user`: ADMIN deletes a user.
pub async fn delete_user(
    ctx: &Ctx,
    caller: &Caller,
    req: MessageDeleteUser,
) -> ServiceResult<MessageDeleteUserResponse> {
    let reply = |ok: bool, message: String| MessageDeleteUserResponse {
        state: state(ok),
        message,
    };
    if !policy::is_admin(caller) {
        return Ok(reply(false, policy::denied(caller)));
    }
    let deleted = ctx.store.delete_user(&req.userid).await?;
    tracing::info!(id = %untrusted(&req.userid), deleted, "delete_user");
    Ok(if deleted {
        reply(true, "user deleted".to_string())
    } else {
        reply(false, "user with given id does not exist".to_string())
    })
}
