//! Live presence lists: an element in a template that shows who is on a topic, kept current
//! without any commander code (as live counters are), on the live-counter task's tick.
//!
//! Two forms:
//! - [`Commanders::presence_list`](super::Commanders::presence_list): a `<ul>` with one `<li data-tether-key>` per key (its
//!   `.key` and its number of `.connections`), rendered by the server and morphed in place.
//! - [`Commanders::presence_list_with`](super::Commanders::presence_list_with): the app's own fragment per entry (a `<template>`
//!   whose `data-field` elements get the entry's key, connections or meta fields), filled in
//!   by tether.js from entries the server sends. Only the meta fields the list names leave
//!   the server, always as text.
//!
//! What a list shows is decided by the server only: the rendered element carries a signed
//! spec (`data-tether-list`: topic, fields, key form), and a page's join names the lists it
//! shows by those tokens; anything else is ignored. A list's token is not bound to one page:
//! whoever has the markup of a page showing a list can show that list on any page on its
//! topic (for a day, `[commander] page_token_max_age_s`), so render a list of private fields
//! only where everyone on its topic may see them. Presence keys are public to every page
//! showing a list, unless the list shows them hashed ([`ListKeys::Hashed`]).
//!
//! Each tick lists each watched topic once, whatever the number of lists of it, and one
//! node keeps at most `[commander] max_presence_lists` lists current.
//!
//! It must never track anyone itself (presence does), and only pages on a topic may show its
//! list (topics it is not on are ignored).

use std::collections::HashMap;

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};

use super::{Html, Patch, hub::Hub, token::unix_now};
use crate::{presence::Presences, transport::frame::encode_broadcast};

/// Most meta fields one list may show.
pub const MAX_LIST_FIELDS: usize = 8;

/// The purpose of a list's signed spec (see [`Keys::sign`](super::token::Keys::sign)).
const PURPOSE: &str = "plist";

/// What a presence list tells the browsers showing it of each entry's presence key.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum ListKeys {
    /// The key itself (a browser id, a user id): public to every page showing the list.
    #[default]
    Public,
    /// A stand-in of 16 hex digits (a keyed hash of the topic and the key): stable while the
    /// key stays on the topic, so entries stay keyed, but the key never leaves the server.
    Hashed,
}

/// Which list a page shows: a topic, the meta fields of its entries (`None` for the
/// server-rendered form) and how keys are shown. Signed by the server when it renders the
/// list ([`PURPOSE`]); a join names lists by these tokens only.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct ListSpec {
    #[serde(rename = "t")]
    topic: String,
    #[serde(rename = "f", default, skip_serializing_if = "Option::is_none")]
    fields: Option<Vec<String>>,
    /// Keys hashed ([`ListKeys::Hashed`]).
    #[serde(rename = "h", default, skip_serializing_if = "std::ops::Not::not")]
    hashed: bool,
}

impl ListSpec {
    pub(crate) fn topic(&self) -> &str {
        &self.topic
    }

    /// The key the live-counter task watches it under: the topic for the server-rendered
    /// form, `<fields>\n<topic>` for a templated one, `#<fields>\n<topic>` for one with hashed
    /// keys (fields are names without a newline or `#`, so the split is unambiguous); `None`
    /// for invalid fields or a topic with a newline.
    pub(crate) fn watch_key(&self) -> Option<String> {
        if self.topic.contains('\n') {
            return None;
        }
        match &self.fields {
            None => Some(self.topic.clone()),
            Some(fields) => {
                let fields = checked_fields(fields.iter().map(String::as_str))?;
                let hashed = if self.hashed { "#" } else { "" };
                Some(format!("{hashed}{}\n{}", fields.join(","), self.topic))
            }
        }
    }
}

/// What a watch key ([`ListSpec::watch_key`]) stands for.
struct Watched<'a> {
    topic: &'a str,
    /// `None` for the server-rendered form.
    fields: Option<Vec<&'a str>>,
    hashed: bool,
}

fn split_watch_key(key: &str) -> Watched<'_> {
    match key.split_once('\n') {
        None => Watched {
            topic: key,
            fields: None,
            hashed: false,
        },
        Some((fields, topic)) => {
            let (hashed, fields) = match fields.strip_prefix('#') {
                Some(fields) => (true, fields),
                None => (false, fields),
            };
            Watched {
                topic,
                fields: Some(fields.split(',').filter(|f| !f.is_empty()).collect()),
                hashed,
            }
        }
    }
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

/// The entries of a templated list: key (as `shown_key` shows it), connections, and the
/// named fields of the key's newest meta: the tab that joined or updated its meta last (metas
/// are in arrival order; nothing else of the meta).
fn entries(presences: &Presences, fields: &[&str], shown_key: impl Fn(&str) -> String) -> Value {
    let entries: Vec<Value> = presences
        .0
        .iter()
        .map(|(key, metas)| {
            let newest = metas.last();
            let meta: Map<String, Value> = fields
                .iter()
                .filter_map(|f| Some((f.to_string(), newest?.get(*f)?.clone())))
                .collect();
            json!({"key": shown_key(key), "connections": metas.len(), "meta": meta})
        })
        .collect();
    Value::Array(entries)
}

impl Hub {
    /// How a list of `topic` shows `key`: itself, or hashed.
    fn shown_key(&self, topic: &str, key: &str, hashed: bool) -> String {
        if hashed {
            self.keys.digest("plist-key", &[topic, key])
        } else {
            key.to_string()
        }
    }

    /// The spec of a list a page names in its join, if the server signed it (and not longer
    /// ago than a page token may be).
    pub(crate) fn open_list_spec(&self, token: &Value, now: u64) -> Option<ListSpec> {
        let token = token.as_str()?;
        let max_age = Some(self.config.page_token_max_age_s);
        self.keys.verify(PURPOSE, token, now, max_age).ok()
    }

    fn sign_list_spec(&self, spec: &ListSpec) -> String {
        self.keys.sign(PURPOSE, spec, unix_now())
    }
}

/// The selector of `topic`'s server-rendered presence lists.
fn selector(topic: &str) -> String {
    super::patch::attr_selector("data-tether-presence", topic)
}

impl Hub {
    /// The server-rendered presence list of `topic` (see
    /// [`Commanders::presence_list`](super::Commanders::presence_list)).
    pub(crate) fn presence_list(&self, topic: &str) -> Html {
        self.warn_if_untracked("a presence list");
        let items = render(&self.list(topic));
        let spec = ListSpec {
            topic: topic.to_string(),
            fields: None,
            hashed: false,
        };
        Html::trusted(format!(
            r#"<ul data-tether-presence="{}" data-tether-list="{}">{items}</ul>"#,
            Html::escape(topic),
            Html::escape(&self.sign_list_spec(&spec)),
        ))
    }

    /// A presence list of `topic` drawn with `item`, showing `fields` of each entry's meta
    /// and its key, hashed or not (see
    /// [`Commanders::presence_list_with_keys`](super::Commanders::presence_list_with_keys)).
    pub(crate) fn templated_list(
        &self,
        topic: &str,
        item: Html,
        fields: &[&str],
        hashed: bool,
    ) -> Html {
        self.warn_if_untracked("a presence list");
        let fields = checked_fields(fields.iter().copied()).unwrap_or_else(|| {
            tracing::warn!(
                ?fields,
                "presence list fields must be at most {MAX_LIST_FIELDS} plain names: showing none"
            );
            Vec::new()
        });
        let shown_key = |key: &str| self.shown_key(topic, key, hashed);
        let first = entries(&self.list(topic), &fields, shown_key);
        let spec = ListSpec {
            topic: topic.to_string(),
            fields: Some(fields.iter().map(|f| f.to_string()).collect()),
            hashed,
        };
        let keys_attr = if hashed {
            r#" data-tether-keys="hashed""#
        } else {
            ""
        };
        Html::trusted(format!(
            r#"<ul data-tether-presence="{}" data-tether-fields="{}"{keys_attr} data-tether-list="{}" data-tether-entries="{}"><template>{}</template></ul>"#,
            Html::escape(topic),
            Html::escape(&fields.join(",")),
            Html::escape(&self.sign_list_spec(&spec)),
            Html::escape(&first.to_string()),
            item.as_str()
        ))
    }

    /// Everyone on `topic` (key → metas), as presence tracks them now; empty when pages
    /// are not tracked.
    pub(crate) fn list(&self, topic: &str) -> Presences {
        self.presence
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

    /// Registers interest in a list (a page showing it joined). `false` (logged, at most
    /// once per 10 s) when this node already keeps `[commander] max_presence_lists` other
    /// lists current: the page does not get this one.
    pub(crate) fn watch_presence_list(&self, key: &str) -> bool {
        let max = self.config.max_presence_lists;
        let watched = super::counters::watch_at_most(&self.presence_lists, key, max);
        if !watched {
            self.refused_lists.count(|total| {
                tracing::warn!(
                    total,
                    max,
                    "a presence list was refused: this node keeps [commander] max_presence_lists lists current"
                );
            });
        }
        watched
    }

    /// Sends every watched list that changed to this node's pages showing it (a morph of
    /// the server-rendered form, entries for a templated one); forgets lists nobody shows.
    pub(crate) fn send_presence_lists(&self) {
        let Some(presence) = &self.presence else {
            return;
        };
        self.refresh_presence_lists(|topic| presence.list(topic));
    }

    /// [`Hub::send_presence_lists`] with `list` reading a topic's presences: called once per
    /// topic per pass, however many lists of that topic are watched.
    fn refresh_presence_lists(&self, mut list: impl FnMut(&str) -> Presences) {
        let mut listed: HashMap<String, Presences> = HashMap::new();
        self.refresh(
            &self.presence_lists,
            Hub::presence_list_topic,
            |key| {
                let watched = split_watch_key(key);
                let presences = listed
                    .entry(watched.topic.to_string())
                    .or_insert_with(|| list(watched.topic));
                match watched.fields {
                    None => Value::String(render(presences).as_str().to_string()),
                    Some(fields) => {
                        let shown_key = |k: &str| self.shown_key(watched.topic, k, watched.hashed);
                        entries(presences, &fields, shown_key)
                    }
                }
            },
            |key, channel, now| {
                let watched = split_watch_key(key);
                match now {
                    Value::String(html) => {
                        let patch =
                            Patch::morph(&selector(watched.topic), Html::trusted(html.clone()));
                        encode_broadcast(channel, "patch", &patch)
                    }
                    entries => {
                        let fields = watched.fields.unwrap_or_default().join(",");
                        let mut payload =
                            json!({"topic": watched.topic, "fields": fields, "entries": entries});
                        if watched.hashed {
                            payload["keys"] = json!("hashed");
                        }
                        encode_broadcast(channel, "presence_list", &payload)
                    }
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
    fn entries_carry_only_the_named_fields_of_the_newest_meta() {
        let mut presences = BTreeMap::new();
        let meta = |name: &str| {
            let mut m = crate::presence::Meta::new();
            m.insert("name".into(), json!(name));
            m.insert("email".into(), json!("secret@example.com"));
            m
        };
        presences.insert("u1".to_string(), vec![meta("Ann"), meta("Ann 2")]);
        let shown = entries(&Presences(presences), &["name"], str::to_string);
        assert_eq!(
            shown,
            json!([{"key": "u1", "connections": 2, "meta": {"name": "Ann 2"}}])
        );
        assert!(!shown.to_string().contains("secret"));
    }

    fn spec(fields: Option<&[&str]>, hashed: bool) -> ListSpec {
        ListSpec {
            topic: "t".into(),
            fields: fields.map(|f| f.iter().map(|f| f.to_string()).collect()),
            hashed,
        }
    }

    #[test]
    fn list_fields_must_be_few_plain_names() {
        let fields = |f: &[&str]| spec(Some(f), false);
        assert_eq!(
            fields(&["name", "avatar_url"]).watch_key().as_deref(),
            Some("name,avatar_url\nt")
        );
        assert_eq!(spec(None, false).watch_key().as_deref(), Some("t"));
        let newline = ListSpec {
            topic: "a\nb".into(),
            ..spec(None, false)
        };
        assert_eq!(newline.watch_key(), None);
        assert_eq!(fields(&["a\nb"]).watch_key(), None);
        assert_eq!(fields(&["a,b"]).watch_key(), None);
        assert_eq!(fields(&["#a"]).watch_key(), None);
        assert_eq!(fields(&[""]).watch_key(), None);
        assert_eq!(fields(&["f"; MAX_LIST_FIELDS + 1]).watch_key(), None);
    }

    #[test]
    fn watch_keys_split_back_into_their_spec() {
        for spec in [
            spec(None, false),
            spec(Some(&[]), false),
            spec(Some(&["name", "avatar"]), false),
            spec(Some(&["name"]), true),
        ] {
            let key = spec.watch_key().unwrap();
            let watched = split_watch_key(&key);
            assert_eq!(watched.topic, spec.topic);
            let fields = watched
                .fields
                .map(|f| f.iter().map(|f| f.to_string()).collect::<Vec<_>>());
            assert_eq!(fields, spec.fields, "{key:?}");
            assert_eq!(watched.hashed, spec.hashed, "{key:?}");
        }
    }

    /// Pages on one node showing many lists of one topic (different fields): each pass of
    /// the live-counter task lists the topic once.
    #[test]
    fn many_lists_of_a_topic_list_it_once_per_pass() {
        use crate::pubsub::{Subscriber, SubscriberId};
        struct Page;
        impl Subscriber for Page {
            fn deliver(&self, _: &bytes::Bytes) {}
        }
        let endpoint = crate::Endpoint::builder(crate::Config::from_toml_str("").unwrap())
            .and_then(|builder| builder.build())
            .unwrap();
        let hub = &endpoint.commanders().hub;
        let field_sets = [
            "a", "b", "c", "d", "e", "f", "g", "h", "i", "j", "k", "l", "m", "n", "o", "p",
        ];
        for topic in ["t1", "t2"] {
            let mut specs = vec![ListSpec {
                topic: topic.into(),
                fields: None,
                hashed: false,
            }];
            for (at, field) in field_sets.iter().enumerate() {
                specs.push(ListSpec {
                    topic: topic.into(),
                    fields: Some(vec![field.to_string()]),
                    hashed: at % 2 == 0,
                });
            }
            for spec in specs {
                let key = spec.watch_key().unwrap();
                assert!(hub.watch_presence_list(&key));
                let channel = Hub::presence_list_topic(&key);
                hub.pubsub
                    .subscribe(&channel, SubscriberId::next(), std::sync::Arc::new(Page));
            }
        }
        for _ in 0..3 {
            let mut listed: BTreeMap<String, usize> = BTreeMap::new();
            hub.refresh_presence_lists(|topic| {
                *listed.entry(topic.to_string()).or_default() += 1;
                Presences::default()
            });
            assert_eq!(
                listed,
                BTreeMap::from([("t1".to_string(), 1), ("t2".to_string(), 1)]),
                "34 lists of 2 topics: 2 listings a pass"
            );
        }
    }

    #[test]
    fn a_node_keeps_at_most_max_presence_lists() {
        let mut config = crate::Config::from_toml_str("").unwrap();
        config.commander.max_presence_lists = 2;
        let endpoint = crate::Endpoint::builder(config)
            .and_then(|builder| builder.build())
            .unwrap();
        let hub = &endpoint.commanders().hub;
        assert!(hub.watch_presence_list("a"));
        assert!(hub.watch_presence_list("b"));
        assert!(hub.watch_presence_list("a"), "a list already kept is shown");
        assert!(!hub.watch_presence_list("c"), "a third is refused");
        assert_eq!(hub.refused_lists.total(), 1);
    }
}
