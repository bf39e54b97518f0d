//! `parse_retry_after` over arbitrary strings and every kind of number: no panic, never more
//! than a day, and the number itself when it is a plain non-negative number of seconds.

use std::time::Duration;

use ccr::failure::parse_retry_after;
use proptest::prelude::*;

use super::cases;

const DAY: Duration = Duration::from_secs(86_400);

fn is_bounded(value: &str) -> Result<Option<Duration>, TestCaseError> {
    let parsed = parse_retry_after(value);
    if let Some(delay) = parsed {
        prop_assert!(delay <= DAY, "{value:?} gave {delay:?}");
    }
    Ok(parsed)
}

proptest! {
    #![proptest_config(cases(2048, false))]

    #[test]
    fn fuzz_retry_after_arbitrary_strings(value in "(?s).{0,40}") {
        is_bounded(&value)?;
    }

    #[test]
    fn fuzz_retry_after_number_like_strings(
        value in "[ \t]{0,2}[+-]?([0-9]{0,24}|inf|infinity|NaN|nan)(\\.[0-9]{0,24})?([eE][+-]?[0-9]{1,4})?[ \t\r\n]{0,2}",
    ) {
        is_bounded(&value)?;
    }

    #[test]
    fn fuzz_retry_after_any_float(seconds in any::<f64>()) {
        for written in [format!("{seconds}"), format!("{seconds:e}"), format!("{seconds:.3}")] {
            let parsed = is_bounded(&written)?;
            let read: f64 = written.parse().unwrap();
            if read.is_finite() && read > 0.0 {
                let expected = Duration::from_secs_f64(read.min(86_400.0));
                prop_assert_eq!(parsed, Some(expected), "{}", written);
            } else if read.is_nan() || read.is_infinite() || read < 0.0 {
                prop_assert_eq!(parsed, None, "{}", written);
            }
        }
    }

    #[test]
    fn fuzz_retry_after_http_dates_are_absent(
        day in 1..29u32, year in 1970..2100u32, hour in 0..24u32,
    ) {
        let date = format!("Wed, {day:02} Oct {year} {hour:02}:28:00 GMT");
        prop_assert_eq!(parse_retry_after(&date), None);
    }
}
