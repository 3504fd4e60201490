//! The patch vocabulary: what a commander can change in a page's DOM ([`Patch`]), what goes
//! in as markup or as text ([`Content`]), and the rules every patch obeys wherever it is sent
//! from (script only with `exec_js`; no plain value into a property that parses markup or
//! script). tether.js applies the same rules on its side.
//!
//! Pure: it builds and checks patches; it must never send one.

use std::time::Duration;

use serde::Serialize;
use serde_json::{Map, Value, json};

use super::Html;
use crate::transport::PushError;

/// Markup or text for a patch. Strings are text (shown literally, never parsed as HTML);
/// only [`Html`] is inserted as markup.
#[derive(Debug, Clone, PartialEq)]
pub enum Content {
    /// Inserted as markup.
    Html(Html),
    /// Inserted as text.
    Text(String),
}

impl From<Html> for Content {
    fn from(html: Html) -> Content {
        Content::Html(html)
    }
}

impl From<&str> for Content {
    fn from(text: &str) -> Content {
        Content::Text(text.to_string())
    }
}

impl From<String> for Content {
    fn from(text: String) -> Content {
        Content::Text(text)
    }
}

/// Where [`Patch::insert`] puts content, as in `insertAdjacentHTML`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Position {
    /// Before the element.
    BeforeBegin,
    /// Inside, before its first child.
    AfterBegin,
    /// Inside, after its last child.
    BeforeEnd,
    /// After the element.
    AfterEnd,
}

/// One change to a page's DOM, applied by tether.js to every element matching `sel`.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "op", rename_all = "lowercase")]
pub enum Patch {
    /// Replace the inner HTML.
    Html {
        /// CSS selector.
        sel: String,
        /// Markup.
        html: String,
    },
    /// Morph the children into `html` (markup the app vouches for, [`Html`]): unchanged nodes
    /// stay, children with an `id` move instead of being re-created, the focused element keeps
    /// focus, caret and typed value, and a form control whose rendered state did not change
    /// keeps the person's state (a checkbox they ticked, text they typed). Built by
    /// [`Patch::morph`].
    Morph {
        /// CSS selector.
        sel: String,
        /// Markup.
        html: String,
    },
    /// Replace the content with text.
    Text {
        /// CSS selector.
        sel: String,
        /// Text.
        text: String,
    },
    /// Set a DOM property (`value`, `checked`, `disabled`, …) to a plain value. A property
    /// that would turn a string into markup or script (`innerHTML`, `outerHTML`, `srcdoc`,
    /// any `on*`, or a `javascript:` URL in `href`, `src`, `action`, `formAction`) is refused
    /// (see [`Patch::prop_html`]).
    Prop {
        /// CSS selector.
        sel: String,
        /// Property name.
        prop: String,
        /// New value.
        value: Value,
    },
    /// Set a DOM property to markup the app vouches for ([`Html`]); the only way to set
    /// `innerHTML`-like properties.
    #[serde(rename = "prop")]
    PropHtml {
        /// CSS selector.
        sel: String,
        /// Property name.
        prop: String,
        /// Markup.
        html: String,
    },
    /// Insert markup or text next to or inside the element.
    Insert {
        /// CSS selector.
        sel: String,
        /// Where.
        position: Position,
        /// Markup, if HTML.
        #[serde(skip_serializing_if = "Option::is_none")]
        html: Option<String>,
        /// Text, if text.
        #[serde(skip_serializing_if = "Option::is_none")]
        text: Option<String>,
    },
    /// Remove the elements.
    Remove {
        /// CSS selector.
        sel: String,
    },
    /// Set several things at once: `style`, `dataset`, `attributes` (objects; `null`
    /// removes), `classList` (`{add, remove, toggle}` arrays), and any other key as a plain
    /// property (same rules as [`Patch::Prop`]). Built by [`Patch::props`], [`Patch::style`],
    /// [`Patch::attr`], [`Patch::data`] and the class helpers.
    Props {
        /// CSS selector.
        sel: String,
        /// What to set.
        props: Map<String, Value>,
    },
    /// Run JavaScript (only when `[commander] exec_js` is on).
    Js {
        /// The script.
        js: String,
    },
    /// Navigate the page to `url` (`location.assign`).
    Redirect {
        /// Where to.
        url: String,
    },
    /// Change the address bar to `url` without loading it (`history.pushState`; same origin).
    #[serde(rename = "set_url")]
    SetUrl {
        /// The new URL.
        url: String,
    },
    /// Write to the browser's console.
    Console {
        /// Which console method.
        level: ConsoleLevel,
        /// The message.
        msg: String,
    },
    /// Run client-side commands ([`Js`](super::Js)) in the page, as if an element's
    /// attribute held them (with no element: an empty selector acts on nothing). Built by
    /// [`Patch::exec`].
    Exec {
        /// The command list (`[[op, {args}]]`).
        cmds: Value,
    },
    /// An event for the page's JavaScript (hooks' `handleEvent`, and a `tether:event:<name>`
    /// DOM event on `window`): data, never script. Built by [`Patch::push_event`].
    #[serde(rename = "event")]
    PushEvent {
        /// The event name.
        name: String,
        /// Its payload.
        payload: Value,
    },
    /// Set a cookie in the browser (`value: None` deletes it).
    Cookie {
        /// Cookie name (RFC 6265 token).
        name: String,
        /// Cookie value (RFC 6265 cookie-octets), or `None` to delete.
        value: Option<String>,
        /// Lifetime in seconds; a session cookie when `None`.
        #[serde(skip_serializing_if = "Option::is_none")]
        max_age: Option<u64>,
        /// Cookie path; the page's default when `None`.
        #[serde(skip_serializing_if = "Option::is_none")]
        path: Option<String>,
    },
}

/// A cookie for [`Patch::set_cookie`].
#[derive(Debug, Clone, PartialEq)]
pub struct Cookie {
    name: String,
    value: String,
    max_age: Option<Duration>,
    path: Option<String>,
}

impl Cookie {
    /// A session cookie `name=value` (both checked when sent: a token, cookie-octets).
    pub fn new(name: &str, value: &str) -> Cookie {
        Cookie {
            name: name.to_string(),
            value: value.to_string(),
            max_age: None,
            path: None,
        }
    }

    /// Kept for `max_age`.
    pub fn max_age(mut self, max_age: Duration) -> Cookie {
        self.max_age = Some(max_age);
        self
    }

    /// Sent for `path` only.
    pub fn path(mut self, path: &str) -> Cookie {
        self.path = Some(path.to_string());
        self
    }
}

/// A browser console method, for [`Patch::Console`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum ConsoleLevel {
    /// `console.log`
    Log,
    /// `console.info`
    Info,
    /// `console.warn`
    Warn,
    /// `console.error`
    Error,
    /// `console.debug`
    Debug,
}

impl Patch {
    /// Sets the content of `sel`: markup for [`Html`], text for strings.
    pub fn set(sel: &str, content: impl Into<Content>) -> Patch {
        match content.into() {
            Content::Html(html) => Patch::Html {
                sel: sel.to_string(),
                html: html.as_str().to_string(),
            },
            Content::Text(text) => Patch::Text {
                sel: sel.to_string(),
                text,
            },
        }
    }

    /// Morphs the children of `sel` into `html` (see [`Patch::Morph`]): the way to re-render a
    /// region without disturbing what the person is doing in it.
    ///
    /// ```
    /// use tether::commander::{Html, Patch};
    /// let patch = Patch::morph("#items", Html::trusted("<li id=\"i1\">milk</li>"));
    /// assert!(matches!(patch, Patch::Morph { .. }));
    /// ```
    pub fn morph(sel: &str, html: Html) -> Patch {
        Patch::Morph {
            sel: sel.to_string(),
            html: html.as_str().to_string(),
        }
    }

    /// Sets property `prop` of `sel` to `value`.
    pub fn prop(sel: &str, prop: &str, value: impl Serialize) -> Patch {
        Patch::Prop {
            sel: sel.to_string(),
            prop: prop.to_string(),
            value: serde_json::to_value(value).unwrap_or(Value::Null),
        }
    }

    /// Sets property `prop` of `sel` to markup: the only way to set `innerHTML`,
    /// `outerHTML`, `srcdoc`, an `on*` handler or a script URL, because [`Html`] says the
    /// app made or vetted it.
    ///
    /// ```
    /// use tether::commander::{Html, Patch};
    /// let patch = Patch::prop_html("#frame", "srcdoc", Html::escape("<p>hi</p>"));
    /// assert!(matches!(patch, Patch::PropHtml { .. }));
    /// ```
    pub fn prop_html(sel: &str, prop: &str, html: Html) -> Patch {
        Patch::PropHtml {
            sel: sel.to_string(),
            prop: prop.to_string(),
            html: html.as_str().to_string(),
        }
    }

    /// Sets several things of `sel` at once (see [`Patch::Props`]).
    ///
    /// ```
    /// use serde_json::json;
    /// use tether::commander::Patch;
    /// let patch = Patch::props("#bar", json!({
    ///     "value": 40,
    ///     "style": {"width": "40%"},
    ///     "dataset": {"state": "running"},
    ///     "attributes": {"aria-busy": "true"},
    ///     "classList": {"add": ["busy"], "remove": ["idle"]},
    /// }));
    /// assert!(matches!(patch, Patch::Props { .. }));
    /// ```
    pub fn props(sel: &str, props: Value) -> Patch {
        let props = match props {
            Value::Object(props) => props,
            _ => Map::new(),
        };
        Patch::Props {
            sel: sel.to_string(),
            props,
        }
    }

    fn one(sel: &str, group: &str, name: &str, value: Value) -> Patch {
        Patch::props(sel, json!({ group: { name: value } }))
    }

    /// Sets inline style `name` (`width`, `background-color`, …); `None` removes it.
    pub fn style(sel: &str, name: &str, value: Option<&str>) -> Patch {
        Patch::one(sel, "style", name, json!(value))
    }

    /// Sets attribute `name`; `None` removes it. Event-handler attributes (`on*`), `srcdoc`
    /// and script URLs are refused.
    pub fn attr(sel: &str, name: &str, value: Option<&str>) -> Patch {
        Patch::one(sel, "attributes", name, json!(value))
    }

    /// Sets `data-<key>` (`dataset[key]`, camelCase as in the DOM); `None` removes it.
    pub fn data(sel: &str, key: &str, value: Option<&str>) -> Patch {
        Patch::one(sel, "dataset", key, json!(value))
    }

    /// Adds `class`.
    pub fn add_class(sel: &str, class: &str) -> Patch {
        Patch::one(sel, "classList", "add", json!([class]))
    }

    /// Removes `class`.
    pub fn remove_class(sel: &str, class: &str) -> Patch {
        Patch::one(sel, "classList", "remove", json!([class]))
    }

    /// Toggles `class`.
    pub fn toggle_class(sel: &str, class: &str) -> Patch {
        Patch::one(sel, "classList", "toggle", json!([class]))
    }

    /// Runs `js` in the page, without waiting for its result (only with `exec_js`; for
    /// the result, see [`PageHandle::exec_js`](super::PageHandle::exec_js)).
    pub fn js(js: &str) -> Patch {
        Patch::Js { js: js.to_string() }
    }

    /// Runs the client-side commands `js` in the page (see [`Patch::Exec`]).
    ///
    /// ```
    /// use tether::commander::{Js, Patch};
    /// let patch = Patch::exec(&Js::new().hide("#flash"));
    /// assert!(matches!(patch, Patch::Exec { .. }));
    /// ```
    pub fn exec(js: &super::Js) -> Patch {
        Patch::Exec {
            cmds: js.to_value(),
        }
    }

    /// Pushes event `name` with `payload` to the page's JavaScript (see [`Patch::PushEvent`]).
    pub fn push_event(name: &str, payload: impl Serialize) -> Patch {
        Patch::PushEvent {
            name: name.to_string(),
            payload: serde_json::to_value(payload).unwrap_or(Value::Null),
        }
    }

    /// Checks the patch against the rules every patch obeys, wherever it is sent from:
    /// script only with `exec_js`, no plain value that a property or attribute would turn
    /// into markup or script, no script URL to navigate to, well-formed cookies.
    pub(crate) fn check(&self, exec_js: bool) -> Result<(), PatchError> {
        match self {
            Patch::Js { .. } if !exec_js => Err(PatchError::JsDisabled),
            Patch::Prop { prop, value, .. } => check_plain_prop(prop, value),
            Patch::Props { props, .. } => check_props(props),
            Patch::Redirect { url } | Patch::SetUrl { url } if is_script_url(url) => {
                Err(PatchError::UnsafeProp("url".to_string()))
            }
            Patch::Cookie {
                name, value, path, ..
            } => check_cookie(name, value.as_deref(), path.as_deref()),
            Patch::Exec { cmds } => super::js::check_commands(cmds),
            _ => Ok(()),
        }
    }

    /// Inserts `content` at `position` relative to `sel`.
    pub fn insert(sel: &str, position: Position, content: impl Into<Content>) -> Patch {
        let (html, text) = match content.into() {
            Content::Html(html) => (Some(html.as_str().to_string()), None),
            Content::Text(text) => (None, Some(text)),
        };
        Patch::Insert {
            sel: sel.to_string(),
            position,
            html,
            text,
        }
    }

    /// Removes the elements matching `sel`.
    pub fn remove(sel: &str) -> Patch {
        Patch::Remove {
            sel: sel.to_string(),
        }
    }

    /// Navigates the page to `url` (Drab.Browser `redirect_to`); script URLs are refused.
    pub fn redirect_to(url: &str) -> Patch {
        Patch::Redirect {
            url: url.to_string(),
        }
    }

    /// Changes the address bar to `url` without loading it (`history.pushState`; Drab.Browser
    /// `set_url`); script URLs are refused.
    pub fn set_url(url: &str) -> Patch {
        Patch::SetUrl {
            url: url.to_string(),
        }
    }

    /// Writes `msg` to the browser's console (Drab.Browser `console`).
    pub fn console(level: ConsoleLevel, msg: &str) -> Patch {
        Patch::Console {
            level,
            msg: msg.to_string(),
        }
    }

    /// Sets `cookie` in the browser (refused unless its name is a token and its value and
    /// path are cookie-octets).
    ///
    /// ```
    /// use std::time::Duration;
    /// use tether::commander::{Cookie, Patch};
    /// let patch = Patch::set_cookie(&Cookie::new("theme", "dark").max_age(Duration::from_secs(3600)));
    /// assert!(matches!(patch, Patch::Cookie { max_age: Some(3600), .. }));
    /// ```
    pub fn set_cookie(cookie: &Cookie) -> Patch {
        Patch::Cookie {
            name: cookie.name.clone(),
            value: Some(cookie.value.clone()),
            max_age: cookie.max_age.map(|d| d.as_secs()),
            path: cookie.path.clone(),
        }
    }

    /// Deletes cookie `name` (on the page's default path).
    pub fn delete_cookie(name: &str) -> Patch {
        Patch::Cookie {
            name: name.to_string(),
            value: None,
            max_age: None,
            path: None,
        }
    }
}

/// The CSS selector `[attr="value"]`, with `value` quoted as a CSS string (quotes and
/// backslashes escaped, control characters dropped), whatever it holds. The one quoting
/// of every selector tether builds from a value (`Sender::this`, live regions, presence lists).
pub(crate) fn attr_selector(attr: &str, value: &str) -> String {
    let quoted: String = value
        .chars()
        .filter(|c| !c.is_control())
        .flat_map(|c| match c {
            '"' | '\\' => vec!['\\', c],
            c => vec![c],
        })
        .collect();
    format!(r#"[{attr}="{quoted}"]"#)
}

/// Properties whose string value is parsed as markup or script.
fn is_markup_prop(prop: &str) -> bool {
    let prop = prop.to_ascii_lowercase();
    matches!(prop.as_str(), "innerhtml" | "outerhtml" | "srcdoc") || prop.starts_with("on")
}

/// Properties holding a URL that navigates or loads.
fn is_url_prop(prop: &str) -> bool {
    let prop = prop.to_ascii_lowercase();
    matches!(prop.as_str(), "href" | "src" | "action" | "formaction")
}

/// Whether `url` is a script URL once the characters browsers ignore are gone.
pub(crate) fn is_script_url(url: &str) -> bool {
    let scheme: String = url
        .chars()
        .filter(|c| !c.is_ascii_whitespace() && !c.is_ascii_control())
        .take(11)
        .collect::<String>()
        .to_ascii_lowercase();
    scheme.starts_with("javascript:") || scheme.starts_with("vbscript:")
}

fn check_plain_prop(prop: &str, value: &Value) -> Result<(), PatchError> {
    let unsafe_string = match value {
        Value::String(text) => is_url_prop(prop) && is_script_url(text),
        _ => false,
    };
    if is_markup_prop(prop) || unsafe_string {
        return Err(PatchError::UnsafeProp(
            crate::text::for_log(prop).to_string(),
        ));
    }
    Ok(())
}

/// Checks an attribute set to `value`: the property rules, and `xlink:href` is a URL too.
pub(crate) fn check_attribute(name: &str, value: &Value) -> Result<(), PatchError> {
    let script_url =
        name.eq_ignore_ascii_case("xlink:href") && value.as_str().is_some_and(is_script_url);
    if name.is_empty() || script_url {
        return Err(PatchError::UnsafeProp(
            crate::text::for_log(name).to_string(),
        ));
    }
    check_plain_prop(name, value)
}

/// Checks every part of a [`Patch::Props`].
fn check_props(props: &Map<String, Value>) -> Result<(), PatchError> {
    for (key, value) in props {
        match (key.as_str(), value) {
            ("style" | "dataset", Value::Object(_)) => {}
            ("classList", Value::Object(ops)) => {
                if let Some(op) = ops
                    .keys()
                    .find(|op| !matches!(op.as_str(), "add" | "remove" | "toggle"))
                {
                    return Err(PatchError::UnsafeProp(format!(
                        "classList.{}",
                        crate::text::for_log(op)
                    )));
                }
            }
            ("attributes", Value::Object(attributes)) => {
                for (name, value) in attributes {
                    check_plain_prop(name, value)?;
                }
            }
            ("style" | "dataset" | "classList" | "attributes", _) => {
                return Err(PatchError::UnsafeProp(key.clone()));
            }
            _ => check_plain_prop(key, value)?,
        }
    }
    Ok(())
}

/// A cookie name is an RFC 6265 token; a value and a path are cookie-octets (no spaces,
/// quotes, commas, semicolons or backslashes), so nothing can add attributes to it.
fn check_cookie(name: &str, value: Option<&str>, path: Option<&str>) -> Result<(), PatchError> {
    let octet = |c: char| c.is_ascii_graphic() && !matches!(c, '"' | ',' | ';' | '\\');
    let token = |c: char| octet(c) && !"()<>@:/[]?={}".contains(c);
    let valid = !name.is_empty()
        && name.chars().all(token)
        && value.is_none_or(|v| v.chars().all(octet))
        && path.is_none_or(|p| p.chars().all(octet));
    if valid {
        Ok(())
    } else {
        Err(PatchError::InvalidCookie(
            crate::text::for_log(name).to_string(),
        ))
    }
}

/// Why a patch (or a store change) was not sent.
#[derive(Debug, thiserror::Error)]
pub enum PatchError {
    /// The page's connection is gone.
    #[error(transparent)]
    Closed(#[from] PushError),
    /// `exec_js` is off in the config.
    #[error("exec_js is disabled ([commander] exec_js = false)")]
    JsDisabled,
    /// A plain value for a property that would turn it into markup or script; use
    /// [`Patch::prop_html`] with [`Html`].
    #[error("property `{0}` takes only Html (Patch::prop_html), not a plain value")]
    UnsafeProp(String),
    /// A cookie name, value or path with characters a cookie cannot hold.
    #[error("cookie `{0}`: name must be a token, value and path cookie-octets")]
    InvalidCookie(String),
    /// A flash kind that is not 1 to 32 ASCII letters, digits, `_` or `-`.
    #[error("flash kind `{0}`: 1 to 32 ASCII letters, digits, `_` or `-`")]
    InvalidFlashKind(String),
    /// The store would exceed its size limit once encrypted.
    #[error("store too large ({size} bytes encrypted, at most {max})")]
    StoreTooLarge {
        /// The encrypted size.
        size: usize,
        /// The limit.
        max: usize,
    },
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn props_obey_the_property_rules_in_every_part() {
        let safe = Patch::props(
            "#x",
            json!({
                "value": "<b>text</b>",
                "style": {"width": "2em"},
                "dataset": {"k": null},
                "attributes": {"aria-busy": "true", "href": "/next"},
                "classList": {"add": ["a"], "toggle": ["b"]},
            }),
        );
        assert!(safe.check(false).is_ok());
        for bad in [
            json!({"innerHTML": "<img src=x onerror=alert(1)>"}),
            json!({"attributes": {"onclick": "alert(1)"}}),
            json!({"attributes": {"srcdoc": "<script></script>"}}),
            json!({"attributes": {"href": " javascript:alert(1)"}}),
            json!({"classList": {"replace": ["a"]}}),
            json!({"style": "width: 2em"}),
        ] {
            let patch = Patch::props("#x", bad.clone());
            assert!(
                matches!(patch.check(true), Err(PatchError::UnsafeProp(_))),
                "{bad}"
            );
        }
        assert!(Patch::attr("#x", "onload", Some("x")).check(true).is_err());
        assert!(Patch::style("#x", "color", None).check(false).is_ok());
    }

    #[test]
    fn navigation_refuses_script_urls_and_cookies_must_be_well_formed() {
        let go = |url: &str| Patch::Redirect { url: url.into() }.check(true);
        assert!(go("/lists/home").is_ok());
        assert!(go("JavaScript:alert(1)").is_err());
        assert!(
            Patch::SetUrl {
                url: "javascript:x".into()
            }
            .check(true)
            .is_err()
        );
        let cookie = |name: &str, value: Option<&str>| {
            Patch::Cookie {
                name: name.into(),
                value: value.map(str::to_string),
                max_age: None,
                path: None,
            }
            .check(false)
        };
        assert!(cookie("theme", Some("dark")).is_ok());
        assert!(cookie("theme", None).is_ok());
        assert!(cookie("theme", Some("dark; domain=evil.example")).is_err());
        assert!(cookie("a=b", Some("1")).is_err());
        assert!(cookie("", Some("1")).is_err());
    }
}
