//! JSON bytes of a record, from its field table: keys in table order,
//! compact, strings escaped as serde_json escapes them (the escape-free
//! common case is copied whole, as this is the hot path of every export).

use serde_json::Value;

use super::fields::FieldValue;
#[cfg(test)]
use super::fields::{Field, Getter};
use crate::model::{Fields, format_timestamp, timestamp_bytes};

/// Appends `record` as one compact JSON object.
/// Any record by walking its table: what the generated writers
/// (`fields::push_lead` and its kin) write, field by field.
#[cfg(test)]
pub fn push_object<R>(out: &mut Vec<u8>, table: &[Field<Getter<R>>], record: &R) {
    out.push(b'{');
    let mut first = true;
    for field in table {
        push_member(out, &mut first, field.key_null, (field.get)(record));
    }
    out.push(b'}');
}

/// One `,"key":value` of an object (without the comma for the first);
/// an absent `raw` is left out entirely. `key_null` is the key followed by
/// `null`: an empty field, the most common value of a lead (five of its
/// fifteen usually), is one copy rather than two.
#[inline(always)]
pub(super) fn push_member(
    out: &mut Vec<u8>,
    first: &mut bool,
    key_null: &str,
    value: FieldValue<'_>,
) {
    if let FieldValue::Raw(None) = value {
        return;
    }
    let key_null = key_null.as_bytes();
    let key_null = if std::mem::take(first) {
        &key_null[1..]
    } else {
        key_null
    };
    if let FieldValue::Null = value {
        out.extend_from_slice(key_null);
        return;
    }
    out.extend_from_slice(&key_null[..key_null.len() - b"null".len()]);
    push_field(out, value);
}

#[inline(always)]
fn push_field(out: &mut Vec<u8>, value: FieldValue<'_>) {
    match value {
        FieldValue::Null | FieldValue::Raw(None) => out.extend_from_slice(b"null"),
        FieldValue::Str(text) => push_str(out, text),
        FieldValue::Name(name) => {
            debug_assert!(!needs_escape(name.as_bytes()), "{name:?} needs escaping");
            out.push(b'"');
            out.extend_from_slice(name.as_bytes());
            out.push(b'"');
        }
        FieldValue::Time(t) => match timestamp_bytes(&t) {
            Some(bytes) => {
                out.push(b'"');
                out.extend_from_slice(&bytes);
                out.push(b'"');
            }
            None => push_str(out, &format_timestamp(&t)),
        },
        FieldValue::Object(map) => push_map(out, map),
        FieldValue::Messages(messages) => {
            out.push(b'[');
            for (i, message) in messages.iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                super::fields::push_message(out, message);
            }
            out.push(b']');
        }
        FieldValue::Index(n) => out.extend_from_slice(n.to_string().as_bytes()),
        FieldValue::Raw(Some(raw)) => push_value(out, raw),
    }
}

/// Any JSON value, as serde_json writes it compactly. Writing a `Value` into
/// a `Vec` cannot fail (its map keys are strings, its numbers already text).
pub fn push_value(out: &mut Vec<u8>, value: &Value) {
    let _ = serde_json::to_writer(out, value);
}

/// Appends `text` as a JSON string. Most strings need no escaping (serde
/// escapes only `"`, `\\` and control characters), and those are copied
/// whole; the rest go through serde.
#[inline]
pub fn push_str(out: &mut Vec<u8>, text: &str) {
    let bytes = text.as_bytes();
    if needs_escape(bytes) {
        let _ = serde_json::to_writer(out, text);
        return;
    }
    let len = bytes.len();
    out.reserve(len + 2);
    // SAFETY: `reserve` made room for `len + 2` bytes after the length, and
    // all of them are written before the length takes them in.
    unsafe {
        let at = out.as_mut_ptr().add(out.len());
        at.write(b'"');
        copy_short(bytes, at.add(1));
        at.add(len + 1).write(b'"');
        out.set_len(out.len() + len + 2);
    }
}

/// Copies `from` to `to`. Up to 32 bytes (nearly every string of a record)
/// as two overlapping words of the length's class, in place of a call to
/// `memcpy` (with the one capacity check above: `push_str` 22.2M -> 18.6M
/// instructions over a 20,000-lead export).
///
/// # Safety
/// `to` is valid for `from.len()` bytes of writes and does not overlap `from`.
#[inline(always)]
unsafe fn copy_short(from: &[u8], to: *mut u8) {
    let len = from.len();
    let src = from.as_ptr();
    // SAFETY: every copy below stays within `from.len()` bytes of both.
    unsafe {
        let pair = |n: usize| {
            std::ptr::copy_nonoverlapping(src, to, n);
            std::ptr::copy_nonoverlapping(src.add(len - n), to.add(len - n), n);
        };
        match len {
            0 => {}
            1..4 => {
                for (i, &byte) in from.iter().enumerate() {
                    to.add(i).write(byte);
                }
            }
            4..8 => pair(4),
            8..16 => pair(8),
            16..=32 => pair(16),
            _ => std::ptr::copy_nonoverlapping(src, to, len),
        }
    }
}

/// Whether any byte is a control character, `"` or `\\`: on x86_64 a
/// string of sixteen bytes or more sixteen at a time (`escaped_in_block`),
/// else eight at a time (the classic "has a zero byte" and "has a byte
/// below n" word tricks, both exact). A tail shorter than a block or word
/// is checked as the last sixteen or eight bytes, overlapping the ones
/// before. A string of four to seven bytes is checked as one word made of
/// its first and last four (copying it into a padded word cost more: a
/// call to `memcpy` for the variable length); a shorter one byte by byte.
#[inline]
pub(crate) fn needs_escape(bytes: &[u8]) -> bool {
    const WORD: usize = 8;
    let word = |chunk: &[u8]| {
        let mut word = [0u8; WORD];
        word.copy_from_slice(chunk);
        u64::from_le_bytes(word)
    };
    if bytes.len() < WORD {
        if bytes.len() >= 4 {
            // Two overlapping halves make one word.
            let half =
                |at: usize| u32::from_le_bytes(bytes[at..at + 4].try_into().unwrap_or([0; 4]));
            return word_needs_escape(u64::from(half(0)) | u64::from(half(bytes.len() - 4)) << 32);
        }
        return bytes.iter().any(|&b| b < 0x20 || b == b'"' || b == b'\\');
    }
    #[cfg(target_arch = "x86_64")]
    if let Some(last) = bytes.len().checked_sub(BLOCK) {
        // Blocks of sixteen, the last one overlapping the one before.
        let mut blocks = bytes.chunks_exact(BLOCK);
        return blocks.any(|block| escaped_in_block(block) != 0)
            || (!blocks.remainder().is_empty() && escaped_in_block(&bytes[last..]) != 0);
    }
    let mut chunks = bytes.chunks_exact(WORD);
    if chunks.any(|chunk| word_needs_escape(word(chunk))) {
        return true;
    }
    !chunks.remainder().is_empty() && word_needs_escape(word(&bytes[bytes.len() - WORD..]))
}

#[inline(always)]
fn word_needs_escape(word: u64) -> bool {
    escaped_bytes(word) != 0
}

/// A mask with the high bit set in the lowest byte of `word` that is `"`,
/// `\\` or below 0x20, the bytes a JSON string escapes (higher bytes may be
/// marked too; only the lowest mark is exact): the "has a zero byte" and
/// "has a byte below n" word tricks. The lead scanner finds where a string
/// ends with it too.
#[inline(always)]
pub(crate) fn escaped_bytes(word: u64) -> u64 {
    const ONES: u64 = 0x0101_0101_0101_0101;
    const HIGHS: u64 = 0x8080_8080_8080_8080;
    let zero_bytes = |w: u64| w.wrapping_sub(ONES) & !w & HIGHS;
    let below_space = word.wrapping_sub(ONES * 0x20) & !word & HIGHS;
    below_space
        | zero_bytes(word ^ (ONES * u64::from(b'"')))
        | zero_bytes(word ^ (ONES * u64::from(b'\\')))
}

/// The bytes `escaped_in_block` reads at a time.
#[cfg(target_arch = "x86_64")]
pub(crate) const BLOCK: usize = 16;

/// A mask with bit `i` set for each byte `i` of the first sixteen of
/// `block` that is `"`, `\\` or below 0x20, exactly: SSE2, which every
/// x86_64 has, checks sixteen bytes in about the instructions the word
/// tricks above spend on eight (the scanner's and the writer's escape
/// scans were 10% of a Chatzuri export's instructions).
///
/// # Panics
/// If `block` is shorter than [`BLOCK`].
#[cfg(target_arch = "x86_64")]
#[inline(always)]
pub(crate) fn escaped_in_block(block: &[u8]) -> u32 {
    use std::arch::x86_64::{
        __m128i, _mm_cmpeq_epi8, _mm_loadu_si128, _mm_max_epu8, _mm_movemask_epi8, _mm_or_si128,
        _mm_set1_epi8,
    };
    let block = &block[..BLOCK];
    // SAFETY: SSE2 is part of x86_64 itself, so every one of these
    // instructions exists; the load reads the sixteen bytes of `block`
    // (checked just above) and needs no alignment.
    unsafe {
        let v = _mm_loadu_si128(block.as_ptr().cast::<__m128i>());
        let quote = _mm_cmpeq_epi8(v, _mm_set1_epi8(b'"' as i8));
        let backslash = _mm_cmpeq_epi8(v, _mm_set1_epi8(b'\\' as i8));
        // Unsigned `byte < 0x20` is `max(byte, 0x1f) == 0x1f`.
        let control = _mm_cmpeq_epi8(_mm_max_epu8(v, _mm_set1_epi8(0x1f)), _mm_set1_epi8(0x1f));
        _mm_movemask_epi8(_mm_or_si128(_mm_or_si128(quote, backslash), control)) as u32
    }
}

/// A `fields` map as serde writes it (compact, in order), with the string
/// values and keys through the fast path.
pub fn push_map(out: &mut Vec<u8>, map: &Fields) {
    out.push(b'{');
    for (i, (key, value)) in map.iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        push_str(out, key);
        out.push(b':');
        match value {
            Value::String(text) => push_str(out, text),
            other => push_value(out, other),
        }
    }
    out.push(b'}');
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{Conversation, Lead, Message, Vendor};
    use crate::output::fields::{CONVERSATION_FIELDS, LEAD_FIELDS, push_conversation, push_lead};
    use chrono::{TimeZone, Utc};
    use serde_json::json;

    /// 200,000 pseudo-random blocks of `N` (at most 16) bytes mixing every
    /// kind of byte: escaped ones, their neighbours, and high bytes (which
    /// a signed compare would take for controls), several stops in a block.
    fn mixed_blocks<const N: usize>() -> impl Iterator<Item = [u8; N]> {
        let palette = [
            0u8, 1, 0x1f, 0x20, 0x21, b'"', 0x23, b'\\', 0x5b, 0x5d, b'a', 0x7f, 0x80, 0xa2, 0xdc,
            0xff,
        ];
        let mut state = 0x9E37_79B9_7F4A_7C15u64;
        (0..200_000).map(move |_| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            std::array::from_fn(|i| palette[(state >> (i * 4)) as usize & 15])
        })
    }

    /// The lowest marked byte of `escaped_bytes` is the first byte JSON
    /// escapes (the lead scanner stops there).
    #[test]
    fn escaped_bytes_marks_the_first_escaped_byte_exactly() {
        for bytes in mixed_blocks::<8>() {
            let first = bytes
                .iter()
                .position(|&b| b < 0x20 || b == b'"' || b == b'\\');
            let mask = escaped_bytes(u64::from_le_bytes(bytes));
            let marked = (mask != 0).then(|| mask.trailing_zeros() as usize / 8);
            assert_eq!(marked, first, "{bytes:?}");
        }
    }

    /// `escaped_in_block` marks exactly the bytes JSON escapes.
    #[cfg(target_arch = "x86_64")]
    #[test]
    fn escaped_in_block_marks_exactly_the_escaped_bytes() {
        for low in mixed_blocks::<16>() {
            let expected = low.iter().enumerate().fold(0u32, |mask, (i, &b)| {
                mask | u32::from(b < 0x20 || b == b'"' || b == b'\\') << i
            });
            assert_eq!(escaped_in_block(&low), expected, "{low:?}");
        }
        for byte in 0..=255u8 {
            let block = [byte; BLOCK];
            let escaped = byte < 0x20 || byte == b'"' || byte == b'\\';
            assert_eq!(
                escaped_in_block(&block),
                if escaped { 0xffff } else { 0 },
                "{byte}"
            );
        }
    }

    #[test]
    fn the_escape_scan_agrees_with_the_plain_one_on_every_byte_and_position() {
        let plain = |bytes: &[u8]| bytes.iter().any(|&b| b < 0x20 || b == b'"' || b == b'\\');
        for byte in 0..=255u8 {
            for len in [
                1usize, 2, 3, 4, 5, 6, 7, 8, 9, 15, 16, 17, 23, 31, 32, 33, 40, 47,
            ] {
                for at in 0..len {
                    let mut bytes = vec![b'a'; len];
                    bytes[at] = byte;
                    assert_eq!(
                        needs_escape(&bytes),
                        plain(&bytes),
                        "byte {byte} at {at} of {len}"
                    );
                }
            }
        }
        assert!(!needs_escape(b""));
    }

    /// `push_str` writes what serde writes, whatever the string's length,
    /// wherever the character that needs escaping is, after what is already
    /// in the buffer.
    #[test]
    fn push_str_writes_what_serde_writes_at_every_length_and_position() {
        let odd = [
            '"', '\\', '\n', '\u{1}', '\u{1f}', 'é', '中', '😀', '\u{2028}', '\u{7f}', ' ',
        ];
        // Past 32 bytes, so every way `copy_short` copies is taken.
        for len in 0..=70usize {
            for at in 0..len.max(1) {
                for &c in &odd {
                    let text: String = (0..len).map(|i| if i == at { c } else { 'a' }).collect();
                    let mut out = b"prefix,".to_vec();
                    push_str(&mut out, &text);
                    let expected = format!("prefix,{}", serde_json::to_string(&text).unwrap());
                    assert_eq!(String::from_utf8(out).unwrap(), expected, "{text:?}");
                }
            }
        }
    }

    /// The independent oracle: the same object built as a `serde_json::Value`
    /// key by key from docs/SPEC.md section 2, then written by serde.
    fn lead_as_value(lead: &Lead) -> Value {
        let text = |v: &Option<crate::model::Text>| {
            v.as_deref()
                .map_or(Value::Null, |t| Value::String(t.to_owned()))
        };
        let mut object = json!({
            "id": lead.id.as_str(),
            "vendor": lead.vendor.as_str(),
            "agent_id": lead.agent_id.as_str(),
            "kind": lead.kind,
            "created_at": lead.created_at.map(|t| t.format("%Y-%m-%dT%H:%M:%S%.6fZ").to_string()),
            "name": text(&lead.name),
            "email": text(&lead.email),
            "phone": text(&lead.phone),
            "source": text(&lead.source),
            "page_url": text(&lead.page_url),
            "ip_address": text(&lead.ip_address),
            "session_id": text(&lead.session_id),
            "message": text(&lead.message),
            "fields": Value::from(lead.fields.clone()),
        });
        if let Some(raw) = &lead.raw {
            object["raw"] = raw.clone();
        }
        object
    }

    #[test]
    fn lead_json_is_what_serde_writes() {
        let awkward = [
            "plain",
            "",
            "José 王小明 🎉",
            "quote \" and backslash \\",
            "line\nbreak\r\ttab \u{1} \u{1f} \u{7f}",
            "=HYPERLINK(\"x\")",
            "\u{2028}\u{2029}",
        ];
        for (i, text) in awkward.iter().enumerate() {
            let mut lead = Lead::new(Vendor::Robofy, text, (*text).to_owned());
            // The program's own kind, and (odd leads) one the vendor sent,
            // which is escaped like any other string.
            lead.kind = if i % 2 == 0 {
                "appointment".into()
            } else {
                std::borrow::Cow::Owned((*text).to_owned())
            };
            lead.created_at = (i % 2 == 0).then(chrono::Utc::now);
            lead.name = Some((*text).into());
            lead.email = (i % 3 == 0).then(|| (*text).into());
            lead.message = Some(format!("{text}{text}").into());
            lead.fields.insert((*text).to_owned(), Value::from(*text));
            lead.fields.insert("n".to_owned(), Value::from(i));
            if i % 2 == 1 {
                lead.raw = Some(json!({"k": text, "list": [1, null, true]}));
            }
            let mut walked = Vec::new();
            push_object(&mut walked, LEAD_FIELDS, &lead);
            assert_eq!(
                String::from_utf8(walked.clone()).unwrap(),
                serde_json::to_string(&lead_as_value(&lead)).unwrap(),
                "{text:?}"
            );
            let mut generated = Vec::new();
            push_lead(&mut generated, &lead);
            assert_eq!(generated, walked, "{text:?}");
        }
    }

    #[test]
    fn conversation_json_keys_and_messages() {
        let mut c = Conversation::new(Vendor::Chatzuri, "bot", "c\"1".into());
        c.created_at = Some(Utc.with_ymd_and_hms(2025, 1, 15, 10, 30, 0).unwrap());
        c.messages.push(Message {
            role: "user".into(),
            content: Some("hi".into()),
            created_at: None,
        });
        let mut out = Vec::new();
        push_object(&mut out, CONVERSATION_FIELDS, &c);
        let mut generated = Vec::new();
        push_conversation(&mut generated, &c);
        assert_eq!(generated, out);
        assert_eq!(
            String::from_utf8(out).unwrap(),
            r#"{"id":"c\"1","vendor":"chatzuri","agent_id":"bot","created_at":"2025-01-15T10:30:00.000000Z","source":null,"customer":null,"session_id":null,"page_url":null,"messages":[{"role":"user","content":"hi","created_at":null}],"fields":{}}"#
        );
    }
}
