//! Live regions (Drab.Live's `poke` and `peek` on askama): a region of a page rendered from
//! typed assigns that the server remembers, so a handler can change the assigns and have the
//! region re-rendered and morphed in place.
//!
//! The page keeps each region's assigns as an encrypted token, bound to its commander and
//! region name (made at render time by [`Commanders::live`], renewed by every `poke`) and
//! sends it back on every join, so a reconnect — also to another node — restores them. A
//! tampered token, one of another commander or region, or one over
//! `[commander] max_live_bytes` is refused (logged, and reported in the join reply's
//! `live_rejected`); the region then has no assigns until the next `put_live`.
//!
//! It must never send anything itself except through the page it is given.

use serde::{Deserialize, Serialize, de::DeserializeOwned};
use serde_json::{Map, Value, json};

use super::{
    Commanders, Html, Page, PatchError,
    hub::Hub,
    runtime::{Feed, LiveUpdate},
    token::unix_now,
};
use crate::transport::frame::encode_broadcast;

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

/// What a live token holds: the region's assigns, bound to a commander and a region name.
#[derive(Debug, Serialize, Deserialize)]
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
}

/// A live region rendered by a controller: its markup (put it inside the element marked
/// `tether-live="<name>"`) and its token (hand it to [`PageOptions::live`](super::PageOptions::live)).
#[derive(Debug, Clone)]
pub struct LiveRegion {
    pub(crate) name: String,
    pub(crate) token: String,
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
fn selector(name: &str) -> String {
    super::patch::attr_selector("tether-live", name)
}

/// A live region rendered from its assigns: the markup, the assigns as kept, the token.
struct Rendered {
    html: Html,
    value: Value,
    token: String,
}

impl Hub {
    /// Renders region `name` of `commander` from `assigns`, and makes the token the page keeps
    /// (refused when over `[commander] max_live_bytes`). Every way a region is rendered (by a
    /// controller, a poke, a broadcast) goes through here.
    fn render_live<T: LiveTemplate>(
        &self,
        commander: &str,
        name: &str,
        assigns: &T,
    ) -> Result<Rendered, LiveError> {
        let html = Html::render(assigns).map_err(|err| LiveError::Render {
            name: name.to_string(),
            reason: err.to_string(),
        })?;
        let value = serde_json::to_value(assigns).map_err(|err| LiveError::Type {
            name: name.to_string(),
            reason: err.to_string(),
        })?;
        let claims = LiveClaims {
            commander: commander.to_string(),
            name: name.to_string(),
            assigns: value,
        };
        let token = self.keys.encrypt("live", &claims, unix_now());
        let max = self.config.max_live_bytes;
        if token.len() > max {
            return Err(LiveError::TooLarge {
                name: name.to_string(),
                size: token.len(),
                max,
            });
        }
        Ok(Rendered {
            html,
            value: claims.assigns,
            token,
        })
    }

    /// The regions a joining page of `commander` brought back: (assigns by name, names
    /// refused). At most 32 regions are looked at.
    pub(crate) fn open_live(
        &self,
        commander: &str,
        tokens: &Map<String, Value>,
    ) -> (Map<String, Value>, Vec<String>) {
        let mut live = Map::new();
        let mut refused = Vec::new();
        let now = unix_now();
        for (name, token) in tokens.iter().take(32) {
            let opened = token
                .as_str()
                .filter(|token| token.len() <= self.config.max_live_bytes)
                .and_then(|token| {
                    self.keys
                        .decrypt::<LiveClaims>("live", token, now, None)
                        .ok()
                })
                .filter(|claims| claims.commander == commander && &claims.name == name);
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

impl Commanders {
    /// Renders live region `name` of a page of `commander` with `assigns`, for the
    /// controller: the markup, and the token the page keeps.
    ///
    /// ```
    /// # use tether::commander::{Commanders, PageOptions};
    /// #[derive(askama::Template, serde::Serialize, serde::Deserialize)]
    /// #[template(source = "{{ count }} in the cart", ext = "html")]
    /// struct Cart { count: u32 }
    /// # fn f(commanders: &Commanders, req: &actix_web::HttpRequest) -> Result<(), Box<dyn std::error::Error>> {
    /// let cart = commanders.live("shop", "cart", &Cart { count: 0 })?;
    /// // In the page: <span tether-live="cart">{{ cart_html }}</span> … {{ script }}
    /// let cart_html = cart.html().clone();
    /// let script = commanders.script_with("shop", req, &PageOptions::new().live(&cart));
    /// # let _ = (cart_html, script); Ok(()) }
    /// ```
    pub fn live<T: LiveTemplate>(
        &self,
        commander: &str,
        name: &str,
        assigns: &T,
    ) -> Result<LiveRegion, LiveError> {
        let Rendered { html, token, .. } = self.hub.render_live(commander, name, assigns)?;
        Ok(LiveRegion {
            name: name.to_string(),
            token,
            html,
        })
    }
}

impl Page {
    /// The current assigns of live region `name` (no round trip: the server's copy).
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
        let rendered = hub.render_live(self.handle.commander(), name, assigns)?;
        self.morph(&selector(name), rendered.html)?;
        self.handle
            .push("live", &json!({ "name": name, "token": rendered.token }))
            .map_err(PatchError::from)?;
        self.state.keep_live(name, rendered.value);
        self.follow_live();
        Ok(())
    }

    /// Changes live region `name` as [`Page::poke`] does, from this page's assigns, and sets
    /// it on **every** page on `topic` (this one included): rendered once, sent as one
    /// frame, and every page's server copy follows (see [`Commanders::broadcast_live`]).
    pub fn broadcast_poke<T: LiveTemplate>(
        &mut self,
        topic: &str,
        name: &str,
        change: impl FnOnce(&mut T),
    ) -> Result<(), LiveError> {
        let mut assigns: T = self.peek(name)?;
        change(&mut assigns);
        let commander = self.handle.commander().to_string();
        let value = self
            .commanders()
            .broadcast_live(topic, &commander, name, &assigns)?;
        self.state.keep_live(name, value);
        Ok(())
    }
}

impl Commanders {
    /// Sets live region `name` of `commander`'s pages on `topic` to `assigns`: rendered once
    /// and sent as one morph and one token to every page on the topic (on every node); each
    /// page's server copy follows shortly after (through its queue, so a `peek` in a handler
    /// that runs after the broadcast reached that page sees it). Returns the assigns as kept.
    pub fn broadcast_live<T: LiveTemplate>(
        &self,
        topic: &str,
        commander: &str,
        name: &str,
        assigns: &T,
    ) -> Result<Value, LiveError> {
        let Rendered { html, value, token } = self.hub.render_live(commander, name, assigns)?;
        let morph = super::Patch::morph(&selector(name), html);
        self.hub.check(&morph)?;
        // The pages' tasks first, then their browsers: every node delivers bus messages in
        // order, so by the time a browser has the new region its page's task has the update
        // queued, and a handler the browser triggers next sees it.
        let update = LiveUpdate {
            commander: commander.to_string(),
            name: name.to_string(),
            assigns: value.clone(),
        };
        let live_topic = Feed::Live.topic(topic);
        let frame = encode_broadcast(&live_topic, "live", &update);
        self.hub.pubsub.broadcast(&live_topic, frame, None);
        self.broadcast(topic, &morph)?;
        let frame = encode_broadcast(topic, "live", &json!({ "name": name, "token": token }));
        self.hub.pubsub.broadcast(topic, frame, None);
        Ok(value)
    }
}
