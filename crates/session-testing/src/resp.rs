//! A minimal blocking RESP2 client: enough to poll servers for readiness and
//! to ask them for their state, with no async runtime involved.

use std::io::{self, BufRead, BufReader, Write};
use std::net::TcpStream;
use std::time::Duration;

/// How long one command may take before the helper gives up on it.
const IO_TIMEOUT: Duration = Duration::from_secs(5);

/// Nesting deeper than this is not something these helpers ever ask for.
const MAX_DEPTH: usize = 8;

/// A reply from a Redis server.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Reply {
    /// A simple string such as `OK` or `PONG`.
    Status(String),
    /// An error reply such as `LOADING Redis is loading the dataset`.
    Error(String),
    /// An integer.
    Integer(i64),
    /// A bulk string.
    Bulk(Vec<u8>),
    /// A nil bulk string or nil array.
    Nil,
    /// An array of replies.
    Array(Vec<Reply>),
}

impl Reply {
    /// The reply as text when it is a status, an error or a bulk string.
    #[must_use]
    pub fn text(&self) -> Option<String> {
        match self {
            Reply::Status(s) | Reply::Error(s) => Some(s.clone()),
            Reply::Bulk(bytes) => Some(String::from_utf8_lossy(bytes).into_owned()),
            _ => None,
        }
    }

    /// The reply's elements when it is an array.
    #[must_use]
    pub fn array(&self) -> Option<&[Reply]> {
        match self {
            Reply::Array(items) => Some(items),
            _ => None,
        }
    }
}

/// Sends one command to `127.0.0.1:port` on a fresh connection and reads
/// its reply.
pub(crate) fn command(port: u16, args: &[&str]) -> io::Result<Reply> {
    let mut stream = TcpStream::connect_timeout(&([127, 0, 0, 1], port).into(), IO_TIMEOUT)?;
    stream.set_read_timeout(Some(IO_TIMEOUT))?;
    stream.set_write_timeout(Some(IO_TIMEOUT))?;
    let mut request = format!("*{}\r\n", args.len()).into_bytes();
    for arg in args {
        request.extend_from_slice(format!("${}\r\n", arg.len()).as_bytes());
        request.extend_from_slice(arg.as_bytes());
        request.extend_from_slice(b"\r\n");
    }
    stream.write_all(&request)?;
    read_reply(&mut BufReader::new(stream), 0)
}

fn read_reply(reader: &mut impl BufRead, depth: usize) -> io::Result<Reply> {
    if depth > MAX_DEPTH {
        return Err(invalid("reply nested too deeply"));
    }
    let mut line = String::new();
    if reader.read_line(&mut line)? == 0 {
        return Err(io::Error::new(
            io::ErrorKind::UnexpectedEof,
            "connection closed before a reply",
        ));
    }
    let line = line.trim_end_matches(['\r', '\n']);
    let (kind, rest) = line
        .split_at_checked(1)
        .ok_or_else(|| invalid("empty line"))?;
    match kind {
        "+" => Ok(Reply::Status(rest.to_owned())),
        "-" => Ok(Reply::Error(rest.to_owned())),
        ":" => Ok(Reply::Integer(parse_int(rest)?)),
        "$" => {
            let Ok(len) = usize::try_from(parse_int(rest)?) else {
                return Ok(Reply::Nil);
            };
            let mut bytes = vec![0; len + 2];
            reader.read_exact(&mut bytes)?;
            bytes.truncate(len);
            Ok(Reply::Bulk(bytes))
        }
        "*" => {
            let Ok(len) = usize::try_from(parse_int(rest)?) else {
                return Ok(Reply::Nil);
            };
            (0..len)
                .map(|_| read_reply(reader, depth + 1))
                .collect::<io::Result<_>>()
                .map(Reply::Array)
        }
        _ => Err(invalid("unknown reply type")),
    }
}

fn parse_int(text: &str) -> io::Result<i64> {
    text.parse().map_err(|_| invalid("bad integer"))
}

fn invalid(what: &str) -> io::Error {
    io::Error::new(
        io::ErrorKind::InvalidData,
        format!("bad RESP reply: {what}"),
    )
}

/// `INFO section` of the server on `127.0.0.1:port`, as text.
pub(crate) fn info(port: u16, section: &str) -> Result<String, String> {
    command(port, &["INFO", section])
        .map_err(|e| e.to_string())?
        .text()
        .ok_or_else(|| "INFO gave no text".to_owned())
}

/// The `key:value` lines of an `INFO` reply, as pairs.
pub(crate) fn info_fields(info: &str) -> impl Iterator<Item = (&str, &str)> {
    info.lines()
        .filter_map(|line| line.trim_end_matches('\r').split_once(':'))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(bytes: &[u8]) -> io::Result<Reply> {
        read_reply(&mut BufReader::new(bytes), 0)
    }

    #[test]
    fn parses_every_reply_kind() {
        assert_eq!(parse(b"+PONG\r\n").ok(), Some(Reply::Status("PONG".into())));
        assert_eq!(
            parse(b"-ERR x\r\n").ok(),
            Some(Reply::Error("ERR x".into()))
        );
        assert_eq!(parse(b":-7\r\n").ok(), Some(Reply::Integer(-7)));
        assert_eq!(parse(b"$-1\r\n").ok(), Some(Reply::Nil));
        assert_eq!(
            parse(b"*2\r\n$3\r\nab\n\r\n:1\r\n").ok(),
            Some(Reply::Array(vec![
                Reply::Bulk(b"ab\n".to_vec()),
                Reply::Integer(1)
            ]))
        );
    }

    #[test]
    fn rejects_garbage() {
        assert!(parse(b"").is_err());
        assert!(parse(b"?x\r\n").is_err());
        assert!(parse(b":x\r\n").is_err());
        assert!(parse(b"$5\r\nab\r\n").is_err());
    }
}
