//! Live presence lists: a `<ul>` in a template that shows who is on a topic, kept current by
//! the server without any commander code (as live counters are). The live-counter task
//! renders each watched topic's list once per change and morphs it into every page on this
//! node that shows it.
//!
//! It must never track anyone itself (presence does), and only pages on a topic may show its
//! list (a page asks in its join; topics it is not on are ignored).

use super::{Commanders, Html, Patch, hub::Hub};
use crate::{presence::Presences, transport::frame::encode_broadcast};

/// The items of a presence list: one `<li data-tether-key>` per key, with its number of
/// connections, keys escaped.
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

/// The selector of `topic`'s presence lists.
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
        let items = self
            .hub
            .presence
            .as_ref()
            .map(|presence| render(&presence.list(topic)))
            .unwrap_or_else(|| Html::trusted(""));
        Html::trusted(format!(
            r#"<ul data-tether-presence="{}">{items}</ul>"#,
            Html::escape(topic)
        ))
    }
}

impl Hub {
    /// The topic a page showing `topic`'s presence list subscribes to.
    pub(crate) fn presence_list_topic(topic: &str) -> String {
        format!("tether:plist:{topic}")
    }

    /// Registers interest in `topic`'s presence list (a page showing it joined).
    pub(crate) fn watch_presence_list(&self, topic: &str) {
        super::counters::watch(&self.presence_lists, topic);
    }

    /// Renders every watched list that changed and sends it to this node's pages showing it;
    /// forgets lists nobody shows any more.
    pub(crate) fn send_presence_lists(&self) {
        let Some(presence) = &self.presence else {
            return;
        };
        self.refresh(
            &self.presence_lists,
            Hub::presence_list_topic,
            |topic| render(&presence.list(topic)),
            |topic, channel, html| {
                let patch = Patch::morph(&selector(topic), html.clone());
                encode_broadcast(channel, "patch", &patch)
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
}
