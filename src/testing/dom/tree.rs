//! Node-level helpers of the DOM model: attributes in insertion order, tag names, parsing a
//! fragment in the context of an element, cloning, walking, and serialization as Chromium's
//! `innerHTML`/`outerHTML` writes it.
//!
//! For: the rest of `dom` (patches, morph, events, lists), which never touch kuchikiki's
//! attribute map or serializer directly.
//! Never: keeps state (the live state is the `Dom`'s side tables), or reorders attributes
//! (a removal shifts, it never swaps).

use kuchikiki::traits::TendrilSink;
use kuchikiki::{ElementData, NodeData, NodeRef, Selectors};

const HTML_NS: &str = "http://www.w3.org/1999/xhtml";
const SVG_NS: &str = "http://www.w3.org/2000/svg";
const MATHML_NS: &str = "http://www.w3.org/1998/Math/MathML";
const XML_NS: &str = "http://www.w3.org/XML/1998/namespace";
const XMLNS_NS: &str = "http://www.w3.org/2000/xmlns/";
const XLINK_NS: &str = "http://www.w3.org/1999/xlink";

const VOID: &[&str] = &[
    "area", "base", "basefont", "bgsound", "br", "col", "embed", "frame", "hr", "img", "input",
    "keygen", "link", "meta", "param", "source", "track", "wbr",
];
const RAW_TEXT: &[&str] = &[
    "style",
    "script",
    "xmp",
    "iframe",
    "noembed",
    "noframes",
    "plaintext",
    "noscript",
];

/// Whether `node` is an element.
pub(crate) fn is_element(node: &NodeRef) -> bool {
    node.as_element().is_some()
}

/// Whether `node` is an HTML element (not SVG or MathML).
pub(crate) fn is_html(node: &NodeRef) -> bool {
    node.as_element().is_some_and(|e| &*e.name.ns == HTML_NS)
}

/// The local name of an element (lowercase for HTML), `""` for other nodes.
pub(crate) fn local_name(node: &NodeRef) -> String {
    node.as_element()
        .map(|e| e.name.local.to_string())
        .unwrap_or_default()
}

/// `el.tagName`: uppercase for HTML elements.
pub(crate) fn tag_name(node: &NodeRef) -> String {
    match node.as_element() {
        Some(e) if &*e.name.ns == HTML_NS => e.name.local.to_string().to_ascii_uppercase(),
        Some(e) => match &e.name.prefix {
            Some(p) => format!("{}:{}", p, e.name.local),
            None => e.name.local.to_string(),
        },
        None => String::new(),
    }
}

fn qualified(name: &kuchikiki::ExpandedName, attr: &kuchikiki::Attribute) -> String {
    match &attr.prefix {
        Some(p) => format!("{}:{}", p, name.local),
        None => name.local.to_string(),
    }
}

/// The attributes of an element as `(qualified name, value)`, in order.
pub(crate) fn attributes(node: &NodeRef) -> Vec<(String, String)> {
    match node.as_element() {
        Some(e) => e
            .attributes
            .borrow()
            .map
            .iter()
            .map(|(n, a)| (qualified(n, a), a.value.clone()))
            .collect(),
        None => Vec::new(),
    }
}

/// `el.getAttribute(name)` (the name lowercased on HTML elements).
pub(crate) fn get_attr(node: &NodeRef, name: &str) -> Option<String> {
    let e = node.as_element()?;
    let name = attr_name(node, name);
    let attrs = e.attributes.borrow();
    attrs
        .map
        .iter()
        .find(|(n, a)| qualified(n, a) == name)
        .map(|(_, a)| a.value.clone())
}

/// `el.hasAttribute(name)`.
pub(crate) fn has_attr(node: &NodeRef, name: &str) -> bool {
    get_attr(node, name).is_some()
}

fn attr_name(node: &NodeRef, name: &str) -> String {
    if is_html(node) {
        name.to_ascii_lowercase()
    } else {
        name.to_string()
    }
}

/// `el.setAttribute(name, value)`: an existing attribute keeps its place, a new one goes last.
pub(crate) fn set_attr(node: &NodeRef, name: &str, value: &str) {
    let Some(e) = node.as_element() else { return };
    let name = attr_name(node, name);
    let mut attrs = e.attributes.borrow_mut();
    if let Some((_, a)) = attrs.map.iter_mut().find(|(n, a)| qualified(n, a) == name) {
        a.value = value.to_string();
        return;
    }
    attrs.insert(name.as_str(), value.to_string());
}

/// Sets an attribute from another element (its namespace and prefix too): what
/// `setAttributeNode(attr.cloneNode())` does.
pub(crate) fn copy_attr(node: &NodeRef, from: &NodeRef, qname: &str) {
    let (Some(e), Some(f)) = (node.as_element(), from.as_element()) else {
        return;
    };
    let src = f.attributes.borrow();
    let Some((n, a)) = src.map.iter().find(|(n, a)| qualified(n, a) == qname) else {
        return;
    };
    let mut attrs = e.attributes.borrow_mut();
    if let Some(existing) = attrs.map.get_mut(n) {
        existing.value = a.value.clone();
    } else {
        attrs.map.insert(n.clone(), a.clone());
    }
}

/// `el.removeAttribute(name)`: the others keep their order.
pub(crate) fn remove_attr(node: &NodeRef, name: &str) -> bool {
    let Some(e) = node.as_element() else {
        return false;
    };
    let name = attr_name(node, name);
    let mut attrs = e.attributes.borrow_mut();
    let Some(key) = attrs
        .map
        .iter()
        .find(|(n, a)| qualified(n, a) == name)
        .map(|(n, _)| n.clone())
    else {
        return false;
    };
    attrs.map.shift_remove(&key);
    true
}

/// The parent element of `node` (none for the document element).
pub(crate) fn parent_element(node: &NodeRef) -> Option<NodeRef> {
    node.parent().filter(is_element)
}

/// The element children of `node`.
pub(crate) fn element_children(node: &NodeRef) -> Vec<NodeRef> {
    node.children().filter(is_element).collect()
}

/// Compiles a selector; `Err` says it is invalid.
pub(crate) fn compile(selector: &str) -> Result<Selectors, String> {
    Selectors::compile(selector).map_err(|()| format!("invalid selector {selector}"))
}

/// Whether element `node` matches compiled selectors.
pub(crate) fn matches(node: &NodeRef, selectors: &Selectors) -> bool {
    node.clone()
        .into_element_ref()
        .is_some_and(|e| selectors.matches(&e))
}

/// `el.closest(selector)` with a compiled selector.
pub(crate) fn closest(node: &NodeRef, selectors: &Selectors) -> Option<NodeRef> {
    node.inclusive_ancestors()
        .filter(is_element)
        .find(|n| matches(n, selectors))
}

/// The elements below `root` matching `selectors`, in tree order.
pub(crate) fn select(root: &NodeRef, selectors: &Selectors) -> Vec<NodeRef> {
    root.descendants()
        .filter(|n| matches(n, selectors))
        .collect()
}

/// Whether `node` has an ancestor-or-self attribute `name`.
pub(crate) fn closest_with_attr(node: &NodeRef, name: &str) -> Option<NodeRef> {
    node.inclusive_ancestors()
        .filter(is_element)
        .find(|n| has_attr(n, name))
}

/// Parses `html` as the children of an element like `context` (`innerHTML`'s parse); the
/// nodes come detached, in order.
pub(crate) fn parse_fragment(context: &NodeRef, html: &str) -> Vec<NodeRef> {
    let name = match context.as_element() {
        Some(e) => e.name.clone(),
        None => return Vec::new(),
    };
    let doc = kuchikiki::parse_fragment(name, Vec::new())
        .one(html)
        .document_node;
    // html5ever puts the fragment under an <html> element of its own document.
    let Some(root) = doc.children().find(is_element) else {
        return Vec::new();
    };
    let nodes: Vec<NodeRef> = root.children().collect();
    for n in &nodes {
        n.detach();
    }
    nodes
}

/// A new element `tag` in the HTML namespace, made like `context`'s name.
pub(crate) fn create_element(context: &NodeRef, tag: &str) -> Option<NodeRef> {
    let mut name = context.as_element()?.name.clone();
    name.local = tag.into();
    name.prefix = None;
    name.ns = HTML_NS.into();
    Some(NodeRef::new_element(name, Vec::new()))
}

/// A deep copy of `node` (template contents too).
pub(crate) fn deep_clone(node: &NodeRef) -> NodeRef {
    let copy = shallow_clone(node);
    if let (Some(src), Some(dst)) = (
        node.as_element().and_then(|e| e.template_contents.clone()),
        copy.as_element().and_then(|e| e.template_contents.clone()),
    ) {
        for child in src.children() {
            dst.append(deep_clone(&child));
        }
    }
    for child in node.children() {
        copy.append(deep_clone(&child));
    }
    copy
}

/// A copy of `node` without children (an element keeps its attributes).
pub(crate) fn shallow_clone(node: &NodeRef) -> NodeRef {
    match node.data() {
        NodeData::Element(e) => {
            NodeRef::new_element(e.name.clone(), e.attributes.borrow().map.clone())
        }
        NodeData::Text(t) => NodeRef::new_text(t.borrow().clone()),
        NodeData::Comment(t) => NodeRef::new_comment(t.borrow().clone()),
        NodeData::ProcessingInstruction(p) => {
            let p = p.borrow();
            NodeRef::new_processing_instruction(p.0.clone(), p.1.clone())
        }
        NodeData::Doctype(d) => {
            NodeRef::new_doctype(d.name.clone(), d.public_id.clone(), d.system_id.clone())
        }
        NodeData::Document(_) => NodeRef::new_document(),
        NodeData::DocumentFragment => NodeRef::new(NodeData::DocumentFragment),
    }
}

/// The template contents of a `<template>` element.
pub(crate) fn template_contents(node: &NodeRef) -> Option<NodeRef> {
    node.as_element().and_then(|e| e.template_contents.clone())
}

/// The data of a text or comment node.
pub(crate) fn char_data(node: &NodeRef) -> Option<String> {
    node.as_text()
        .or_else(|| node.as_comment())
        .map(|t| t.borrow().clone())
}

/// Sets the data of a text or comment node.
pub(crate) fn set_char_data(node: &NodeRef, data: &str) {
    if let Some(t) = node.as_text().or_else(|| node.as_comment()) {
        *t.borrow_mut() = data.to_string();
    }
}

/// Node kinds as the DOM numbers them (element 1, text 3, comment 8, …).
pub(crate) fn node_type(node: &NodeRef) -> u8 {
    match node.data() {
        NodeData::Element(_) => 1,
        NodeData::Text(_) => 3,
        NodeData::ProcessingInstruction(_) => 7,
        NodeData::Comment(_) => 8,
        NodeData::Document(_) => 9,
        NodeData::Doctype(_) => 10,
        NodeData::DocumentFragment => 11,
    }
}

/// Replaces the children of `node` with `nodes`.
pub(crate) fn replace_children(node: &NodeRef, nodes: Vec<NodeRef>) {
    for child in node.children().collect::<Vec<_>>() {
        child.detach();
    }
    for n in nodes {
        node.append(n);
    }
}

/// `el.textContent = text`: one text node, or none for `""`.
pub(crate) fn set_text(node: &NodeRef, text: &str) {
    let nodes = if text.is_empty() {
        Vec::new()
    } else {
        vec![NodeRef::new_text(text)]
    };
    replace_children(node, nodes);
}

/// Inserts `new` before `reference` in `parent` (appends for `None`).
pub(crate) fn insert_before(parent: &NodeRef, new: NodeRef, reference: Option<&NodeRef>) {
    match reference {
        Some(r) if r.parent().as_ref() == Some(parent) => {
            if r != &new {
                r.insert_before(new)
            }
        }
        _ => parent.append(new),
    }
}

/// `el.innerHTML` as Chromium serializes it.
pub(crate) fn inner_html(node: &NodeRef) -> String {
    let mut out = String::new();
    let children = match template_contents(node) {
        Some(content) => content,
        None => node.clone(),
    };
    if is_html(node) && VOID.contains(&local_name(node).as_str()) {
        return out;
    }
    for child in children.children() {
        serialize(&child, &mut out);
    }
    out
}

/// `el.outerHTML` as Chromium serializes it.
pub(crate) fn outer_html(node: &NodeRef) -> String {
    let mut out = String::new();
    serialize(node, &mut out);
    out
}

fn serialized_tag(e: &ElementData) -> String {
    let ns: &str = &e.name.ns;
    if ns == HTML_NS || ns == SVG_NS || ns == MATHML_NS {
        e.name.local.to_string()
    } else {
        match &e.name.prefix {
            Some(p) => format!("{}:{}", p, e.name.local),
            None => e.name.local.to_string(),
        }
    }
}

fn serialized_attr(name: &kuchikiki::ExpandedName, attr: &kuchikiki::Attribute) -> String {
    let ns: &str = &name.ns;
    match ns {
        "" => name.local.to_string(),
        XML_NS => format!("xml:{}", name.local),
        XMLNS_NS if &*name.local == "xmlns" => "xmlns".to_string(),
        XMLNS_NS => format!("xmlns:{}", name.local),
        XLINK_NS => format!("xlink:{}", name.local),
        _ => qualified(name, attr),
    }
}

fn escape(text: &str, attribute: bool, out: &mut String) {
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '\u{a0}' => out.push_str("&nbsp;"),
            '"' if attribute => out.push_str("&quot;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            c => out.push(c),
        }
    }
}

fn serialize(node: &NodeRef, out: &mut String) {
    match node.data() {
        NodeData::Element(e) => {
            let tag = serialized_tag(e);
            out.push('<');
            out.push_str(&tag);
            for (name, attr) in e.attributes.borrow().map.iter() {
                out.push(' ');
                out.push_str(&serialized_attr(name, attr));
                out.push_str("=\"");
                escape(&attr.value, true, out);
                out.push('"');
            }
            out.push('>');
            let html = &*e.name.ns == HTML_NS;
            if html && VOID.contains(&&*e.name.local) {
                return;
            }
            out.push_str(&inner_html(node));
            out.push_str("</");
            out.push_str(&tag);
            out.push('>');
        }
        NodeData::Text(t) => {
            let raw = node
                .parent()
                .is_some_and(|p| is_html(&p) && RAW_TEXT.contains(&local_name(&p).as_str()));
            if raw {
                out.push_str(&t.borrow());
            } else {
                escape(&t.borrow(), false, out);
            }
        }
        NodeData::Comment(t) => {
            out.push_str("<!--");
            out.push_str(&t.borrow());
            out.push_str("-->");
        }
        NodeData::ProcessingInstruction(p) => {
            let p = p.borrow();
            out.push_str(&format!("<?{} {}>", p.0, p.1));
        }
        NodeData::Doctype(d) => {
            out.push_str(&format!("<!DOCTYPE {}>", d.name));
        }
        NodeData::Document(_) | NodeData::DocumentFragment => {
            for child in node.children() {
                serialize(&child, out);
            }
        }
    }
}
