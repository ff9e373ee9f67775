//! Argument-parsing tests: the original CLI's command lines must parse to the same requests.

use clap::Parser;
use leotest_client::leotest_proto::unary;

use super::*;

fn parse(args: &[&str]) -> Cli {
    let mut argv = vec!["leotest"];
    argv.extend_from_slice(args);
    Cli::try_parse_from(argv).unwrap_or_else(|e| panic!("{args:?}: {e}"))
}

#[test]
fn original_user_register_line_parses() {
    let cli = parse(&[
        "user",
        "--action=register",
        "--id=user-id-1",
        "--name=Admin",
        "--role=admin",
        "--team=Project Leapord - MSRI",
    ]);
    let Command::User(args) = cli.command else {
        panic!("not a user command");
    };
    assert_eq!(args.action, user::UserAction::Register);
    assert_eq!(args.id, "user-id-1");
    assert_eq!(args.role, Some(user::Role::Admin));
    assert_eq!(args.team.as_deref(), Some("Project Leapord - MSRI"));
}

#[test]
fn roles_use_the_original_spelling() {
    for (text, role) in [
        ("user_priv", user::Role::UserPriv),
        ("node_priv", user::Role::NodePriv),
        ("node", user::Role::Node),
    ] {
        let cli = parse(&[
            "user",
            "--action=modify",
            "--id=x",
            &format!("--role={text}"),
        ]);
        let Command::User(args) = cli.command else {
            panic!("not a user command");
        };
        assert_eq!(args.role, Some(role));
    }
    assert!(
        Cli::try_parse_from(["leotest", "user", "--action=get", "--id=x", "--role=root"]).is_err()
    );
}

#[test]
fn original_job_schedule_line_builds_the_request() {
    let cli = parse(&[
        "job",
        "--action=schedule",
        "--jobid=test-id-1",
        "--nodeid=test-node-1",
        "--type=cron",
        "--params_mode=docker",
        "--params_deploy=random deploy",
        "--params_execute=random execute",
        "--params_finish=random finish",
        "--schedule=*/6 * * * *",
        "--exp-config=/dev/null",
    ]);
    let Command::Job(args) = cli.command else {
        panic!("not a job command");
    };
    let req = args.schedule_request().unwrap();
    assert_eq!(req.id, "test-id-1");
    assert_eq!(req.nodeid, "test-node-1");
    assert_eq!(req.schedule, "*/6 * * * *");
    assert!(req.overhead, "overhead defaults to true like the original");
    let params = req.params.unwrap();
    assert_eq!(params.deploy, "random deploy");
    assert_eq!(params.finish, "random finish");
}

#[test]
fn overhead_flags_are_exclusive_and_no_overhead_clears_it() {
    let cli = parse(&[
        "job",
        "--action=schedule",
        "--jobid=j",
        "--nodeid=n",
        "--no-overhead",
        "--exp-config=/dev/null",
    ]);
    let Command::Job(args) = cli.command else {
        panic!("not a job command");
    };
    assert!(!args.schedule_request().unwrap().overhead);
    assert!(Cli::try_parse_from([
        "leotest",
        "job",
        "--action=get",
        "--overhead",
        "--no-overhead"
    ])
    .is_err());
}

#[test]
fn job_schedule_without_ids_is_a_usage_error() {
    let cli = parse(&["job", "--action=schedule", "--exp-config=/dev/null"]);
    let Command::Job(args) = cli.command else {
        panic!("not a job command");
    };
    let err = args.schedule_request().unwrap_err();
    assert_eq!(err.exit_code(), EXIT_USAGE);
}

#[test]
fn global_options_work_before_and_after_the_subcommand() {
    let before = parse(&[
        "--grpc-host=h",
        "--grpc-port=1234",
        "--json",
        "user",
        "--action=get",
        "--id=a",
    ]);
    let after = parse(&[
        "user",
        "--action=get",
        "--id=a",
        "--grpc-host=h",
        "--grpc-port=1234",
        "--json",
    ]);
    for cli in [before, after] {
        assert_eq!(cli.global.grpc_host.as_deref(), Some("h"));
        assert_eq!(cli.global.grpc_port, Some(1234));
        assert!(cli.global.json);
    }
}

#[test]
fn defaults_match_the_original() {
    let cli = parse(&["user", "--action=get", "--id=a"]);
    // No profile, no environment: the original's defaults.
    let g = cli.global.resolve_with(None, None).unwrap();
    assert_eq!(g.grpc_host, "0.0.0.0");
    assert_eq!(g.grpc_port, 50051);
    assert_eq!(g.userid, "admin");
    assert_eq!(g.ca_cert, std::path::PathBuf::from("certs/server.crt"));
    assert_eq!(g.tls_domain, "localhost");
    let run = parse(&["run", "--action=get"]);
    let Command::Run(args) = run.command else {
        panic!("not a run command");
    };
    assert_eq!(args.limit, 3);
    let node = parse(&["node", "--action=get"]);
    let Command::Node(args) = node.command else {
        panic!("not a node command");
    };
    assert_eq!(args.active_thres, 600);
    assert!(!args.active && !args.delete_jobs);
}

#[test]
fn node_actions_use_kebab_case_names() {
    for action in [
        "scavenger-set",
        "scavenger-unset",
        "scavenger-get",
        "heartbeat",
    ] {
        parse(&["node", &format!("--action={action}"), "--nodeid=n"]);
    }
}

#[test]
fn time_range_needs_two_parts() {
    let ok = run::parse_time_range("2020-01-01,2020-01-02").unwrap();
    assert_eq!(ok.start, "2020-01-01");
    assert_eq!(ok.end, "2020-01-02");
    assert!(run::parse_time_range("2020-01-01").is_err());
    assert!(run::parse_time_range(",x").is_err());
    assert!(Cli::try_parse_from(["leotest", "run", "--action=get", "--time-range=x"]).is_err());
}

/// The command line of the `Example:` after `leotest SUB --help`'s options, split as a shell would (enough
/// for the examples: `\` line continuations and single quotes), without the `leotest`.
pub(super) fn help_example(sub: &str) -> Vec<String> {
    // The text as written (rendered help is wrapped to the terminal).
    let cli = Cli::command();
    let help = cli
        .find_subcommand(sub)
        .and_then(|c| c.get_after_help())
        .unwrap_or_else(|| panic!("no help text after `{sub}` options"))
        .to_string();
    let start = help
        .find("Example: leotest ")
        .unwrap_or_else(|| panic!("{sub} --help has no example"));
    let line = help[start + "Example: leotest ".len()..]
        .replace("\\\n", " ")
        .lines()
        .next()
        .unwrap_or_default()
        .to_string();
    let (mut words, mut word, mut quoted) = (Vec::new(), String::new(), false);
    for c in line.chars() {
        match c {
            '\'' => quoted = !quoted,
            c if c.is_whitespace() && !quoted => {
                if !word.is_empty() {
                    words.push(std::mem::take(&mut word));
                }
            }
            c => word.push(c),
        }
    }
    words.extend((!word.is_empty()).then_some(word));
    words
}

#[test]
fn the_run_help_example_asks_about_a_window_that_has_not_passed() {
    let argv = help_example("run");
    let cli = Cli::try_parse_from(std::iter::once("leotest".to_string()).chain(argv))
        .unwrap_or_else(|e| panic!("the run example does not parse: {e}"));
    let Command::Run(args) = cli.command else {
        panic!("not a run command");
    };
    let range = args.time_range.expect("the example gives --time-range");
    let end = times::parse(&range.end).expect("the example's end is a date");
    assert!(end > chrono::Utc::now(), "{range:?} is over");
}

#[test]
fn time_ranges_may_be_relative() {
    let r = run::parse_time_range("now-1d, now").unwrap();
    let start = times::parse(&r.start).expect("sent as a date");
    let end = times::parse(&r.end).expect("sent as a date");
    assert_eq!(end - start, chrono::Duration::days(1));
    assert!(run::parse_time_range("now-1y,now").is_err());
}

#[test]
fn kernel_subcommands_map_to_protocol_lines() {
    let cases: [(&[&str], &str); 6] = [
        (&["kernel", "check"], "cca.check"),
        (&["kernel", "cca", "set", "bbr"], "cca.change bbr"),
        (
            &["kernel", "bbr2", "set", "loss_thresh", "10"],
            "bbr2.param.set loss_thresh 10",
        ),
        (
            &["kernel", "job", "start", "ping", "-c", "3", "host"],
            "job.start ping -c 3 host",
        ),
        (&["kernel", "job", "watch", "j1"], "job.watch j1"),
        (&["kernel", "job", "list"], "job.list"),
    ];
    for (argv, line) in cases {
        let cli = parse(argv);
        let Command::Kernel(args) = cli.command else {
            panic!("not a kernel command");
        };
        assert_eq!(args.command.to_command().line().unwrap(), line);
        assert_eq!(args.kernel_port, 9000);
    }
}

#[test]
fn credentials_prefer_jwt_and_require_a_token() {
    let cli = parse(&[
        "--access-token=t",
        "--jwt-access-token=j",
        "user",
        "--action=get",
        "--id=a",
    ]);
    let cfg = cli
        .global
        .resolve_with(None, None)
        .unwrap()
        .client_config()
        .unwrap();
    assert!(
        matches!(cfg.credentials, leotest_client::Credentials::Static { .. }),
        "a token flag beats a JWT from a weaker source"
    );
    let cli = parse(&["--jwt-access-token=j", "user", "--action=get", "--id=a"]);
    let cfg = cli
        .global
        .resolve_with(None, None)
        .unwrap()
        .client_config()
        .unwrap();
    assert!(matches!(
        cfg.credentials,
        leotest_client::Credentials::Jwt(_)
    ));
    let cli = parse(&["--access-token=t", "user", "--action=get", "--id=a"]);
    let cfg = cli
        .global
        .resolve_with(None, None)
        .unwrap()
        .client_config()
        .unwrap();
    assert!(matches!(
        cfg.credentials,
        leotest_client::Credentials::Static { .. }
    ));
    assert_eq!(cfg.endpoint, "0.0.0.0:50051");
}

#[test]
fn exit_codes_follow_the_error_kind() {
    use leotest_client::ClientError;
    let code = |e: ClientError| CliError::Client(e).exit_code();
    assert_eq!(code(ClientError::Unavailable("x".into())), EXIT_UNREACHABLE);
    assert_eq!(code(ClientError::Timeout("x".into())), EXIT_UNREACHABLE);
    assert_eq!(code(ClientError::Unauthenticated("x".into())), EXIT_AUTH);
    assert_eq!(code(ClientError::PermissionDenied("x".into())), EXIT_AUTH);
    assert_eq!(
        code(ClientError::Status {
            code: tonic::Code::Internal,
            message: "x".into()
        }),
        EXIT_OTHER
    );
    assert_eq!(CliError::AccessDenied.exit_code(), EXIT_AUTH);
    assert_eq!(CliError::Denied("x".into()).exit_code(), EXIT_AUTH);
    assert_eq!(CliError::NotFound("x".into()).exit_code(), EXIT_FAILED);
}

#[test]
fn the_tls_name_follows_the_host_with_the_original_as_fallback() {
    let g = |args: &[&str]| {
        let mut argv = args.to_vec();
        argv.extend_from_slice(&["user", "--action=get", "--id=a"]);
        parse(&argv).global.resolve_with(None, None).unwrap()
    };
    let named = g(&["--grpc-host=orch.example.org"]);
    assert_eq!(named.tls_domain, "orch.example.org");
    assert_eq!(named.fallback_domain.as_deref(), Some("localhost"));
    let ip = g(&["--grpc-host=127.0.0.1"]);
    assert_eq!(ip.tls_domain, "127.0.0.1");
    let pinned = g(&["--grpc-host=orch.example.org", "--tls-domain=other"]);
    assert_eq!(pinned.tls_domain, "other");
    assert_eq!(
        pinned.fallback_domain, None,
        "an explicit name is the only one"
    );
    let profile = profile::Context {
        grpc_host: Some("p.example".into()),
        grpc_port: Some(7),
        ca_cert: Some("/p/ca.crt".into()),
        userid: Some("alice".into()),
        access_token: Some("tok".into()),
        ..Default::default()
    };
    let cli = parse(&["--grpc-port=9", "user", "--action=get", "--id=a"]);
    let r = cli
        .global
        .resolve_with(Some(&profile), Some("p".into()))
        .unwrap();
    assert_eq!(
        (r.grpc_host.as_str(), r.grpc_port),
        ("p.example", 9),
        "flags beat the profile"
    );
    assert_eq!(
        r.ca_cert,
        std::path::PathBuf::from("/p/ca.crt"),
        "no cwd-relative CA"
    );
    assert_eq!(r.userid, "alice");
}

#[test]
fn watch_exits_with_the_jobs_state() {
    let line = |state: &str| format!("id=abc state={state} exit_code=3 owner=a command=\"x\"");
    assert!(kernel::watch_outcome("abc", &line("COMPLETED")).is_ok());
    let failed = kernel::watch_outcome("abc", &line("FAILED")).unwrap_err();
    assert_eq!(failed.exit_code(), EXIT_FAILED);
    assert!(failed.to_string().contains("FAILED"), "{failed}");
    assert_eq!(
        kernel::watch_outcome("abc", &line("STOPPED"))
            .unwrap_err()
            .exit_code(),
        EXIT_FAILED
    );
    assert_eq!(
        kernel::watch_outcome("abc", "error: no such job\n")
            .unwrap_err()
            .exit_code(),
        EXIT_FAILED
    );
}

#[test]
fn reply_outcome_reads_state_and_found_flags() {
    let failed = unary::MessageRegisterUserResponse {
        state: unary::ResponseState::Failed as i32,
        message: "exists".into(),
    };
    let v = output::to_json(&failed, "message_register_user_response").unwrap();
    assert_eq!(v["state"], "FAILED");
    assert_eq!(output::outcome(&v), Outcome::Failed);
    let missing = unary::MessageGetUserResponse::default();
    let v = output::to_json(&missing, "message_get_user_response").unwrap();
    assert_eq!(v["exists"], false, "defaults are included in JSON");
    assert_eq!(output::outcome(&v), Outcome::Failed);
    let denied = unary::MessageDeleteJobsByNodeidResponse {
        num_deleted: 0,
        message: "permission denied: userid=alice and role=USER".into(),
    };
    let v = output::to_json(&denied, "message_delete_jobs_by_nodeid_response").unwrap();
    assert_eq!(output::outcome(&v), Outcome::Denied);
    let ok = unary::MessageGetNodesResponse::default();
    let v = output::to_json(&ok, "message_get_nodes_response").unwrap();
    assert_eq!(output::outcome(&v), Outcome::Ok);
}

#[test]
fn table_lists_repeated_messages_and_drops_empty_columns() {
    let reply = unary::MessageGetNodesResponse {
        nodes: vec![unary::Node {
            nodeid: "n1".into(),
            name: "x".repeat(100),
            ..Default::default()
        }],
    };
    let v = output::to_json(&reply, "message_get_nodes_response").unwrap();
    let text = output::render_table(
        &output::descriptor("message_get_nodes_response").unwrap(),
        &v,
    );
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines[0], "nodes (1):");
    assert!(lines[1].starts_with("NODEID"), "{text}");
    assert!(!lines[1].contains("LOCATION"), "empty column shown: {text}");
    assert!(lines[2].contains('…'), "long cell not cut: {text}");
}

#[test]
fn config_json_is_parsed_and_unknown_fields_are_refused() {
    let settings: unary::Settings = output::from_json(
        r#"{"datastore":{"blob":{"connectionString":"cs","artifactPath":"p"}},"weather":{"apikey":"k"}}"#,
        "settings",
    )
    .unwrap();
    assert_eq!(settings.datastore.unwrap().blob.unwrap().artifact_path, "p");
    assert_eq!(settings.weather.unwrap().apikey, "k");
    let err = output::from_json::<unary::Settings>(r#"{"nope": 1}"#, "settings").unwrap_err();
    assert_eq!(err.exit_code(), EXIT_USAGE);
    let err = output::from_json::<unary::Settings>("{} trailing", "settings").unwrap_err();
    assert_eq!(err.exit_code(), EXIT_USAGE);
}

// Filters are proto3 `optional`: like the original client, a request carries only what the
// user gave (non-empty), so the server's `HasField` branches see what the original's saw.

#[test]
fn job_schedule_sends_server_only_when_non_empty_and_trigger_whenever_given() {
    let schedule = |extra: &[&str]| {
        let mut argv = vec![
            "job",
            "--action=schedule",
            "--jobid=j",
            "--nodeid=n",
            "--exp-config=/dev/null",
        ];
        argv.extend_from_slice(extra);
        let Command::Job(args) = parse(&argv).command else {
            panic!("not a job command");
        };
        let req = args.schedule_request().unwrap();
        (req.server, req.trigger)
    };
    assert_eq!(schedule(&[]), (None, None));
    assert_eq!(
        schedule(&["--server=", "--trigger="]),
        (None, Some(String::new()))
    );
    assert_eq!(
        schedule(&["--server=s1", "--trigger=weather_temp > 3"]),
        (Some("s1".into()), Some("weather_temp > 3".into()))
    );
}

#[test]
fn node_get_and_update_send_only_the_given_fields() {
    let node = |argv: &[&str]| {
        let Command::Node(args) = parse(argv).command else {
            panic!("not a node command");
        };
        args
    };
    // As the original CLI: `activeThres` carries its default, `active` only when set.
    let get = node(&["node", "--action=get"]).get_request();
    assert_eq!(
        get,
        unary::MessageGetNodes {
            active_thres: Some(600),
            ..Default::default()
        }
    );
    let get = node(&[
        "node",
        "--action=get",
        "--nodeid=n1",
        "--name=",
        "--active",
        "--active-thres=0",
    ])
    .get_request();
    assert_eq!(
        get,
        unary::MessageGetNodes {
            nodeid: Some("n1".into()),
            active: Some(true),
            active_thres: Some(0),
            ..Default::default()
        }
    );
    let update = node(&[
        "node",
        "--action=update",
        "--nodeid=n1",
        "--public-ip=192.0.2.1",
        "--name=",
    ])
    .update_request()
    .unwrap();
    assert_eq!(
        update,
        unary::MessageUpdateNode {
            nodeid: "n1".into(),
            public_ip: Some("192.0.2.1".into()),
            ..Default::default()
        }
    );
}

#[test]
fn run_and_task_get_send_only_the_given_filters() {
    let Command::Run(args) = parse(&["run", "--action=get"]).command else {
        panic!("not a run command");
    };
    // The original CLI's default limit (3) is sent, as it sends it.
    assert_eq!(
        args.get_request(),
        unary::MessageGetRuns {
            limit: Some(3),
            ..Default::default()
        }
    );
    let Command::Run(args) = parse(&["run", "--action=get", "--jobid=j1", "--limit=0"]).command
    else {
        panic!("not a run command");
    };
    assert_eq!(
        args.get_request(),
        unary::MessageGetRuns {
            jobid: Some("j1".into()),
            ..Default::default()
        }
    );
    let Command::Task(args) = parse(&["task", "--action=get"]).command else {
        panic!("not a task command");
    };
    assert_eq!(args.get_request(), unary::MessageGetTasks::default());
    let Command::Task(args) = parse(&["task", "--action=get", "--nodeid=n1", "--taskid="]).command
    else {
        panic!("not a task command");
    };
    assert_eq!(
        args.get_request(),
        unary::MessageGetTasks {
            nodeid: Some("n1".into()),
            ..Default::default()
        }
    );
}
