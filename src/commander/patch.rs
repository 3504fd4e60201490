//! The patch vocabulary: what a commander can change in a page's DOM ([`Patch`]), what goes
//! in as markup or as text ([`Content`]), and the rules every patch obeys wherever it is sent
//! from (script only with `exec_js`; no plain value into a property that parses markup or
//! script). tether.js applies the same rules on its side.
//!
//! Pure: it builds and checks patches; it must never send one.

use serde::Serialize;
use serde_json::Value;

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
    /// Run JavaScript (only when `[commander] exec_js` is on).
    Js {
        /// The script.
        js: String,
    },
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

    /// Checks the patch against the rules every patch obeys, wherever it is sent from:
    /// script only with `exec_js`, and no plain value that a property would turn into
    /// markup or script.
    pub(crate) fn check(&self, exec_js: bool) -> Result<(), PatchError> {
        match self {
            Patch::Js { .. } if !exec_js => Err(PatchError::JsDisabled),
            Patch::Prop { prop, value, .. } => check_plain_prop(prop, value),
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
fn is_script_url(url: &str) -> bool {
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
    /// The store would exceed its size limit once encrypted.
    #[error("store too large ({size} bytes encrypted, at most {max})")]
    StoreTooLarge {
        /// The encrypted size.
        size: usize,
        /// The limit.
        max: usize,
    },
}
