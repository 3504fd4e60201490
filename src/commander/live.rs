//! Live regions (Drab.Live's `poke` and `peek` on askama): a region of a page rendered from
//! typed assigns that the server remembers, so a handler can change the assigns and have the
//! region re-rendered and morphed in place.
//!
//! The page keeps each region's assigns as an encrypted token, bound to its commander, region
//! name and **page load** (the `load` number of the page token, drawn at render; made when the
//! page is rendered, renewed by every `poke`) and sends it back on every join, so a reconnect
//! — also to another node — restores them. A token of a [broadcast](super::Target::put_live)
//! is bound to its topic instead (every page on it got the same one). A join refuses (logged,
//! and reported in the reply's `live_rejected`) a tampered token, one of another commander,
//! region or page load (another tab, another browser), one of a topic the page is not on, one
//! older than `[commander] page_token_max_age_s`, and one over `[commander] max_live_bytes`;
//! the region then has no assigns until the next `put_live`, and shows what it was rendered
//! with.
//!
//! What a join cannot tell: within one page load (and one topic, for broadcast tokens), the
//! browser can send back an **older** token of the region than its latest, rolling the
//! assigns back to an earlier state of that same page. [`Page::peek`] is what that page's
//! browser last sent back: never trust it for anything the browser must not choose (a price,
//! a quota): keep those on the server.
//!
//! It must never send anything itself except through the page it is given.

use serde::{Deserialize, Serialize, de::DeserializeOwned};
use serde_json::{Map, Value, json};

use super::{Html, Page, Patch, PatchError, hub::Hub, token::unix_now};

/// Assigns of a live region: an askama template that is also (de)serializable. Implemented
/// for every such type.
///
/// ```
/// #[derive(askama::Template, serde::Serialize, serde::Deserialize)]
/// #[template(source = "{{ count }} in the cart", ext = "html")]
/// struct Cart { count: u32 }
/// fn is_live<T: tether::commander::LiveTemplate>() {}
/// is_live::<Cart>();
/// ```
pub trait LiveTemplate: askama::Template + Serialize + DeserializeOwned + 'static {}

impl<T: askama::Template + Serialize + DeserializeOwned + 'static> LiveTemplate for T {}

/// Why a live region could not be read, rendered or changed.
#[derive(Debug, thiserror::Error)]
pub enum LiveError {
    /// The page has no assigns for this region (never rendered with them, or its token was
    /// refused).
    #[error("no live region `{0}` on this page")]
    Unknown(String),
    /// The kept assigns are not of the type asked for.
    #[error("live region `{name}` holds other assigns: {reason}")]
    Type {
        /// The region.
        name: String,
        /// What did not fit.
        reason: String,
    },
    /// The template failed to render.
    #[error("live region `{name}` failed to render: {reason}")]
    Render {
        /// The region.
        name: String,
        /// The template's error.
        reason: String,
    },
    /// The encrypted assigns would exceed `[commander] max_live_bytes`; nothing changed.
    #[error("live region `{name}` too large ({size} bytes encrypted, at most {max})")]
    TooLarge {
        /// The region.
        name: String,
        /// The encrypted size.
        size: usize,
        /// The limit.
        max: usize,
    },
    /// The page is gone, or the patch was refused.
    #[error(transparent)]
    Patch(#[from] PatchError),
}

/// What a live token holds: the region's assigns, bound to a commander, a region name, and
/// a page load or a topic.
#[derive(Debug, Deserialize)]
struct LiveClaims {
    /// Commander.
    #[serde(rename = "c")]
    commander: String,
    /// Region name.
    #[serde(rename = "n")]
    name: String,
    /// Assigns.
    #[serde(rename = "a")]
    assigns: Value,
    /// The page load it was made for (`PageClaims::load`); 0 for a broadcast.
    #[serde(rename = "l", default)]
    load: u64,
    /// The topic it was broadcast to (`Target::put_live`).
    #[serde(rename = "t", default, skip_serializing_if = "Option::is_none")]
    topic: Option<String>,
}

/// Whom a live token is for: one page load, or every page on a topic.
#[derive(Debug, Clone, Copy)]
pub(crate) enum LiveFor<'a> {
    Load(u64),
    Topic(&'a str),
}

/// A live region rendered by a controller: its markup (put it inside the element marked
/// `tether-live="<name>"`) and its assigns (hand it to
/// [`PageOptions::live`](super::PageOptions::live), which puts them in the page's token for
/// this page load).
#[derive(Debug, Clone)]
pub struct LiveRegion {
    pub(crate) name: String,
    pub(crate) commander: String,
    pub(crate) assigns: Value,
    html: Html,
}

impl LiveRegion {
    /// The region's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The rendered markup.
    pub fn html(&self) -> &Html {
        &self.html
    }
}

/// The selector of live region `name`.
pub(crate) fn selector(name: &str) -> String {
    super::patch::attr_selector("tether-live", name)
}

/// A live region rendered from its assigns: the markup, the assigns as kept, the token.
pub(crate) struct Rendered {
    pub(crate) html: Html,
    pub(crate) value: Value,
    pub(crate) token: String,
}

impl Hub {
    /// The token a page keeps for region `name` of `commander` with `assigns`, for `whom`.
    pub(crate) fn live_token(
        &self,
        commander: &str,
        name: &str,
        assigns: &Value,
        whom: LiveFor<'_>,
    ) -> String {
        #[derive(Serialize)]
        struct Claims<'a> {
            #[serde(rename = "c")]
            commander: &'a str,
            #[serde(rename = "n")]
            name: &'a str,
            #[serde(rename = "a")]
            assigns: &'a Value,
            #[serde(rename = "l")]
            load: u64,
            #[serde(rename = "t", skip_serializing_if = "Option::is_none")]
            topic: Option<&'a str>,
        }
        let (load, topic) = match whom {
            LiveFor::Load(load) => (load, None),
            LiveFor::Topic(topic) => (0, Some(topic)),
        };
        let claims = Claims {
            commander,
            name,
            assigns,
            load,
            topic,
        };
        self.keys.encrypt("live", &claims, unix_now())
    }

    /// Renders region `name` of `commander` from `assigns`, and makes the token the page keeps
    /// for `whom` (refused when over `[commander] max_live_bytes`). Every way a region is
    /// rendered (by a controller, a poke, a broadcast) goes through here.
    pub(crate) fn render_live<T: LiveTemplate>(
        &self,
        commander: &str,
        name: &str,
        assigns: &T,
        whom: LiveFor<'_>,
    ) -> Result<Rendered, LiveError> {
        let html = Html::render(assigns).map_err(|err| LiveError::Render {
            name: name.to_string(),
            reason: err.to_string(),
        })?;
        let value = serde_json::to_value(assigns).map_err(|err| LiveError::Type {
            name: name.to_string(),
            reason: err.to_string(),
        })?;
        let token = self.live_token(commander, name, &value, whom);
        let max = self.config.max_live_bytes;
        if token.len() > max {
            return Err(LiveError::TooLarge {
                name: name.to_string(),
                size: token.len(),
                max,
            });
        }
        Ok(Rendered { html, value, token })
    }

    /// The regions a joining page of `commander` brought back: (assigns by name, names
    /// refused). Only tokens of this page `load`, or broadcast to one of its `topics`, and
    /// not older than a page token may be, are accepted. At most 32 regions are looked at.
    pub(crate) fn open_live(
        &self,
        commander: &str,
        tokens: &Map<String, Value>,
        load: u64,
        topics: &[String],
    ) -> (Map<String, Value>, Vec<String>) {
        let mut live = Map::new();
        let mut refused = Vec::new();
        let now = unix_now();
        let max_age = Some(self.config.page_token_max_age_s);
        let ours = |claims: &LiveClaims| match &claims.topic {
            Some(topic) => topics.contains(topic),
            None => load != 0 && claims.load == load,
        };
        for (name, token) in tokens.iter().take(32) {
            let opened = token
                .as_str()
                .filter(|token| token.len() <= self.config.max_live_bytes)
                .and_then(|token| {
                    self.keys
                        .decrypt::<LiveClaims>("live", token, now, max_age)
                        .ok()
                })
                .filter(|claims| claims.commander == commander && &claims.name == name)
                .filter(ours);
            match opened {
                Some(claims) => {
                    live.insert(name.clone(), claims.assigns);
                }
                None => {
                    tracing::warn!(commander, region = %crate::text::for_log(name), "live token refused");
                    refused.push(crate::text::for_log(name).to_string());
                }
            }
        }
        (live, refused)
    }
}

impl Hub {
    /// Renders live region `name` of `commander` for a controller (see [`Commanders::live`](super::Commanders::live)).
    pub(crate) fn live_region<T: LiveTemplate>(
        &self,
        commander: &str,
        name: &str,
        assigns: &T,
    ) -> Result<LiveRegion, LiveError> {
        // The page's token is made later, by the script tag (for its page load): checked here
        // for size with the largest load number.
        let whom = LiveFor::Load(u64::MAX);
        let Rendered { html, value, .. } = self.render_live(commander, name, assigns, whom)?;
        Ok(LiveRegion {
            name: name.to_string(),
            commander: commander.to_string(),
            assigns: value,
            html,
        })
    }
}

impl Page {
    /// The current assigns of live region `name` (no round trip: the server's copy).
    ///
    /// The server's copy comes from what the browser sent back when the page joined (then
    /// from this page's pokes and broadcasts): a token of this very page load (or broadcast
    /// to one of its topics), but possibly an older one than its latest. Treat it as the
    /// browser's word for anything beyond that (see the module docs).
    pub fn peek<T: LiveTemplate>(&self, name: &str) -> Result<T, LiveError> {
        let value = self
            .state
            .live_value(name)
            .ok_or_else(|| LiveError::Unknown(name.to_string()))?;
        T::deserialize(value).map_err(|err| LiveError::Type {
            name: name.to_string(),
            reason: err.to_string(),
        })
    }

    /// Changes the assigns of live region `name` with `change`, re-renders the region on
    /// the server and morphs it in the page (focus and typing survive); the page keeps the
    /// new assigns. Nothing changes if the region is unknown, does not render, or would
    /// exceed `[commander] max_live_bytes`.
    pub fn poke<T: LiveTemplate>(
        &mut self,
        name: &str,
        change: impl FnOnce(&mut T),
    ) -> Result<(), LiveError> {
        let mut assigns: T = self.peek(name)?;
        change(&mut assigns);
        self.put_live(name, &assigns)
    }

    /// Sets the assigns of live region `name` (known or not) and re-renders it.
    pub fn put_live<T: LiveTemplate>(&mut self, name: &str, assigns: &T) -> Result<(), LiveError> {
        let hub = self.handle.0.hub.clone();
        let whom = LiveFor::Load(self.state.load);
        let rendered = hub.render_live(self.handle.commander(), name, assigns, whom)?;
        self.apply(Patch::morph(&selector(name), rendered.html))?;
        self.handle
            .push("live", &json!({ "name": name, "token": rendered.token }))
            .map_err(PatchError::from)?;
        self.state.keep_live(name, rendered.value);
        self.follow_live();
        Ok(())
    }

    /// Drab.Live's `broadcast_poke`: changes live region `name` as [`Page::poke`] does, from
    /// this page's assigns, and sets it on **every** page on `topic` (this one included):
    /// rendered once, sent as one frame, and every page's server copy follows (see
    /// [`Target::put_live`](super::Target::put_live)); this page's copy at once.
    pub fn broadcast_poke<T: LiveTemplate>(
        &mut self,
        topic: &str,
        name: &str,
        change: impl FnOnce(&mut T),
    ) -> Result<(), LiveError> {
        let mut assigns: T = self.peek(name)?;
        change(&mut assigns);
        let commander = self.handle.commander();
        let value = self.to(topic).put_live(commander, name, &assigns)?;
        self.state.keep_live(name, value);
        Ok(())
    }
}
