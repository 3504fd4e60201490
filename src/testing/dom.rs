//! The kit's model of a page's DOM: a document parsed by html5ever (through `kuchikiki`), the
//! live state a browser keeps beside the markup (a typed `value`, a ticked box, the selected
//! options, layout properties a test sets), and tether.js's rules run against it: patches
//! (patches.mjs, morph.mjs), which element an event calls and what its `sender` is
//! (events.mjs), presence lists and live counters (lists.mjs), what a `query` reads and what
//! a `modal` builds (calls.mjs).
//!
//! For: [`super::page`], which owns one `Dom` per page and decides when each rule runs.
//! Never: talks to the socket, waits, or applies a patch that [`Dom::apply_patch`]'s check
//! (the same rules as tether.js and the server's `Patch::check`) refused. No layout, no CSS,
//! no focus, no script.
//!
//! STUB: signatures fixed, bodies to be written.
#![allow(dead_code, unused_variables, clippy::needless_pass_by_ref_mut)]

use kuchikiki::NodeRef;
use serde_json::{Map, Value};

/// What applying a patch asks of the page besides the DOM change (ops that are not about
/// elements), or `Done`.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Effect {
    /// An element op (html, morph, text, prop, props, insert, remove) was applied.
    Done,
    /// `js`: script the page would run (only when `exec_js` is on).
    Js(String),
    /// `redirect`: the page would load `url`.
    Redirect(String),
    /// `set_url`: `history.pushState` to `url`.
    SetUrl(String),
    /// `console`: `console[level](msg)`.
    Console { level: String, msg: String },
    /// `cookie`: set (or, with `value: None`, delete) a cookie.
    Cookie {
        name: String,
        value: Option<String>,
        path: Option<String>,
        max_age: Option<i64>,
    },
}

/// A page's document and the live state beside it.
pub(crate) struct Dom {
    document: NodeRef,
}

impl Dom {
    /// Parses a whole document (the server-rendered page).
    pub(crate) fn parse(html: &str) -> Dom {
        todo!()
    }

    /// The `<body>` element (html5ever always makes one).
    pub(crate) fn body(&self) -> NodeRef {
        todo!()
    }

    /// Every element matching `selector`, in document order; `Err` says why the selector
    /// is invalid.
    pub(crate) fn select_all(&self, selector: &str) -> Result<Vec<NodeRef>, String> {
        todo!()
    }

    /// The first element matching `selector`.
    pub(crate) fn select_first(&self, selector: &str) -> Result<Option<NodeRef>, String> {
        todo!()
    }

    /// `el.matches(selector)`.
    pub(crate) fn matches(&self, el: &NodeRef, selector: &str) -> Result<bool, String> {
        todo!()
    }

    /// `el.closest(selector)` (`el` itself included); `None` for an invalid selector too.
    pub(crate) fn closest(&self, el: &NodeRef, selector: &str) -> Option<NodeRef> {
        todo!()
    }

    /// The whole document serialized (`document.documentElement.outerHTML`).
    pub(crate) fn html(&self) -> String {
        todo!()
    }

    /// `el.innerHTML`.
    pub(crate) fn inner_html(&self, el: &NodeRef) -> String {
        todo!()
    }

    /// `el.outerHTML`.
    pub(crate) fn outer_html(&self, el: &NodeRef) -> String {
        todo!()
    }

    /// `el.textContent`.
    pub(crate) fn text(&self, el: &NodeRef) -> String {
        todo!()
    }

    /// The lowercase tag name of an element (`""` for other nodes).
    pub(crate) fn tag(&self, el: &NodeRef) -> String {
        todo!()
    }

    /// Attribute `name` of `el`.
    pub(crate) fn attr(&self, el: &NodeRef, name: &str) -> Option<String> {
        todo!()
    }

    /// Sets attribute `name` of `el` to `value`, or removes it (`None`).
    pub(crate) fn set_attr(&mut self, el: &NodeRef, name: &str, value: Option<&str>) {
        todo!()
    }

    /// `el.value`: an input's live value (its `value` attribute until typed into), a
    /// textarea's (its text until typed into), a select's first selected option's value;
    /// `""` for other elements.
    pub(crate) fn value(&self, el: &NodeRef) -> String {
        todo!()
    }

    /// Sets `el.value` as a person typing would (the markup keeps its `value` attribute).
    pub(crate) fn set_value(&mut self, el: &NodeRef, value: &str) {
        todo!()
    }

    /// `el.checked` of a checkbox or radio (its `checked` attribute until changed).
    pub(crate) fn checked(&self, el: &NodeRef) -> bool {
        todo!()
    }

    /// Sets `el.checked`; checking a radio unchecks the others of its group (same name, same form).
    pub(crate) fn set_checked(&mut self, el: &NodeRef, checked: bool) {
        todo!()
    }

    /// Selects the options of `select` whose value is in `values` (the others unselected;
    /// a single select takes the first that matches). `Err` names a value no option has.
    pub(crate) fn select_options(
        &mut self,
        select: &NodeRef,
        values: &[&str],
    ) -> Result<(), String> {
        todo!()
    }

    /// Whether `el` is disabled (its `disabled` attribute, or a disabled fieldset around it).
    pub(crate) fn disabled(&self, el: &NodeRef) -> bool {
        todo!()
    }

    /// A property the model cannot compute (layout: `offsetWidth`, `scrollTop`, …), set by
    /// the test; `query` round trips read it.
    pub(crate) fn set_layout_prop(&mut self, el: &NodeRef, name: &str, value: Value) {
        todo!()
    }

    /// What a `query` round trip reads of property `name` of `el` (calls.mjs `readProp`):
    /// `dataset`, `attributes`, `classList`, `style`, the reflected properties the model
    /// knows (`id`, `className`, `value`, `checked`, `disabled`, `textContent`, `tagName`,
    /// `innerHTML`, `outerHTML`, `hidden`, `title`, `name`, `type`, `href`, …), a layout
    /// property the test set, else `null`; forbidden names read `null`.
    pub(crate) fn read_prop(&self, el: &NodeRef, name: &str) -> Value {
        todo!()
    }

    /// `#<id>` of an element with an id, else its stamped `[tether-id="…"]` (calls.mjs
    /// `selectorOf`).
    pub(crate) fn selector_of(&mut self, el: &NodeRef) -> String {
        todo!()
    }

    /// Whether `el` is in a `tether-ignore` subtree (or is its root).
    pub(crate) fn ignored(&self, el: &NodeRef) -> bool {
        todo!()
    }

    /// The handler attributes of `el` for event `type`, as written (shorthand first);
    /// `tether-on` pairs only for allowed types (`allowed`: the gesture types plus the
    /// page's `data-tether-events`).
    pub(crate) fn handlers_of(
        &self,
        el: &NodeRef,
        event_type: &str,
        allowed: &dyn Fn(&str) -> bool,
    ) -> Vec<String> {
        todo!()
    }

    /// The element whose handler an event of `event_type` at `target` calls (events.mjs
    /// `boundElement`).
    pub(crate) fn bound_element(
        &self,
        target: &NodeRef,
        event_type: &str,
        bubbles: bool,
        allowed: &dyn Fn(&str) -> bool,
    ) -> Option<NodeRef> {
        todo!()
    }

    /// What handler attribute `text` of `el` calls: `(handler, arg)` (events.mjs
    /// `handlerCall`); `Err` for a malformed attribute or invalid JSON.
    pub(crate) fn handler_call(&self, el: &NodeRef, text: &str) -> Result<(String, Value), String> {
        todo!()
    }

    /// The argument `el` carries through the nearest `tether-arg` (`Null` without one).
    pub(crate) fn argument_of(&self, el: &NodeRef) -> Result<Value, String> {
        todo!()
    }

    /// The `sender` of an event at `el` (events.mjs `describe`): stamps `tether-id` on `el`
    /// (and on its `tether-commander` region) when missing. `event` holds the event fields.
    pub(crate) fn describe(
        &mut self,
        el: &NodeRef,
        event: &Map<String, Value>,
        arg: Value,
    ) -> Value {
        todo!()
    }

    /// The form of `el`: itself, its `form` attribute's form, or the closest form.
    pub(crate) fn form_of(&self, el: &NodeRef) -> Option<NodeRef> {
        todo!()
    }

    /// A form's fields as `{name: value}` (events.mjs `formValues`).
    pub(crate) fn form_values(&self, form: &NodeRef, secrets: bool) -> Map<String, Value> {
        todo!()
    }

    /// The typed fields of a form (text, search, email, url, tel, password, number, textarea).
    pub(crate) fn typed_fields(&self, form: &NodeRef) -> Vec<NodeRef> {
        todo!()
    }

    /// A form's submit buttons.
    pub(crate) fn submit_buttons(&self, form: &NodeRef) -> Vec<NodeRef> {
        todo!()
    }

    /// What to disable for an element with handlers (controls.mjs `controlsOf`).
    pub(crate) fn controls_of(&self, el: &NodeRef, allowed: &dyn Fn(&str) -> bool) -> Vec<NodeRef> {
        todo!()
    }

    /// Whether a click on `el` would navigate (links, submit buttons): the page prevents it.
    pub(crate) fn navigates(&self, el: &NodeRef) -> bool {
        todo!()
    }

    /// Checks `patch` (patches.mjs `refusal`) and applies it. `Err` is the refusal, an
    /// invalid selector, an unknown op or a failure (the DOM is then as the browser would
    /// leave it). `disowned` is told of each element whose `disabled` the patch set.
    pub(crate) fn apply_patch(
        &mut self,
        patch: &Value,
        exec_js: bool,
        disowned: &mut dyn FnMut(&NodeRef),
    ) -> Result<Effect, String> {
        todo!()
    }

    /// The `data-tether-list` of each templated presence list (lists.mjs `presenceListSpecs`).
    pub(crate) fn presence_list_specs(&self) -> Vec<String> {
        todo!()
    }

    /// The `data-tether-topic` of each live counter, each once.
    pub(crate) fn counter_topics(&self) -> Vec<String> {
        todo!()
    }

    /// Templated presence lists show the entries they were rendered with.
    pub(crate) fn show_rendered_lists(&mut self) {
        todo!()
    }

    /// A `presence_list` event.
    pub(crate) fn render_presence_lists(&mut self, payload: &Value) {
        todo!()
    }

    /// A `count` event.
    pub(crate) fn render_count(&mut self, payload: &Value) {
        todo!()
    }

    /// A `modal` round trip's dialog (calls.mjs `buildModal`), appended to the body with
    /// `open` (as `showModal` leaves it); returns the `<dialog>`.
    pub(crate) fn open_modal(&mut self, call: &Value) -> NodeRef {
        todo!()
    }

    /// Removes `el` from the document.
    pub(crate) fn remove(&mut self, el: &NodeRef) {
        todo!()
    }
}
