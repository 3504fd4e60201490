//! HTML that says whether it is safe to insert as markup.
//!
//! A patch takes either [`Html`] (inserted as markup) or plain text (inserted as text, so a
//! user name such as `<b>x</b>` shows literally). `Html` can only be made from escaped text
//! ([`Html::escape`]), from a rendered askama template ([`Html::render`]), or by the caller
//! vouching for it ([`Html::trusted`]).

use std::fmt::Write;

/// Markup that may be inserted as HTML.
///
/// ```
/// use tether::commander::Html;
/// assert_eq!(Html::escape("<b>&</b>").as_str(), "&lt;b&gt;&amp;&lt;/b&gt;");
/// assert_eq!(Html::trusted("<b>ok</b>").as_str(), "<b>ok</b>");
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Html(String);

impl Html {
    /// Escapes `text` so that it shows literally.
    pub fn escape(text: &str) -> Html {
        let mut out = String::with_capacity(text.len());
        for c in text.chars() {
            match c {
                '&' => out.push_str("&amp;"),
                '<' => out.push_str("&lt;"),
                '>' => out.push_str("&gt;"),
                '"' => out.push_str("&quot;"),
                '\'' => out.push_str("&#39;"),
                c => out.push(c),
            }
        }
        Html(out)
    }

    /// Renders an askama template (which escapes its own variables).
    pub fn render(template: &impl askama::Template) -> Result<Html, askama::Error> {
        template.render().map(Html)
    }

    /// Markup the caller vouches for (e.g. a constant). Never pass user input here.
    pub fn trusted(markup: impl Into<String>) -> Html {
        Html(markup.into())
    }

    /// A number, which needs no escaping.
    pub fn number(n: impl std::fmt::Display) -> Html {
        let mut out = String::new();
        let _ = write!(out, "{n}");
        Html::escape(&out)
    }

    /// The markup.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Display for Html {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// Tells askama not to escape an [`Html`] again: `{{ html }}` inserts it as markup.
impl askama::filters::HtmlSafe for Html {}
