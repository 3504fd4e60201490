//! The page socket: the route pages connect to (`[commander] socket_path`), carrying the page
//! channel, and its connect hook, which reads what the upgrade request says about the browser
//! (the session cookie, `User-Agent`, `Accept-Language`) into the connection's assigns.
//!
//! It must never keep anything of a request beyond those assigns.

use std::sync::Arc;

use serde_json::Value;

use super::{hub::Hub, page_channel::PageChannel, session};
use crate::{
    channel::{Assigns, Router, SocketRoute},
    config::IdSource,
};

/// The socket route of `hub`'s pages; its connect hook reads the session (the allowed keys
/// and the presence `session` keys), the `User-Agent` and the `Accept-Language`.
pub(crate) fn socket_route(hub: &Arc<Hub>) -> SocketRoute {
    let hub = hub.clone();
    let mut allowed = hub.config.session_keys.clone();
    for source in &hub.presence_id {
        if let IdSource::Session(key) = source {
            if !allowed.contains(key) {
                allowed.push(key.clone());
            }
        }
    }
    let router = Router::new().reserved_channel("tether:page:*", PageChannel::new(hub.clone()));
    let route = SocketRoute::new(&hub.config.socket_path, router)
        .max_frame_bytes(hub.config.max_frame_bytes);
    route.connect(move |info| {
        let session = session::read(
            info.request(),
            &hub.config.session_cookie,
            hub.config.session_cookie_security,
            &hub.keys,
            &allowed,
        );
        let mut assigns = Assigns::default();
        assigns.insert("session", Value::Object(session));
        let header = |name| {
            info.request()
                .headers()
                .get(name)
                .and_then(|v| v.to_str().ok())
                .map(|v| crate::text::truncate_utf8(v, 512).to_string())
                .unwrap_or_default()
        };
        assigns.insert("user_agent", header(actix_web::http::header::USER_AGENT));
        let languages = accept_language(&header(actix_web::http::header::ACCEPT_LANGUAGE));
        assigns.insert("languages", languages);
        Ok(assigns)
    })
}

/// The languages of an `Accept-Language` header, most preferred first (by `q`, then order);
/// at most 16.
fn accept_language(header: &str) -> Vec<String> {
    let mut weighted: Vec<(u16, usize, String)> = header
        .split(',')
        .take(16)
        .enumerate()
        .filter_map(|(at, part)| {
            let mut pieces = part.split(';');
            let tag = pieces.next()?.trim();
            if tag.is_empty() || tag == "*" {
                return None;
            }
            let q = pieces
                .find_map(|p| p.trim().strip_prefix("q="))
                .and_then(|q| q.parse::<f32>().ok())
                .unwrap_or(1.0);
            (q > 0.0).then(|| ((q.clamp(0.0, 1.0) * 1000.0) as u16, at, tag.to_string()))
        })
        .collect();
    weighted.sort_by(|a, b| b.0.cmp(&a.0).then(a.1.cmp(&b.1)));
    weighted.into_iter().map(|(_, _, tag)| tag).collect()
}

#[cfg(test)]
mod tests {
    #[test]
    fn languages_come_most_preferred_first() {
        assert_eq!(
            super::accept_language("fr;q=0.5, en-GB, de;q=0.8, *;q=0.1, x;q=0"),
            ["en-GB", "de", "fr"]
        );
        assert!(super::accept_language("").is_empty());
    }
}
