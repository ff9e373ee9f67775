//! Runs in the embedded store (table `runs`; an updated run keeps its place).

use rusqlite::params_from_iter;
use rusqlite::types::Value;

use super::rows::*;
use super::schema::*;
use super::EmbeddedStore;
use crate::store::model::*;
use crate::store::StoreResult;

pub(super) async fn update_run(s: &EmbeddedStore, run: &Run) -> StoreResult<()> {
    let r = run.clone();
    s.write(move |conn, _| {
        let mut st = conn.prepare_cached(&format!(
            "INSERT INTO runs ({RUN_COLS}) VALUES ({RUN_PARAMS}) ON CONFLICT (runid) DO UPDATE \
             SET {RUN_UPDATE}"
        ))?;
        exec_run(&mut st, &r)?;
        Ok(())
    })
    .await
}

pub(super) async fn insert_runs(s: &EmbeddedStore, runs: &[Run]) -> StoreResult<u64> {
    let runs = runs.to_vec();
    s.write(move |conn, _| {
        // One transaction: one fsync for the whole batch instead of one per run.
        let tx = conn.transaction()?;
        let mut inserted = 0u64;
        {
            let mut st = tx.prepare(&format!(
                "INSERT OR IGNORE INTO runs ({RUN_COLS}) VALUES ({RUN_PARAMS})"
            ))?;
            for r in &runs {
                inserted += exec_run(&mut st, r)? as u64;
            }
        }
        tx.commit()?;
        Ok(inserted)
    })
    .await
}

pub(super) async fn get_runs(s: &EmbeddedStore, filter: &RunFilter) -> StoreResult<Vec<Run>> {
    let mut c = Conditions::default();
    c.eq_text("runid", &filter.runid);
    c.eq_text("jobid", &filter.jobid);
    c.eq_text("nodeid", &filter.nodeid);
    c.eq_text("userid", &filter.userid);
    if let Some(t) = filter.start_from {
        c.push("start_time >= ?", Value::Integer(micros(t)));
    }
    if let Some(t) = filter.start_to {
        c.push("start_time <= ?", Value::Integer(micros(t)));
    }
    let limit = match filter.limit {
        Some(n) if n > 0 => format!(" LIMIT {n}"),
        _ => String::new(),
    };
    s.read(move |conn| {
        let sql = format!(
            "SELECT {RUN_COLS} FROM runs{} ORDER BY rowid{limit}",
            c.where_sql()
        );
        let mut stmt = conn.prepare(&sql)?;
        let rows = stmt.query_map(params_from_iter(c.values.iter()), run_from_row)?;
        Ok(rows.collect::<rusqlite::Result<Vec<_>>>()?)
    })
    .await
}
