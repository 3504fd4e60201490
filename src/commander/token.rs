//! Signed and encrypted tokens, made with the cookie crate's jars and a key of their own.
//!
//! - [`Keys::sign`] / [`Keys::verify`]: integrity only (HMAC-SHA256, the signed jar). Used
//!   for page tokens and browser ids, which are not secret but must not be forged.
//! - [`Keys::encrypt`] / [`Keys::decrypt`]: secrecy and integrity (AES-256-GCM, the private
//!   jar). Used for the store a browser keeps for the server.
//!
//! Every token names its *purpose* (inside the signed value, and as the AEAD associated
//! data of encrypted ones) and its issue time, so a token made for one use is refused for
//! another and old tokens can be refused by age.
//!
//! Two keys come from `endpoint.secret_key_base`: the app's [`Key`] ([`Keys::key`], derived
//! exactly as actix-web's `Key::derive_from` does, for actix-session's cookie and the app's
//! own), and the tokens' key, derived from `HMAC-SHA256(secret_key_base, "tether tokens v1")`.
//! So a value the app (or actix-session) signs never verifies as a tether token, and a tether
//! token is never an app cookie: the cookie crate's signed jar authenticates only a cookie's
//! value, not its name.
//!
//! ```
//! use tether::commander::token::Keys;
//! let keys = Keys::from_secret(&"k".repeat(64)).unwrap();
//! assert!(Keys::from_secret("short").is_err());
//! let token = keys.sign("page", &"counter", 100);
//! let back: String = keys.verify("page", &token, 100, None).unwrap();
//! assert_eq!(back, "counter");
//! assert!(keys.verify::<String>("store", &token, 100, None).is_err());
//! ```

use actix_web::cookie::{Cookie, CookieJar, Key};
use serde::{Deserialize, Serialize, de::DeserializeOwned};

/// Why a token was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TokenError {
    /// The signature or encryption does not check out (forged or tampered).
    #[error("invalid token")]
    Invalid,
    /// The token was made for another purpose.
    #[error("token made for another purpose")]
    WrongPurpose,
    /// The token is older than allowed.
    #[error("token expired")]
    Expired,
}

/// The secret is too short to derive keys from.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "endpoint.secret_key_base must be at least {MIN_SECRET_BYTES} bytes (64 recommended), got {0}"
)]
pub struct ShortSecret(pub usize);

/// The fewest bytes of `secret_key_base` keys can be derived from.
pub const MIN_SECRET_BYTES: usize = 32;

/// The app's key and the tokens' key (see the module docs).
#[derive(Clone)]
pub struct Keys {
    /// The app's key (actix-session's cookie).
    key: Key,
    /// The key of every tether token.
    tokens: Key,
}

impl std::fmt::Debug for Keys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Keys(<redacted>)")
    }
}

#[derive(Serialize, Deserialize)]
struct Envelope<T> {
    /// Purpose.
    #[serde(rename = "p")]
    purpose: String,
    /// Issued at (unix seconds).
    #[serde(rename = "t")]
    issued: u64,
    /// Data.
    #[serde(rename = "d")]
    data: T,
}

impl Keys {
    /// Derives the keys from `secret_key_base` (at least 32 bytes; the config demands 64).
    pub fn from_secret(secret_key_base: &str) -> Result<Keys, ShortSecret> {
        if secret_key_base.len() < MIN_SECRET_BYTES {
            return Err(ShortSecret(secret_key_base.len()));
        }
        use hmac::Mac;
        let tokens = crate::mac::mac(secret_key_base.as_bytes(), &[b"tether tokens v1"]);
        Ok(Keys {
            key: Key::derive_from(secret_key_base.as_bytes()),
            tokens: Key::derive_from(&tokens.finalize().into_bytes()),
        })
    }

    /// The app's cookie-crate key, e.g. for actix-session's `SessionMiddleware` (tether's own
    /// tokens use another key, derived from the same secret).
    pub fn key(&self) -> &Key {
        &self.key
    }

    /// Signs `data` for `purpose`, issued at `now` (unix seconds).
    pub fn sign<T: Serialize>(&self, purpose: &str, data: &T, now: u64) -> String {
        let value = envelope(purpose, data, now);
        let mut jar = CookieJar::new();
        jar.signed_mut(&self.tokens).add(Cookie::new("t", value));
        jar.get("t")
            .map(|c| c.value().to_string())
            .unwrap_or_default()
    }

    /// Checks a signed token for `purpose`; `max_age` (seconds) bounds its age at `now`.
    pub fn verify<T: DeserializeOwned>(
        &self,
        purpose: &str,
        token: &str,
        now: u64,
        max_age: Option<u64>,
    ) -> Result<T, TokenError> {
        let cookie = CookieJar::new()
            .signed(&self.tokens)
            .verify(Cookie::new("t", token.to_string()));
        open(purpose, cookie, now, max_age)
    }

    /// Encrypts `data` for `purpose`, issued at `now`.
    pub fn encrypt<T: Serialize>(&self, purpose: &str, data: &T, now: u64) -> String {
        let value = envelope(purpose, data, now);
        let mut jar = CookieJar::new();
        jar.private_mut(&self.tokens)
            .add(Cookie::new(purpose.to_string(), value));
        jar.get(purpose)
            .map(|c| c.value().to_string())
            .unwrap_or_default()
    }

    /// A short stand-in for `parts` (16 hex digits of an HMAC-SHA256 under the app's
    /// signing key and `purpose`): stable for one key, unguessable without it, and it does
    /// not reveal `parts` (a presence key shown in a list, say).
    pub(crate) fn digest(&self, purpose: &str, parts: &[&str]) -> String {
        use hmac::Mac;
        let mut mac = crate::mac::mac(self.key.signing(), &[purpose.as_bytes()]);
        for part in parts {
            // Length-prefixed, so ("ab", "c") and ("a", "bc") differ.
            mac.update(&(part.len() as u64).to_be_bytes());
            mac.update(part.as_bytes());
        }
        let bytes = mac.finalize().into_bytes();
        bytes[..8].iter().map(|b| format!("{b:02x}")).collect()
    }

    /// Decrypts a token made by [`Keys::encrypt`] for `purpose`.
    pub fn decrypt<T: DeserializeOwned>(
        &self,
        purpose: &str,
        token: &str,
        now: u64,
        max_age: Option<u64>,
    ) -> Result<T, TokenError> {
        let cookie = CookieJar::new()
            .private(&self.tokens)
            .decrypt(Cookie::new(purpose.to_string(), token.to_string()));
        open(purpose, cookie, now, max_age)
    }
}

fn envelope<T: Serialize>(purpose: &str, data: &T, now: u64) -> String {
    serde_json::to_string(&Envelope {
        purpose: purpose.to_string(),
        issued: now,
        data,
    })
    .unwrap_or_default()
}

/// How far in the future a token's issue time may be (clocks of a cluster's nodes differ).
const MAX_CLOCK_SKEW_S: u64 = 300;

/// Checks a verified (or decrypted) cookie's envelope: `None` means the crypto failed.
fn open<T: DeserializeOwned>(
    purpose: &str,
    cookie: Option<Cookie<'static>>,
    now: u64,
    max_age: Option<u64>,
) -> Result<T, TokenError> {
    let cookie = cookie.ok_or(TokenError::Invalid)?;
    let envelope: Envelope<T> =
        serde_json::from_str(cookie.value()).map_err(|_| TokenError::Invalid)?;
    if envelope.purpose != purpose {
        return Err(TokenError::WrongPurpose);
    }
    // A token from the future (more than a clock skew ahead) never ages: refuse it.
    if envelope.issued > now.saturating_add(MAX_CLOCK_SKEW_S) {
        return Err(TokenError::Invalid);
    }
    if max_age.is_some_and(|max| now.saturating_sub(envelope.issued) > max) {
        return Err(TokenError::Expired);
    }
    Ok(envelope.data)
}

/// Seconds since the Unix epoch.
pub fn unix_now() -> u64 {
    unix_now_ms() / 1000
}

/// Milliseconds since the Unix epoch (0 if the clock is before it).
pub fn unix_now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn keys() -> Keys {
        Keys::from_secret(&"s".repeat(64)).unwrap()
    }

    #[test]
    fn signed_tokens_round_trip_and_refuse_tampering_purpose_and_age() {
        let keys = keys();
        let token = keys.sign("browser", &"0b5c…", 1000);
        assert_eq!(
            keys.verify::<String>("browser", &token, 1000, Some(10))
                .unwrap(),
            "0b5c…"
        );
        assert_eq!(
            keys.verify::<String>("page", &token, 1000, None),
            Err(TokenError::WrongPurpose)
        );
        assert_eq!(
            keys.verify::<String>("browser", &token, 1011, Some(10)),
            Err(TokenError::Expired)
        );
        let tampered = token.replace("0b5c", "0b5d");
        assert_eq!(
            keys.verify::<String>("browser", &tampered, 1000, None),
            Err(TokenError::Invalid)
        );
        let other = Keys::from_secret(&"t".repeat(64)).unwrap();
        assert_eq!(
            other.verify::<String>("browser", &token, 1000, None),
            Err(TokenError::Invalid)
        );
        assert_eq!(
            keys.verify::<String>("browser", "", 1000, None),
            Err(TokenError::Invalid)
        );
    }

    #[test]
    fn a_value_signed_with_the_app_key_is_no_token() {
        let keys = keys();
        let value = envelope("browser", &"0b5c", 1000);
        let mut jar = CookieJar::new();
        jar.signed_mut(keys.key())
            .add(Cookie::new("id", value.clone()));
        let app_signed = jar.get("id").unwrap().value().to_string();
        assert_eq!(
            keys.verify::<String>("browser", &app_signed, 1000, None),
            Err(TokenError::Invalid)
        );
        // And a token is no app-signed cookie.
        let token = keys.sign("browser", &"0b5c", 1000);
        let cookie = CookieJar::new()
            .signed(keys.key())
            .verify(Cookie::new("id", token));
        assert!(cookie.is_none());
    }

    #[test]
    fn digests_are_stable_short_and_keyed() {
        let keys = keys();
        let a = keys.digest("plist-key", &["t", "0b5c4e1e-8c1f-4a7e-9a55-3f1e2a9b7c10"]);
        assert_eq!(a.len(), 16);
        assert!(a.bytes().all(|b| b.is_ascii_hexdigit()));
        assert_eq!(
            a,
            keys.digest("plist-key", &["t", "0b5c4e1e-8c1f-4a7e-9a55-3f1e2a9b7c10"])
        );
        assert_ne!(
            a,
            keys.digest("plist-key", &["u", "0b5c4e1e-8c1f-4a7e-9a55-3f1e2a9b7c10"])
        );
        assert_ne!(
            keys.digest("p", &["ab", "c"]),
            keys.digest("p", &["a", "bc"])
        );
        let other = Keys::from_secret(&"t".repeat(64)).unwrap();
        assert_ne!(
            a,
            other.digest("plist-key", &["t", "0b5c4e1e-8c1f-4a7e-9a55-3f1e2a9b7c10"])
        );
    }

    #[test]
    fn encrypted_tokens_hide_the_data_and_refuse_tampering_and_other_purposes() {
        let keys = keys();
        let token = keys.encrypt("store", &serde_json::json!({"user": "secret-42"}), 5);
        assert!(!token.contains("secret-42"));
        let back: serde_json::Value = keys.decrypt("store", &token, 5, None).unwrap();
        assert_eq!(back["user"], "secret-42");
        assert_eq!(
            keys.decrypt::<serde_json::Value>("page", &token, 5, None),
            Err(TokenError::Invalid)
        );
        let mut bytes = token.into_bytes();
        let middle = bytes.len() / 2;
        bytes[middle] = if bytes[middle] == b'A' { b'B' } else { b'A' };
        let tampered = String::from_utf8(bytes).unwrap();
        assert_eq!(
            keys.decrypt::<serde_json::Value>("store", &tampered, 5, None),
            Err(TokenError::Invalid)
        );
    }
}
