//! Rendering of orchestrator replies (table, JSON or YAML; field selection; times in UTC) and
//! what each reply means for the exit code.

use std::sync::OnceLock;

use prost_reflect::{DescriptorPool, DynamicMessage, MessageDescriptor, SerializeOptions};
use serde_json::Value;

use super::{CliError, CliResult, Outcome};

use super::render;
pub(super) use super::render::render_table;
pub(super) use super::times::TimeZone;
fn pool() -> Result<&'static DescriptorPool, CliError> {
    static POOL: OnceLock<Option<DescriptorPool>> = OnceLock::new();
    POOL.get_or_init(|| DescriptorPool::decode(leotest_proto::FILE_DESCRIPTOR_SET).ok())
        .as_ref()
        .ok_or_else(|| CliError::Other("embedded protobuf descriptor is unreadable".into()))
}

/// Descriptor of `unary.<name>`.
pub(super) fn descriptor(name: &str) -> Result<MessageDescriptor, CliError> {
    pool()?
        .get_message_by_name(&format!("unary.{name}"))
        .ok_or_else(|| CliError::Other(format!("unknown message type {name}")))
}

/// A reply as JSON: proto field names, default values included, enums by name.
pub(super) fn to_json<M: prost::Message>(msg: &M, name: &str) -> Result<Value, CliError> {
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
pub(super) fn from_json<T: prost::Message + Default>(
    text: &str,
    name: &str,
) -> Result<T, CliError> {
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

/// Whether a reply means the request did not do what was asked: a refusal naming a permission
/// is an authorisation failure (exit 4), FAILED or nothing found a refusal (exit 1).
pub(super) fn outcome(value: &Value) -> Outcome {
    let message = value.get("message").and_then(Value::as_str).unwrap_or("");
    if message.starts_with("permission denied") {
        return Outcome::Denied;
    }
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

/// Output formats of `--output`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub(crate) enum Format {
    /// Readable tables (default)
    #[default]
    Table,
    /// One JSON document (protobuf field names, every field)
    Json,
    /// The same document as YAML
    Yaml,
}

/// Where and how results are printed.
#[derive(Debug, Clone, Default)]
pub(crate) struct Output {
    pub format: Format,
    /// `--fields`: keep only these (dotted paths), in this order.
    pub fields: Option<Vec<String>>,
    pub tz: TimeZone,
}

impl Output {
    pub(crate) fn new(format: Format, fields: Option<Vec<String>>, tz: TimeZone) -> Self {
        let fields = fields
            .map(|f| {
                f.into_iter()
                    .map(|s| s.trim().to_string())
                    .filter(|s| !s.is_empty())
                    .collect::<Vec<_>>()
            })
            .filter(|f| !f.is_empty());
        Output { format, fields, tz }
    }

    /// True for machine-readable output (JSON or YAML).
    pub(crate) fn structured(&self) -> bool {
        self.format != Format::Table
    }

    /// Prints a reply of type `unary.<name>` and returns its outcome. A refusal naming a
    /// permission is returned as [`CliError::Denied`] (exit 4) and not printed as a record.
    pub(crate) fn reply<M: prost::Message>(&self, msg: &M, name: &str) -> CliResult {
        let value = to_json(msg, name)?;
        let outcome = outcome(&value);
        if outcome == Outcome::Denied {
            return Err(CliError::Denied(message_of(&value)));
        }
        self.print_message(&value, name)?;
        Ok(outcome)
    }

    /// Prints a single record (`get_user`, `get_job_by_id`), or reports `what` as not found
    /// (exit 1, nothing on stdout) when the reply says it does not exist: never a record of
    /// default values.
    pub(crate) fn record<M: prost::Message>(&self, msg: &M, name: &str, what: &str) -> CliResult {
        let value = to_json(msg, name)?;
        if value.get("exists").and_then(Value::as_bool) == Some(false) {
            return Err(CliError::NotFound(format!("{what} not found")));
        }
        self.reply(msg, name)
    }

    fn print_message(&self, value: &Value, name: &str) -> Result<(), CliError> {
        let mut value = value.clone();
        super::times::normalize(&mut value, self.tz);
        if self.fields.is_some() || self.structured() {
            return self.value(&value);
        }
        print!("{}", render_table(&descriptor(name)?, &value));
        Ok(())
    }

    /// Prints any JSON value in the chosen format, after `--fields` selection.
    pub(crate) fn value(&self, value: &Value) -> Result<(), CliError> {
        let value = match &self.fields {
            Some(fields) => render::select(value, fields),
            None => value.clone(),
        };
        match self.format {
            Format::Json => println!("{value}"),
            Format::Yaml => print!("{}", render::yaml(&value)),
            Format::Table => print!("{}", render::generic_table(&value)),
        }
        Ok(())
    }

    /// Prints free text (kernel service replies); JSON and YAML wrap it.
    pub(crate) fn text(&self, key: &str, text: &str) {
        match self.format {
            Format::Table => {
                print!("{text}");
                if !text.is_empty() && !text.ends_with('\n') {
                    println!();
                }
            }
            _ => {
                let _ = self.value(&serde_json::json!({ key: text }));
            }
        }
    }
}

fn message_of(value: &Value) -> String {
    value
        .get("message")
        .and_then(Value::as_str)
        .unwrap_or("permission denied")
        .to_string()
}
