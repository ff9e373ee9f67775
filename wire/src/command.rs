//! The request grammar: the kernel service parses a line into a [`KernelCommand`] with
//! [`parse`], the client renders one with [`KernelCommand::line`], and a rendered line is always
//! checked to parse back to the same command.

use thiserror::Error;

/// Longest accepted command line in bytes (the original read a single 1024-byte recv).
pub const MAX_LINE: usize = 4096;
/// Longest congestion-control algorithm name the kernel accepts (TCP_CA_NAME_MAX).
const MAX_ALG: usize = 16;
/// Longest bbr2 parameter name or value.
const MAX_TOKEN: usize = 256;

/// A parsed request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KernelCommand {
    /// `cca.check`
    CcaCheck,
    /// `cca.change ALG`
    CcaChange(String),
    /// `bbr2.param.set NAME VALUE`
    Bbr2Set {
        /// Parameter name under `/sys/module/tcp_bbr2/parameters/`.
        name: String,
        /// Value written to it, as given.
        value: String,
    },
    /// `job.start CMD ARGS...`
    JobStart(Vec<String>),
    /// `job.status ID`
    JobStatus(String),
    /// `job.stop ID`
    JobStop(String),
    /// `job.watch ID`
    JobWatch(String),
    /// `job.list`
    JobList,
    /// Anything else: a one-shot sandboxed command.
    Other(String),
}

/// Why a line is refused before dispatch.
#[derive(Debug, Error, PartialEq, Eq)]
pub enum ParseError {
    /// The line has no command word.
    #[error("empty command")]
    Empty,
    /// The line exceeds `MAX_LINE` bytes.
    #[error("command line longer than {MAX_LINE} bytes")]
    TooLong,
    /// The line is not valid UTF-8.
    #[error("command is not UTF-8 text")]
    NotUtf8,
    /// The line contains control characters.
    #[error("command contains control characters")]
    Control,
    /// Wrong number of arguments; carries the command's usage text.
    #[error("usage: {0}")]
    Usage(&'static str),
    /// An argument is malformed; carries which argument.
    #[error("invalid argument: {0}")]
    BadArgument(&'static str),
}

/// Why a command cannot be sent as a line.
#[derive(Debug, Error, PartialEq, Eq)]
pub enum LineError {
    /// An argument cannot be carried by the whitespace-separated, one-line protocol.
    #[error("invalid argument {0:?}: must be non-empty printable text without spaces")]
    InvalidArgument(String),
    /// `job.start` without a command.
    #[error("job start needs a command")]
    MissingCommand,
    /// The line is not one the kernel service accepts (e.g. an algorithm name it refuses).
    #[error("not a valid kernel command: {0}")]
    Refused(ParseError),
    /// The command line would exceed [`MAX_LINE`].
    #[error("command line longer than {MAX_LINE} bytes")]
    TooLong,
}

impl KernelCommand {
    /// Short name for audit lines; never includes arguments a user controls.
    pub fn kind(&self) -> &'static str {
        match self {
            KernelCommand::CcaCheck => "cca.check",
            KernelCommand::CcaChange(_) => "cca.change",
            KernelCommand::Bbr2Set { .. } => "bbr2.param.set",
            KernelCommand::JobStart(_) => "job.start",
            KernelCommand::JobStatus(_) => "job.status",
            KernelCommand::JobStop(_) => "job.stop",
            KernelCommand::JobWatch(_) => "job.watch",
            KernelCommand::JobList => "job.list",
            KernelCommand::Other(_) => "oneshot",
        }
    }

    /// The protocol line (without the newline), validated: it parses back to `self`.
    pub fn line(&self) -> Result<String, LineError> {
        let line = match self {
            KernelCommand::CcaCheck | KernelCommand::JobList => self.kind().to_string(),
            KernelCommand::CcaChange(arg)
            | KernelCommand::JobStatus(arg)
            | KernelCommand::JobStop(arg)
            | KernelCommand::JobWatch(arg) => format!("{} {}", self.kind(), word(arg)?),
            KernelCommand::Bbr2Set { name, value } => {
                format!("{} {} {}", self.kind(), word(name)?, word(value)?)
            }
            KernelCommand::JobStart(argv) => {
                if argv.is_empty() {
                    return Err(LineError::MissingCommand);
                }
                let words = argv
                    .iter()
                    .map(|a| word(a))
                    .collect::<Result<Vec<_>, _>>()?;
                format!("{} {}", self.kind(), words.join(" "))
            }
            KernelCommand::Other(line) => line.clone(),
        };
        match parse(line.as_bytes()) {
            Ok(back) if back == *self => Ok(line),
            Ok(_) => Err(LineError::InvalidArgument(line)),
            Err(ParseError::TooLong) => Err(LineError::TooLong),
            Err(e) => Err(LineError::Refused(e)),
        }
    }

    /// Streaming commands have no overall time limit: the reply lasts as long as the job.
    pub fn is_streaming(&self) -> bool {
        matches!(self, KernelCommand::JobWatch(_))
    }
}

/// One whitespace-free argument (the line is split on whitespace).
fn word(text: &str) -> Result<&str, LineError> {
    let ok = !text.is_empty()
        && text.chars().all(|c| {
            c.is_ascii_graphic() || (!c.is_ascii() && !c.is_whitespace() && !c.is_control())
        });
    if ok {
        Ok(text)
    } else {
        Err(LineError::InvalidArgument(text.to_string()))
    }
}

fn name_ok(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= MAX_TOKEN
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.' | b'/'))
}

fn one_arg<'a>(
    mut it: impl Iterator<Item = &'a str>,
    usage: &'static str,
) -> Result<&'a str, ParseError> {
    match (it.next(), it.next()) {
        (Some(a), None) => Ok(a),
        _ => Err(ParseError::Usage(usage)),
    }
}

/// Parses one raw line (a trailing `\n` / `\r\n` is allowed and ignored).
pub fn parse(raw: &[u8]) -> Result<KernelCommand, ParseError> {
    if raw.len() > MAX_LINE {
        return Err(ParseError::TooLong);
    }
    let text = std::str::from_utf8(raw).map_err(|_| ParseError::NotUtf8)?;
    let line = text.trim_end_matches(['\n', '\r']).trim();
    if line.is_empty() {
        return Err(ParseError::Empty);
    }
    if line.chars().any(|c| c.is_control() && c != '\t') {
        return Err(ParseError::Control);
    }
    let mut words = line.split_whitespace();
    let head = words.next().ok_or(ParseError::Empty)?;
    match head {
        "cca.check" => match words.next() {
            None => Ok(KernelCommand::CcaCheck),
            Some(_) => Err(ParseError::Usage("cca.check")),
        },
        "cca.change" => {
            let alg = one_arg(words, "cca.change ALG")?;
            if alg.len() > MAX_ALG || !alg.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_') {
                return Err(ParseError::BadArgument("algorithm name"));
            }
            Ok(KernelCommand::CcaChange(alg.to_string()))
        }
        "bbr2.param.set" => {
            let (name, value) = match (words.next(), words.next(), words.next()) {
                (Some(n), Some(v), None) => (n, v),
                _ => return Err(ParseError::Usage("bbr2.param.set NAME VALUE")),
            };
            if !name_ok(name) {
                return Err(ParseError::BadArgument("parameter name"));
            }
            if value.len() > MAX_TOKEN || value.parse::<i64>().is_err() {
                return Err(ParseError::BadArgument("value must be an integer"));
            }
            Ok(KernelCommand::Bbr2Set {
                name: name.to_string(),
                value: value.to_string(),
            })
        }
        "job.start" => {
            let argv: Vec<String> = words.map(str::to_string).collect();
            if argv.is_empty() {
                return Err(ParseError::Usage("job.start CMD ARGS..."));
            }
            Ok(KernelCommand::JobStart(argv))
        }
        "job.status" => Ok(KernelCommand::JobStatus(
            one_arg(words, "job.status ID")?.into(),
        )),
        "job.stop" => Ok(KernelCommand::JobStop(
            one_arg(words, "job.stop ID")?.into(),
        )),
        "job.watch" => Ok(KernelCommand::JobWatch(
            one_arg(words, "job.watch ID")?.into(),
        )),
        "job.list" => match words.next() {
            None => Ok(KernelCommand::JobList),
            Some(_) => Err(ParseError::Usage("job.list")),
        },
        _ => Ok(KernelCommand::Other(line.to_string())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn whitelisted_commands() {
        assert_eq!(parse(b"cca.check"), Ok(KernelCommand::CcaCheck));
        assert_eq!(parse(b"cca.check\r\n"), Ok(KernelCommand::CcaCheck));
        assert_eq!(
            parse(b"cca.change bbr\n"),
            Ok(KernelCommand::CcaChange("bbr".into()))
        );
        assert_eq!(
            parse(b"bbr2.param.set loss_thresh 10"),
            Ok(KernelCommand::Bbr2Set {
                name: "loss_thresh".into(),
                value: "10".into()
            })
        );
        assert_eq!(parse(b"job.list\n"), Ok(KernelCommand::JobList));
        assert_eq!(
            parse(b"job.stop j1"),
            Ok(KernelCommand::JobStop("j1".into()))
        );
        assert_eq!(
            parse(b"job.start sleep 5"),
            Ok(KernelCommand::JobStart(vec!["sleep".into(), "5".into()]))
        );
        assert_eq!(
            parse(b"ls -l /\n"),
            Ok(KernelCommand::Other("ls -l /".into()))
        );
    }

    #[test]
    fn bad_lines_are_refused() {
        assert_eq!(parse(b""), Err(ParseError::Empty));
        assert_eq!(parse(b"\r\n"), Err(ParseError::Empty));
        assert_eq!(parse(&[0xff, 0xfe, b'a']), Err(ParseError::NotUtf8));
        assert_eq!(parse(b"cca\0check"), Err(ParseError::Control));
        assert_eq!(parse(&vec![b'a'; MAX_LINE + 1]), Err(ParseError::TooLong));
        assert!(matches!(parse(b"cca.change"), Err(ParseError::Usage(_))));
        assert!(matches!(
            parse(b"cca.change a b"),
            Err(ParseError::Usage(_))
        ));
        assert!(matches!(
            parse(b"cca.change ../../x"),
            Err(ParseError::BadArgument(_))
        ));
        assert!(matches!(
            parse(b"bbr2.param.set loss_thresh ten"),
            Err(ParseError::BadArgument(_))
        ));
        assert!(matches!(
            parse(b"bbr2.param.set a;b 1"),
            Err(ParseError::BadArgument(_))
        ));
    }

    #[test]
    fn rendered_lines_parse_back() {
        let cmds = [
            KernelCommand::CcaCheck,
            KernelCommand::CcaChange("bbr".into()),
            KernelCommand::Bbr2Set {
                name: "loss_thresh".into(),
                value: "-3".into(),
            },
            KernelCommand::JobStart(vec!["iperf3".into(), "-c".into(), "srv".into()]),
            KernelCommand::JobWatch("j1".into()),
            KernelCommand::JobList,
            KernelCommand::Other("ls -l /".into()),
        ];
        for cmd in cmds {
            let line = cmd.line().unwrap();
            assert_eq!(parse(line.as_bytes()), Ok(cmd));
        }
    }

    #[test]
    fn commands_the_service_would_refuse_are_not_sent() {
        // Would be read back as a different command.
        assert!(KernelCommand::Other("cca.check".into()).line().is_err());
        // Parses, but the service refuses the argument.
        assert!(matches!(
            KernelCommand::CcaChange("../x".into()).line(),
            Err(LineError::Refused(ParseError::BadArgument(_)))
        ));
        assert!(KernelCommand::Bbr2Set {
            name: "a".into(),
            value: "ten".into()
        }
        .line()
        .is_err());
        assert!(KernelCommand::Other(String::new()).line().is_err());
    }

    #[test]
    fn lines_match_the_protocol() {
        let cases = [
            (KernelCommand::CcaCheck, "cca.check"),
            (KernelCommand::CcaChange("bbr".into()), "cca.change bbr"),
            (
                KernelCommand::Bbr2Set {
                    name: "loss_thresh".into(),
                    value: "10".into(),
                },
                "bbr2.param.set loss_thresh 10",
            ),
            (
                KernelCommand::JobStart(vec!["iperf3".into(), "-c".into(), "srv".into()]),
                "job.start iperf3 -c srv",
            ),
            (KernelCommand::JobStatus("j1".into()), "job.status j1"),
            (KernelCommand::JobStop("j1".into()), "job.stop j1"),
            (KernelCommand::JobWatch("j1".into()), "job.watch j1"),
            (KernelCommand::JobList, "job.list"),
        ];
        for (cmd, line) in cases {
            assert_eq!(cmd.line().unwrap(), line);
        }
    }

    #[test]
    fn arguments_that_would_break_the_line_are_refused() {
        for bad in ["", "a b", "x\ny", "tab\there", "nul\0"] {
            assert!(
                KernelCommand::CcaChange(bad.into()).line().is_err(),
                "{bad:?} accepted"
            );
        }
        assert!(matches!(
            KernelCommand::JobStart(vec![]).line(),
            Err(LineError::MissingCommand)
        ));
        assert!(matches!(
            KernelCommand::JobStart(vec!["a".repeat(MAX_LINE)]).line(),
            Err(LineError::TooLong)
        ));
    }

    #[test]
    fn random_bytes_never_panic() {
        // Deterministic xorshift so a failure reproduces.
        let mut s: u64 = 0x9e37_79b9_7f4a_7c15;
        for _ in 0..20_000 {
            s ^= s << 13;
            s ^= s >> 7;
            s ^= s << 17;
            let len = (s % 64) as usize;
            let bytes: Vec<u8> = (0..len)
                .map(|i| (s.rotate_left(i as u32 * 8) & 0xff) as u8)
                .collect();
            let _ = parse(&bytes);
        }
    }
}
