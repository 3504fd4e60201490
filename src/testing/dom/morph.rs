//! The DOM morph of `morph` patches (morph.mjs), on the model: children matched by id sets
//! and soft matches the way Idiomorph (assets/vendor, the browser's morph) matches them, with
//! tether's two callbacks: a kept form control whose rendered state (`checked`, `value`,
//! `selected` attribute, a textarea's text) is the same in the new markup keeps its live
//! state, and a nested `tether-live` region rendered again under the same name is left as
//! it is. An element with `tether-update="ignore"` keeps its children and attributes but
//! takes its new `data-*` ones; `tether-keep="style class"` names attributes a morph leaves.
//!
//! morph.mjs first tries a keyed path of its own (every child with a unique id); it keeps
//! the same nodes and ends with the same markup as Idiomorph for those children, so the model
//! runs the one algorithm for both.
//!
//! For: `morph` patches ([`Dom::apply_patch`]).
//! Never: checks a patch, or keeps state between calls. No focus in the model.

use std::collections::{HashMap, HashSet};
use std::rc::Rc;

use kuchikiki::NodeRef;
use kuchikiki::traits::TendrilSink;

use super::{Dom, input_type, tree};
use tree::{get_attr, has_attr, is_element, local_name, node_type, tag_name};

const LIVE_STATE: &[&str] = &["checked", "value", "selected"];

fn key(node: &NodeRef) -> usize {
    Rc::as_ptr(&node.0) as usize
}

struct Ctx {
    /// The element being morphed.
    target: NodeRef,
    /// Each node's set of persistent ids in its subtree (old and new nodes).
    id_map: HashMap<usize, HashSet<String>>,
    persistent: HashSet<String>,
    /// Where persistent nodes wait to be matched again.
    pantry: NodeRef,
    /// Kept form controls whose live state stays.
    keep: HashSet<usize>,
}

/// Parses `html` as Idiomorph does for a fragment: the content of a `<template>` in a body.
fn parse_content(html: &str) -> NodeRef {
    let doc = kuchikiki::parse_html()
        .one(format!("<body><template>{html}</template></body>"))
        .document_node;
    let template = doc.descendants().find(|n| local_name(n) == "template");
    match template.and_then(|t| tree::template_contents(&t)) {
        Some(content) => content,
        None => NodeRef::new(kuchikiki::NodeData::DocumentFragment),
    }
}

/// The elements with a non-empty id in `root`'s subtree (root included).
fn id_elements(root: &NodeRef) -> Vec<(NodeRef, String)> {
    root.inclusive_descendants()
        .filter_map(|n| {
            get_attr(&n, "id")
                .filter(|id| !id.is_empty())
                .map(|id| (n, id))
        })
        .collect()
}

/// Whether `old` is a live region nested in `root` that `new` renders again (live.mjs).
pub(crate) fn nested_region(root: &NodeRef, old: &NodeRef, new: &NodeRef) -> bool {
    old != root
        && is_element(old)
        && is_element(new)
        && has_attr(old, "tether-live")
        && get_attr(old, "tether-live") == get_attr(new, "tether-live")
}

/// Whether `new` renders form control `old` in the state it was last rendered in.
fn same_rendered_state(old: &NodeRef, new: &NodeRef) -> bool {
    if !is_element(old) || !is_element(new) || tag_name(old) != tag_name(new) {
        return false;
    }
    match local_name(old).as_str() {
        "input" => {
            has_attr(old, "checked") == has_attr(new, "checked")
                && get_attr(old, "value") == get_attr(new, "value")
        }
        "option" => has_attr(old, "selected") == has_attr(new, "selected"),
        "textarea" => old.text_contents() == new.text_contents(),
        _ => false,
    }
}

fn soft_match(old: &NodeRef, new: &NodeRef) -> bool {
    if node_type(old) != node_type(new) || tag_name(old) != tag_name(new) {
        return false;
    }
    match get_attr(old, "id").filter(|id| !id.is_empty()) {
        None => true,
        Some(id) => get_attr(new, "id").as_deref() == Some(id.as_str()),
    }
}

/// Whether `node` is `tether-update="ignore"` (morph.mjs `updateIgnored`).
pub(crate) fn update_ignored(node: &NodeRef) -> bool {
    is_element(node) && get_attr(node, "tether-update").as_deref() == Some("ignore")
}

/// Whether a morph leaves attribute `name` of `node` alone (`tether-keep`).
fn kept_attribute(node: &NodeRef, name: &str) -> bool {
    get_attr(node, "tether-keep").is_some_and(|keep| keep.split_whitespace().any(|k| k == name))
}

/// An ignored element still takes its new `data-*` attributes (morph.mjs `syncData`).
fn sync_data(old: &NodeRef, new: &NodeRef) {
    if !is_element(new) {
        return;
    }
    for (name, _) in tree::attributes(old).into_iter().rev() {
        if name.starts_with("data-") && !has_attr(new, &name) {
            tree::remove_attr(old, &name);
        }
    }
    for (name, value) in tree::attributes(new) {
        if name.starts_with("data-") && get_attr(old, &name).as_deref() != Some(value.as_str()) {
            tree::copy_attr(old, new, &name);
        }
    }
}

impl Dom {
    /// Morphs `el`'s children into `html` (morph.mjs `morph`).
    pub(crate) fn morph(&mut self, el: &NodeRef, html: &str) {
        let content = parse_content(html);
        let old_ids = id_elements(el);
        let new_ids: Vec<(NodeRef, String)> = content
            .descendants()
            .filter_map(|n| get_attr(&n, "id").filter(|i| !i.is_empty()).map(|i| (n, i)))
            .collect();
        let mut duplicates = HashSet::new();
        let mut old_tags: HashMap<String, String> = HashMap::new();
        for (n, id) in &old_ids {
            if old_tags.contains_key(id) {
                duplicates.insert(id.clone());
            } else {
                old_tags.insert(id.clone(), tag_name(n));
            }
        }
        let mut persistent = HashSet::new();
        for (n, id) in &new_ids {
            if persistent.contains(id) {
                duplicates.insert(id.clone());
            } else if old_tags.get(id) == Some(&tag_name(n)) {
                persistent.insert(id.clone());
            }
        }
        for id in &duplicates {
            persistent.remove(id);
        }
        let mut id_map: HashMap<usize, HashSet<String>> = HashMap::new();
        for (ids, root) in [(&old_ids, el), (&new_ids, &content)] {
            for (n, id) in ids.iter() {
                if !persistent.contains(id) {
                    continue;
                }
                for a in n.inclusive_ancestors() {
                    id_map.entry(key(&a)).or_default().insert(id.clone());
                    if &a == root {
                        break;
                    }
                }
            }
        }
        let pantry = tree::create_element(el, "div")
            .unwrap_or_else(|| NodeRef::new(kuchikiki::NodeData::DocumentFragment));
        let mut ctx = Ctx {
            target: el.clone(),
            id_map,
            persistent,
            pantry,
            keep: HashSet::new(),
        };
        self.morph_children(&mut ctx, el, &content, None, None);
    }

    fn morph_children(
        &mut self,
        ctx: &mut Ctx,
        old_parent: &NodeRef,
        new_parent: &NodeRef,
        insertion: Option<NodeRef>,
        end: Option<NodeRef>,
    ) {
        let (old_parent, new_parent) = match (
            tree::template_contents(old_parent),
            tree::template_contents(new_parent),
        ) {
            (Some(a), Some(b)) => (a, b),
            _ => (old_parent.clone(), new_parent.clone()),
        };
        let mut ip = insertion.or_else(|| old_parent.first_child());
        for new_child in new_parent.children().collect::<Vec<_>>() {
            if let Some(point) = ip.clone().filter(|p| Some(p) != end.as_ref()) {
                if let Some(best) = self.find_best_match(ctx, &new_child, &point, end.as_ref()) {
                    if best != point {
                        self.remove_between(ctx, &point, &best);
                    }
                    self.morph_node(ctx, &best, &new_child);
                    ip = best.next_sibling();
                    continue;
                }
            }
            if let Some(id) = get_attr(&new_child, "id") {
                if ctx.persistent.contains(&id) {
                    if let Some(moved) = self.move_by_id(ctx, &old_parent, &id, ip.as_ref()) {
                        self.morph_node(ctx, &moved, &new_child);
                        ip = moved.next_sibling();
                        continue;
                    }
                }
            }
            let inserted = if ctx.id_map.contains_key(&key(&new_child)) {
                let empty = tree::shallow_clone(&new_child);
                if let Some(e) = empty.as_element() {
                    e.attributes.borrow_mut().map.clear();
                }
                tree::insert_before(&old_parent, empty.clone(), ip.as_ref());
                self.morph_node(ctx, &empty, &new_child);
                empty
            } else {
                let clone = tree::deep_clone(&new_child);
                tree::insert_before(&old_parent, clone.clone(), ip.as_ref());
                clone
            };
            ip = inserted.next_sibling();
        }
        while let Some(node) = ip.clone().filter(|p| Some(p) != end.as_ref()) {
            ip = node.next_sibling();
            self.remove_node(ctx, &node);
        }
    }

    fn find_best_match(
        &self,
        ctx: &Ctx,
        node: &NodeRef,
        start: &NodeRef,
        end: Option<&NodeRef>,
    ) -> Option<NodeRef> {
        // None: no fallback yet; Some(None): soft matching blocked; Some(Some(n)): the fallback.
        let mut soft: Option<Option<NodeRef>> = None;
        let mut next = node.next_sibling();
        let mut future = 0;
        let mut cursor = Some(start.clone());
        while let Some(c) = cursor.filter(|c| Some(c) != end) {
            if soft_match(&c, node) {
                let old_set = ctx.id_map.get(&key(&c));
                let new_set = ctx.id_map.get(&key(node));
                if let (Some(a), Some(b)) = (old_set, new_set) {
                    if a.iter().any(|id| b.contains(id)) {
                        return Some(c);
                    }
                }
                if soft.is_none() && !ctx.id_map.contains_key(&key(&c)) {
                    soft = Some(Some(c.clone()));
                }
            }
            if soft.is_none() {
                if let Some(n) = next.clone().filter(|n| soft_match(&c, n)) {
                    future += 1;
                    next = n.next_sibling();
                    if future >= 2 {
                        soft = Some(None);
                    }
                }
            }
            cursor = c.next_sibling();
        }
        soft.flatten()
    }

    fn remove_between(&mut self, ctx: &mut Ctx, start: &NodeRef, end: &NodeRef) {
        let mut cursor = Some(start.clone());
        while let Some(c) = cursor.filter(|c| c != end) {
            cursor = c.next_sibling();
            self.remove_node(ctx, &c);
        }
    }

    fn remove_node(&mut self, ctx: &mut Ctx, node: &NodeRef) {
        if node == &ctx.pantry {
            return;
        }
        if ctx.id_map.contains_key(&key(node)) {
            node.detach();
            ctx.pantry.append(node.clone());
        } else {
            node.detach();
        }
    }

    fn move_by_id(
        &mut self,
        ctx: &mut Ctx,
        parent: &NodeRef,
        id: &str,
        before: Option<&NodeRef>,
    ) -> Option<NodeRef> {
        let found = |root: &NodeRef| {
            root.inclusive_descendants()
                .find(|n| get_attr(n, "id").as_deref() == Some(id))
        };
        let target = found(&ctx.target).or_else(|| found(&ctx.pantry))?;
        for a in target.ancestors() {
            if let Some(set) = ctx.id_map.get_mut(&key(&a)) {
                set.remove(id);
                if set.is_empty() {
                    ctx.id_map.remove(&key(&a));
                }
            }
        }
        target.detach();
        tree::insert_before(parent, target.clone(), before);
        Some(target)
    }

    fn morph_node(&mut self, ctx: &mut Ctx, old: &NodeRef, new: &NodeRef) {
        if nested_region(&ctx.target, old, new) {
            return;
        }
        if update_ignored(old) {
            sync_data(old, new);
            return;
        }
        if same_rendered_state(old, new) {
            ctx.keep.insert(key(old));
        }
        self.morph_attributes(ctx, old, new);
        self.morph_children(ctx, old, new, None, None);
    }

    fn morph_attributes(&mut self, ctx: &Ctx, old: &NodeRef, new: &NodeRef) {
        if is_element(old) && is_element(new) {
            let ignore = |name: &str| {
                (ctx.keep.contains(&key(old)) && LIVE_STATE.contains(&name))
                    || kept_attribute(old, name)
            };
            for (name, value) in tree::attributes(new) {
                if get_attr(old, &name).as_deref() == Some(value.as_str()) || ignore(&name) {
                    continue;
                }
                tree::copy_attr(old, new, &name);
            }
            for (name, _) in tree::attributes(old).into_iter().rev() {
                if !has_attr(new, &name) && !ignore(&name) {
                    tree::remove_attr(old, &name);
                }
            }
            self.sync_input_value(ctx, old, new);
        } else if let (Some(a), Some(b)) = (tree::char_data(old), tree::char_data(new)) {
            if a != b {
                tree::set_char_data(old, &b);
            }
        }
    }

    fn sync_input_value(&mut self, ctx: &Ctx, old: &NodeRef, new: &NodeRef) {
        let ignore = |name: &str| ctx.keep.contains(&key(old)) && LIVE_STATE.contains(&name);
        match (local_name(old).as_str(), local_name(new).as_str()) {
            ("input", "input") if input_type(new) != "file" => {
                let new_value = self.value(new);
                let old_value = self.value(old);
                self.sync_boolean(ctx, old, new, "checked");
                self.sync_boolean(ctx, old, new, "disabled");
                if !has_attr(new, "value") {
                    if !ignore("value") {
                        self.set_value(old, "");
                        tree::remove_attr(old, "value");
                    }
                } else if old_value != new_value && !ignore("value") {
                    tree::set_attr(old, "value", &new_value);
                    self.set_value(old, &new_value);
                }
            }
            ("option", "option") => self.sync_boolean(ctx, old, new, "selected"),
            ("textarea", "textarea") => {
                if ignore("value") {
                    return;
                }
                let new_value = self.value(new);
                if self.value(old) != new_value {
                    self.set_value(old, &new_value);
                }
                if let Some(first) = old.first_child() {
                    if tree::char_data(&first).is_some_and(|d| d != new_value) {
                        tree::set_char_data(&first, &new_value);
                    }
                }
            }
            _ => {}
        }
    }

    fn bool_prop(&self, el: &NodeRef, name: &str) -> bool {
        match name {
            "checked" => self.checked(el),
            "selected" => self.option_selected(el),
            _ => has_attr(el, name),
        }
    }

    fn sync_boolean(&mut self, ctx: &Ctx, old: &NodeRef, new: &NodeRef, name: &str) {
        let new_live = self.bool_prop(new, name);
        if new_live == self.bool_prop(old, name) {
            return;
        }
        let ignore = ctx.keep.contains(&key(old)) && LIVE_STATE.contains(&name);
        if !ignore {
            match name {
                "checked" => self.set_checked(old, new_live),
                "selected" => self.set_option_selected(old, new_live),
                _ => {}
            }
        }
        if new_live {
            if !ignore {
                tree::set_attr(old, name, "");
            }
        } else if !ignore {
            tree::remove_attr(old, name);
        }
    }
}
