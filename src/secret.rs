//! The vendor key, wrapped so that it cannot leak through `Debug`, `Display`
//! or a log line by accident: the only way to the text is [`ApiKey::expose`],
//! which is called where the `Authorization` header is built and nowhere else.
//!
//! It also owns the one path from text a vendor sent to text a person reads
//! ([`printable`]): the key removed after the text is decoded (a vendor may
//! echo it JSON-escaped or percent-encoded, or only part of it), and control
//! and bidi characters escaped so a body cannot drive the terminal. The same
//! scrub runs once more where stderr is written ([`scrub_known`]), for text
//! that reached a message by another road.

use std::collections::HashSet;
use std::fmt;
use std::sync::Mutex;

/// A run of this many characters of a key counts as the key: a vendor that
/// echoes the first 16 characters has leaked it as surely as all of it.
pub const KEY_RUN: usize = 12;

const REDACTED: &str = "(redacted)";

/// Every key this process has held, so the stderr writers can scrub them
/// from text that never went through a `Fetcher`.
static KNOWN: Mutex<Vec<String>> = Mutex::new(Vec::new());

#[derive(Clone, PartialEq, Eq)]
pub struct ApiKey(String);

impl ApiKey {
    /// Trims surrounding white space (a key pasted with a newline is the most
    /// common cause of a 401 the vendors document).
    pub fn new(key: &str) -> Option<ApiKey> {
        let key = key.trim();
        if key.is_empty() {
            None
        } else {
            let mut known = KNOWN.lock().unwrap_or_else(|e| e.into_inner());
            if !known.iter().any(|k| k == key) {
                known.push(key.to_owned());
            }
            Some(ApiKey(key.to_owned()))
        }
    }

    pub fn expose(&self) -> &str {
        &self.0
    }

    /// `text` with every run of [`KEY_RUN`] or more characters of the key
    /// replaced, in the form given and in its decoded forms.
    pub fn scrub(&self, text: &str) -> String {
        redact(text, &[self.0.as_str()])
    }
}

impl fmt::Debug for ApiKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("ApiKey(redacted)")
    }
}

/// Text a vendor sent, made fit to print: `key` (and any other key this
/// process holds) removed after decoding, control and bidi characters
/// escaped, on one line.
pub fn printable(text: &str, key: &ApiKey) -> String {
    let known = KNOWN.lock().unwrap_or_else(|e| e.into_inner()).clone();
    let mut keys: Vec<&str> = known.iter().map(String::as_str).collect();
    keys.push(key.expose());
    escape_controls(&redact(text, &keys))
}

/// Any text about to be written to stderr: every key this process holds
/// removed, control and bidi characters escaped.
pub fn for_terminal(text: &str) -> String {
    escape_controls(&scrub_known(text))
}

/// `text` with every key this process holds removed (see [`redact`]).
pub fn scrub_known(text: &str) -> String {
    let known = KNOWN.lock().unwrap_or_else(|e| e.into_inner());
    if known.is_empty() {
        return text.to_owned();
    }
    let keys: Vec<&str> = known.iter().map(String::as_str).collect();
    redact(text, &keys)
}

/// Removes every run of [`KEY_RUN`] characters of any of `keys` (the whole
/// key if it is shorter). The raw text is checked and so is its decoded form
/// (JSON `\/` and `\uXXXX` escapes, percent-encoding, applied repeatedly):
/// when decoding reveals a key, the decoded form is what is returned, because
/// scrubbing the raw form cannot remove a key it cannot see.
pub fn redact(text: &str, keys: &[&str]) -> String {
    let decoded = decode(text);
    if decoded != text
        && let Some(clean) = scrub_runs(&decoded, keys)
    {
        return clean;
    }
    scrub_runs(text, keys).unwrap_or_else(|| text.to_owned())
}

/// `None` when no run of a key occurs in `text`.
fn scrub_runs(text: &str, keys: &[&str]) -> Option<String> {
    let bytes = text.as_bytes();
    let mut marks: Vec<bool> = Vec::new();
    for key in keys {
        let key = key.as_bytes();
        let run = key.len().min(KEY_RUN);
        if run == 0 || bytes.len() < run {
            continue;
        }
        // Every substring of 12 or more characters of the key is a union of
        // the key's 12-character windows, so marking every window found
        // covers all of them in one linear pass.
        let windows: HashSet<&[u8]> = key.windows(run).collect();
        let first: HashSet<u8> = windows.iter().map(|w| w[0]).collect();
        for start in 0..=bytes.len() - run {
            if first.contains(&bytes[start]) && windows.contains(&bytes[start..start + run]) {
                if marks.is_empty() {
                    marks = vec![false; bytes.len()];
                }
                marks[start..start + run].fill(true);
            }
        }
    }
    if marks.is_empty() {
        return None;
    }
    let mut out = String::with_capacity(text.len());
    let mut in_run = false;
    for (index, c) in text.char_indices() {
        // A character counts as marked if any of its bytes is: a window of a
        // non-ASCII key can begin inside a character.
        if marks[index..index + c.len_utf8()].iter().any(|m| *m) {
            if !in_run {
                out.push_str(REDACTED);
                in_run = true;
            }
        } else {
            in_run = false;
            out.push(c);
        }
    }
    Some(out)
}

/// JSON string escapes and percent-encoding undone, until nothing changes
/// (a few rounds: `%255C` is two layers).
fn decode(text: &str) -> String {
    let mut current = text.to_owned();
    for _ in 0..4 {
        let next = decode_once(&current);
        if next == current {
            break;
        }
        current = next;
    }
    current
}

fn decode_once(text: &str) -> String {
    if !text.contains(['\\', '%']) {
        return text.to_owned();
    }
    let bytes = text.as_bytes();
    let mut out: Vec<u8> = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'%' if i + 2 < bytes.len()
                && hex(bytes[i + 1]).is_some()
                && hex(bytes[i + 2]).is_some() =>
            {
                out.push(hex(bytes[i + 1]).unwrap_or(0) << 4 | hex(bytes[i + 2]).unwrap_or(0));
                i += 3;
            }
            b'\\' if i + 1 < bytes.len() => {
                let simple = match bytes[i + 1] {
                    b'/' => Some(b'/'),
                    b'\\' => Some(b'\\'),
                    b'"' => Some(b'"'),
                    b'n' => Some(b'\n'),
                    b'r' => Some(b'\r'),
                    b't' => Some(b'\t'),
                    b'b' => Some(0x08),
                    b'f' => Some(0x0c),
                    _ => None,
                };
                if let Some(byte) = simple {
                    out.push(byte);
                    i += 2;
                } else if let Some((c, used)) = unicode_escape(&bytes[i..]) {
                    let mut buf = [0u8; 4];
                    out.extend_from_slice(c.encode_utf8(&mut buf).as_bytes());
                    i += used;
                } else {
                    out.push(b'\\');
                    i += 1;
                }
            }
            byte => {
                out.push(byte);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn hex(byte: u8) -> Option<u8> {
    (byte as char).to_digit(16).map(|d| d as u8)
}

fn hex4(bytes: &[u8]) -> Option<u32> {
    if bytes.len() < 6 || bytes[0] != b'\\' || bytes[1] != b'u' {
        return None;
    }
    bytes[2..6]
        .iter()
        .try_fold(0u32, |acc, b| Some(acc << 4 | u32::from(hex(*b)?)))
}

/// `\uXXXX`, or a surrogate pair `\uD83D\uDE00`; the character and how many
/// bytes it took.
fn unicode_escape(bytes: &[u8]) -> Option<(char, usize)> {
    let high = hex4(bytes)?;
    if (0xD800..0xDC00).contains(&high)
        && let Some(low) = hex4(&bytes[6..]).filter(|l| (0xDC00..0xE000).contains(l))
    {
        let c = 0x10000 + ((high - 0xD800) << 10) + (low - 0xDC00);
        return char::from_u32(c).map(|c| (c, 12));
    }
    Some((char::from_u32(high).unwrap_or('\u{FFFD}'), 6))
}

/// Characters that move the cursor, recolour the terminal, ring the bell or
/// reorder the text around them (bidi overrides and isolates, invisible
/// marks): shown as `\u{..}` escapes instead. Tabs and line breaks become
/// spaces, since every message is one line.
pub fn escape_controls(text: &str) -> String {
    if !text
        .chars()
        .any(|c| unsafe_char(c) || matches!(c, '\t' | '\n' | '\r'))
    {
        return text.to_owned();
    }
    let mut out = String::with_capacity(text.len() + 8);
    for c in text.chars() {
        match c {
            '\t' | '\n' | '\r' => out.push(' '),
            c if unsafe_char(c) => out.push_str(&format!("\\u{{{:04x}}}", c as u32)),
            c => out.push(c),
        }
    }
    out
}

fn unsafe_char(c: char) -> bool {
    c.is_control()
        || matches!(c,
            '\u{061C}'
            | '\u{180E}'
            | '\u{200B}'..='\u{200F}'
            | '\u{2028}'..='\u{202E}'
            | '\u{2060}'..='\u{2069}'
            | '\u{FEFF}'
            | '\u{FFF9}'..='\u{FFFB}')
}

/// Whether a value given where a path or a variable name belongs looks like
/// a key pasted there by mistake, so that an error about it must not echo
/// it: no path separator, at least 16 characters all of a key's alphabet,
/// with both letters and digits. A conventional variable name (upper case
/// with underscores, `ACME_CHATZURI_KEY2`) does not count.
pub fn looks_like_key(value: &str) -> bool {
    let value = value.trim();
    if value.len() < 16 || value.contains(['/', '\\']) {
        return false;
    }
    let key_alphabet = value
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.' | '~' | '+' | '=' | ':'));
    let variable_name = value.contains('_')
        && value
            .chars()
            .all(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || c == '_');
    key_alphabet
        && !variable_name
        && value.chars().any(|c| c.is_ascii_alphabetic())
        && value.chars().any(|c| c.is_ascii_digit())
}

#[cfg(test)]
mod tests {
    use super::*;

    const KEY: &str = "czk/live/8f7a6b5c4d3e2f1a";

    fn key() -> ApiKey {
        ApiKey::new(KEY).unwrap()
    }

    fn assert_clean(text: &str) {
        let key = KEY.as_bytes();
        for start in 0..=key.len() - KEY_RUN {
            let run = std::str::from_utf8(&key[start..start + KEY_RUN]).unwrap();
            assert!(!text.contains(run), "{run:?} in {text:?}");
        }
    }

    #[test]
    fn debug_never_shows_the_key() {
        let key = ApiKey::new("  sk-very-secret\n").unwrap();
        assert_eq!(key.expose(), "sk-very-secret");
        assert!(!format!("{key:?}").contains("sk-very-secret"));
        assert!(ApiKey::new(" \n").is_none());
    }

    #[test]
    fn json_escaped_key_echo_is_redacted() {
        let slash = r#"invalid key Bearer czk\/live\/8f7a6b5c4d3e2f1a"#;
        let out = key().scrub(slash);
        assert_clean(&out);
        assert!(out.contains("invalid key Bearer"), "{out}");
        let every: String = KEY
            .chars()
            .map(|c| format!("\\u{:04x}", c as u32))
            .collect();
        assert_clean(&key().scrub(&format!("key {every} refused")));
    }

    #[test]
    fn percent_encoded_key_echo_is_redacted() {
        let encoded: String = KEY.bytes().map(|b| format!("%{b:02X}")).collect();
        assert_clean(&key().scrub(&format!("GET /x?key={encoded} 401")));
        assert_clean(&key().scrub("key=czk%252Flive%252F8f7a6b5c4d3e2f1a"));
    }

    #[test]
    fn partial_key_echo_of_twelve_characters_is_redacted() {
        let out = key().scrub("unknown key prefix czk/live/8f7a… (16 chars)");
        assert_clean(&out);
        let out = key().scrub("tail 5c4d3e2f1a and 6b5c4d3e2f1a");
        assert_clean(&out);
        assert!(
            out.starts_with("tail 5c4d3e2f1a and"),
            "11 characters are not a run: {out}"
        );
        assert_eq!(key().scrub("nothing here"), "nothing here");
    }

    #[test]
    fn scrubbing_is_linear_on_a_large_text() {
        let text = "czk/live/8f7a6b5c4d3e2f1X".repeat(40_000);
        let started = std::time::Instant::now();
        let out = key().scrub(&text);
        assert_clean(&out);
        assert!(started.elapsed() < std::time::Duration::from_secs(5));
    }

    #[test]
    fn terminal_escapes_and_bidi_overrides_are_escaped() {
        let out = escape_controls("a\u{1b}[2J\u{7}b\u{202e}c\u{2066}d\u{9b}e\nf");
        assert_eq!(
            out,
            "a\\u{001b}[2J\\u{0007}b\\u{202e}c\\u{2066}d\\u{009b}e f"
        );
        let out = printable("\u{1b}]0;owned\u{7} key czk/live/8f7a6b5c4d3e2f1a", &key());
        assert!(!out.contains('\u{1b}') && !out.contains('\u{7}'), "{out}");
        assert_clean(&out);
    }

    #[test]
    fn key_looking_values_are_recognised() {
        for key in [
            "cz-test-key-5f2a9c1e77d04b3b",
            "AKIAIOSFODNN7EXAMPLE",
            "sk_live_51Habc123def456",
        ] {
            assert!(looks_like_key(key), "{key}");
        }
        for not in [
            "ACME_CHATZURI_KEY",
            "ACME_CHATZURI_KEY_2024",
            "/etc/leads/key",
            "key.txt",
            "my key file 2024.txt",
            "onlylettersherenodigits",
        ] {
            assert!(!looks_like_key(not), "{not}");
        }
    }
}
