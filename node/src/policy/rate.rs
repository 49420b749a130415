//! The rate limiters: at most N units per (requester, key) in any rolling
//! hour, checked and consumed for a whole batch at once. Lookups and OPRF
//! evaluations count identifier items per kind; statistics count queries
//! (one key, `()`).
//!
//! A sliding-window log rather than GCRA (e.g. `governor`): GCRA lets a
//! requester spend a full burst and then keep the sustained rate, up to 2N-1
//! items in one rolling hour, while enumeration is what this limit is against.
//! The log also runs on the caller's `now` (one clock for sunset and limits,
//! deterministic tests), and a single lock makes a multi-kind batch all or
//! nothing with no race: a refused batch consumes no cell of any kind.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::fmt;
use std::sync::{Mutex, PoisonError};

use chrono::{DateTime, TimeDelta, Utc};
use fedq_crypto::IdentifierKind;

/// Length of the rolling window.
const WINDOW: TimeDelta = TimeDelta::hours(1);
/// Fewest requesters held before idle windows are swept; the threshold then
/// doubles with the live count, so sweeps stay amortised O(1) per request.
const MIN_SWEEP_AT: usize = 1024;

/// Why a batch was refused: the first kind (in code order) over its limit.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Exceeded<K> {
    /// Key whose limit the batch would pass.
    pub(crate) kind: K,
    /// Items allowed per rolling hour.
    pub(crate) limit: u32,
    /// Items of that kind already admitted in the last hour.
    pub(crate) used: u64,
    /// Items of that kind in the refused batch.
    pub(crate) requested: u64,
}

/// Admitted items of one (requester, kind) in the last hour.
#[derive(Default)]
struct Window {
    /// (admission time, items), oldest first; times never decrease.
    batches: VecDeque<(DateTime<Utc>, u32)>,
    /// Sum of the items in `batches`.
    used: u64,
}

impl Window {
    /// Forgets batches that left the window ending at `now`.
    fn expire(&mut self, now: DateTime<Utc>) {
        let horizon = now - WINDOW;
        while let Some(&(at, items)) = self.batches.front() {
            if at > horizon {
                break;
            }
            self.batches.pop_front();
            self.used -= u64::from(items);
        }
    }

    fn record(&mut self, now: DateTime<Utc>, items: u32) {
        // A clock stepping back must not reorder the log: keep times monotonic.
        let at = match self.batches.back() {
            Some(&(last, _)) if last > now => last,
            _ => now,
        };
        self.batches.push_back((at, items));
        self.used += u64::from(items);
    }
}

struct State<K> {
    windows: HashMap<String, BTreeMap<K, Window>>,
    sweep_at: usize,
}

/// Per (requester, identifier kind) sliding-window limiter, in memory.
///
/// Memory: one entry per admitted batch in the last hour, so at most `limit`
/// entries per (requester, kind); idle requesters are swept. Counters do not
/// survive a restart by themselves: the node restores them from its audit
/// log ([`super::Policy::restore_counters`]).
pub(crate) struct SlidingLimiter<K> {
    limit: u32,
    state: Mutex<State<K>>,
}

/// Identifier items per (requester, kind).
pub(crate) type LookupLimiter = SlidingLimiter<IdentifierKind>;
/// Statistics queries per requester.
pub(crate) type QueryLimiter = SlidingLimiter<()>;

impl<K> fmt::Debug for SlidingLimiter<K> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LookupLimiter")
            .field("per_hour_per_kind", &self.limit)
            .finish_non_exhaustive()
    }
}

impl<K: Ord + Copy> SlidingLimiter<K> {
    /// A limiter admitting `limit` units per (requester, key) per rolling hour.
    pub(crate) fn new(limit: u32) -> Self {
        Self {
            limit,
            state: Mutex::new(State {
                windows: HashMap::new(),
                sweep_at: MIN_SWEEP_AT,
            }),
        }
    }

    /// Counts `items` of `kind` as admitted for `requester` at `at`, without
    /// checking the limit: counters rebuilt after a restart (entries must
    /// come oldest first).
    pub(crate) fn restore(&self, requester: &str, kind: K, items: u32, at: DateTime<Utc>) {
        let mut state = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        state
            .windows
            .entry(requester.to_owned())
            .or_default()
            .entry(kind)
            .or_default()
            .record(at, items);
    }

    /// Takes over `older`'s counters (a reloaded policy must not hand every
    /// requester a fresh hour); `older` is left empty.
    pub(crate) fn adopt(&self, older: &Self) {
        let taken = {
            let mut old = older.state.lock().unwrap_or_else(PoisonError::into_inner);
            std::mem::replace(
                &mut *old,
                State {
                    windows: HashMap::new(),
                    sweep_at: MIN_SWEEP_AT,
                },
            )
        };
        *self.state.lock().unwrap_or_else(PoisonError::into_inner) = taken;
    }

    /// Items allowed per (requester, kind) per rolling hour.
    pub(crate) fn limit(&self) -> u32 {
        self.limit
    }

    /// Admits the batch (one item per entry of `kinds`) and consumes its cells,
    /// or refuses it and consumes nothing.
    pub(crate) fn try_consume(
        &self,
        requester: &str,
        kinds: &[K],
        now: DateTime<Utc>,
    ) -> Result<(), Exceeded<K>> {
        let mut wanted: BTreeMap<K, u64> = BTreeMap::new();
        for &kind in kinds {
            *wanted.entry(kind).or_default() += 1;
        }
        if wanted.is_empty() {
            return Ok(());
        }
        // Poisoning only means another request panicked mid-update; the counters
        // are still a sound (at worst slightly high) record.
        let mut state = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        // Phase 1: check every kind; nothing is consumed on refusal.
        if let Some(windows) = state.windows.get_mut(requester) {
            for (&kind, &requested) in &wanted {
                let used = windows.get_mut(&kind).map_or(0, |w| {
                    w.expire(now);
                    w.used
                });
                if used + requested > u64::from(self.limit) {
                    return Err(self.exceeded(kind, used, requested));
                }
            }
        } else if let Some((&kind, &requested)) =
            wanted.iter().find(|(_, &n)| n > u64::from(self.limit))
        {
            return Err(self.exceeded(kind, 0, requested));
        }
        // Phase 2: consume, under the same lock.
        let windows = state.windows.entry(requester.to_owned()).or_default();
        for (kind, requested) in wanted {
            // requested <= limit <= u32::MAX after phase 1.
            let items = u32::try_from(requested).unwrap_or(u32::MAX);
            windows.entry(kind).or_default().record(now, items);
        }
        if state.windows.len() >= state.sweep_at {
            sweep(&mut state, now);
        }
        Ok(())
    }

    fn exceeded(&self, kind: K, used: u64, requested: u64) -> Exceeded<K> {
        Exceeded {
            kind,
            limit: self.limit,
            used,
            requested,
        }
    }

    /// Requesters currently holding a window (for tests).
    #[cfg(test)]
    pub(crate) fn tracked_requesters(&self) -> usize {
        let state = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        state.windows.len()
    }
}

/// Drops windows with nothing left in the last hour, then resets the threshold.
fn sweep<K: Ord>(state: &mut State<K>, now: DateTime<Utc>) {
    state.windows.retain(|_, windows| {
        windows.retain(|_, w| {
            w.expire(now);
            w.used > 0
        });
        !windows.is_empty()
    });
    state.sweep_at = MIN_SWEEP_AT.max(state.windows.len().saturating_mul(2));
}

#[cfg(test)]
mod tests {
    use anyhow::{anyhow, Context, Result};
    use chrono::TimeZone;
    use fedq_crypto::IdentifierKind::Phone;

    use super::*;

    #[test]
    fn idle_requesters_are_swept() -> Result<()> {
        let limiter = LookupLimiter::new(5);
        let t = Utc
            .with_ymd_and_hms(2026, 6, 1, 12, 0, 0)
            .single()
            .context("time")?;
        for i in 0..1100 {
            limiter
                .try_consume(&format!("r{i}"), &[Phone], t)
                .map_err(|e| anyhow!("{e:?}"))?;
        }
        assert!(limiter.tracked_requesters() >= 1024);
        let later = t + TimeDelta::hours(2);
        limiter
            .try_consume("late", &[Phone], later)
            .map_err(|e| anyhow!("{e:?}"))?;
        for i in 0..2100 {
            limiter
                .try_consume(&format!("s{i}"), &[Phone], later)
                .map_err(|e| anyhow!("{e:?}"))?;
        }
        // The r* windows expired and were dropped by a sweep.
        assert!(limiter.tracked_requesters() <= 2101);
        Ok(())
    }
}
