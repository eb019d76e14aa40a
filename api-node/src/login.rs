//! Logins and session checks of the data API, without HTTP: the
//! failed-login limiter in front of PBKDF2, one PBKDF2 derivation per
//! admitted attempt whoever the user, tokens signed with the current
//! session key and checked against the tenant's current users.
//!
//! A login is two steps, so that the cheap one runs on the async workers and
//! only admitted attempts reach the blocking pool: [`Logins::admit`] takes a
//! token from the limiter (refused: a 429, and no PBKDF2 runs), then
//! [`Logins::complete`] checks the password (slow: call it off the async
//! workers) and gives the token back if the login succeeded.

use std::net::IpAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, PoisonError};
use std::time::Instant;

use crate::auth::{AuthError, DemoUsers, SessionKeys, SESSION_TTL_S};
use crate::limiter::{LimitKey, Limited, LoginLimiter};

/// Login outcomes, for `/metrics`.
#[derive(Debug, Default)]
pub struct LoginStats {
    pub succeeded: AtomicU64,
    pub failed: AtomicU64,
    /// Refused by the limiter, before any password check.
    pub limited: AtomicU64,
    /// PBKDF2 derivations run: one per admitted attempt.
    pub derivations: AtomicU64,
}

/// An attempt the limiter let through, holding its tokens: only
/// [`Logins::complete`] can finish it, for the user it was admitted for.
#[must_use = "an admission is finished by Logins::complete"]
#[derive(Debug)]
pub struct Admission {
    tenant_uid: String,
    user: String,
    user_key: LimitKey,
    address_key: LimitKey,
}

/// A new session.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Issued {
    pub token: String,
    pub user: String,
    pub expires_unix_s: u64,
}

/// Sessions of the demo users of every tenant this node serves.
pub struct Logins {
    keys: SessionKeys,
    limiter: Mutex<LoginLimiter>,
    /// The limiter's time base: monotonic, unlike the wall clock.
    clock: Instant,
    stats: LoginStats,
}

impl Logins {
    /// Sessions signed with `keys`, failures limited as [`crate::limits`] says.
    pub fn new(keys: SessionKeys) -> Self {
        Self::with_limiter(keys, LoginLimiter::default())
    }

    pub fn with_limiter(keys: SessionKeys, limiter: LoginLimiter) -> Self {
        Self { keys, limiter: Mutex::new(limiter), clock: Instant::now(), stats: LoginStats::default() }
    }

    pub fn keys(&self) -> &SessionKeys {
        &self.keys
    }

    pub fn stats(&self) -> &LoginStats {
        &self.stats
    }

    /// Milliseconds on this node's monotonic clock, the limiter's time.
    pub fn now_ms(&self) -> u64 {
        self.clock.elapsed().as_millis() as u64
    }

    fn limiter(&self) -> std::sync::MutexGuard<'_, LoginLimiter> {
        // The limiter's tables are consistent between its statements; a
        // panic elsewhere while holding the lock leaves nothing half-done.
        self.limiter.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Lets a login of `user` of `tenant_uid` from `client` go on to its
    /// password check, or refuses it because of earlier failures.
    pub fn admit(&self, tenant_uid: &str, user: &str, client: IpAddr, now_ms: u64) -> Result<Admission, Limited> {
        let (user_key, address_key) = (LimitKey::user(tenant_uid, user), LimitKey::address(client));
        if let Err(limited) = self.limiter().take(user_key, address_key, now_ms) {
            self.stats.limited.fetch_add(1, Ordering::Relaxed);
            return Err(limited);
        }
        Ok(Admission { tenant_uid: tenant_uid.to_owned(), user: user.to_owned(), user_key, address_key })
    }

    /// Checks the admitted attempt's password against the tenant's private
    /// bundle with one PBKDF2 derivation (blocking: run it off the async
    /// workers), and issues a session if it is right. An unknown user, a
    /// malformed declared hash and a wrong password are the same
    /// [`AuthError::BadCredentials`], after the same work.
    pub fn complete(
        &self,
        admission: Admission,
        private_bundle: Option<&[u8]>,
        password: &str,
        now_unix_s: u64,
    ) -> Result<Issued, AuthError> {
        let users = DemoUsers::parse(private_bundle);
        self.stats.derivations.fetch_add(1, Ordering::Relaxed);
        let verified = users.check_password(&admission.user, password);
        // A verified password implies a declared hash; `None` cannot happen.
        let declared = users.declared_hash(&admission.user).filter(|_| verified);
        let Some(declared) = declared else {
            self.stats.failed.fetch_add(1, Ordering::Relaxed);
            return Err(AuthError::BadCredentials);
        };
        self.limiter().give_back(admission.user_key, admission.address_key);
        self.stats.succeeded.fetch_add(1, Ordering::Relaxed);
        let expires_unix_s = now_unix_s + SESSION_TTL_S;
        let token = self.keys.issue(&admission.tenant_uid, &admission.user, declared, expires_unix_s);
        Ok(Issued { token, user: admission.user, expires_unix_s })
    }

    /// The user of a session token, if it is genuine, unexpired, for
    /// `tenant_uid`, and the user is still declared in `private_bundle` with
    /// the password the token was issued for.
    pub fn session_user(
        &self,
        token: &str,
        tenant_uid: &str,
        private_bundle: Option<&[u8]>,
        now_unix_s: u64,
    ) -> Result<String, AuthError> {
        self.keys.verify(token, tenant_uid, &DemoUsers::parse(private_bundle), now_unix_s)
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::auth::hash_password;
    use crate::limiter::{LimitRule, Rule};

    const CLIENT: IpAddr = IpAddr::V4(std::net::Ipv4Addr::new(192, 0, 2, 1));

    fn bundle(users: &[(&str, &str)]) -> Vec<u8> {
        let users: serde_json::Map<String, serde_json::Value> =
            users.iter().map(|(user, declared)| ((*user).to_owned(), (*declared).into())).collect();
        serde_json::json!({ "config": { "demoUsers": users } }).to_string().into_bytes()
    }

    fn unlimited() -> LoginLimiter {
        let generous = Rule { burst: 1_000, refill_ms: 1 };
        LoginLimiter::new(generous, generous, 16)
    }

    fn attempt(logins: &Logins, bundle: &[u8], user: &str, password: &str) -> Result<Issued, AuthError> {
        let admission = logins.admit("01ACME", user, CLIENT, 0).map_err(|_| AuthError::BadCredentials)?;
        logins.complete(admission, Some(bundle), password, 1_000)
    }

    #[test]
    fn a_login_issues_a_token_that_checks_against_the_current_bundle() {
        let declared = hash_password("pw-alice", b"salt-acme-0123", crate::auth::PBKDF2_ITERATIONS_MIN);
        let bundle = bundle(&[("alice", &declared)]);
        let logins = Logins::with_limiter(SessionKeys::new(b"node-key".to_vec()), unlimited());
        let issued = attempt(&logins, &bundle, "alice", "pw-alice").unwrap();
        assert_eq!((issued.user.as_str(), issued.expires_unix_s), ("alice", 1_000 + SESSION_TTL_S));
        assert_eq!(logins.session_user(&issued.token, "01ACME", Some(&bundle), 1_001), Ok("alice".to_owned()));
        assert_eq!(attempt(&logins, &bundle, "alice", "wrong"), Err(AuthError::BadCredentials));
        assert_eq!(attempt(&logins, &bundle, "bob", "pw-alice"), Err(AuthError::BadCredentials));
        let stats = logins.stats();
        assert_eq!(stats.succeeded.load(Ordering::Relaxed), 1);
        assert_eq!(stats.failed.load(Ordering::Relaxed), 2);
        assert_eq!(stats.derivations.load(Ordering::Relaxed), 3, "one derivation per attempt, known user or not");

        let removed = self::bundle(&[("bob", &declared)]);
        assert_eq!(logins.session_user(&issued.token, "01ACME", Some(&removed), 1_001), Err(AuthError::BadToken));
        let changed = hash_password("pw-new", b"salt-acme-0123", crate::auth::PBKDF2_ITERATIONS_MIN);
        let changed = self::bundle(&[("alice", &changed)]);
        assert_eq!(logins.session_user(&issued.token, "01ACME", Some(&changed), 1_001), Err(AuthError::BadToken));
    }

    /// Guards against user enumeration by timing: an unknown user, or one
    /// whose declared hash is malformed, costs the same PBKDF2 work as a
    /// wrong password. Each case's fastest of several interleaved runs is
    /// compared, so a slow run (a busy machine) cannot fail the check;
    /// without the dummy derivation the unknown user takes microseconds.
    /// 30,000 iterations: a few hundred ms a run unoptimized, still several
    /// ms with optimizations, against microseconds.
    #[test]
    fn an_unknown_user_costs_as_much_as_a_wrong_password() {
        let iterations = 30_000;
        let declared = hash_password("pw-alice", b"salt-acme-0123", iterations);
        let bundle = bundle(&[("alice", &declared), ("mallory", "pbkdf2-sha256$30000$zz$00")]);
        let logins = Logins::with_limiter(SessionKeys::new(b"node-key".to_vec()), unlimited());
        let timed = |user: &str| {
            let started = Instant::now();
            assert_eq!(attempt(&logins, &bundle, user, "wrong"), Err(AuthError::BadCredentials), "{user}");
            started.elapsed()
        };
        let (mut known, mut unknown, mut malformed) = (Duration::MAX, Duration::MAX, Duration::MAX);
        for _ in 0..3 {
            known = known.min(timed("alice"));
            unknown = unknown.min(timed("nobody"));
            malformed = malformed.min(timed("mallory"));
        }
        eprintln!("fastest of 3: wrong password {known:?}, unknown user {unknown:?}, malformed hash {malformed:?}");
        assert!(unknown * 2 >= known, "unknown user {unknown:?} vs wrong password {known:?}");
        assert!(malformed * 2 >= known, "malformed hash {malformed:?} vs wrong password {known:?}");
    }

    #[test]
    fn over_the_limit_a_login_is_refused_before_any_pbkdf2() {
        let declared = hash_password("pw-alice", b"salt-acme-0123", crate::auth::PBKDF2_ITERATIONS_MIN);
        let bundle = bundle(&[("alice", &declared)]);
        let limiter = LoginLimiter::new(Rule { burst: 2, refill_ms: 60_000 }, Rule { burst: 100, refill_ms: 1 }, 16);
        let logins = Logins::with_limiter(SessionKeys::new(b"node-key".to_vec()), limiter);
        for _ in 0..2 {
            let admission = logins.admit("01ACME", "alice", CLIENT, 0).unwrap();
            assert_eq!(logins.complete(admission, Some(&bundle), "wrong", 1_000), Err(AuthError::BadCredentials));
        }
        let limited = logins.admit("01ACME", "alice", CLIENT, 1_000).unwrap_err();
        assert_eq!(limited.rule, LimitRule::PerUser);
        assert_eq!(limited.retry_after_s(), 59, "a token is back 60 s after the first failure, asked at t=1 s");
        let stats = logins.stats();
        assert_eq!(stats.derivations.load(Ordering::Relaxed), 2, "the refused attempt ran no PBKDF2");
        assert_eq!(stats.limited.load(Ordering::Relaxed), 1);
        // Even the right password waits: the limit is on attempts, not on guesses that fail.
        assert!(logins.admit("01ACME", "alice", CLIENT, 59_999).is_err());
        let admission = logins.admit("01ACME", "alice", CLIENT, 60_000).unwrap();
        assert!(logins.complete(admission, Some(&bundle), "pw-alice", 1_000).is_ok());
        let admission = logins.admit("01ACME", "alice", CLIENT, 60_000).unwrap();
        assert!(logins.complete(admission, Some(&bundle), "pw-alice", 1_000).is_ok(), "a success gave its token back");
    }
}
