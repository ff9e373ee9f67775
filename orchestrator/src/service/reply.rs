//! Reply budgets of list RPCs: a list whose reply would pass `--max-reply-bytes` stops at
//! the last item that fits (the original's list replies have no field to say more; the
//! server logs it). Items are counted by their encoded size, as the client receives them.

/// Bytes a repeated message field adds per item beyond the item itself (tag and length).
const ITEM_OVERHEAD: usize = 6;

/// The leading `items` whose encoded size stays within `max_bytes`; logs when it cuts.
pub fn within<T: prost::Message>(rpc: &'static str, items: Vec<T>, max_bytes: usize) -> Vec<T> {
    let mut bytes = 0usize;
    let total = items.len();
    let mut kept = Vec::with_capacity(total);
    for item in items {
        bytes = bytes.saturating_add(item.encoded_len() + ITEM_OVERHEAD);
        if bytes > max_bytes {
            tracing::warn!(
                rpc,
                kept = kept.len(),
                total,
                max_bytes,
                "list reply cut at --max-reply-bytes"
            );
            break;
        }
        kept.push(item);
    }
    kept
}

#[cfg(test)]
mod tests {
    use super::*;
    use leotest_proto::unary::Task;

    #[test]
    fn lists_stop_at_the_budget() {
        let task = |id: &str| Task {
            taskid: id.repeat(100),
            ..Default::default()
        };
        let all = vec![task("a"), task("b"), task("c")];
        assert_eq!(within("t", all.clone(), 1 << 20).len(), 3);
        assert_eq!(within("t", all.clone(), 250).len(), 2);
        assert!(within("t", all, 10).is_empty());
    }
}
