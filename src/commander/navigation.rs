//! Live navigation and URL state: the URL a page shows (path and query, from the join and
//! from every patch navigation), what [`Page::push_patch`] and [`PageHandle::push_navigate`]
//! send, the query read as parameters, and the client version check of a join (deploys
//! noticed).
//!
//! The URL is the browser's word, as a query string is: it is checked for shape (a local
//! path, bounded, no control characters) and handed to `Commander::handle_params`, never
//! trusted for anything the page token decides (the commander, the path of the page's
//! topics). It must never send a frame for another origin nor run a callback itself (the
//! page's task does, see `runtime`).
//!
//! [`Page::push_patch`]: super::Page::push_patch
//! [`PageHandle::push_navigate`]: super::PageHandle::push_navigate

use serde_json::json;

use super::{PageHandle, PatchError};

/// Longest URL (path and query) a page may show, in bytes.
pub const MAX_URL_BYTES: usize = 2048;

/// The tether.js version this server serves (the crate's version): a page whose tether.js
/// says it is older is refused with `outdated client` and reloads (docs/page-channel.md).
pub const CLIENT_VERSION: &str = env!("CARGO_PKG_VERSION");

/// Most patch navigations one callback may chain (a `handle_params` that patches again):
/// beyond it the URL still changes but `handle_params` is not run again (logged).
pub(crate) const MAX_CHAINED_PATCHES: usize = 8;

/// `url` when it is a local URL a page may show: a path from the root (`/…`, not `//…`
/// nor `/\…`, which browsers read as another host), at most [`MAX_URL_BYTES`], without
/// whitespace or control characters. A fragment (`#…`) is dropped: it never reaches a server.
///
/// ```
/// use tether::commander::local_url;
/// assert_eq!(local_url("/notes?q=milk#top"), Some("/notes?q=milk"));
/// assert_eq!(local_url("//evil.example/x"), None);
/// assert_eq!(local_url("https://evil.example/"), None);
/// assert_eq!(local_url("/a b"), None);
/// ```
pub fn local_url(url: &str) -> Option<&str> {
    let url = url.split('#').next().unwrap_or_default();
    let local = url.starts_with('/')
        && !url.starts_with("//")
        && !url.starts_with("/\\")
        && url.len() <= MAX_URL_BYTES
        && !url.chars().any(|c| c.is_control() || c.is_whitespace());
    local.then_some(url)
}

/// The query parameters of a URL, decoded, in order (a key may repeat); none when the query
/// does not decode.
pub(crate) fn url_params(url: &str) -> Vec<(String, String)> {
    let Some((_, query)) = url.split_once('?') else {
        return Vec::new();
    };
    actix_web::web::Query::<Vec<(String, String)>>::from_query(query)
        .map(|q| q.into_inner())
        .unwrap_or_default()
}

/// Whether a client of `version` is older than this server's tether.js: both read as
/// dot-separated numbers (`0.1.0`); a version that does not read so is not older (an
/// unknown client is let in, as one that sends no version is).
pub(crate) fn client_is_older(version: &str) -> bool {
    fn numbers(version: &str) -> Option<Vec<u64>> {
        version
            .split('.')
            .map(|part| part.parse::<u64>().ok())
            .collect()
    }
    match (numbers(version), numbers(CLIENT_VERSION)) {
        (Some(client), Some(server)) => client < server,
        _ => false,
    }
}

/// What a navigation frame asks the browser to do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum NavKind {
    /// Same page, new URL: `history.pushState` (the server runs `handle_params` itself).
    Patch,
    /// Same page, new URL, replacing the current history entry.
    PatchReplace,
    /// Another page over the same socket: fetch, swap the body, join its channel.
    Navigate,
}

impl NavKind {
    fn wire(self) -> (&'static str, bool) {
        match self {
            NavKind::Patch => ("patch", false),
            NavKind::PatchReplace => ("patch", true),
            NavKind::Navigate => ("navigate", false),
        }
    }
}

/// Checks `url` and sends the page a `navigate` frame of `kind` to it; returns the local URL.
pub(crate) fn send(page: &PageHandle, kind: NavKind, url: &str) -> Result<String, PatchError> {
    let Some(url) = local_url(url) else {
        return Err(PatchError::UnsafeProp("url".to_string()));
    };
    let (kind, replace) = kind.wire();
    page.push(
        "navigate",
        &json!({ "kind": kind, "url": url, "replace": replace }),
    )?;
    Ok(url.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_local_urls_are_shown() {
        for good in ["/", "/notes", "/notes/3?q=a%20b&tag=x", "/n?q=é"] {
            assert_eq!(local_url(good), Some(good), "{good}");
        }
        assert_eq!(local_url("/n?q=1#frag"), Some("/n?q=1"));
        for bad in [
            "",
            "notes",
            "//evil.example",
            "/\\evil.example",
            "javascript:alert(1)",
            "https://evil.example/",
            "/a\nb",
            "/a b",
        ] {
            assert_eq!(local_url(bad), None, "{bad:?}");
        }
        let long = format!("/{}", "a".repeat(MAX_URL_BYTES));
        assert_eq!(local_url(&long), None);
    }

    #[test]
    fn params_are_the_decoded_query_in_order() {
        assert_eq!(
            url_params("/n?q=a%20b&tag=x&tag=y&empty="),
            vec![
                ("q".to_string(), "a b".to_string()),
                ("tag".to_string(), "x".to_string()),
                ("tag".to_string(), "y".to_string()),
                ("empty".to_string(), String::new()),
            ]
        );
        assert!(url_params("/n").is_empty());
    }

    #[test]
    fn a_client_is_older_only_by_its_numbers() {
        assert!(client_is_older("0.0.1"));
        assert!(!client_is_older(CLIENT_VERSION));
        assert!(!client_is_older("99.0.0"));
        assert!(!client_is_older("garbage"));
        assert!(!client_is_older(""));
    }

    #[test]
    fn the_bundled_tether_js_says_the_crate_version() {
        let module = include_str!("../../assets/src/version.mjs");
        assert!(
            module.contains(&format!("export const VERSION = \"{CLIENT_VERSION}\";")),
            "assets/src/version.mjs must say {CLIENT_VERSION} (the crate's version)"
        );
    }
}
