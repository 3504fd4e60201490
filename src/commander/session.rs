//! Reads the session an actix-web app keeps in a cookie, in actix-session's cookie-store
//! format: a private (encrypted) or signed cookie — whichever `[commander]
//! session_cookie_security` names, never the other — named `id` by default, whose value is a
//! JSON object mapping keys to JSON-encoded values.
//!
//! The session is read once, at the WebSocket upgrade, and is read-only afterwards (as in
//! Drab): a login in another tab shows on the next page load. Only the keys the app allows
//! are kept. This module must never write cookies.

use std::collections::HashMap;

use actix_web::{HttpRequest, cookie::CookieJar};
use serde_json::{Map, Value};

use super::token::Keys;
use crate::config::SessionCookieSecurity;

/// Decodes the session cookie `name` of `request`, protected as `security` says, and keeps
/// only `allowed` keys. A missing, forged or undecodable cookie, or one protected otherwise,
/// is an empty session (and is logged at debug).
pub fn read(
    request: &HttpRequest,
    name: &str,
    security: SessionCookieSecurity,
    keys: &Keys,
    allowed: &[String],
) -> Map<String, Value> {
    let mut session = Map::new();
    let Some(cookie) = request.cookie(name) else {
        return session;
    };
    let mut jar = CookieJar::new();
    jar.add_original(cookie.into_owned());
    let value = match security {
        SessionCookieSecurity::Private => jar.private(keys.key()).get(name),
        SessionCookieSecurity::Signed => jar.signed(keys.key()).get(name),
    }
    .map(|c| c.value().to_string());
    let Some(value) = value else {
        tracing::debug!(cookie = name, "session cookie does not verify; ignored");
        return session;
    };
    let Ok(state) = serde_json::from_str::<HashMap<String, String>>(&value) else {
        tracing::debug!(
            cookie = name,
            "session cookie is not a session-state map; ignored"
        );
        return session;
    };
    for key in allowed {
        if let Some(encoded) = state.get(key) {
            let value = serde_json::from_str(encoded).unwrap_or(Value::String(encoded.clone()));
            session.insert(key.clone(), value);
        }
    }
    session
}
