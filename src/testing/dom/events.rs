//! What a page's attributes mean and what an event sends (events.mjs, controls.mjs): the
//! handler attributes and their parsing, which element an event calls, the `sender`
//! (element, form, event fields, argument), a form's values and the controls tether.js
//! disables.
//!
//! For: the page's event dispatch ([`super::super::page`]) and `query`/`wait` round trips.
//! Never: evaluates an argument (JSON only), or lets `tether-on` listen for a type that is
//! not allowed (gestures plus the page's `data-tether-events`).

use kuchikiki::NodeRef;
use serde_json::{Map, Value};

use super::{Dom, control_type, dataset, input_type, tree};
use tree::{get_attr, has_attr, local_name};

/// The `tether-<type>` shorthand attributes.
pub(crate) const SHORTHANDS: &[&str] = &[
    "click", "dblclick", "change", "input", "submit", "keyup", "keydown", "focus", "blur",
];

/// The event types `tether-on` listens for without the page's `data-tether-events`.
pub(crate) const GESTURE_EVENTS: &[&str] = &[
    "click",
    "dblclick",
    "auxclick",
    "contextmenu",
    "mousedown",
    "mouseup",
    "mouseover",
    "mouseout",
    "mouseenter",
    "mouseleave",
    "mousemove",
    "pointerdown",
    "pointerup",
    "pointermove",
    "pointerover",
    "pointerout",
    "pointerenter",
    "pointerleave",
    "pointercancel",
    "touchstart",
    "touchend",
    "touchmove",
    "touchcancel",
    "wheel",
    "keydown",
    "keyup",
    "keypress",
    "beforeinput",
    "input",
    "change",
    "submit",
    "focus",
    "blur",
    "focusin",
    "focusout",
    "copy",
    "cut",
    "paste",
    "dragstart",
    "drag",
    "dragend",
    "dragenter",
    "dragleave",
    "dragover",
    "drop",
];

const EVENT_FIELDS: &[&str] = &[
    "type", "key", "code", "altKey", "ctrlKey", "shiftKey", "metaKey", "button", "clientX",
    "clientY",
];
const TEXT_MAX: usize = 1000;
const TYPED: &[&str] = &[
    "text", "search", "email", "url", "tel", "password", "number", "textarea",
];
/// Elements whose form owner counts them in `form.elements`.
const LISTED: &[&str] = &[
    "button", "fieldset", "input", "object", "output", "select", "textarea",
];

/// Event types whose DOM events do not bubble (their handler is the target's own).
const NON_BUBBLING: &[&str] = &[
    "focus",
    "blur",
    "mouseenter",
    "mouseleave",
    "pointerenter",
    "pointerleave",
    "load",
    "unload",
    "error",
    "abort",
    "toggle",
    "invalid",
    "scroll",
];

/// Whether a DOM event of `event_type` bubbles.
pub(crate) fn bubbles(event_type: &str) -> bool {
    !NON_BUBBLING.contains(&event_type)
}

/// Whether a DOM event of `event_type` is a `MouseEvent` (or one of its kinds: pointer, wheel,
/// drag), which has the modifier keys, `button`, `clientX` and `clientY`.
fn is_mouse_event(event_type: &str) -> bool {
    matches!(
        event_type,
        "click" | "dblclick" | "auxclick" | "contextmenu" | "wheel" | "drop"
    ) || ["mouse", "pointer", "drag"]
        .iter()
        .any(|p| event_type.starts_with(p))
}

/// What events.mjs `eventFields` reads of a DOM event of `event_type`: `type`, and for a
/// keyboard event `key`, `code` and the modifier keys, for a mouse event the modifier keys,
/// `button`, `clientX` and `clientY`; each from `given`, else a person's plain value (no
/// modifier, the primary button, at 0,0, an empty key).
pub(crate) fn event_fields(event_type: &str, given: &Map<String, Value>) -> Map<String, Value> {
    let mut fields = Map::new();
    fields.insert("type".into(), Value::String(event_type.to_string()));
    let mut take = |name: &str, default: Value| {
        fields.insert(name.into(), given.get(name).cloned().unwrap_or(default));
    };
    let keyboard = event_type.starts_with("key");
    let mouse = is_mouse_event(event_type);
    if keyboard {
        take("key", Value::String(String::new()));
        take("code", Value::String(String::new()));
    }
    if keyboard || mouse {
        for name in ["altKey", "ctrlKey", "shiftKey", "metaKey"] {
            take(name, Value::Bool(false));
        }
    }
    if mouse {
        for name in ["button", "clientX", "clientY"] {
            take(name, Value::from(0));
        }
    }
    fields
}

/// Whether `el` is a submit button: a `<button>` of type submit (the default, and what an
/// unknown type means), or an `<input>` of type submit or image.
pub(crate) fn is_submit_button(el: &NodeRef) -> bool {
    match local_name(el).as_str() {
        "button" => control_type(el).as_deref() == Some("submit"),
        "input" => matches!(input_type(el).as_str(), "submit" | "image"),
        _ => false,
    }
}

/// Whether `type` is a gesture type (`tether-on` takes it without the page's allowance).
pub(crate) fn is_gesture(event_type: &str) -> bool {
    GESTURE_EVENTS.contains(&event_type)
}

/// JavaScript's `\s`.
pub(crate) fn js_space(c: char) -> bool {
    matches!(
        c,
        '\t' | '\n' | '\u{b}' | '\u{c}' | '\r' | ' ' | '\u{a0}' | '\u{1680}' | '\u{2000}'
            ..='\u{200a}'
                | '\u{2028}'
                | '\u{2029}'
                | '\u{202f}'
                | '\u{205f}'
                | '\u{3000}'
                | '\u{feff}'
    )
}

/// A handler attribute parsed (events.mjs `parseHandler`).
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Handler {
    /// The handler's name.
    pub(crate) name: String,
    /// Its argument, when it has one (`name(<JSON>)` with something in the parentheses).
    pub(crate) arg: Option<Value>,
}

/// `name` or `name(<JSON>)`; `Err` for anything else or invalid JSON.
pub(crate) fn parse_handler(text: &str) -> Result<Handler, String> {
    let bad = || format!("invalid handler \"{text}\": expected name or name(<JSON>)");
    let trimmed = text.trim_matches(js_space);
    let name_end = trimmed
        .find(|c: char| js_space(c) || c == '(' || c == ')')
        .unwrap_or(trimmed.len());
    let name = &trimmed[..name_end];
    if name.is_empty() {
        return Err(bad());
    }
    let rest = trimmed[name_end..].trim_start_matches(js_space);
    if rest.is_empty() {
        return Ok(Handler {
            name: name.to_string(),
            arg: None,
        });
    }
    if !rest.starts_with('(') || !rest.ends_with(')') || rest.len() < 2 {
        return Err(bad());
    }
    let json = &rest[1..rest.len() - 1];
    if json.trim_matches(js_space).is_empty() {
        return Ok(Handler {
            name: name.to_string(),
            arg: None,
        });
    }
    match serde_json::from_str::<Value>(json) {
        Ok(arg) => Ok(Handler {
            name: name.to_string(),
            arg: Some(arg),
        }),
        Err(e) => Err(format!("invalid JSON argument in \"{text}\": {e}")),
    }
}

fn split_pairs(text: &str) -> Vec<String> {
    let mut tokens = Vec::new();
    let mut token = String::new();
    let mut depth = 0usize;
    let mut in_string = false;
    let mut chars = text.chars();
    while let Some(c) = chars.next() {
        if in_string {
            token.push(c);
            if c == '\\' {
                if let Some(n) = chars.next() {
                    token.push(n);
                }
            } else if c == '"' {
                in_string = false;
            }
        } else if depth == 0 && js_space(c) {
            if !token.is_empty() {
                tokens.push(std::mem::take(&mut token));
            }
        } else {
            token.push(c);
            if c == '"' {
                in_string = true;
            } else if "([{".contains(c) {
                depth += 1;
            } else if ")]}".contains(c) {
                depth = depth.saturating_sub(1);
            }
        }
    }
    if !token.is_empty() {
        tokens.push(token);
    }
    tokens
}

/// `tether-on="blur:save mouseenter:peek"` as `(pairs, bad tokens)` (events.mjs `parseOn`).
pub(crate) fn parse_on(text: &str) -> (Vec<(String, String)>, Vec<String>) {
    let mut pairs = Vec::new();
    let mut bad = Vec::new();
    for token in split_pairs(text) {
        // The type ends before an argument or a command list (events.mjs parseOn).
        let head = token.split(['(', '[']).next().unwrap_or("");
        match head.rfind(':') {
            Some(colon) if colon > 0 && colon + 1 < token.len() => {
                pairs.push((token[..colon].to_string(), token[colon + 1..].to_string()))
            }
            _ => bad.push(token),
        }
    }
    (pairs, bad)
}

/// At most `max` characters, a character never cut.
pub(crate) fn truncate(text: &str, max: usize) -> String {
    text.chars().take(max).collect()
}

fn has_handler_attribute(el: &NodeRef) -> bool {
    SHORTHANDS
        .iter()
        .any(|t| has_attr(el, &format!("tether-{t}")))
        || has_attr(el, "tether-on")
}

impl Dom {
    /// Every element with a handler attribute, in document order (events.mjs `BOUND`).
    pub(crate) fn bound_elements(&self) -> Vec<NodeRef> {
        self.document
            .descendants()
            .filter(|n| n.as_element().is_some() && has_handler_attribute(n))
            .collect()
    }

    /// Every handler attribute of `el`, as `(name, value)` (shorthands, then `tether-on`).
    pub(crate) fn handler_attributes(&self, el: &NodeRef) -> Vec<(String, String)> {
        SHORTHANDS
            .iter()
            .map(|t| format!("tether-{t}"))
            .chain(std::iter::once("tether-on".to_string()))
            .filter_map(|name| get_attr(el, &name).map(|value| (name, value)))
            .collect()
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
        let mut handlers = Vec::new();
        if SHORTHANDS.contains(&event_type) {
            if let Some(h) = get_attr(el, &format!("tether-{event_type}")) {
                handlers.push(h);
            }
        }
        if let Some(on) = get_attr(el, "tether-on").filter(|on| !on.is_empty()) {
            if allowed(event_type) {
                for (t, h) in parse_on(&on).0 {
                    if t == event_type {
                        handlers.push(h);
                    }
                }
            }
        }
        handlers
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
        if !tree::is_element(target) {
            return None;
        }
        if !bubbles {
            let bound =
                !self.handlers_of(target, event_type, allowed).is_empty() && !self.ignored(target);
            return bound.then(|| target.clone());
        }
        target
            .inclusive_ancestors()
            .filter(|n| tree::is_element(n) && has_handler_attribute(n))
            .find(|n| !self.handlers_of(n, event_type, allowed).is_empty() && !self.ignored(n))
    }

    /// What handler attribute `text` of `el` calls: `(handler, arg)` (events.mjs
    /// `handlerCall`); `Err` for a malformed attribute or invalid JSON.
    pub(crate) fn handler_call(&self, el: &NodeRef, text: &str) -> Result<(String, Value), String> {
        let handler = parse_handler(text)?;
        let arg = match handler.arg {
            Some(arg) => arg,
            None => self.argument_of(el)?,
        };
        Ok((handler.name, arg))
    }

    /// The argument `el` carries through the nearest `tether-arg` (`Null` without one).
    pub(crate) fn argument_of(&self, el: &NodeRef) -> Result<Value, String> {
        let Some(holder) = tree::closest_with_attr(el, "tether-arg") else {
            return Ok(Value::Null);
        };
        let text = get_attr(&holder, "tether-arg").unwrap_or_default();
        serde_json::from_str(&text).map_err(|e| format!("invalid JSON in tether-arg: {e}"))
    }

    /// The `sender` of an event at `el` (events.mjs `describe`): stamps `tether-id` on `el`
    /// (and on its `tether-commander` region) when missing. `event` holds the event fields.
    pub(crate) fn describe(
        &mut self,
        el: &NodeRef,
        event: &Map<String, Value>,
        arg: Value,
    ) -> Value {
        self.describe_at(el, None, event, arg)
    }

    /// [`Dom::describe`] with the event's target, for a submit delegated to an element around
    /// the form (then the target form is the sender's form).
    pub(crate) fn describe_at(
        &mut self,
        el: &NodeRef,
        target: Option<&NodeRef>,
        event: &Map<String, Value>,
        arg: Value,
    ) -> Value {
        let region = tree::closest_with_attr(el, "tether-commander");
        let attr = |n: &str| Value::String(get_attr(el, n).unwrap_or_default());
        let mut sender = Map::new();
        sender.insert("id".into(), attr("id"));
        sender.insert("name".into(), attr("name"));
        sender.insert("class".into(), attr("class"));
        let tether_id = self.stamp(el);
        sender.insert("tether_id".into(), Value::String(tether_id));
        let text = el.text_contents();
        sender.insert(
            "text".into(),
            Value::String(truncate(text.trim_matches(js_space), TEXT_MAX)),
        );
        let value = if Self::has_value_prop(el) {
            self.value(el)
        } else {
            String::new()
        };
        sender.insert("value".into(), Value::String(value));
        let checkable =
            local_name(el) == "input" && matches!(input_type(el).as_str(), "checkbox" | "radio");
        sender.insert(
            "checked".into(),
            if checkable {
                Value::Bool(self.checked(el))
            } else {
                Value::Null
            },
        );
        // Reading the dataset reads the attributes: a pending inline style is written first.
        self.sync_style_of(el);
        sender.insert("dataset".into(), Value::Object(dataset(el)));
        let form = self
            .form_of(el)
            .or_else(|| target.filter(|t| local_name(t) == "form").cloned());
        let values = form
            .map(|f| self.form_values(&f, false))
            .unwrap_or_default();
        sender.insert("form".into(), Value::Object(values));
        let mut fields = Map::new();
        for name in EVENT_FIELDS {
            if let Some(v) = event.get(*name) {
                fields.insert(name.to_string(), v.clone());
            }
        }
        sender.insert("event".into(), Value::Object(fields));
        sender.insert("arg".into(), arg);
        let scope = match region {
            Some(r) => self.stamp(&r),
            None => String::new(),
        };
        sender.insert("scope".into(), Value::String(scope));
        Value::Object(sender)
    }

    /// The form of `el`: itself, its `form` attribute's form, or the closest form.
    pub(crate) fn form_of(&self, el: &NodeRef) -> Option<NodeRef> {
        if local_name(el) == "form" {
            return Some(el.clone());
        }
        if LISTED.contains(&local_name(el).as_str()) || local_name(el) == "img" {
            if let Some(f) = self.form_owner(el) {
                return Some(f);
            }
        }
        el.inclusive_ancestors().find(|a| local_name(a) == "form")
    }

    /// `form.elements`: the listed elements whose form owner is `form`, in tree order (an
    /// image input is not one).
    pub(crate) fn form_elements(&self, form: &NodeRef) -> Vec<NodeRef> {
        let root = form
            .inclusive_ancestors()
            .last()
            .unwrap_or_else(|| form.clone());
        root.descendants()
            .filter(|n| {
                let tag = local_name(n);
                LISTED.contains(&tag.as_str())
                    && !(tag == "input" && input_type(n) == "image")
                    && self.form_owner(n).as_ref() == Some(form)
            })
            .collect()
    }

    /// A form's fields as `{name: value}` (events.mjs `formValues`).
    pub(crate) fn form_values(&self, form: &NodeRef, secrets: bool) -> Map<String, Value> {
        let mut values = Map::new();
        let passwords = secrets || has_attr(form, "tether-include-passwords");
        let files = secrets || has_attr(form, "tether-include-files");
        for field in self.form_elements(form) {
            let tag = local_name(&field);
            let name = get_attr(&field, "name")
                .filter(|n| !n.is_empty())
                .or_else(|| get_attr(&field, "id"))
                .unwrap_or_default();
            if name.is_empty()
                || (super::DISABLEABLE.contains(&tag.as_str()) && has_attr(&field, "disabled"))
            {
                continue;
            }
            let field_type = control_type(&field).unwrap_or_default();
            if (field_type == "password" && !passwords) || (field_type == "file" && !files) {
                continue;
            }
            if (field_type == "checkbox" || field_type == "radio") && !self.checked(&field) {
                continue;
            }
            if field_type == "select-multiple" {
                let selected = self
                    .selected_options(&field)
                    .iter()
                    .map(|o| Value::String(super::option_value(o)))
                    .collect();
                values.insert(name, Value::Array(selected));
            } else if field_type != "button"
                && field_type != "submit"
                && tag != "fieldset"
                && tag != "object"
            {
                values.insert(name, Value::String(self.value(&field)));
            }
        }
        values
    }

    /// The typed fields of a form (text, search, email, url, tel, password, number, textarea).
    pub(crate) fn typed_fields(&self, form: &NodeRef) -> Vec<NodeRef> {
        self.form_elements(form)
            .into_iter()
            .filter(|f| control_type(f).is_some_and(|t| TYPED.contains(&t.as_str())))
            .collect()
    }

    /// A form's submit buttons.
    pub(crate) fn submit_buttons(&self, form: &NodeRef) -> Vec<NodeRef> {
        let mut buttons: Vec<NodeRef> = self
            .form_elements(form)
            .into_iter()
            .filter(|f| control_type(f).as_deref() == Some("submit"))
            .collect();
        buttons.extend(form.descendants().filter(|n| {
            local_name(n) == "input" && input_type(n) == "image" && get_attr(n, "type").is_some()
        }));
        buttons
    }

    /// What to disable for an element with handlers (controls.mjs `controlsOf`).
    pub(crate) fn controls_of(&self, el: &NodeRef, allowed: &dyn Fn(&str) -> bool) -> Vec<NodeRef> {
        if local_name(el) == "form" {
            return if self.handlers_of(el, "submit", allowed).is_empty() {
                Vec::new()
            } else {
                self.submit_buttons(el)
            };
        }
        if tree::is_html(el) && super::DISABLEABLE.contains(&local_name(el).as_str()) {
            vec![el.clone()]
        } else {
            Vec::new()
        }
    }

    /// Whether a click on `el` would navigate (links, submit buttons): the page prevents it.
    pub(crate) fn navigates(&self, el: &NodeRef) -> bool {
        match local_name(el).as_str() {
            "a" | "area" => has_attr(el, "href"),
            _ => is_submit_button(el),
        }
    }
}
