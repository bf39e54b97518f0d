//! Reading the failure log back: for `/api/failures` and `ccr replay`. A line that does
//! not parse is skipped and counted, never an error.

use std::collections::{BTreeMap, HashMap};
use std::path::Path;
use std::time::SystemTime;

use serde::{Deserialize, Serialize};

use super::FailureRecord;

/// What reading found.
#[derive(Debug, Default)]
pub struct Read {
    pub records: Vec<FailureRecord>,
    /// Lines that were not a failure record.
    pub skipped: usize,
}

/// Every record at or after `since` (and before `until`, if given), oldest first.
pub fn read(dir: &Path, since: SystemTime, until: Option<SystemTime>) -> std::io::Result<Read> {
    let mut read = Read::default();
    let first_day = day_of(since);
    let mut files: Vec<_> = match std::fs::read_dir(dir) {
        Ok(entries) => entries
            .flatten()
            .filter_map(|e| {
                let name = e.file_name().to_str()?.to_string();
                let day = day_number(name.strip_suffix(".jsonl")?)?;
                (day >= first_day).then_some((day, e.path()))
            })
            .collect(),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(read),
        Err(e) => return Err(e),
    };
    files.sort();
    let since_text = humantime::format_rfc3339_millis(since).to_string();
    let until_text = until.map(|u| humantime::format_rfc3339_millis(u).to_string());
    for (_, path) in files {
        let text = std::fs::read_to_string(&path)?;
        let (records, unreadable) = file_records(&text);
        read.skipped += unreadable;
        // RFC 3339 times in UTC with fixed precision compare as text.
        read.records.extend(records.into_iter().filter(|record| {
            record.time >= since_text && until_text.as_ref().is_none_or(|u| &record.time < u)
        }));
    }
    Ok(read)
}

/// One day file's records, each with its body in place, and how many lines could not be
/// read. A record whose body is in a line that could not be read is unreadable too.
fn file_records(text: &str) -> (Vec<FailureRecord>, usize) {
    let mut unreadable = 0;
    let mut records = Vec::new();
    for line in text.lines().filter(|l| !l.trim().is_empty()) {
        match serde_json::from_str::<FailureRecord>(line) {
            Ok(record) => records.push(record),
            Err(_) => unreadable += 1,
        }
    }
    let holders: HashMap<&str, usize> = records
        .iter()
        .enumerate()
        .filter(|(_, r)| r.request_as.is_none())
        .map(|(at, r)| (r.id.as_str(), at))
        .collect();
    let referrers: Vec<(usize, Option<usize>)> = records
        .iter()
        .enumerate()
        .filter_map(|(at, r)| Some((at, holders.get(r.request_as.as_deref()?).copied())))
        .collect();
    let mut keep = vec![true; records.len()];
    for (at, holder) in referrers {
        match holder {
            Some(holder) => records[at].request = records[holder].request.clone(),
            None => keep[at] = false,
        }
    }
    unreadable += keep.iter().filter(|k| !**k).count();
    let mut kept = keep.into_iter();
    records.retain(|_| kept.next().unwrap_or(true));
    (records, unreadable)
}

/// `/api/failures`: counts of the records since a time.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct Counts {
    pub total: u64,
    pub by_provider: BTreeMap<String, u64>,
    pub by_class: BTreeMap<String, u64>,
    /// `YYYY-MM-DDTHH` (UTC) → records in that hour.
    pub by_hour: BTreeMap<String, u64>,
    /// Lines that were not a failure record.
    pub unreadable_lines: usize,
}

pub fn counts(read: &Read) -> Counts {
    let mut counts = Counts {
        unreadable_lines: read.skipped,
        ..Counts::default()
    };
    for record in &read.records {
        counts.total += 1;
        let provider = record
            .attempts
            .last()
            .map_or_else(|| "-".to_string(), |a| a.provider.clone());
        *counts.by_provider.entry(provider).or_default() += 1;
        *counts
            .by_class
            .entry(record.client_got.class.clone())
            .or_default() += 1;
        let hour = record.time.get(..13).unwrap_or("unknown").to_string();
        *counts.by_hour.entry(hour).or_default() += 1;
    }
    counts
}

/// Days since 1970-01-01 of a `YYYY-MM-DD` date.
pub fn day_number(date: &str) -> Option<i64> {
    let mut parts = date.splitn(3, '-');
    let year: i64 = parts.next()?.parse().ok()?;
    let month: i64 = parts.next()?.parse().ok()?;
    let day: i64 = parts.next()?.parse().ok()?;
    if !(1..=12).contains(&month) || !(1..=31).contains(&day) || date.len() != 10 {
        return None;
    }
    // Howard Hinnant's days_from_civil.
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (month + 9) % 12;
    let doy = (153 * mp + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    Some(era * 146_097 + doe - 719_468)
}

fn day_of(time: SystemTime) -> i64 {
    day_number(&super::utc_day(time)).unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::{day_number, file_records};

    fn line(id: &str, request: &str, request_as: Option<&str>) -> String {
        let refers = request_as.map_or(String::new(), |h| format!(r#","request_as":"{h}""#));
        format!(
            r#"{{"version":2,"id":"{id}","time":"2026-12-03T10:00:00.000Z","request_id":"req_{id}","session":null,"scenario":null,"model":"m","stream":false,"attempts":[],"client_got":{{"status":500,"class":"upstream_5xx","error":null}},"output_streamed":false{refers},"request":{request}}}"#
        )
    }

    #[test]
    fn a_body_written_once_is_put_back_in_every_record_that_refers_to_it() {
        let text = [
            line("a", r#"{"model":"m","n":1}"#, None),
            line("b", "null", Some("a")),
            line("c", "null", Some("gone")),
            "not a record".to_string(),
            line("d", "null", Some("a")),
        ]
        .join("\n");
        let (records, unreadable) = file_records(&text);
        let ids: Vec<&str> = records.iter().map(|r| r.id.as_str()).collect();
        assert_eq!(ids, ["a", "b", "d"]);
        assert_eq!(unreadable, 2, "the corrupt line and the record it orphaned");
        for record in &records {
            assert_eq!(record.request.get(), r#"{"model":"m","n":1}"#);
        }
    }

    #[test]
    fn day_numbers() {
        assert_eq!(day_number("1970-01-01"), Some(0));
        assert_eq!(day_number("2026-12-02"), Some(20_789));
        assert_eq!(
            day_number("2024-03-01").unwrap() - day_number("2024-02-28").unwrap(),
            2
        );
        assert_eq!(day_number("junk"), None);
        assert_eq!(day_number("2026-13-01"), None);
    }
}
