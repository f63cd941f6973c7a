//! Strict mode's `read_rate_limit` and `write_rate_limit`: token buckets of a collection on this
//! node, as Qdrant keeps them per replica. A bucket holds up to `limit` tokens, starts full and
//! refills at `limit` per minute; a read costs one token per search it runs, a write one per
//! point it names (one for a write by filter). An operation the bucket cannot pay is refused
//! with 429 and the seconds after which it could be paid.

use std::time::Instant;

use crate::error::{CollectionError, Result};

/// One bucket.
#[derive(Debug, Clone)]
struct Bucket {
    /// Tokens per minute, and capacity.
    limit: u64,
    tokens: f64,
    refilled: Instant,
}

impl Bucket {
    fn new(limit: u64, now: Instant) -> Self {
        Bucket { limit, tokens: limit as f64, refilled: now }
    }

    /// Take `cost` tokens at `now`, or say why not and when to retry (whole seconds, at least 1).
    fn take(&mut self, cost: u64, now: Instant) -> std::result::Result<(), (String, u64)> {
        let per_sec = self.limit as f64 / 60.0;
        let elapsed = now.saturating_duration_since(self.refilled).as_secs_f64();
        self.tokens = (self.tokens + elapsed * per_sec).min(self.limit as f64);
        self.refilled = now;
        if cost > self.limit {
            return Err((
                format!(
                    "request larger than rate limiter capacity ({cost} > {} per minute), please try to split your \
                     request",
                    self.limit
                ),
                60,
            ));
        }
        if self.tokens >= cost as f64 {
            self.tokens -= cost as f64;
            return Ok(());
        }
        let missing = cost as f64 - self.tokens;
        let wait = (missing / per_sec).ceil().max(1.0) as u64;
        Err((
            format!(
                "Operation requires {cost} tokens but only {:.0} were available. Retry after {wait}s",
                self.tokens.floor()
            ),
            wait,
        ))
    }
}

/// The read and write buckets of one collection; each follows its limit (a changed limit
/// starts a full new bucket).
#[derive(Debug, Default)]
pub struct RateLimits {
    read: Option<Bucket>,
    write: Option<Bucket>,
}

/// Which bucket an operation draws on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    Read,
    Write,
}

impl RateLimits {
    /// Charge `cost` to the bucket of `access`, whose limit is `limit` (none: unlimited).
    pub fn charge(&mut self, access: Access, limit: Option<u64>, cost: u64) -> Result<()> {
        self.charge_at(access, limit, cost, Instant::now())
    }

    fn charge_at(&mut self, access: Access, limit: Option<u64>, cost: u64, now: Instant) -> Result<()> {
        let slot = match access {
            Access::Read => &mut self.read,
            Access::Write => &mut self.write,
        };
        let Some(limit) = limit else {
            *slot = None;
            return Ok(());
        };
        let bucket = match slot {
            Some(b) if b.limit == limit => b,
            _ => slot.insert(Bucket::new(limit, now)),
        };
        bucket.take(cost, now).map_err(|(why, retry_after_secs)| {
            let kind = if access == Access::Read { "Read" } else { "Write" };
            CollectionError::RateLimited { message: format!("{kind} rate limit exceeded: {why}"), retry_after_secs }
        })
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[test]
    fn a_bucket_starts_full_and_refills_per_minute() {
        let t0 = Instant::now();
        let mut r = RateLimits::default();
        for _ in 0..60 {
            r.charge_at(Access::Read, Some(60), 1, t0).expect("within the burst");
        }
        let e = r.charge_at(Access::Read, Some(60), 1, t0).expect_err("empty");
        match e {
            CollectionError::RateLimited { message, retry_after_secs } => {
                assert_eq!(retry_after_secs, 1);
                assert!(message.starts_with("Read rate limit exceeded: Operation requires 1 tokens"), "{message}");
            }
            other => panic!("{other}"),
        }
        // One token a second comes back.
        r.charge_at(Access::Read, Some(60), 1, t0 + Duration::from_secs(1)).expect("refilled");
        // Writes have their own bucket.
        r.charge_at(Access::Write, Some(10), 10, t0).expect("own bucket");
        let e = r.charge_at(Access::Write, Some(10), 5, t0).expect_err("empty");
        assert!(matches!(e, CollectionError::RateLimited { retry_after_secs: 30, .. }), "{e}");
    }

    #[test]
    fn oversized_requests_and_changed_limits() {
        let t0 = Instant::now();
        let mut r = RateLimits::default();
        let e = r.charge_at(Access::Write, Some(5), 6, t0).expect_err("never fits");
        assert!(e.to_string().contains("larger than rate limiter capacity"), "{e}");
        r.charge_at(Access::Write, Some(5), 5, t0).expect("fits");
        assert!(r.charge_at(Access::Write, Some(5), 1, t0).is_err());
        // A new limit starts a full bucket; no limit is no bucket.
        r.charge_at(Access::Write, Some(6), 6, t0).expect("new bucket");
        r.charge_at(Access::Write, None, 1000, t0).expect("unlimited");
    }
}
