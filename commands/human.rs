//! Times as a person reads them in a table: `in 3 years`, `in 42 min`, `expired 5 min ago`.
//! `--json` keeps the exact timestamps.

/// An expiry `seconds` from now (negative: in the past).
pub fn expiry(seconds: i64) -> String {
    match seconds {
        s if s < 0 => format!("expired {} ago", span(s.unsigned_abs())),
        s if s < 60 => "in under a minute".into(),
        s => format!("in {}", span(s.unsigned_abs())),
    }
}

/// A span in its largest whole unit.
fn span(seconds: u64) -> String {
    const MINUTE: u64 = 60;
    const HOUR: u64 = 60 * MINUTE;
    const DAY: u64 = 24 * HOUR;
    const YEAR: u64 = 365 * DAY;
    let plural = |n: u64, one: &str, many: &str| format!("{n} {}", if n == 1 { one } else { many });
    match seconds {
        s if s >= YEAR => plural(s / YEAR, "year", "years"),
        s if s >= 2 * DAY => plural(s / DAY, "day", "days"),
        s if s >= HOUR => format!("{} h", s / HOUR),
        s if s >= MINUTE => format!("{} min", s / MINUTE),
        _ => "under a minute".into(),
    }
}

#[cfg(test)]
mod tests {
    use super::expiry;

    #[test]
    fn expiries_read_like_a_person_says_them() {
        assert_eq!(expiry(3 * 365 * 86_400 + 29 * 86_400), "in 3 years");
        assert_eq!(expiry(42 * 60 + 10), "in 42 min");
        assert_eq!(expiry(11 * 3600 + 59 * 60), "in 11 h");
        assert_eq!(expiry(30 * 3600), "in 30 h");
        assert_eq!(expiry(5 * 86_400), "in 5 days");
        assert_eq!(expiry(-5 * 60), "expired 5 min ago");
        assert_eq!(expiry(20), "in under a minute");
        assert_eq!(expiry(-20), "expired under a minute ago");
    }
}
