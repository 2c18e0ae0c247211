//! The `.conf` language, one feature per test, through [`parse`] with a fake environment.

use std::collections::HashMap;
use std::io;
use std::path::{Path, PathBuf};

use proptest::prelude::*;

use super::*;

/// Files and variables in memory, so tests neither touch the disk nor the process environment.
#[derive(Default)]
struct FakeEnv {
    files: HashMap<PathBuf, String>,
    vars: HashMap<String, String>,
}

impl FakeEnv {
    fn file(mut self, path: &str, text: &str) -> Self {
        self.files.insert(PathBuf::from(path), text.to_string());
        self
    }

    fn var(mut self, name: &str, value: &str) -> Self {
        self.vars.insert(name.to_string(), value.to_string());
        self
    }
}

impl Environment for FakeEnv {
    fn read_file(&self, path: &Path) -> io::Result<String> {
        self.files.get(path).cloned().ok_or_else(|| io::Error::new(io::ErrorKind::NotFound, "no such file"))
    }

    fn var(&self, name: &str) -> Option<String> {
        self.vars.get(name).cloned()
    }
}

fn parse_with(text: &str, env: &FakeEnv) -> Result<Map, ParseError> {
    parse(text, Path::new("/etc/jetway/main.conf"), env)
}

fn ok(text: &str) -> Map {
    match parse_with(text, &FakeEnv::default()) {
        Ok(map) => map,
        Err(e) => panic!("{text:?} should parse: {e}"),
    }
}

fn err(text: &str) -> ParseError {
    match parse_with(text, &FakeEnv::default()) {
        Ok(map) => panic!("{text:?} should not parse, got {map:?}"),
        Err(e) => e,
    }
}

fn value<'m>(map: &'m Map, path: &str) -> &'m Value {
    let path: Vec<&str> = path.split('.').collect();
    match map.lookup(&path) {
        Some(entry) => &entry.value.value,
        None => panic!("no key {path:?} in {map:?}"),
    }
}

fn string(s: &str) -> Value {
    Value::String(s.to_string())
}

#[test]
fn keys_and_values_are_separated_by_equals_colon_or_blanks() {
    let map = ok("a = 1\nb: 2\nc 3\nd\t4\ne=5\nf:6");
    for (key, n) in [("a", 1), ("b", 2), ("c", 3), ("d", 4), ("e", 5), ("f", 6)] {
        assert_eq!(value(&map, key), &Value::Integer(n), "key {key}");
    }
}

#[test]
fn items_end_with_new_lines_semicolons_or_commas() {
    let map = ok("a = 1; b = 2, c = 3\r\nd = 4;\n");
    assert_eq!(map.len(), 4);
    assert_eq!(value(&map, "d"), &Value::Integer(4));
}

#[test]
fn maps_nest_and_the_separator_before_a_brace_is_optional() {
    let map = ok("outer {\n  inner { x: 1 }\n  y = 2; z: 3\n}\nother: { w: true }");
    assert_eq!(value(&map, "outer.inner.x"), &Value::Integer(1));
    assert_eq!(value(&map, "outer.y"), &Value::Integer(2));
    assert_eq!(value(&map, "outer.z"), &Value::Integer(3));
    assert_eq!(value(&map, "other.w"), &Value::Bool(true));
}

#[test]
fn a_top_level_brace_wraps_json_like_files() {
    let map = ok("{\n  \"port\": 4222,\n  \"debug\": true\n}\n");
    assert_eq!(value(&map, "port"), &Value::Integer(4222));
    assert_eq!(value(&map, "debug"), &Value::Bool(true));
}

#[test]
fn arrays_take_commas_or_new_lines_and_comments() {
    let map =
        ok("a = [1, 2, 3]\nb = [\n  \"x\" # first\n  'y', // second\n  z\n]\nc = []\nd = [[1], {k: v}]");
    let Value::Array(a) = value(&map, "a") else { panic!("a is not an array") };
    assert_eq!(
        a.iter().map(|n| n.value.clone()).collect::<Vec<_>>(),
        vec![Value::Integer(1), Value::Integer(2), Value::Integer(3)]
    );
    let Value::Array(b) = value(&map, "b") else { panic!("b is not an array") };
    assert_eq!(
        b.iter().map(|n| n.value.clone()).collect::<Vec<_>>(),
        vec![string("x"), string("y"), string("z")]
    );
    assert_eq!(value(&map, "c"), &Value::Array(vec![]));
    let Value::Array(d) = value(&map, "d") else { panic!("d is not an array") };
    assert!(matches!(&d[1].value, Value::Map(m) if m.get("k").map(|n| &n.value) == Some(&string("v"))));
}

#[test]
fn hash_and_double_slash_start_comments() {
    let map =
        ok("# heading\na = 1 # trailing\n// another\nb = 2 // trailing\nc { # in map\n d = 3 // here\n}");
    assert_eq!(map.len(), 3);
    assert_eq!(value(&map, "c.d"), &Value::Integer(3));
}

#[test]
fn strings_may_be_bare_double_or_single_quoted() {
    let map = ok(
        "a = bare\nb = \"dq \\\"x\\\" \\t\\n\\\\ \\x41\"\nc = 'sq \\n stays'\nd = \"has # and // inside\"",
    );
    assert_eq!(value(&map, "a"), &string("bare"));
    assert_eq!(value(&map, "b"), &string("dq \"x\" \t\n\\ A"));
    assert_eq!(value(&map, "c"), &string("sq \\n stays"));
    assert_eq!(value(&map, "d"), &string("has # and // inside"));
}

#[test]
fn quoted_keys_may_hold_separators() {
    let map = ok("\"a b\": 1\n'c:d' = 2");
    assert_eq!(value(&map, "a b"), &Value::Integer(1));
    assert_eq!(value(&map, "c:d"), &Value::Integer(2));
}

#[test]
fn block_strings_run_to_a_closing_paren_alone_on_a_line() {
    let map = ok("text (\nline one (with parens)\n  line two)\n)\nafter = 1");
    assert_eq!(value(&map, "text"), &string("\nline one (with parens)\n  line two)\n"));
    assert_eq!(value(&map, "after"), &Value::Integer(1));
    assert_eq!(err("text (\nnever closed)").kind, ParseErrorKind::UnterminatedBlock);
}

#[test]
fn integers_take_decimal_and_binary_size_suffixes() {
    let map = ok("a = 8MB\nb = 8mb\nc = 8M\nd = 1k\ne = 1Ki\nf = 1KiB\ng = 2G\nh = 1t\ni = 1P\nj = 1E\nk = 1eb\nl = -5\nm = 2gi");
    let cases: [(&str, i64); 13] = [
        ("a", 8 * 1024 * 1024),
        ("b", 8 * 1024 * 1024),
        ("c", 8_000_000),
        ("d", 1000),
        ("e", 1024),
        ("f", 1024),
        ("g", 2_000_000_000),
        ("h", 1_000_000_000_000),
        ("i", 1_000_000_000_000_000),
        ("j", 1_000_000_000_000_000_000),
        ("k", 1 << 60),
        ("l", -5),
        ("m", 2 << 30),
    ];
    for (key, n) in cases {
        assert_eq!(value(&map, key), &Value::Integer(n), "key {key}");
    }
}

#[test]
fn integers_that_overflow_are_errors() {
    assert!(matches!(err("a = 99999999999999999999").kind, ParseErrorKind::IntegerOutOfRange(_)));
    assert!(matches!(err("a = 9999E").kind, ParseErrorKind::IntegerOutOfRange(_)));
}

#[test]
fn number_like_text_with_other_letters_is_a_string() {
    let map = ok("a = 10s\nb = 1h30m\nc = 127.0.0.1:4222\nd = 500ms\ne = 1.5s\nf = 4222abc");
    assert_eq!(value(&map, "a"), &string("10s"));
    assert_eq!(value(&map, "b"), &string("1h30m"));
    assert_eq!(value(&map, "c"), &string("127.0.0.1:4222"));
    assert_eq!(value(&map, "d"), &string("500ms"));
    assert_eq!(value(&map, "e"), &string("1.5s"));
    assert_eq!(value(&map, "f"), &string("4222abc"));
}

#[test]
fn floats_need_digits_on_both_sides_of_the_point() {
    let map = ok("a = 1.5\nb = -0.25");
    assert_eq!(value(&map, "a"), &Value::Float(1.5));
    assert_eq!(value(&map, "b"), &Value::Float(-0.25));
    assert!(matches!(err("a = .5").kind, ParseErrorKind::InvalidFloat(_)));
}

#[test]
fn booleans_are_true_false_yes_no_on_off_in_any_case() {
    let map = ok("a = true\nb = FALSE\nc = yes\nd = No\ne = on\nf = off\ng = \"true\"");
    for (key, b) in [("a", true), ("b", false), ("c", true), ("d", false), ("e", true), ("f", false)] {
        assert_eq!(value(&map, key), &Value::Bool(b), "key {key}");
    }
    assert_eq!(value(&map, "g"), &string("true"), "quoted words stay strings");
}

#[test]
fn zulu_datetimes_are_kept_as_written() {
    let map = ok("at = 2024-01-02T03:04:05Z");
    assert_eq!(value(&map, "at"), &Value::DateTime("2024-01-02T03:04:05Z".into()));
    assert_eq!(err("at = 2024-01-02").kind, ParseErrorKind::InvalidDateTime);
}

#[test]
fn keys_and_values_remember_line_and_column() {
    let map = ok("\n# comment\n  port = 4222\nblock {\n    inner: 'x'\n}");
    let port =
        map.entry("port").map(|e| (e.key_location.line, e.key_location.column, e.value.location.column));
    assert_eq!(port, Some((3, 3, 10)));
    let inner = map.lookup(&["block", "inner"]).map(|e| (e.key_location.line, e.key_location.column));
    assert_eq!(inner, Some((5, 5)));
    assert_eq!(
        map.entry("port").map(|e| e.key_location.file.to_path_buf()),
        Some(PathBuf::from("/etc/jetway/main.conf"))
    );
}

#[test]
fn errors_carry_file_line_and_column() {
    let e = err("a = 1\nb = [1 2]");
    assert_eq!((e.location.line, e.location.column), (2, 8));
    assert!(e.to_string().starts_with("/etc/jetway/main.conf:2:8: "), "{e}");
    assert!(matches!(err("a = \"open").kind, ParseErrorKind::UnterminatedString));
    assert!(matches!(err("a = 1 2").kind, ParseErrorKind::Unexpected { .. }));
    assert!(matches!(err("a = \n").kind, ParseErrorKind::Unexpected { .. }));
    assert!(matches!(err("a { b = 1").kind, ParseErrorKind::Unexpected { .. }));
    assert!(matches!(err("a = \"\\q\"").kind, ParseErrorKind::InvalidEscape(_)));
    assert!(matches!(err("a = \"\\xZZ\"").kind, ParseErrorKind::InvalidHexEscape));
    assert!(matches!(err("a = \"\\xff\"").kind, ParseErrorKind::InvalidUtf8));
}

#[test]
fn a_later_key_replaces_an_earlier_one() {
    let map = ok("a = 1\na = 2");
    assert_eq!(map.len(), 1);
    assert_eq!(value(&map, "a"), &Value::Integer(2));
}

#[test]
fn variables_resolve_to_earlier_keys_and_mark_them_used() {
    let map = ok("the_port = 4222\nport = $the_port\nlimits { size = 8MB }");
    assert_eq!(value(&map, "port"), &Value::Integer(4222));
    assert_eq!(map.entry("the_port").map(|e| e.used_as_variable), Some(true));
    assert_eq!(map.entry("port").map(|e| (e.used_as_variable, e.value.location.line)), Some((false, 2)));
}

#[test]
fn variables_are_block_scoped() {
    let map = ok("x = outer\na { x = inner; y = $x }\nb { y = $x }\nc { d { y = $x } }");
    assert_eq!(value(&map, "a.y"), &string("inner"));
    assert_eq!(value(&map, "b.y"), &string("outer"));
    assert_eq!(value(&map, "c.d.y"), &string("outer"));
    let e = err("a { x = 1 }\nb = $x");
    assert_eq!(e.kind, ParseErrorKind::VariableNotFound("x".into()));
    assert_eq!((e.location.line, e.location.column), (2, 5));
}

#[test]
fn variables_hold_maps_and_arrays() {
    let map = ok("common = { user: a, password: b }\nauthorization = $common\nlist = [1, 2]\ncopy = $list");
    assert_eq!(value(&map, "authorization.user"), &string("a"));
    assert!(matches!(value(&map, "copy"), Value::Array(items) if items.len() == 2));
}

#[test]
fn variables_fall_back_to_the_environment_parsed_as_values() {
    let env = FakeEnv::default().var("JW_SIZE", "8MB").var("JW_NAME", "hello").var("JW_ON", "true");
    let map = parse_with("a = $JW_SIZE\nb = $JW_NAME\nc = $JW_ON", &env).unwrap_or_default();
    assert_eq!(value(&map, "a"), &Value::Integer(8 * 1024 * 1024));
    assert_eq!(value(&map, "b"), &string("hello"));
    assert_eq!(value(&map, "c"), &Value::Bool(true));
}

#[test]
fn keys_in_scope_shadow_environment_variables() {
    let env = FakeEnv::default().var("port", "1");
    let map = parse_with("port = 2\nother = $port", &env).unwrap_or_default();
    assert_eq!(value(&map, "other"), &Value::Integer(2));
}

#[test]
fn environment_variable_cycles_are_detected() {
    let env = FakeEnv::default().var("A", "$B").var("B", "$A").var("SELF", "$SELF");
    let e = parse_with("x = $A", &env).err();
    assert!(matches!(e.map(|e| e.kind), Some(ParseErrorKind::VariableCycle(name)) if name == "A"));
    let e = parse_with("x = $SELF", &env).err();
    assert!(matches!(e.map(|e| e.kind), Some(ParseErrorKind::VariableCycle(name)) if name == "SELF"));
}

#[test]
fn bcrypt_hashes_are_not_variables() {
    let map = ok("password = $2a$11$abcdefghijklmnopqrstuv");
    assert_eq!(value(&map, "password"), &string("$2a$11$abcdefghijklmnopqrstuv"));
}

#[test]
fn include_is_relative_to_the_including_file_and_merges_keys() {
    let env = FakeEnv::default()
        .file("/etc/jetway/auth.conf", "user = alice\npassword = secret")
        .file("/etc/jetway/sub/js.conf", "include ../limits.conf\nstore_dir = '/data'")
        .file("/etc/jetway/limits.conf", "max_mem = 1G");
    let map = parse_with(
        "authorization {\n  include auth.conf\n  timeout: 2\n}\njetstream {\n  include 'sub/js.conf'\n}",
        &env,
    );
    let map = map.unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(value(&map, "authorization.user"), &string("alice"));
    assert_eq!(value(&map, "authorization.timeout"), &Value::Integer(2));
    assert_eq!(value(&map, "jetstream.store_dir"), &string("/data"));
    assert_eq!(value(&map, "jetstream.max_mem"), &Value::Integer(1_000_000_000));
    let user = map.lookup(&["authorization", "user"]).map(|e| e.key_location.clone());
    assert_eq!(
        user.map(|l| (l.file.to_path_buf(), l.line)),
        Some((PathBuf::from("/etc/jetway/auth.conf"), 1))
    );
}

#[test]
fn include_errors_name_the_file_and_cycles_are_detected() {
    let e = parse_with("include missing.conf", &FakeEnv::default()).err();
    assert!(
        matches!(e.map(|e| e.kind), Some(ParseErrorKind::Include { path, .. }) if path == Path::new("/etc/jetway/missing.conf"))
    );
    let env = FakeEnv::default()
        .file("/etc/jetway/a.conf", "include b.conf")
        .file("/etc/jetway/b.conf", "include a.conf");
    let e = parse_with("include a.conf", &env).err();
    assert!(matches!(e.map(|e| e.kind), Some(ParseErrorKind::IncludeCycle(_))));
}

#[test]
fn a_key_named_include_with_a_separator_is_an_ordinary_key() {
    let map = ok("include = 5\n\"include\" x");
    assert_eq!(value(&map, "include"), &string("x"));
}

#[test]
fn deep_nesting_is_an_error_not_a_stack_overflow() {
    let deep = format!("a = {}{}", "[".repeat(10_000), "]".repeat(10_000));
    assert!(matches!(err(&deep).kind, ParseErrorKind::TooDeep(_)));
    let deep_maps = format!("{}b = 1{}", "a { ".repeat(5_000), " }".repeat(5_000));
    assert!(matches!(err(&deep_maps).kind, ParseErrorKind::TooDeep(_)));
}

#[test]
fn exponential_variable_expansion_is_refused() {
    let mut text = String::from("v0 = [1, 1, 1, 1]\n");
    for i in 1..30 {
        text.push_str(&format!("v{i} = [$v{p}, $v{p}, $v{p}, $v{p}]\n", p = i - 1));
    }
    assert!(matches!(err(&text).kind, ParseErrorKind::TooLarge(_)));
}

proptest! {
    #[test]
    fn random_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
        let text = String::from_utf8_lossy(&bytes);
        let _ = parse_with(&text, &FakeEnv::default().var("X", "$Y").var("Y", "{a = [1, $X]}"));
    }

    #[test]
    fn random_config_like_text_never_panics(text in "[a-z$ {}\\[\\]()=:;,#/\"'\\\\\n0-9.kKmMbBiI-]{0,256}") {
        let _ = parse_with(&text, &FakeEnv::default().var("a", "$b").var("b", "1k"));
    }
}
