//! The time window of an envelope: the node accepts a request signed within a
//! few minutes of its own clock, and remembers its nonce until the window has
//! passed. The signing time is the requester's to choose, so this arithmetic
//! must hold for every `i64`.

/// Whether a request signed at `issued_at` lies within `max_skew` seconds of
/// `now` (seconds since the epoch), in either direction.
///
/// `issued_at` is the requester's to choose: the difference is taken in
/// `i128`, where no pair of `i64` overflows, so `i64::MIN` or `i64::MAX` is
/// simply out of the window. A negative `max_skew` admits nothing.
pub fn within_skew(issued_at: i64, now: i64, max_skew: i64) -> bool {
    (i128::from(now) - i128::from(issued_at)).abs() <= i128::from(max_skew)
}

/// The last second at which a request signed at `issued_at` is still inside
/// the window: `issued_at + max_skew`, saturated at the ends of `i64` (until
/// then its nonce must be remembered).
pub fn expires_at(issued_at: i64, max_skew: i64) -> i64 {
    issued_at.saturating_add(max_skew)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_time_window_holds_at_the_ends_of_i64() {
        const SKEW: i64 = 300;
        let now = 1_795_000_000;
        assert!(within_skew(now, now, SKEW));
        assert!(within_skew(now - SKEW, now, SKEW));
        assert!(within_skew(now + SKEW, now, SKEW));
        assert!(!within_skew(now - SKEW - 1, now, SKEW));
        assert!(!within_skew(now + SKEW + 1, now, SKEW));
        // `(now - issued_at).abs()` or `issued_at + SKEW` overflows for each.
        for (issued_at, now) in [
            (i64::MIN, now),
            (i64::MAX, now),
            (i64::MIN, i64::MAX),
            (i64::MAX, i64::MIN),
            (i64::MIN, 0),
            (i64::MIN + 1, 1),
        ] {
            assert!(!within_skew(issued_at, now, SKEW));
        }
        assert!(!within_skew(i64::MIN, 0, i64::MAX));
        assert!(!within_skew(i64::MIN, i64::MAX, i64::MAX));
        assert!(within_skew(i64::MIN, i64::MIN, SKEW));
        assert!(within_skew(i64::MAX, i64::MAX - SKEW, SKEW));
        assert!(within_skew(0, i64::MAX, i64::MAX));
        assert!(!within_skew(now, now, -1));
        assert!(!within_skew(now, now, i64::MIN));
    }

    #[test]
    fn expiry_saturates_at_the_ends_of_i64() {
        assert_eq!(expires_at(1_000, 300), 1_300);
        assert_eq!(expires_at(i64::MAX, 300), i64::MAX);
        assert_eq!(expires_at(i64::MAX - 299, 300), i64::MAX);
        assert_eq!(expires_at(i64::MIN, 300), i64::MIN + 300);
        assert_eq!(expires_at(i64::MIN, -300), i64::MIN);
        assert_eq!(expires_at(0, i64::MAX), i64::MAX);
    }
}
