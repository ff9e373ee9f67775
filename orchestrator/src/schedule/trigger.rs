//! Validation of job triggers with the original's grammar (common/trigger.py).
//!
//! Hand-written lexer and recursive-descent parser for the same language: boolean `| & !`,
//! comparisons `> >= < <= == === != !==`, arithmetic `+ - * /`, unary minus, `|x|` absolute
//! value, parentheses, integers and the telemetry field names. Empty triggers are valid.

/// Longest trigger accepted.
pub const MAX_LEN: usize = 4096;
/// Deepest nesting accepted (keeps recursion bounded).
const MAX_DEPTH: usize = 64;

/// Field names a trigger may refer to (the original's `FIELDS`).
pub const FIELDS: [&str; 30] = [
    "uplink_throughput_bps",
    "downlink_throughput_bps",
    "exp_tx_rate_bytes",
    "exp_rx_rate_bytes",
    "pop_ping_latency_ms",
    "direction_azimuth",
    "direction_elevation",
    "currently_obstructed",
    "fraction_obstructed",
    "sat_dist_max",
    "sat_dist_min",
    "sat_dist_mean",
    "weather_id",
    "weather_main",
    "weather_desc",
    "weather_temp",
    "weather_pressure",
    "weather_humidity",
    "weather_temp_min",
    "weather_temp_max",
    "weather_temp_mean",
    "weather_clouds",
    "weather_rain1h",
    "weather_rain3h",
    "weather_snow1h",
    "weather_snow3h",
    "weather_visibility",
    "weather_speed",
    "weather_deg",
    "weather_gust",
];

#[derive(Debug, Clone, PartialEq, Eq)]
enum Tok {
    Name(String),
    Num,
    Cmp,
    Lit(char),
}

fn lex(src: &str) -> Result<Vec<Tok>, String> {
    let b = src.as_bytes();
    let mut i = 0;
    let mut out = Vec::new();
    while i < b.len() {
        let c = b[i];
        let rest = &src[i..];
        if c == b' ' || c == b'\t' || c == b'\n' {
            i += 1;
        } else if c.is_ascii_alphabetic() || c == b'_' {
            let n = rest
                .bytes()
                .take_while(|x| x.is_ascii_alphanumeric() || *x == b'_')
                .count();
            out.push(Tok::Name(rest[..n].to_string()));
            i += n;
        } else if c.is_ascii_digit() {
            i += rest.bytes().take_while(u8::is_ascii_digit).count();
            out.push(Tok::Num);
        } else if rest.starts_with("//") {
            i += rest.find('\n').unwrap_or(rest.len());
        } else if let Some(op) = ["===", "!==", "==", "!=", ">=", "<="]
            .iter()
            .find(|op| rest.starts_with(*op))
        {
            out.push(Tok::Cmp);
            i += op.len();
        } else if "=+-/*(),;&|!><".contains(c as char) {
            out.push(if c == b'>' || c == b'<' {
                Tok::Cmp
            } else {
                Tok::Lit(c as char)
            });
            i += 1;
        } else {
            // The original's words (sly's LexError, which the web portal shows users): the
            // character as Python's repr() shows it, and its index in characters.
            let ch = rest.chars().next().unwrap_or('?');
            let index = src[..i].chars().count();
            return Err(format!(
                "Illegal character {} at index {index}",
                py_repr(ch)
            ));
        }
    }
    Ok(out)
}

/// Python's `repr()` of a one-character string: single quotes (double for a quote), escapes
/// for `\\`, `\t`, `\n`, `\r`, and `\xNN` / `\uNNNN` / `\UNNNNNNNN` for characters Python
/// does not print (controls, separators other than space, format characters).
fn py_repr(c: char) -> String {
    let n = c as u32;
    let hidden = c.is_control()
        || (c.is_whitespace() && c != ' ')
        || matches!(n, 0xad | 0x200b..=0x200f | 0x202a..=0x202e | 0x2060..=0x206f | 0xfeff);
    let body = match c {
        '\\' => "\\\\".to_string(),
        '\t' => "\\t".to_string(),
        '\n' => "\\n".to_string(),
        '\r' => "\\r".to_string(),
        '\'' => return "\"'\"".to_string(),
        _ if hidden && n <= 0xff => format!("\\x{n:02x}"),
        _ if hidden && n <= 0xffff => format!("\\u{n:04x}"),
        _ if hidden => format!("\\U{n:08x}"),
        c => c.to_string(),
    };
    format!("'{body}'")
}

struct Parser<'a> {
    toks: &'a [Tok],
    pos: usize,
    depth: usize,
}

type PResult = Result<(), String>;

impl Parser<'_> {
    fn peek(&self) -> Option<&Tok> {
        self.toks.get(self.pos)
    }

    fn eat(&mut self, c: char) -> bool {
        if self.peek() == Some(&Tok::Lit(c)) {
            self.pos += 1;
            true
        } else {
            false
        }
    }

    fn err(&self) -> String {
        match self.peek() {
            None => "syntax error at end of input".into(),
            Some(Tok::Name(n)) => format!("syntax error at '{n}'"),
            Some(Tok::Num) => "syntax error at number".into(),
            Some(Tok::Cmp) => "syntax error at comparison".into(),
            Some(Tok::Lit(c)) => format!("syntax error at '{c}'"),
        }
    }

    fn enter(&mut self) -> PResult {
        self.depth += 1;
        if self.depth > MAX_DEPTH {
            return Err("expression nested too deeply".into());
        }
        Ok(())
    }

    fn bexpr(&mut self) -> PResult {
        self.enter()?;
        self.bterm()?;
        while self.eat('|') {
            self.bterm()?;
        }
        self.depth -= 1;
        Ok(())
    }

    fn bterm(&mut self) -> PResult {
        self.bnot()?;
        while self.eat('&') {
            self.bnot()?;
        }
        Ok(())
    }

    fn bnot(&mut self) -> PResult {
        if self.eat('!') {
            self.enter()?;
            self.bnot()?;
            self.depth -= 1;
            return Ok(());
        }
        // "(" may open a boolean group or an arithmetic one: try boolean first, then rewind.
        if self.peek() == Some(&Tok::Lit('(')) {
            let save = (self.pos, self.depth);
            self.pos += 1;
            if self.bexpr().is_ok() && self.eat(')') {
                let next = self.peek();
                if matches!(next, None | Some(Tok::Lit('|' | '&' | ')'))) {
                    return Ok(());
                }
            }
            (self.pos, self.depth) = save;
        }
        self.cmp()
    }

    fn cmp(&mut self) -> PResult {
        self.arith()?;
        while self.peek() == Some(&Tok::Cmp) {
            self.pos += 1;
            self.arith()?;
        }
        Ok(())
    }

    fn arith(&mut self) -> PResult {
        self.term()?;
        while self.eat('+') || self.eat('-') {
            self.term()?;
        }
        Ok(())
    }

    fn term(&mut self) -> PResult {
        self.unary()?;
        while self.eat('*') || self.eat('/') {
            self.unary()?;
        }
        Ok(())
    }

    fn unary(&mut self) -> PResult {
        self.enter()?;
        let r = if self.eat('-') {
            self.unary()
        } else {
            self.primary()
        };
        self.depth -= 1;
        r
    }

    fn primary(&mut self) -> PResult {
        match self.peek().cloned() {
            Some(Tok::Num) => {
                self.pos += 1;
                Ok(())
            }
            Some(Tok::Name(n)) => {
                if !FIELDS.contains(&n.as_str()) {
                    return Err(format!("undefined variable '{n}'"));
                }
                self.pos += 1;
                Ok(())
            }
            Some(Tok::Lit(c @ ('(' | '|'))) => {
                self.pos += 1;
                let close = if c == '(' { ')' } else { '|' };
                self.arith()?;
                if self.eat(close) {
                    Ok(())
                } else {
                    Err(self.err())
                }
            }
            _ => Err(self.err()),
        }
    }
}

/// Checks a trigger; `Err` carries the reply text (`trigger: <reason>`, as the original).
pub fn verify(trigger: &str) -> Result<(), String> {
    let reason = (|| {
        if trigger.len() > MAX_LEN {
            return Err(format!("longer than {MAX_LEN} bytes"));
        }
        let toks = lex(trigger)?;
        if toks.is_empty() {
            return Ok(());
        }
        let mut p = Parser {
            toks: &toks,
            pos: 0,
            depth: 0,
        };
        p.bexpr()?;
        if p.pos != toks.len() {
            return Err(p.err());
        }
        Ok(())
    })();
    reason.map_err(|r| format!("trigger: {r}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn trigger_table() {
        let valid = [
            "",
            "weather_temp > 20",
            "|5-9| == 4",
            "(weather_temp > 20) & !(currently_obstructed == 1)",
            "(weather_temp + 3) * 2 >= -10 | weather_clouds < 50",
            "pop_ping_latency_ms // comment",
            "sat_dist_min !== 3",
            "weather_gust",
        ];
        for t in valid {
            assert_eq!(verify(t), Ok(()), "{t}");
        }
        let invalid = [
            ("temp > 20", "trigger: undefined variable 'temp'"),
            ("weather_temp >", "trigger: syntax error at end of input"),
            (
                "weather_temp $ 3",
                "trigger: Illegal character '$' at index 13",
            ),
            (
                "weather.temp > 3",
                "trigger: Illegal character '.' at index 7",
            ),
            ("é > 1", "trigger: Illegal character 'é' at index 0"),
            ("1 > 'x'", "trigger: Illegal character \"'\" at index 4"),
            ("1 > \\", "trigger: Illegal character '\\\\' at index 4"),
            ("1 >\u{1}", "trigger: Illegal character '\\x01' at index 3"),
            ("(weather_temp > 3", "trigger: syntax error at comparison"),
            ("weather_temp 3", "trigger: syntax error at number"),
        ];
        for (t, msg) in invalid {
            assert_eq!(verify(t), Err(msg.to_string()), "{t}");
        }
        assert!(verify(&"(".repeat(200)).is_err());
    }
}
