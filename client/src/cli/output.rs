//! Rendering of orchestrator replies: JSON (`--json`) or readable tables, plus the exit outcome.

use std::sync::OnceLock;

use prost_reflect::{DescriptorPool, DynamicMessage, Kind, MessageDescriptor, SerializeOptions};
use serde_json::Value;

use super::{CliError, CliResult, Outcome};

/// Widest table cell; longer values (experiment configs) are cut with an ellipsis.
const MAX_CELL: usize = 48;

fn pool() -> Result<&'static DescriptorPool, CliError> {
    static POOL: OnceLock<Option<DescriptorPool>> = OnceLock::new();
    POOL.get_or_init(|| DescriptorPool::decode(leotest_proto::FILE_DESCRIPTOR_SET).ok())
        .as_ref()
        .ok_or_else(|| CliError::Other("embedded protobuf descriptor is unreadable".into()))
}

/// Descriptor of `unary.<name>`.
pub fn descriptor(name: &str) -> Result<MessageDescriptor, CliError> {
    pool()?
        .get_message_by_name(&format!("unary.{name}"))
        .ok_or_else(|| CliError::Other(format!("unknown message type {name}")))
}

/// A reply as JSON: proto field names, default values included, enums by name.
pub fn to_json<M: prost::Message>(msg: &M, name: &str) -> Result<Value, CliError> {
    let desc = descriptor(name)?;
    let dynamic = DynamicMessage::decode(desc, msg.encode_to_vec().as_slice())
        .map_err(|e| CliError::Other(format!("cannot decode reply: {e}")))?;
    let options = SerializeOptions::new()
        .skip_default_fields(false)
        .use_proto_field_name(true);
    dynamic
        .serialize_with_options(serde_json::value::Serializer, &options)
        .map_err(|e| CliError::Other(format!("cannot encode reply as JSON: {e}")))
}

/// Parses protobuf JSON (either field-name style) into message `T` of type `unary.<name>`.
pub fn from_json<T: prost::Message + Default>(text: &str, name: &str) -> Result<T, CliError> {
    let desc = descriptor(name)?;
    let mut de = serde_json::Deserializer::from_str(text);
    let dynamic = DynamicMessage::deserialize(desc, &mut de)
        .map_err(|e| CliError::Usage(format!("invalid {name} JSON: {e}")))?;
    de.end()
        .map_err(|e| CliError::Usage(format!("invalid {name} JSON: {e}")))?;
    dynamic
        .transcode_to::<T>()
        .map_err(|e| CliError::Other(format!("cannot convert {name}: {e}")))
}

/// Whether a reply means the request did not do what was asked (state FAILED, not found).
pub fn outcome(value: &Value) -> Outcome {
    let failed = value.get("state").and_then(Value::as_str) == Some("FAILED")
        || ["exists", "found", "rescheduled", "received"]
            .iter()
            .any(|k| value.get(*k).and_then(Value::as_bool) == Some(false));
    if failed {
        Outcome::Failed
    } else {
        Outcome::Ok
    }
}

/// Where and how results are printed.
#[derive(Debug, Clone, Copy)]
pub struct Output {
    pub json: bool,
}

impl Output {
    pub fn new(json: bool) -> Self {
        Output { json }
    }

    /// Prints a reply of type `unary.<name>` and returns its outcome.
    pub fn reply<M: prost::Message>(&self, msg: &M, name: &str) -> CliResult {
        let value = to_json(msg, name)?;
        if self.json {
            println!("{value}");
        } else {
            print!("{}", render_table(&descriptor(name)?, &value));
        }
        Ok(outcome(&value))
    }

    /// Prints free text (kernel service replies); JSON wraps it.
    pub fn text(&self, key: &str, text: &str) {
        if self.json {
            println!("{}", serde_json::json!({ key: text }));
        } else {
            print!("{text}");
            if !text.is_empty() && !text.ends_with('\n') {
                println!();
            }
        }
    }
}

fn scalar(value: &Value) -> String {
    match value {
        Value::Null => String::new(),
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

fn cell(text: &str) -> String {
    let one_line: String = text
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect();
    if one_line.chars().count() > MAX_CELL {
        let mut cut: String = one_line.chars().take(MAX_CELL - 1).collect();
        cut.push('…');
        cut
    } else {
        one_line
    }
}

/// Scalar fields of a message in declaration order, nested messages flattened as `a.b`.
fn flatten(
    desc: &MessageDescriptor,
    value: &Value,
    prefix: &str,
    rows: &mut Vec<(String, String)>,
) {
    for field in desc.fields() {
        let key = format!("{prefix}{}", field.name());
        let v = value.get(field.name()).unwrap_or(&Value::Null);
        match field.kind() {
            Kind::Message(inner) if !field.is_list() => {
                flatten(&inner, v, &format!("{key}."), rows);
            }
            Kind::Message(_) => {}
            _ if field.is_list() => {
                let items: Vec<String> = v
                    .as_array()
                    .map(|a| a.iter().map(scalar).collect())
                    .unwrap_or_default();
                rows.push((key, items.join(",")));
            }
            _ => rows.push((key, scalar(v))),
        }
    }
}

fn render_list(name: &str, desc: &MessageDescriptor, items: &[Value]) -> String {
    if items.is_empty() {
        return format!("{name}: none\n");
    }
    let rows: Vec<Vec<(String, String)>> = items
        .iter()
        .map(|item| {
            let mut r = Vec::new();
            flatten(desc, item, "", &mut r);
            r
        })
        .collect();
    let Some(first) = rows.first() else {
        return String::new();
    };
    // Columns empty in every row only add width.
    let columns: Vec<usize> = (0..first.len())
        .filter(|&i| {
            rows.iter()
                .any(|r| r.get(i).is_some_and(|(_, v)| !v.is_empty()))
        })
        .collect();
    let header: Vec<String> = columns.iter().map(|&i| first[i].0.to_uppercase()).collect();
    let body: Vec<Vec<String>> = rows
        .iter()
        .map(|r| columns.iter().map(|&i| cell(&r[i].1)).collect())
        .collect();
    let widths: Vec<usize> = (0..columns.len())
        .map(|c| {
            body.iter()
                .map(|row| row[c].chars().count())
                .chain(std::iter::once(header[c].chars().count()))
                .max()
                .unwrap_or(0)
        })
        .collect();
    let line = |cells: &[String]| {
        let mut s = cells
            .iter()
            .zip(&widths)
            .map(|(c, w)| format!("{c:<w$}"))
            .collect::<Vec<_>>()
            .join("  ");
        s.truncate(s.trim_end().len());
        s.push('\n');
        s
    };
    let mut out = format!("{name} ({}):\n", items.len());
    out.push_str(&line(&header));
    for row in &body {
        out.push_str(&line(row));
    }
    out
}

/// Human-readable rendering: `key  value` lines, then one table per repeated message field.
pub fn render_table(desc: &MessageDescriptor, value: &Value) -> String {
    let mut scalars = Vec::new();
    flatten(desc, value, "", &mut scalars);
    let width = scalars.iter().map(|(k, _)| k.len()).max().unwrap_or(0);
    let mut out = String::new();
    for (k, v) in &scalars {
        let v = if v.contains('\n') {
            format!("\n  {}", v.trim_end().replace('\n', "\n  "))
        } else {
            v.clone()
        };
        out.push_str(&format!("{k:<width$}  {v}\n"));
    }
    for field in desc.fields() {
        if let (Kind::Message(inner), true) = (field.kind(), field.is_list()) {
            let items = value
                .get(field.name())
                .and_then(Value::as_array)
                .cloned()
                .unwrap_or_default();
            out.push_str(&render_list(field.name(), &inner, &items));
        }
    }
    if out.is_empty() {
        out.push_str("ok\n");
    }
    out
}
