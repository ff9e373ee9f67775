//! Client-side scheduling checks and `job --action=plan`: a dry run for a job that does not
//! exist yet. The node's booked runs come from `get_scheduled_runs` (every job of the node,
//! whoever owns it); the new job's runs are computed here and compared with the booked
//! overhead runs under a rule wider than both of the orchestrator's (`--overlap-rules
//! original` counts runs that merely touch, and for two cron jobs compares starts closer than
//! the new job's length; `strict` any intersection), so a slot reported free is free under
//! either. The nearest free slot is searched for one-off (atq) jobs.

use chrono::{DateTime, Duration, Utc};
use leotest_client::leotest_proto::unary;
use leotest_client::LeotestClient;
use serde_json::{json, Value};

use super::args::{JobArgs, JobKind};
use crate::cli::cron::Cron;
use crate::cli::times::{self, TimeZone};
use crate::cli::CliError;

/// Most runs of the new job examined (a year of a job every 10 minutes is 52 560).
const MAX_RUNS: usize = 100_000;
/// Most conflicts listed.
const MAX_LISTED: usize = 20;

/// The schedule a job command describes, checked.
#[derive(Debug, Clone)]
pub(super) struct Checked {
    pub start: DateTime<Utc>,
    pub end: DateTime<Utc>,
    pub length: i64,
    pub cron: Option<Cron>,
}

fn usage(msg: String) -> CliError {
    CliError::Usage(msg)
}

/// The checks a schedule must pass before it is sent: dates present, readable, in order
/// and not over; a length; a cron expression for cron jobs. `now` is passed in for tests.
pub(super) fn check(args: &JobArgs, now: DateTime<Utc>) -> Result<Checked, CliError> {
    let action = "job schedule";
    let (Some(start_text), Some(end_text)) = (&args.start_date, &args.end_date) else {
        return Err(usage(format!(
            "{action} needs --start-date and --end-date (ISO 8601 YYYY-MM-DDTHH:MM:SSZ, or {})",
            times::RELATIVE_FORMS
        )));
    };
    let parse = |flag: &str, text: &str| {
        times::parse(text).ok_or_else(|| {
            usage(format!(
                "{flag} {text:?} is not a date (ISO 8601 YYYY-MM-DDTHH:MM:SSZ, or {})",
                times::RELATIVE_FORMS
            ))
        })
    };
    let start = parse("--start-date", start_text)?;
    let end = parse("--end-date", end_text)?;
    if end <= start {
        return Err(usage(format!(
            "--end-date {end_text} is not after --start-date {start_text}"
        )));
    }
    if end <= now {
        return Err(usage(format!(
            "--end-date {end_text} is in the past (now {}): the job would never run",
            TimeZone::Utc.format(now)
        )));
    }
    let Some(length) = args.length else {
        return Err(usage(format!(
            "{action} needs --length SECONDS (how long each run takes; the slot it books)"
        )));
    };
    let cron = match args.kind {
        JobKind::Cron => {
            let text = args.schedule.as_deref().unwrap_or("").trim();
            if text.is_empty() {
                return Err(usage(
                    "--type=cron needs --schedule 'MIN HOUR DAY MONTH WEEKDAY' (e.g. '*/10 * * * *'); \
                     use --type=atq for a single run at --start-date"
                        .into(),
                ));
            }
            Some(Cron::parse(text).map_err(usage)?)
        }
        JobKind::Atq => None,
    };
    Ok(Checked {
        start,
        end,
        length: i64::from(length),
        cron,
    })
}

/// Warns when the node is not registered (the orchestrator accepts jobs for unknown nodes,
/// as the original did: the node may register later). Quiet when the check cannot be made.
pub(super) async fn warn_unknown_node(client: &LeotestClient, nodeid: &str) {
    let reply = client
        .get_nodes(unary::MessageGetNodes {
            nodeid: Some(nodeid.to_string()),
            ..Default::default()
        })
        .await;
    if let Ok(r) = reply {
        if !r.nodes.iter().any(|n| n.nodeid == nodeid) {
            eprintln!(
                "warn: node {nodeid:?} is not registered (`leotest node --action=get` lists the \
                 nodes); its runs start only once it is"
            );
        }
    }
}

/// A booked run on the node.
struct Booked {
    job: String,
    start: DateTime<Utc>,
    end: DateTime<Utc>,
}

/// Whether a run `a` of length `len` may conflict with booked run `b`: the closed intervals
/// meet (touching counts, as in the original's atq rule), or the starts are closer than `len`
/// (the original's cron rule, which applies the new job's length on both sides).
fn overlaps(a: (DateTime<Utc>, DateTime<Utc>), b: &Booked) -> bool {
    let len = a.1 - a.0;
    (a.0 <= b.end && b.start <= a.1) || (a.0 - b.start).abs() < len
}

/// The dry run: returns the report and whether the job as asked would be free of conflicts.
pub(super) async fn plan(
    client: &LeotestClient,
    args: &JobArgs,
    checked: &Checked,
    tz: TimeZone,
) -> Result<(Value, bool), CliError> {
    let nodeid = args
        .nodeid
        .clone()
        .ok_or_else(|| usage("job plan needs --nodeid".into()))?;
    let len = Duration::seconds(checked.length);
    let runs: Vec<DateTime<Utc>> = match &checked.cron {
        Some(c) => c.runs(checked.start, checked.end, MAX_RUNS),
        None => vec![checked.start],
    };
    // Everything booked that could touch the window (runs that started up to a day before).
    let reply = client
        .get_scheduled_runs(unary::MessageGetScheduledRuns {
            nodeid: nodeid.clone(),
            start: TimeZone::Utc.format(checked.start - Duration::days(1)),
            end: TimeZone::Utc.format(checked.end + len),
        })
        .await?;
    if reply.state == unary::ResponseState::Failed as i32 {
        return Err(CliError::Refused(format!(
            "cannot read the node's schedule: {}",
            reply.message
        )));
    }
    let own = args.jobid.clone().unwrap_or_default();
    let booked: Vec<Booked> = reply
        .events
        .iter()
        .filter(|e| e.overhead && e.title != own)
        .filter_map(|e| {
            Some(Booked {
                job: e.title.clone(),
                start: times::parse(&e.start)?,
                end: times::parse(&e.end)?,
            })
        })
        .collect();
    let overhead = !args.no_overhead;
    let mut conflicts = Vec::new();
    if overhead {
        for &r in &runs {
            for b in booked.iter().filter(|b| overlaps((r, r + len), b)) {
                conflicts.push(json!({
                    "run_start": tz.format(r),
                    "run_end": tz.format(r + len),
                    "job": b.job,
                    "job_start": tz.format(b.start),
                    "job_end": tz.format(b.end),
                }));
            }
        }
    }
    let total = conflicts.len();
    conflicts.truncate(MAX_LISTED);
    let free_slot = if checked.cron.is_none() && overhead {
        nearest_free(checked, &booked)
            .map(|s| json!({"start": tz.format(s), "end": tz.format(s + len)}))
    } else {
        None
    };
    let message = match (total, &free_slot, &checked.cron) {
        (0, _, _) => format!("no conflict: {} run(s) fit on {nodeid}", runs.len()),
        (n, Some(slot), _) => format!(
            "{n} conflict(s); nearest free slot starts {} (use it as --start-date)",
            slot["start"].as_str().unwrap_or_default()
        ),
        (n, None, Some(_)) => format!(
            "{n} conflict(s) of {} run(s); change --schedule or the window",
            runs.len()
        ),
        (n, None, None) => format!("{n} conflict(s) and no free slot in the window"),
    };
    let report = json!({
        "nodeid": nodeid,
        "window_start": tz.format(checked.start),
        "window_end": tz.format(checked.end),
        "runs": runs.len(),
        "conflicts_total": total,
        "conflicts": conflicts,
        "free_slot_start": free_slot.as_ref().map(|s| s["start"].clone()).unwrap_or(Value::Null),
        "free_slot_end": free_slot.as_ref().map(|s| s["end"].clone()).unwrap_or(Value::Null),
        "message": message,
    });
    Ok((report, total == 0))
}

/// Earliest start in the window at which a run of the job's length meets no booked run: the
/// window's start, or a minute after a booked run ends (touching counts as a conflict).
fn nearest_free(checked: &Checked, booked: &[Booked]) -> Option<DateTime<Utc>> {
    let len = Duration::seconds(checked.length);
    let mut candidates: Vec<DateTime<Utc>> = std::iter::once(checked.start)
        .chain(
            booked
                .iter()
                .map(|b| b.end + Duration::minutes(1))
                .filter(|e| *e > checked.start),
        )
        .collect();
    candidates.sort();
    candidates
        .into_iter()
        .filter(|t| *t + len <= checked.end)
        .find(|t| !booked.iter().any(|b| overlaps((*t, *t + len), b)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Parser)]
    struct W {
        #[command(flatten)]
        job: JobArgs,
    }

    fn args(extra: &[&str]) -> JobArgs {
        let mut argv = vec!["w", "--action=schedule", "--jobid=j", "--nodeid=n"];
        argv.extend_from_slice(extra);
        W::try_parse_from(argv).unwrap().job
    }

    fn now() -> DateTime<Utc> {
        times::parse("2018-01-01T00:00:00Z").unwrap()
    }

    fn err(extra: &[&str]) -> String {
        check(&args(extra), now()).unwrap_err().to_string()
    }

    #[test]
    fn schedules_that_cannot_work_are_refused_with_a_reason() {
        let ok = [
            "--type=atq",
            "--start-date=2019-01-01T00:00:00",
            "--end-date=2019-01-02T00:00:00",
            "--length=60",
        ];
        assert!(check(&args(&ok), now()).is_ok());
        assert!(err(&["--type=atq", "--length=60"]).contains("--start-date"));
        assert!(err(&[
            "--type=atq",
            "--start-date=2019-01-02",
            "--end-date=2019-01-01",
            "--length=60"
        ])
        .contains("not after"));
        assert!(err(&[
            "--type=atq",
            "--start-date=2012-01-01",
            "--end-date=2012-01-02",
            "--length=60"
        ])
        .contains("in the past"));
        assert!(err(&[
            "--type=atq",
            "--start-date=2019-01-01",
            "--end-date=2019-01-02"
        ])
        .contains("--length"));
        assert!(err(&[
            "--start-date=2019-01-01",
            "--end-date=2019-01-02",
            "--length=60"
        ])
        .contains("--schedule"));
        assert!(err(&[
            "--type=atq",
            "--start-date=soon",
            "--end-date=2019-01-02",
            "--length=1"
        ])
        .contains("not a date"));
    }

    /// The help's example is copied by users: it must pass the checks whenever it is run.
    #[test]
    fn the_help_example_passes_the_checks_today() {
        let argv = crate::cli::tests::help_example("job");
        let cli =
            crate::cli::Cli::try_parse_from(std::iter::once("leotest".to_string()).chain(argv))
                .unwrap_or_else(|e| panic!("the job example does not parse: {e}"));
        let crate::cli::Command::Job(args) = cli.command else {
            panic!("not a job command");
        };
        if let Err(e) = check(&args, Utc::now()) {
            panic!("the job example fails its own checks: {e}");
        }
    }

    #[test]
    fn relative_dates_are_sent_as_dates() {
        let a = args(&[
            "--type=atq",
            "--start-date=now+1h",
            "--end-date=now+2h",
            "--length=60",
        ]);
        let checked = check(&a, Utc::now()).unwrap();
        assert_eq!(checked.end - checked.start, Duration::hours(1));
        let request = a.schedule_request().unwrap();
        assert_eq!(times::parse(&request.start_date), Some(checked.start));
        let bad = W::try_parse_from(["w", "--action=plan", "--start-date=now+2x"]);
        let message = bad.err().map(|e| e.to_string()).unwrap_or_default();
        assert!(message.contains("now+2h"), "{message}");
    }

    #[test]
    fn the_nearest_free_slot_follows_booked_runs() {
        let t = |s: &str| times::parse(s).unwrap();
        let checked = Checked {
            start: t("2019-01-01T00:00:00Z"),
            end: t("2019-01-01T02:00:00Z"),
            length: 600,
            cron: None,
        };
        let booked = vec![
            Booked {
                job: "a".into(),
                start: t("2019-01-01T00:00:00Z"),
                end: t("2019-01-01T00:30:00Z"),
            },
            Booked {
                job: "b".into(),
                start: t("2019-01-01T00:35:00Z"),
                end: t("2019-01-01T00:50:00Z"),
            },
        ];
        assert_eq!(
            nearest_free(&checked, &booked),
            Some(t("2019-01-01T00:51:00Z"))
        );
        let tight = Checked {
            end: t("2019-01-01T00:55:00Z"),
            ..checked
        };
        assert_eq!(nearest_free(&tight, &booked), None);
    }
}
