//! What a person does on a kit page, and what tether.js does about it: the DOM event and
//! its default action (a checkbox ticks, a submit button submits its form, a link loads),
//! the element whose handler it calls, debounce and throttle (on tokio's clock, so a paused
//! clock runs them at once), the controls disabled while an event is processed or while the
//! page is not joined, and the `event` push with its `sender`.
//!
//! For: [`TestPage`]'s actions (`click`, `fill`, `check`, `select`, `submit`, `keydown`,
//! `event`, `type_text`, `run`).
//! Never: acts on an element that does not exist or is disabled (the action waits, bounded,
//! for it, as a person would), enables a control it did not disable, or sends an event of a
//! page that is not joined (that fails the test, as tether.js reports it).

use kuchikiki::NodeRef;
use serde_json::{Map, Value, json};
use tokio::time::{Duration, Instant};

use super::{
    dom::{
        Dom,
        commands::is_command_list,
        events::{bubbles, event_fields, is_gesture, is_submit_button},
    },
    forms,
    page::{Pending, TestPage},
};

/// The fields of a DOM event of `event_type` (with `key` for keyboard events), as a
/// person's plain gesture makes them.
fn person_event(event_type: &str, key: Option<&str>) -> Map<String, Value> {
    let mut given = Map::new();
    if let Some(key) = key {
        given.insert("key".into(), json!(key));
        given.insert("code".into(), json!(key_code(key)));
    }
    event_fields(event_type, &given)
}

/// The `code` of a key as a US keyboard sends it (`a` → `KeyA`, `1` → `Digit1`, `Enter`).
fn key_code(key: &str) -> String {
    let mut chars = key.chars();
    match (chars.next(), chars.next()) {
        (Some(c), None) if c.is_ascii_alphabetic() => format!("Key{}", c.to_ascii_uppercase()),
        (Some(c), None) if c.is_ascii_digit() => format!("Digit{c}"),
        (Some(' '), None) => "Space".into(),
        _ => key.to_string(),
    }
}

/// The controls tether.js disabled (controls.mjs `Controls`): `busy` counts events being
/// processed, `offline` holds while the page is not joined; a control is enabled again only
/// when neither holds, and never one the page (or a patch) disabled itself.
#[derive(Default)]
pub(crate) struct Controls {
    held: Vec<Held>,
    locked: Vec<(NodeRef, usize)>,
}

struct Held {
    el: NodeRef,
    busy: usize,
    offline: bool,
}

impl Controls {
    /// Disables `el` for an event being processed; false when it is not ours to disable.
    fn hold_busy(&mut self, dom: &mut Dom, el: &NodeRef) -> bool {
        if let Some(held) = self.held.iter_mut().find(|h| &h.el == el) {
            held.busy += 1;
            return true;
        }
        if dom.disabled(el) {
            return false;
        }
        dom.set_attr(el, "disabled", Some(""));
        self.held.push(Held {
            el: el.clone(),
            busy: 1,
            offline: false,
        });
        true
    }

    pub(crate) fn hold_offline(&mut self, dom: &mut Dom, el: &NodeRef) {
        if let Some(held) = self.held.iter_mut().find(|h| &h.el == el) {
            held.offline = true;
            return;
        }
        if dom.attr(el, "disabled").is_some() {
            return;
        }
        dom.set_attr(el, "disabled", Some(""));
        self.held.push(Held {
            el: el.clone(),
            busy: 0,
            offline: true,
        });
    }

    /// Makes a typed field read-only while its form's event is processed.
    fn lock(&mut self, dom: &mut Dom, field: &NodeRef) -> bool {
        if let Some((_, n)) = self.locked.iter_mut().find(|(f, _)| f == field) {
            *n += 1;
            return true;
        }
        if dom.attr(field, "readonly").is_some() {
            return false;
        }
        dom.set_attr(field, "readonly", Some(""));
        self.locked.push((field.clone(), 1));
        true
    }

    /// An event's reply came (or will never come): its controls and fields are let go.
    pub(crate) fn release(&mut self, dom: &mut Dom, held: &[NodeRef], locked: &[NodeRef]) {
        for el in held {
            if let Some(i) = self.held.iter().position(|h| &h.el == el) {
                let entry = &mut self.held[i];
                entry.busy = entry.busy.saturating_sub(1);
                if entry.busy == 0 && !entry.offline {
                    dom.set_attr(el, "disabled", None);
                    self.held.remove(i);
                }
            }
        }
        for field in locked {
            if let Some(i) = self.locked.iter().position(|(f, _)| f == field) {
                self.locked[i].1 -= 1;
                if self.locked[i].1 == 0 {
                    dom.set_attr(field, "readonly", None);
                    self.locked.remove(i);
                }
            }
        }
    }

    /// The page joined: what only `offline` held is enabled again.
    pub(crate) fn release_offline(&mut self, dom: &mut Dom) {
        self.held.retain_mut(|held| {
            held.offline = false;
            if held.busy == 0 {
                dom.set_attr(&held.el, "disabled", None);
                false
            } else {
                true
            }
        });
    }

    /// A patch set `el`'s `disabled`: from now on that is the page's, not ours to undo.
    pub(crate) fn disown(&mut self, el: &NodeRef) {
        self.held.retain(|held| &held.el != el);
    }
}

/// Debounce and throttle state per element and event type (page.mjs `rateLimited`).
#[derive(Default)]
pub(crate) struct Rates {
    entries: Vec<Rate>,
    /// Extra moments the page must wake at ([`TestPage::idle`]).
    wakes: Vec<Instant>,
}

struct Rate {
    el: NodeRef,
    event_type: String,
    timer: Option<Instant>,
    last: Option<Instant>,
    event: Option<Map<String, Value>>,
}

impl Rates {
    /// The next moment a timer is due.
    pub(crate) fn next_due(&self) -> Option<Instant> {
        self.entries
            .iter()
            .filter_map(|rate| rate.timer)
            .chain(self.wakes.iter().copied())
            .min()
    }

    pub(crate) fn wake_at(&mut self, at: Instant) {
        self.wakes.push(at);
    }

    pub(crate) fn forget_wake(&mut self, at: Instant) {
        self.wakes.retain(|wake| *wake != at);
    }

    /// The events whose timer is due now, their timers cleared.
    fn take_due(&mut self, now: Instant) -> Vec<(NodeRef, String, Map<String, Value>)> {
        let mut due = Vec::new();
        for rate in &mut self.entries {
            if rate.timer.is_some_and(|at| at <= now) {
                rate.timer = None;
                rate.last = Some(now);
                if let Some(event) = rate.event.take() {
                    due.push((rate.el.clone(), rate.event_type.clone(), event));
                }
            }
        }
        due
    }
}

/// How an action waits for what it started.
enum Settle {
    /// Until the handlers it called replied, or the page needs the test (a dialog, a wait).
    Replies(Vec<String>),
}

impl TestPage {
    /// Whether `tether-on` listens for a type: a gesture, or one the page's script tag allows.
    pub(crate) fn allowed_fn(&self) -> impl Fn(&str) -> bool + '_ {
        |event_type: &str| is_gesture(event_type) || self.allowed.iter().any(|a| a == event_type)
    }

    /// Waits (bounded) until an element matches `selector` and is enabled; returns it.
    async fn actionable(&mut self, selector: &str, action: &str) -> NodeRef {
        let what = format!("{action} {selector}: an enabled element");
        let mut found = None;
        self.drive_until(&what, |page| {
            found = match page.dom.select_first(selector) {
                Ok(Some(el)) if !page.dom.disabled(&el) => Some(el),
                Ok(_) => None,
                Err(err) => panic!("tether::testing: invalid selector {selector}: {err}"),
            };
            found.is_some()
        })
        .await;
        match found {
            Some(el) => el,
            None => unreachable!("drive_until returns once found"),
        }
    }

    /// Clicks the first element matching `selector` (waiting, bounded, until one exists and
    /// is enabled), as a person would: a checkbox or radio ticks, the click event calls its
    /// handler (tether-click, or tether-on `click:`), a submit button without one submits its
    /// form (tether-submit), a link without one loads its page. Waits for the replies of the
    /// handlers it called, unless the page needs the test first (a `confirm`/`modal` dialog
    /// to click, a `wait_for` event); returns the result of the first, or `None`.
    ///
    /// A dialog of `Page::confirm` and
    /// `Page::modal` is in the page as tether.js shows it,
    /// `dialog.tether-modal[open]`: click one of its `button[value=…]` to answer.
    pub async fn click(&mut self, selector: &str) -> Option<Value> {
        let el = self.actionable(selector, "click").await;
        let tag = self.dom.tag(&el);
        let input_type = self
            .dom
            .attr(&el, "type")
            .unwrap_or_default()
            .to_ascii_lowercase();
        if tag == "input" && input_type == "checkbox" {
            let checked = self.dom.checked(&el);
            self.dom.set_checked(&el, !checked);
        } else if tag == "input" && input_type == "radio" {
            self.dom.set_checked(&el, true);
        }
        let mut refs = self.dispatch(&el, "click", None).await;
        if forms::close_flash(&mut self.dom, &el) {
            return self.settle(Settle::Replies(refs)).await;
        }
        if tag == "input" && (input_type == "checkbox" || input_type == "radio") {
            refs.extend(self.dispatch(&el, "input", None).await);
            refs.extend(self.dispatch(&el, "change", None).await);
        }
        let bound = self
            .dom
            .bound_element(&el, "click", true, &self.allowed_fn());
        let prevented = bound.as_ref().is_some_and(|b| self.dom.navigates(b));
        if !prevented && !self.answers_modal(&el).await {
            if is_submit_button(&el) {
                if let Some(form) = self.dom.form_of(&el) {
                    refs.extend(self.dispatch(&form, "submit", None).await);
                    if !self.submit_handled(&form) && self.follow_form(&form).await {
                        return self.settle(Settle::Replies(refs)).await;
                    }
                }
            } else if tag == "a" && bound.is_none() {
                if self.follow_link(&el).await {
                    return self.settle(Settle::Replies(refs)).await;
                }
                if let Some(path) = self
                    .dom
                    .attr(&el, "href")
                    .and_then(|href| self.browser.same_origin_path(&href))
                {
                    self.navigate(&path).await;
                    return None;
                }
            }
        }
        self.settle(Settle::Replies(refs)).await
    }

    /// Types `value` into the first field matching `selector` (replacing what it held), then
    /// leaves it: its `input` and `change` events fire (debounced and throttled ones when
    /// their time comes). Waits for the handlers' replies; returns the first result.
    pub async fn fill(&mut self, selector: &str, value: &str) -> Option<Value> {
        let el = self.actionable(selector, "fill").await;
        if self.dom.attr(&el, "readonly").is_some() {
            panic!("tether::testing: fill {selector}: the field is read-only");
        }
        self.dom.set_value(&el, value);
        let mut refs = self.dispatch(&el, "input", None).await;
        refs.extend(self.dispatch(&el, "change", None).await);
        self.settle(Settle::Replies(refs)).await
    }

    /// Types `text` into the first field matching `selector` one character at a time, `gap`
    /// apart on tokio's clock (instant under a paused clock): `keydown`, the character,
    /// `input`, `keyup` for each. Debounced handlers fire when their time comes.
    pub async fn type_text(&mut self, selector: &str, text: &str, gap: Duration) {
        let el = self.actionable(selector, "type into").await;
        for (i, c) in text.chars().enumerate() {
            if i > 0 {
                self.idle(gap).await;
            }
            let key = c.to_string();
            let mut refs = self.dispatch(&el, "keydown", Some(&key)).await;
            let typed = format!("{}{c}", self.dom.value(&el));
            self.dom.set_value(&el, &typed);
            refs.extend(self.dispatch(&el, "input", None).await);
            refs.extend(self.dispatch(&el, "keyup", Some(&key)).await);
            self.settle(Settle::Replies(refs)).await;
        }
    }

    /// Ticks (`true`) or clears the first checkbox or radio matching `selector`, as a click
    /// would when it changes it (nothing happens when it already is so).
    pub async fn check(&mut self, selector: &str, checked: bool) -> Option<Value> {
        let el = self.actionable(selector, "check").await;
        if self.dom.checked(&el) == checked {
            return None;
        }
        self.click(selector).await
    }

    /// Chooses the options with these values in the first `<select>` matching `selector`;
    /// its `input` and `change` events fire.
    pub async fn select(&mut self, selector: &str, values: &[&str]) -> Option<Value> {
        let el = self.actionable(selector, "select").await;
        if let Err(err) = self.dom.select_options(&el, values) {
            panic!("tether::testing: select {selector}: {err}");
        }
        let mut refs = self.dispatch(&el, "input", None).await;
        refs.extend(self.dispatch(&el, "change", None).await);
        self.settle(Settle::Replies(refs)).await
    }

    /// Submits the form matching `selector` (or the form of the element it matches), as
    /// pressing Enter in it would.
    pub async fn submit(&mut self, selector: &str) -> Option<Value> {
        let el = self.actionable(selector, "submit").await;
        let form = self
            .dom
            .form_of(&el)
            .unwrap_or_else(|| panic!("tether::testing: submit {selector}: no form there"));
        let refs = self.dispatch(&form, "submit", None).await;
        if !self.submit_handled(&form) {
            self.follow_form(&form).await;
        }
        self.settle(Settle::Replies(refs)).await
    }

    /// Whether a handler takes the submit of `form` (tether.js then prevents its default).
    fn submit_handled(&self, form: &NodeRef) -> bool {
        self.dom
            .bound_element(form, "submit", true, &self.allowed_fn())
            .is_some()
    }

    /// Presses `key` (a DOM key name: `"Enter"`, `"Escape"`, `"a"`) on the first element
    /// matching `selector`: `keydown` then `keyup`. Escape in a dialog cancels it.
    pub async fn keydown(&mut self, selector: &str, key: &str) -> Option<Value> {
        let el = self.actionable(selector, "press a key on").await;
        let mut refs = self.dispatch(&el, "keydown", Some(key)).await;
        if key == "Escape" {
            self.cancel_modal(&el).await;
        }
        refs.extend(self.dispatch(&el, "keyup", Some(key)).await);
        self.settle(Settle::Replies(refs)).await
    }

    /// Fires a DOM event of `event_type` at the first element matching `selector` (it
    /// bubbles unless the type does not: focus, blur, mouseenter, …). No default action.
    pub async fn event(&mut self, selector: &str, event_type: &str) -> Option<Value> {
        let el = self.actionable(selector, event_type).await;
        let refs = self.dispatch(&el, event_type, None).await;
        self.settle(Settle::Replies(refs)).await
    }

    /// Calls `handler` of the page's commander with `arg`, as `Tether.page.run` does from
    /// script; returns its result.
    pub async fn run(&mut self, handler: &str, arg: Value) -> Option<Value> {
        if !self.joined {
            self.fail(format!("{handler}: not connected"));
            self.raise();
        }
        let reference = self.push_run(handler, arg).await;
        self.settle(Settle::Replies(reference.into_iter().collect()))
            .await
    }

    /// Sends the `event` of `Tether.page.run(handler, arg)` (no element); `None` (an error,
    /// as tether.js reports it) when the page is not joined.
    pub(crate) async fn push_run(&mut self, handler: &str, arg: Value) -> Option<String> {
        if !self.joined {
            self.error(format!("{handler}: not connected"));
            return None;
        }
        let sender = json!({
            "id": "", "name": "", "class": "", "tether_id": "", "text": "", "value": "",
            "checked": null, "dataset": {}, "form": {}, "event": {"type": "run"}, "arg": arg,
            "scope": "",
        });
        let reference = self
            .push(
                "event",
                json!({"handler": handler, "sender": sender}),
                Pending::Event {
                    handler: handler.to_string(),
                    held: Vec::new(),
                    locked: Vec::new(),
                    loaded: Vec::new(),
                },
            )
            .await;
        Some(reference)
    }

    /// A `CustomEvent` of type `event_type` dispatched at `target` (a `dispatch` command):
    /// it bubbles, and calls the handler it reaches; the refs of the events sent.
    pub(crate) async fn dispatch_custom(
        &mut self,
        target: &NodeRef,
        event_type: &str,
    ) -> Vec<String> {
        self.dispatch(target, event_type, None).await
    }

    /// A rejoin after the socket was lost (page.mjs `recover`): each form with an id and a
    /// change handler sends its values again, marked as a recovery; waits for the replies.
    pub(crate) async fn recover(&mut self) {
        let mut refs = Vec::new();
        let forms = forms::forms_to_recover(&self.dom, &self.allowed_fn());
        for (form, text) in forms {
            let (handler, arg) = match self.dom.handler_call(&form, &text) {
                Ok(call) => call,
                Err(err) => {
                    self.error(format!("invalid handler attribute {text}: {err}"));
                    continue;
                }
            };
            let mut sender = self.dom.describe(&form, &person_event("change", None), arg);
            sender["used"] = json!(self.used.of(&self.dom, &form));
            sender["recovery"] = json!(true);
            let mut payload = json!({"handler": handler, "sender": sender});
            if let Some(region) = self.dom.closest(&form, "[tether-commander]") {
                payload["commander"] = json!(self.dom.attr(&region, "tether-commander"));
            }
            let pending = Pending::Event {
                handler,
                held: Vec::new(),
                locked: Vec::new(),
                loaded: Vec::new(),
            };
            refs.push(self.push("event", payload, pending).await);
        }
        if !refs.is_empty() {
            self.settle(Settle::Replies(refs)).await;
        }
    }

    /// A DOM event at `target`: round trips waiting for it are answered, then the handler
    /// it reaches is called (now, or when its debounce/throttle says). Returns the refs of
    /// the events sent now.
    async fn dispatch(
        &mut self,
        target: &NodeRef,
        event_type: &str,
        key: Option<&str>,
    ) -> Vec<String> {
        let fields = person_event(event_type, key);
        let bubbles = bubbles(event_type);
        // forms.mjs listens before the page does.
        self.used.note(&self.dom, target, event_type);
        self.answer_waits(target, event_type, bubbles, &fields)
            .await;
        let Some(el) = self
            .dom
            .bound_element(target, event_type, bubbles, &self.allowed_fn())
        else {
            return Vec::new();
        };
        self.rate_limited(el, event_type, fields).await
    }

    async fn rate_limited(
        &mut self,
        el: NodeRef,
        event_type: &str,
        fields: Map<String, Value>,
    ) -> Vec<String> {
        let number = |name: &str| {
            self.dom
                .attr(&el, name)
                .and_then(|v| v.trim().parse::<f64>().ok())
                .filter(|ms| *ms > 0.0)
                .map(|ms| Duration::from_micros((ms * 1000.0) as u64))
        };
        let (debounce, throttle) = (number("tether-debounce"), number("tether-throttle"));
        if debounce.is_none() && throttle.is_none() {
            return self.send(&el, event_type, &fields).await;
        }
        let now = Instant::now();
        let rates = &mut self.rates.entries;
        let i = match rates
            .iter()
            .position(|r| r.el == el && r.event_type == event_type)
        {
            Some(i) => i,
            None => {
                rates.push(Rate {
                    el: el.clone(),
                    event_type: event_type.to_string(),
                    timer: None,
                    last: None,
                    event: None,
                });
                rates.len() - 1
            }
        };
        let rate = &mut rates[i];
        rate.event = Some(fields);
        if let Some(debounce) = debounce {
            rate.timer = Some(now + debounce);
            Vec::new()
        } else if rate.timer.is_none() {
            let throttle = throttle.unwrap_or_default();
            match rate.last.map(|last| last + throttle) {
                Some(next) if next > now => {
                    rate.timer = Some(next);
                    Vec::new()
                }
                _ => {
                    rate.last = Some(now);
                    let fields = rate.event.take().unwrap_or_default();
                    self.send(&el, event_type, &fields).await
                }
            }
        } else {
            Vec::new()
        }
    }

    /// Sends the debounced and throttled events whose time has come.
    pub(crate) async fn fire_due_rates(&mut self) {
        for (el, event_type, fields) in self.rates.take_due(Instant::now()) {
            self.send(&el, &event_type, &fields).await;
        }
    }

    /// Sends the `event` of each handler `el` has for `event_type` (page.mjs `send`).
    async fn send(
        &mut self,
        el: &NodeRef,
        event_type: &str,
        fields: &Map<String, Value>,
    ) -> Vec<String> {
        let texts = self.dom.handlers_of(el, event_type, &self.allowed_fn());
        let mut refs = Vec::new();
        for text in texts {
            if is_command_list(&text) {
                refs.extend(Box::pin(self.run_list(el, event_type, fields, &text)).await);
                continue;
            }
            let (handler, arg) = match self.dom.handler_call(el, &text) {
                Ok(call) => call,
                Err(err) => {
                    self.error(format!("invalid handler attribute {text}: {err}"));
                    continue;
                }
            };
            refs.extend(self.send_call(el, event_type, fields, handler, arg).await);
        }
        refs
    }

    /// Sends the `event` of one handler call at `el` (page.mjs `sendCall`): its ref, or
    /// `None` when the page is not joined (an error, as tether.js reports it).
    pub(crate) async fn send_call(
        &mut self,
        el: &NodeRef,
        event_type: &str,
        fields: &Map<String, Value>,
        handler: String,
        arg: Value,
    ) -> Option<String> {
        {
            if !self.joined {
                self.error(format!("{handler}: not connected"));
                return None;
            }
            let mut sender = self.dom.describe(el, fields, arg);
            sender["used"] = json!(self.used.of(&self.dom, el));
            let mut payload = json!({"handler": handler, "sender": sender});
            if let Some(region) = self.dom.closest(el, "[tether-commander]") {
                payload["commander"] = json!(self.dom.attr(&region, "tether-commander"));
            }
            let busy = self.disable.while_processing
                && self.disable.events.iter().any(|e| e == event_type)
                && self.dom.attr(el, "tether-no-disable").is_none();
            let (mut held, mut locked) = (Vec::new(), Vec::new());
            if busy {
                let form = if event_type == "submit" {
                    self.dom.form_of(el)
                } else {
                    None
                };
                let controls = match &form {
                    Some(form) => self.dom.submit_buttons(form),
                    None => self.dom.controls_of(el, &self.allowed_fn()),
                };
                for control in controls {
                    if self.controls.hold_busy(&mut self.dom, &control) {
                        held.push(control);
                    }
                }
                if let Some(form) = self.dom.form_of(el) {
                    for field in self.dom.typed_fields(&form) {
                        if self.controls.lock(&mut self.dom, &field) {
                            locked.push(field);
                        }
                    }
                }
            }
            let loaded = self.loading.start(&mut self.dom, el, event_type);
            let pending = Pending::Event {
                handler: handler.clone(),
                held,
                locked,
                loaded,
            };
            Some(self.push("event", payload, pending).await)
        }
    }

    /// Waits until every event in flight has its reply (those `refs` name and any sent
    /// before), or until the page needs the test (an open dialog, a `wait` round trip); the
    /// result of the first of `refs` that replied.
    async fn settle(&mut self, settle: Settle) -> Option<Value> {
        let Settle::Replies(refs) = settle;
        self.drive_until("waiting for the handlers' replies", |page| {
            page.needs_test()
                || !page
                    .pending
                    .values()
                    .any(|pending| matches!(pending, Pending::Event { .. }))
        })
        .await;
        let mut first = None;
        for reference in &refs {
            if let Some(result) = self.results.remove(reference) {
                first.get_or_insert(result.get("result").cloned().unwrap_or(result));
            }
        }
        first
    }
}
