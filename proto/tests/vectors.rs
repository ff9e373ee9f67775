//! Golden encodings made by the original's protobuf: every vector must decode
//! into our generated type and re-encode to the same bytes, and its JSON form
//! (field names as the original spells them) must encode to those bytes too.
#![allow(clippy::unwrap_used, clippy::expect_used)] // a test: a panic is its failure report

use prost::Message;
use prost_reflect::{DescriptorPool, DynamicMessage};
use serde_json::Value;

use leotest_proto::unary::*;

include!("support/messages.rs");

const VECTORS: &str = include_str!("../contract/leotest-vectors.json");

/// Decodes `bytes` as the named message and encodes it again.
fn roundtrip(name: &str, bytes: &[u8]) -> Vec<u8> {
    macro_rules! dispatch {
        ($($n:literal => $t:ident,)*) => {
            match name {
                $($n => $t::decode(bytes).unwrap_or_else(|e| panic!("{name}: {e}")).encode_to_vec(),)*
                other => panic!("vector for unknown message {other}"),
            }
        };
    }
    for_each_message!(dispatch)
}

fn vectors() -> Vec<Value> {
    serde_json::from_str::<Value>(VECTORS)
        .unwrap()
        .as_array()
        .unwrap()
        .clone()
}

#[test]
fn every_vector_roundtrips_byte_for_byte() {
    let vectors = vectors();
    assert_eq!(vectors.len(), 136);
    for v in &vectors {
        let name = v["message"].as_str().unwrap();
        let hex = v["hex"].as_str().unwrap();
        let bytes = hex::decode(hex).unwrap();
        assert_eq!(
            hex::encode(roundtrip(name, &bytes)),
            hex,
            "{name} / {}",
            v["case"]
        );
    }
}

#[test]
fn every_vector_json_encodes_to_the_golden_bytes() {
    let pool = DescriptorPool::decode(leotest_proto::FILE_DESCRIPTOR_SET).unwrap();
    for v in vectors() {
        let name = v["message"].as_str().unwrap();
        let desc = pool
            .get_message_by_name(&format!("unary.{name}"))
            .unwrap_or_else(|| panic!("{name}"));
        let msg = DynamicMessage::deserialize(desc, v["json"].clone())
            .unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_eq!(
            hex::encode(msg.encode_to_vec()),
            v["hex"].as_str().unwrap(),
            "{name} / {}",
            v["case"]
        );
    }
}

#[test]
fn every_message_of_the_contract_has_vectors() {
    let pool = DescriptorPool::decode(leotest_proto::FILE_DESCRIPTOR_SET).unwrap();
    let covered: std::collections::BTreeSet<String> = vectors()
        .iter()
        .map(|v| v["message"].as_str().unwrap().to_string())
        .collect();
    let ours: std::collections::BTreeSet<String> =
        pool.all_messages().map(|m| m.name().to_string()).collect();
    assert_eq!(covered, ours);
}
