//! `kernel_access`: may a user reconfigure kernel settings on a node?

use leotest_proto::unary::*;

use super::{state, Ctx};
use crate::auth::Caller;
use crate::error::ServiceResult;
use crate::logsafe::untrusted;
use crate::policy;

/// `kernel_access`: whether a user may use the kernel service (NODE and ADMIN callers may ask).
pub async fn kernel_access(
    ctx: &Ctx,
    caller: &Caller,
    req: MessageKernelAccess,
) -> ServiceResult<MessageKernelAccessResponse> {
    let (ok, message) = if !policy::may_check_kernel_access(caller) {
        (false, policy::denied(caller))
    } else {
        match ctx.store.get_user(&req.userid).await? {
            Some(user) if policy::has_kernel_access(user.role) => (
                true,
                format!(
                    "userid={} role={} has access to kernel services",
                    req.userid,
                    user.role.name()
                ),
            ),
            Some(user) => (
                false,
                format!(
                    "userid={} role={} does not have access to kernel services \
                     (higher access level required)",
                    req.userid,
                    user.role.name()
                ),
            ),
            None => (false, format!("userid={} does not exist", req.userid)),
        }
    };
    tracing::debug!(
        userid = %untrusted(&caller.userid),
        subject = %untrusted(&req.userid),
        ok,
        "kernel_access"
    );
    Ok(MessageKernelAccessResponse {
        state: state(ok),
        message,
    })
}
