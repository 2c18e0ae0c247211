//! Subject transforms: nats-server's subject mapping from a source filter to a destination.
//!
//! A destination token is a literal, `>` (the source's trailing tokens, when the source ends
//! in `>` too), `$N` (the token the N-th `*` of the source matched) or a function in double
//! braces: `{{wildcard(N)}}`, `{{partition(buckets, N...)}}`, `{{split(N, delim)}}`,
//! `{{splitFromLeft(N, pos)}}`, `{{splitFromRight(N, pos)}}`, `{{sliceFromLeft(N, size)}}`,
//! `{{sliceFromRight(N, size)}}`, `{{left(N, len)}}`, `{{right(N, len)}}`, `{{random(n)}}`.
//! A destination may not hold `*`. Function names match nats-server's patterns: the first
//! letter of each word in either case (`{{Wildcard(1)}}`, `{{splitfromLeft(1,2)}}`).
//! Errors read as nats-server's, which clients show verbatim.

use std::fmt;

/// Why a mapping destination is refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DestinationError {
    InvalidTransform,
    UnknownFunction,
    IndexOutOfRange,
    NotEnoughArgs,
    InvalidArg,
    TooManyArgs,
}

impl DestinationError {
    fn text(self) -> &'static str {
        match self {
            DestinationError::InvalidTransform => "invalid transform",
            DestinationError::UnknownFunction => "unknown function",
            DestinationError::IndexOutOfRange => "wildcard index out of range",
            DestinationError::NotEnoughArgs => "not enough arguments passed to the function",
            DestinationError::InvalidArg => "function argument is invalid or in the wrong format",
            DestinationError::TooManyArgs => "too many arguments passed to the function",
        }
    }
}

/// A transform that cannot be built.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TransformError {
    /// The source or the destination is not a subject, the destination has `*`, or only one
    /// of them ends in `>`.
    BadSubject,
    /// A destination token (empty when the whole destination is meant) is refused.
    Destination { error: DestinationError, token: String },
}

impl fmt::Display for TransformError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TransformError::BadSubject => f.write_str("invalid subject"),
            TransformError::Destination { error, token } if token.is_empty() => {
                write!(f, "invalid mapping destination: {}", error.text())
            }
            TransformError::Destination { error, token } => {
                write!(f, "invalid mapping destination: {} in {token}", error.text())
            }
        }
    }
}

impl std::error::Error for TransformError {}

/// One destination token.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Part {
    Literal(Box<str>),
    /// The source's remaining tokens (a trailing `>`).
    Rest,
    /// A source token, by index.
    Token(usize),
    /// FNV-1a of the listed source tokens (all of the subject when none), modulo `buckets`.
    Partition {
        buckets: u32,
        from: Vec<usize>,
    },
    SplitFromLeft {
        from: usize,
        at: i32,
    },
    SplitFromRight {
        from: usize,
        at: i32,
    },
    SliceFromLeft {
        from: usize,
        size: i32,
    },
    SliceFromRight {
        from: usize,
        size: i32,
    },
    Split {
        from: usize,
        delimiter: Box<str>,
    },
    Left {
        from: usize,
        len: i32,
    },
    Right {
        from: usize,
        len: i32,
    },
    Random(u32),
}

/// A compiled transform.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Transform {
    source: Box<str>,
    /// Tokens of the source (the first index `>` stands for, when it ends in one).
    source_tokens: usize,
    /// Empty: the subject is kept as it is.
    parts: Vec<Part>,
}

/// Builds a function's part from its source token index and integer argument.
type Builder = fn(usize, i32) -> Part;

/// A parsed `{{function(args)}}` or `$N` token, before its wildcard indexes are resolved.
enum Placeholder {
    None,
    Wildcard(i64),
    Partition(u32, Vec<i64>),
    IndexInt(Builder, i64, i32),
    Split(i64, Box<str>),
    Random(u32),
}

impl Transform {
    /// nats-server's `NewSubjectTransform`: `source` empty is `>`, `destination` empty keeps
    /// subjects as they are.
    pub fn new(source: &str, destination: &str) -> Result<Transform, TransformError> {
        let source = if source.is_empty() { ">" } else { source };
        if destination.is_empty() {
            return Ok(Transform { source: source.into(), source_tokens: 0, parts: Vec::new() });
        }
        let src = shape(source).ok_or(TransformError::BadSubject)?;
        let dst = shape(destination).ok_or(TransformError::BadSubject)?;
        if dst.partial_wildcards > 0 || src.ends_in_fwc != dst.ends_in_fwc {
            return Err(TransformError::BadSubject);
        }
        // Source token index of the n-th `*` (1-based); nats-server reads a missing one as 0.
        let stars: Vec<usize> =
            source.split('.').enumerate().filter(|(_, t)| *t == "*").map(|(i, _)| i).collect();
        let star = |n: i64| -> usize {
            usize::try_from(n)
                .ok()
                .and_then(|n| n.checked_sub(1))
                .and_then(|i| stars.get(i))
                .copied()
                .unwrap_or(0)
        };
        let wildcarded = src.partial_wildcards > 0 || src.ends_in_fwc;
        let mut parts = Vec::new();
        for token in destination.split('.') {
            let out_of_range = |index: i64| index > stars.len() as i64;
            let refuse = |error| TransformError::Destination { error, token: token.to_string() };
            let part = match placeholder(token)? {
                Placeholder::None if token == ">" => Part::Rest,
                Placeholder::None => Part::Literal(token.into()),
                Placeholder::Random(n) => Part::Random(n),
                // A literal source has no tokens to pick: the whole subject is hashed.
                Placeholder::Partition(buckets, _) if !wildcarded => {
                    Part::Partition { buckets, from: Vec::new() }
                }
                _ if !wildcarded => return Err(refuse(DestinationError::IndexOutOfRange)),
                Placeholder::Wildcard(n) if out_of_range(n) => return Err(range_error(token, n)),
                Placeholder::Wildcard(n) => Part::Token(star(n)),
                Placeholder::Partition(buckets, from) => {
                    if let Some(&n) = from.iter().find(|n| out_of_range(**n)) {
                        return Err(range_error(token, n));
                    }
                    Part::Partition { buckets, from: from.into_iter().map(star).collect() }
                }
                Placeholder::IndexInt(_, n, _) if out_of_range(n) => return Err(range_error(token, n)),
                Placeholder::IndexInt(build, n, arg) => build(star(n), arg),
                Placeholder::Split(n, _) if out_of_range(n) => return Err(range_error(token, n)),
                Placeholder::Split(n, delimiter) => Part::Split { from: star(n), delimiter },
            };
            parts.push(part);
        }
        Ok(Transform { source: source.into(), source_tokens: src.tokens, parts })
    }

    /// The source filter.
    pub fn source(&self) -> &str {
        &self.source
    }

    /// Whether `subject` is one this transform maps.
    pub fn matches(&self, subject: &str) -> bool {
        crate::matches(&self.source, subject)
    }

    /// Maps a subject the source matched.
    pub fn apply(&self, subject: &str) -> String {
        if self.parts.is_empty() {
            return subject.to_string();
        }
        let tokens: Vec<&str> = subject.split('.').collect();
        let token = |i: &usize| tokens.get(*i).copied().unwrap_or("");
        let mut out = String::with_capacity(subject.len() + 16);
        let last = self.parts.len() - 1;
        for (i, part) in self.parts.iter().enumerate() {
            match part {
                Part::Rest => {
                    let from = self.source_tokens.saturating_sub(1);
                    out.push_str(&tokens.get(from..).map(|rest| rest.join(".")).unwrap_or_default());
                    break;
                }
                Part::Literal(text) => out.push_str(text),
                Part::Token(from) => out.push_str(token(from)),
                Part::Partition { buckets, from } => {
                    let key =
                        if from.is_empty() { subject.to_string() } else { from.iter().map(token).collect() };
                    out.push_str(&bucket(fnv1a32(key.as_bytes()), *buckets));
                }
                Part::SplitFromLeft { from, at } => {
                    let t = token(from);
                    match position(*at, t.len()) {
                        Some(at) if t.is_char_boundary(at) => push3(&mut out, &t[..at], &t[at..]),
                        _ => out.push_str(t),
                    }
                }
                Part::SplitFromRight { from, at } => {
                    let t = token(from);
                    match position(*at, t.len()).map(|at| t.len() - at) {
                        Some(at) if t.is_char_boundary(at) => push3(&mut out, &t[..at], &t[at..]),
                        _ => out.push_str(t),
                    }
                }
                Part::SliceFromLeft { from, size } => slice_from_left(&mut out, token(from), *size),
                Part::SliceFromRight { from, size } => slice_from_right(&mut out, token(from), *size),
                Part::Split { from, delimiter } => split(&mut out, token(from), delimiter),
                Part::Left { from, len } => {
                    let t = token(from);
                    out.push_str(position(*len, t.len()).and_then(|n| t.get(..n)).unwrap_or(t));
                }
                Part::Right { from, len } => {
                    let t = token(from);
                    out.push_str(position(*len, t.len()).and_then(|n| t.get(t.len() - n..)).unwrap_or(t));
                }
                Part::Random(n) => out.push_str(&bucket(rand::random::<u32>() & 0x7fff_ffff, *n)),
            }
            if i < last {
                out.push('.');
            }
        }
        out
    }
}

/// nats-server's `ValidateMapping`: the token checks of a configured destination, then
/// [`Transform::new`].
pub fn validate_mapping(source: &str, destination: &str) -> Result<(), TransformError> {
    if destination.is_empty() {
        return Ok(());
    }
    let mut after_fwc = false;
    for token in destination.split('.') {
        if token.is_empty() || after_fwc {
            return Err(TransformError::Destination {
                error: DestinationError::InvalidTransform,
                token: token.to_string(),
            });
        }
        if is_mustache(token) {
            if function_call(token).is_none_or(|(name, _)| !KNOWN.iter().any(|k| name_is(name, k))) {
                return Err(TransformError::Destination {
                    error: DestinationError::UnknownFunction,
                    token: token.to_string(),
                });
            }
            continue;
        }
        if token == ">" {
            after_fwc = true;
        } else if token.contains(['\t', '\n', '\x0c', '\r', ' ']) {
            return Err(TransformError::Destination {
                error: DestinationError::InvalidTransform,
                token: String::new(),
            });
        }
    }
    Transform::new(source, destination).map(|_| ())
}

/// Functions `validate_mapping` knows (nats-server's list there leaves out left and right).
const KNOWN: [&str; 8] = [
    "partition",
    "wildcard",
    "splitFromLeft",
    "splitFromRight",
    "sliceFromLeft",
    "sliceFromRight",
    "split",
    "random",
];

struct Shape {
    tokens: usize,
    partial_wildcards: usize,
    ends_in_fwc: bool,
}

/// nats-server's `subjectInfo`: non-empty tokens, nothing after `>`.
fn shape(subject: &str) -> Option<Shape> {
    let mut shape = Shape { tokens: 0, partial_wildcards: 0, ends_in_fwc: false };
    for token in subject.split('.') {
        if token.is_empty() || shape.ends_in_fwc {
            return None;
        }
        shape.tokens += 1;
        match token {
            "*" => shape.partial_wildcards += 1,
            ">" => shape.ends_in_fwc = true,
            _ => {}
        }
    }
    Some(shape)
}

fn is_mustache(token: &str) -> bool {
    token.len() > 4 && token.starts_with("{{") && token.ends_with("}}")
}

/// `{{ name ( args ) }}` → (name, args): the arguments run to the last `)` before `}}`.
fn function_call(token: &str) -> Option<(&str, &str)> {
    let inner = token.strip_prefix("{{")?.strip_suffix("}}")?.trim_end_matches(char::is_whitespace);
    let inner = inner.trim_start_matches(char::is_whitespace).strip_suffix(')')?;
    let open = inner.find('(')?;
    let name = inner.get(..open)?.trim_end_matches(char::is_whitespace);
    let args = inner.get(open + 1..)?;
    (!name.is_empty() && name.bytes().all(|b| b.is_ascii_alphabetic())).then_some((name, args))
}

/// `name` is `canonical` with the first letter of each word in either case (`[sS]plit[fF]rom`).
fn name_is(name: &str, canonical: &str) -> bool {
    name.len() == canonical.len()
        && name.bytes().zip(canonical.bytes()).enumerate().all(|(i, (n, c))| {
            if i == 0 || c.is_ascii_uppercase() {
                n.eq_ignore_ascii_case(&c)
            } else {
                n == c
            }
        })
}

/// Arguments split at commas (and the spaces after them), as nats-server's `,\s*`.
fn arguments(args: &str) -> Vec<&str> {
    args.split(',').enumerate().map(|(i, a)| if i == 0 { a } else { a.trim_start() }).collect()
}

/// Go's `strconv.Atoi(strings.Trim(arg, " "))`.
fn int(arg: &str) -> Option<i64> {
    arg.trim_matches(' ').parse().ok()
}

fn placeholder(token: &str) -> Result<Placeholder, TransformError> {
    let refuse = |error| TransformError::Destination { error, token: token.to_string() };
    if token.len() > 1 {
        if let Some(index) = token.strip_prefix('$') {
            // `$N`, the older form; anything else starting with `$` is a literal.
            return Ok(index.parse().map_or(Placeholder::None, Placeholder::Wildcard));
        }
    }
    if !is_mustache(token) {
        return Ok(Placeholder::None);
    }
    let Some((name, args)) = function_call(token) else {
        return Err(refuse(DestinationError::UnknownFunction));
    };
    let args = arguments(args);
    let index_and_int = |build: Builder| -> Result<Placeholder, TransformError> {
        match args.as_slice() {
            [index, arg] => {
                let index = int(index).ok_or_else(|| refuse(DestinationError::InvalidArg))?;
                let arg = int(arg)
                    .and_then(|a| i32::try_from(a).ok())
                    .ok_or_else(|| refuse(DestinationError::InvalidArg))?;
                Ok(Placeholder::IndexInt(build, index, arg))
            }
            [_] | [] => Err(refuse(DestinationError::NotEnoughArgs)),
            _ => Err(refuse(DestinationError::TooManyArgs)),
        }
    };
    let count = |arg: &str| int(arg).and_then(|n| u32::try_from(n).ok()).filter(|n| *n <= i32::MAX as u32);
    if name_is(name, "wildcard") {
        return match args.as_slice() {
            [""] => Err(refuse(DestinationError::NotEnoughArgs)),
            [index] => {
                int(index).map(Placeholder::Wildcard).ok_or_else(|| refuse(DestinationError::InvalidArg))
            }
            _ => Err(refuse(DestinationError::TooManyArgs)),
        };
    }
    if name_is(name, "partition") {
        let (first, rest) = args.split_first().ok_or_else(|| refuse(DestinationError::NotEnoughArgs))?;
        let buckets = count(first).ok_or_else(|| refuse(DestinationError::InvalidArg))?;
        let from = rest.iter().map(|a| int(a)).collect::<Option<Vec<_>>>();
        return from
            .map(|from| Placeholder::Partition(buckets, from))
            .ok_or_else(|| refuse(DestinationError::InvalidArg));
    }
    let functions: [(&str, Builder); 6] = [
        ("splitFromLeft", |from, at| Part::SplitFromLeft { from, at }),
        ("splitFromRight", |from, at| Part::SplitFromRight { from, at }),
        ("sliceFromLeft", |from, size| Part::SliceFromLeft { from, size }),
        ("sliceFromRight", |from, size| Part::SliceFromRight { from, size }),
        ("right", |from, len| Part::Right { from, len }),
        ("left", |from, len| Part::Left { from, len }),
    ];
    if let Some((_, build)) = functions.iter().find(|(n, _)| name_is(name, n)) {
        return index_and_int(*build);
    }
    if name_is(name, "split") {
        return match args.as_slice() {
            [index, delimiter] => {
                let index = int(index).ok_or_else(|| refuse(DestinationError::InvalidArg))?;
                if delimiter.contains([' ', '.']) {
                    return Err(refuse(DestinationError::InvalidArg));
                }
                Ok(Placeholder::Split(index, (*delimiter).into()))
            }
            [_] | [] => Err(refuse(DestinationError::NotEnoughArgs)),
            _ => Err(refuse(DestinationError::TooManyArgs)),
        };
    }
    if name_is(name, "random") {
        return match args.as_slice() {
            [n] => count(n).map(Placeholder::Random).ok_or_else(|| refuse(DestinationError::InvalidArg)),
            _ => Err(refuse(DestinationError::NotEnoughArgs)),
        };
    }
    Err(refuse(DestinationError::UnknownFunction))
}

fn range_error(token: &str, index: i64) -> TransformError {
    TransformError::Destination {
        error: DestinationError::IndexOutOfRange,
        token: format!("{token}: [{index}]"),
    }
}

/// A position or size strictly inside a token of `len` bytes.
fn position(n: i32, len: usize) -> Option<usize> {
    usize::try_from(n).ok().filter(|n| *n > 0 && *n < len)
}

fn push3(out: &mut String, left: &str, right: &str) {
    out.push_str(left);
    out.push('.');
    out.push_str(right);
}

fn bucket(hash: u32, buckets: u32) -> String {
    if buckets == 0 {
        return "0".into();
    }
    (hash % buckets).to_string()
}

/// 32-bit FNV-1a, nats-server's partition hash.
fn fnv1a32(bytes: &[u8]) -> u32 {
    bytes.iter().fold(0x811c_9dc5_u32, |h, b| (h ^ u32::from(*b)).wrapping_mul(0x0100_0193))
}

/// Slices of `size` bytes from the left, the remainder last.
fn slice_from_left(out: &mut String, token: &str, size: i32) {
    let Some(size) = position(size, token.len()) else {
        out.push_str(token);
        return;
    };
    let pieces: Vec<&str> = chunks(token, 0, size);
    out.push_str(&pieces.join("."));
}

/// Slices of `size` bytes from the right, the remainder first.
fn slice_from_right(out: &mut String, token: &str, size: i32) {
    let Some(size) = position(size, token.len()) else {
        out.push_str(token);
        return;
    };
    let remainder = token.len() % size;
    let mut pieces: Vec<&str> = Vec::new();
    if remainder > 0 {
        pieces.extend(token.get(..remainder));
    }
    pieces.extend(chunks(token, remainder, size));
    out.push_str(&pieces.join("."));
}

/// `token` from `start` in pieces of `size` bytes (the last one shorter).
fn chunks(token: &str, start: usize, size: usize) -> Vec<&str> {
    let mut pieces = Vec::new();
    let mut at = start;
    while at < token.len() {
        let end = (at + size).min(token.len());
        match token.get(at..end) {
            Some(piece) => pieces.push(piece),
            None => return vec![token],
        }
        at = end;
    }
    pieces
}

/// The token's parts between delimiters, empty ones dropped.
fn split(out: &mut String, token: &str, delimiter: &str) {
    if delimiter.is_empty() {
        // Go's `strings.Split` with an empty separator: one piece per character.
        for (i, c) in token.chars().enumerate() {
            if i > 0 {
                out.push('.');
            }
            out.push(c);
        }
        return;
    }
    let pieces: Vec<&str> = token.split(delimiter).filter(|p| !p.is_empty()).collect();
    out.push_str(&pieces.join("."));
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn map(source: &str, destination: &str, subject: &str) -> String {
        Transform::new(source, destination).unwrap().apply(subject)
    }

    #[test]
    fn wildcards_by_position_and_trailing_tokens() {
        assert_eq!(map("a.*.*", "b.$2.$1", "a.x.y"), "b.y.x");
        assert_eq!(map("a.*.*", "b.{{wildcard(2)}}.{{ Wildcard( 1 ) }}", "a.x.y"), "b.y.x");
        assert_eq!(map("orders.>", "repub.>", "orders.eu.1"), "repub.eu.1");
        assert_eq!(map("a.*.>", "b.{{wildcard(1)}}.>", "a.x.y.z"), "b.x.y.z");
        assert_eq!(map(">", "copy.>", "a.b"), "copy.a.b");
        assert_eq!(map("a", "b", "a"), "b");
        assert_eq!(map("a.*", "", "a.x"), "a.x", "no destination keeps the subject");
        assert_eq!(map("a.*", "b.$x", "a.q"), "b.$x", "not a number: a literal");
    }

    #[test]
    fn functions_shape_tokens_as_nats_server_does() {
        assert_eq!(map("a.*", "{{splitFromLeft(1,2)}}", "a.abcdef"), "ab.cdef");
        assert_eq!(map("a.*", "{{splitFromRight(1,2)}}", "a.abcdef"), "abcd.ef");
        assert_eq!(map("a.*", "{{splitFromLeft(1,9)}}", "a.abc"), "abc");
        assert_eq!(map("a.*", "{{sliceFromLeft(1,2)}}", "a.abcde"), "ab.cd.e");
        assert_eq!(map("a.*", "{{sliceFromRight(1,2)}}", "a.abcde"), "a.bc.de");
        assert_eq!(map("a.*", "{{split(1,-)}}", "a.-x--y-"), "x.y");
        assert_eq!(map("a.*", "{{split(1,)}}", "a.xyz"), "x.y.z");
        assert_eq!(map("a.*", "{{left(1,2)}}.{{right(1,2)}}", "a.abcde"), "ab.de");
        let p = map("a.*", "p.{{partition(10,1)}}", "a.key");
        assert_eq!(p, format!("p.{}", fnv1a32(b"key") % 10));
        assert_eq!(map("a.b", "{{partition(10)}}", "a.b"), (fnv1a32(b"a.b") % 10).to_string());
        let r: u32 = map("a", "{{random(5)}}", "a").parse().unwrap();
        assert!(r < 5);
    }

    #[test]
    fn fnv_matches_the_reference_vectors() {
        assert_eq!(fnv1a32(b""), 0x811c_9dc5);
        assert_eq!(fnv1a32(b"a"), 0xe40c_292c);
        assert_eq!(fnv1a32(b"foobar"), 0xbf9c_f968);
    }

    #[test]
    fn refusals_read_as_nats_server_writes_them() {
        let text = |s: &str, d: &str| Transform::new(s, d).unwrap_err().to_string();
        assert_eq!(
            text("f2.*", "g2.{{wildcard(2)}}"),
            "invalid mapping destination: wildcard index out of range in {{wildcard(2)}}: [2]"
        );
        assert_eq!(text("a.*", "b.*"), "invalid subject", "no * in a destination");
        assert_eq!(text("a.>", "b"), "invalid subject", "> on both sides or neither");
        assert_eq!(
            text("a.*", "{{nope(1)}}"),
            "invalid mapping destination: unknown function in {{nope(1)}}"
        );
        assert_eq!(
            text("a.*", "{{wildcard()}}"),
            "invalid mapping destination: not enough arguments passed to the function in {{wildcard()}}"
        );
        assert_eq!(
            text("a.*", "{{wildcard(1,2)}}"),
            "invalid mapping destination: too many arguments passed to the function in {{wildcard(1,2)}}"
        );
        assert_eq!(
            text("a.*", "{{left(x,2)}}"),
            "invalid mapping destination: function argument is invalid or in the wrong format in {{left(x,2)}}"
        );
        assert_eq!(
            text("a", "{{wildcard(1)}}"),
            "invalid mapping destination: wildcard index out of range in {{wildcard(1)}}"
        );
        assert!(Transform::new("a", "{{partition(3)}}").is_ok(), "a literal source may partition");
        assert_eq!(
            validate_mapping("a.*", "b..c").unwrap_err().to_string(),
            "invalid mapping destination: invalid transform"
        );
        assert_eq!(
            validate_mapping("a.*", "{{left(1,2)}}").unwrap_err().to_string(),
            "invalid mapping destination: unknown function in {{left(1,2)}}",
            "nats-server's ValidateMapping does not list left and right"
        );
    }

    #[test]
    fn odd_input_never_panics() {
        for (s, d, subject) in [
            ("a.*", "{{sliceFromLeft(1,1)}}", "a.é"),
            ("a.*", "{{right(1,1)}}", "a.éé"),
            ("a.*", "$0.$9", "a"),
        ] {
            if let Ok(t) = Transform::new(s, d) {
                let _ = t.apply(subject);
            }
        }
    }
}
