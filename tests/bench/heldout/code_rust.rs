//! A small line-oriented log parser: reads `key=value` records, groups them by request id
//! and reports the slowest requests.

use std::collections::HashMap;
use std::fmt;
use std::io::{self, BufRead};
use std::str::FromStr;

#[derive(Debug, Clone, PartialEq)]
pub enum Level {
    Debug,
    Info,
    Warn,
    Error,
}

impl FromStr for Level {
    type Err = ParseError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.to_ascii_lowercase().as_str() {
            "debug" => Ok(Level::Debug),
            "info" => Ok(Level::Info),
            "warn" | "warning" => Ok(Level::Warn),
            "error" | "err" => Ok(Level::Error),
            other => Err(ParseError::UnknownLevel(other.to_string())),
        }
    }
}

#[derive(Debug)]
pub enum ParseError {
    MissingField(&'static str),
    UnknownLevel(String),
    BadNumber { field: &'static str, value: String },
}

impl fmt::Display for ParseError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ParseError::MissingField(name) => write!(f, "missing field `{}`", name),
            ParseError::UnknownLevel(level) => write!(f, "unknown level {:?}", level),
            ParseError::BadNumber { field, value } => {
                write!(f, "field `{}` is not a number: {:?}", field, value)
            }
        }
    }
}

impl std::error::Error for ParseError {}

#[derive(Debug, Clone)]
pub struct Record {
    pub request_id: String,
    pub level: Level,
    pub duration_ms: u64,
    pub message: String,
}

fn fields(line: &str) -> HashMap<&str, &str> {
    line.split_whitespace()
        .filter_map(|pair| pair.split_once('='))
        .map(|(k, v)| (k, v.trim_matches('"')))
        .collect()
}

pub fn parse_line(line: &str) -> Result<Record, ParseError> {
    let f = fields(line);
    let request_id = f.get("req").ok_or(ParseError::MissingField("req"))?.to_string();
    let level: Level = f.get("level").ok_or(ParseError::MissingField("level"))?.parse()?;
    let raw = f.get("dur").ok_or(ParseError::MissingField("dur"))?;
    let duration_ms = raw
        .trim_end_matches("ms")
        .parse::<u64>()
        .map_err(|_| ParseError::BadNumber { field: "dur", value: raw.to_string() })?;
    let message = f.get("msg").map(|m| m.to_string()).unwrap_or_default();
    Ok(Record { request_id, level, duration_ms, message })
}

#[derive(Default)]
pub struct Summary {
    pub total: HashMap<String, u64>,
    pub errors: usize,
    pub skipped: usize,
}

impl Summary {
    pub fn add(&mut self, record: &Record) {
        *self.total.entry(record.request_id.clone()).or_insert(0) += record.duration_ms;
        if record.level == Level::Error {
            self.errors += 1;
        }
    }

    pub fn slowest(&self, n: usize) -> Vec<(&str, u64)> {
        let mut all: Vec<(&str, u64)> = self.total.iter().map(|(k, v)| (k.as_str(), *v)).collect();
        all.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(b.0)));
        all.truncate(n);
        all
    }
}

fn main() -> io::Result<()> {
    let stdin = io::stdin();
    let mut summary = Summary::default();
    for (number, line) in stdin.lock().lines().enumerate() {
        let line = line?;
        if line.trim().is_empty() || line.starts_with('#') {
            continue;
        }
        match parse_line(&line) {
            Ok(record) => summary.add(&record),
            Err(err) => {
                eprintln!("line {}: {}", number + 1, err);
                summary.skipped += 1;
            }
        }
    }
    for (id, ms) in summary.slowest(10) {
        println!("{:>12} {:>8} ms", id, ms);
    }
    println!("errors: {}, skipped lines: {}", summary.errors, summary.skipped);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_a_record() {
        let r = parse_line(r#"req=a1 level=warn dur=120ms msg="slow upstream""#).unwrap();
        assert_eq!(r.request_id, "a1");
        assert_eq!(r.level, Level::Warn);
        assert_eq!(r.duration_ms, 120);
    }

    #[test]
    fn rejects_a_bad_duration() {
        assert!(matches!(parse_line("req=a level=info dur=fast"), Err(ParseError::BadNumber { .. })));
    }
}
