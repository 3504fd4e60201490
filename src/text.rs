//! Text for logs and replies: client-controlled text cut to a bounded length on a character
//! boundary (wherever text a client chose ends up in a log line or a close frame), what a
//! caught panic says, and how long a value's JSON text is (to bound what a client or a peer
//! makes us hold). This module is pure and knows nothing of the layers that use it.

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

/// What a caught panic says, for a log line or an error reply: `panic: <message>`.
pub(crate) fn panic_message(panic: &(dyn std::any::Any + Send)) -> String {
    if let Some(text) = panic.downcast_ref::<&str>() {
        format!("panic: {text}")
    } else if let Some(text) = panic.downcast_ref::<String>() {
        format!("panic: {text}")
    } else {
        "panic".to_string()
    }
}

/// The length of `value` encoded as JSON, counted without keeping the encoding (0 if it
/// cannot be encoded).
pub(crate) fn json_len(value: &impl serde::Serialize) -> usize {
    struct Count(usize);
    impl std::io::Write for Count {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0 += buf.len();
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }
    let mut count = Count(0);
    match serde_json::to_writer(&mut count, value) {
        Ok(()) => count.0,
        Err(_) => 0,
    }
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
