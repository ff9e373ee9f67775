//! `Store::book` on the embedded store: under the in-process per-node locks (one process per
//! data directory, see `lock`), deciding on the kept lists of `node_jobs`, then one write.

use rusqlite::params;

use super::schema::*;
use super::EmbeddedStore;
use crate::store::booking::lock_order;
use crate::store::model::*;
use crate::store::{Booked, BookingWrite, Decide, StoreResult};

/// Books time on `nodes` (see `Store::book`).
pub(super) async fn book(
    s: &EmbeddedStore,
    nodes: &[String],
    decide: &mut Decide<'_>,
) -> StoreResult<Booked> {
    // Every write that books time goes through here under these locks, and reads taken
    // after a commit see it (WAL): the decision always sees the previous booking.
    let locked = lock_order(nodes);
    let _held = s.inner.booking.lock(&locked).await;
    let mut lists = Vec::with_capacity(nodes.len());
    for node in nodes {
        lists.push(s.booking_list(node).await?);
    }
    let views: Vec<&[Job]> = lists.iter().map(|l| l.as_slice()).collect();
    let decision = decide(&views);
    // Released before the write, so appending to the kept lists needs no copy.
    drop(views);
    drop(lists);
    match decision {
        None => Ok(Booked::Refused),
        Some(BookingWrite::Insert(job)) => Ok(if s.insert_job(&job, Some(&locked)).await? {
            Booked::Written
        } else {
            Booked::IdTaken
        }),
        Some(BookingWrite::SetDates {
            id,
            start_date,
            end_date,
            was_start,
            was_end,
        }) => {
            let moved = s
                .write(move |conn, inner| {
                    // The job may be in the kept lists of other nodes (as a server).
                    inner.node_jobs.forget_all();
                    Ok(conn.execute(
                        &format!(
                            "UPDATE jobs SET start_date = ?, end_date = ? WHERE id = ? \
                             AND start_date = ? AND end_date = ? AND {JOB_LIVE}"
                        ),
                        params![
                            start_date,
                            end_date,
                            id,
                            was_start,
                            was_end,
                            inner.now_micros()
                        ],
                    )? == 1)
                })
                .await?;
            Ok(if moved { Booked::Written } else { Booked::Gone })
        }
    }
}
