//! What the MongoDB driver's errors mean to the store (unavailable, a duplicate key), and what is
//! checked or hidden before a connection string and database name are used.

use mongodb::error::{Error as MongoError, ErrorKind, WriteFailure};

use crate::store::{StoreError, StoreResult};

/// Longest database name MongoDB accepts.
const MAX_DB_NAME: usize = 63;

pub(super) fn backend(e: MongoError) -> StoreError {
    match *e.kind {
        ErrorKind::ServerSelection { .. }
        | ErrorKind::Io(_)
        | ErrorKind::ConnectionPoolCleared { .. }
        | ErrorKind::DnsResolve { .. }
        | ErrorKind::Authentication { .. } => StoreError::Unavailable(e.to_string()),
        _ => StoreError::Backend(e.to_string()),
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
