//! Demo users, password checks and session tokens.
//!
//! Users are declared in the tenant's private bundle
//! (`config.demoUsers.{name}`) with only a password hash,
//! `pbkdf2-sha256$ITERATIONS$SALT_HEX$HASH_HEX`. Every password check costs
//! one PBKDF2 derivation, whatever the user: for an unknown user, or one
//! whose declared hash is malformed, it derives against a dummy salt with
//! the iteration count of the tenant's first valid user, so the time a
//! login takes does not tell which users exist.
//!
//! A login returns a token signed (HMAC-SHA256) with the node's current
//! session key. The token names that key by id, so keys can rotate while
//! older tokens still verify; it is bound to the tenant's uid (worthless for
//! any other tenant) and to a fingerprint of the user's declared hash, so it
//! dies when the user is removed or their password changes.
//!
//! ```text
//! token        v2.KID.TENANT_UID.USER_HEX.FINGERPRINT.EXPIRES_UNIX_S.SIGNATURE
//! KID          16 hex: SHA-256("tenantry-session-key-id\0" ‖ key), first 8 bytes
//! FINGERPRINT  16 hex: HMAC-SHA256(key, "tenantry-declared-hash\0" ‖ declared hash), first 8 bytes
//! SIGNATURE    64 hex: HMAC-SHA256(key, everything before the last '.')
//! ```
//!
//! The fingerprint is keyed rather than a plain SHA-256 of the declared
//! hash: a token is readable by its holder, and a plain digest of a
//! verifier with a short or guessable salt would be an offline
//! password-guessing oracle.

use std::collections::BTreeMap;

use hmac::{Hmac, Mac};
use sha2::{Digest, Sha256};

/// How long a session token is valid, in seconds.
pub const SESSION_TTL_S: u64 = 12 * 60 * 60;

/// The fewest PBKDF2 iterations a declared hash may use.
pub const PBKDF2_ITERATIONS_MIN: u32 = 10_000;

/// The most PBKDF2 iterations a declared hash may use (bounds login cost).
pub const PBKDF2_ITERATIONS_MAX: u32 = 1_000_000;

/// The dummy derivation's iterations for a tenant that declares no valid
/// hash to copy the count from.
pub const PBKDF2_ITERATIONS_DUMMY_DEFAULT: u32 = 100_000;

/// The salt of the dummy derivation. Fixed: the result is never compared
/// with anything a client could match.
const DUMMY_SALT: &[u8] = b"tenantry-dummy-salt-v1";

/// Domain separation of the two uses of SHA-256 and HMAC below.
const KEY_ID_DOMAIN: &[u8] = b"tenantry-session-key-id\0";
const FINGERPRINT_DOMAIN: &[u8] = b"tenantry-declared-hash\0";

/// Bytes of SHA-256 or HMAC output kept in key ids and fingerprints.
const SHORT_DIGEST_BYTES: usize = 8;

type HmacSha256 = Hmac<Sha256>;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AuthError {
    /// 401: the same for an unknown user and a wrong password.
    #[error("user or password is wrong")]
    BadCredentials,
    /// 401: missing, malformed, forged, expired, signed by an unknown key,
    /// another tenant's, or for a user removed or re-passworded since.
    #[error("session token is missing, invalid or expired; log in again")]
    BadToken,
}

/// A declared hash, parsed and within the allowed iteration range.
struct DeclaredHash {
    iterations: u32,
    salt: Vec<u8>,
    hash: Vec<u8>,
}

impl DeclaredHash {
    fn parse(declared: &str) -> Option<Self> {
        let mut parts = declared.split('$');
        let (Some("pbkdf2-sha256"), Some(iterations), Some(salt), Some(hash), None) =
            (parts.next(), parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return None;
        };
        let iterations = iterations.parse::<u32>().ok()?;
        let (salt, hash) = (hex::decode(salt).ok()?, hex::decode(hash).ok()?);
        let valid = (PBKDF2_ITERATIONS_MIN..=PBKDF2_ITERATIONS_MAX).contains(&iterations) && hash.len() == 32;
        valid.then_some(Self { iterations, salt, hash })
    }
}

/// Compares two byte strings in time that depends only on their lengths.
fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    // A MAC type's verify is constant-time but needs a key; XOR-fold, and
    // keep the optimizer from turning the fold into an early exit.
    let diff = a.iter().zip(b.iter()).fold(0u8, |diff, (x, y)| diff | std::hint::black_box(x ^ y));
    a.len() == b.len() && std::hint::black_box(diff) == 0
}

/// Checks `password` against a declared `pbkdf2-sha256$…` hash with
/// exactly one PBKDF2 derivation. Against an absent or malformed hash it
/// derives with a dummy salt and `dummy_iterations` (clamped to the allowed
/// range) and answers false, so the answer takes as long either way.
pub fn verify_password(password: &str, declared: Option<&str>, dummy_iterations: u32) -> bool {
    let mut derived = [0u8; 32];
    match declared.and_then(DeclaredHash::parse) {
        Some(declared) => {
            pbkdf2::pbkdf2_hmac::<Sha256>(password.as_bytes(), &declared.salt, declared.iterations, &mut derived);
            constant_time_eq(&derived, &declared.hash)
        }
        None => {
            let iterations = dummy_iterations.clamp(PBKDF2_ITERATIONS_MIN, PBKDF2_ITERATIONS_MAX);
            pbkdf2::pbkdf2_hmac::<Sha256>(password.as_bytes(), DUMMY_SALT, iterations, &mut derived);
            // The same comparison as above, against nothing that can match.
            let _ = constant_time_eq(std::hint::black_box(&derived), &[0u8; 32]);
            false
        }
    }
}

/// Makes a declared hash for `password` (for tooling and tests).
pub fn hash_password(password: &str, salt: &[u8], iterations: u32) -> String {
    let mut derived = [0u8; 32];
    pbkdf2::pbkdf2_hmac::<Sha256>(password.as_bytes(), salt, iterations, &mut derived);
    format!("pbkdf2-sha256${iterations}${}${}", hex::encode(salt), hex::encode(derived))
}

/// The demo users a tenant's private bundle declares, by name.
#[derive(Debug, Default)]
pub struct DemoUsers {
    /// By name, so "the first user" is well defined.
    declared: BTreeMap<String, String>,
}

/// The part of a private bundle read here; serde skips the rest.
#[derive(serde::Deserialize)]
struct PrivateBundle {
    config: Option<PrivateConfig>,
}

#[derive(serde::Deserialize)]
struct PrivateConfig {
    #[serde(rename = "demoUsers", default)]
    demo_users: BTreeMap<String, serde_json::Value>,
}

impl DemoUsers {
    /// The users of a private bundle; none if there is no bundle or it is
    /// not the expected JSON (the registry validated it, so that is rare).
    pub fn parse(private_bundle: Option<&[u8]>) -> Self {
        let parsed = private_bundle.and_then(|bytes| serde_json::from_slice::<PrivateBundle>(bytes).ok());
        let demo_users = parsed.and_then(|bundle| bundle.config).map(|config| config.demo_users).unwrap_or_default();
        let declared = demo_users
            .into_iter()
            .filter_map(|(user, declared)| declared.as_str().map(|declared| (user, declared.to_owned())))
            .collect();
        Self { declared }
    }

    /// The declared hash of `user`, if declared.
    pub fn declared_hash(&self, user: &str) -> Option<&str> {
        self.declared.get(user).map(String::as_str)
    }

    /// The iterations of the first (by name) valid declared hash, else
    /// [`PBKDF2_ITERATIONS_DUMMY_DEFAULT`]: what a check of an unknown user
    /// costs. A tenant whose users all use one count is indistinguishable;
    /// mixed counts tell users of other counts apart from unknown ones.
    pub fn dummy_iterations(&self) -> u32 {
        self.declared
            .values()
            .find_map(|declared| DeclaredHash::parse(declared))
            .map_or(PBKDF2_ITERATIONS_DUMMY_DEFAULT, |declared| declared.iterations)
    }

    /// Whether `password` is `user`'s, at the cost of one PBKDF2 derivation
    /// whether or not the user exists.
    pub fn check_password(&self, user: &str, password: &str) -> bool {
        verify_password(password, self.declared_hash(user), self.dummy_iterations())
    }
}

/// One session key and its id.
pub struct SessionKey {
    id: String,
    key: Vec<u8>,
}

impl std::fmt::Debug for SessionKey {
    // Never the key itself.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SessionKey").field("id", &self.id).finish_non_exhaustive()
    }
}

impl SessionKey {
    /// A key, with its id derived from it: rotating needs no id to be
    /// chosen, and every node that holds the key agrees on its id.
    pub fn new(key: Vec<u8>) -> Self {
        let digest = Sha256::new().chain_update(KEY_ID_DOMAIN).chain_update(&key).finalize();
        Self { id: hex::encode(&digest[..SHORT_DIGEST_BYTES]), key }
    }

    pub fn id(&self) -> &str {
        &self.id
    }

    fn mac(&self) -> HmacSha256 {
        // HMAC takes keys of any length; this cannot fail.
        match HmacSha256::new_from_slice(&self.key) {
            Ok(mac) => mac,
            Err(_) => unreachable_hmac(),
        }
    }

    fn sign(&self, payload: &str) -> HmacSha256 {
        let mut mac = self.mac();
        mac.update(payload.as_bytes());
        mac
    }

    /// The token's fingerprint of a declared hash.
    fn fingerprint(&self, declared: &str) -> String {
        let mut mac = self.mac();
        mac.update(FINGERPRINT_DOMAIN);
        mac.update(declared.as_bytes());
        hex::encode(&mac.finalize().into_bytes()[..SHORT_DIGEST_BYTES])
    }
}

/// Signs session tokens with the current key and checks them with the key
/// their id names: the current one or a previous one (during a rotation).
#[derive(Debug)]
pub struct SessionKeys {
    current: SessionKey,
    previous: BTreeMap<String, SessionKey>,
}

impl SessionKeys {
    /// One key, no previous ones.
    pub fn new(current: Vec<u8>) -> Self {
        Self::with_previous(current, [])
    }

    /// The current key and the keys that signed before it (at most
    /// [`SESSION_KEYS_PREVIOUS_MAX`](crate::limits::SESSION_KEYS_PREVIOUS_MAX));
    /// a previous key equal to the current one is dropped.
    pub fn with_previous(current: Vec<u8>, previous: impl IntoIterator<Item = Vec<u8>>) -> Self {
        let current = SessionKey::new(current);
        let previous: BTreeMap<String, SessionKey> = previous
            .into_iter()
            .map(SessionKey::new)
            .filter(|key| key.id != current.id)
            .map(|key| (key.id.clone(), key))
            .collect();
        assert!(previous.len() <= crate::limits::SESSION_KEYS_PREVIOUS_MAX, "too many previous session keys");
        Self { current, previous }
    }

    /// The id of the key that signs new tokens.
    pub fn current_id(&self) -> &str {
        self.current.id()
    }

    /// The ids of the keys whose tokens still verify, the current one first.
    pub fn ids(&self) -> impl Iterator<Item = &str> {
        std::iter::once(self.current.id()).chain(self.previous.keys().map(String::as_str))
    }

    fn by_id(&self, id: &str) -> Option<&SessionKey> {
        if id == self.current.id {
            Some(&self.current)
        } else {
            self.previous.get(id)
        }
    }

    /// A token for `user` of the tenant `tenant_uid`, whose password hash is
    /// now `declared_hash`, valid until `expires_unix_s`.
    pub fn issue(&self, tenant_uid: &str, user: &str, declared_hash: &str, expires_unix_s: u64) -> String {
        let key = &self.current;
        let fingerprint = key.fingerprint(declared_hash);
        let payload = format!("v2.{}.{tenant_uid}.{}.{fingerprint}.{expires_unix_s}", key.id, hex::encode(user));
        let signature = hex::encode(key.sign(&payload).finalize().into_bytes());
        format!("{payload}.{signature}")
    }

    /// The user a token names, if it is signed by one of these keys,
    /// unexpired, for `tenant_uid`, and the user is still declared in
    /// `users` with the password hash the token was issued for. Every
    /// failure is the same [`AuthError::BadToken`].
    pub fn verify(
        &self,
        token: &str,
        tenant_uid: &str,
        users: &DemoUsers,
        now_unix_s: u64,
    ) -> Result<String, AuthError> {
        let (payload, signature) = token.rsplit_once('.').ok_or(AuthError::BadToken)?;
        let mut parts = payload.split('.');
        let (Some("v2"), Some(key_id), Some(uid), Some(user), Some(fingerprint), Some(expires), None) =
            (parts.next(), parts.next(), parts.next(), parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return Err(AuthError::BadToken);
        };
        // Which keys verify is no secret: an unknown id fails fast.
        let key = self.by_id(key_id).ok_or(AuthError::BadToken)?;
        let signature = hex::decode(signature).map_err(|_| AuthError::BadToken)?;
        key.sign(payload).verify_slice(&signature).map_err(|_| AuthError::BadToken)?;
        // Genuine from here on: the fields are ours.
        let expires: u64 = expires.parse().map_err(|_| AuthError::BadToken)?;
        if uid != tenant_uid || expires <= now_unix_s {
            return Err(AuthError::BadToken);
        }
        let user = hex::decode(user).map_err(|_| AuthError::BadToken)?;
        let user = String::from_utf8(user).map_err(|_| AuthError::BadToken)?;
        let declared = users.declared_hash(&user).ok_or(AuthError::BadToken)?;
        if !constant_time_eq(key.fingerprint(declared).as_bytes(), fingerprint.as_bytes()) {
            return Err(AuthError::BadToken);
        }
        Ok(user)
    }
}

/// `Hmac::new_from_slice` only fails for MACs with fixed key sizes, which
/// HMAC is not.
#[cold]
fn unreachable_hmac() -> ! {
    panic!("HMAC-SHA256 accepts keys of any length")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bundle(users: &[(&str, &str)]) -> Vec<u8> {
        let users: serde_json::Map<String, serde_json::Value> =
            users.iter().map(|(user, declared)| ((*user).to_owned(), (*declared).into())).collect();
        serde_json::json!({ "config": { "demoUsers": users, "other": [1, 2] } }).to_string().into_bytes()
    }

    #[test]
    fn passwords_verify_only_against_their_hash() {
        let declared = hash_password("s3cret", b"salt-acme", PBKDF2_ITERATIONS_MIN);
        let dummy = PBKDF2_ITERATIONS_MIN;
        assert!(verify_password("s3cret", Some(&declared), dummy));
        assert!(!verify_password("s3cret ", Some(&declared), dummy));
        assert!(!verify_password("s3cret", Some(&declared.replace("pbkdf2-sha256", "md5")), dummy));
        assert!(!verify_password("s3cret", Some(&hash_password("s3cret", b"salt", 10)), dummy), "too few iterations");
        assert!(!verify_password("s3cret", Some("garbage"), dummy));
        assert!(!verify_password("s3cret", None, dummy));
        let users = DemoUsers::parse(Some(&bundle(&[("alice", &declared)])));
        assert_eq!(users.declared_hash("alice"), Some(declared.as_str()));
        assert_eq!(users.declared_hash("bob"), None);
        assert!(users.check_password("alice", "s3cret"));
        assert!(!users.check_password("bob", "s3cret"));
        assert!(DemoUsers::parse(None).declared_hash("alice").is_none());
        assert!(DemoUsers::parse(Some(b"not json")).declared_hash("alice").is_none());
    }

    #[test]
    fn the_dummy_derivation_copies_the_first_valid_users_iterations() {
        let valid = hash_password("pw", b"salt-0123456789", 20_000);
        let users = DemoUsers::parse(Some(&bundle(&[("bob", &valid), ("alice", "pbkdf2-sha256$x$00$00")])));
        assert_eq!(users.dummy_iterations(), 20_000, "alice (first by name) is malformed; bob's count is used");
        assert_eq!(DemoUsers::parse(None).dummy_iterations(), PBKDF2_ITERATIONS_DUMMY_DEFAULT);
    }

    #[test]
    fn tokens_are_bound_to_tenant_key_and_time() {
        let declared = hash_password("pw", b"salt-acme", PBKDF2_ITERATIONS_MIN);
        let users = DemoUsers::parse(Some(&bundle(&[("alice.smith", &declared)])));
        let keys = SessionKeys::new(b"node-key".to_vec());
        let token = keys.issue("01ACME", "alice.smith", &declared, 1_000);
        assert_eq!(keys.verify(&token, "01ACME", &users, 999), Ok("alice.smith".to_owned()));
        assert_eq!(keys.verify(&token, "01GLOBEX", &users, 999), Err(AuthError::BadToken), "another tenant");
        assert_eq!(keys.verify(&token, "01ACME", &users, 1_000), Err(AuthError::BadToken), "expired");
        let other = SessionKeys::new(b"other".to_vec());
        assert_eq!(other.verify(&token, "01ACME", &users, 999), Err(AuthError::BadToken), "another node's key");
        let forged = token.replacen("01ACME", "01GLOBEX", 1);
        assert_eq!(keys.verify(&forged, "01GLOBEX", &users, 999), Err(AuthError::BadToken), "a re-labelled token");
        assert_eq!(keys.verify("", "01ACME", &users, 999), Err(AuthError::BadToken));
        assert!(!token.contains(&declared), "the declared hash never travels");
    }

    #[test]
    fn a_token_dies_with_its_user_or_their_password() {
        let declared = hash_password("old-password", b"salt-acme", PBKDF2_ITERATIONS_MIN);
        let keys = SessionKeys::new(b"node-key".to_vec());
        let token = keys.issue("01ACME", "alice", &declared, 1_000);
        let before = DemoUsers::parse(Some(&bundle(&[("alice", &declared), ("bob", &declared)])));
        assert_eq!(keys.verify(&token, "01ACME", &before, 999), Ok("alice".to_owned()));

        let removed = DemoUsers::parse(Some(&bundle(&[("bob", &declared)])));
        assert_eq!(keys.verify(&token, "01ACME", &removed, 999), Err(AuthError::BadToken), "alice was removed");
        assert_eq!(keys.verify(&token, "01ACME", &DemoUsers::parse(None), 999), Err(AuthError::BadToken));

        let changed = hash_password("new-password", b"salt-acme", PBKDF2_ITERATIONS_MIN);
        let rehashed = DemoUsers::parse(Some(&bundle(&[("alice", &changed), ("bob", &declared)])));
        assert_eq!(keys.verify(&token, "01ACME", &rehashed, 999), Err(AuthError::BadToken), "a new password");
        let token = keys.issue("01ACME", "alice", &changed, 1_000);
        assert_eq!(keys.verify(&token, "01ACME", &rehashed, 999), Ok("alice".to_owned()), "a new login works");
    }

    #[test]
    fn tokens_of_a_previous_key_verify_after_rotation_and_unknown_key_ids_do_not() {
        let declared = hash_password("pw", b"salt-acme", PBKDF2_ITERATIONS_MIN);
        let users = DemoUsers::parse(Some(&bundle(&[("alice", &declared)])));
        let before = SessionKeys::new(b"key-one-0123456789".to_vec());
        let old_token = before.issue("01ACME", "alice", &declared, 1_000);
        assert!(old_token.starts_with(&format!("v2.{}.", before.current_id())), "{old_token}");

        let rotated = SessionKeys::with_previous(b"key-two-0123456789".to_vec(), [b"key-one-0123456789".to_vec()]);
        assert_ne!(rotated.current_id(), before.current_id());
        assert_eq!(rotated.ids().collect::<Vec<_>>(), [rotated.current_id(), before.current_id()]);
        assert_eq!(rotated.verify(&old_token, "01ACME", &users, 999), Ok("alice".to_owned()), "the previous key");
        let new_token = rotated.issue("01ACME", "alice", &declared, 1_000);
        assert!(new_token.starts_with(&format!("v2.{}.", rotated.current_id())), "signed with the current key");
        assert_eq!(rotated.verify(&new_token, "01ACME", &users, 999), Ok("alice".to_owned()));
        assert_eq!(before.verify(&new_token, "01ACME", &users, 999), Err(AuthError::BadToken), "not yet known");

        let retired = SessionKeys::new(b"key-two-0123456789".to_vec());
        assert_eq!(retired.verify(&old_token, "01ACME", &users, 999), Err(AuthError::BadToken), "a retired key");
        let unknown_id = old_token.replacen(before.current_id(), "0123456789abcdef", 1);
        assert_eq!(rotated.verify(&unknown_id, "01ACME", &users, 999), Err(AuthError::BadToken), "an unknown id");
        let swapped_id = old_token.replacen(before.current_id(), rotated.current_id(), 1);
        assert_eq!(rotated.verify(&swapped_id, "01ACME", &users, 999), Err(AuthError::BadToken), "another key's id");
        let old_format = "v1.01ACME.616c696365.1000.00";
        assert_eq!(rotated.verify(old_format, "01ACME", &users, 999), Err(AuthError::BadToken));

        let same = SessionKeys::with_previous(b"key-one-0123456789".to_vec(), [b"key-one-0123456789".to_vec()]);
        assert_eq!(same.ids().count(), 1, "a previous key equal to the current one is dropped");
        let key_bytes = format!("{:?}", b"key-two-0123456789".to_vec());
        assert!(!format!("{rotated:?}").contains(&key_bytes[1..12]), "Debug never shows a key: {rotated:?}");
    }
}
