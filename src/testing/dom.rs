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
//! The parts: `tree` (nodes, attributes in insertion order, fragment parsing, Chromium's
//! serialization), `style` (the `style` attribute as declarations), `patch` (patches.mjs),
//! `morph` (morph.mjs on Idiomorph's matching), `events` (events.mjs, controls.mjs), `lists`
//! (lists.mjs, calls.mjs `buildModal`), and the corpus runner (`corpus`, tests only).
//!
//! Live state is kept in side tables keyed by node address and checked through a `Weak`
//! reference, so a node that was detached and freed never hands its state to a new node
//! that happens to get the same address.

pub(crate) mod commands;
pub(crate) mod events;
pub(crate) mod lists;
mod morph;
pub(crate) mod patch;
mod style;
pub(crate) mod tree;

#[cfg(test)]
mod corpus;
#[cfg(test)]
mod tests;

use std::cell::RefCell;
use std::collections::HashMap;
use std::rc::{Rc, Weak};

use kuchikiki::traits::TendrilSink;
use kuchikiki::{Node, NodeRef};
use serde_json::{Map, Value};

use tree::{get_attr, has_attr, is_element, local_name};

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

/// What a browser keeps beside an element's markup.
#[derive(Default, Debug, Clone)]
struct Live {
    /// The dirty value of an input or textarea (typed, or set through `.value`).
    value: Option<String>,
    /// The dirty checkedness of an input.
    checked: Option<bool>,
    /// The dirty selectedness of an option.
    selected: Option<bool>,
    /// Properties the model does not know, set by patches (expandos).
    props: Map<String, Value>,
    /// Layout properties a test set.
    layout: Map<String, Value>,
}

struct Entry {
    node: Weak<Node>,
    live: Live,
}

/// An element (weakly) and the inline style waiting to be written into its attribute.
type PendingStyle = (Weak<Node>, Vec<style::Declaration>);

/// A page's document and the live state beside it.
pub(crate) struct Dom {
    document: NodeRef,
    live: HashMap<usize, Entry>,
    /// The page's counter of stamped `tether-id`s.
    stamped: u64,
    /// Inline styles changed through CSSOM on elements without a `style` attribute, not yet
    /// written into the attribute (Chromium writes it when the attributes are next read, which
    /// a read through `&self` may do).
    pending_style: RefCell<HashMap<usize, PendingStyle>>,
}

fn key(node: &NodeRef) -> usize {
    Rc::as_ptr(&node.0) as usize
}

/// JavaScript's `String(value)` of a JSON value.
pub(crate) fn js_string(value: &Value) -> String {
    match value {
        Value::String(s) => s.clone(),
        Value::Null => "null".to_string(),
        Value::Bool(b) => b.to_string(),
        Value::Number(n) => js_number(n),
        Value::Array(items) => items
            .iter()
            .map(|v| {
                if v.is_null() {
                    String::new()
                } else {
                    js_string(v)
                }
            })
            .collect::<Vec<_>>()
            .join(","),
        Value::Object(_) => "[object Object]".to_string(),
    }
}

fn js_number(n: &serde_json::Number) -> String {
    if let Some(i) = n.as_i64() {
        return i.to_string();
    }
    if let Some(u) = n.as_u64() {
        return u.to_string();
    }
    match n.as_f64() {
        Some(f) if f.fract() == 0.0 && f.abs() < 1e21 => format!("{f:.0}"),
        Some(f) => f.to_string(),
        None => n.to_string(),
    }
}

/// A JavaScript number as JSON: integral values as integers (`0`, not `0.0`).
pub(crate) fn number_value(f: f64) -> Value {
    if f.fract() == 0.0 && f.abs() < 9.0e15 {
        Value::from(f as i64)
    } else {
        serde_json::Number::from_f64(f).map_or(Value::Null, Value::Number)
    }
}

/// JavaScript truthiness of a JSON value.
pub(crate) fn truthy(value: &Value) -> bool {
    match value {
        Value::Null => false,
        Value::Bool(b) => *b,
        Value::Number(n) => n.as_f64().is_some_and(|f| f != 0.0 && !f.is_nan()),
        Value::String(s) => !s.is_empty(),
        _ => true,
    }
}

/// The property names no patch or query touches.
pub(crate) const FORBIDDEN_PROPS: &[&str] = &["__proto__", "prototype", "constructor"];

const INPUT_TYPES: &[&str] = &[
    "hidden",
    "text",
    "search",
    "tel",
    "url",
    "email",
    "password",
    "date",
    "month",
    "week",
    "time",
    "datetime-local",
    "number",
    "range",
    "color",
    "checkbox",
    "radio",
    "file",
    "submit",
    "image",
    "reset",
    "button",
];
/// Elements with a `disabled` property.
const DISABLEABLE: &[&str] = &[
    "button", "input", "select", "textarea", "fieldset", "optgroup", "option", "link",
];
/// Elements with a `name` property.
const NAMED: &[&str] = &[
    "button", "input", "select", "textarea", "fieldset", "form", "iframe", "img", "map", "meta",
    "object", "output", "param", "slot", "a", "embed", "frame",
];
const WITH_HREF: &[&str] = &["a", "area", "link", "base"];
const WITH_SRC: &[&str] = &[
    "img", "script", "iframe", "input", "video", "audio", "source", "embed", "track", "frame",
];
const WITH_TYPE: &[&str] = &[
    "input", "button", "select", "textarea", "ol", "li", "link", "script", "source", "style",
    "embed", "object", "a", "output", "fieldset",
];

impl Dom {
    /// Parses a whole document (the server-rendered page).
    pub(crate) fn parse(html: &str) -> Dom {
        Dom {
            document: kuchikiki::parse_html().one(html).document_node,
            live: HashMap::new(),
            stamped: 0,
            pending_style: RefCell::new(HashMap::new()),
        }
    }

    /// The `<body>` element (html5ever always makes one).
    pub(crate) fn body(&self) -> NodeRef {
        let html = self
            .document
            .children()
            .find(is_element)
            .unwrap_or_else(|| self.document.clone());
        html.children()
            .find(|n| local_name(n) == "body" || local_name(n) == "frameset")
            .unwrap_or(html)
    }

    /// Every element matching `selector`, in document order; `Err` says why the selector
    /// is invalid.
    pub(crate) fn select_all(&self, selector: &str) -> Result<Vec<NodeRef>, String> {
        if selector.contains("style") {
            self.sync_styles(None);
        }
        let compiled = tree::compile(selector)?;
        Ok(tree::select(&self.document, &compiled))
    }

    /// The first element matching `selector`.
    pub(crate) fn select_first(&self, selector: &str) -> Result<Option<NodeRef>, String> {
        if selector.contains("style") {
            self.sync_styles(None);
        }
        let compiled = tree::compile(selector)?;
        Ok(self
            .document
            .descendants()
            .find(|n| tree::matches(n, &compiled)))
    }

    /// `el.matches(selector)`.
    pub(crate) fn matches(&self, el: &NodeRef, selector: &str) -> Result<bool, String> {
        let compiled = tree::compile(selector)?;
        Ok(tree::matches(el, &compiled))
    }

    /// `el.closest(selector)` (`el` itself included); `None` for an invalid selector too.
    pub(crate) fn closest(&self, el: &NodeRef, selector: &str) -> Option<NodeRef> {
        let compiled = tree::compile(selector).ok()?;
        tree::closest(el, &compiled)
    }

    /// The whole document serialized (`document.documentElement.outerHTML`).
    pub(crate) fn html(&self) -> String {
        self.sync_styles(None);
        match self.document.children().find(is_element) {
            Some(root) => tree::outer_html(&root),
            None => String::new(),
        }
    }

    /// `el.innerHTML`.
    pub(crate) fn inner_html(&self, el: &NodeRef) -> String {
        self.sync_styles(Some(el));
        tree::inner_html(el)
    }

    /// `el.outerHTML`.
    pub(crate) fn outer_html(&self, el: &NodeRef) -> String {
        self.sync_styles(Some(el));
        tree::outer_html(el)
    }

    /// `el.textContent`.
    pub(crate) fn text(&self, el: &NodeRef) -> String {
        el.text_contents()
    }

    /// The lowercase tag name of an element (`""` for other nodes).
    pub(crate) fn tag(&self, el: &NodeRef) -> String {
        local_name(el)
    }

    /// Attribute `name` of `el`.
    pub(crate) fn attr(&self, el: &NodeRef, name: &str) -> Option<String> {
        if name.eq_ignore_ascii_case("style") {
            self.sync_style_of(el);
        }
        get_attr(el, name)
    }

    /// Sets attribute `name` of `el` to `value`, or removes it (`None`).
    pub(crate) fn set_attr(&mut self, el: &NodeRef, name: &str, value: Option<&str>) {
        self.write_attr(el, name, value);
    }

    fn live_of(&self, el: &NodeRef) -> Option<&Live> {
        let entry = self.live.get(&key(el))?;
        match entry.node.upgrade() {
            Some(rc) if Rc::ptr_eq(&rc, &el.0) => Some(&entry.live),
            _ => None,
        }
    }

    fn live_mut(&mut self, el: &NodeRef) -> &mut Live {
        if self.live.len() > 64 && self.live.len().is_power_of_two() {
            self.live.retain(|_, e| e.node.strong_count() > 0);
        }
        let k = key(el);
        let valid = self
            .live
            .get(&k)
            .is_some_and(|e| e.node.upgrade().is_some_and(|rc| Rc::ptr_eq(&rc, &el.0)));
        if !valid {
            self.live.insert(
                k,
                Entry {
                    node: Rc::downgrade(&el.0),
                    live: Live::default(),
                },
            );
        }
        match self.live.get_mut(&k) {
            Some(entry) => &mut entry.live,
            None => unreachable!("inserted above"),
        }
    }

    /// Whether `el` has a `value` property (`"value" in el`).
    fn has_value_prop(el: &NodeRef) -> bool {
        tree::is_html(el)
            && matches!(
                local_name(el).as_str(),
                "input"
                    | "textarea"
                    | "select"
                    | "option"
                    | "button"
                    | "li"
                    | "output"
                    | "data"
                    | "param"
                    | "meter"
                    | "progress"
            )
    }

    /// `el.value`: an input's live value (its `value` attribute until typed into), a
    /// textarea's (its text until typed into), a select's first selected option's value;
    /// `""` for other elements.
    pub(crate) fn value(&self, el: &NodeRef) -> String {
        match local_name(el).as_str() {
            "input" => {
                let t = input_type(el);
                match t.as_str() {
                    "checkbox" | "radio" => {
                        get_attr(el, "value").unwrap_or_else(|| "on".to_string())
                    }
                    "hidden" | "submit" | "image" | "reset" | "button" => {
                        get_attr(el, "value").unwrap_or_default()
                    }
                    "file" => String::new(),
                    _ => match self.live_of(el).and_then(|l| l.value.clone()) {
                        Some(v) => v,
                        None => sanitize(&t, &get_attr(el, "value").unwrap_or_default()),
                    },
                }
            }
            "textarea" => match self.live_of(el).and_then(|l| l.value.clone()) {
                Some(v) => v,
                None => el.text_contents(),
            },
            "select" => self
                .selected_options(el)
                .first()
                .map(option_value)
                .unwrap_or_default(),
            "option" => option_value(el),
            "output" => el.text_contents(),
            "meter" | "progress" => {
                let n = get_attr(el, "value")
                    .and_then(|v| v.trim().parse::<f64>().ok())
                    .filter(|f| f.is_finite());
                let n = n.map_or(0.0, |f| {
                    if local_name(el) == "progress" {
                        f.max(0.0)
                    } else {
                        f
                    }
                });
                serde_json::Number::from_f64(n)
                    .map(|n| js_number(&n))
                    .unwrap_or_else(|| "0".to_string())
            }
            "li" => get_attr(el, "value")
                .and_then(|v| v.trim().parse::<i64>().ok())
                .unwrap_or(0)
                .to_string(),
            _ => get_attr(el, "value").unwrap_or_default(),
        }
    }

    /// Sets `el.value` as a person typing would (the markup keeps its `value` attribute).
    pub(crate) fn set_value(&mut self, el: &NodeRef, value: &str) {
        match local_name(el).as_str() {
            "input" => match input_type(el).as_str() {
                "checkbox" | "radio" | "hidden" | "submit" | "image" | "reset" | "button" => {
                    tree::set_attr(el, "value", value)
                }
                "file" => {}
                t => {
                    // The value sanitization algorithm of the type (a number input takes
                    // only a valid number).
                    let clean = sanitize(t, value);
                    self.live_mut(el).value = Some(clean);
                }
            },
            "textarea" => self.live_mut(el).value = Some(value.to_string()),
            "select" => {
                let options = select_options_of(el);
                let mut found = false;
                for o in options {
                    let pick = !found && option_value(&o) == value;
                    found |= pick;
                    self.live_mut(&o).selected = Some(pick);
                }
            }
            "li" => {
                // A long: ToNumber, then ToInt32 (NaN is 0).
                let n = value
                    .trim()
                    .parse::<f64>()
                    .ok()
                    .filter(|f| f.is_finite())
                    .unwrap_or(0.0);
                tree::set_attr(el, "value", &(n.trunc() as i64 as i32).to_string());
            }
            "option" | "button" | "data" | "param" => tree::set_attr(el, "value", value),
            // A double reflected into the attribute (a non-finite value is refused, as the
            // browser throws).
            "meter" | "progress" => {
                if let Some(n) = value.trim().parse::<f64>().ok().filter(|f| f.is_finite()) {
                    let text = serde_json::Number::from_f64(n)
                        .map(|n| js_number(&n))
                        .unwrap_or_else(|| "0".to_string());
                    tree::set_attr(el, "value", &text);
                }
            }
            "output" => tree::set_text(el, value),
            _ => {
                self.live_mut(el)
                    .props
                    .insert("value".to_string(), Value::String(value.to_string()));
            }
        }
    }

    /// `el.checked` of a checkbox or radio (its `checked` attribute until changed).
    pub(crate) fn checked(&self, el: &NodeRef) -> bool {
        if local_name(el) != "input" {
            return self
                .live_of(el)
                .and_then(|l| l.props.get("checked"))
                .is_some_and(truthy);
        }
        match self.live_of(el).and_then(|l| l.checked) {
            Some(c) => c,
            None => has_attr(el, "checked"),
        }
    }

    /// Sets `el.checked`; checking a radio unchecks the others of its group (same name, same form).
    pub(crate) fn set_checked(&mut self, el: &NodeRef, checked: bool) {
        if local_name(el) != "input" {
            // `div.checked = true` is an expando.
            self.live_mut(el)
                .props
                .insert("checked".to_string(), Value::Bool(checked));
            return;
        }
        self.live_mut(el).checked = Some(checked);
        if checked && local_name(el) == "input" && input_type(el) == "radio" {
            for other in self.radio_group(el) {
                if &other != el {
                    self.live_mut(&other).checked = Some(false);
                }
            }
        }
    }

    fn radio_group(&self, el: &NodeRef) -> Vec<NodeRef> {
        let name = match get_attr(el, "name") {
            Some(n) if !n.is_empty() => n,
            _ => return vec![el.clone()],
        };
        let form = self.form_owner(el);
        let root = el
            .inclusive_ancestors()
            .last()
            .unwrap_or_else(|| el.clone());
        root.inclusive_descendants()
            .filter(|n| {
                local_name(n) == "input"
                    && input_type(n) == "radio"
                    && get_attr(n, "name").as_deref() == Some(name.as_str())
                    && self.form_owner(n) == form
            })
            .collect()
    }

    /// The options of a select with their selectedness applied: the selected ones.
    fn selected_options(&self, select: &NodeRef) -> Vec<NodeRef> {
        let options = select_options_of(select);
        let state: Vec<bool> = options
            .iter()
            .map(|o| self.option_selectedness(o))
            .collect();
        if has_attr(select, "multiple") {
            return options
                .into_iter()
                .zip(state)
                .filter(|(_, s)| *s)
                .map(|(o, _)| o)
                .collect();
        }
        if let Some(i) = state.iter().rposition(|s| *s) {
            return vec![options[i].clone()];
        }
        // The browser picks a default option when options are inserted or the select is
        // reset, not after a script or a person unselected them all.
        let dirty = options
            .iter()
            .any(|o| self.live_of(o).is_some_and(|l| l.selected.is_some()));
        let size = get_attr(select, "size")
            .and_then(|s| s.trim().parse::<u32>().ok())
            .unwrap_or(0);
        if size <= 1 && !dirty {
            if let Some(o) = options.iter().find(|o| !option_disabled(o)) {
                return vec![o.clone()];
            }
        }
        Vec::new()
    }

    fn option_selectedness(&self, option: &NodeRef) -> bool {
        match self.live_of(option).and_then(|l| l.selected) {
            Some(s) => s,
            None => has_attr(option, "selected"),
        }
    }

    /// `option.selected`: its selectedness as its select sees it.
    pub(crate) fn option_selected(&self, option: &NodeRef) -> bool {
        match select_of_option(option) {
            Some(select) => self.selected_options(&select).contains(option),
            None => self.option_selectedness(option),
        }
    }

    fn set_option_selected(&mut self, option: &NodeRef, selected: bool) {
        if let Some(select) = select_of_option(option) {
            if selected && !has_attr(&select, "multiple") {
                for o in select_options_of(&select) {
                    let s = &o == option;
                    self.live_mut(&o).selected = Some(s);
                }
                return;
            }
            // Freeze the others as they are shown, then change this one.
            for o in select_options_of(&select) {
                let s = self.option_selected(&o);
                self.live_mut(&o).selected = Some(s);
            }
        }
        self.live_mut(option).selected = Some(selected);
    }

    /// Selects the options of `select` whose value is in `values` (the others unselected;
    /// a single select takes the first that matches). `Err` names a value no option has.
    pub(crate) fn select_options(
        &mut self,
        select: &NodeRef,
        values: &[&str],
    ) -> Result<(), String> {
        let options = select_options_of(select);
        for v in values {
            if !options.iter().any(|o| option_value(o) == *v) {
                return Err(format!("no option has the value {v:?}"));
            }
        }
        let multiple = has_attr(select, "multiple");
        let mut taken = false;
        for o in options {
            let wanted = values.contains(&option_value(&o).as_str()) && (multiple || !taken);
            taken |= wanted;
            self.live_mut(&o).selected = Some(wanted);
        }
        Ok(())
    }

    /// Whether `el` is disabled (its `disabled` attribute, or a disabled fieldset around it).
    pub(crate) fn disabled(&self, el: &NodeRef) -> bool {
        if has_attr(el, "disabled") {
            return true;
        }
        let mut child = el.clone();
        let mut ancestor = tree::parent_element(el);
        while let Some(a) = ancestor {
            if local_name(&a) == "fieldset" && has_attr(&a, "disabled") {
                let first_legend = tree::element_children(&a)
                    .into_iter()
                    .find(|c| local_name(c) == "legend");
                if first_legend.as_ref() != Some(&child) {
                    return true;
                }
            }
            if local_name(&a) == "optgroup"
                && local_name(el) == "option"
                && has_attr(&a, "disabled")
            {
                return true;
            }
            child = a.clone();
            ancestor = tree::parent_element(&a);
        }
        false
    }

    /// A property the model cannot compute (layout: `offsetWidth`, `scrollTop`, …), set by
    /// the test; `query` round trips read it.
    pub(crate) fn set_layout_prop(&mut self, el: &NodeRef, name: &str, value: Value) {
        self.live_mut(el).layout.insert(name.to_string(), value);
    }

    /// What a `query` round trip reads of property `name` of `el` (calls.mjs `readProp`):
    /// `dataset`, `attributes`, `classList`, `style`, the reflected properties the model
    /// knows (`id`, `className`, `value`, `checked`, `disabled`, `textContent`, `tagName`,
    /// `innerHTML`, `outerHTML`, `hidden`, `title`, `name`, `type`, `href`, …), a layout
    /// property the test set, else `null`; forbidden names read `null`.
    pub(crate) fn read_prop(&self, el: &NodeRef, name: &str) -> Value {
        if FORBIDDEN_PROPS.contains(&name) {
            return Value::Null;
        }
        match name {
            "attributes" | "dataset" => self.sync_style_of(el),
            "innerHTML" | "outerHTML" => self.sync_styles(Some(el)),
            _ => {}
        }
        match name {
            "dataset" => return Value::Object(dataset(el)),
            "attributes" => {
                return Value::Object(
                    tree::attributes(el)
                        .into_iter()
                        .map(|(n, v)| (n, Value::String(v)))
                        .collect(),
                );
            }
            "classList" => {
                return Value::Array(class_list(el).into_iter().map(Value::String).collect());
            }
            "style" => {
                return Value::Object(
                    self.style_of(el)
                        .into_iter()
                        .map(|d| (d.name, Value::String(d.value)))
                        .collect(),
                );
            }
            _ => {}
        }
        if let Some(v) = self
            .live_of(el)
            .and_then(|l| l.layout.get(name).or_else(|| l.props.get(name)))
        {
            return match v {
                Value::Array(_) | Value::Object(_) => Value::Null,
                v => v.clone(),
            };
        }
        self.known_prop(el, name).unwrap_or(Value::Null)
    }

    /// A property the model computes for `el`, `None` when the element has no such property.
    fn known_prop(&self, el: &NodeRef, name: &str) -> Option<Value> {
        let tag = local_name(el);
        let tag = tag.as_str();
        let s = |v: String| Some(Value::String(v));
        let attr = |n: &str| get_attr(el, n).unwrap_or_default();
        match name {
            "id" => s(attr("id")),
            "className" => s(attr("class")),
            "title" | "lang" => s(attr(name)),
            "dir" => s(attr("dir").to_ascii_lowercase()),
            "hidden" => Some(Value::Bool(has_attr(el, "hidden"))),
            "textContent" => s(el.text_contents()),
            "innerText" => s(el.text_contents()),
            "tagName" | "nodeName" => s(tree::tag_name(el)),
            "localName" => s(tag.to_string()),
            "innerHTML" => s(tree::inner_html(el)),
            "outerHTML" => s(tree::outer_html(el)),
            "isConnected" => Some(Value::Bool(self.connected(el))),
            "childElementCount" => Some(Value::from(tree::element_children(el).len())),
            "value" if Self::has_value_prop(el) => {
                if tag == "li" {
                    Some(Value::from(self.value(el).parse::<i64>().unwrap_or(0)))
                } else if tag == "meter" || tag == "progress" {
                    Some(number_value(self.value(el).parse::<f64>().unwrap_or(0.0)))
                } else {
                    s(self.value(el))
                }
            }
            "defaultValue" if matches!(tag, "input" | "textarea" | "output") => {
                if tag == "input" {
                    s(attr("value"))
                } else {
                    s(el.text_contents())
                }
            }
            "checked" if tag == "input" => Some(Value::Bool(self.checked(el))),
            "defaultChecked" if tag == "input" => Some(Value::Bool(has_attr(el, "checked"))),
            "selected" if tag == "option" => Some(Value::Bool(self.option_selected(el))),
            "selectedIndex" if tag == "select" => {
                let options = select_options_of(el);
                let first = self.selected_options(el).into_iter().next();
                Some(Value::from(
                    first
                        .and_then(|f| options.iter().position(|o| o == &f))
                        .map_or(-1, |i| i as i64),
                ))
            }
            "disabled" if DISABLEABLE.contains(&tag) => Some(Value::Bool(has_attr(el, "disabled"))),
            "readOnly" if matches!(tag, "input" | "textarea") => {
                Some(Value::Bool(has_attr(el, "readonly")))
            }
            "required" if matches!(tag, "input" | "textarea" | "select") => {
                Some(Value::Bool(has_attr(el, "required")))
            }
            "multiple" if matches!(tag, "input" | "select") => {
                Some(Value::Bool(has_attr(el, "multiple")))
            }
            "open" if matches!(tag, "dialog" | "details") => {
                Some(Value::Bool(has_attr(el, "open")))
            }
            "placeholder" if matches!(tag, "input" | "textarea") => s(attr("placeholder")),
            "alt" if matches!(tag, "img" | "input" | "area") => s(attr("alt")),
            "name" if NAMED.contains(&tag) => s(attr("name")),
            "type" => control_type(el).map(Value::String).or_else(|| {
                if WITH_TYPE.contains(&tag) {
                    s(attr("type"))
                } else {
                    None
                }
            }),
            "href" if WITH_HREF.contains(&tag) => s(attr("href")),
            "src" if WITH_SRC.contains(&tag) => s(attr("src")),
            "htmlFor" if matches!(tag, "label" | "output") => s(attr("for")),
            _ => None,
        }
    }

    fn connected(&self, el: &NodeRef) -> bool {
        el.inclusive_ancestors().any(|a| a == self.document)
    }

    /// `el[name] = value` as a `prop` patch or a plain key of a `props` patch sets it (the
    /// patch was checked). `html` marks a value the server sent as Html.
    pub(crate) fn set_prop(
        &mut self,
        el: &NodeRef,
        name: &str,
        value: &Value,
        html: bool,
    ) -> Result<(), String> {
        let tag = local_name(el);
        let tag = tag.as_str();
        let text = || js_string(value);
        let null_empty = || {
            if value.is_null() {
                String::new()
            } else {
                js_string(value)
            }
        };
        let flag = |dom: &mut Dom, attr: &str| {
            let _ = dom;
            if truthy(value) {
                tree::set_attr(el, attr, "")
            } else {
                tree::remove_attr(el, attr);
            }
        };
        match name {
            "value" if Self::has_value_prop(el) => {
                let v = null_empty();
                self.set_value(el, &v);
            }
            "checked" if tag == "input" => self.set_checked(el, truthy(value)),
            "selected" if tag == "option" => self.set_option_selected(el, truthy(value)),
            "defaultValue" if tag == "input" => tree::set_attr(el, "value", &null_empty()),
            "defaultValue" if tag == "textarea" => tree::set_text(el, &null_empty()),
            "defaultChecked" if tag == "input" => flag(self, "checked"),
            "textContent" | "innerText" => tree::set_text(el, &null_empty()),
            "innerHTML" => {
                let markup = null_empty();
                let nodes = tree::parse_fragment(el, &markup);
                match tree::template_contents(el) {
                    Some(content) => tree::replace_children(&content, nodes),
                    None => tree::replace_children(el, nodes),
                }
            }
            "outerHTML" => {
                let parent = el.parent().ok_or("outerHTML: the element has no parent")?;
                if !is_element(&parent) {
                    return Err("outerHTML: the element's parent is the document".to_string());
                }
                for n in tree::parse_fragment(&parent, &null_empty()) {
                    el.insert_before(n);
                }
                el.detach();
            }
            "id" => tree::set_attr(el, "id", &text()),
            "className" => tree::set_attr(el, "class", &text()),
            "title" | "lang" | "dir" => tree::set_attr(el, name, &text()),
            "hidden" => flag(self, "hidden"),
            "disabled" if DISABLEABLE.contains(&tag) => flag(self, "disabled"),
            "readOnly" if matches!(tag, "input" | "textarea") => flag(self, "readonly"),
            "required" if matches!(tag, "input" | "textarea" | "select") => flag(self, "required"),
            "multiple" if matches!(tag, "input" | "select") => flag(self, "multiple"),
            "open" if matches!(tag, "dialog" | "details") => flag(self, "open"),
            "placeholder" if matches!(tag, "input" | "textarea") => {
                tree::set_attr(el, name, &text())
            }
            "alt" if matches!(tag, "img" | "input" | "area") => tree::set_attr(el, name, &text()),
            "name" if NAMED.contains(&tag) => tree::set_attr(el, "name", &text()),
            "type" if WITH_TYPE.contains(&tag) && tag != "select" && tag != "textarea" => {
                tree::set_attr(el, "type", &text())
            }
            "href" if WITH_HREF.contains(&tag) => tree::set_attr(el, "href", &text()),
            "src" if WITH_SRC.contains(&tag) => tree::set_attr(el, "src", &text()),
            "htmlFor" if matches!(tag, "label" | "output") => tree::set_attr(el, "for", &text()),
            "srcdoc" if tag == "iframe" && html => tree::set_attr(el, "srcdoc", &text()),
            _ if read_only(el, name) => {
                // A module is strict code: assigning a getter-only property throws.
                return Err(format!(
                    "Cannot set property {name} of #<{}> which has only a getter",
                    tree::tag_name(el)
                ));
            }
            "style" => {
                // `el.style = text` forwards to cssText.
                let css = null_empty();
                self.set_css_text(el, &css);
            }
            "classList" => tree::set_attr(el, "class", &text()),
            _ => {
                self.live_mut(el)
                    .props
                    .insert(name.to_string(), value.clone());
            }
        }
        Ok(())
    }

    fn pending_style_of(&self, el: &NodeRef) -> Option<Vec<style::Declaration>> {
        let pending = self.pending_style.borrow();
        let (weak, decls) = pending.get(&key(el))?;
        match weak.upgrade() {
            Some(rc) if Rc::ptr_eq(&rc, &el.0) => Some(decls.clone()),
            _ => None,
        }
    }

    fn set_pending_style(&self, el: &NodeRef, decls: Option<Vec<style::Declaration>>) {
        let mut pending = self.pending_style.borrow_mut();
        pending.retain(|_, (weak, _)| weak.strong_count() > 0);
        match decls {
            Some(decls) => {
                pending.insert(key(el), (Rc::downgrade(&el.0), decls));
            }
            None => {
                pending.remove(&key(el));
            }
        }
    }

    /// The inline style of `el`: its pending declarations, else its `style` attribute's.
    pub(crate) fn style_of(&self, el: &NodeRef) -> Vec<style::Declaration> {
        self.pending_style_of(el)
            .unwrap_or_else(|| style::declarations(el))
    }

    /// `el.style.setProperty`/`removeProperty` (or `el.style[camel] = …`): an existing
    /// attribute is rewritten in place, else the change waits for the next read.
    pub(crate) fn set_style(&mut self, el: &NodeRef, key: &str, value: Option<&str>) {
        match self.pending_style_of(el) {
            None if has_attr(el, "style") => {
                let mut decls = style::declarations(el);
                if style::set_property(&mut decls, key, value) {
                    tree::set_attr(el, "style", &style::serialize(&decls));
                }
            }
            pending => {
                let had = pending.is_some();
                let mut decls = pending.unwrap_or_default();
                if style::set_property(&mut decls, key, value) || had {
                    self.set_pending_style(el, Some(decls));
                }
            }
        }
    }

    /// `el.style = text` (cssText).
    fn set_css_text(&mut self, el: &NodeRef, text: &str) {
        let decls = style::parse(text);
        if self.pending_style_of(el).is_none() && has_attr(el, "style") {
            tree::set_attr(el, "style", &style::serialize(&decls));
        } else {
            self.set_pending_style(el, Some(decls));
        }
    }

    /// Writes pending inline styles into `style` attributes (appended: the attribute was
    /// missing), for the elements in `root`'s subtree or, without one, everywhere: what
    /// Chromium does when the attributes are read.
    pub(crate) fn sync_styles(&self, root: Option<&NodeRef>) {
        if self.pending_style.borrow().is_empty() {
            return;
        }
        let mut due = Vec::new();
        self.pending_style.borrow_mut().retain(|_, (weak, decls)| {
            let Some(rc) = weak.upgrade() else {
                return false;
            };
            let node = NodeRef(rc);
            if root.is_some_and(|r| !node.inclusive_ancestors().any(|a| &a == r)) {
                return true;
            }
            due.push((node, std::mem::take(decls)));
            false
        });
        for (node, decls) in due {
            tree::set_attr(&node, "style", &style::serialize(&decls));
        }
    }

    /// Writes `el`'s own pending inline style into its `style` attribute (a read of its
    /// attribute list: `attributes`, `dataset`).
    pub(crate) fn sync_style_of(&self, el: &NodeRef) {
        if let Some(decls) = self.pending_style_of(el) {
            self.set_pending_style(el, None);
            tree::set_attr(el, "style", &style::serialize(&decls));
        }
    }

    /// Sets or removes an attribute as `setAttribute`/`removeAttribute` do (a pending
    /// inline style is replaced or dropped with the `style` attribute).
    pub(crate) fn write_attr(&mut self, el: &NodeRef, name: &str, value: Option<&str>) {
        if name.eq_ignore_ascii_case("style") {
            self.set_pending_style(el, None);
        }
        match value {
            Some(v) => tree::set_attr(el, name, v),
            None => {
                tree::remove_attr(el, name);
            }
        }
    }

    /// `#<id>` of an element with an id, else its stamped `[tether-id="…"]` (calls.mjs
    /// `selectorOf`).
    pub(crate) fn selector_of(&mut self, el: &NodeRef) -> String {
        match get_attr(el, "id") {
            Some(id) if !id.is_empty() => format!("#{}", css_escape(&id)),
            _ => {
                let id = self.stamp(el);
                format!("[tether-id=\"{}\"]", css_escape(&id))
            }
        }
    }

    /// Stamps a `tether-id` on `el` when it has none (t1, t2, … skipping ids in the document).
    pub(crate) fn stamp(&mut self, el: &NodeRef) -> String {
        if let Some(id) = get_attr(el, "tether-id").filter(|id| !id.is_empty()) {
            return id;
        }
        let taken: std::collections::HashSet<String> = self
            .document
            .descendants()
            .filter_map(|n| get_attr(&n, "tether-id"))
            .collect();
        let id = loop {
            self.stamped += 1;
            let id = format!("t{}", self.stamped);
            if !taken.contains(&id) {
                break id;
            }
        };
        tree::set_attr(el, "tether-id", &id);
        id
    }

    /// Whether `el` is in a `tether-ignore` subtree (or is its root).
    pub(crate) fn ignored(&self, el: &NodeRef) -> bool {
        tree::closest_with_attr(el, "tether-ignore").is_some()
    }

    /// Removes `el` from the document.
    pub(crate) fn remove(&mut self, el: &NodeRef) {
        el.detach();
    }

    /// The form owner of a form-associated element: its `form` attribute's form (in the
    /// document), else the closest form.
    pub(crate) fn form_owner(&self, el: &NodeRef) -> Option<NodeRef> {
        if let Some(id) = get_attr(el, "form") {
            let root = el
                .inclusive_ancestors()
                .last()
                .unwrap_or_else(|| el.clone());
            return root
                .descendants()
                .find(|n| get_attr(n, "id").as_deref() == Some(id.as_str()))
                .filter(|n| local_name(n) == "form");
        }
        tree::parent_element(el)
            .and_then(|p| p.inclusive_ancestors().find(|a| local_name(a) == "form"))
    }
}

/// Properties with a getter only: assigning one throws (tether.js is module code, strict).
fn read_only(el: &NodeRef, name: &str) -> bool {
    const ALL: &[&str] = &[
        "tagName",
        "nodeName",
        "localName",
        "nodeType",
        "namespaceURI",
        "prefix",
        "baseURI",
        "isConnected",
        "ownerDocument",
        "parentNode",
        "parentElement",
        "childNodes",
        "children",
        "firstChild",
        "lastChild",
        "firstElementChild",
        "lastElementChild",
        "nextSibling",
        "previousSibling",
        "nextElementSibling",
        "previousElementSibling",
        "childElementCount",
        "attributes",
        "dataset",
        "shadowRoot",
        "assignedSlot",
        "offsetWidth",
        "offsetHeight",
        "offsetTop",
        "offsetLeft",
        "offsetParent",
        "clientWidth",
        "clientHeight",
        "clientTop",
        "clientLeft",
        "scrollWidth",
        "scrollHeight",
    ];
    const CONTROLS: &[&str] = &[
        "form",
        "labels",
        "validity",
        "validationMessage",
        "willValidate",
    ];
    let tag = local_name(el);
    ALL.contains(&name)
        || (CONTROLS.contains(&name)
            && matches!(
                tag.as_str(),
                "input" | "button" | "select" | "textarea" | "output" | "fieldset" | "object"
            ))
        || (name == "type" && matches!(tag.as_str(), "select" | "textarea" | "fieldset" | "output"))
        || (matches!(name, "options" | "selectedOptions") && tag == "select")
        || (name == "textLength" && tag == "textarea")
}

/// `el.type` of an input (unknown types read as `text`).
pub(crate) fn input_type(el: &NodeRef) -> String {
    let t = get_attr(el, "type")
        .unwrap_or_default()
        .to_ascii_lowercase();
    if INPUT_TYPES.contains(&t.as_str()) {
        t
    } else {
        "text".to_string()
    }
}

/// The `type` property of the form-associated elements, `None` for others.
pub(crate) fn control_type(el: &NodeRef) -> Option<String> {
    match local_name(el).as_str() {
        "input" => Some(input_type(el)),
        "button" => {
            let t = get_attr(el, "type")
                .unwrap_or_default()
                .to_ascii_lowercase();
            Some(if t == "reset" || t == "button" {
                t
            } else {
                "submit".to_string()
            })
        }
        "select" => Some(
            if has_attr(el, "multiple") {
                "select-multiple"
            } else {
                "select-one"
            }
            .to_string(),
        ),
        "textarea" => Some("textarea".to_string()),
        "fieldset" => Some("fieldset".to_string()),
        "output" => Some("output".to_string()),
        _ => None,
    }
}

fn sanitize(input_type: &str, value: &str) -> String {
    match input_type {
        "text" | "search" | "tel" | "password" => {
            value.chars().filter(|c| *c != '\n' && *c != '\r').collect()
        }
        "url" | "email" => value
            .chars()
            .filter(|c| *c != '\n' && *c != '\r')
            .collect::<String>()
            .trim_matches(|c: char| c.is_ascii_whitespace())
            .to_string(),
        "number" => {
            if valid_float(value) {
                value.to_string()
            } else {
                String::new()
            }
        }
        "range" => {
            if valid_float(value) {
                value.to_string()
            } else {
                "50".to_string()
            }
        }
        "color" => {
            let hex = value.len() == 7
                && value.starts_with('#')
                && value[1..].chars().all(|c| c.is_ascii_hexdigit());
            if hex {
                value.to_ascii_lowercase()
            } else {
                "#000000".to_string()
            }
        }
        _ => value.to_string(),
    }
}

/// A valid floating-point number (HTML): `-?` digits with an optional fraction and exponent.
fn valid_float(value: &str) -> bool {
    let rest = value.strip_prefix('-').unwrap_or(value);
    let (mantissa, exponent) = match rest.find(['e', 'E']) {
        Some(i) => (&rest[..i], Some(&rest[i + 1..])),
        None => (rest, None),
    };
    let (int, frac) = match mantissa.split_once('.') {
        Some((i, f)) => (i, Some(f)),
        None => (mantissa, None),
    };
    let digits = |s: &str| !s.is_empty() && s.chars().all(|c| c.is_ascii_digit());
    let mantissa_ok = match frac {
        Some(f) => digits(f) && (int.is_empty() || digits(int)),
        None => digits(int),
    };
    let exponent_ok = exponent.is_none_or(|e| digits(e.strip_prefix(['+', '-']).unwrap_or(e)));
    mantissa_ok && exponent_ok
}

/// The options of a select: its option children and those of its optgroup children.
pub(crate) fn select_options_of(select: &NodeRef) -> Vec<NodeRef> {
    let mut options = Vec::new();
    for child in tree::element_children(select) {
        match local_name(&child).as_str() {
            "option" => options.push(child),
            "optgroup" => options.extend(
                tree::element_children(&child)
                    .into_iter()
                    .filter(|c| local_name(c) == "option"),
            ),
            _ => {}
        }
    }
    options
}

fn select_of_option(option: &NodeRef) -> Option<NodeRef> {
    let parent = tree::parent_element(option)?;
    match local_name(&parent).as_str() {
        "select" => Some(parent),
        "optgroup" => tree::parent_element(&parent).filter(|p| local_name(p) == "select"),
        _ => None,
    }
}

fn option_disabled(option: &NodeRef) -> bool {
    has_attr(option, "disabled")
        || tree::parent_element(option)
            .is_some_and(|p| local_name(&p) == "optgroup" && has_attr(&p, "disabled"))
}

/// An option's value: its `value` attribute, else its text with whitespace collapsed.
pub(crate) fn option_value(option: &NodeRef) -> String {
    match get_attr(option, "value") {
        Some(v) => v,
        None => option
            .text_contents()
            .split(|c: char| c.is_ascii_whitespace())
            .filter(|s| !s.is_empty())
            .collect::<Vec<_>>()
            .join(" "),
    }
}

/// `{...el.dataset}`: `data-*` attributes, names camelCased.
pub(crate) fn dataset(el: &NodeRef) -> Map<String, Value> {
    let mut out = Map::new();
    if !tree::is_html(el) && !is_element(el) {
        return out;
    }
    for (name, value) in tree::attributes(el) {
        if let Some(rest) = name.strip_prefix("data-") {
            if rest.chars().any(|c| c.is_ascii_uppercase()) {
                continue;
            }
            let mut key = String::new();
            let mut chars = rest.chars().peekable();
            while let Some(c) = chars.next() {
                if c == '-' {
                    if let Some(n) = chars.peek().copied().filter(|n| n.is_ascii_lowercase()) {
                        key.push(n.to_ascii_uppercase());
                        chars.next();
                        continue;
                    }
                }
                key.push(c);
            }
            out.insert(key, Value::String(value));
        }
    }
    out
}

/// The attribute a `dataset` name sets (`fooBar` → `data-foo-bar`); `Err` for a name the
/// browser refuses (a `-` before a lowercase letter).
pub(crate) fn dataset_attr(name: &str) -> Result<String, String> {
    let chars: Vec<char> = name.chars().collect();
    for w in chars.windows(2) {
        if w[0] == '-' && w[1].is_ascii_lowercase() {
            return Err(format!("dataset name {name} is not valid"));
        }
    }
    let mut out = String::from("data-");
    for c in chars {
        if c.is_ascii_uppercase() {
            out.push('-');
            out.push(c.to_ascii_lowercase());
        } else {
            out.push(c);
        }
    }
    Ok(out)
}

/// `[...el.classList]`: the class attribute's tokens, each once.
pub(crate) fn class_list(el: &NodeRef) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for token in get_attr(el, "class")
        .unwrap_or_default()
        .split(|c: char| c.is_ascii_whitespace())
    {
        if !token.is_empty() && !out.iter().any(|t| t == token) {
            out.push(token.to_string());
        }
    }
    out
}

/// `CSS.escape`.
pub(crate) fn css_escape(value: &str) -> String {
    let chars: Vec<char> = value.chars().collect();
    let mut out = String::new();
    for (i, &c) in chars.iter().enumerate() {
        let code = c as u32;
        if code == 0 {
            out.push('\u{fffd}');
        } else if (1..=0x1f).contains(&code)
            || code == 0x7f
            || (i == 0 && c.is_ascii_digit())
            || (i == 1 && c.is_ascii_digit() && chars[0] == '-')
        {
            out.push_str(&format!("\\{code:x} "));
        } else if i == 0 && c == '-' && chars.len() == 1 {
            out.push_str("\\-");
        } else if code >= 0x80 || c == '-' || c == '_' || c.is_ascii_alphanumeric() {
            out.push(c);
        } else {
            out.push('\\');
            out.push(c);
        }
    }
    out
}
