//! Query parameters of the kubelet's endpoints, as upstream's server.go reads them
//! (`containerLogs`: v1.PodLogOptions; `exec`/`attach`: remotecommand's NewOptions, which
//! takes `"1"`; skiff also takes `"true"`, what kubectl sends the API server).

use chrono::{DateTime, Duration, FixedOffset, Utc};
use skiff_runtime::container::logs::Options;

/// `GET /containerLogs/...?follow=&tailLines=&sinceSeconds=&sinceTime=&timestamps=&previous=&limitBytes=`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct LogQuery {
    pub follow: bool,
    pub previous: bool,
    pub timestamps: bool,
    pub tail_lines: Option<i64>,
    pub since_seconds: Option<i64>,
    pub since_time: Option<DateTime<FixedOffset>>,
    pub limit_bytes: Option<i64>,
}

fn flag(v: &str) -> bool {
    v == "1" || v.eq_ignore_ascii_case("true")
}

fn pairs(query: &str) -> impl Iterator<Item = (String, String)> + '_ {
    form_urlencoded::parse(query.as_bytes()).map(|(k, v)| (k.into_owned(), v.into_owned()))
}

impl LogQuery {
    /// Parses the query; bad values give upstream's validation messages.
    pub fn parse(query: &str) -> Result<Self, String> {
        let mut q = LogQuery::default();
        let int = |k: &str, v: &str| {
            v.parse::<i64>()
                .map_err(|_| format!("invalid value for {k}: {v:?} is not an integer"))
        };
        for (k, v) in pairs(query) {
            match k.as_str() {
                "follow" => q.follow = flag(&v),
                "previous" => q.previous = flag(&v),
                "timestamps" => q.timestamps = flag(&v),
                "tailLines" => q.tail_lines = Some(int(&k, &v)?),
                "sinceSeconds" => q.since_seconds = Some(int(&k, &v)?),
                "limitBytes" => q.limit_bytes = Some(int(&k, &v)?),
                "sinceTime" => {
                    q.since_time = Some(
                        DateTime::parse_from_rfc3339(&v)
                            .map_err(|_| format!("invalid value for sinceTime: {v:?}"))?,
                    )
                }
                _ => {}
            }
        }
        // validation.ValidatePodLogOptions.
        if q.tail_lines.is_some_and(|n| n < 0) {
            return Err("tailLines: Invalid value: must be greater than or equal to 0".into());
        }
        if q.limit_bytes.is_some_and(|n| n < 1) {
            return Err("limitBytes: Invalid value: must be greater than 0".into());
        }
        if q.since_seconds.is_some() && q.since_time.is_some() {
            return Err("at most one of `sinceTime` or `sinceSeconds` may be specified".into());
        }
        if q.since_seconds.is_some_and(|n| n < 1) {
            return Err("sinceSeconds: Invalid value: must be greater than 0".into());
        }
        Ok(q)
    }
}

/// The log reader's options for `q` at `now`.
pub fn log_options(q: &LogQuery, now: DateTime<Utc>) -> Options {
    let since = match (q.since_time, q.since_seconds) {
        (Some(t), _) => Some(t),
        (None, Some(s)) => Some((now - Duration::seconds(s)).fixed_offset()),
        (None, None) => None,
    };
    Options {
        tail: q
            .tail_lines
            .map(|n| usize::try_from(n).unwrap_or(usize::MAX)),
        since,
        timestamps: q.timestamps,
        stream: None,
    }
}

/// `/exec` and `/attach`: the command (repeated `command=`) and the streams asked for.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct StreamQuery {
    pub command: Vec<String>,
    pub stdin: bool,
    pub stdout: bool,
    pub stderr: bool,
    pub tty: bool,
}

impl StreamQuery {
    pub fn parse(query: &str) -> Result<Self, String> {
        let mut q = StreamQuery::default();
        for (k, v) in pairs(query) {
            match k.as_str() {
                "command" => q.command.push(v),
                "input" | "stdin" => q.stdin = flag(&v),
                "output" | "stdout" => q.stdout = flag(&v),
                "error" | "stderr" => q.stderr = flag(&v),
                "tty" => q.tty = flag(&v),
                _ => {}
            }
        }
        if !q.stdin && !q.stdout && !q.stderr {
            // remotecommand.NewOptions.
            return Err("you must specify at least 1 of stdin, stdout, stderr".into());
        }
        if q.tty && q.stderr {
            // A terminal has one output stream (upstream turns stderr off).
            q.stderr = false;
        }
        Ok(q)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn log_query_every_option() {
        let q = LogQuery::parse(
            "follow=true&previous=1&timestamps=true&tailLines=10&limitBytes=5&sinceTime=2026-01-01T00%3A00%3A00Z",
        )
        .unwrap();
        assert!(q.follow && q.previous && q.timestamps);
        assert_eq!((q.tail_lines, q.limit_bytes), (Some(10), Some(5)));
        let now = Utc::now();
        let o = log_options(&q, now);
        assert_eq!(o.tail, Some(10));
        assert_eq!(o.since.unwrap().to_rfc3339(), "2026-01-01T00:00:00+00:00");
        let q = LogQuery::parse("sinceSeconds=60").unwrap();
        assert_eq!(
            log_options(&q, now).since.unwrap(),
            (now - Duration::seconds(60)).fixed_offset()
        );
        assert_eq!(log_options(&LogQuery::default(), now).since, None);
    }

    #[test]
    fn log_query_bad_values() {
        assert!(LogQuery::parse("tailLines=x").is_err());
        assert!(LogQuery::parse("tailLines=-1").is_err());
        assert!(LogQuery::parse("limitBytes=0").is_err());
        assert!(LogQuery::parse("sinceSeconds=0").is_err());
        assert!(LogQuery::parse("sinceTime=yesterday").is_err());
        assert!(LogQuery::parse("sinceSeconds=5&sinceTime=2026-01-01T00:00:00Z").is_err());
        assert_eq!(LogQuery::parse("").unwrap(), LogQuery::default());
    }

    #[test]
    fn stream_query_kubectl_and_kubelet_forms() {
        let q =
            StreamQuery::parse("command=sh&command=-c&command=exit%203&stdout=true&stderr=true")
                .unwrap();
        assert_eq!(q.command, ["sh", "-c", "exit 3"]);
        assert!(q.stdout && q.stderr && !q.stdin && !q.tty);
        let q = StreamQuery::parse("command=sh&input=1&output=1&error=1&tty=1").unwrap();
        assert!(q.stdin && q.stdout && q.tty && !q.stderr);
        assert!(StreamQuery::parse("command=ls").is_err());
    }
}
