//! Demo users and session tokens.
//!
//! Users are declared in the tenant's private bundle
//! (`config.demoUsers.{name}`) with only a password hash,
//! `pbkdf2-sha256$ITERATIONS$SALT_HEX$HASH_HEX`. A login returns a token
//! signed with the node's session key (HMAC-SHA256) and bound to the
//! tenant's uid, so it is worthless for any other tenant.

use hmac::{Hmac, Mac};
use sha2::Sha256;

/// How long a session token is valid, in seconds.
pub const SESSION_TTL_S: u64 = 12 * 60 * 60;

/// The fewest PBKDF2 iterations a declared hash may use.
pub const PBKDF2_ITERATIONS_MIN: u32 = 10_000;

/// The most PBKDF2 iterations a declared hash may use (bounds login cost).
pub const PBKDF2_ITERATIONS_MAX: u32 = 1_000_000;

type HmacSha256 = Hmac<Sha256>;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AuthError {
    /// 401: the same for an unknown user and a wrong password.
    #[error("user or password is wrong")]
    BadCredentials,
    /// 401: missing, malformed, forged, expired, or another tenant's token.
    #[error("session token is missing, invalid or expired; log in again")]
    BadToken,
}

/// Checks `password` against a declared `pbkdf2-sha256$…` hash.
pub fn verify_password(password: &str, declared: &str) -> bool {
    let mut parts = declared.split('$');
    let (Some("pbkdf2-sha256"), Some(iterations), Some(salt), Some(hash), None) =
        (parts.next(), parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return false;
    };
    let (Ok(iterations), Ok(salt), Ok(hash)) = (iterations.parse::<u32>(), hex::decode(salt), hex::decode(hash)) else {
        return false;
    };
    if !(PBKDF2_ITERATIONS_MIN..=PBKDF2_ITERATIONS_MAX).contains(&iterations) || hash.len() != 32 {
        return false;
    }
    let mut derived = [0u8; 32];
    pbkdf2::pbkdf2_hmac::<Sha256>(password.as_bytes(), &salt, iterations, &mut derived);
    // Constant-time comparison through the MAC type would need a key; XOR-fold instead.
    derived.iter().zip(hash.iter()).fold(0u8, |diff, (a, b)| diff | (a ^ b)) == 0
}

/// Makes a declared hash for `password` (for tooling and tests).
pub fn hash_password(password: &str, salt: &[u8], iterations: u32) -> String {
    let mut derived = [0u8; 32];
    pbkdf2::pbkdf2_hmac::<Sha256>(password.as_bytes(), salt, iterations, &mut derived);
    format!("pbkdf2-sha256${iterations}${}${}", hex::encode(salt), hex::encode(derived))
}

/// The declared hash of `user` in a private bundle, if any.
pub fn declared_hash(private_bundle: &[u8], user: &str) -> Option<String> {
    let bundle: serde_json::Value = serde_json::from_slice(private_bundle).ok()?;
    bundle.get("config")?.get("demoUsers")?.get(user)?.as_str().map(str::to_owned)
}

/// Signs and checks session tokens with one key.
pub struct SessionKeys {
    key: Vec<u8>,
}

impl SessionKeys {
    pub fn new(key: Vec<u8>) -> Self {
        Self { key }
    }

    fn mac(&self, payload: &str) -> HmacSha256 {
        // HMAC takes keys of any length; this cannot fail.
        let mut mac = match HmacSha256::new_from_slice(&self.key) {
            Ok(mac) => mac,
            Err(_) => unreachable_hmac(),
        };
        mac.update(payload.as_bytes());
        mac
    }

    /// A token for `user` of the tenant `tenant_uid`, valid until `expires_unix_s`.
    pub fn issue(&self, tenant_uid: &str, user: &str, expires_unix_s: u64) -> String {
        let payload = format!("v1.{tenant_uid}.{}.{expires_unix_s}", hex::encode(user));
        let signature = hex::encode(self.mac(&payload).finalize().into_bytes());
        format!("{payload}.{signature}")
    }

    /// The user a token names, if it is genuine, unexpired and for `tenant_uid`.
    pub fn verify(&self, token: &str, tenant_uid: &str, now_unix_s: u64) -> Result<String, AuthError> {
        let (payload, signature) = token.rsplit_once('.').ok_or(AuthError::BadToken)?;
        let signature = hex::decode(signature).map_err(|_| AuthError::BadToken)?;
        self.mac(payload).verify_slice(&signature).map_err(|_| AuthError::BadToken)?;
        let mut parts = payload.split('.');
        let (Some("v1"), Some(uid), Some(user), Some(expires), None) =
            (parts.next(), parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return Err(AuthError::BadToken);
        };
        let expires: u64 = expires.parse().map_err(|_| AuthError::BadToken)?;
        if uid != tenant_uid || expires <= now_unix_s {
            return Err(AuthError::BadToken);
        }
        let user = hex::decode(user).map_err(|_| AuthError::BadToken)?;
        String::from_utf8(user).map_err(|_| AuthError::BadToken)
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

    #[test]
    fn passwords_verify_only_against_their_hash() {
        let declared = hash_password("s3cret", b"salt-acme", PBKDF2_ITERATIONS_MIN);
        assert!(verify_password("s3cret", &declared));
        assert!(!verify_password("s3cret ", &declared));
        assert!(!verify_password("s3cret", &declared.replace("pbkdf2-sha256", "md5")));
        assert!(!verify_password("s3cret", &hash_password("s3cret", b"salt", 10)), "too few iterations");
        assert!(!verify_password("s3cret", "garbage"));
        let bundle = format!(r#"{{"config":{{"demoUsers":{{"alice":"{declared}"}}}}}}"#);
        assert_eq!(declared_hash(bundle.as_bytes(), "alice"), Some(declared));
        assert_eq!(declared_hash(bundle.as_bytes(), "bob"), None);
    }

    #[test]
    fn tokens_are_bound_to_tenant_key_and_time() {
        let keys = SessionKeys::new(b"node-key".to_vec());
        let token = keys.issue("01ACME", "alice.smith", 1_000);
        assert_eq!(keys.verify(&token, "01ACME", 999), Ok("alice.smith".to_owned()));
        assert_eq!(keys.verify(&token, "01GLOBEX", 999), Err(AuthError::BadToken), "another tenant");
        assert_eq!(keys.verify(&token, "01ACME", 1_000), Err(AuthError::BadToken), "expired");
        assert_eq!(SessionKeys::new(b"other".to_vec()).verify(&token, "01ACME", 999), Err(AuthError::BadToken));
        let forged = token.replacen("01ACME", "01GLOBEX", 1);
        assert_eq!(keys.verify(&forged, "01GLOBEX", 999), Err(AuthError::BadToken), "a re-labelled token");
        assert_eq!(keys.verify("", "01ACME", 999), Err(AuthError::BadToken));
    }
}
