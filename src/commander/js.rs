//! Client-side commands: [`Js`], a list of DOM commands (show, hide, toggle, classes,
//! attributes, transitions, DOM events, focus) that tether.js runs in the page without
//! asking the server, plus `push` (call a handler, the one command that sends a frame) and
//! `navigate`/`patch` (change the page's URL).
//!
//! A `Js` is rendered as JSON into a handler attribute (`tether-click="{{ js }}"` in an
//! askama template, or [`Js::to_html`]) or sent from the server with
//! [`PageHandle::exec`](super::PageHandle::exec) (a `patch` of op `exec`). tether.js runs the
//! commands in order while the page is joined or not, except `push`, which needs the socket.
//!
//! The rules every command obeys, here and in tether.js (`assets/src/commands.mjs`): no
//! script, ever (there is no `eval` command); `set_attr` refuses event-handler attributes
//! (`on*`), `srcdoc`, `innerHTML`-like names and script URLs in `href`/`src`/`action`/
//! `formaction`/`xlink:href`; `navigate`/`patch` refuse script URLs; a list holds at most
//! [`MAX_JS_COMMANDS`] commands. This module builds and checks command lists; it must never
//! send one.

use serde::Serialize;
use serde_json::{Value, json};

use super::{Html, PatchError};

/// The most commands one [`Js`] may hold (tether.js refuses a longer list).
pub const MAX_JS_COMMANDS: usize = 64;

/// A list of client-side commands, built in order and run in order by tether.js.
///
/// Every command takes a CSS selector `to` naming the elements it acts on; an empty selector
/// means the element whose attribute holds the list (for [`PageHandle::exec`], which has no
/// such element, an empty selector acts on nothing).
///
/// ```
/// use tether::commander::Js;
/// let menu = Js::new().toggle("#menu").toggle_class("#menu_button", "open");
/// // In an askama template: <button tether-click="{{ menu }}">Menu</button>
/// let button = format!(r#"<button tether-click="{}">Menu</button>"#, menu.to_html().as_str());
/// assert!(button.starts_with(r#"<button tether-click="[[&#34;toggle&#34;"#));
/// // Close a flash at once, and tell the server.
/// let close = Js::new().hide("#flash").push("flash_closed", serde_json::json!({"id": 3}));
/// assert_eq!(close.to_string(), r##"[["hide",{"to":"#flash"}],["push",{"event":"flash_closed","value":{"id":3}}]]"##);
/// ```
///
/// [`PageHandle::exec`]: super::PageHandle::exec
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
#[serde(transparent)]
pub struct Js {
    commands: Vec<Value>,
}

impl Js {
    /// An empty list (runs nothing).
    pub fn new() -> Js {
        Js::default()
    }

    fn with(mut self, op: &str, args: Value) -> Js {
        self.commands.push(json!([op, args]));
        self
    }

    fn to(to: &str) -> Value {
        json!({ "to": to })
    }

    fn to_with(to: &str, key: &str, value: Value) -> Value {
        let mut args = Js::to(to);
        args[key] = value;
        args
    }

    /// Shows the elements: removes the `display: none` an earlier `hide` set (their own
    /// `display` from CSS applies again).
    pub fn show(self, to: &str) -> Js {
        self.with("show", Js::to(to))
    }

    /// Shows the elements with `display` set to `display` (`"flex"`, `"grid"`, …).
    pub fn show_as(self, to: &str, display: &str) -> Js {
        self.with("show", Js::to_with(to, "display", json!(display)))
    }

    /// Hides the elements (`display: none`).
    pub fn hide(self, to: &str) -> Js {
        self.with("hide", Js::to(to))
    }

    /// Shows the hidden elements, hides the shown ones (each on its own).
    pub fn toggle(self, to: &str) -> Js {
        self.with("toggle", Js::to(to))
    }

    /// Adds the space-separated `classes`.
    pub fn add_class(self, to: &str, classes: &str) -> Js {
        self.with("add_class", Js::to_with(to, "names", names(classes)))
    }

    /// Removes the space-separated `classes`.
    pub fn remove_class(self, to: &str, classes: &str) -> Js {
        self.with("remove_class", Js::to_with(to, "names", names(classes)))
    }

    /// Toggles each of the space-separated `classes`.
    pub fn toggle_class(self, to: &str, classes: &str) -> Js {
        self.with("toggle_class", Js::to_with(to, "names", names(classes)))
    }

    /// Sets attribute `name` to `value` (refused when sent or run for `on*`, `srcdoc` and
    /// script URLs).
    pub fn set_attr(self, to: &str, name: &str, value: &str) -> Js {
        self.with("set_attr", Js::to_with(to, "attr", json!([name, value])))
    }

    /// Removes attribute `name`.
    pub fn remove_attr(self, to: &str, name: &str) -> Js {
        self.with("remove_attr", Js::to_with(to, "attr", json!(name)))
    }

    /// Adds the space-separated `classes` for `ms` milliseconds, then removes them (a CSS
    /// transition or animation they start).
    pub fn transition(self, to: &str, classes: &str, ms: u32) -> Js {
        let mut args = Js::to_with(to, "names", names(classes));
        args["time"] = json!(ms);
        self.with("transition", args)
    }

    /// Dispatches a bubbling `CustomEvent` named `event` with `detail` on the elements (for
    /// the page's own scripts and hooks; not a user gesture).
    pub fn dispatch(self, to: &str, event: &str, detail: impl Serialize) -> Js {
        let mut args = Js::to_with(to, "event", json!(event));
        args["detail"] = serde_json::to_value(detail).unwrap_or(Value::Null);
        self.with("dispatch", args)
    }

    /// Focuses the first element matching `to`.
    pub fn focus(self, to: &str) -> Js {
        self.with("focus", Js::to(to))
    }

    /// Calls handler `event` of the page's commander with `value` as the sender's `arg`
    /// (the sender is the element whose attribute holds the list): the one command that
    /// needs the socket (reported as "not connected" while it is down, like any handler).
    pub fn push(self, event: &str, value: impl Serialize) -> Js {
        let value = serde_json::to_value(value).unwrap_or(Value::Null);
        self.with("push", json!({ "event": event, "value": value }))
    }

    /// Moves to `href`: a live navigation where tether.js does them (else a page load);
    /// script URLs are refused.
    pub fn navigate(self, href: &str) -> Js {
        self.with("navigate", json!({ "href": href }))
    }

    /// Changes the URL of this page to `href` (same page, new URL state); script URLs are
    /// refused.
    pub fn patch(self, href: &str) -> Js {
        self.with("patch", json!({ "href": href }))
    }

    /// The commands and then `other`'s.
    pub fn then(mut self, other: Js) -> Js {
        self.commands.extend(other.commands);
        self
    }

    /// Whether the list is empty.
    pub fn is_empty(&self) -> bool {
        self.commands.is_empty()
    }

    /// The list as JSON, escaped for a quoted attribute value (what [`Display`] gives,
    /// escaped): `format!(r#"<button tether-click="{}">"#, js.to_html().as_str())`.
    ///
    /// [`Display`]: std::fmt::Display
    pub fn to_html(&self) -> Html {
        Html::escape(&self.to_string())
    }

    /// The list as a JSON value (what `exec` patches carry).
    pub fn to_value(&self) -> Value {
        Value::Array(self.commands.clone())
    }
}

/// The list as JSON (unescaped: askama's `{{ js }}` escapes it; by hand, use [`Js::to_html`]).
impl std::fmt::Display for Js {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&Value::Array(self.commands.clone()).to_string())
    }
}

fn names(classes: &str) -> Value {
    json!(classes.split_whitespace().collect::<Vec<_>>())
}

/// Checks a command list (a [`Js`] as JSON) against the rules tether.js applies too.
pub(crate) fn check_commands(commands: &Value) -> Result<(), PatchError> {
    let refuse = |why: String| {
        Err(PatchError::UnsafeProp(
            crate::text::for_log(&why).to_string(),
        ))
    };
    let Some(commands) = commands.as_array() else {
        return refuse("js: not a command list".into());
    };
    if commands.len() > MAX_JS_COMMANDS {
        return refuse(format!("js: more than {MAX_JS_COMMANDS} commands"));
    }
    for command in commands {
        let (Some(op), Some(args)) = (command[0].as_str(), command[1].as_object()) else {
            return refuse("js: a command is [op, {args}]".into());
        };
        match op {
            "show" | "hide" | "toggle" | "add_class" | "remove_class" | "toggle_class"
            | "remove_attr" | "transition" | "dispatch" | "focus" | "push" => {}
            "set_attr" => {
                let name = args.get("attr").and_then(|a| a[0].as_str()).unwrap_or("");
                let value = args
                    .get("attr")
                    .map(|a| a[1].clone())
                    .unwrap_or(Value::Null);
                super::patch::check_attribute(name, &value)?;
            }
            "navigate" | "patch" => {
                let href = args.get("href").and_then(Value::as_str).unwrap_or("");
                if super::patch::is_script_url(href) {
                    return refuse(format!("js: {op} to a script URL"));
                }
            }
            other => return refuse(format!("js: unknown command {other}")),
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_list_renders_as_json_and_checks() {
        let js = Js::new()
            .show_as("#m", "flex")
            .add_class("#m", "a  b")
            .set_attr("#m", "aria-expanded", "true")
            .transition("#m", "fade", 200)
            .dispatch("", "menu:open", json!({"n": 1}))
            .focus("#q")
            .push("save", json!({"id": 1}))
            .patch("/notes?q=x");
        assert_eq!(
            js.to_value()[1],
            json!(["add_class", {"to": "#m", "names": ["a", "b"]}])
        );
        assert!(check_commands(&js.to_value()).is_ok());
        assert!(js.to_html().as_str().contains("&#34;show&#34;"));
    }

    #[test]
    fn script_is_refused_in_every_command() {
        for bad in [
            Js::new().set_attr("#a", "onclick", "alert(1)"),
            Js::new().set_attr("#a", "href", " javascript:alert(1)"),
            Js::new().set_attr("#a", "srcdoc", "<script></script>"),
            Js::new().navigate("javascript:alert(1)"),
            Js::new().patch("vbscript:x"),
        ] {
            assert!(check_commands(&bad.to_value()).is_err(), "{bad}");
        }
        assert!(check_commands(&json!([["eval", {"js": "1"}]])).is_err());
        assert!(check_commands(&json!({"show": 1})).is_err());
        let long = (0..=MAX_JS_COMMANDS).fold(Js::new(), |js, _| js.hide("#a"));
        assert!(check_commands(&long.to_value()).is_err());
    }
}
