//! What a page keeps current with no commander code (lists.mjs): templated presence lists
//! (`data-tether-presence`, a `<template>`'s first element copied per entry) and live
//! counters (`data-tether-topic`); and the dialog of a `modal` round trip (calls.mjs
//! `buildModal`).
//!
//! For: the page's `presence_list`, `count` and `modal` handling.
//! Never: renders markup from the server into a list (entries become text), or wires or
//! fills anything in a `tether-ignore` subtree.

use kuchikiki::NodeRef;
use serde_json::{Map, Value};

use super::{Dom, js_string, tree};
use tree::{get_attr, has_attr, local_name};

fn text_of(value: Option<&Value>) -> String {
    match value {
        None | Some(Value::Null) => String::new(),
        Some(v @ (Value::Array(_) | Value::Object(_))) => {
            serde_json::to_string(v).unwrap_or_default()
        }
        Some(v) => js_string(v),
    }
}

impl Dom {
    fn with_attrs(&self, names: &[&str]) -> Vec<NodeRef> {
        self.document
            .descendants()
            .filter(|n| names.iter().all(|a| has_attr(n, a)) && !self.ignored(n))
            .collect()
    }

    /// The `data-tether-list` of each templated presence list (lists.mjs `presenceListSpecs`).
    pub(crate) fn presence_list_specs(&self) -> Vec<String> {
        let mut specs: Vec<String> = Vec::new();
        for el in self.with_attrs(&["data-tether-presence", "data-tether-list"]) {
            let spec = get_attr(&el, "data-tether-list").unwrap_or_default();
            if !specs.contains(&spec) {
                specs.push(spec);
            }
        }
        specs
    }

    /// The `data-tether-topic` of each live counter, each once.
    pub(crate) fn counter_topics(&self) -> Vec<String> {
        let mut topics: Vec<String> = Vec::new();
        for el in self.with_attrs(&["data-tether-topic"]) {
            let topic = get_attr(&el, "data-tether-topic").unwrap_or_default();
            if !topics.contains(&topic) {
                topics.push(topic);
            }
        }
        topics
    }

    /// Templated presence lists show the entries they were rendered with.
    pub(crate) fn show_rendered_lists(&mut self) {
        for el in self.with_attrs(&["data-tether-presence", "data-tether-entries"]) {
            let json = get_attr(&el, "data-tether-entries").unwrap_or_default();
            let text = if json.is_empty() { "[]" } else { json.as_str() };
            let entries = match serde_json::from_str::<Value>(text) {
                Ok(Value::Array(entries)) => entries,
                _ => Vec::new(),
            };
            fill_presence_list(&el, &entries);
        }
    }

    /// A `presence_list` event.
    pub(crate) fn render_presence_lists(&mut self, payload: &Value) {
        let Some(entries) = payload.get("entries").and_then(Value::as_array) else {
            return;
        };
        // Strict comparisons, as lists.mjs makes them: a number never equals a string.
        let topic = payload
            .get("topic")
            .and_then(Value::as_str)
            .map(str::to_string);
        let fields = payload
            .get("fields")
            .and_then(Value::as_str)
            .map(str::to_string);
        let keys = match payload.get("keys") {
            None | Some(Value::Null) => Some(String::new()),
            Some(Value::String(k)) => Some(k.clone()),
            Some(Value::Bool(false)) => Some(String::new()),
            Some(Value::Number(n)) if n.as_f64() == Some(0.0) => Some(String::new()),
            Some(_) => None,
        };
        for el in self.with_attrs(&["data-tether-presence", "data-tether-fields"]) {
            if topic.is_some()
                && get_attr(&el, "data-tether-presence") == topic
                && fields.is_some()
                && get_attr(&el, "data-tether-fields") == fields
                && Some(get_attr(&el, "data-tether-keys").unwrap_or_default()) == keys
            {
                fill_presence_list(&el, entries);
            }
        }
    }

    /// A `count` event.
    pub(crate) fn render_count(&mut self, payload: &Value) {
        let topic = payload.get("topic");
        for el in self.with_attrs(&["data-tether-topic"]) {
            let own = get_attr(&el, "data-tether-topic").unwrap_or_default();
            if topic.and_then(Value::as_str) != Some(own.as_str()) {
                continue;
            }
            // Users or connections, when the payload has that number; else left as it is.
            let which = get_attr(&el, "data-tether-count").unwrap_or_default();
            if !matches!(which.as_str(), "users" | "connections") {
                continue;
            }
            if let Some(count) = payload.get(&which).filter(|v| v.is_number()) {
                tree::set_text(&el, &js_string(count));
            }
        }
    }

    /// A `modal` round trip's dialog (calls.mjs `buildModal`), appended to the body with
    /// `open` (as `showModal` leaves it); returns the `<dialog>`.
    pub(crate) fn open_modal(&mut self, call: &Value) -> NodeRef {
        let body = self.body();
        let make =
            |tag: &str| tree::create_element(&body, tag).unwrap_or_else(|| NodeRef::new_text(""));
        let get = |k: &str| call.get(k).filter(|v| !v.is_null());
        let dialog = make("dialog");
        tree::set_attr(&dialog, "class", "tether-modal");
        let form = make("form");
        tree::set_attr(&form, "method", "dialog");
        let heading = make("h2");
        tree::set_text(&heading, &get("title").map(js_string).unwrap_or_default());
        let content = make("div");
        tree::set_attr(&content, "class", "tether-modal-body");
        match get("html") {
            Some(html) => {
                for n in tree::parse_fragment(&content, &js_string(html)) {
                    content.append(n);
                }
            }
            None => tree::set_text(&content, &get("text").map(js_string).unwrap_or_default()),
        }
        let footer = make("div");
        tree::set_attr(&footer, "class", "tether-modal-buttons");
        for (value, label) in modal_buttons(call.get("buttons")) {
            let button = make("button");
            tree::set_attr(&button, "type", "submit");
            tree::set_attr(&button, "value", &value);
            tree::set_text(&button, &label);
            footer.append(button);
        }
        form.append(heading);
        form.append(content);
        form.append(footer);
        dialog.append(form.clone());
        body.append(dialog.clone());
        if let Some(fields) = call.get("fields").and_then(Value::as_object) {
            self.fill_fields(&form, fields);
        }
        tree::set_attr(&dialog, "open", "");
        dialog
    }

    /// Sets a modal form's fields from `{name: value}` (calls.mjs `fillFields`).
    fn fill_fields(&mut self, form: &NodeRef, fields: &Map<String, Value>) {
        for field in self.form_elements(form) {
            let name = get_attr(&field, "name")
                .filter(|n| !n.is_empty())
                .or_else(|| get_attr(&field, "id"))
                .unwrap_or_default();
            let Some(value) = fields.get(&name).filter(|_| !name.is_empty()) else {
                continue;
            };
            let wanted: Vec<String> = match value {
                Value::Array(items) => items.iter().map(js_string).collect(),
                v => vec![js_string(v)],
            };
            let field_type = super::control_type(&field).unwrap_or_default();
            if field_type == "checkbox" || field_type == "radio" {
                let on = value == &Value::Bool(true) || wanted.contains(&self.value(&field));
                self.set_checked(&field, on);
            } else if field_type == "select-multiple" {
                for option in super::select_options_of(&field) {
                    let on = wanted.contains(&super::option_value(&option));
                    self.live_mut(&option).selected = Some(on);
                }
            } else if field_type != "submit"
                && field_type != "button"
                && local_name(&field) != "fieldset"
            {
                let text = if value.is_null() {
                    String::new()
                } else {
                    js_string(value)
                };
                self.set_value(&field, &text);
            }
        }
    }
}

/// A modal's buttons as `(value, label)` (a bare string is both); one "OK" button when
/// there are none.
pub(crate) fn modal_buttons(buttons: Option<&Value>) -> Vec<(String, String)> {
    let pairs: Vec<(String, String)> = buttons
        .and_then(Value::as_array)
        .map(|items| {
            items
                .iter()
                .map(|b| match b {
                    Value::Array(pair) => {
                        let value = pair
                            .first()
                            .map(js_string)
                            .unwrap_or_else(|| "undefined".to_string());
                        let label = pair.get(1).map(js_string).unwrap_or_else(|| value.clone());
                        (value, label)
                    }
                    b => (js_string(b), js_string(b)),
                })
                .collect()
        })
        .unwrap_or_default();
    if pairs.is_empty() {
        vec![("ok".to_string(), "OK".to_string())]
    } else {
        pairs
    }
}

/// Shows `entries` in templated list `el` (lists.mjs `fillPresenceList`).
fn fill_presence_list(el: &NodeRef, entries: &[Value]) {
    let Some(template) = tree::element_children(el)
        .into_iter()
        .find(|c| local_name(c) == "template")
    else {
        return;
    };
    let Some(model) =
        tree::template_contents(&template).and_then(|c| c.children().find(tree::is_element))
    else {
        return;
    };
    let mut shown: Vec<(String, NodeRef)> = Vec::new();
    for child in tree::element_children(el) {
        if let Some(k) = get_attr(&child, "data-tether-key") {
            match shown.iter_mut().find(|(key, _)| key == &k) {
                Some(slot) => slot.1 = child,
                None => shown.push((k, child)),
            }
        }
    }
    let mut before = template.next_sibling();
    for entry in entries {
        let Some(key) = entry.get("key").and_then(Value::as_str) else {
            continue;
        };
        let item = match shown.iter().position(|(k, _)| k == key) {
            Some(i) => shown.remove(i).1,
            None => {
                let item = tree::deep_clone(&model);
                tree::set_attr(&item, "data-tether-key", key);
                item
            }
        };
        let meta = entry.get("meta").filter(|m| m.is_object() || m.is_array());
        let mut slots = Vec::new();
        if has_attr(&item, "data-field") {
            slots.push(item.clone());
        }
        slots.extend(item.descendants().filter(|n| has_attr(n, "data-field")));
        for slot in slots {
            let field = get_attr(&slot, "data-field").unwrap_or_default();
            let value = match field.as_str() {
                "key" => Some(Value::String(key.to_string())),
                "connections" => entry.get("connections").cloned(),
                f => meta.and_then(|m| m.get(f)).cloned(),
            };
            let text = text_of(value.as_ref());
            if slot.text_contents() != text {
                tree::set_text(&slot, &text);
            }
        }
        if before.as_ref() != Some(&item) {
            tree::insert_before(el, item.clone(), before.as_ref());
        }
        before = item.next_sibling();
    }
    for (_, gone) in shown {
        gone.detach();
    }
}
