//! The compiled descriptor must equal the original LeoTest contract, field by
//! field: a renamed field, a changed number or type, a missing or an extra
//! message, enum value or RPC is a wire break and fails here.
#![allow(clippy::unwrap_used, clippy::expect_used)] // a test: a panic is its failure report

use std::collections::BTreeMap;

use prost::Message;
use prost_types::{field_descriptor_proto::Label, field_descriptor_proto::Type, FileDescriptorSet};
use serde_json::Value;

const CONTRACT: &str = include_str!("../contract/leotest-contract.json");

fn contract() -> Value {
    serde_json::from_str(CONTRACT).expect("contract JSON parses")
}

fn file() -> prost_types::FileDescriptorProto {
    let set = FileDescriptorSet::decode(leotest_proto::FILE_DESCRIPTOR_SET).expect("descriptor");
    assert_eq!(set.file.len(), 1, "one .proto file");
    set.file.into_iter().next().expect("one file")
}

fn type_name(t: Type) -> &'static str {
    match t {
        Type::String => "string",
        Type::Bool => "bool",
        Type::Int32 => "int32",
        Type::Int64 => "int64",
        Type::Message => "message",
        Type::Enum => "enum",
        Type::Bytes => "bytes",
        Type::Double => "double",
        Type::Float => "float",
        Type::Uint32 => "uint32",
        Type::Uint64 => "uint64",
        other => panic!("type {other:?} is not used by the contract"),
    }
}

fn label_name(l: Label) -> &'static str {
    match l {
        Label::Optional => "optional",
        Label::Repeated => "repeated",
        Label::Required => "required",
    }
}

#[test]
fn syntax_and_package_match() {
    let c = contract();
    let f = file();
    assert_eq!(f.syntax(), c["syntax"].as_str().unwrap());
    assert_eq!(f.package(), c["package"].as_str().unwrap());
}

#[test]
fn enums_match() {
    let c = contract();
    let ours: BTreeMap<String, Vec<(String, i32)>> = file()
        .enum_type
        .iter()
        .map(|e| {
            let values = e
                .value
                .iter()
                .map(|v| (v.name().to_string(), v.number()))
                .collect();
            (e.name().to_string(), values)
        })
        .collect();
    let theirs: BTreeMap<String, Vec<(String, i32)>> = c["enums"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            let values = e["values"]
                .as_array()
                .unwrap()
                .iter()
                .map(|v| {
                    (
                        v["name"].as_str().unwrap().to_string(),
                        v["number"].as_i64().unwrap() as i32,
                    )
                })
                .collect();
            (e["name"].as_str().unwrap().to_string(), values)
        })
        .collect();
    assert_eq!(ours, theirs);
}

/// name, number, type, label, type name, proto3 `optional` (explicit presence).
type Field = (String, i32, String, String, String, bool);

/// The original declares no `oneof`; its proto3 `optional` fields each make a
/// synthetic one: named `_<field>`, holding that field alone. Anything else (a
/// real oneof, a shared or misnamed one) changes the generated types and the
/// JSON mapping, so it fails here.
fn assert_only_synthetic_oneofs(m: &prost_types::DescriptorProto) {
    let mut owners: Vec<Vec<&str>> = vec![Vec::new(); m.oneof_decl.len()];
    for fd in &m.field {
        match (fd.proto3_optional(), fd.oneof_index) {
            (true, Some(i)) => {
                let slot = owners
                    .get_mut(usize::try_from(i).expect("oneof index"))
                    .unwrap_or_else(|| panic!("{}.{}: oneof index {i}", m.name(), fd.name()));
                slot.push(fd.name());
            }
            (true, None) => panic!("{}.{} is optional without a oneof", m.name(), fd.name()),
            (false, Some(_)) => panic!("{}.{} is in a real oneof", m.name(), fd.name()),
            (false, None) => {}
        }
    }
    for (decl, fields) in m.oneof_decl.iter().zip(&owners) {
        assert_eq!(
            fields.len(),
            1,
            "{}: oneof {} must hold exactly one optional field",
            m.name(),
            decl.name()
        );
        assert_eq!(
            decl.name(),
            format!("_{}", fields[0]),
            "{}: synthetic oneof name",
            m.name()
        );
    }
}

#[test]
fn messages_match_field_by_field() {
    let c = contract();
    let f = file();
    let ours: BTreeMap<String, Vec<Field>> = f
        .message_type
        .iter()
        .map(|m| {
            assert!(
                m.nested_type.is_empty() && m.enum_type.is_empty(),
                "{} has nested types",
                m.name()
            );
            assert_only_synthetic_oneofs(m);
            let fields = m
                .field
                .iter()
                .map(|fd| {
                    (
                        fd.name().to_string(),
                        fd.number(),
                        type_name(fd.r#type()).to_string(),
                        label_name(fd.label()).to_string(),
                        fd.type_name().to_string(),
                        fd.proto3_optional(),
                    )
                })
                .collect();
            (m.name().to_string(), fields)
        })
        .collect();
    let theirs: BTreeMap<String, Vec<Field>> = c["messages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| {
            let fields = m["fields"]
                .as_array()
                .unwrap()
                .iter()
                .map(|fd| {
                    let tn = fd.get("type_name").and_then(Value::as_str).unwrap_or("");
                    (
                        fd["name"].as_str().unwrap().to_string(),
                        fd["number"].as_i64().unwrap() as i32,
                        fd["type"].as_str().unwrap().to_string(),
                        fd["label"].as_str().unwrap().to_string(),
                        if tn.is_empty() {
                            String::new()
                        } else {
                            format!(".{tn}")
                        },
                        fd.get("optional").and_then(Value::as_bool).unwrap_or(false),
                    )
                })
                .collect();
            (m["name"].as_str().unwrap().to_string(), fields)
        })
        .collect();
    let explicit = |m: &BTreeMap<String, Vec<Field>>| m.values().flatten().filter(|f| f.5).count();
    assert_eq!(
        explicit(&theirs),
        31,
        "the original has 31 `optional` fields"
    );
    assert_eq!(explicit(&ours), 31, "fields with explicit presence");
    assert_eq!(ours.len(), theirs.len(), "message count");
    for (name, fields) in &theirs {
        assert_eq!(ours.get(name), Some(fields), "message {name}");
    }
}

#[test]
fn service_matches_every_rpc_path() {
    let c = contract();
    let f = file();
    assert_eq!(f.service.len(), 1);
    let svc = &f.service[0];
    let theirs = &c["services"][0];
    assert_eq!(svc.name(), theirs["name"].as_str().unwrap());
    let ours: Vec<(String, String, String, String)> = svc
        .method
        .iter()
        .map(|m| {
            assert!(
                !m.client_streaming() && !m.server_streaming(),
                "{} must be unary",
                m.name()
            );
            (
                m.name().to_string(),
                format!("/{}.{}/{}", f.package(), svc.name(), m.name()),
                m.input_type().trim_start_matches('.').to_string(),
                m.output_type().trim_start_matches('.').to_string(),
            )
        })
        .collect();
    let expected: Vec<(String, String, String, String)> = theirs["methods"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| {
            let s = |k: &str| m[k].as_str().unwrap().to_string();
            (s("name"), s("path"), s("input"), s("output"))
        })
        .collect();
    assert_eq!(ours, expected);
    assert_eq!(ours.len(), 28, "the original has 28 RPCs");
}
