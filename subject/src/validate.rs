//! Validation of literal subjects and filters.

use crate::{FWC, PWC};

/// Why a subject or filter was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SubjectError {
    /// The subject is the empty string.
    Empty,
    /// A token is empty (`a..b`, a leading or trailing `.`).
    EmptyToken,
    /// A token contains whitespace (space, tab, CR, LF, FF).
    Whitespace,
    /// A wildcard appears in a literal subject.
    Wildcard,
    /// `>` is not the last token.
    FullWildcardNotLast,
}

impl std::fmt::Display for SubjectError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let text = match self {
            SubjectError::Empty => "subject is empty",
            SubjectError::EmptyToken => "subject has an empty token",
            SubjectError::Whitespace => "subject contains whitespace",
            SubjectError::Wildcard => "subject contains a wildcard",
            SubjectError::FullWildcardNotLast => "'>' must be the last token",
        };
        f.write_str(text)
    }
}

impl std::error::Error for SubjectError {}

#[inline]
fn is_space(b: u8) -> bool {
    matches!(b, b' ' | b'\t' | b'\r' | b'\n' | 0x0c)
}

/// A token is valid when it is non-empty and holds no whitespace or `.`.
pub fn is_valid_token(token: &str) -> bool {
    !token.is_empty() && !token.bytes().any(|b| is_space(b) || b == b'.')
}

/// Checks a filter: non-empty tokens, no whitespace, `>` only last, wildcards whole tokens.
/// A token such as `a*` is a literal token (nats-server treats it that way), not a wildcard.
pub fn validate_filter(subject: &str) -> Result<(), SubjectError> {
    if subject.is_empty() {
        return Err(SubjectError::Empty);
    }
    let mut saw_fwc = false;
    for token in subject.split('.') {
        if token.is_empty() {
            return Err(SubjectError::EmptyToken);
        }
        if saw_fwc {
            return Err(SubjectError::FullWildcardNotLast);
        }
        if token.bytes().any(is_space) {
            return Err(SubjectError::Whitespace);
        }
        if token == FWC {
            saw_fwc = true;
        }
    }
    Ok(())
}

/// Checks a literal (publishable) subject: a valid filter with no wildcard tokens.
pub fn validate_literal(subject: &str) -> Result<(), SubjectError> {
    validate_filter(subject)?;
    if subject.split('.').any(|t| t == PWC || t == FWC) {
        return Err(SubjectError::Wildcard);
    }
    Ok(())
}

/// See [`validate_filter`].
#[inline]
pub fn is_valid_filter(subject: &str) -> bool {
    validate_filter(subject).is_ok()
}

/// See [`validate_literal`].
#[inline]
pub fn is_valid_literal(subject: &str) -> bool {
    validate_literal(subject).is_ok()
}

/// True when no token is a wildcard. Does not validate.
#[inline]
pub fn is_literal(subject: &str) -> bool {
    // Most subjects have neither character: one scan of the bytes settles them.
    !subject.bytes().any(|b| b == b'*' || b == b'>') || !subject.split('.').any(|t| t == PWC || t == FWC)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn filters() {
        for ok in ["a", "a.b", "*", ">", "a.*.c", "a.>", "*.>", "$JS.API.>", "a*.b>", "_INBOX.x"] {
            assert!(is_valid_filter(ok), "{ok}");
        }
        assert_eq!(validate_filter(""), Err(SubjectError::Empty));
        assert_eq!(validate_filter("a..b"), Err(SubjectError::EmptyToken));
        assert_eq!(validate_filter(".a"), Err(SubjectError::EmptyToken));
        assert_eq!(validate_filter("a."), Err(SubjectError::EmptyToken));
        assert_eq!(validate_filter("a b"), Err(SubjectError::Whitespace));
        assert_eq!(validate_filter("a\tb"), Err(SubjectError::Whitespace));
        assert_eq!(validate_filter(">.a"), Err(SubjectError::FullWildcardNotLast));
    }

    #[test]
    fn literals() {
        assert!(is_valid_literal("a.b.c"));
        assert!(is_valid_literal("a*.b"));
        assert_eq!(validate_literal("a.*"), Err(SubjectError::Wildcard));
        assert_eq!(validate_literal(">"), Err(SubjectError::Wildcard));
        assert!(is_literal("foo.bar"));
        assert!(!is_literal("foo.*"));
        assert!(!is_literal("foo.>") && !is_literal("*"));
        assert!(is_literal("a*.b>") && is_literal("a.*b"), "a wildcard character inside a token");
    }
}
