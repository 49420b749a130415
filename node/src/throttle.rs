//! How many refusals per minute are audited one by one.
//!
//! Every refusal is audited, but a flood of them (a hostile coordinator
//! replaying bad envelopes, a broken client retrying) must not fill the
//! node's disk. Per key (a verified requester, or every unverified request
//! together, so that claiming new names does not buy new entries) the first
//! `per_minute` refusals of each minute get their own entry; the rest are
//! counted, and the count is audited as one entry before that key's next
//! audited refusal. The answer to the refused request is the same either way.

use std::collections::HashMap;
use std::sync::Mutex;

use chrono::{DateTime, TimeDelta, Utc};

/// The key of every refusal whose envelope did not verify.
pub const UNVERIFIED: &str = "(unverified)";

/// Default refusals audited one by one per key and minute.
pub const DEFAULT_PER_MINUTE: u32 = 120;

/// Refusals not audited one by one, to be audited as one count.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Suppressed {
    /// How many.
    pub count: u64,
    /// The first of them.
    pub since: DateTime<Utc>,
}

/// What to do with one refusal.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// Audit it; first audit the count of those held back before it, if any.
    Audit(Option<Suppressed>),
    /// Count it only: the key is over its limit for this minute.
    Count,
}

#[derive(Debug)]
struct Window {
    started: DateTime<Utc>,
    audited: u32,
    suppressed: Option<Suppressed>,
}

/// Per-key budgets of audited refusals.
#[derive(Debug)]
pub struct RefusalThrottle {
    per_minute: u32,
    windows: Mutex<HashMap<String, Window>>,
}

impl RefusalThrottle {
    /// At most `per_minute` refusals per key and minute audited one by one.
    pub fn new(per_minute: u32) -> Self {
        Self {
            per_minute,
            windows: Mutex::new(HashMap::new()),
        }
    }

    /// Decides for one refusal of `key` at `now`. Keys are verified
    /// requester ids or [`UNVERIFIED`], so the map stays as small as the
    /// federation file.
    pub fn check(&self, key: &str, now: DateTime<Utc>) -> Verdict {
        let mut windows = self.windows.lock().unwrap_or_else(|e| e.into_inner());
        let window = windows.entry(key.to_owned()).or_insert(Window {
            started: now,
            audited: 0,
            suppressed: None,
        });
        if now - window.started >= TimeDelta::minutes(1) || now < window.started {
            window.started = now;
            window.audited = 0;
        }
        if window.audited < self.per_minute {
            window.audited += 1;
            return Verdict::Audit(window.suppressed.take());
        }
        match &mut window.suppressed {
            Some(suppressed) => suppressed.count += 1,
            None => {
                window.suppressed = Some(Suppressed {
                    count: 1,
                    since: now,
                })
            }
        }
        Verdict::Count
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_flood_is_audited_up_to_the_limit_then_counted_and_the_count_audited_next_minute() {
        let throttle = RefusalThrottle::new(3);
        let t0 = Utc::now();
        for _ in 0..3 {
            assert_eq!(throttle.check(UNVERIFIED, t0), Verdict::Audit(None));
        }
        for _ in 0..1000 {
            assert_eq!(throttle.check(UNVERIFIED, t0), Verdict::Count);
        }
        // Another key has its own budget.
        assert_eq!(throttle.check("rosa", t0), Verdict::Audit(None));
        // A minute later the next refusal is audited, after the count.
        let later = t0 + TimeDelta::seconds(61);
        assert_eq!(
            throttle.check(UNVERIFIED, later),
            Verdict::Audit(Some(Suppressed {
                count: 1000,
                since: t0
            }))
        );
        assert_eq!(throttle.check(UNVERIFIED, later), Verdict::Audit(None));
    }

    #[test]
    fn a_clock_set_back_opens_a_new_window_instead_of_muting_the_key() {
        let throttle = RefusalThrottle::new(1);
        let t0 = Utc::now();
        assert_eq!(throttle.check("rosa", t0), Verdict::Audit(None));
        assert_eq!(throttle.check("rosa", t0), Verdict::Count);
        let earlier = t0 - TimeDelta::hours(1);
        assert!(matches!(
            throttle.check("rosa", earlier),
            Verdict::Audit(Some(_))
        ));
    }
}
