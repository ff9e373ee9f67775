//! Explicit presence (proto3 `optional`) on the wire. The golden vectors only
//! cover "every field set to a non-default value" and "empty", where presence
//! and value agree; these cover the case where they do not: a field the sender
//! set to its default value explicitly. The original writes it (tag + zero
//! value) and its readers see `HasField` true; we must decode it as `Some`,
//! re-encode the same bytes, and leave an unset field out.
//!
//! The bytes and JSON were made by the original's own `common/leotest_pb2.py`
//! (protobuf 4.23.4, its pinned version), e.g.
//! `pb2.job(server="", trigger="").SerializeToString().hex()` == `52005a00` and
//! `MessageToDict(.., preserving_proto_field_name=True)` == `{"server": "", "trigger": ""}`.
#![allow(clippy::unwrap_used, clippy::expect_used)] // a test: a panic is its failure report

use prost::Message;
use prost_reflect::{DescriptorPool, DynamicMessage};
use serde_json::json;

use leotest_proto::unary::*;

/// (message, hex from the original, JSON from the original).
fn vectors() -> Vec<(&'static str, &'static str, serde_json::Value)> {
    vec![
        ("job", "52005a00", json!({"server": "", "trigger": ""})),
        (
            "message_schedule_job",
            "52005a00",
            json!({"server": "", "trigger": ""}),
        ),
        ("_node", "22004200", json!({"last_active": "", "jobs": ""})),
        (
            "message_get_runs",
            "0a0012001a0022002a003000",
            json!({"runid": "", "jobid": "", "nodeid": "", "userid": "",
                   "time_range": {}, "limit": 0}),
        ),
        (
            "message_update_node",
            "12001a0022002a0032003a004200",
            json!({"name": "", "description": "", "last_active": "", "coords": "",
                   "location": "", "provider": "", "public_ip": ""}),
        ),
        (
            "message_get_nodes",
            "0a0012001a00220028003000",
            json!({"nodeid": "", "location": "", "name": "", "provider": "",
                   "active": false, "activeThres": 0}),
        ),
        (
            "message_get_tasks",
            "080012001a0022002a003000",
            json!({"type": "TYPE_UNUSED", "taskid": "", "runid": "", "jobid": "",
                   "nodeid": "", "status": "STATUS_UNUSED"}),
        ),
    ]
}

fn bytes(hex: &str) -> Vec<u8> {
    hex::decode(hex).expect("hex")
}

#[test]
fn explicit_defaults_decode_as_present_and_reencode_byte_for_byte() {
    let some = Some(String::new());
    let job = Job::decode(&bytes("52005a00")[..]).unwrap();
    assert_eq!((&job.server, &job.trigger), (&some, &some));
    assert_eq!(hex::encode(job.encode_to_vec()), "52005a00");

    let req = MessageScheduleJob::decode(&bytes("52005a00")[..]).unwrap();
    assert_eq!((&req.server, &req.trigger), (&some, &some));
    assert_eq!(hex::encode(req.encode_to_vec()), "52005a00");

    let node = Node::decode(&bytes("22004200")[..]).unwrap();
    assert_eq!((&node.last_active, &node.jobs), (&some, &some));
    assert_eq!(hex::encode(node.encode_to_vec()), "22004200");

    let runs = MessageGetRuns::decode(&bytes("0a0012001a0022002a003000")[..]).unwrap();
    assert_eq!(runs.runid, some);
    assert_eq!(runs.userid, some);
    assert_eq!(runs.time_range, Some(MessageTimeRange::default()));
    assert_eq!(runs.limit, Some(0));
    assert_eq!(
        hex::encode(runs.encode_to_vec()),
        "0a0012001a0022002a003000"
    );

    let upd = MessageUpdateNode::decode(&bytes("12001a0022002a0032003a004200")[..]).unwrap();
    assert_eq!(upd.coords, some);
    assert_eq!(upd.public_ip, some);
    assert_eq!(
        hex::encode(upd.encode_to_vec()),
        "12001a0022002a0032003a004200"
    );

    let nodes = MessageGetNodes::decode(&bytes("0a0012001a00220028003000")[..]).unwrap();
    assert_eq!((nodes.active, nodes.active_thres), (Some(false), Some(0)));
    assert_eq!(
        hex::encode(nodes.encode_to_vec()),
        "0a0012001a00220028003000"
    );

    let tasks = MessageGetTasks::decode(&bytes("080012001a0022002a003000")[..]).unwrap();
    assert_eq!((tasks.r#type, tasks.status), (Some(0), Some(0)));
    assert_eq!(tasks.nodeid, some);
    assert_eq!(
        hex::encode(tasks.encode_to_vec()),
        "080012001a0022002a003000"
    );
}

#[test]
fn unset_optional_fields_stay_off_the_wire() {
    assert!(Job::default().encode_to_vec().is_empty());
    assert!(Node::default().encode_to_vec().is_empty());
    assert!(MessageGetNodes::default().encode_to_vec().is_empty());
    assert!(MessageGetTasks::default().encode_to_vec().is_empty());
}

#[test]
fn explicit_defaults_in_json_encode_to_the_originals_bytes() {
    let pool = DescriptorPool::decode(leotest_proto::FILE_DESCRIPTOR_SET).unwrap();
    for (name, hex, json) in vectors() {
        let desc = pool
            .get_message_by_name(&format!("unary.{name}"))
            .unwrap_or_else(|| panic!("{name}"));
        let msg = DynamicMessage::deserialize(desc, json).unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_eq!(hex::encode(msg.encode_to_vec()), hex, "{name}");
    }
}
