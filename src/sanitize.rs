//! HTML from users made safe to show in a page (cargo feature `sanitize`): the
//! [ammonia](https://docs.rs/ammonia) allowlist sanitizer, plus the removal of every
//! `tether-*` and `data-tether-*` attribute, which tether.js would otherwise act on (a post's
//! `tether-click="delete_account"` calls that handler for whoever clicks it).
//!
//! It must never let a tether attribute through, whatever the builder allows otherwise;
//! it does not replace `tether-ignore` around the markup (see the page channel docs,
//! *Markup the page does not vouch for*), which also stops what a sanitizer misses.

use std::borrow::Cow;

use crate::commander::Html;

/// Whether `name` is an attribute tether.js acts on (`tether-click`, `tether-on`,
/// `tether-live`, `data-tether-topic`, …), in any letter case.
fn is_tether_attribute(name: &str) -> bool {
    let name = name.to_ascii_lowercase();
    name.starts_with("tether-") || name.starts_with("data-tether-")
}

/// ammonia's default configuration (allowed tags and attributes, safe URL schemes, no
/// script, no `on*`, no `style`, `rel="noopener noreferrer"` on links) with an attribute
/// filter that drops every `tether-*` and `data-tether-*` attribute. Extend it as ammonia
/// allows (tags, attributes, `data-` prefixes: the filter still drops tether's), but do not
/// set another [`attribute_filter`](ammonia::Builder::attribute_filter): it replaces this
/// one.
///
/// ```
/// let mut builder = tether::sanitize::builder();
/// builder.add_generic_attribute_prefixes(["data-"]);
/// let clean = builder
///     .clean(r#"<p data-id="7" data-tether-topic="tether:topic:x" tether-click="pay">hi</p>"#)
///     .to_string();
/// assert_eq!(clean, r#"<p data-id="7">hi</p>"#);
/// ```
pub fn builder() -> ammonia::Builder<'static> {
    let mut builder = ammonia::Builder::default();
    builder.attribute_filter(|_element, attribute, value| {
        if is_tether_attribute(attribute) {
            None
        } else {
            Some(Cow::Borrowed(value))
        }
    });
    builder
}

/// `user_html` cleaned by [`builder`]: markup a page may show as [`Html`] (what ammonia keeps,
/// without any attribute tether.js acts on).
///
/// ```
/// let post = r#"<img src="/nope.png" tether-on="error:delete_account" onerror="x()"><b>hi</b>"#;
/// assert_eq!(
///     tether::sanitize::sanitize_user_html(post).as_str(),
///     r#"<img src="/nope.png"><b>hi</b>"#
/// );
/// ```
pub fn sanitize_user_html(user_html: &str) -> Html {
    Html::trusted(builder().clean(user_html).to_string())
}

#[cfg(test)]
mod tests {
    use super::{builder, sanitize_user_html};

    #[test]
    fn every_tether_attribute_is_dropped_by_default() {
        let post = concat!(
            r#"<div tether-ignore tether-commander="cart" data-tether-presence="t">"#,
            r#"<a href="/x" tether-click="delete_all" TETHER-ON="click:pay" tether-arg="1">a</a>"#,
            r#"<img src="/nope.png" tether-on="error:delete_account">"#,
            r#"<span tether-live="tally" data-tether-topic="tether:topic:x" data-tether-count="users">n</span>"#,
            r#"<script>alert(1)</script><b onclick="x()">b</b></div>"#,
        );
        let clean = sanitize_user_html(post).as_str().to_string();
        assert!(!clean.to_ascii_lowercase().contains("tether"), "{clean}");
        assert!(
            !clean.contains("script") && !clean.contains("onclick"),
            "{clean}"
        );
        assert_eq!(
            clean,
            r#"<div><a href="/x" rel="noopener noreferrer">a</a><img src="/nope.png"><span>n</span><b>b</b></div>"#
        );
    }

    #[test]
    fn tether_attributes_stay_out_whatever_the_builder_allows() {
        let mut builder = builder();
        builder
            .add_generic_attribute_prefixes(["data-", "tether-"])
            .add_generic_attributes(["tether-on", "tether-click", "data-tether-topic", "title"]);
        let clean = builder
            .clean(r#"<p title="t" data-x="1" tether-on="click:pay" tether-click="pay" data-tether-topic="x" tether-id="t1">p</p>"#)
            .to_string();
        assert_eq!(clean, r#"<p title="t" data-x="1">p</p>"#);
    }

    #[test]
    fn text_and_allowed_markup_pass() {
        let clean = sanitize_user_html("a < b & <i>c</i>");
        assert_eq!(clean.as_str(), "a &lt; b &amp; <i>c</i>");
    }
}
