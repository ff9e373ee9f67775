//! The driver options the store runs with, built in one place from the connection string.
//!
//! The guarantees the booking relies on (an acknowledged write survives a failover, a booking's
//! read sees every earlier booking) hold only with a majority, journaled write concern, a
//! bounded wait for it, and reads from the primary. A connection string may set any of these;
//! [`harden`] fills in what it leaves out field by field (so `?wtimeoutMS=5000` alone keeps
//! `w: majority`) and overrides what would break the guarantees (a secondary read preference),
//! returning a warning for each setting it overrode or that weakens them, for the start-up log.

use std::time::Duration;

use mongodb::options::{
    Acknowledgment, ClientOptions, ReadPreference, SelectionCriteria, WriteConcern,
};

/// How long an operation waits for a server to select: long enough to ride out a replica-set
/// election (typically ~12 s, `electionTimeoutMillis` 10 s plus the vote), so a failover
/// shows as a slow answer instead of an error.
pub(super) const SELECTION_TIMEOUT: Duration = Duration::from_secs(15);

/// TCP connect timeout per attempt.
pub(super) const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// The longest a write waits for the majority to confirm it before answering "unavailable"
/// (without it `w: majority` waits for ever when a majority of data-bearing members is down,
/// e.g. primary-secondary-arbiter with the secondary down).
pub(super) const WRITE_TIMEOUT: Duration = Duration::from_secs(10);

/// How long start-up waits for the first answer, whatever the URI's selection timeout, so a
/// missing server fails start-up in seconds.
pub(super) const STARTUP_TIMEOUT: Duration = Duration::from_secs(5);

/// `opts` (parsed from the operator's URI) made safe for the store; plus warnings to log.
pub(super) fn harden(mut opts: ClientOptions) -> (ClientOptions, Vec<String>) {
    let mut warnings = Vec::new();
    opts.server_selection_timeout
        .get_or_insert(SELECTION_TIMEOUT);
    opts.connect_timeout.get_or_insert(CONNECT_TIMEOUT);

    // Field by field: an operator's `wtimeoutMS` must not drop the majority/journal default.
    let mut wc = opts.write_concern.take().unwrap_or_default();
    match &wc.w {
        None => wc.w = Some(Acknowledgment::Majority),
        Some(Acknowledgment::Majority) => {}
        Some(other) => warnings.push(format!(
            "write concern w={other:?} from the connection string: an acknowledged booking \
             may be lost in a failover (w=majority is the default)"
        )),
    }
    if wc.journal.is_none() {
        wc.journal = Some(true);
    } else if wc.journal == Some(false) {
        warnings.push(
            "journal=false from the connection string: an acknowledged write may be lost \
             when servers restart"
                .to_string(),
        );
    }
    if wc.w_timeout.is_none() || wc.w_timeout == Some(Duration::ZERO) {
        // wtimeoutMS=0 means "wait for ever", which is what this default exists to prevent.
        wc.w_timeout = Some(WRITE_TIMEOUT);
    }
    opts.write_concern = Some(wc);

    // Every read of the store decides something (a booking, an id's owner): a lagging
    // secondary would let a booking overlap one it cannot see yet.
    let primary = SelectionCriteria::ReadPreference(ReadPreference::Primary);
    match &opts.selection_criteria {
        None => {}
        Some(SelectionCriteria::ReadPreference(ReadPreference::Primary)) => {}
        Some(other) => warnings.push(format!(
            "read preference {other:?} from the connection string ignored: the store reads \
             from the primary"
        )),
    }
    opts.selection_criteria = Some(primary);

    // One host, no replicaSet, no directConnection: the driver discovers the topology, and
    // if that host is a replica-set member it switches to the member names in the set's own
    // configuration, which may not resolve from here (containers).
    if opts.hosts.len() == 1 && opts.repl_set_name.is_none() && opts.direct_connection.is_none() {
        warnings.push(
            "one host without replicaSet= or directConnection=: if it is a replica-set \
             member, the driver switches to the host names in the set's configuration; \
             name the set (replicaSet=) or pin the host (directConnection=true)"
                .to_string(),
        );
    }
    if opts.app_name.is_none() {
        opts.app_name = Some("leotest-orchestrator".to_string());
    }
    (opts, warnings)
}

/// The effective write concern and read preference, for the start-up log (no credentials).
pub(super) fn describe(opts: &ClientOptions) -> String {
    let wc = opts.write_concern.clone().unwrap_or_default();
    format!(
        "w={:?} j={:?} wtimeout={:?} read={:?} selection_timeout={:?} direct={:?} replica_set={:?}",
        wc.w,
        wc.journal,
        wc.w_timeout,
        opts.selection_criteria,
        opts.server_selection_timeout,
        opts.direct_connection,
        opts.repl_set_name,
    )
}

/// A write concern of `w: majority` with the journal and this wait, for probes.
pub(super) fn majority(wait: Duration) -> WriteConcern {
    WriteConcern::builder()
        .w(Acknowledgment::Majority)
        .journal(true)
        .w_timeout(wait)
        .build()
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn hardened(uri: &str) -> (ClientOptions, Vec<String>) {
        harden(ClientOptions::parse(uri).await.expect("parse"))
    }

    #[tokio::test]
    async fn defaults_are_majority_journal_and_bounded() {
        let (o, _) = hardened("mongodb://db:27017/?replicaSet=rs0").await;
        let wc = o.write_concern.expect("wc");
        assert_eq!(wc.w, Some(Acknowledgment::Majority));
        assert_eq!(wc.journal, Some(true));
        assert_eq!(wc.w_timeout, Some(WRITE_TIMEOUT));
        assert_eq!(o.server_selection_timeout, Some(SELECTION_TIMEOUT));
        assert!(
            SELECTION_TIMEOUT >= Duration::from_secs(12),
            "an election fits"
        );
        assert_eq!(
            o.selection_criteria,
            Some(SelectionCriteria::ReadPreference(ReadPreference::Primary))
        );
    }

    #[tokio::test]
    async fn a_wtimeout_alone_keeps_majority_and_journal() {
        let (o, _) = hardened("mongodb://db:27017/?replicaSet=rs0&wtimeoutMS=5000").await;
        let wc = o.write_concern.expect("wc");
        assert_eq!(wc.w, Some(Acknowledgment::Majority));
        assert_eq!(wc.journal, Some(true));
        assert_eq!(wc.w_timeout, Some(Duration::from_secs(5)));
    }

    #[tokio::test]
    async fn journal_alone_keeps_majority_and_gets_a_timeout() {
        let (o, _) = hardened("mongodb://db:27017/?replicaSet=rs0&journal=true").await;
        let wc = o.write_concern.expect("wc");
        assert_eq!(wc.w, Some(Acknowledgment::Majority));
        assert_eq!(wc.w_timeout, Some(WRITE_TIMEOUT));
    }

    #[tokio::test]
    async fn an_explicit_weaker_w_is_kept_but_warned_about() {
        let (o, warnings) = hardened("mongodb://db:27017/?replicaSet=rs0&w=1").await;
        assert_eq!(
            o.write_concern.expect("wc").w,
            Some(Acknowledgment::Nodes(1))
        );
        assert!(warnings.iter().any(|w| w.contains("w=")), "{warnings:?}");
    }

    #[tokio::test]
    async fn an_infinite_wtimeout_is_bounded() {
        let (o, _) = hardened("mongodb://db:27017/?replicaSet=rs0&wtimeoutMS=0").await;
        assert_eq!(o.write_concern.expect("wc").w_timeout, Some(WRITE_TIMEOUT));
    }

    #[tokio::test]
    async fn secondary_reads_are_forced_to_the_primary() {
        for pref in ["secondary", "secondaryPreferred", "nearest"] {
            let uri = format!("mongodb://db:27017/?replicaSet=rs0&readPreference={pref}");
            let (o, warnings) = hardened(&uri).await;
            assert_eq!(
                o.selection_criteria,
                Some(SelectionCriteria::ReadPreference(ReadPreference::Primary)),
                "{pref}"
            );
            assert!(
                warnings.iter().any(|w| w.contains("read preference")),
                "{pref}"
            );
        }
    }

    #[tokio::test]
    async fn tls_allow_invalid_hostnames_is_refused_as_the_readme_says() {
        let uri = "mongodb://db:27017/?tls=true&tlsAllowInvalidHostnames=true";
        assert!(ClientOptions::parse(uri).await.is_err());
    }

    #[tokio::test]
    async fn uri_timeouts_are_kept() {
        let (o, _) = hardened("mongodb://db:27017/?serverSelectionTimeoutMS=300").await;
        assert_eq!(o.server_selection_timeout, Some(Duration::from_millis(300)));
    }

    #[tokio::test]
    async fn a_single_host_without_topology_hint_is_warned_about() {
        let (_, warnings) = hardened("mongodb://db:27017/").await;
        assert!(warnings.iter().any(|w| w.contains("directConnection")));
        for uri in [
            "mongodb://db:27017/?directConnection=true",
            "mongodb://db:27017/?replicaSet=rs0",
            "mongodb://a:27017,b:27017/",
        ] {
            let (_, warnings) = hardened(uri).await;
            assert!(
                !warnings.iter().any(|w| w.contains("directConnection")),
                "{uri}: {warnings:?}"
            );
        }
    }
}
