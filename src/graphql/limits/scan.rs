//! The nesting scanners: one pass over raw text, in linear time and
//! constant stack, before any recursive parser sees it.

use super::TooDeep;

/// Refuses a GraphQL document whose `[`, `{` and `(` (outside strings,
/// block strings and comments) nest deeper than `max`. Unbalanced or
/// otherwise broken text is left to the parser, which reports it.
pub fn document_nesting(document: &str, max: usize) -> Result<(), TooDeep> {
    #[derive(Clone, Copy)]
    enum State {
        Code,
        String,
        BlockString,
        Comment,
    }
    let bytes = document.as_bytes();
    let mut state = State::Code;
    let mut depth = 0usize;
    let mut i = 0;
    while i < bytes.len() {
        let byte = bytes[i];
        match state {
            State::Code => match byte {
                b'[' | b'{' | b'(' => {
                    depth += 1;
                    if depth > max {
                        return Err(TooDeep { max });
                    }
                }
                b']' | b'}' | b')' => depth = depth.saturating_sub(1),
                b'#' => state = State::Comment,
                b'"' if bytes[i..].starts_with(b"\"\"\"") => {
                    state = State::BlockString;
                    i += 2;
                }
                b'"' => state = State::String,
                _ => {}
            },
            State::String => match byte {
                // An escape never swallows a line end: the string ends
                // there for the parser too (as an error).
                b'\\' if !matches!(bytes.get(i + 1), Some(b'\n' | b'\r')) => i += 1,
                b'"' | b'\n' | b'\r' => state = State::Code,
                _ => {}
            },
            State::BlockString => {
                if bytes[i..].starts_with(b"\\\"\"\"") {
                    i += 3;
                } else if bytes[i..].starts_with(b"\"\"\"") {
                    state = State::Code;
                    i += 2;
                }
            }
            State::Comment => {
                if byte == b'\n' || byte == b'\r' {
                    state = State::Code;
                }
            }
        }
        i += 1;
    }
    Ok(())
}

/// Refuses JSON whose arrays and objects (outside strings) nest deeper
/// than `max`. Malformed JSON is left to the JSON parser.
pub fn json_nesting(json: &[u8], max: usize) -> Result<(), TooDeep> {
    let mut in_string = false;
    let mut depth = 0usize;
    let mut i = 0;
    while i < json.len() {
        let byte = json[i];
        if in_string {
            match byte {
                b'\\' => i += 1,
                b'"' => in_string = false,
                _ => {}
            }
        } else {
            match byte {
                b'[' | b'{' => {
                    depth += 1;
                    if depth > max {
                        return Err(TooDeep { max });
                    }
                }
                b']' | b'}' => depth = depth.saturating_sub(1),
                b'"' => in_string = true,
                _ => {}
            }
        }
        i += 1;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nesting_is_counted_outside_strings_and_comments() {
        let deep = |n: usize| format!("{{a(x: {}1{})}}", "[".repeat(n), "]".repeat(n));
        assert_eq!(document_nesting(&deep(10), 48), Ok(()));
        assert_eq!(
            document_nesting(&deep(46), 48),
            Ok(()),
            "46, with the braces and parentheses"
        );
        assert_eq!(document_nesting(&deep(47), 48), Err(TooDeep { max: 48 }));
        assert_eq!(
            document_nesting(&deep(100_000), 48),
            Err(TooDeep { max: 48 })
        );
        let quoted = format!("{{a(x: \"{}\")}}", "[".repeat(1000));
        assert_eq!(document_nesting(&quoted, 48), Ok(()), "inside a string");
        let escaped = format!("{{a(x: \"\\\"{}\")}}", "{".repeat(1000));
        assert_eq!(
            document_nesting(&escaped, 48),
            Ok(()),
            "after an escaped quote"
        );
        let block = format!("{{a(x: \"\"\"\\\"\"\" {} \"\"\")}}", "(".repeat(1000));
        assert_eq!(
            document_nesting(&block, 48),
            Ok(()),
            "inside a block string"
        );
        let comment = format!("{{a # {}\n}}", "{".repeat(1000));
        assert_eq!(document_nesting(&comment, 48), Ok(()), "inside a comment");
        let after_comment = format!("{{a # x\n{}", "{".repeat(1000));
        assert!(
            document_nesting(&after_comment, 48).is_err(),
            "a comment ends at the line end"
        );
        let broken = format!("{{a(x: \"\\\n{}", "[".repeat(1000));
        assert!(
            document_nesting(&broken, 48).is_err(),
            "an escape does not carry a string past its line end"
        );
        let unbalanced = format!("{}{}", "]".repeat(1000), "[".repeat(48));
        assert_eq!(
            document_nesting(&unbalanced, 48),
            Ok(()),
            "closers do not go below zero"
        );
    }

    #[test]
    fn json_nesting_is_counted_outside_strings() {
        let deep = |n: usize| format!("{}1{}", "[".repeat(n), "]".repeat(n));
        assert_eq!(json_nesting(deep(48).as_bytes(), 48), Ok(()));
        assert!(json_nesting(deep(49).as_bytes(), 48).is_err());
        assert!(json_nesting(deep(100_000).as_bytes(), 48).is_err());
        let quoted = format!("{{\"q\": \"\\\"{}\"}}", "{".repeat(1000));
        assert_eq!(json_nesting(quoted.as_bytes(), 48), Ok(()));
    }
}
