//! Throttling: a token bucket per caller for the calls that issue credentials (STS, EKS Auth),
//! so that one noisy node or client cannot starve the others. A throttled call gets AWS's
//! throttling error for its protocol (STS `Throttling`, 400; EKS Auth `ThrottlingException`,
//! 429), which the AWS SDKs and podid's agent retry with back-off.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Instant;

/// A rate: `per_second` calls on average, `burst` at once. A rate of 0 is no limit.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Rate {
    /// Tokens added per second.
    pub per_second: f64,
    /// The bucket's size.
    pub burst: f64,
}

impl Rate {
    /// No limit.
    pub const UNLIMITED: Self = Self {
        per_second: 0.0,
        burst: 0.0,
    };
}

/// The limits of a server: one bucket per caller for each.
#[derive(Debug)]
pub struct Throttles {
    sts: Buckets,
    eks_auth: Buckets,
}

impl Default for Throttles {
    fn default() -> Self {
        Self::new(Rate::UNLIMITED, Rate::UNLIMITED)
    }
}

impl Throttles {
    /// STS's and EKS Auth's rates per caller.
    pub fn new(sts: Rate, eks_auth: Rate) -> Self {
        Self {
            sts: Buckets::new(sts),
            eks_auth: Buckets::new(eks_auth),
        }
    }

    /// Whether `caller` may make an STS call now (taking a token if so).
    pub(crate) fn sts(&self, caller: &str) -> bool {
        self.sts.take(caller, Instant::now())
    }

    /// Whether `caller` may call EKS Auth now.
    pub(crate) fn eks_auth(&self, caller: &str) -> bool {
        self.eks_auth.take(caller, Instant::now())
    }
}

/// The most callers tracked; when full, buckets that have refilled are dropped (a full bucket
/// is the same as none).
const MAX_CALLERS: usize = 100_000;

#[derive(Debug)]
struct Buckets {
    rate: Rate,
    buckets: Mutex<HashMap<String, (f64, Instant)>>,
}

impl Buckets {
    fn new(rate: Rate) -> Self {
        Self {
            rate,
            buckets: Mutex::new(HashMap::new()),
        }
    }

    fn take(&self, caller: &str, now: Instant) -> bool {
        if self.rate.per_second <= 0.0 {
            return true;
        }
        let Ok(mut buckets) = self.buckets.lock() else {
            return true;
        };
        if buckets.len() >= MAX_CALLERS && !buckets.contains_key(caller) {
            let rate = self.rate;
            buckets.retain(|_, (tokens, at)| refill(rate, *tokens, *at, now) < rate.burst);
            if buckets.len() >= MAX_CALLERS {
                buckets.clear();
            }
        }
        let (tokens, at) = buckets
            .entry(caller.to_owned())
            .or_insert((self.rate.burst, now));
        let available = refill(self.rate, *tokens, *at, now);
        *at = now;
        if available >= 1.0 {
            *tokens = available - 1.0;
            true
        } else {
            *tokens = available;
            false
        }
    }
}

fn refill(rate: Rate, tokens: f64, at: Instant, now: Instant) -> f64 {
    let elapsed = now.saturating_duration_since(at).as_secs_f64();
    (tokens + elapsed * rate.per_second).min(rate.burst)
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[test]
    fn a_caller_gets_its_burst_then_its_rate_and_others_are_unaffected() {
        let buckets = Buckets::new(Rate {
            per_second: 10.0,
            burst: 5.0,
        });
        let start = Instant::now();
        assert_eq!((0..8).filter(|_| buckets.take("node-a", start)).count(), 5);
        assert!(buckets.take("node-b", start));
        // A tenth of a second refills one token.
        assert!(buckets.take("node-a", start + Duration::from_millis(100)));
        assert!(!buckets.take("node-a", start + Duration::from_millis(100)));
        assert_eq!(
            (0..8)
                .filter(|_| buckets.take("node-a", start + Duration::from_secs(10)))
                .count(),
            5
        );
    }

    #[test]
    fn no_rate_is_no_limit() {
        let buckets = Buckets::new(Rate::UNLIMITED);
        let now = Instant::now();
        assert!((0..10_000).all(|_| buckets.take("x", now)));
    }
}
