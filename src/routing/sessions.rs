//! Sessions: a conversation's last good target per scenario, so it stays on one upstream
//! (and keeps that upstream's prompt cache) while the upstream is healthy. Sessions only
//! steer the order of targets; they never change a request's content.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use dashmap::DashMap;
use dashmap::mapref::one::RefMut;
use serde::{Deserialize, Serialize};

use super::clock::wall_time;
use super::{Clock, Scenario};
use crate::failure::{Blame, Class};
use crate::record::{Outcome, RecordSink, RequestRecord};

#[derive(Debug, Clone, Default)]
struct Session {
    /// Upstream label that last answered, per scenario.
    last_good: HashMap<Scenario, String>,
    /// The last finished request's scenario and who answered it.
    last: Option<Answered>,
    requests: u64,
    failures: u64,
    cancelled: u64,
    tokens: SessionTokens,
    last_seen_ms: u64,
}

#[derive(Debug, Clone)]
struct Answered {
    scenario: &'static str,
    by: Option<AnsweredBy>,
}

#[derive(Debug, Clone)]
struct AnsweredBy {
    target: String,
    provider: String,
    model: String,
}

/// What a session's requests used, summed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SessionTokens {
    pub input: u64,
    pub output: u64,
    pub cache_read: u64,
    pub cache_write: u64,
}

/// What a session has seen, for stats and tests.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SessionCounters {
    pub requests: u64,
    pub failures: u64,
}

/// One session as `GET /api/sessions/{id}` shows it (and `ccr statusline` reads it).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SessionStatus {
    pub session: String,
    /// The last finished request's scenario.
    pub scenario: Option<String>,
    /// The target that answered last (`deepseek#2`), its provider and the upstream model.
    pub target: Option<String>,
    pub provider: Option<String>,
    pub model: Option<String>,
    /// Finished requests, those that failed (ccr's or an upstream's fault, or the client's
    /// own error) and those the client cancelled.
    pub requests: u64,
    pub failures: u64,
    pub cancelled: u64,
    pub tokens: SessionTokens,
    /// RFC 3339 UTC.
    pub last_seen: String,
}

/// The session map: sharded, so requests of different sessions rarely meet on one lock, and
/// no lock is held across an `.await`.
pub struct Sessions {
    map: DashMap<String, Session>,
    ttl: Duration,
    max: usize,
    clock: Arc<dyn Clock>,
}

impl Sessions {
    pub fn new(ttl: Duration, max: usize, clock: Arc<dyn Clock>) -> Self {
        Sessions {
            map: DashMap::new(),
            ttl,
            max: max.max(1),
            clock,
        }
    }

    fn expired(&self, session: &Session, now: u64) -> bool {
        now.saturating_sub(session.last_seen_ms) >= self.ttl.as_millis() as u64
    }

    /// The upstream this session last used for `scenario`, if the session is alive.
    pub fn preferred(&self, key: &str, scenario: Scenario) -> Option<String> {
        let now = self.clock.now_ms();
        let session = self.map.get(key)?;
        if self.expired(&session, now) {
            return None;
        }
        session.last_good.get(&scenario).cloned()
    }

    /// The live session `key`, made (room first) or renewed if it had expired, seen now.
    fn touch(&self, key: &str) -> RefMut<'_, String, Session> {
        let now = self.clock.now_ms();
        if !self.map.contains_key(key) && self.map.len() >= self.max {
            self.evict_oldest();
        }
        let mut session = self.map.entry(key.to_string()).or_default();
        if self.expired(&session, now) {
            *session = Session::default();
        }
        session.last_seen_ms = now;
        session
    }

    /// `label` started answering the session's request: its next request of `scenario`
    /// goes there first. Told at the first byte, so the next turn needs no finished record.
    pub fn answered(&self, key: &str, scenario: Scenario, label: &str) {
        self.touch(key)
            .last_good
            .insert(scenario, label.to_string());
    }

    /// Counts a finished request of the session: its outcome, tokens and who answered.
    pub fn finished(&self, key: &str, record: &RequestRecord) {
        let mut session = self.touch(key);
        session.requests += 1;
        match (record.outcome, record.failure) {
            (Outcome::Completed, _) => {}
            (_, Some(f)) if f.class == Class::Cancelled && f.blame == Blame::Client => {
                session.cancelled += 1
            }
            _ => session.failures += 1,
        }
        if let Some(usage) = record.usage {
            let tokens = &mut session.tokens;
            tokens.input += usage.input_tokens;
            tokens.output += usage.output_tokens;
            tokens.cache_read += usage.cache_read_input_tokens;
            tokens.cache_write += usage.cache_creation_input_tokens;
        }
        let answering = record.attempts.iter().rev().find(|a| a.failure.is_none());
        let by = answering.map(|a| AnsweredBy {
            target: a.target.clone(),
            provider: a.provider.clone(),
            model: a.model.clone(),
        });
        let before = session.last.take().and_then(|last| last.by);
        session.last = Some(Answered {
            scenario: record.scenario.unwrap_or("-"),
            // A request nobody answered keeps the target that answered before.
            by: by.or(before),
        });
    }

    pub fn counters(&self, key: &str) -> Option<SessionCounters> {
        let session = self.map.get(key)?;
        Some(SessionCounters {
            requests: session.requests,
            failures: session.failures,
        })
    }

    /// The session `key` as `/api/sessions/{id}` shows it, if it is alive.
    pub fn status(&self, key: &str) -> Option<SessionStatus> {
        let now_ms = self.clock.now_ms();
        let session = self.map.get(key)?;
        if self.expired(&session, now_ms) {
            return None;
        }
        let last = session.last.as_ref();
        let by = last.and_then(|l| l.by.as_ref());
        let seen = wall_time(now_ms, SystemTime::now(), session.last_seen_ms);
        Some(SessionStatus {
            session: key.to_string(),
            scenario: last.map(|l| l.scenario.to_string()),
            target: by.map(|b| b.target.clone()),
            provider: by.map(|b| b.provider.clone()),
            model: by.map(|b| b.model.clone()),
            requests: session.requests,
            failures: session.failures,
            cancelled: session.cancelled,
            tokens: session.tokens,
            last_seen: humantime::format_rfc3339_seconds(seen).to_string(),
        })
    }

    pub fn len(&self) -> usize {
        self.map.len()
    }

    pub fn is_empty(&self) -> bool {
        self.map.is_empty()
    }

    /// Drops sessions idle for longer than the TTL (the background sweep).
    pub fn sweep(&self) {
        let now = self.clock.now_ms();
        self.map.retain(|_, session| !self.expired(session, now));
    }

    /// Makes room for a new session when the map is full. A scan, but only when a new
    /// session arrives while `max` others are alive.
    fn evict_oldest(&self) {
        let oldest = self
            .map
            .iter()
            .min_by_key(|entry| entry.value().last_seen_ms)
            .map(|entry| entry.key().clone());
        if let Some(key) = oldest {
            self.map.remove(&key);
        }
    }
}

/// Sessions count their requests from the finished records, as stats do, so a stream cut
/// after its first byte counts as the failure it is.
impl RecordSink for Sessions {
    fn record(&self, record: &Arc<RequestRecord>) {
        if let Some(key) = &record.session {
            self.finished(key, record);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::routing::ManualClock;

    fn finished(sessions: &Sessions, key: &str, status: u16, target: &str) {
        let mut record = crate::record::tests::record(status);
        record.attempts[0].target = target.into();
        record.session = Some(key.into());
        record.usage = Some(crate::anthropic::Usage {
            input_tokens: 10,
            output_tokens: 2,
            cache_read_input_tokens: 100,
            ..Default::default()
        });
        sessions.record(&Arc::new(record));
    }

    #[test]
    fn remembers_expires_and_stays_bounded() {
        let clock = Arc::new(ManualClock::default());
        let sessions = Sessions::new(Duration::from_secs(60), 2, clock.clone());
        sessions.answered("s1", Scenario::Default, "a");
        assert_eq!(
            sessions.preferred("s1", Scenario::Default).as_deref(),
            Some("a")
        );
        assert_eq!(sessions.preferred("s1", Scenario::Thinking), None);
        finished(&sessions, "s1", 200, "a");
        finished(&sessions, "s1", 429, "b");
        assert_eq!(
            sessions.counters("s1"),
            Some(SessionCounters {
                requests: 2,
                failures: 1
            })
        );
        assert_eq!(
            sessions.preferred("s1", Scenario::Default).as_deref(),
            Some("a"),
            "a failure keeps the last good"
        );

        clock.advance(Duration::from_secs(1));
        sessions.answered("s2", Scenario::Default, "b");
        clock.advance(Duration::from_secs(1));
        sessions.answered("s3", Scenario::Default, "c");
        assert_eq!(sessions.len(), 2, "bounded");
        assert_eq!(
            sessions.preferred("s1", Scenario::Default),
            None,
            "the oldest was evicted"
        );

        clock.advance(Duration::from_secs(60));
        assert_eq!(
            sessions.preferred("s3", Scenario::Default),
            None,
            "expired after the TTL"
        );
        assert_eq!(sessions.status("s3"), None);
        sessions.sweep();
        assert!(sessions.is_empty());
    }

    #[test]
    fn the_status_sums_tokens_and_names_who_answered_last() {
        let clock = Arc::new(ManualClock::default());
        let sessions = Sessions::new(Duration::from_secs(60), 10, clock);
        finished(&sessions, "s", 200, "deepseek#2");
        finished(&sessions, "s", 429, "kiro:work");
        let mut cancelled = crate::record::tests::record(200);
        cancelled.session = Some("s".into());
        cancelled.outcome = Outcome::ClientGone;
        cancelled.failure = Some(crate::failure::Failure::client(Class::Cancelled));
        sessions.record(&Arc::new(cancelled));
        let status = sessions.status("s").unwrap();
        assert_eq!(
            status.target.as_deref(),
            Some("t"),
            "the cancelled one had started"
        );
        assert_eq!(status.provider.as_deref(), Some("p"));
        assert_eq!(status.scenario.as_deref(), Some("default"));
        assert_eq!(
            (status.requests, status.failures, status.cancelled),
            (3, 1, 1)
        );
        assert_eq!(status.tokens.input, 20);
        assert_eq!(status.tokens.cache_read, 200);
        assert_eq!(status.tokens.output, 4);

        finished(&sessions, "other", 429, "kiro:work");
        let status = sessions.status("other").unwrap();
        assert_eq!(status.target, None, "nobody answered it yet");
        assert!(sessions.status("nobody").is_none());
    }
}
