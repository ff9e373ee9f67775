//! Readable tables from protobuf JSON: `key  value` lines for records, one column per field for
//! lists (nested messages flattened as `a.b`), and a plain YAML writer.

use prost_reflect::{Kind, MessageDescriptor};
use serde_json::Value;

/// Widest table cell; longer values (experiment configs) are cut with an ellipsis.
const MAX_CELL: usize = 48;

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
    aligned_table(name, items.len(), &header, &body)
}

/// Human-readable rendering: `key  value` lines, then one table per repeated message field.
pub(super) fn render_table(desc: &MessageDescriptor, value: &Value) -> String {
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

/// The value at a dotted path (`params.deploy`).
fn at<'a>(value: &'a Value, path: &str) -> Option<&'a Value> {
    path.split('.').try_fold(value, |v, key| v.get(key))
}

/// Keeps only `fields` (dotted paths, flattened to their path as key). In a reply that holds
/// a list of records (`jobs`, `nodes`, ...), the fields are taken from each record.
pub(super) fn select(value: &Value, fields: &[String]) -> Value {
    let pick = |record: &Value| {
        let mut out = serde_json::Map::new();
        for f in fields {
            out.insert(f.clone(), at(record, f).cloned().unwrap_or(Value::Null));
        }
        Value::Object(out)
    };
    if let Value::Object(map) = value {
        let lists: Vec<(&String, &Vec<Value>)> = map
            .iter()
            .filter_map(|(k, v)| v.as_array().map(|a| (k, a)))
            .filter(|(_, a)| a.iter().all(Value::is_object))
            .collect();
        let top_level_hit = fields.iter().any(|f| at(value, f).is_some());
        if let [(key, items)] = lists.as_slice() {
            if !top_level_hit {
                let mut out = serde_json::Map::new();
                out.insert(
                    (*key).clone(),
                    Value::Array(items.iter().map(pick).collect()),
                );
                return Value::Object(out);
            }
        }
    }
    pick(value)
}

/// A table from any JSON value: a record as `key  value` lines, a single list of records as
/// columns.
pub(super) fn generic_table(value: &Value) -> String {
    let Value::Object(map) = value else {
        return format!("{}\n", scalar(value));
    };
    let mut out = String::new();
    let width = map.keys().map(String::len).max().unwrap_or(0);
    for (k, v) in map {
        match v {
            Value::Array(items) if items.iter().all(Value::is_object) && !items.is_empty() => {
                let columns: Vec<String> = items
                    .iter()
                    .filter_map(Value::as_object)
                    .flat_map(|o| o.keys().cloned())
                    .fold(Vec::new(), |mut acc, k| {
                        if !acc.contains(&k) {
                            acc.push(k);
                        }
                        acc
                    });
                out.push_str(&columns_table(k, &columns, items));
            }
            Value::Array(items) if items.is_empty() => out.push_str(&format!("{k}: none\n")),
            _ => {
                let text = match v {
                    Value::Object(_) | Value::Array(_) => v.to_string(),
                    other => scalar(other),
                };
                out.push_str(&format!("{k:<width$}  {}\n", cell(&text)));
            }
        }
    }
    if out.is_empty() {
        out.push_str("ok\n");
    }
    out
}

fn columns_table(name: &str, columns: &[String], items: &[Value]) -> String {
    let header: Vec<String> = columns.iter().map(|c| c.to_uppercase()).collect();
    let body: Vec<Vec<String>> = items
        .iter()
        .map(|item| {
            columns
                .iter()
                .map(|c| {
                    let v = item.get(c).unwrap_or(&Value::Null);
                    cell(&match v {
                        Value::Object(_) | Value::Array(_) => v.to_string(),
                        other => scalar(other),
                    })
                })
                .collect()
        })
        .collect();
    aligned_table(name, items.len(), &header, &body)
}

/// A YAML document for a JSON value. Strings are written double-quoted with JSON escapes,
/// which YAML's double-quoted style reads the same, so no value can change type or break
/// the document.
pub(super) fn yaml(value: &Value) -> String {
    let mut out = String::new();
    match value {
        Value::Object(m) if !m.is_empty() => yaml_map(m, 0, &mut out),
        Value::Array(a) if !a.is_empty() => yaml_seq(a, 0, &mut out),
        other => {
            out.push_str(&yaml_scalar(other));
            out.push('\n');
        }
    }
    out
}

fn yaml_key(k: &str) -> String {
    let plain = !k.is_empty()
        && k.chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.'))
        && !k.starts_with('-');
    if plain {
        k.to_string()
    } else {
        Value::String(k.to_string()).to_string()
    }
}

fn yaml_scalar(v: &Value) -> String {
    match v {
        Value::Object(_) => "{}".into(),
        Value::Array(_) => "[]".into(),
        // JSON's null, booleans, numbers and quoted strings are YAML as they are.
        other => other.to_string(),
    }
}

fn is_nested(v: &Value) -> bool {
    match v {
        Value::Object(m) => !m.is_empty(),
        Value::Array(a) => !a.is_empty(),
        _ => false,
    }
}

fn yaml_map(m: &serde_json::Map<String, Value>, indent: usize, out: &mut String) {
    let pad = " ".repeat(indent);
    for (k, v) in m {
        if is_nested(v) {
            out.push_str(&format!("{pad}{}:\n", yaml_key(k)));
            yaml_nested(v, indent + 2, out);
        } else {
            out.push_str(&format!("{pad}{}: {}\n", yaml_key(k), yaml_scalar(v)));
        }
    }
}

fn yaml_seq(a: &[Value], indent: usize, out: &mut String) {
    let pad = " ".repeat(indent);
    for v in a {
        if is_nested(v) {
            out.push_str(&format!("{pad}-\n"));
            yaml_nested(v, indent + 2, out);
        } else {
            out.push_str(&format!("{pad}- {}\n", yaml_scalar(v)));
        }
    }
}

fn yaml_nested(v: &Value, indent: usize, out: &mut String) {
    match v {
        Value::Object(m) => yaml_map(m, indent, out),
        Value::Array(a) => yaml_seq(a, indent, out),
        _ => {}
    }
}

/// `name (count):`, then the header and the rows in columns as wide as their widest cell.
fn aligned_table(name: &str, count: usize, header: &[String], body: &[Vec<String>]) -> String {
    let widths: Vec<usize> = (0..header.len())
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
    let mut out = format!("{name} ({count}):\n");
    out.push_str(&line(header));
    for row in body {
        out.push_str(&line(row));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn yaml_quotes_every_string() {
        let v = json!({"id": "j1", "n": 3, "ok": true, "none": null, "tags": ["a", "b: c"],
                        "params": {"deploy": "x\ny"}, "empty": [], "jobs": [{"id": "no"}]});
        let text = yaml(&v);
        assert!(text.contains("id: \"j1\"\n"), "{text}");
        assert!(
            text.contains("n: 3\n") && text.contains("ok: true\n"),
            "{text}"
        );
        assert!(
            text.contains("none: null\n") && text.contains("empty: []\n"),
            "{text}"
        );
        assert!(text.contains("  - \"b: c\"\n"), "{text}");
        assert!(text.contains("  deploy: \"x\\ny\"\n"), "{text}");
        assert!(text.contains("jobs:\n  -\n    id: \"no\"\n"), "{text}");
    }

    #[test]
    fn fields_select_from_each_listed_record() {
        let v = json!({"exists": true, "jobs": [{"id": "a", "nodeid": "n", "params": {"deploy": "d"}}]});
        let picked = select(&v, &["id".into(), "params.deploy".into()]);
        assert_eq!(picked, json!({"jobs": [{"id": "a", "params.deploy": "d"}]}));
        let one = json!({"id": "a", "nodeid": "n"});
        assert_eq!(select(&one, &["nodeid".into()]), json!({"nodeid": "n"}));
        let t = generic_table(&picked);
        assert!(
            t.starts_with("jobs (1):\nID  PARAMS.DEPLOY\na   d\n"),
            "{t}"
        );
    }
}
