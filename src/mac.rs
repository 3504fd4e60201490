//! HMAC-SHA256 over byte parts: the one way the crate derives keys from `secret_key_base`
//! and authenticates or digests bytes (the bus envelope, the tokens' key, the dashboard's
//! token secret, hashed presence keys). Pure; it never sees where the bytes go.

use hmac::{Hmac, Mac};
use sha2::Sha256;

/// HMAC-SHA256.
pub(crate) type HmacSha256 = Hmac<Sha256>;

/// HMAC-SHA256 of `parts` (fed in order, as one message) under `key`, not yet finalized:
/// `.finalize().into_bytes()` for the tag, `.verify_slice(tag)` to check one in constant
/// time.
pub(crate) fn mac(key: &[u8], parts: &[&[u8]]) -> HmacSha256 {
    // HMAC accepts keys of any length.
    let mut mac = HmacSha256::new_from_slice(key).unwrap_or_else(|_| unreachable!());
    for part in parts {
        mac.update(part);
    }
    mac
}
