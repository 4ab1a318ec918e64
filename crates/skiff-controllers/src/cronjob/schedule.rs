//! CronJob schedules with the meaning upstream gives them through `robfig/cron/v3`'s
//! `ParseStandard`: five fields (minute, hour, day of month, month, day of week 0-6, names
//! for months and days), `*`/`?`, ranges, steps (`N/s` meaning `N-max/s`), the descriptors
//! `@yearly` `@annually` `@monthly` `@weekly` `@daily` `@midnight` `@hourly` and
//! `@every <Go duration>`, a `TZ=`/`CRON_TZ=` prefix, and the rule that the day of month and
//! the day of week are ANDed when either is `*` and ORed otherwise.
//!
//! The fields are read here only to restate them as explicit value lists; the next times
//! come from the `croner` crate (with `jiff` time zones), which follows Vixie cron for the
//! rest. Like robfig, a schedule that matches nothing within five years has no next time.
//! Upstream counterpart: github.com/robfig/cron/v3 `parser.go`, `spec.go`, `constantdelay.go`,
//! and `formatSchedule` in pkg/controller/cronjob/cronjob_controllerv2.go.

use std::collections::BTreeSet;
use std::str::FromStr;

use croner::Cron;
use jiff::tz::TimeZone;
use jiff::{SignedDuration, Timestamp};

/// A parsed schedule.
#[derive(Clone, Debug)]
pub struct Schedule {
    kind: Kind,
    tz: TimeZone,
}

#[derive(Clone, Debug)]
enum Kind {
    Spec(Box<Cron>),
    /// `@every`: a whole number of seconds, at least one.
    Every(i64),
}

/// Looks a time zone up as Go's `time.LoadLocation` does (`""` and `UTC` are UTC); the
/// error is Go's message.
pub fn load_location(name: &str) -> Result<TimeZone, String> {
    if name.is_empty() || name == "UTC" {
        return Ok(TimeZone::UTC);
    }
    if name == "Local" {
        return Ok(TimeZone::system());
    }
    jiff::tz::db()
        .get(name)
        .map_err(|_| format!("unknown time zone {name}"))
}

struct Bounds {
    min: u32,
    max: u32,
    names: &'static [&'static str],
}

const FIELDS: [Bounds; 5] = [
    Bounds {
        min: 0,
        max: 59,
        names: &[],
    },
    Bounds {
        min: 0,
        max: 23,
        names: &[],
    },
    Bounds {
        min: 1,
        max: 31,
        names: &[],
    },
    Bounds {
        min: 1,
        max: 12,
        names: &[
            "jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec",
        ],
    },
    Bounds {
        min: 0,
        max: 6,
        names: &["sun", "mon", "tue", "wed", "thu", "fri", "sat"],
    },
];

fn number_or_name(text: &str, b: &Bounds) -> Result<u32, String> {
    let lower = text.to_ascii_lowercase();
    if let Some(i) = b.names.iter().position(|n| *n == lower) {
        return Ok(b.min + i as u32);
    }
    text.parse::<u32>()
        .map_err(|_| format!("failed to parse int from {text}"))
}

/// One field as robfig's `getField`: its values, and whether it counts as `*`.
fn field(text: &str, b: &Bounds) -> Result<(BTreeSet<u32>, bool), String> {
    let mut values = BTreeSet::new();
    let mut star = false;
    for expr in text.split(',') {
        let mut range_step = expr.split('/');
        let range = range_step.next().unwrap_or("");
        let step = range_step.next();
        if range_step.next().is_some() {
            return Err(format!("too many slashes: {expr}"));
        }
        let low_high: Vec<&str> = range.split('-').collect();
        let (start, mut end, mut is_star) = if low_high[0] == "*" || low_high[0] == "?" {
            (b.min, b.max, true)
        } else {
            let start = number_or_name(low_high[0], b)?;
            let end = match low_high.len() {
                1 => start,
                2 => number_or_name(low_high[1], b)?,
                _ => return Err(format!("too many hyphens: {expr}")),
            };
            (start, end, false)
        };
        let mut stride = 1;
        if let Some(s) = step {
            stride = s
                .parse::<u32>()
                .map_err(|_| format!("failed to parse int from {s}"))?;
            if low_high.len() == 1 {
                end = b.max;
            }
            if stride > 1 {
                is_star = false;
            }
        }
        if start < b.min {
            return Err(format!(
                "beginning of range ({start}) below minimum ({}): {expr}",
                b.min
            ));
        }
        if end > b.max {
            return Err(format!(
                "end of range ({end}) above maximum ({}): {expr}",
                b.max
            ));
        }
        if start > end {
            return Err(format!(
                "beginning of range ({start}) beyond end of range ({end}): {expr}"
            ));
        }
        if stride == 0 {
            return Err(format!("step of range should be a positive number: {expr}"));
        }
        values.extend((start..=end).step_by(stride as usize));
        star |= is_star;
    }
    Ok((values, star))
}

/// Go's `time.ParseDuration`, in nanoseconds.
fn go_duration(text: &str) -> Option<i128> {
    let (negative, mut rest) = match text.as_bytes().first() {
        Some(b'-') => (true, &text[1..]),
        Some(b'+') => (false, &text[1..]),
        _ => (false, text),
    };
    if rest == "0" {
        return Some(0);
    }
    if rest.is_empty() {
        return None;
    }
    let mut total: f64 = 0.0;
    while !rest.is_empty() {
        let n = rest
            .bytes()
            .take_while(|c| c.is_ascii_digit() || *c == b'.')
            .count();
        let number: f64 = rest[..n].parse().ok()?;
        rest = &rest[n..];
        let (unit, nanos) = [
            ("ns", 1.0),
            ("us", 1e3),
            ("µs", 1e3),
            ("μs", 1e3),
            ("ms", 1e6),
            ("s", 1e9),
            ("m", 60e9),
            ("h", 3600e9),
        ]
        .into_iter()
        .filter(|(u, _)| rest.starts_with(u))
        .max_by_key(|(u, _)| u.len())?;
        rest = &rest[unit.len()..];
        total += number * nanos;
    }
    let total = total as i128;
    Some(if negative { -total } else { total })
}

impl Schedule {
    /// Parses like `cron.ParseStandard`; `local` is the zone of a schedule without `TZ=`
    /// (Go's `time.Local`).
    pub fn parse(spec: &str, local: &TimeZone) -> Result<Schedule, String> {
        if spec.is_empty() {
            return Err("empty spec string".into());
        }
        let mut tz = local.clone();
        let mut spec = spec;
        if spec.starts_with("TZ=") || spec.starts_with("CRON_TZ=") {
            let space = spec.find(' ').unwrap_or(spec.len());
            let eq = spec.find('=').unwrap_or(0);
            let name = &spec[eq + 1..space];
            tz = load_location(name).map_err(|e| format!("provided bad location {name}: {e}"))?;
            spec = spec[space..].trim();
        }
        if let Some(d) = spec.strip_prefix("@every ") {
            let nanos = go_duration(d).ok_or_else(|| {
                format!("failed to parse duration {spec}: time: invalid duration \"{d}\"")
            })?;
            let secs = (nanos / 1_000_000_000).max(1) as i64;
            return Ok(Schedule {
                kind: Kind::Every(secs),
                tz,
            });
        }
        let pattern = match spec {
            "@yearly" | "@annually" => "0 0 1 1 *".to_owned(),
            "@monthly" => "0 0 1 * *".to_owned(),
            "@weekly" => "0 0 * * 0".to_owned(),
            "@daily" | "@midnight" => "0 0 * * *".to_owned(),
            "@hourly" => "0 * * * *".to_owned(),
            s if s.starts_with('@') => return Err(format!("unrecognized descriptor: {s}")),
            s => {
                let fields: Vec<&str> = s.split_whitespace().collect();
                if fields.len() != 5 {
                    return Err(format!(
                        "expected exactly 5 fields, found {}: [{}]",
                        fields.len(),
                        fields.join(" ")
                    ));
                }
                let mut out = Vec::with_capacity(5);
                for (text, b) in fields.iter().zip(&FIELDS) {
                    let (values, star) = field(text, b)?;
                    if star {
                        out.push("*".to_owned());
                    } else {
                        out.push(
                            values
                                .iter()
                                .map(u32::to_string)
                                .collect::<Vec<_>>()
                                .join(","),
                        );
                    }
                }
                out.join(" ")
            }
        };
        let cron = Cron::from_str(&pattern).map_err(|e| e.to_string())?;
        Ok(Schedule {
            kind: Kind::Spec(Box::new(cron)),
            tz,
        })
    }

    /// The first time after `t` (robfig's `Next`: whole seconds, strictly after); `None` when
    /// nothing matches within five years.
    pub fn next(&self, t: Timestamp) -> Option<Timestamp> {
        match &self.kind {
            Kind::Every(secs) => {
                let whole = Timestamp::from_second(t.as_second()).ok()?;
                whole.checked_add(SignedDuration::from_secs(*secs)).ok()
            }
            Kind::Spec(cron) => {
                let zoned = t.to_zoned(self.tz.clone());
                let limit = i32::from(zoned.year()) + 5;
                let next = cron.find_next_occurrence(&zoned, false).ok()?;
                (i32::from(next.year()) <= limit).then(|| next.timestamp())
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ts(s: &str) -> Timestamp {
        s.parse().unwrap_or(Timestamp::UNIX_EPOCH)
    }

    fn nexts(spec: &str, from: &str, n: usize) -> Vec<String> {
        let s = match Schedule::parse(spec, &TimeZone::UTC) {
            Ok(s) => s,
            Err(e) => panic!("{spec}: {e}"),
        };
        let mut t = ts(from);
        let mut out = Vec::new();
        for _ in 0..n {
            match s.next(t) {
                Some(next) => {
                    out.push(next.to_string());
                    t = next;
                }
                None => break,
            }
        }
        out
    }

    #[test]
    fn five_fields_and_macros_give_robfigs_times() {
        assert_eq!(
            nexts("*/15 * * * *", "2024-03-01T10:07:30Z", 3),
            [
                "2024-03-01T10:15:00Z",
                "2024-03-01T10:30:00Z",
                "2024-03-01T10:45:00Z"
            ]
        );
        // Strictly after: a time on the schedule is not its own next time.
        assert_eq!(
            nexts("0 * * * *", "2024-03-01T10:00:00Z", 1),
            ["2024-03-01T11:00:00Z"]
        );
        assert_eq!(
            nexts("@hourly", "2024-03-01T10:00:00.5Z", 1),
            ["2024-03-01T11:00:00Z"]
        );
        assert_eq!(
            nexts("@daily", "2024-03-01T10:00:00Z", 1),
            ["2024-03-02T00:00:00Z"]
        );
        assert_eq!(
            nexts("@midnight", "2024-03-01T10:00:00Z", 1),
            ["2024-03-02T00:00:00Z"]
        );
        // 2024-03-01 is a Friday; @weekly is Sunday midnight.
        assert_eq!(
            nexts("@weekly", "2024-03-01T10:00:00Z", 1),
            ["2024-03-03T00:00:00Z"]
        );
        assert_eq!(
            nexts("@monthly", "2024-03-01T10:00:00Z", 1),
            ["2024-04-01T00:00:00Z"]
        );
        assert_eq!(
            nexts("@yearly", "2024-03-01T10:00:00Z", 1),
            ["2025-01-01T00:00:00Z"]
        );
        assert_eq!(
            nexts("@annually", "2024-03-01T10:00:00Z", 1),
            ["2025-01-01T00:00:00Z"]
        );
        // Names, ranges and lists.
        assert_eq!(
            nexts("30 9 * JAN-MAR mon,WED", "2024-03-01T10:00:00Z", 3),
            [
                "2024-03-04T09:30:00Z",
                "2024-03-06T09:30:00Z",
                "2024-03-11T09:30:00Z"
            ]
        );
        // N/step is N-max/step.
        assert_eq!(
            nexts("50/5 * * * *", "2024-03-01T10:00:00Z", 3),
            [
                "2024-03-01T10:50:00Z",
                "2024-03-01T10:55:00Z",
                "2024-03-01T11:50:00Z"
            ]
        );
    }

    #[test]
    fn day_of_month_and_week_are_ored_unless_one_is_a_star() {
        // Both restricted: the 13th OR any Friday.
        assert_eq!(
            nexts("0 0 13 * 5", "2024-09-01T00:00:00Z", 3),
            [
                "2024-09-06T00:00:00Z",
                "2024-09-13T00:00:00Z",
                "2024-09-20T00:00:00Z"
            ]
        );
        // `?` and `*/1` are stars: ANDed, so only Fridays.
        for spec in ["0 0 ? * 5", "0 0 */1 * 5"] {
            assert_eq!(
                nexts(spec, "2024-09-01T00:00:00Z", 2),
                ["2024-09-06T00:00:00Z", "2024-09-13T00:00:00Z"],
                "{spec}"
            );
        }
        // `*/2` is not a star: odd days OR Mondays.
        assert_eq!(
            nexts("0 0 */2 * 1", "2024-09-01T00:00:00Z", 3),
            [
                "2024-09-02T00:00:00Z",
                "2024-09-03T00:00:00Z",
                "2024-09-05T00:00:00Z"
            ]
        );
    }

    #[test]
    fn time_zones_come_from_the_prefix_or_the_default() {
        let local: TimeZone = load_location("America/New_York").unwrap_or(TimeZone::UTC);
        let in_ny =
            Schedule::parse("0 9 * * *", &local).map(|s| s.next(ts("2024-01-15T12:00:00Z")));
        assert_eq!(in_ny, Ok(Some(ts("2024-01-15T14:00:00Z"))));
        let prefixed = Schedule::parse("CRON_TZ=Asia/Tokyo 0 9 * * *", &TimeZone::UTC)
            .map(|s| s.next(ts("2024-01-15T12:00:00Z")));
        assert_eq!(prefixed, Ok(Some(ts("2024-01-16T00:00:00Z"))));
        let summer = Schedule::parse("TZ=Europe/Berlin 30 2 * * *", &TimeZone::UTC)
            .map(|s| s.next(ts("2024-07-01T00:00:00Z")));
        assert_eq!(summer, Ok(Some(ts("2024-07-01T00:30:00Z"))));
        assert_eq!(
            Schedule::parse("TZ=Mars/Olympus * * * * *", &TimeZone::UTC).map(|_| ()),
            Err("provided bad location Mars/Olympus: unknown time zone Mars/Olympus".into())
        );
        assert!(load_location("Europe/Berlin").is_ok());
        assert_eq!(
            load_location("Mars/Olympus").map(|_| ()),
            Err("unknown time zone Mars/Olympus".into())
        );
    }

    #[test]
    fn every_is_a_constant_delay_in_whole_seconds() {
        assert_eq!(
            nexts("@every 1h30m", "2024-03-01T10:07:30.25Z", 2),
            ["2024-03-01T11:37:30Z", "2024-03-01T13:07:30Z"]
        );
        assert_eq!(
            nexts("@every 1.5s", "2024-03-01T10:00:00Z", 1),
            ["2024-03-01T10:00:01Z"]
        );
        assert_eq!(
            nexts("@every 10ms", "2024-03-01T10:00:00Z", 1),
            ["2024-03-01T10:00:01Z"]
        );
    }

    #[test]
    fn impossible_dates_have_no_next_time_and_bad_specs_robfigs_errors() {
        assert!(nexts("59 23 31 2 *", "2024-03-01T10:00:00Z", 1).is_empty());
        let err = |s: &str| {
            Schedule::parse(s, &TimeZone::UTC)
                .map(|_| ())
                .err()
                .unwrap_or_default()
        };
        assert_eq!(err(""), "empty spec string");
        assert_eq!(err("bad"), "expected exactly 5 fields, found 1: [bad]");
        assert_eq!(
            err("60 * * * *"),
            "end of range (60) above maximum (59): 60"
        );
        assert_eq!(err("* * * * 7"), "end of range (7) above maximum (6): 7");
        assert_eq!(
            err("5-3 * * * *"),
            "beginning of range (5) beyond end of range (3): 5-3"
        );
        assert_eq!(err("@fortnightly"), "unrecognized descriptor: @fortnightly");
        assert_eq!(err("L * * * *"), "failed to parse int from L");
        assert_eq!(
            err("@every x"),
            "failed to parse duration @every x: time: invalid duration \"x\""
        );
    }
}
