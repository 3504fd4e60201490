//! Live presence lists: an element in a template that shows who is on a topic, kept current
//! without any commander code (as live counters are), on the live-counter task's tick.
//!
//! Two forms:
//! - [`Commanders::presence_list`]: a `<ul>` with one `<li data-tether-key>` per key (its
//!   `.key` and its number of `.connections`), rendered by the server and morphed in place.
//! - [`Commanders::presence_list_with`]: the app's own fragment per entry (a `<template>`
//!   whose `data-field` elements get the entry's key, connections or meta fields), filled in
//!   by tether.js from entries the server sends. Only the meta fields the list names leave
//!   the server, always as text.
//!
//! It must never track anyone itself (presence does), and only pages on a topic may show its
//! list (a page asks in its join; topics it is not on are ignored).

use serde::Deserialize;
use serde_json::{Map, Value, json};

use super::{Commanders, Html, Patch, hub::Hub};
use crate::{presence::Presences, transport::frame::encode_broadcast};

/// Most meta fields one list may show.
pub const MAX_LIST_FIELDS: usize = 8;

/// Which list a page shows: a topic, and the meta fields of its entries (none for the
/// server-rendered form). In a join: `"topic"` or `{"topic": …, "fields": […]}`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(untagged)]
pub(crate) enum ListSpec {
    Plain(String),
    Fields { topic: String, fields: Vec<String> },
}

impl ListSpec {
    pub(crate) fn topic(&self) -> &str {
        match self {
            ListSpec::Plain(topic) | ListSpec::Fields { topic, .. } => topic,
        }
    }

    /// The key the live-counter task watches it under: the topic for the server-rendered
    /// form, `<fields>\n<topic>` for a templated one (fields are names without a newline, so
    /// the split is unambiguous); `None` for invalid fields or a topic with a newline.
    pub(crate) fn watch_key(&self) -> Option<String> {
        if self.topic().contains('\n') {
            return None;
        }
        match self {
            ListSpec::Plain(topic) => Some(topic.clone()),
            ListSpec::Fields { topic, fields } => {
                let fields = checked_fields(fields.iter().map(String::as_str))?;
                Some(format!("{}\n{topic}", fields.join(",")))
            }
        }
    }
}

/// A watch key's fields (`""` for the server-rendered form) and topic.
fn split_watch_key(key: &str) -> (&str, &str) {
    key.split_once('\n').unwrap_or(("", key))
}

/// `fields` if every one is a plain name (1–32 of `[A-Za-z0-9_-]`) and there are at most
/// [`MAX_LIST_FIELDS`].
fn checked_fields<'a>(fields: impl Iterator<Item = &'a str>) -> Option<Vec<&'a str>> {
    let fields: Vec<&str> = fields.collect();
    let plain = |f: &&str| {
        (1..=32).contains(&f.len())
            && f.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
    };
    (fields.len() <= MAX_LIST_FIELDS && fields.iter().all(plain)).then_some(fields)
}

/// The items of a server-rendered list: one `<li data-tether-key>` per key, with its number
/// of connections, keys escaped.
fn render(presences: &Presences) -> Html {
    let mut html = String::new();
    for (key, metas) in &presences.0 {
        let key = Html::escape(key);
        html.push_str(&format!(
            r#"<li data-tether-key="{key}"><span class="key">{key}</span> <span class="connections">{}</span></li>"#,
            metas.len()
        ));
    }
    Html::trusted(html)
}

/// The entries of a templated list: key, connections, and the named fields of the key's
/// first meta (nothing else of the meta).
fn entries(presences: &Presences, fields: &[&str]) -> Value {
    let entries: Vec<Value> = presences
        .0
        .iter()
        .map(|(key, metas)| {
            let first = metas.first();
            let meta: Map<String, Value> = fields
                .iter()
                .filter_map(|f| Some((f.to_string(), first?.get(*f)?.clone())))
                .collect();
            json!({"key": key, "connections": metas.len(), "meta": meta})
        })
        .collect();
    Value::Array(entries)
}

/// The selector of `topic`'s server-rendered presence lists.
fn selector(topic: &str) -> String {
    super::patch::attr_selector("data-tether-presence", topic)
}

impl Commanders {
    /// A live presence list for a template: `<ul data-tether-presence=…>` with one
    /// `<li data-tether-key="<key>">` per presence key on `topic` (its `.key` and its number of
    /// `.connections`), kept current by the server without commander code (at most every
    /// `[commander] counter_interval_ms`, only when it changed), morphed in place. The page
    /// must be on `topic`.
    pub fn presence_list(&self, topic: &str) -> Html {
        self.hub.warn_if_untracked("a presence list");
        let items = render(&self.list(topic));
        Html::trusted(format!(
            r#"<ul data-tether-presence="{}">{items}</ul>"#,
            Html::escape(topic)
        ))
    }

    /// A live presence list drawn with the app's own fragment per entry: `item` is markup
    /// whose elements with `data-field="<name>"` show, as text, the entry's `key`, its number
    /// of `connections`, or the field `<name>` of its meta — only the `fields` named here
    /// leave the server (at most [`MAX_LIST_FIELDS`] plain names). tether.js keeps it current
    /// on the counters' tick, without commander code; the page must be on `topic`. Entries
    /// are in key order, one per key (`data-tether-key` on each).
    ///
    /// ```
    /// # use tether::commander::{Commanders, Html};
    /// # fn f(commanders: &Commanders) {
    /// // Put the name in the meta with `Commander::presence`, then:
    /// let readers = commanders.presence_list_with(
    ///     "tether:topic:article-1",
    ///     &["name"],
    ///     Html::trusted(r#"<li><b data-field="name"></b> (<span data-field="connections"></span> tabs)</li>"#),
    /// );
    /// assert!(readers.as_str().starts_with("<ul data-tether-presence="));
    /// # }
    /// ```
    pub fn presence_list_with(&self, topic: &str, fields: &[&str], item: Html) -> Html {
        self.hub.warn_if_untracked("a presence list");
        let fields = checked_fields(fields.iter().copied()).unwrap_or_else(|| {
            tracing::warn!(
                ?fields,
                "presence list fields must be at most {MAX_LIST_FIELDS} plain names: showing none"
            );
            Vec::new()
        });
        let first = entries(&self.list(topic), &fields);
        Html::trusted(format!(
            r#"<ul data-tether-presence="{}" data-tether-fields="{}" data-tether-entries="{}"><template>{}</template></ul>"#,
            Html::escape(topic),
            Html::escape(&fields.join(",")),
            Html::escape(&first.to_string()),
            item.as_str()
        ))
    }

    /// Everyone on `topic` (key → metas), as presence tracks them now; empty when pages
    /// are not tracked.
    pub fn list(&self, topic: &str) -> Presences {
        self.hub
            .presence
            .as_ref()
            .map(|presence| presence.list(topic))
            .unwrap_or_default()
    }
}

impl Hub {
    /// The topic a page showing the list watched under `key` ([`ListSpec::watch_key`])
    /// subscribes to.
    pub(crate) fn presence_list_topic(key: &str) -> String {
        format!("tether:plist:{key}")
    }

    /// Registers interest in a list (a page showing it joined).
    pub(crate) fn watch_presence_list(&self, key: &str) {
        super::counters::watch(&self.presence_lists, key);
    }

    /// Sends every watched list that changed to this node's pages showing it (a morph of
    /// the server-rendered form, entries for a templated one); forgets lists nobody shows.
    pub(crate) fn send_presence_lists(&self) {
        let Some(presence) = &self.presence else {
            return;
        };
        self.refresh(
            &self.presence_lists,
            Hub::presence_list_topic,
            |key| {
                let (fields, topic) = split_watch_key(key);
                let presences = presence.list(topic);
                if fields.is_empty() {
                    Value::String(render(&presences).as_str().to_string())
                } else {
                    entries(&presences, &fields.split(',').collect::<Vec<_>>())
                }
            },
            |key, channel, now| {
                let (fields, topic) = split_watch_key(key);
                match now {
                    Value::String(html) => {
                        let patch = Patch::morph(&selector(topic), Html::trusted(html.clone()));
                        encode_broadcast(channel, "patch", &patch)
                    }
                    entries => encode_broadcast(
                        channel,
                        "presence_list",
                        &json!({"topic": topic, "fields": fields, "entries": entries}),
                    ),
                }
            },
        );
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;

    #[test]
    fn keys_are_escaped_and_the_selector_quoted() {
        let mut presences = BTreeMap::new();
        presences.insert("<b>x</b>".to_string(), vec![]);
        let html = render(&Presences(presences));
        assert!(!html.as_str().contains("<b>"), "{}", html.as_str());
        assert_eq!(selector(r#"a"b\c"#), r#"[data-tether-presence="a\"b\\c"]"#);
    }

    #[test]
    fn entries_carry_only_the_named_fields_of_the_first_meta() {
        let mut presences = BTreeMap::new();
        let meta = |name: &str| {
            let mut m = crate::presence::Meta::new();
            m.insert("name".into(), json!(name));
            m.insert("email".into(), json!("secret@example.com"));
            m
        };
        presences.insert("u1".to_string(), vec![meta("Ann"), meta("Ann 2")]);
        let shown = entries(&Presences(presences), &["name"]);
        assert_eq!(
            shown,
            json!([{"key": "u1", "connections": 2, "meta": {"name": "Ann"}}])
        );
        assert!(!shown.to_string().contains("secret"));
    }

    #[test]
    fn list_fields_must_be_few_plain_names() {
        let spec = |fields: &[&str]| ListSpec::Fields {
            topic: "t".into(),
            fields: fields.iter().map(|f| f.to_string()).collect(),
        };
        assert_eq!(
            spec(&["name", "avatar_url"]).watch_key().as_deref(),
            Some("name,avatar_url\nt")
        );
        assert_eq!(
            ListSpec::Plain("t".into()).watch_key().as_deref(),
            Some("t")
        );
        assert_eq!(ListSpec::Plain("a\nb".into()).watch_key(), None);
        assert_eq!(spec(&["a\nb"]).watch_key(), None);
        assert_eq!(spec(&["a,b"]).watch_key(), None);
        assert_eq!(spec(&[""]).watch_key(), None);
        assert_eq!(spec(&["f"; MAX_LIST_FIELDS + 1]).watch_key(), None);
    }
}
