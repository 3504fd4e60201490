//! Where patches go beyond one page: [`Target`], every page on a topic (on every node), or
//! every page on it but one. Made by [`PageHandle::to`](super::PageHandle::to),
//! [`PageHandle::others`](super::PageHandle::others) and
//! [`Commanders::to`](super::Commanders::to); the patch itself is spelled once, by a
//! [`Patch`] constructor, whatever its target.
//!
//! A patch aimed at a topic is checked like any other (the hub's one check), encoded **once**
//! and handed to the pub/sub as shared bytes. Live regions set on a topic
//! ([`Target::put_live`]) are rendered once too.
//!
//! It must never hold on to a page: a target lives as long as the borrow it was made from.

use std::borrow::Borrow;

use serde_json::{Value, json};

use super::{
    Patch, PatchError,
    hub::Hub,
    live::{LiveError, LiveFor, LiveTemplate, Rendered},
    runtime::{Feed, LiveUpdate},
};
use crate::{pubsub::SubscriberId, transport::frame::encode_broadcast};

/// The pages on a topic, on every node: all of them ([`Commanders::to`](super::Commanders::to),
/// [`PageHandle::to`](super::PageHandle::to)) or all but one page
/// ([`PageHandle::others`](super::PageHandle::others)).
///
/// ```
/// # use tether::commander::{Page, Patch, PatchError, Position};
/// # fn f(page: &Page) -> Result<(), PatchError> {
/// page.apply(Patch::set("#status", "saved"))?; // this page
/// page.to("list:home").apply(Patch::insert("#items", Position::BeforeEnd, "milk"))?; // every page on it
/// page.others("list:home").apply(Patch::add_class("#items", "stale"))?; // all but this one
/// page.commanders().to("list:home").apply(Patch::set("#count", "3"))?; // from anywhere
/// # Ok(()) }
/// ```
#[derive(Clone, Copy)]
pub struct Target<'a> {
    hub: &'a Hub,
    topic: &'a str,
    /// The page left out (its join), for [`PageHandle::others`](super::PageHandle::others).
    except: Option<SubscriberId>,
}

impl std::fmt::Debug for Target<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Target")
            .field("topic", &self.topic)
            .field("except", &self.except)
            .finish_non_exhaustive()
    }
}

impl<'a> Target<'a> {
    pub(crate) fn new(hub: &'a Hub, topic: &'a str, except: Option<SubscriberId>) -> Target<'a> {
        Target { hub, topic, except }
    }

    /// The topic aimed at.
    pub fn topic(&self) -> &str {
        self.topic
    }

    /// Applies `patch` on every page aimed at: checked like any patch (script only with
    /// `exec_js`, no plain value for a markup property), encoded once, sent as one frame to
    /// every page on the topic, on every node.
    pub fn apply(&self, patch: impl Borrow<Patch>) -> Result<(), PatchError> {
        let patch = patch.borrow();
        self.hub.check(patch)?;
        let frame = encode_broadcast(self.topic, "patch", patch);
        self.hub.pubsub.broadcast(self.topic, frame, self.except);
        Ok(())
    }

    /// Pushes event `name` with `payload` to the JavaScript of every page aimed at (see
    /// [`PageHandle::push_event`](super::PageHandle::push_event)).
    pub fn push_event(&self, name: &str, payload: impl serde::Serialize) -> Result<(), PatchError> {
        self.apply(Patch::push_event(name, payload))
    }

    /// Runs client-side commands on every page aimed at (see
    /// [`PageHandle::exec`](super::PageHandle::exec)).
    pub fn exec(&self, js: &super::Js) -> Result<(), PatchError> {
        self.apply(Patch::exec(js))
    }

    /// Sets live region `name` of `commander`'s pages on the topic to `assigns` (Drab.Live's
    /// `broadcast_poke` with the assigns given): rendered once and sent as one morph and one
    /// token (bound to the topic, not to a page load: any page on the topic may send it
    /// back) to every page on the topic (on every node); each page's server copy follows
    /// shortly after (through its queue, so a `peek` in a handler that runs after the
    /// broadcast reached that page sees it). Returns the assigns as kept. A region's server
    /// copy and its browser must agree, so this reaches **every** page on the topic, also
    /// from a target made with [`PageHandle::others`](super::PageHandle::others).
    pub fn put_live<T: LiveTemplate>(
        &self,
        commander: &str,
        name: &str,
        assigns: &T,
    ) -> Result<Value, LiveError> {
        let (topic, whom) = (self.topic, LiveFor::Topic(self.topic));
        let Rendered { html, value, token } =
            self.hub.render_live(commander, name, assigns, whom)?;
        let morph = Patch::morph(&super::live::selector(name), html);
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
        Target::new(self.hub, topic, None).apply(&morph)?;
        let frame = encode_broadcast(topic, "live", &json!({ "name": name, "token": token }));
        self.hub.pubsub.broadcast(topic, frame, None);
        Ok(value)
    }
}
