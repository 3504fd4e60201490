//! Client-side commands (commands.mjs) on the model: the check every list goes through
//! ([`commands_refusal`], the rules of the server's `Js` check) and the commands that only
//! change the DOM (show, hide, toggle, classes, attributes). `push`, `navigate`, `patch` and
//! `dispatch` are the page's business ([`Command::Page`]), `focus` and `transition` do nothing
//! here (no focus, no CSS time in the model).
//!
//! For: the kit's page (handler attributes holding a list, `exec` patches).
//! Never: runs a refused list, or acts inside a `tether-ignore` subtree through a selector.

use kuchikiki::NodeRef;
use serde_json::{Map, Value};

use super::{
    Dom, FORBIDDEN_PROPS, class_list, js_string,
    patch::{MARKUP_PROPS, URL_ATTRIBUTES, is_script_url},
};

/// The most commands in one list (commands.mjs `MAX_COMMANDS`, the server's `MAX_JS_COMMANDS`).
pub(crate) const MAX_COMMANDS: usize = 64;
const OPS: &[&str] = &[
    "show",
    "hide",
    "toggle",
    "add_class",
    "remove_class",
    "toggle_class",
    "set_attr",
    "remove_attr",
    "transition",
    "dispatch",
    "focus",
    "push",
    "navigate",
    "patch",
];
const HIDDEN: &str = "data-tether-hidden"; // the inline display a `hide` replaced

/// Whether a handler attribute's text is a command list (commands.mjs `isCommandList`).
pub(crate) fn is_command_list(text: &str) -> bool {
    text.trim_start().starts_with('[')
}

/// Why `commands` must not run (commands.mjs `commandsRefusal`), or `None`.
pub(crate) fn commands_refusal(commands: &Value) -> Option<String> {
    let Some(commands) = commands.as_array() else {
        return Some("js: not a command list".into());
    };
    if commands.len() > MAX_COMMANDS {
        return Some(format!("js: more than {MAX_COMMANDS} commands"));
    }
    for command in commands {
        let (Some(op), Some(args)) = (command[0].as_str(), command[1].as_object()) else {
            return Some("js: a command is [op, {args}]".into());
        };
        if !OPS.contains(&op) {
            return Some(format!("js: unknown command {op}"));
        }
        if op == "set_attr" {
            let name = args
                .get("attr")
                .map(|a| js_string(&a[0]))
                .unwrap_or_default();
            let value = args
                .get("attr")
                .map(|a| js_string(&a[1]))
                .unwrap_or_default();
            let lower = name.to_lowercase();
            if name.is_empty()
                || name == "null"
                || FORBIDDEN_PROPS.contains(&name.as_str())
                || MARKUP_PROPS.contains(&lower.as_str())
                || lower.starts_with("on")
            {
                return Some(format!("js: attribute {name} is refused"));
            }
            if URL_ATTRIBUTES.contains(&lower.as_str()) && is_script_url(&value) {
                return Some(format!("js: attribute {name} is refused (script URL)"));
            }
        }
        if matches!(op, "navigate" | "patch")
            && args
                .get("href")
                .and_then(Value::as_str)
                .is_none_or(is_script_url)
        {
            return Some(format!("js: {op} needs a URL that is no script"));
        }
    }
    None
}

/// A list parsed from an attribute and checked (commands.mjs `parseCommands`).
pub(crate) fn parse_commands(text: &str) -> Result<Vec<Value>, String> {
    let commands: Value =
        serde_json::from_str(text).map_err(|e| format!("invalid command list: {e}"))?;
    if let Some(refused) = commands_refusal(&commands) {
        return Err(refused);
    }
    Ok(commands.as_array().cloned().unwrap_or_default())
}

/// What a command leaves to the page.
pub(crate) enum Command {
    /// Done on the model (or nothing to do there).
    Done,
    /// `push`, `navigate`, `patch`, or `dispatch` (op and args) on these elements.
    Page(String, Map<String, Value>, Vec<NodeRef>),
}

fn names(args: &Map<String, Value>) -> Vec<String> {
    args.get("names")
        .and_then(Value::as_array)
        .map(|names| {
            names
                .iter()
                .map(js_string)
                .filter(|n| !n.is_empty())
                .collect()
        })
        .unwrap_or_default()
}

impl Dom {
    /// The elements a command acts on: `to` (never in a `tether-ignore` subtree), or `el`.
    fn command_targets(
        &self,
        el: Option<&NodeRef>,
        to: Option<&Value>,
    ) -> Result<Vec<NodeRef>, String> {
        let to = to
            .filter(|v| !v.is_null())
            .map(js_string)
            .unwrap_or_default();
        if to.is_empty() {
            return Ok(el.cloned().into_iter().collect());
        }
        let found = self
            .select_all(&to)
            .map_err(|_| format!("invalid selector {to}"))?;
        Ok(found.into_iter().filter(|n| !self.ignored(n)).collect())
    }

    fn hidden(&self, el: &NodeRef) -> bool {
        self.style_of(el)
            .iter()
            .any(|d| d.name == "display" && d.value == "none")
    }

    fn hide(&mut self, el: &NodeRef) {
        if self.hidden(el) {
            return;
        }
        let before = self
            .style_of(el)
            .into_iter()
            .find(|d| d.name == "display")
            .map(|d| d.value)
            .unwrap_or_default();
        self.set_attr(el, HIDDEN, Some(&before));
        self.set_style(el, "display", Some("none"));
    }

    fn show(&mut self, el: &NodeRef, display: Option<&Value>) {
        let display = match display.filter(|v| !v.is_null()) {
            Some(d) => js_string(d),
            None => self
                .attr(el, HIDDEN)
                .filter(|d| d != "none")
                .unwrap_or_default(),
        };
        self.set_style(
            el,
            "display",
            (!display.is_empty()).then_some(display.as_str()),
        );
        self.set_attr(el, HIDDEN, None);
    }

    fn set_classes(&mut self, el: &NodeRef, classes: Vec<String>) {
        self.set_attr(el, "class", Some(&classes.join(" ")));
    }

    /// Runs command `op` for element `el` (None: an `exec` patch) on the model.
    pub(crate) fn run_command(
        &mut self,
        op: &str,
        args: &Map<String, Value>,
        el: Option<&NodeRef>,
    ) -> Result<Command, String> {
        if matches!(op, "push" | "navigate" | "patch") {
            return Ok(Command::Page(op.to_string(), args.clone(), Vec::new()));
        }
        let targets = self.command_targets(el, args.get("to"))?;
        if op == "dispatch" {
            return Ok(Command::Page(op.to_string(), args.clone(), targets));
        }
        for node in &targets {
            match op {
                "show" => self.show(node, args.get("display")),
                "hide" => self.hide(node),
                "toggle" => {
                    if self.hidden(node) {
                        self.show(node, args.get("display"));
                    } else {
                        self.hide(node);
                    }
                }
                "add_class" => {
                    let mut classes = class_list(node);
                    for name in names(args) {
                        if !classes.contains(&name) {
                            classes.push(name);
                        }
                    }
                    self.set_classes(node, classes);
                }
                "remove_class" => {
                    let gone = names(args);
                    let classes = class_list(node)
                        .into_iter()
                        .filter(|c| !gone.contains(c))
                        .collect();
                    self.set_classes(node, classes);
                }
                "toggle_class" => {
                    let mut classes = class_list(node);
                    for name in names(args) {
                        match classes.iter().position(|c| *c == name) {
                            Some(i) => {
                                classes.remove(i);
                            }
                            None => classes.push(name),
                        }
                    }
                    self.set_classes(node, classes);
                }
                "set_attr" => {
                    let attr = args.get("attr").cloned().unwrap_or(Value::Null);
                    let value = if attr[1].is_null() {
                        String::new()
                    } else {
                        js_string(&attr[1])
                    };
                    self.set_attr(node, &js_string(&attr[0]), Some(&value));
                }
                "remove_attr" => {
                    let name = args.get("attr").map(js_string).unwrap_or_default();
                    self.set_attr(node, &name, None);
                }
                // No focus and no CSS time in the model.
                _ => {}
            }
        }
        Ok(Command::Done)
    }
}
