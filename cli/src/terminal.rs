//! Text from the coordinator (sweep names, workers' error messages, cell
//! labels) reaches the researcher's terminal: a control character in it
//! could clear the screen, move the cursor or retitle the window. Every
//! such string is printed through [`shown`], which writes control
//! characters as escapes and keeps only line breaks and tabs.

use std::borrow::Cow;

/// `text` with every control character but `\n` and `\t` written as an
/// escape (`\u{1b}`).
pub fn shown(text: &str) -> Cow<'_, str> {
    if !text.chars().any(|c| c.is_control() && c != '\n' && c != '\t') {
        return Cow::Borrowed(text);
    }
    let mut out = String::with_capacity(text.len() + 16);
    for c in text.chars() {
        if c.is_control() && c != '\n' && c != '\t' {
            out.extend(c.escape_unicode());
        } else {
            out.push(c);
        }
    }
    Cow::Owned(out)
}

/// [`shown`], on one line: line breaks become `\n` too (a field of a
/// progress line or a table row).
pub fn one_line(text: &str) -> Cow<'_, str> {
    match shown(text) {
        Cow::Borrowed(clean) if !clean.contains(['\n', '\t']) => Cow::Borrowed(clean),
        clean => Cow::Owned(clean.replace('\n', "\\n").replace('\t', "\\t")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn control_characters_are_escaped_and_lines_kept() {
        assert!(matches!(shown("plain text\n\tok"), Cow::Borrowed(_)));
        assert_eq!(shown("red\x1b[2Jclear\r\n"), "red\\u{1b}[2Jclear\\u{d}\n");
        assert_eq!(shown("bell\x07 and del\x7f"), "bell\\u{7} and del\\u{7f}");
        assert_eq!(one_line("two\nlines\x1b]0;title\x07"), "two\\nlines\\u{1b}]0;title\\u{7}");
        assert_eq!(one_line("fine"), "fine");
    }
}
