//! What the kit's page does with client-side commands and pushed events (commands.mjs and
//! hooks.mjs, as far as a page without script goes): a handler attribute holding a `Js` list
//! runs on the model (show, hide, toggle, classes, attributes; `push` calls the handler,
//! `dispatch` fires the event at its targets, `navigate` loads a same-origin page, `patch`
//! changes the page's path), an `exec` patch runs a list from the server, and every
//! `push_event` is recorded in [`TestPage::events`].
//!
//! Hooks do not run in the kit (it runs no script): a `tether-hook` element is markup here,
//! its `pushEvent` is [`TestPage::run`], and what the server pushes to it is in
//! [`TestPage::events`].
//!
//! For: [`TestPage`] (its actions and the patches it applies).
//! Never: runs a list the checks refuse, or sends a frame for anything but `push`.

use kuchikiki::NodeRef;
use serde_json::{Map, Value};

use super::{
    TestPage,
    dom::{
        commands::{Command, commands_refusal, is_command_list, parse_commands},
        events::parse_on,
    },
};

/// The most `exec`-started `push`/`dispatch` commands waiting for the page's next await.
const MAX_QUEUED: usize = 256;

impl TestPage {
    /// Runs the command list `text` of `el`'s handler attribute for an event of
    /// `event_type`; the refs of the events its `push` commands sent.
    pub(crate) async fn run_list(
        &mut self,
        el: &NodeRef,
        event_type: &str,
        fields: &Map<String, Value>,
        text: &str,
    ) -> Vec<String> {
        let commands = match parse_commands(text) {
            Ok(commands) => commands,
            Err(err) => {
                self.error(format!("js: {err}"));
                return Vec::new();
            }
        };
        let mut refs = Vec::new();
        for command in self.run_on_model(&commands, Some(el)) {
            refs.extend(
                self.run_page_command(Some(el), event_type, fields, command)
                    .await,
            );
        }
        refs
    }

    /// The DOM part of each command, in order; what is left for the page.
    fn run_on_model(
        &mut self,
        commands: &[Value],
        el: Option<&NodeRef>,
    ) -> Vec<(String, Map<String, Value>, Vec<NodeRef>)> {
        let mut left = Vec::new();
        for command in commands {
            let op = command[0].as_str().unwrap_or_default();
            let args = command[1].as_object().cloned().unwrap_or_default();
            match self.dom.run_command(op, &args, el) {
                Ok(Command::Done) => {}
                Ok(Command::Page(op, args, targets)) => left.push((op, args, targets)),
                Err(err) => self.error(format!("js {op}: {err}")),
            }
        }
        left
    }

    async fn run_page_command(
        &mut self,
        el: Option<&NodeRef>,
        event_type: &str,
        fields: &Map<String, Value>,
        (op, args, targets): (String, Map<String, Value>, Vec<NodeRef>),
    ) -> Vec<String> {
        match op.as_str() {
            "push" => {
                let handler = args
                    .get("event")
                    .map(super::dom::js_string)
                    .unwrap_or_default();
                let value = args.get("value").cloned().unwrap_or(Value::Null);
                match el {
                    Some(el) => self
                        .send_call(el, event_type, fields, handler, value)
                        .await
                        .into_iter()
                        .collect(),
                    None => self.push_run(&handler, value).await.into_iter().collect(),
                }
            }
            "dispatch" => {
                let event = args
                    .get("event")
                    .map(super::dom::js_string)
                    .unwrap_or_default();
                let mut refs = Vec::new();
                for target in targets {
                    refs.extend(Box::pin(self.dispatch_custom(&target, &event)).await);
                }
                refs
            }
            // Live navigation, as a `tether-navigate` / `tether-patch` link.
            kind @ ("navigate" | "patch") => {
                let href = args.get("href").and_then(Value::as_str).unwrap_or_default();
                match self.browser.same_origin_path(href) {
                    Some(path) => Box::pin(self.go(kind, &path)).await,
                    None => self.fail(format!("{kind} to another origin: {href}")),
                }
                Vec::new()
            }
            _ => Vec::new(),
        }
    }

    /// An `exec` patch: its DOM commands now, the rest at the page's next await.
    pub(crate) fn exec_patch(&mut self, patch: &Value) {
        let commands = &patch["cmds"];
        if let Some(refused) = commands_refusal(commands) {
            self.error(format!("patch refused: {refused}: {patch}"));
            return;
        }
        let commands = commands.as_array().cloned().unwrap_or_default();
        let left = self.run_on_model(&commands, None);
        if self.queued.len() + left.len() > MAX_QUEUED {
            self.fail(format!("more than {MAX_QUEUED} exec commands waiting"));
            return;
        }
        self.queued.extend(left);
    }

    /// Runs the `exec` commands that wait for the page's socket or events.
    pub(crate) async fn run_queued(&mut self) {
        for command in std::mem::take(&mut self.queued) {
            self.run_page_command(None, "", &Map::new(), command).await;
        }
    }

    /// Whether every handler attribute of `el` is a command list without `push` (page.mjs
    /// `runsOffline`): such a control stays enabled while the page is not joined.
    pub(crate) fn runs_offline(&self, el: &NodeRef) -> bool {
        let mut texts = Vec::new();
        for (name, value) in self.dom.handler_attributes(el) {
            if name == "tether-on" {
                texts.extend(parse_on(&value).0.into_iter().map(|(_, handler)| handler));
            } else {
                texts.push(value);
            }
        }
        !texts.is_empty()
            && texts.iter().all(|text| {
                is_command_list(text)
                    && parse_commands(text)
                        .is_ok_and(|commands| commands.iter().all(|c| c[0] != "push"))
            })
    }

    /// The root's connection classes (connection.mjs `showState`): `tether-connected` or
    /// `tether-disconnected` (the kit has no `connecting` to show after its first join).
    pub(crate) fn show_state(&mut self, state: &str) {
        let Some(html) = self.dom.select_first("html").ok().flatten() else {
            return;
        };
        let mut classes: Vec<String> = super::dom::class_list(&html)
            .into_iter()
            .filter(|c| {
                !matches!(
                    c.as_str(),
                    "tether-connecting"
                        | "tether-connected"
                        | "tether-disconnected"
                        | "tether-stale"
                )
            })
            .collect();
        classes.push(format!("tether-{state}"));
        self.dom.set_attr(&html, "class", Some(&classes.join(" ")));
    }

    /// A `push_event` (`event` patch): recorded, in order.
    pub(crate) fn pushed_event(&mut self, patch: &Value) {
        let name = patch["name"].as_str().unwrap_or_default().to_string();
        self.events
            .push((name, patch.get("payload").cloned().unwrap_or(Value::Null)));
    }

    /// The events the server pushed to the page's JavaScript (`page.push_event(name,
    /// payload)`, to this page or a topic it is on), in order, as `(name, payload)`. Hooks
    /// do not run in the kit: this is what they would have been handed.
    ///
    /// ```no_run
    /// # async fn demo(page: &mut tether::testing::TestPage) {
    /// page.click("#refresh").await;
    /// assert_eq!(page.events()[0].0, "points");
    /// # }
    /// ```
    pub fn events(&self) -> &[(String, Value)] {
        &self.events
    }
}
