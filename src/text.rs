//! Cutting client-controlled text to a bounded length, on a character boundary.
//!
//! Used wherever text a client chose ends up in a log line or a close frame. This module is
//! pure and knows nothing of the layers that use it.

/// Most bytes of a client-chosen string written to a log line.
pub(crate) const LOG_MAX: usize = 256;

/// The longest prefix of `text` of at most `max` bytes that ends on a character boundary.
pub(crate) fn truncate_utf8(text: &str, max: usize) -> &str {
    let mut end = text.len().min(max);
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    &text[..end]
}

/// `text` cut to [`LOG_MAX`] bytes, for logs.
pub(crate) fn for_log(text: &str) -> &str {
    truncate_utf8(text, LOG_MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cuts_on_character_boundaries() {
        assert_eq!(truncate_utf8("héllo", 2), "h");
        assert_eq!(truncate_utf8("héllo", 3), "hé");
        assert_eq!(truncate_utf8("abc", 10), "abc");
        assert_eq!(for_log(&"x".repeat(1000)).len(), LOG_MAX);
    }
}
