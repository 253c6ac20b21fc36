//! Text that clients send. A name (a host, a device, a sweep) holding a
//! control character is refused with the field named: PostgreSQL cannot
//! store a NUL in text (the write fails as an internal error, which a
//! worker retries forever), and names reach logs and terminals. Free text
//! (a failed attempt's error) is kept with its control characters escaped,
//! so that a training error that printed a NUL is still recorded.

use tonic::Status;

/// The most characters of a client's input an error message repeats: a
/// 7 MB sweep name must not come back as a 7 MB `grpc-message`, which
/// clients refuse as oversized metadata instead of showing the error.
pub(crate) const MAX_ECHO_CHARS: usize = 2000;

/// Refuses `value` when it holds a control character; `field` names it.
pub(crate) fn printable<'a>(field: &str, value: &'a str) -> Result<&'a str, Status> {
    match value.chars().find(|c| c.is_control()) {
        None => Ok(value),
        Some(c) => Err(Status::invalid_argument(format!(
            "{field} holds the control character {}: use printable text",
            c.escape_unicode()
        ))),
    }
}

/// The first `max_chars` characters of `value` (then `...`), with every
/// control character but newlines and tabs written as an escape (`\u{0}`).
pub(crate) fn escaped(value: &str, max_chars: usize) -> String {
    let mut out = String::with_capacity(value.len().min(max_chars));
    let mut chars = value.chars();
    for c in chars.by_ref().take(max_chars) {
        if c.is_control() && c != '\n' && c != '\t' {
            out.extend(c.escape_unicode());
        } else {
            out.push(c);
        }
    }
    if chars.next().is_some() {
        out.push_str("...");
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_with_control_characters_are_refused_naming_the_field() {
        assert_eq!(printable("hostname", "gpu-01").unwrap(), "gpu-01");
        let refused = printable("hostname", "gpu\0-01").unwrap_err();
        assert_eq!(refused.code(), tonic::Code::InvalidArgument);
        assert!(refused.message().contains("hostname") && refused.message().contains("\\u{0}"), "{refused:?}");
        assert!(printable("device", "cuda:0\x1b[2J").is_err());
    }

    #[test]
    fn free_text_keeps_its_lines_and_escapes_the_rest() {
        assert_eq!(escaped("loss is NaN\n\tat epoch 3", 100), "loss is NaN\n\tat epoch 3");
        assert_eq!(escaped("bad\0byte\x1b[2J", 100), "bad\\u{0}byte\\u{1b}[2J");
        assert_eq!(escaped("abcdef", 3), "abc...");
        assert_eq!(escaped("abc", 3), "abc");
    }
}
