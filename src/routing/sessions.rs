//! Sessions: a conversation's last good target per scenario, so it stays on one upstream
//! (and keeps that upstream's prompt cache) while the upstream is healthy. Sessions only
//! steer the order of targets; they never change a request's content.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use dashmap::DashMap;

use super::{Clock, Scenario};

#[derive(Debug, Clone, Default)]
struct Session {
    /// Upstream label that last answered, per scenario.
    last_good: HashMap<Scenario, String>,
    requests: u64,
    failures: u64,
    last_seen_ms: u64,
}

/// What a session has seen, for stats and tests.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SessionCounters {
    pub requests: u64,
    pub failures: u64,
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

    /// Counts a finished request and, on success, remembers who answered it.
    pub fn record(&self, key: &str, scenario: Scenario, answered_by: Option<&str>) {
        let now = self.clock.now_ms();
        if !self.map.contains_key(key) && self.map.len() >= self.max {
            self.evict_oldest();
        }
        let mut session = self.map.entry(key.to_string()).or_default();
        if self.expired(&session, now) {
            *session = Session::default();
        }
        session.last_seen_ms = now;
        session.requests += 1;
        match answered_by {
            Some(label) => {
                session.last_good.insert(scenario, label.to_string());
            }
            None => session.failures += 1,
        }
    }

    pub fn counters(&self, key: &str) -> Option<SessionCounters> {
        let session = self.map.get(key)?;
        Some(SessionCounters {
            requests: session.requests,
            failures: session.failures,
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::routing::ManualClock;

    #[test]
    fn remembers_expires_and_stays_bounded() {
        let clock = Arc::new(ManualClock::default());
        let sessions = Sessions::new(Duration::from_secs(60), 2, clock.clone());
        sessions.record("s1", Scenario::Default, Some("a"));
        assert_eq!(
            sessions.preferred("s1", Scenario::Default).as_deref(),
            Some("a")
        );
        assert_eq!(sessions.preferred("s1", Scenario::Thinking), None);
        sessions.record("s1", Scenario::Default, None);
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
        sessions.record("s2", Scenario::Default, Some("b"));
        clock.advance(Duration::from_secs(1));
        sessions.record("s3", Scenario::Default, Some("c"));
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
        sessions.sweep();
        assert!(sessions.is_empty());
    }
}
