//! Development warnings for calls that silently do nothing: a live counter of a topic the
//! page is not on (it would stay frozen at its first value), a store value that changes the
//! page's presence key or meta (presence keeps what the page joined with until the next
//! load). In development (a debug build, or
//! `[commander] debug_errors`) each is logged once on the server (once per kind and name)
//! and told to the page, whose tether.js writes it once to the browser console.
//!
//! It must never change what the call does (a warning, never a refusal), never warn in a
//! release build without `debug_errors`, and never keep more than [`MAX_NAMES`] names.

use std::{
    collections::HashSet,
    sync::{Mutex, PoisonError},
};

use super::hub::Hub;

/// Most names remembered as already logged; past it, new names are not logged on the
/// server any more (the page is still told).
const MAX_NAMES: usize = 1024;

/// The names already logged, bounded.
#[derive(Default)]
pub(crate) struct DevWarnings {
    logged: Mutex<HashSet<String>>,
}

impl DevWarnings {
    /// Whether `key` is seen for the first time (and there is room to remember it).
    fn first(&self, key: String) -> bool {
        let mut logged = self.logged.lock().unwrap_or_else(PoisonError::into_inner);
        logged.len() < MAX_NAMES && logged.insert(key)
    }
}

impl Hub {
    /// Whether development warnings are on: a debug build of tether, or
    /// `[commander] debug_errors`.
    pub(crate) fn dev_warnings_on(&self) -> bool {
        cfg!(debug_assertions) || self.config.debug_errors
    }

    /// In development, `message` about `name` (of `kind`): logged once per kind and name,
    /// and returned for the page's console. `None` outside development.
    pub(crate) fn dev_warning(&self, kind: &str, name: &str, message: String) -> Option<String> {
        if !self.dev_warnings_on() {
            return None;
        }
        if self.dev_warned.first(format!("{kind}\n{name}")) {
            tracing::warn!("{message}");
        }
        Some(message)
    }

    /// The warnings of a join whose page shows live counters of `ignored` topics, which it
    /// is not on: they stay at their rendered value.
    pub(crate) fn ignored_counter_warnings<'a>(
        &self,
        ignored: impl Iterator<Item = &'a String>,
    ) -> Vec<String> {
        ignored
            .filter_map(|topic| {
                let shown = crate::text::for_log(topic);
                let message = format!(
                    "live counter of topic {shown:?} ignored: the page is not on that topic \
                     (broadcasting or subscribe), so it stays at its rendered value"
                );
                self.dev_warning("counter", topic, message)
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_name_is_logged_once_and_memory_is_bounded() {
        let warned = DevWarnings::default();
        assert!(warned.first("a".into()));
        assert!(!warned.first("a".into()));
        for n in 0..2 * MAX_NAMES {
            warned.first(n.to_string());
        }
        assert_eq!(warned.logged.lock().unwrap().len(), MAX_NAMES);
        assert!(
            !warned.first("new".into()),
            "full: not remembered, not logged"
        );
    }
}
