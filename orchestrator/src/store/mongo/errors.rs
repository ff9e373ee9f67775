//! What the MongoDB driver's errors mean to the store (unavailable, a duplicate key), and what is
//! checked or hidden before a connection string and database name are used.

use mongodb::error::{Error as MongoError, ErrorKind, WriteFailure};

use crate::store::{StoreError, StoreResult};

/// Longest database name MongoDB accepts.
const MAX_DB_NAME: usize = 63;

/// Server error codes that mean "not now, ask again": the primary is changing (stepped down,
/// shutting down, not writable, interrupted by a state change), the network between members
/// failed, or a write concern could not be confirmed in time. A client retrying after an
/// election succeeds, so they become [`StoreError::Unavailable`] (gRPC UNAVAILABLE), never
/// INTERNAL. From MongoDB's `error_codes.yml` (the "NotPrimaryError", "ShutdownError",
/// "RetriableError" and "WriteConcernError" categories).
const UNAVAILABLE_CODES: &[i32] = &[
    6,     // HostUnreachable
    7,     // HostNotFound
    64,    // WriteConcernFailed (wtimeout)
    89,    // NetworkTimeout
    91,    // ShutdownInProgress
    100,   // UnsatisfiableWriteConcern (not enough data-bearing members up)
    189,   // PrimarySteppedDown
    262,   // ExceededTimeLimit
    9001,  // SocketException
    10107, // NotWritablePrimary
    11600, // InterruptedAtShutdown
    11602, // InterruptedDueToReplStateChange
    13435, // NotPrimaryNoSecondaryOk
    13436, // NotPrimaryOrSecondary
];

/// The driver's label on errors after which a write may be sent again.
const RETRYABLE_WRITE_ERROR: &str = "RetryableWriteError";

/// The store error of a driver error: [`StoreError::Unavailable`] for everything a retry can
/// cure (no server selectable, network, failover, unconfirmed write concern), `Backend`
/// (INTERNAL) for the rest.
pub(super) fn backend(e: MongoError) -> StoreError {
    if is_transient(&e) {
        StoreError::Unavailable(e.to_string())
    } else {
        StoreError::Backend(e.to_string())
    }
}

/// Whether a retry (by the client, or by us for idempotent writes) can succeed.
pub(super) fn is_transient(e: &MongoError) -> bool {
    if e.contains_label(RETRYABLE_WRITE_ERROR) {
        return true;
    }
    match &*e.kind {
        ErrorKind::ServerSelection { .. }
        | ErrorKind::Io(_)
        | ErrorKind::ConnectionPoolCleared { .. }
        | ErrorKind::DnsResolve { .. }
        | ErrorKind::Authentication { .. } => true,
        ErrorKind::Command(c) => UNAVAILABLE_CODES.contains(&c.code),
        // The write may or may not have been applied on a majority: its outcome is unknown,
        // which a client must treat as "retry", never as a fault of the request.
        ErrorKind::Write(WriteFailure::WriteConcernError(_)) => true,
        ErrorKind::Write(WriteFailure::WriteError(w)) => UNAVAILABLE_CODES.contains(&w.code),
        ErrorKind::InsertMany(f) => {
            f.write_concern_error.is_some()
                || f.write_errors
                    .as_ref()
                    .is_some_and(|errs| errs.iter().any(|w| UNAVAILABLE_CODES.contains(&w.code)))
        }
        _ => false,
    }
}

/// MongoDB's E11000 duplicate key error code.
pub(super) const DUPLICATE_KEY: i32 = 11000;

/// MongoDB's E11000 duplicate key error.
pub(super) fn is_duplicate_key(e: &MongoError) -> bool {
    match &*e.kind {
        ErrorKind::Write(WriteFailure::WriteError(w)) => w.code == DUPLICATE_KEY,
        ErrorKind::Command(c) => c.code == DUPLICATE_KEY,
        _ => false,
    }
}

/// The `user:password@` part of a connection string, if any, so it can be kept out of errors.
pub(super) fn userinfo(uri: &str) -> Option<&str> {
    let rest = uri.split_once("://")?.1;
    let authority = rest.split(['/', '?']).next()?;
    let (info, _) = authority.rsplit_once('@')?;
    (!info.is_empty()).then_some(info)
}

pub(super) fn scrub(message: String, secret: Option<&str>) -> String {
    match secret {
        Some(s) => message.replace(s, "***"),
        None => message,
    }
}

/// MongoDB's rules for database names, checked before anything is sent.
pub(super) fn validate_db_name(name: &str) -> StoreResult<()> {
    let bad = name.is_empty()
        || name.len() > MAX_DB_NAME
        || name.chars().any(|c| {
            matches!(
                c,
                '/' | '\\' | '.' | ' ' | '"' | '$' | '*' | '<' | '>' | ':' | '|' | '?' | '\0'
            )
        });
    if bad {
        return Err(StoreError::Unavailable(format!(
            "invalid MongoDB database name {name:?}"
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn command_error(code: i32, name: &str) -> MongoError {
        let c: mongodb::error::CommandError =
            bson::from_document(bson::doc! { "code": code, "codeName": name, "errmsg": "x" })
                .expect("command error");
        MongoError::from(ErrorKind::Command(c))
    }

    #[test]
    fn failover_and_write_concern_errors_are_unavailable() {
        for (code, name) in [
            (10107, "NotWritablePrimary"),
            (189, "PrimarySteppedDown"),
            (91, "ShutdownInProgress"),
            (11602, "InterruptedDueToReplStateChange"),
            (64, "WriteConcernFailed"),
            (100, "UnsatisfiableWriteConcern"),
        ] {
            let e = backend(command_error(code, name));
            assert!(matches!(e, StoreError::Unavailable(_)), "{name}: {e:?}");
        }
        let wce: mongodb::error::WriteConcernError = bson::from_document(
            bson::doc! { "code": 64, "errmsg": "waiting for replication timed out" },
        )
        .expect("wce");
        let e = backend(MongoError::from(ErrorKind::Write(
            WriteFailure::WriteConcernError(wce),
        )));
        assert!(matches!(e, StoreError::Unavailable(_)), "{e:?}");
    }

    #[test]
    fn request_faults_stay_backend_errors() {
        for (code, name) in [
            (2, "BadValue"),
            (11000, "DuplicateKey"),
            (13, "Unauthorized"),
        ] {
            let e = backend(command_error(code, name));
            assert!(matches!(e, StoreError::Backend(_)), "{name}: {e:?}");
        }
    }

    #[test]
    fn userinfo_is_found_and_scrubbed() {
        assert_eq!(userinfo("mongodb://u:p%40ss@h:1/db"), Some("u:p%40ss"));
        assert_eq!(userinfo("mongodb://h:1/db?x=a@b"), None);
        assert_eq!(userinfo("mongodb://h"), None);
        assert_eq!(
            scrub("bad mongodb://u:pw@h".to_string(), Some("u:pw")),
            "bad mongodb://***@h"
        );
    }

    #[test]
    fn database_names_are_checked() {
        assert!(validate_db_name("leotest").is_ok());
        for bad in ["", "a.b", "a/b", "a b", "$x", &"x".repeat(64)] {
            assert!(validate_db_name(bad).is_err(), "{bad:?}");
        }
    }
}
