//! Round trips on a kit page: the server asks (`call`) and the page answers (`call_reply`),
//! from the DOM model where a browser would read the DOM (`query`, `cookies`), from the
//! test where a person or a script would (`modal` dialogs clicked by the test, `wait` events
//! the test fires, `js` answered by [`TestPage::answer_js`]).
//!
//! For: [`TestPage`], which hands it every `call` and `call_cancel`.
//! Never: answers a call twice or after the join that asked it is gone, or runs script.

use kuchikiki::NodeRef;
use serde_json::{Map, Value, json};

use super::page::{Pending, TestPage};

/// A round trip waiting for the test.
pub(crate) enum OpenCall {
    /// `wait`: the `[selector, type]` pairs whose first event answers.
    Wait(Vec<(String, String)>),
    /// `modal`: the dialog in the page; a click on one of its buttons (or Escape) answers.
    Modal(NodeRef),
}

/// A call's `id` as the server sent it (a string or a number), for the answer.
fn call_id(call: &Value) -> String {
    match &call["id"] {
        Value::String(id) => id.clone(),
        other => other.to_string(),
    }
}

impl TestPage {
    /// A `call` event.
    pub(crate) async fn start_call(&mut self, call: Value) {
        self.asked.push(call.clone());
        let id = call_id(&call);
        self.cancel_call(&id);
        let answer = match call["op"].as_str().unwrap_or("") {
            "js" => self.js_answer_for(&call),
            "query" => Some(self.query(&call)),
            "cookies" => Some(Ok(Value::Object(self.browser.script_cookies(&self.path)))),
            "wait" => self.open_wait(&id, &call),
            "modal" => {
                let dialog = self.dom.open_modal(&call);
                self.open_calls.insert(id.clone(), OpenCall::Modal(dialog));
                None
            }
            op => Some(Err(format!("unknown op {op}"))),
        };
        if let Some(answer) = answer {
            self.answer(&call["id"], answer).await;
        }
    }

    fn js_answer_for(&mut self, call: &Value) -> Option<Result<Value, String>> {
        if !self.exec_js {
            return Some(Err("exec_js is disabled".into()));
        }
        let js = call["js"].as_str().unwrap_or("");
        match self.js_answer.as_mut() {
            Some(answer) => Some(answer(js)),
            None => {
                self.fail(format!(
                    "the page was asked to run script ({js}); answer it with TestPage::answer_js"
                ));
                Some(Err("the test gave no answer".into()))
            }
        }
    }

    /// `query`: each element matching `sel`, its selector and the named properties.
    fn query(&mut self, call: &Value) -> Result<Value, String> {
        let selector = call["sel"].as_str().ok_or("invalid selector")?;
        let found = self
            .dom
            .select_all(selector)
            .map_err(|_| "invalid selector".to_string())?;
        let names: Vec<String> = call["props"]
            .as_array()
            .map(|props| {
                props
                    .iter()
                    .map(|p| p.as_str().map_or_else(|| p.to_string(), str::to_string))
                    .collect()
            })
            .unwrap_or_default();
        let mut answer = Vec::new();
        for el in found {
            let mut props = Map::new();
            for name in &names {
                props.insert(name.clone(), self.dom.read_prop(&el, name));
            }
            answer.push(json!({"sel": self.dom.selector_of(&el), "props": props}));
        }
        Ok(Value::Array(answer))
    }

    fn open_wait(&mut self, id: &str, call: &Value) -> Option<Result<Value, String>> {
        let Some(events) = call["events"].as_array().filter(|e| !e.is_empty()) else {
            return Some(Err("no events to wait for".into()));
        };
        let mut pairs = Vec::new();
        for pair in events {
            let (Some(selector), Some(event_type)) = (pair[0].as_str(), pair[1].as_str()) else {
                return Some(Err("events must be [selector, type] pairs".into()));
            };
            if event_type.is_empty() {
                return Some(Err("events must be [selector, type] pairs".into()));
            }
            if self.dom.matches(&self.dom.body(), selector).is_err() {
                return Some(Err("invalid selector".into()));
            }
            pairs.push((selector.to_string(), event_type.to_string()));
        }
        self.open_calls
            .insert(id.to_string(), OpenCall::Wait(pairs));
        None
    }

    /// Sends the page's answer to call `id`.
    async fn answer(&mut self, id: &Value, answer: Result<Value, String>) {
        if !self.joined {
            return;
        }
        let body = match answer {
            Ok(ok) => json!({"id": id, "ok": ok}),
            Err(error) => json!({"id": id, "error": error}),
        };
        self.push("call_reply", body, Pending::CallReply).await;
    }

    /// `call_cancel`: the server stopped waiting; the dialog goes.
    pub(crate) fn cancel_call(&mut self, id: &str) {
        if let Some(OpenCall::Modal(dialog)) = self.open_calls.remove(id) {
            self.dom.remove(&dialog);
        }
    }

    /// The join is gone: no call of it will be answered.
    pub(crate) fn cancel_all_calls(&mut self) {
        let ids: Vec<String> = self.open_calls.keys().cloned().collect();
        for id in ids {
            self.cancel_call(&id);
        }
    }

    /// Whether the page waits for the test: a dialog to answer or an event to fire.
    pub(crate) fn needs_test(&self) -> bool {
        !self.open_calls.is_empty()
    }

    /// A DOM event happened: the first `wait` round trip one of whose pairs it matches is
    /// answered with the pair's index and the element's sender.
    pub(crate) async fn answer_waits(
        &mut self,
        target: &NodeRef,
        event_type: &str,
        bubbles: bool,
        fields: &Map<String, Value>,
    ) {
        let mut answered = Vec::new();
        for (id, call) in &self.open_calls {
            let OpenCall::Wait(pairs) = call else {
                continue;
            };
            for (index, (selector, pair_type)) in pairs.iter().enumerate() {
                if pair_type != event_type {
                    continue;
                }
                let el = if bubbles {
                    self.dom.closest(target, selector)
                } else {
                    self.dom
                        .matches(target, selector)
                        .ok()
                        .filter(|m| *m)
                        .map(|_| target.clone())
                };
                if let Some(el) = el {
                    answered.push((id.clone(), index, el));
                    break;
                }
            }
        }
        for (id, index, el) in answered {
            self.open_calls.remove(&id);
            let arg = self.dom.argument_of(&el).unwrap_or(Value::Null);
            let sender = self.dom.describe(&el, fields, arg);
            let id = serde_json::from_str::<Value>(&id).unwrap_or(Value::String(id));
            self.answer(&id, Ok(json!({"index": index, "sender": sender})))
                .await;
        }
    }

    /// The open modal call whose dialog holds `el`.
    fn modal_of(&self, el: &NodeRef) -> Option<(String, NodeRef)> {
        self.open_calls.iter().find_map(|(id, call)| match call {
            OpenCall::Modal(dialog) if el.inclusive_ancestors().any(|a| &a == dialog) => {
                Some((id.clone(), dialog.clone()))
            }
            _ => None,
        })
    }

    /// A click on `el`: when it is a button of an open dialog, the dialog answers with its
    /// value and the form's fields, and goes. Whether it did.
    pub(crate) async fn answers_modal(&mut self, el: &NodeRef) -> bool {
        let Some((id, dialog)) = self.modal_of(el) else {
            return false;
        };
        if self.dom.tag(el) != "button" {
            return false;
        }
        let value = self.dom.attr(el, "value").unwrap_or_default();
        self.finish_modal(id, dialog, Value::String(value)).await;
        true
    }

    /// Escape in an open dialog: it answers `button: null`.
    pub(crate) async fn cancel_modal(&mut self, el: &NodeRef) {
        if let Some((id, dialog)) = self.modal_of(el) {
            self.finish_modal(id, dialog, Value::Null).await;
        }
    }

    async fn finish_modal(&mut self, id: String, dialog: NodeRef, button: Value) {
        self.open_calls.remove(&id);
        let fields = self
            .dom
            .select_all("form")
            .unwrap_or_default()
            .into_iter()
            .find(|form| form.inclusive_ancestors().any(|a| a == dialog))
            .map(|form| self.dom.form_values(&form, true))
            .unwrap_or_default();
        self.dom.remove(&dialog);
        let id = serde_json::from_str::<Value>(&id).unwrap_or(Value::String(id));
        self.answer(&id, Ok(json!({"button": button, "fields": fields})))
            .await;
    }

    /// How the page answers `exec_js` round trips (`Page::exec_js`, with `[commander]
    /// exec_js` on): `answer` gets the script and returns its value or error message.
    /// Without it, such a round trip fails the test.
    pub fn answer_js(&mut self, answer: impl FnMut(&str) -> Result<Value, String> + 'static) {
        self.js_answer = Some(Box::new(answer));
    }

    /// Sets a property the model cannot compute (layout: `offsetWidth`, `scrollTop`,
    /// `clientHeight`, …) on every element matching `selector`, for `query` round trips to
    /// read.
    pub fn set_layout(&mut self, selector: &str, prop: &str, value: Value) {
        let found = self.all(selector);
        if found.is_empty() {
            panic!("tether::testing: set_layout: nothing matches {selector}");
        }
        for el in found {
            self.dom.set_layout_prop(&el, prop, value.clone());
        }
    }
}
