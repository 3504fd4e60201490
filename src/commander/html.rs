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
/// assert_eq!(Html::escape("<b>&</b>").as_str(), "&#60;b&#62;&#38;&#60;/b&#62;");
/// assert_eq!(Html::trusted("<b>ok</b>").as_str(), "<b>ok</b>");
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Html(String);

impl Html {
    /// Escapes `text` so that it shows literally, in element text and in quoted attribute
    /// values (askama's own HTML escaper: `& < > " '` become numeric entities). Not enough
    /// for unquoted attributes, URLs, CSS or scripts.
    pub fn escape(text: &str) -> Html {
        use askama::filters::Escaper;
        let mut out = String::with_capacity(text.len());
        // Writing into a String cannot fail.
        let _ = askama::filters::Html.write_escaped_str(&mut out, text);
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
