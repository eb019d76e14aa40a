//! The failed-login limiter: a token bucket per (tenant, user) and one per
//! client address, in bounded memory. Pure: the caller passes the time.
//!
//! A login takes a token from both of its buckets before any PBKDF2 runs
//! and gives them back if it succeeds, so only failures count, and
//! concurrent guesses cannot all slip in before the first failure is
//! recorded. A bucket is kept in GCRA form, as the one instant at which it
//! will be full again: taking a token moves that instant one refill period
//! later, and the bucket is empty while it lies more than `burst - 1`
//! periods ahead. Integer milliseconds, no floats.
//!
//! Each table tracks at most `keys_max` keys (digests of a fixed size,
//! whatever the user name); past that the least recently touched is
//! forgotten, which at worst gives that key a fresh allowance. Buckets that
//! are full again are forgotten as they come up, so the tables stay small
//! unless many keys fail at once.

use std::collections::{BTreeMap, HashMap};
use std::net::IpAddr;

use sha2::{Digest, Sha256};

use crate::limits::{
    LOGIN_FAILURES_PER_ADDRESS_BURST, LOGIN_FAILURES_PER_USER_BURST, LOGIN_FAILURE_PER_ADDRESS_REFILL_MS,
    LOGIN_FAILURE_PER_USER_REFILL_MS, LOGIN_LIMITER_KEYS_MAX,
};

/// A token bucket's shape: `burst` tokens when full, one more back every
/// `refill_ms`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rule {
    pub burst: u32,
    pub refill_ms: u64,
}

/// Which bucket refused a login.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LimitRule {
    /// Failed logins of one user of one tenant.
    PerUser,
    /// Failed logins from one client address (an IPv6 /64), over all tenants.
    PerClientAddress,
}

impl LimitRule {
    /// The rule's name in a 429's problem body.
    pub fn name(self) -> &'static str {
        match self {
            LimitRule::PerUser => "login-failures-per-user",
            LimitRule::PerClientAddress => "login-failures-per-client-address",
        }
    }
}

/// A login refused before its password was checked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limited {
    pub rule: LimitRule,
    pub limit: Rule,
    /// Until the bucket holds a token again.
    pub retry_after_ms: u64,
}

impl Limited {
    /// `Retry-After`, in whole seconds (rounded up, at least 1).
    pub fn retry_after_s(&self) -> u64 {
        self.retry_after_ms.div_ceil(1000).max(1)
    }
}

impl std::fmt::Display for Limited {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let whose = match self.rule {
            LimitRule::PerUser => "for this user",
            LimitRule::PerClientAddress => "from this address",
        };
        write!(
            f,
            "too many failed logins {whose} (rule {}: {} at once, then one every {} s); retry in {} s",
            self.rule.name(),
            self.limit.burst,
            self.limit.refill_ms.div_ceil(1000),
            self.retry_after_s()
        )
    }
}

/// What a bucket is kept under: a digest, the same small size for any user
/// name.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct LimitKey([u8; 16]);

impl LimitKey {
    fn digest(parts: &[&[u8]]) -> Self {
        let mut hasher = Sha256::new();
        for part in parts {
            // Length-prefixed, so no two part lists hash alike.
            hasher.update((part.len() as u64).to_le_bytes());
            hasher.update(part);
        }
        let mut key = [0u8; 16];
        key.copy_from_slice(&hasher.finalize()[..16]);
        Self(key)
    }

    /// The key of `user` of the tenant `tenant_uid`.
    pub fn user(tenant_uid: &str, user: &str) -> Self {
        Self::digest(&[b"user", tenant_uid.as_bytes(), user.as_bytes()])
    }

    /// The key of a client address: IPv4 as is (also when IPv4-mapped),
    /// IPv6 by its /64.
    pub fn address(ip: IpAddr) -> Self {
        let ip = match ip {
            IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
            v4 => v4,
        };
        match ip {
            IpAddr::V4(v4) => Self::digest(&[b"ipv4", &v4.octets()]),
            IpAddr::V6(v6) => Self::digest(&[b"ipv6/64", &v6.octets()[..8]]),
        }
    }
}

struct Bucket {
    /// When the bucket is full again, in the caller's milliseconds.
    full_at_ms: u64,
    /// Its place in [`BucketTable::by_touch`].
    touched: u64,
}

/// The buckets of one rule, the least recently touched forgotten first.
struct BucketTable {
    rule: Rule,
    keys_max: usize,
    buckets: HashMap<LimitKey, Bucket>,
    /// Buckets by when they were last touched (a counter, not a time).
    by_touch: BTreeMap<u64, LimitKey>,
    touches: u64,
}

impl BucketTable {
    fn new(rule: Rule, keys_max: usize) -> Self {
        assert!(rule.burst >= 1 && rule.refill_ms >= 1 && keys_max >= 1, "a limiter must admit something");
        Self { rule, keys_max, buckets: HashMap::new(), by_touch: BTreeMap::new(), touches: 0 }
    }

    /// How far ahead of "full" a bucket may be and still hold a token.
    fn tolerance_ms(&self) -> u64 {
        u64::from(self.rule.burst - 1).saturating_mul(self.rule.refill_ms)
    }

    /// Milliseconds until `key`'s bucket holds a token; 0 if it does now.
    fn wait_ms(&self, key: &LimitKey, now_ms: u64) -> u64 {
        let full_at_ms = self.buckets.get(key).map_or(0, |bucket| bucket.full_at_ms);
        full_at_ms.saturating_sub(self.tolerance_ms()).saturating_sub(now_ms)
    }

    /// Takes a token from `key`'s bucket (the caller checked there is one).
    fn take(&mut self, key: LimitKey, now_ms: u64) {
        debug_assert_eq!(self.wait_ms(&key, now_ms), 0);
        self.forget_full(now_ms);
        let touch = self.touches;
        self.touches += 1;
        let refill_ms = self.rule.refill_ms;
        match self.buckets.get_mut(&key) {
            Some(bucket) => {
                self.by_touch.remove(&bucket.touched);
                bucket.touched = touch;
                bucket.full_at_ms = bucket.full_at_ms.max(now_ms).saturating_add(refill_ms);
            }
            None => {
                if self.buckets.len() >= self.keys_max {
                    if let Some((_, oldest)) = self.by_touch.pop_first() {
                        self.buckets.remove(&oldest);
                    }
                }
                self.buckets.insert(key, Bucket { full_at_ms: now_ms.saturating_add(refill_ms), touched: touch });
            }
        }
        self.by_touch.insert(touch, key);
    }

    /// Gives a token back to `key`'s bucket, if it is still tracked.
    fn give_back(&mut self, key: &LimitKey) {
        if let Some(bucket) = self.buckets.get_mut(key) {
            bucket.full_at_ms = bucket.full_at_ms.saturating_sub(self.rule.refill_ms);
        }
    }

    /// Forgets up to two of the least recently touched buckets if they are
    /// full again (as good as untracked): amortized cleanup, O(log n).
    fn forget_full(&mut self, now_ms: u64) {
        for _ in 0..2 {
            let Some((&touch, &key)) = self.by_touch.first_key_value() else { return };
            if self.buckets.get(&key).is_none_or(|bucket| bucket.full_at_ms > now_ms) {
                return;
            }
            self.by_touch.remove(&touch);
            self.buckets.remove(&key);
        }
    }

    fn validate(&self) -> Result<(), String> {
        if self.buckets.len() != self.by_touch.len() || self.buckets.len() > self.keys_max {
            return Err(format!(
                "{} buckets, {} touch entries, at most {} keys",
                self.buckets.len(),
                self.by_touch.len(),
                self.keys_max
            ));
        }
        for (touch, key) in &self.by_touch {
            if self.buckets.get(key).map(|bucket| bucket.touched) != Some(*touch) {
                return Err(format!("touch entry {touch} names a bucket touched at another time"));
            }
        }
        Ok(())
    }
}

/// Failed-login buckets per (tenant, user) and per client address.
pub struct LoginLimiter {
    per_user: BucketTable,
    per_address: BucketTable,
}

impl Default for LoginLimiter {
    /// The limits of [`crate::limits`].
    fn default() -> Self {
        Self::new(
            Rule { burst: LOGIN_FAILURES_PER_USER_BURST, refill_ms: LOGIN_FAILURE_PER_USER_REFILL_MS },
            Rule { burst: LOGIN_FAILURES_PER_ADDRESS_BURST, refill_ms: LOGIN_FAILURE_PER_ADDRESS_REFILL_MS },
            LOGIN_LIMITER_KEYS_MAX,
        )
    }
}

impl LoginLimiter {
    /// A limiter tracking at most `keys_max` keys in each table.
    pub fn new(per_user: Rule, per_address: Rule, keys_max: usize) -> Self {
        Self { per_user: BucketTable::new(per_user, keys_max), per_address: BucketTable::new(per_address, keys_max) }
    }

    /// Takes a token from both buckets, or from neither if either is empty;
    /// then the refusal names the rule that frees up last.
    pub fn take(&mut self, user: LimitKey, address: LimitKey, now_ms: u64) -> Result<(), Limited> {
        let user_wait_ms = self.per_user.wait_ms(&user, now_ms);
        let address_wait_ms = self.per_address.wait_ms(&address, now_ms);
        if user_wait_ms > 0 || address_wait_ms > 0 {
            let (rule, limit, retry_after_ms) = if user_wait_ms >= address_wait_ms {
                (LimitRule::PerUser, self.per_user.rule, user_wait_ms)
            } else {
                (LimitRule::PerClientAddress, self.per_address.rule, address_wait_ms)
            };
            return Err(Limited { rule, limit, retry_after_ms });
        }
        self.per_user.take(user, now_ms);
        self.per_address.take(address, now_ms);
        Ok(())
    }

    /// Gives back the tokens of a login that succeeded.
    pub fn give_back(&mut self, user: LimitKey, address: LimitKey) {
        self.per_user.give_back(&user);
        self.per_address.give_back(&address);
    }

    /// Keys tracked (per user, per address).
    pub fn tracked(&self) -> (usize, usize) {
        (self.per_user.buckets.len(), self.per_address.buckets.len())
    }

    /// Checks the tables' internal consistency (for tests).
    pub fn validate(&self) -> Result<(), String> {
        self.per_user.validate().map_err(|error| format!("per user: {error}"))?;
        self.per_address.validate().map_err(|error| format!("per address: {error}"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const USER_RULE: Rule = Rule { burst: 3, refill_ms: 1_000 };
    const ADDRESS_RULE: Rule = Rule { burst: 5, refill_ms: 500 };

    fn ip(text: &str) -> IpAddr {
        text.parse().unwrap()
    }

    #[test]
    fn a_user_gets_a_burst_then_one_login_per_refill() {
        let mut limiter = LoginLimiter::new(USER_RULE, Rule { burst: 100, refill_ms: 1 }, 16);
        let (alice, address) = (LimitKey::user("01ACME", "alice"), LimitKey::address(ip("192.0.2.1")));
        for _ in 0..3 {
            assert_eq!(limiter.take(alice, address, 10_000), Ok(()));
        }
        let refused = limiter.take(alice, address, 10_000).unwrap_err();
        assert_eq!(refused.rule, LimitRule::PerUser);
        assert_eq!(refused.retry_after_ms, 1_000);
        assert_eq!(refused.retry_after_s(), 1);
        assert!(refused.to_string().contains("login-failures-per-user"), "{refused}");
        assert!(limiter.take(alice, address, 10_999).is_err(), "not yet refilled");
        assert_eq!(limiter.take(alice, address, 11_000), Ok(()), "one token back after one period");
        assert!(limiter.take(alice, address, 11_000).is_err());
        assert_eq!(limiter.take(LimitKey::user("01ACME", "bob"), address, 11_000), Ok(()), "bob has his own bucket");
        assert_eq!(limiter.take(LimitKey::user("01GLOBEX", "alice"), address, 11_000), Ok(()), "per tenant");
        assert_eq!(limiter.take(alice, address, 14_000), Ok(()), "refills up to the burst");
        limiter.validate().unwrap();
    }

    #[test]
    fn an_address_is_limited_over_all_users_and_nothing_is_taken_when_refused() {
        let mut limiter = LoginLimiter::new(USER_RULE, ADDRESS_RULE, 16);
        let address = LimitKey::address(ip("2001:db8:1:2::10"));
        for n in 0..5 {
            assert_eq!(limiter.take(LimitKey::user("01ACME", &format!("user-{n}")), address, 0), Ok(()));
        }
        let same_block = LimitKey::address(ip("2001:db8:1:2:ffff::1"));
        let refused = limiter.take(LimitKey::user("01ACME", "alice"), same_block, 0).unwrap_err();
        assert_eq!((refused.rule, refused.retry_after_ms), (LimitRule::PerClientAddress, 500), "one IPv6 /64");
        let other_block = LimitKey::address(ip("2001:db8:1:3::10"));
        assert_eq!(limiter.take(LimitKey::user("01ACME", "alice"), other_block, 0), Ok(()));
        // alice's refusal above took no token from her bucket: two remain.
        let elsewhere = LimitKey::address(ip("198.51.100.7"));
        assert_eq!(limiter.take(LimitKey::user("01ACME", "alice"), elsewhere, 0), Ok(()));
        assert_eq!(limiter.take(LimitKey::user("01ACME", "alice"), elsewhere, 0), Ok(()));
        assert_eq!(limiter.take(LimitKey::user("01ACME", "alice"), elsewhere, 0).unwrap_err().rule, LimitRule::PerUser);
        assert_eq!(LimitKey::address(ip("::ffff:198.51.100.7")), elsewhere, "IPv4-mapped is IPv4");
        limiter.validate().unwrap();
    }

    #[test]
    fn a_success_gives_its_tokens_back() {
        let mut limiter = LoginLimiter::new(USER_RULE, ADDRESS_RULE, 16);
        let (alice, address) = (LimitKey::user("01ACME", "alice"), LimitKey::address(ip("192.0.2.1")));
        for _ in 0..10 {
            assert_eq!(limiter.take(alice, address, 0), Ok(()));
            limiter.give_back(alice, address);
        }
        for _ in 0..3 {
            assert_eq!(limiter.take(alice, address, 0), Ok(()));
        }
        assert!(limiter.take(alice, address, 0).is_err(), "only failures count");
    }

    #[test]
    fn memory_is_bounded_and_the_least_recently_touched_key_goes_first() {
        let mut limiter = LoginLimiter::new(USER_RULE, ADDRESS_RULE, 4);
        let address = |n: u8| LimitKey::address(IpAddr::from([192, 0, 2, n]));
        let user = |n: u8| LimitKey::user("01ACME", &format!("user-{n}"));
        for n in 0..4 {
            limiter.take(user(n), address(n), 0).unwrap();
        }
        limiter.take(user(0), address(0), 1).unwrap();
        for n in 4..40 {
            limiter.take(user(n), address(n), 2).unwrap();
            assert!(limiter.tracked().0 <= 4 && limiter.tracked().1 <= 4, "{:?}", limiter.tracked());
            limiter.validate().unwrap();
        }
        limiter.take(user(39), address(39), 2).unwrap();
        limiter.take(user(39), address(39), 2).unwrap();
        assert!(limiter.take(user(39), address(39), 2).is_err(), "a recent key is still tracked");
        // user-0 was evicted long ago: a fresh allowance, the price of bounded memory.
        assert_eq!(limiter.take(user(0), address(0), 2), Ok(()));

        let mut limiter = LoginLimiter::new(USER_RULE, ADDRESS_RULE, 4);
        limiter.take(user(1), address(1), 0).unwrap();
        limiter.take(user(2), address(2), 10_000).unwrap();
        assert_eq!(limiter.tracked(), (1, 1), "buckets full again are forgotten");
        limiter.validate().unwrap();
    }
}
