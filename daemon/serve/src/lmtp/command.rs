//! LMTP command lines (RFC 2033 over RFC 5321 syntax), parsed without I/O.
//! A line that is not a command we know, or a known command with bad
//! arguments, is a [`CommandError`] carrying the reply to send.

/// One parsed command.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Command {
    /// `LHLO domain`.
    Lhlo(String),
    /// `HELO`/`EHLO`: not LMTP (RFC 2033 §4.1), answered with an error.
    Helo,
    /// `MAIL FROM:<path> [SIZE=n] [BODY=...]`.
    Mail {
        /// The reverse path without brackets (`""` for the null sender).
        from: String,
        /// The `SIZE=` parameter.
        size: Option<u64>,
    },
    /// `RCPT TO:<path>`.
    Rcpt(String),
    /// `DATA`.
    Data,
    /// `RSET`.
    Rset,
    /// `NOOP [string]`.
    Noop,
    /// `QUIT`.
    Quit,
    /// `VRFY`: not offered.
    Vrfy,
}

/// A malformed or unknown command: the reply code, enhanced status and text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CommandError {
    /// The reply code (500, 501, 504, 555).
    pub code: u16,
    /// The enhanced status code.
    pub status: &'static str,
    /// The reply text.
    pub text: String,
}

fn syntax(code: u16, status: &'static str, text: impl Into<String>) -> CommandError {
    CommandError {
        code,
        status,
        text: text.into(),
    }
}

/// Parses one command line (without its line end).
pub fn parse(line: &[u8]) -> Result<Command, CommandError> {
    let Ok(line) = std::str::from_utf8(line) else {
        return Err(syntax(500, "5.5.2", "Command line is not valid UTF-8"));
    };
    let line = line.trim_end_matches([' ', '\t']);
    let (verb, rest) = match line.split_once(' ') {
        Some((v, r)) => (v, r.trim_start()),
        None => (line, ""),
    };
    match verb.to_ascii_uppercase().as_str() {
        "LHLO" => {
            if rest.is_empty() {
                return Err(syntax(501, "5.5.4", "Syntax: LHLO domain"));
            }
            Ok(Command::Lhlo(rest.to_string()))
        }
        "HELO" | "EHLO" => Ok(Command::Helo),
        "MAIL" => parse_mail(rest),
        "RCPT" => parse_rcpt(rest),
        "DATA" => no_argument(rest, Command::Data, "DATA"),
        "RSET" => no_argument(rest, Command::Rset, "RSET"),
        "QUIT" => no_argument(rest, Command::Quit, "QUIT"),
        "NOOP" => Ok(Command::Noop),
        "VRFY" => Ok(Command::Vrfy),
        "" => Err(syntax(500, "5.5.2", "Empty command line")),
        _ => Err(syntax(500, "5.5.1", "Command unrecognized")),
    }
}

fn no_argument(rest: &str, command: Command, verb: &str) -> Result<Command, CommandError> {
    if rest.is_empty() {
        Ok(command)
    } else {
        Err(syntax(
            501,
            "5.5.4",
            format!("Syntax: {verb} (no arguments)"),
        ))
    }
}

/// Splits `KEYWORD:<path> params` into the path (brackets removed) and the
/// parameters.
fn path_and_params<'a>(rest: &'a str, keyword: &str) -> Option<(&'a str, &'a str)> {
    let head = rest.get(..keyword.len())?;
    if !head.eq_ignore_ascii_case(keyword) {
        return None;
    }
    let after = rest[keyword.len()..].trim_start();
    let after = after.strip_prefix('<')?;
    let end = after.find('>')?;
    let path = &after[..end];
    let params = &after[end + 1..];
    if !params.is_empty() && !params.starts_with(' ') {
        return None;
    }
    if path.chars().any(|c| c.is_control() || c == '<' || c == ' ') {
        return None;
    }
    Some((path, params.trim()))
}

/// Strips an RFC 5321 source route (`@a,@b:user@domain`).
fn without_route(path: &str) -> &str {
    if path.starts_with('@') {
        path.split_once(':').map_or(path, |(_, p)| p)
    } else {
        path
    }
}

fn parse_mail(rest: &str) -> Result<Command, CommandError> {
    let Some((path, params)) = path_and_params(rest, "FROM:") else {
        return Err(syntax(501, "5.5.4", "Syntax: MAIL FROM:<address> [SIZE=n]"));
    };
    let from = without_route(path).to_string();
    if !from.is_empty() && !valid_mailbox(&from) {
        return Err(syntax(501, "5.1.7", "Bad sender address syntax"));
    }
    let mut size = None;
    for param in params.split_ascii_whitespace() {
        let (key, value) = param.split_once('=').unwrap_or((param, ""));
        match key.to_ascii_uppercase().as_str() {
            "SIZE" => match value.parse::<u64>() {
                Ok(n) => size = Some(n),
                Err(_) => return Err(syntax(501, "5.5.4", "Syntax: SIZE=number")),
            },
            "BODY"
                if value.eq_ignore_ascii_case("7BIT") || value.eq_ignore_ascii_case("8BITMIME") => {
            }
            _ => {
                return Err(syntax(
                    555,
                    "5.5.4",
                    format!("MAIL parameter {key} not supported"),
                ));
            }
        }
    }
    Ok(Command::Mail { from, size })
}

fn parse_rcpt(rest: &str) -> Result<Command, CommandError> {
    let Some((path, params)) = path_and_params(rest, "TO:") else {
        return Err(syntax(501, "5.5.4", "Syntax: RCPT TO:<address>"));
    };
    if !params.is_empty() {
        return Err(syntax(555, "5.5.4", "RCPT parameters not supported"));
    }
    let to = without_route(path);
    if !valid_mailbox(to) {
        return Err(syntax(501, "5.1.3", "Bad recipient address syntax"));
    }
    Ok(Command::Rcpt(to.to_string()))
}

/// `local@domain` with both parts present.
fn valid_mailbox(address: &str) -> bool {
    address
        .rsplit_once('@')
        .is_some_and(|(l, d)| !l.is_empty() && !d.is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn commands_parse() {
        assert_eq!(parse(b"lhlo mx.test"), Ok(Command::Lhlo("mx.test".into())));
        assert_eq!(
            parse(b"MAIL FROM:<a@b.test> SIZE=120 BODY=8BITMIME"),
            Ok(Command::Mail {
                from: "a@b.test".into(),
                size: Some(120)
            })
        );
        assert_eq!(
            parse(b"MAIL FROM:<>"),
            Ok(Command::Mail {
                from: String::new(),
                size: None
            })
        );
        assert_eq!(
            parse(b"RCPT TO:<@r.test:bob@x.test>"),
            Ok(Command::Rcpt("bob@x.test".into()))
        );
        assert_eq!(parse(b"NOOP hello"), Ok(Command::Noop));
    }

    #[test]
    fn malformed_commands_get_clear_codes() {
        let code = |l: &[u8]| parse(l).map(|_| 0).unwrap_or_else(|e| e.code);
        assert_eq!(code(b"FROB"), 500);
        assert_eq!(code(b""), 500);
        assert_eq!(code(b"MAIL FROM:a@b"), 501);
        assert_eq!(code(b"MAIL FROM:<a@b> SIZE=x"), 501);
        assert_eq!(code(b"MAIL FROM:<a@b> SMTPUTF8"), 555);
        assert_eq!(code(b"RCPT TO:<nobody>"), 501);
        assert_eq!(code(b"RCPT TO:<a@b> NOTIFY=NEVER"), 555);
        assert_eq!(code(b"DATA now"), 501);
        assert_eq!(code(b"LHLO"), 501);
        assert_eq!(code(&[0xff, 0xfe]), 500);
    }
}
