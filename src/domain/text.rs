//! Text that comes from outside (a query, a path, a header, a JSON string,
//! a file's field) is refused when it carries control characters: a NUL
//! byte cannot even be stored by PostgreSQL, and the others have no place
//! in an account number, a reference or a name.

/// The first control character of `s` (Unicode general category Cc: C0,
/// DEL and C1) and its character position (0-based), if any. In
/// `free_text` (a note, a description) line feeds, carriage returns and
/// tabs are allowed; NUL never is.
pub fn first_control(s: &str, free_text: bool) -> Option<(usize, char)> {
    s.chars()
        .enumerate()
        .find(|(_, c)| c.is_control() && !(free_text && matches!(c, '\n' | '\r' | '\t')))
}

/// How a control character is named to a person: `U+0000 (NUL)`.
pub fn describe(c: char) -> String {
    let name = match c {
        '\0' => " (NUL)",
        '\t' => " (tab)",
        '\n' => " (line feed)",
        '\r' => " (carriage return)",
        '\u{1b}' => " (escape)",
        '\u{7f}' => " (DEL)",
        _ => "",
    };
    format!("U+{:04X}{name}", c as u32)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nul_and_other_controls_are_found_where_they_are() {
        assert_eq!(first_control("ab\0c", false), Some((2, '\0')));
        assert_eq!(first_control("\u{7f}", false), Some((0, '\u{7f}')));
        assert_eq!(first_control("x\u{85}", false), Some((1, '\u{85}')));
        assert_eq!(first_control("水费 2026-12", false), None);
        assert_eq!(first_control("", false), None);
    }

    #[test]
    fn free_text_may_break_lines_but_never_holds_nul() {
        assert_eq!(first_control("line one\r\nline\ttwo", true), None);
        assert_eq!(first_control("line one\nline two", false), Some((8, '\n')));
        assert_eq!(first_control("note\0", true), Some((4, '\0')));
        assert_eq!(first_control("bell\u{7}", true), Some((4, '\u{7}')));
    }

    #[test]
    fn a_control_character_is_named_for_a_person() {
        assert_eq!(describe('\0'), "U+0000 (NUL)");
        assert_eq!(describe('\u{1f}'), "U+001F");
        assert_eq!(describe('\u{9b}'), "U+009B");
    }
}
