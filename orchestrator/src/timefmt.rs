//! Timestamps as the original reads (dateutil ISO forms) and writes them (Python `str(datetime)`).

use chrono::{DateTime, Datelike, FixedOffset, NaiveDateTime, Timelike, Utc};

pub use leotest_proto::timefmt::{parse_aware, parse_datetime};

/// Python's `str()` of the naive UTC datetime MongoDB returns: `2024-05-01 10:20:30` or, with a
/// sub-second part, `2024-05-01 10:20:30.123000`.
pub fn format_python(t: DateTime<Utc>) -> String {
    let mut out = String::with_capacity(26);
    push_python(&mut out, t.naive_utc());
    out
}

/// Python's `str()` of an offset-aware datetime: local time of `t` at `offset`, then `+HH:MM`.
pub fn format_python_offset(t: DateTime<Utc>, offset: FixedOffset) -> String {
    let mut out = String::with_capacity(32);
    let secs = offset.local_minus_utc();
    if secs % 60 != 0 {
        // Sub-minute offsets never come from ISO-8601 input; let chrono render them.
        let local = t.with_timezone(&offset);
        push_python(&mut out, local.naive_local());
        out.push_str(&local.format("%:z").to_string());
        return out;
    }
    push_python(&mut out, t.with_timezone(&offset).naive_local());
    let (sign, abs) = if secs < 0 {
        (b'-', -secs)
    } else {
        (b'+', secs)
    };
    let (h, m) = ((abs / 3600) as u32, (abs / 60 % 60) as u32);
    let tail = [
        sign,
        digit(h / 10),
        digit(h % 10),
        b':',
        digit(m / 10),
        digit(m % 10),
    ];
    out.push_str(std::str::from_utf8(&tail).unwrap_or("+00:00"));
    out
}

fn digit(v: u32) -> u8 {
    b'0' + (v % 10) as u8
}

/// Appends `YYYY-MM-DD HH:MM:SS[.ffffff]`. Written by hand: this runs once or twice per event
/// of get_scheduled_runs and per run of get_runs, and chrono's `format` re-parses its pattern
/// and grows its output each time (most of those RPCs' CPU time before).
fn push_python(out: &mut String, t: NaiveDateTime) {
    let year = t.year();
    let nanos = t.nanosecond();
    if !(0..=9999).contains(&year) || nanos >= 1_000_000_000 {
        // Years Python cannot represent and leap seconds: chrono's rendering, as before.
        let pattern = if nanos / 1000 == 0 {
            "%Y-%m-%d %H:%M:%S"
        } else {
            "%Y-%m-%d %H:%M:%S%.6f"
        };
        out.push_str(&t.format(pattern).to_string());
        return;
    }
    let y = year as u32;
    let (mo, d, h, mi, s) = (t.month(), t.day(), t.hour(), t.minute(), t.second());
    let b = [
        digit(y / 1000),
        digit(y / 100),
        digit(y / 10),
        digit(y),
        b'-',
        digit(mo / 10),
        digit(mo),
        b'-',
        digit(d / 10),
        digit(d),
        b' ',
        digit(h / 10),
        digit(h),
        b':',
        digit(mi / 10),
        digit(mi),
        b':',
        digit(s / 10),
        digit(s),
    ];
    // All ASCII digits and separators: valid UTF-8.
    out.push_str(std::str::from_utf8(&b).unwrap_or_default());
    let micros = nanos / 1000;
    if micros != 0 {
        let mut f = [b'.', 0, 0, 0, 0, 0, 0];
        let mut v = micros;
        for slot in f[1..].iter_mut().rev() {
            *slot = digit(v);
            v /= 10;
        }
        out.push_str(std::str::from_utf8(&f).unwrap_or_default());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn utc(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s)
            .expect("valid")
            .with_timezone(&Utc)
    }

    #[test]
    fn accepts_the_original_forms() {
        let cases = [
            ("2024-05-01", "2024-05-01T00:00:00Z"),
            ("2024-05-01 10:20:30", "2024-05-01T10:20:30Z"),
            ("2024-05-01T10:20:30", "2024-05-01T10:20:30Z"),
            ("2024-05-01T10:20:30Z", "2024-05-01T10:20:30Z"),
            ("2024-05-01T10:20:30.5+05:30", "2024-05-01T04:50:30.5Z"),
            ("2024-05-01 10:20:30+00:00", "2024-05-01T10:20:30Z"),
            ("2024-05-01 10:20:30.123456", "2024-05-01T10:20:30.123456Z"),
            ("2024-05-01 10:20", "2024-05-01T10:20:00Z"),
        ];
        for (input, want) in cases {
            assert_eq!(parse_datetime(input), Some(utc(want)), "{input}");
        }
    }

    #[test]
    fn rejects_garbage() {
        for input in [
            "",
            "yesterday",
            "2024-13-01",
            "2024-02-30",
            &"9".repeat(100),
        ] {
            assert_eq!(parse_datetime(input), None, "{input}");
        }
    }

    #[test]
    fn hand_written_formatter_matches_chrono() {
        let chrono_python = |t: DateTime<Utc>| {
            if t.nanosecond() / 1000 == 0 {
                t.format("%Y-%m-%d %H:%M:%S").to_string()
            } else {
                t.format("%Y-%m-%d %H:%M:%S%.6f").to_string()
            }
        };
        let offsets = [0, 19_800, -12 * 3600, 14 * 3600, -3 * 3600 - 1800, 5];
        let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
        for i in 0..20_000u64 {
            // xorshift over years 1..9999 with and without sub-second parts
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            let secs = (x % 315_000_000_000) as i64 - 62_000_000_000;
            let nanos = match i % 4 {
                0 => 0,
                1 => (x % 1000) as u32 * 1000,
                2 => (x % 1_000_000_000) as u32,
                _ => 999,
            };
            let Some(t) = DateTime::from_timestamp(secs, nanos) else {
                continue;
            };
            assert_eq!(format_python(t), chrono_python(t), "{t:?}");
            let off = FixedOffset::east_opt(offsets[(i % 6) as usize]).expect("offset");
            let local = t.with_timezone(&off);
            let want = format!(
                "{}{}",
                chrono_python(local.naive_local().and_utc()),
                local.format("%:z")
            );
            assert_eq!(format_python_offset(t, off), want, "{t:?} {off}");
        }
    }

    #[test]
    fn formats_like_python_str() {
        assert_eq!(
            format_python(utc("2020-01-01T00:00:00Z")),
            "2020-01-01 00:00:00"
        );
        assert_eq!(
            format_python(utc("2020-01-01T00:00:00.25Z")),
            "2020-01-01 00:00:00.250000"
        );
    }
}
