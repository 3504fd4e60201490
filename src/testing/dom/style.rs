//! The `style` attribute as a list of declarations: what `el.style` reads and what the
//! `style` group of a `props` patch writes, serialized as Chromium writes it (`name: value;`
//! pairs joined by a space).
//!
//! For: patches (`props.style`) and `read_prop("style")`. Chromium writes an inline style
//! changed through CSSOM into the attribute lazily, when the attributes are next read; an
//! element without a `style` attribute therefore gets it after the attributes set meanwhile.
//! The `Dom` keeps such pending declarations beside the element and writes them at the same
//! points (serialization, reads of the attributes, a morph).
//! Never: normalizes CSS values or expands shorthands (a browser does; the corpus avoids it).

use kuchikiki::NodeRef;

use super::tree;

/// One declaration of a `style` attribute.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Declaration {
    /// The property name (lowercase, but custom properties).
    pub(crate) name: String,
    /// The value, trimmed, without `!important`.
    pub(crate) value: String,
    /// Whether it is `!important`.
    pub(crate) important: bool,
}

/// The declarations of `el`'s `style` attribute, in order (a later one of the same name
/// replaces an earlier one in place of the later).
pub(crate) fn declarations(el: &NodeRef) -> Vec<Declaration> {
    parse(&tree::get_attr(el, "style").unwrap_or_default())
}

fn split(text: &str) -> Vec<String> {
    let mut parts = Vec::new();
    let mut current = String::new();
    let mut depth = 0usize;
    let mut quote: Option<char> = None;
    for c in text.chars() {
        match quote {
            Some(q) => {
                if c == q {
                    quote = None;
                }
                current.push(c);
            }
            None => match c {
                '"' | '\'' => {
                    quote = Some(c);
                    current.push(c);
                }
                '(' => {
                    depth += 1;
                    current.push(c);
                }
                ')' => {
                    depth = depth.saturating_sub(1);
                    current.push(c);
                }
                ';' if depth == 0 => parts.push(std::mem::take(&mut current)),
                c => current.push(c),
            },
        }
    }
    parts.push(current);
    parts
}

/// Parses a `style` attribute.
pub(crate) fn parse(text: &str) -> Vec<Declaration> {
    let mut out: Vec<Declaration> = Vec::new();
    for part in split(text) {
        let Some((name, value)) = part.split_once(':') else {
            continue;
        };
        let name = name.trim();
        if name.is_empty() {
            continue;
        }
        let name = if name.starts_with("--") {
            name.to_string()
        } else {
            name.to_ascii_lowercase()
        };
        let mut value = value.trim().to_string();
        let mut important = false;
        if let Some(i) = value.to_ascii_lowercase().rfind("!important") {
            if value[i + "!important".len()..].trim().is_empty() {
                value = value[..i].trim().to_string();
                important = true;
            }
        }
        if value.is_empty() {
            continue;
        }
        out.retain(|d| d.name != name);
        out.push(Declaration {
            name,
            value,
            important,
        });
    }
    out
}

/// Serializes declarations as Chromium writes the attribute.
pub(crate) fn serialize(decls: &[Declaration]) -> String {
    decls
        .iter()
        .map(|d| {
            format!(
                "{}: {}{};",
                d.name,
                d.value,
                if d.important { " !important" } else { "" }
            )
        })
        .collect::<Vec<_>>()
        .join(" ")
}

/// The CSS property a `style` key names: dashed names as they are (lowercased but custom
/// properties), camelCase ones (`backgroundColor`, `cssFloat`, `webkitX`) dashed.
pub(crate) fn property_name(key: &str) -> String {
    if key.starts_with("--") {
        return key.to_string();
    }
    if key.contains('-') {
        return key.to_ascii_lowercase();
    }
    if key == "cssFloat" {
        return "float".to_string();
    }
    let mut out = String::new();
    if key.starts_with("webkit") {
        out.push('-');
    }
    for c in key.chars() {
        if c.is_ascii_uppercase() {
            out.push('-');
            out.push(c.to_ascii_lowercase());
        } else {
            out.push(c);
        }
    }
    out
}

/// `style.setProperty(name, value)` (or `removeProperty` for `None` or `""`) on a list of
/// declarations; whether a declaration changed.
pub(crate) fn set_property(decls: &mut Vec<Declaration>, key: &str, value: Option<&str>) -> bool {
    let name = property_name(key);
    let value = value.map(str::trim).filter(|v| !v.is_empty());
    match value {
        None => {
            let before = decls.len();
            decls.retain(|d| d.name != name);
            before != decls.len()
        }
        Some(v) => {
            let (v, important) = match v.to_ascii_lowercase().rfind("!important") {
                Some(i) if v[i + 10..].trim().is_empty() => (v[..i].trim().to_string(), true),
                _ => (v.to_string(), false),
            };
            match decls.iter_mut().find(|d| d.name == name) {
                Some(d) if d.value == v && d.important == important => false,
                Some(d) => {
                    d.value = v;
                    d.important = important;
                    true
                }
                None => {
                    decls.push(Declaration {
                        name,
                        value: v,
                        important,
                    });
                    true
                }
            }
        }
    }
}
