//! Patches as tether.js checks and applies them (patches.mjs): `refusal`, the same rules as
//! the server's `Patch::check`, then the element ops (html, morph, text, prop, props, insert,
//! remove) on the model and the other ops (js, redirect, set_url, console, cookie) as an
//! [`Effect`] for the page.
//!
//! For: [`Dom::apply_patch`].
//! Never: applies a refused patch, fills an element in a `tether-ignore` subtree through
//! a selector tether built from an attribute, or changes what is inside a
//! `tether-update="ignore"` element.

use kuchikiki::NodeRef;
use serde_json::{Map, Value};

use super::{Dom, Effect, FORBIDDEN_PROPS, js_string, tree};

const CONSOLE_LEVELS: &[&str] = &["log", "info", "warn", "error", "debug"];
/// Property and attribute names (lowercased) whose value is parsed as markup.
pub(crate) const MARKUP_PROPS: &[&str] = &["innerhtml", "outerhtml", "srcdoc"];
const URL_PROPS: &[&str] = &["href", "src", "action", "formaction"];
/// Attributes (lowercased) whose value is a URL.
pub(crate) const URL_ATTRIBUTES: &[&str] = &["href", "src", "action", "formaction", "xlink:href"];
const PROPS_GROUPS: &[&str] = &["style", "dataset", "attributes", "classList"];
const CLASS_LIST_OPS: &[&str] = &["add", "remove", "toggle"];
const ELEMENT_OPS: &[&str] = &["html", "morph", "text", "prop", "props", "insert", "remove"];

pub(crate) fn is_script_url(value: &str) -> bool {
    let scheme: String = value
        .chars()
        .filter(|c| !(('\u{0}'..='\u{20}').contains(c) || *c == '\u{7f}'))
        .take(11)
        .collect::<String>()
        .to_lowercase();
    scheme.starts_with("javascript:") || scheme.starts_with("vbscript:")
}

fn plain_prop_refusal(name: &str, value: &Value) -> Option<String> {
    if FORBIDDEN_PROPS.contains(&name) {
        return Some(format!("property {name} is forbidden"));
    }
    let lower = name.to_lowercase();
    if MARKUP_PROPS.contains(&lower.as_str()) || lower.starts_with("on") {
        return Some(format!("property {name} takes only Html"));
    }
    if URL_PROPS.contains(&lower.as_str()) && value.as_str().is_some_and(is_script_url) {
        return Some(format!("property {name} takes only Html"));
    }
    None
}

fn attribute_refusal(name: &str, value: &Value) -> Option<String> {
    let lower = name.to_lowercase();
    if FORBIDDEN_PROPS.contains(&name) {
        return Some(format!("attribute {name} is forbidden"));
    }
    if MARKUP_PROPS.contains(&lower.as_str()) || lower.starts_with("on") {
        return Some(format!("attribute {name} is refused (markup or script)"));
    }
    if URL_ATTRIBUTES.contains(&lower.as_str())
        && !value.is_null()
        && is_script_url(&js_string(value))
    {
        return Some(format!("attribute {name} is refused (script URL)"));
    }
    None
}

fn props_refusal(props: &Value) -> Option<String> {
    let Some(props) = props.as_object() else {
        return Some("props must be an object".to_string());
    };
    for (key, value) in props {
        if !PROPS_GROUPS.contains(&key.as_str()) {
            if let Some(r) = plain_prop_refusal(key, value) {
                return Some(r);
            }
            continue;
        }
        let Some(group) = value.as_object() else {
            return Some(format!("props.{key} must be an object"));
        };
        for (name, v) in group {
            if FORBIDDEN_PROPS.contains(&name.as_str()) {
                return Some(format!("{key} {name} is forbidden"));
            }
            if key == "attributes" {
                if let Some(r) = attribute_refusal(name, v) {
                    return Some(r);
                }
            } else if key == "classList"
                && (!CLASS_LIST_OPS.contains(&name.as_str()) || !v.is_array())
            {
                return Some(format!(
                    "classList takes add, remove and toggle arrays, not {name}"
                ));
            }
        }
    }
    None
}

fn url_refusal(op: &str, url: &Value) -> Option<String> {
    match url.as_str() {
        None => Some(format!("{op} needs a url")),
        Some(u) if is_script_url(u) => Some(format!("{op} to a script URL is refused")),
        Some(_) => None,
    }
}

fn is_token(name: &str) -> bool {
    !name.is_empty()
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "!#$%&'*+-.^_`|~".contains(c))
}

fn is_cookie_octets(value: &str) -> bool {
    value
        .chars()
        .all(|c| matches!(c as u32, 0x21 | 0x23..=0x2b | 0x2d..=0x3a | 0x3c..=0x5b | 0x5d..=0x7e))
}

fn cookie_refusal(patch: &Map<String, Value>) -> Option<String> {
    let get = |k: &str| patch.get(k).filter(|v| !v.is_null());
    let name = match patch.get("name") {
        Some(Value::String(n)) if is_token(n) => n.clone(),
        other => {
            return Some(format!(
                "cookie name {} is not a token",
                other.map_or("undefined".to_string(), js_string)
            ));
        }
    };
    if let Some(v) = get("value") {
        if !v.as_str().is_some_and(is_cookie_octets) {
            return Some(format!("cookie {name}: value is not cookie-octets"));
        }
    }
    if let Some(v) = get("path") {
        if !v.as_str().is_some_and(is_cookie_octets) {
            return Some(format!("cookie {name}: path is not cookie-octets"));
        }
    }
    if let Some(v) = get("max_age") {
        let integer = v.is_i64() || v.is_u64() || v.as_f64().is_some_and(|f| f.fract() == 0.0);
        if !integer {
            return Some(format!("cookie {name}: max_age must be an integer"));
        }
    }
    None
}

/// Why `patch` must not be applied (patches.mjs `refusal`), or `None`.
pub(crate) fn refusal(patch: &Map<String, Value>, exec_js: bool) -> Option<String> {
    let field = |k: &str| patch.get(k).unwrap_or(&Value::Null);
    match patch.get("op").and_then(Value::as_str).unwrap_or("") {
        "js" => (!exec_js).then(|| "script patches are disabled (exec_js)".to_string()),
        "morph" => (!field("html").is_string()).then(|| "morph takes html".to_string()),
        "prop" => {
            let prop = js_string(field("prop"));
            if FORBIDDEN_PROPS.contains(&prop.as_str()) {
                return Some(format!("property {prop} is forbidden"));
            }
            if !field("html").is_null() {
                None
            } else if !patch.contains_key("value") {
                Some("prop takes a value or html".to_string())
            } else {
                plain_prop_refusal(&prop, field("value"))
            }
        }
        "insert" => (!field("html").is_string() && !field("text").is_string())
            .then(|| "insert takes html or text".to_string()),
        "props" => props_refusal(field("props")),
        op @ ("redirect" | "set_url") => url_refusal(op, field("url")),
        "console" => {
            let level = field("level");
            if level.as_str().is_some_and(|l| CONSOLE_LEVELS.contains(&l)) {
                None
            } else {
                Some(format!("console level {} is not allowed", js_string(level)))
            }
        }
        "cookie" => cookie_refusal(patch),
        _ => None,
    }
}

/// A DOMString argument: `undefined` (a missing field) is "undefined".
fn dom_string(v: Option<&Value>) -> String {
    match v {
        None => "undefined".to_string(),
        Some(v) => js_string(v),
    }
}

fn string_of(v: Option<&Value>) -> String {
    match v {
        None | Some(Value::Null) => String::new(),
        Some(v) => js_string(v),
    }
}

impl Dom {
    /// Checks `patch` (patches.mjs `refusal`) and applies it. `Err` is the refusal, an
    /// invalid selector, an unknown op or a failure (the DOM is then as the browser would
    /// leave it). `disowned` is told of each element whose `disabled` the patch set.
    pub(crate) fn apply_patch(
        &mut self,
        patch: &Value,
        exec_js: bool,
        disowned: &mut dyn FnMut(&NodeRef),
    ) -> Result<Effect, String> {
        let Some(patch) = patch.as_object() else {
            return Err("patch: a patch is an object".to_string());
        };
        if let Some(refused) = refusal(patch, exec_js) {
            return Err(format!("patch: {refused}"));
        }
        let op = patch
            .get("op")
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_string();
        let get = |k: &str| patch.get(k).filter(|v| !v.is_null());
        match op.as_str() {
            "js" => return Ok(Effect::Js(string_of(patch.get("js")))),
            "redirect" => return Ok(Effect::Redirect(string_of(patch.get("url")))),
            "set_url" => return Ok(Effect::SetUrl(string_of(patch.get("url")))),
            "console" => {
                return Ok(Effect::Console {
                    level: string_of(patch.get("level")),
                    msg: string_of(patch.get("msg")),
                });
            }
            "cookie" => {
                return Ok(Effect::Cookie {
                    name: string_of(patch.get("name")),
                    value: get("value").map(js_string),
                    path: get("path").map(js_string),
                    max_age: get("max_age")
                        .and_then(|v| v.as_i64().or_else(|| v.as_f64().map(|f| f as i64))),
                });
            }
            _ => {}
        }
        if !ELEMENT_OPS.contains(&op.as_str()) {
            return Err(format!("patch: unknown op {}", string_of(patch.get("op"))));
        }
        // querySelectorAll(String(sel)): a missing selector is "undefined", a type selector.
        let sel = dom_string(patch.get("sel"));
        let elements = self
            .select_all(&sel)
            .map_err(|_| format!("patch: invalid selector {sel}"))?;
        let built = built_selector(&sel);
        for el in elements {
            if built && self.ignored(&el) {
                continue;
            }
            if self.left_alone(&el, &op, patch) {
                continue;
            }
            self.apply_to(&op, patch, &el, disowned)
                .map_err(|e| format!("patch: {op}: {e}"))?;
        }
        Ok(Effect::Done)
    }

    /// Whether the patch leaves `el` alone (patches.mjs `leftAlone`): nothing inside a
    /// `tether-update="ignore"` element is patched; the element itself keeps its children.
    fn left_alone(&self, el: &NodeRef, op: &str, patch: &Map<String, Value>) -> bool {
        let Some(frozen) = self.closest(el, r#"[tether-update="ignore"]"#) else {
            return false;
        };
        if &frozen != el {
            return true;
        }
        let inner = |name: &str| {
            matches!(
                name.to_lowercase().as_str(),
                "innerhtml" | "innertext" | "textcontent"
            )
        };
        match op {
            "html" | "morph" | "text" => true,
            "insert" => matches!(
                patch.get("position").and_then(Value::as_str),
                Some("afterbegin" | "beforeend")
            ),
            "prop" => inner(&string_of(patch.get("prop"))),
            "props" => patch
                .get("props")
                .and_then(Value::as_object)
                .is_some_and(|props| props.keys().any(|k| inner(k))),
            _ => false,
        }
    }

    fn apply_to(
        &mut self,
        op: &str,
        patch: &Map<String, Value>,
        el: &NodeRef,
        disowned: &mut dyn FnMut(&NodeRef),
    ) -> Result<(), String> {
        let html = patch.get("html").filter(|v| !v.is_null());
        match op {
            "html" => {
                // innerHTML takes null as "", undefined as "undefined".
                let markup = match patch.get("html") {
                    Some(Value::Null) => String::new(),
                    v => dom_string(v),
                };
                self.set_prop(el, "innerHTML", &Value::String(markup), true)?;
            }
            "morph" => {
                // Idiomorph reads the attributes of what it morphs.
                self.sync_styles(Some(el));
                let markup = string_of(patch.get("html"));
                self.morph(el, &markup);
            }
            "text" => {
                let text = string_of(patch.get("text"));
                tree::set_text(el, &text);
            }
            "prop" => {
                let prop = string_of(patch.get("prop"));
                if prop == "disabled" {
                    disowned(el);
                }
                let (value, is_html) = match html {
                    Some(h) => (h.clone(), true),
                    None => (patch.get("value").cloned().unwrap_or(Value::Null), false),
                };
                self.set_prop(el, &prop, &value, is_html)?;
            }
            "props" => {
                let props = patch
                    .get("props")
                    .and_then(Value::as_object)
                    .cloned()
                    .unwrap_or_default();
                self.apply_props(el, &props, disowned)?;
            }
            "insert" => {
                let position = dom_string(patch.get("position"));
                match html {
                    Some(h) => self.insert_adjacent(el, &position, &js_string(h), true)?,
                    None => {
                        self.insert_adjacent(el, &position, &dom_string(patch.get("text")), false)?
                    }
                }
            }
            "remove" => el.detach(),
            _ => return Err(format!("unknown op {op}")),
        }
        Ok(())
    }

    fn apply_props(
        &mut self,
        el: &NodeRef,
        props: &Map<String, Value>,
        disowned: &mut dyn FnMut(&NodeRef),
    ) -> Result<(), String> {
        for (key, value) in props {
            let group = value.as_object();
            match (key.as_str(), group) {
                ("style", Some(group)) => {
                    for (name, v) in group {
                        let v = if v.is_null() {
                            None
                        } else {
                            Some(js_string(v))
                        };
                        self.set_style(el, name, v.as_deref());
                    }
                }
                ("dataset", Some(group)) => {
                    for (name, v) in group {
                        let attr = super::dataset_attr(name)?;
                        if v.is_null() {
                            tree::remove_attr(el, &attr);
                        } else {
                            tree::set_attr(el, &attr, &js_string(v));
                        }
                    }
                }
                ("attributes", Some(group)) => {
                    for (name, v) in group {
                        if name.to_lowercase() == "disabled" {
                            disowned(el);
                        }
                        if !valid_attribute_name(name) {
                            return Err(format!("'{name}' is not a valid attribute name"));
                        }
                        let text = (!v.is_null()).then(|| js_string(v));
                        self.write_attr(el, name, text.as_deref());
                    }
                }
                ("classList", Some(group)) => {
                    for op in CLASS_LIST_OPS {
                        let Some(names) = group.get(*op).and_then(Value::as_array) else {
                            continue;
                        };
                        for name in names {
                            class_list_op(el, op, &js_string(name))?;
                        }
                    }
                }
                _ => {
                    if key == "disabled" {
                        disowned(el);
                    }
                    self.set_prop(el, key, value, false)?;
                }
            }
        }
        Ok(())
    }

    /// `el.insertAdjacentHTML(position, text)` or `insertAdjacentText`.
    fn insert_adjacent(
        &mut self,
        el: &NodeRef,
        position: &str,
        text: &str,
        html: bool,
    ) -> Result<(), String> {
        let position = position.to_ascii_lowercase();
        let parent = el.parent();
        let context = match position.as_str() {
            "beforebegin" | "afterend" => match &parent {
                Some(p) if tree::is_element(p) => p.clone(),
                _ if !html => el.clone(),
                _ => return Err("the element has no parent element".to_string()),
            },
            "afterbegin" | "beforeend" => el.clone(),
            other => {
                return Err(format!(
                    "the value provided ('{other}') is not one of 'beforeBegin', 'afterBegin', 'beforeEnd', or 'afterEnd'"
                ));
            }
        };
        let nodes = if html {
            tree::parse_fragment(&context, text)
        } else {
            vec![NodeRef::new_text(text)]
        };
        match position.as_str() {
            "beforebegin" => {
                if parent.is_none() {
                    return Ok(());
                }
                for n in nodes {
                    el.insert_before(n);
                }
            }
            "afterbegin" => {
                let first = el.first_child();
                for n in nodes {
                    tree::insert_before(el, n, first.as_ref());
                }
            }
            "beforeend" => {
                for n in nodes {
                    el.append(n);
                }
            }
            _ => {
                let Some(p) = parent else { return Ok(()) };
                let next = el.next_sibling();
                for n in nodes {
                    tree::insert_before(&p, n, next.as_ref());
                }
            }
        }
        Ok(())
    }
}

/// Whether `sel` is a selector tether built from an attribute (`^\s*\[(data-)?tether-`).
pub(crate) fn built_selector(sel: &str) -> bool {
    let rest = sel.trim_start_matches(|c: char| c.is_whitespace());
    let Some(rest) = rest.strip_prefix('[') else {
        return false;
    };
    rest.strip_prefix("data-")
        .unwrap_or(rest)
        .starts_with("tether-")
}

fn valid_attribute_name(name: &str) -> bool {
    !name.is_empty()
        && !name.chars().any(|c| {
            c.is_ascii_whitespace() || matches!(c, '\0' | '/' | '>' | '=' | '"' | '\'' | '<')
        })
}

fn class_list_op(el: &NodeRef, op: &str, token: &str) -> Result<(), String> {
    if token.is_empty() {
        return Err("the token provided must not be empty".to_string());
    }
    if token.chars().any(|c| c.is_ascii_whitespace()) {
        return Err(format!(
            "the token provided ('{token}') contains HTML space characters"
        ));
    }
    let mut tokens = super::class_list(el);
    let has_attr = tree::has_attr(el, "class");
    let run_update = match op {
        "add" => {
            if !tokens.iter().any(|t| t == token) {
                tokens.push(token.to_string());
            }
            true
        }
        "remove" => {
            tokens.retain(|t| t != token);
            true
        }
        _ => {
            if tokens.iter().any(|t| t == token) {
                tokens.retain(|t| t != token);
            } else {
                tokens.push(token.to_string());
            }
            true
        }
    };
    if run_update && (has_attr || !tokens.is_empty()) {
        tree::set_attr(el, "class", &tokens.join(" "));
    }
    Ok(())
}
