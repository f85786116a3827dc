//! PocketBase's cron expressions (`tools/cron`), for `backups.cron`: five
//! fields separated by single spaces — minute (0-59), hour (0-23), day of
//! the month (1-31), month (1-12), day of the week (0-6, Sunday 0) — each a
//! list of `*`, `n`, `a-b`, `*/n` or `a-b/n`; or one of the macros
//! `@yearly`/`@annually`, `@monthly`, `@weekly`, `@daily`/`@midnight`,
//! `@hourly`. As PocketBase's, a time is due when *every* field matches
//! (day of the month and day of the week both, not either), in UTC, and
//! the error texts are PocketBase's (the settings answer them). Pure.

use chrono::{Datelike, Timelike};

/// A parsed schedule: one bit per allowed value of each field.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Schedule {
    minutes: u64,
    hours: u64,
    days: u64,
    months: u64,
    weekdays: u64,
}

const MACROS: &[(&str, &str)] = &[
    ("@yearly", "0 0 1 1 *"),
    ("@annually", "0 0 1 1 *"),
    ("@monthly", "0 0 1 * *"),
    ("@weekly", "0 0 * * 0"),
    ("@daily", "0 0 * * *"),
    ("@midnight", "0 0 * * *"),
    ("@hourly", "0 * * * *"),
];

impl Schedule {
    /// Parses an expression; the error is PocketBase's text.
    pub fn parse(expr: &str) -> Result<Schedule, String> {
        let expr = MACROS
            .iter()
            .find(|(m, _)| *m == expr)
            .map(|(_, e)| *e)
            .unwrap_or(expr);
        let seg: Vec<&str> = expr.split(' ').collect();
        if seg.len() != 5 {
            return Err("invalid cron expression - must be a valid macro or to have exactly 5 space separated segments".into());
        }
        Ok(Schedule {
            minutes: segment(seg[0], 0, 59)?,
            hours: segment(seg[1], 0, 23)?,
            days: segment(seg[2], 1, 31)?,
            months: segment(seg[3], 1, 12)?,
            weekdays: segment(seg[4], 0, 6)?,
        })
    }

    /// Whether the minute of `t` (UTC) is one the schedule runs at.
    pub fn is_due(&self, t: chrono::DateTime<chrono::Utc>) -> bool {
        let has = |bits: u64, v: u32| bits & (1u64 << v) != 0;
        has(self.minutes, t.minute())
            && has(self.hours, t.hour())
            && has(self.days, t.day())
            && has(self.weekdays, t.weekday().num_days_from_sunday())
            && has(self.months, t.month())
    }
}

/// Go's `strconv.Atoi` with its error texts.
fn atoi(s: &str) -> Result<i64, String> {
    let digits = s.strip_prefix(['+', '-']).unwrap_or(s);
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return Err(format!("strconv.Atoi: parsing {s:?}: invalid syntax"));
    }
    s.parse::<i64>()
        .map_err(|_| format!("strconv.Atoi: parsing {s:?}: value out of range"))
}

/// One field: its allowed values between `min` and `max` as bits.
fn segment(seg: &str, min: i64, max: i64) -> Result<u64, String> {
    let mut bits = 0u64;
    for part in seg.split(',') {
        let step_parts: Vec<&str> = part.split('/').collect();
        let step = match step_parts.len() {
            1 => 1,
            2 => {
                let s = atoi(step_parts[1])?;
                if s < 1 || s > max {
                    return Err(format!(
                        "invalid segment step boundary - the step must be between 1 and the {max}"
                    ));
                }
                s
            }
            _ => {
                return Err(
                    "invalid segment step format - must be in the format */n or 1-30/n".into(),
                )
            }
        };
        let (lo, hi) = if step_parts[0] == "*" {
            (min, max)
        } else {
            let range: Vec<&str> = step_parts[0].split('-').collect();
            match range.len() {
                1 => {
                    if step != 1 {
                        return Err("invalid segment step - step > 1 could be used only with the wildcard or range format".into());
                    }
                    let v = atoi(range[0])?;
                    if v < min || v > max {
                        return Err("invalid segment value - must be between the min and max of the segment".into());
                    }
                    (v, v)
                }
                2 => {
                    let lo = atoi(range[0])?;
                    if lo < min || lo > max {
                        return Err(format!(
                            "invalid segment range minimum - must be between {min} and {max}"
                        ));
                    }
                    let hi = atoi(range[1])?;
                    if hi < lo || hi > max {
                        return Err(format!(
                            "invalid segment range maximum - must be between {lo} and {max}"
                        ));
                    }
                    (lo, hi)
                }
                _ => {
                    return Err(
                        "invalid segment range format - the range must have 1 or 2 parts".into(),
                    )
                }
            }
        };
        let mut v = lo;
        while v <= hi {
            bits |= 1u64 << v;
            v += step;
        }
    }
    Ok(bits)
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn at(y: i32, mo: u32, d: u32, h: u32, mi: u32) -> chrono::DateTime<chrono::Utc> {
        chrono::Utc
            .with_ymd_and_hms(y, mo, d, h, mi, 30)
            .single()
            .expect("valid time")
    }

    fn due(expr: &str, t: chrono::DateTime<chrono::Utc>) -> bool {
        Schedule::parse(expr).expect(expr).is_due(t)
    }

    #[test]
    fn matches_fixed_times() {
        // 2026-03-02 is a Monday.
        let mon_0915 = at(2026, 3, 2, 9, 15);
        let table: &[(&str, bool)] = &[
            ("* * * * *", true),
            ("15 9 * * *", true),
            ("16 9 * * *", false),
            ("*/15 * * * *", true),
            ("*/20 * * * *", false),
            ("10-20/5 * * * *", true),
            ("10-20/10 * * * *", false),
            ("0,15,30 9 * * *", true),
            ("0,30 9 * * *", false),
            ("1-5,15 9-17 * * 1-5", true),
            ("15 9 * * 0,6", false),
            ("15 9 2 3 1", true),
            // Day of month and day of week must both match (PocketBase).
            ("15 9 2 * 0", false),
            ("15 9 3 * 1", false),
            ("15 9 * 4 *", false),
            ("+15 9 * * *", true),
            ("@hourly", false),
            ("@daily", false),
        ];
        for (expr, want) in table {
            assert_eq!(due(expr, mon_0915), *want, "{expr}");
        }
        assert!(due("@hourly", at(2026, 3, 2, 9, 0)));
        assert!(due("@daily", at(2026, 3, 2, 0, 0)));
        assert!(due("@midnight", at(2026, 3, 2, 0, 0)));
        assert!(!due("@daily", at(2026, 3, 2, 0, 1)));
        // 2026-03-01 is a Sunday.
        assert!(due("@weekly", at(2026, 3, 1, 0, 0)));
        assert!(!due("@weekly", at(2026, 3, 2, 0, 0)));
        assert!(due("@monthly", at(2026, 3, 1, 0, 0)));
        assert!(due("@yearly", at(2026, 1, 1, 0, 0)));
        assert!(due("@annually", at(2026, 1, 1, 0, 0)));
        assert!(!due("@yearly", at(2026, 2, 1, 0, 0)));
        // Edges of each field.
        assert!(due("59 23 31 12 *", at(2026, 12, 31, 23, 59)));
        assert!(due("0 0 1 1 4", at(2026, 1, 1, 0, 0))); // a Thursday
        assert!(due("* * 29 2 *", at(2028, 2, 29, 12, 0)));
    }

    #[test]
    fn a_step_counts_from_the_range_start() {
        let s = Schedule::parse("5-59/20 * * * *").expect("parse");
        let hits: Vec<u32> = (0..60)
            .filter(|m| s.is_due(at(2026, 3, 2, 9, *m)))
            .collect();
        assert_eq!(hits, vec![5, 25, 45]);
        let s = Schedule::parse("*/7 * * * *").expect("parse");
        let hits: Vec<u32> = (0..60)
            .filter(|m| s.is_due(at(2026, 3, 2, 9, *m)))
            .collect();
        assert_eq!(hits, vec![0, 7, 14, 21, 28, 35, 42, 49, 56]);
    }

    #[test]
    fn errors_are_pocketbases() {
        let table: &[(&str, &str)] = &[
            ("bad", "invalid cron expression - must be a valid macro or to have exactly 5 space separated segments"),
            ("*  * * * *", "invalid cron expression - must be a valid macro or to have exactly 5 space separated segments"),
            ("@every 5m", "invalid cron expression - must be a valid macro or to have exactly 5 space separated segments"),
            ("", "invalid cron expression - must be a valid macro or to have exactly 5 space separated segments"),
            ("*/0 * * * *", "invalid segment step boundary - the step must be between 1 and the 59"),
            ("* * * * */7", "invalid segment step boundary - the step must be between 1 and the 6"),
            ("x * * * *", "strconv.Atoi: parsing \"x\": invalid syntax"),
            ("1,,2 * * * *", "strconv.Atoi: parsing \"\": invalid syntax"),
            ("99999999999999999999 * * * *", "strconv.Atoi: parsing \"99999999999999999999\": value out of range"),
            ("1/2 * * * *", "invalid segment step - step > 1 could be used only with the wildcard or range format"),
            ("60 * * * *", "invalid segment value - must be between the min and max of the segment"),
            ("* * * * 7", "invalid segment value - must be between the min and max of the segment"),
            ("* * 0 * *", "invalid segment value - must be between the min and max of the segment"),
            ("5-3 * * * *", "invalid segment range maximum - must be between 5 and 59"),
            ("* 24-25 * * *", "invalid segment range minimum - must be between 0 and 23"),
            ("1-2-3 * * * *", "invalid segment range format - the range must have 1 or 2 parts"),
            ("*/1/2 * * * *", "invalid segment step format - must be in the format */n or 1-30/n"),
            ("-5 * * * *", "strconv.Atoi: parsing \"\": invalid syntax"),
        ];
        for (expr, want) in table {
            assert_eq!(
                Schedule::parse(expr).err().as_deref(),
                Some(*want),
                "{expr:?}"
            );
        }
    }
}
