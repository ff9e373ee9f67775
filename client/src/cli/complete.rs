//! Completion of ids from the orchestrator: `leotest __complete-ids jobs|nodes` prints them,
//! and the bash script calls it for `--jobid` / `--nodeid` / `--server` values.

use clap::ValueEnum;
use leotest_client::leotest_proto::unary;

use super::{CliResult, Global, Outcome};

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub(crate) enum IdKind {
    Jobs,
    Nodes,
}

/// Appended to clap's bash script: ids come from the orchestrator (2 s at most, no retries,
/// silent on any error), everything else from clap's own completion function.
pub(super) const BASH_IDS: &str = r#"
_leotest_with_ids() {
    local cur="${COMP_WORDS[COMP_CWORD]}" prev="${COMP_WORDS[COMP_CWORD-1]}" kind=""
    # `--jobid=ab` arrives as `--jobid` `=` `ab` (COMP_WORDBREAKS has '=').
    if [[ "$cur" == "=" ]]; then cur=""; elif [[ "$prev" == "=" && $COMP_CWORD -ge 2 ]]; then prev="${COMP_WORDS[COMP_CWORD-2]}"; fi
    case "$prev" in
        --jobid) kind=jobs ;;
        --nodeid|--server) kind=nodes ;;
    esac
    if [[ -n "$kind" ]]; then
        COMPREPLY=($(compgen -W "$(leotest --timeout 2 --retries 0 __complete-ids "$kind" 2>/dev/null)" -- "$cur"))
        return 0
    fi
    _leotest "$@"
}
complete -F _leotest_with_ids -o bashdefault -o default leotest
"#;

/// Prints the ids the caller can see: every job for ADMIN (else the caller's own), every node.
pub(super) async fn ids(global: &Global, kind: IdKind) -> CliResult {
    let client = global.connect().await?;
    let mut ids: Vec<String> = match kind {
        IdKind::Jobs => {
            // An empty user id lists every job, for ADMIN; others are refused and list their own.
            let all = client
                .get_jobs_by_userid(unary::MessageGetJobsByUserid {
                    userid: String::new(),
                })
                .await?;
            let jobs = if all.message.is_empty() {
                all.jobs
            } else {
                client
                    .get_jobs_by_userid(unary::MessageGetJobsByUserid {
                        userid: global.userid.clone(),
                    })
                    .await?
                    .jobs
            };
            jobs.into_iter().map(|j| j.id).collect()
        }
        IdKind::Nodes => client
            .get_nodes(unary::MessageGetNodes::default())
            .await?
            .nodes
            .into_iter()
            .map(|n| n.nodeid)
            .collect(),
    };
    ids.sort();
    ids.dedup();
    for id in ids.iter().filter(|id| !id.chars().any(char::is_whitespace)) {
        println!("{id}");
    }
    Ok(Outcome::Ok)
}
