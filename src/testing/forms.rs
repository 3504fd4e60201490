//! The kit's port of tether.js's forms.mjs: loading states while an event is processed
//! (`tether-disable-with`, the `tether-loading` class), which fields of a form a person has
//! used (`sender.used`), flash messages in `[tether-flash]` containers, and the forms a
//! rejoin recovers.
//!
//! For: [`super::page`] and [`super::actions`], which call these rules at the moments
//! page.mjs calls forms.mjs. Never: sends anything, or differs from forms.mjs (a rule changed
//! there is changed here).

use kuchikiki::NodeRef;

use super::dom::{Dom, class_list, control_type, tree};

const LOADING_CLASS: &str = "tether-loading";
/// Field names remembered per form (forms.mjs `MAX_USED`).
const MAX_USED: usize = 1000;
const CLOSE: &str = "tether-flash-close";
/// The "×" of a flash's close button, as forms.mjs draws it (no text).
const CROSS_ICON: &str = r#"<svg viewBox="0 0 10 10" width="10" height="10" aria-hidden="true"><path d="M2 2L8 8M8 2L2 8" stroke="currentColor" stroke-width="1.5"></path></svg>"#;
/// Field types used as soon as they change (no typing then leaving).
const CHOSEN: &[&str] = &[
    "checkbox",
    "radio",
    "select-one",
    "select-multiple",
    "file",
    "range",
    "color",
    "date",
    "time",
];

fn field_name(dom: &Dom, field: &NodeRef) -> String {
    dom.attr(field, "name")
        .filter(|n| !n.is_empty())
        .or_else(|| dom.attr(field, "id"))
        .unwrap_or_default()
}

fn is_value_button(el: &NodeRef) -> bool {
    tree::local_name(el) == "input"
        && control_type(el).is_some_and(|t| matches!(t.as_str(), "submit" | "button" | "reset"))
}

fn shown(dom: &Dom, el: &NodeRef) -> String {
    if is_value_button(el) {
        dom.value(el)
    } else {
        dom.text(el)
    }
}

fn show(dom: &mut Dom, el: &NodeRef, text: &str) {
    if is_value_button(el) {
        dom.set_value(el, text);
    } else {
        tree::set_text(el, text);
    }
}

fn add_class(dom: &mut Dom, el: &NodeRef, class: &str) {
    let mut classes = class_list(el);
    if !classes.iter().any(|c| c == class) {
        classes.push(class.to_string());
        dom.set_attr(el, "class", Some(&classes.join(" ")));
    }
}

fn remove_class(dom: &mut Dom, el: &NodeRef, class: &str) {
    if dom.attr(el, "class").is_none() {
        return;
    }
    let classes: Vec<String> = class_list(el).into_iter().filter(|c| c != class).collect();
    dom.set_attr(el, "class", Some(&classes.join(" ")));
}

struct Busy {
    el: NodeRef,
    count: usize,
    class: String,
    /// What the element showed, and the `tether-disable-with` text it shows meanwhile.
    text: Option<(String, String)>,
}

/// Loading states (forms.mjs `Loading`).
#[derive(Default)]
pub(crate) struct Loading {
    busy: Vec<Busy>,
}

impl Loading {
    /// Starts the loading state of an event of `event_type` at `el`; returns what
    /// [`Loading::end`] takes when the event settles.
    pub(crate) fn start(&mut self, dom: &mut Dom, el: &NodeRef, event_type: &str) -> Vec<NodeRef> {
        let form = dom.form_of(el);
        let mut with_text = vec![el.clone()];
        if let (Some(form), "submit") = (&form, event_type) {
            for button in dom.form_elements(form) {
                if &button != el && control_type(&button).as_deref() == Some("submit") {
                    with_text.push(button);
                }
            }
        }
        let mut taken = Vec::new();
        taken.push(self.take(dom, el, false));
        if let Some(form) = form.filter(|f| f != el) {
            taken.push(self.take(dom, &form, false));
        }
        for target in with_text {
            if dom.attr(&target, "tether-disable-with").is_some() {
                taken.push(self.take(dom, &target, true));
            }
        }
        taken
    }

    fn take(&mut self, dom: &mut Dom, el: &NodeRef, with_text: bool) -> NodeRef {
        let i = match self.busy.iter().position(|b| &b.el == el) {
            Some(i) => i,
            None => {
                let class = dom
                    .attr(el, "tether-loading-class")
                    .filter(|c| !c.is_empty())
                    .unwrap_or_else(|| LOADING_CLASS.to_string());
                add_class(dom, el, &class);
                self.busy.push(Busy {
                    el: el.clone(),
                    count: 0,
                    class,
                    text: None,
                });
                self.busy.len() - 1
            }
        };
        let busy = &mut self.busy[i];
        busy.count += 1;
        if with_text && busy.text.is_none() {
            let text = dom.attr(el, "tether-disable-with").unwrap_or_default();
            busy.text = Some((shown(dom, el), text.clone()));
            show(dom, el, &text);
        }
        el.clone()
    }

    /// Ends a loading state [`Loading::start`] began.
    pub(crate) fn end(&mut self, dom: &mut Dom, taken: &[NodeRef]) {
        for el in taken {
            let Some(i) = self.busy.iter().position(|b| &b.el == el) else {
                continue;
            };
            self.busy[i].count -= 1;
            if self.busy[i].count > 0 {
                continue;
            }
            let busy = self.busy.remove(i);
            remove_class(dom, el, &busy.class);
            if let Some((was, with)) = busy.text {
                if shown(dom, el) == with {
                    show(dom, el, &was);
                }
            }
        }
    }
}

/// Which fields a person has used, per form (forms.mjs `UsedFields`).
#[derive(Default)]
pub(crate) struct UsedFields {
    /// (form, or `None` for fields outside a form; the names used).
    used: Vec<(Option<NodeRef>, Vec<String>)>,
    /// Fields typed in and not left yet.
    typed: Vec<NodeRef>,
}

impl UsedFields {
    fn add(&mut self, form: Option<NodeRef>, name: String) {
        if name.is_empty() {
            return;
        }
        let i = match self.used.iter().position(|(f, _)| f == &form) {
            Some(i) => i,
            None => {
                self.used.push((form, Vec::new()));
                self.used.len() - 1
            }
        };
        let names = &mut self.used[i].1;
        if !names.contains(&name) && names.len() < MAX_USED {
            names.push(name);
        }
    }

    fn mark(&mut self, dom: &Dom, field: &NodeRef) {
        self.typed.retain(|f| f != field);
        self.add(dom.form_owner(field), field_name(dom, field));
    }

    /// A DOM event of `event_type` at `target`, before the page's own listeners see it.
    pub(crate) fn note(&mut self, dom: &Dom, target: &NodeRef, event_type: &str) {
        let is_field = control_type(target).is_some();
        match event_type {
            "input" if is_field => {
                let chosen = control_type(target).is_some_and(|t| CHOSEN.contains(&t.as_str()));
                if chosen {
                    self.mark(dom, target);
                } else if !self.typed.contains(target) {
                    self.typed.push(target.clone());
                }
            }
            "change" if is_field => self.mark(dom, target),
            "blur" if self.typed.contains(target) => self.mark(dom, target),
            "submit" if tree::local_name(target) == "form" => {
                for field in dom.form_elements(target) {
                    self.add(Some(target.clone()), field_name(dom, &field));
                }
            }
            "reset" if tree::local_name(target) == "form" => {
                self.used.retain(|(f, _)| f.as_ref() != Some(target));
            }
            _ => {}
        }
    }

    /// The used fields an event at `el` sends: those of its form, or itself when it has none.
    pub(crate) fn of(&self, dom: &Dom, el: &NodeRef) -> Vec<String> {
        let form = dom.form_of(el);
        let names = |form: &Option<NodeRef>| {
            self.used
                .iter()
                .find(|(f, _)| f == form)
                .map(|(_, names)| names.clone())
                .unwrap_or_default()
        };
        if form.is_some() {
            return names(&form);
        }
        let name = field_name(dom, el);
        if !name.is_empty() && names(&None).contains(&name) {
            vec![name]
        } else {
            Vec::new()
        }
    }
}

/// The forms a rejoin recovers (forms.mjs `formsToRecover`): with an id and a change
/// handler (or `tether-auto-recover` naming another), not ignored; as (form, handler text).
pub(crate) fn forms_to_recover(
    dom: &Dom,
    allowed: &impl Fn(&str) -> bool,
) -> Vec<(NodeRef, String)> {
    let mut forms = Vec::new();
    for form in dom.select_all("form[id]").unwrap_or_default() {
        if dom.ignored(&form) {
            continue;
        }
        let recover = dom.attr(&form, "tether-auto-recover");
        if recover.as_deref() == Some("ignore") {
            continue;
        }
        let handler = recover
            .filter(|r| !r.is_empty())
            .or_else(|| dom.handlers_of(&form, "change", allowed).into_iter().next());
        if let Some(handler) = handler {
            forms.push((form, handler));
        }
    }
    forms
}

fn flash_containers(dom: &Dom, kind: Option<&str>) -> Vec<NodeRef> {
    dom.select_all("[tether-flash]")
        .unwrap_or_default()
        .into_iter()
        .filter(|c| !dom.ignored(c))
        .filter(|c| {
            let kinds = dom.attr(c, "tether-flash").unwrap_or_default();
            let mut kinds = kinds.split_whitespace().peekable();
            match kind {
                None => true,
                Some(kind) => kinds.peek().is_none() || kinds.any(|k| k == kind),
            }
        })
        .collect()
}

fn remove_kind(dom: &mut Dom, container: &NodeRef, kind: Option<&str>) {
    for message in tree::element_children(container) {
        let is_message = class_list(&message)
            .iter()
            .any(|c| c == "tether-flash-message");
        if is_message && kind.is_none_or(|k| dom.attr(&message, "data-kind").as_deref() == Some(k))
        {
            dom.remove(&message);
        }
    }
}

/// Shows `text` as the `kind` flash in every container that takes it (forms.mjs `putFlash`).
pub(crate) fn put_flash(dom: &mut Dom, kind: &str, text: &str) {
    if kind.is_empty() {
        return;
    }
    for container in flash_containers(dom, Some(kind)) {
        remove_kind(dom, &container, Some(kind));
        let make = |tag: &str| tree::create_element(&container, tag);
        let (Some(message), Some(span), Some(close)) = (make("div"), make("span"), make("button"))
        else {
            continue;
        };
        tree::set_attr(&message, "class", "tether-flash-message");
        tree::set_attr(&message, "data-kind", kind);
        let role = if kind == "error" { "alert" } else { "status" };
        tree::set_attr(&message, "role", role);
        tree::set_attr(&span, "class", "tether-flash-text");
        tree::set_text(&span, text);
        tree::set_attr(&close, "type", "button");
        tree::set_attr(&close, "class", &format!("{CLOSE} close"));
        tree::set_attr(&close, "aria-label", "Close");
        for node in tree::parse_fragment(&close, CROSS_ICON) {
            close.append(node);
        }
        message.append(span);
        message.append(close);
        container.append(message);
    }
}

/// Removes the flash messages of `kind` (every kind for `None`) (forms.mjs `clearFlash`).
pub(crate) fn clear_flash(dom: &mut Dom, kind: Option<&str>) {
    for container in flash_containers(dom, None) {
        remove_kind(dom, &container, kind);
    }
}

/// A click at `target`: when it is on a flash's close button, removes that message (in the
/// page only) and says so.
pub(crate) fn close_flash(dom: &mut Dom, target: &NodeRef) -> bool {
    let Some(button) = dom.closest(target, &format!(".{CLOSE}")) else {
        return false;
    };
    let Some(message) = dom.closest(&button, ".tether-flash-message") else {
        return false;
    };
    let in_container = tree::parent_element(&message)
        .is_some_and(|p| dom.matches(&p, "[tether-flash]").unwrap_or(false));
    if in_container {
        dom.remove(&message);
    }
    in_container
}
