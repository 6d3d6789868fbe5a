//! The fast path for the documented lead page, `{"data": [{...}, ...]}`
//! (Chatbase's, `{"collectedCustomers": [...]}`, is read the same way):
//! each lead is read straight from the body into the model's pieces, with
//! no tree of the whole page (building and dropping that tree was about a
//! third of the client's CPU per lead). It covers exactly the documented
//! shape with the documented key spellings; anything else — another
//! envelope, a key in another case, a repeated key, a lead that is not an
//! object, a body that is not JSON — returns `None`, and the general
//! parser, which is the reference for every mapping rule, handles the page
//! (the tests check both agree, and that no byte changed in a valid page
//! makes them disagree).
//!
//! The body is read by a scanner written for this one shape rather than by
//! serde_json's deserializer: going through serde's visitors for every key
//! and value cost about as much as everything else done per lead. The
//! scanner is as strict as serde_json (it takes only valid JSON) and gives
//! the values serde_json gives; what it does not handle itself (an escaped
//! surrogate, a value nested deeper than the documented shape goes) it
//! leaves to the general parser, and an array or object inside a lead it
//! hands to serde_json, whose `Value` is what the general parser holds.

use serde_json::Value;
use std::borrow::Cow;

use super::assemble_lead;
use crate::model::{Fields, Lead, Text, carries_data, clean_string, trim_text, trimmed_string};
use crate::vendors::{MapContext, Page, Stamp};

/// The envelope's lead lists, in the general parser's order.
const LISTS: [&str; 2] = ["data", "collectedCustomers"];

const KNOWN: [&str; 5] = ["id", "created_at", "name", "email", "phone"];

/// How deep the scanner follows values it skips; deeper ones (far past
/// anything a vendor sends, and short of serde_json's limit of 128) go to
/// the general parser, which decides.
const DEEPEST: usize = 64;

pub(super) fn parse(body: &[u8], ctx: &MapContext) -> Option<Page<Lead>> {
    let body = body.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(body);
    // One UTF-8 check of the whole body (SIMD: std's check was 2.4% of an
    // export); the scanner then only splits it at ASCII bytes, which are
    // always character boundaries.
    let body = simdutf8::basic::from_utf8(body).ok()?;
    let mut scan = Scanner { text: body, at: 0 };
    let records = envelope(&mut scan, ctx)?;
    scan.end()?;
    let returned = records.len();
    Some(Page {
        records,
        returned,
        next_token: None,
        total: None,
    })
}

/// `data` wins over `collectedCustomers`, as in the general parser's
/// `lead_list`; either that is not an array of objects, is repeated or is
/// spelled in another case leaves the fast path.
fn envelope(scan: &mut Scanner<'_>, ctx: &MapContext) -> Option<Vec<Lead>> {
    let mut lists: [Option<Vec<Lead>>; 2] = [None, None];
    if scan.open(b'{', b'}')? {
        loop {
            let key = scan.key()?;
            if let Some(slot) = LISTS.iter().position(|k| *k == key) {
                if lists[slot].is_some() {
                    return None;
                }
                lists[slot] = Some(leads(scan, ctx)?);
            } else if LISTS.iter().any(|k| k.eq_ignore_ascii_case(&key)) {
                return None;
            } else {
                scan.skip_value(1)?;
            }
            if !scan.more(b'}')? {
                break;
            }
        }
    }
    let [data, customers] = lists;
    data.or(customers)
}

fn leads(scan: &mut Scanner<'_>, ctx: &MapContext) -> Option<Vec<Lead>> {
    let mut leads = Vec::with_capacity(100);
    let mut layout = Vec::new();
    // Leads in a page have the same keys: each lead's `fields` is made as
    // big as the one before's at once (growing it from empty went through
    // the vector's slower growth path on every lead).
    let mut fields_before = 0;
    if scan.open(b'[', b']')? {
        loop {
            lead(scan, &mut layout, ctx, &mut leads, &mut fields_before)?;
            if !scan.more(b']')? {
                break;
            }
        }
    }
    Some(leads)
}

/// Where a lead's key goes: one of `KNOWN`, or `fields`.
#[derive(Debug, Clone, Copy)]
enum Slot {
    Known(usize),
    Field,
}

impl Slot {
    /// `None` for a known key in another case, which leaves the fast path.
    fn of(key: &str) -> Option<Slot> {
        match KNOWN.iter().position(|k| *k == key) {
            Some(known) => Some(Slot::Known(known)),
            None if KNOWN.iter().any(|k| k.eq_ignore_ascii_case(key)) => None,
            None => Some(Slot::Field),
        }
    }
}

/// The keys of the leads before, in order, with their slots. Leads in a
/// page share one layout, so the key at each position is first compared
/// with the one there before: a match is neither scanned as a string nor
/// looked up.
type Layout<'a> = Vec<(&'a str, Slot)>;

/// Reads one lead onto the end of `leads` (built in place there: returned,
/// the record was copied on its way into the vector).
fn lead<'a>(
    scan: &mut Scanner<'a>,
    layout: &mut Layout<'a>,
    ctx: &MapContext,
    leads: &mut Vec<Lead>,
    fields_before: &mut usize,
) -> Option<()> {
    let mut known: [Option<Known<'a>>; 5] = Default::default();
    let mut fields = Fields::with_capacity(*fields_before);
    if scan.open(b'{', b'}')? {
        for position in 0.. {
            let (key, slot) = match layout.get(position) {
                Some(&(key, slot)) if scan.exact_key(key)? => (Cow::Borrowed(key), slot),
                _ => {
                    let key = scan.key()?;
                    let slot = Slot::of(&key)?;
                    layout.truncate(position);
                    if let Cow::Borrowed(key) = key
                        && layout.len() == position
                    {
                        layout.push((key, slot));
                    }
                    (key, slot)
                }
            };
            let value = scan.value()?;
            match slot {
                Slot::Known(at) => {
                    if known[at].is_some() {
                        return None;
                    }
                    known[at] = Some(value);
                }
                Slot::Field => {
                    if fields.contains_key(&key) {
                        return None;
                    }
                    if let Some(value) = value.into_field() {
                        fields.push_new(Text::from(key), value);
                    }
                }
            }
            if !scan.more(b'}')? {
                break;
            }
        }
    }
    *fields_before = fields.len();
    let [id, created_at, name, email, phone] = known;
    let created = created_at.as_ref().map_or(Stamp::Absent, Known::stamp);
    leads.push(assemble_lead(
        id.and_then(Known::into_model),
        created,
        || created_at.and_then(Known::into_model).map(String::from),
        [name, email, phone].map(|text| text.and_then(Known::into_model)),
        fields,
        ctx,
    ));
    Some(())
}

/// `a == b` for a key: up to 32 bytes as two overlapping chunks. A call to
/// `memcmp` for every key of every lead (seven a Chatzuri lead) was 2% of
/// an export's instructions; inline, the 20k Chatzuri export went from
/// 127.43M to 127.02M.
#[inline]
fn same_short(a: &[u8], b: &[u8]) -> bool {
    fn ends<const N: usize>(a: &[u8], b: &[u8]) -> bool {
        a.first_chunk::<N>() == b.first_chunk::<N>() && a.last_chunk::<N>() == b.last_chunk::<N>()
    }
    if a.len() != b.len() {
        return false;
    }
    match a.len() {
        0..4 => a.iter().zip(b).all(|(x, y)| x == y),
        4..8 => ends::<4>(a, b),
        8..=16 => ends::<8>(a, b),
        17..=32 => ends::<16>(a, b),
        _ => a == b,
    }
}

/// A cursor over the body. Every method skips the whitespace before its
/// token and returns `None` for anything that is not valid JSON there.
struct Scanner<'a> {
    text: &'a str,
    at: usize,
}

impl<'a> Scanner<'a> {
    fn bytes(&self) -> &'a [u8] {
        self.text.as_bytes()
    }

    fn skip_space(&mut self) {
        let bytes = self.bytes();
        while let Some(b' ' | b'\n' | b'\r' | b'\t') = bytes.get(self.at) {
            self.at += 1;
        }
    }

    fn peek(&mut self) -> Option<u8> {
        self.skip_space();
        self.bytes().get(self.at).copied()
    }

    fn eat(&mut self, byte: u8) -> Option<()> {
        if self.bytes().get(self.at) == Some(&byte) {
            self.at += 1;
            return Some(());
        }
        (self.peek()? == byte).then(|| self.at += 1)
    }

    /// Opens an array or object; whether it has a first member (`false`
    /// for `[]` or `{}`, which are then closed).
    fn open(&mut self, open: u8, close: u8) -> Option<bool> {
        self.eat(open)?;
        if self.peek()? == close {
            self.at += 1;
            return Some(false);
        }
        Some(true)
    }

    /// After a member: `true` for the comma before another, `false` for the
    /// closing bracket (which is consumed).
    fn more(&mut self, close: u8) -> Option<bool> {
        // Compact JSON has the comma or bracket right after the value.
        let next = match self.bytes().get(self.at) {
            Some(&byte) if byte > b' ' => byte,
            _ => self.peek()?,
        };
        match next {
            b',' => {
                self.at += 1;
                Some(true)
            }
            byte if byte == close => {
                self.at += 1;
                Some(false)
            }
            _ => None,
        }
    }

    fn end(&mut self) -> Option<()> {
        self.skip_space();
        (self.at == self.text.len()).then_some(())
    }

    /// An object's key and the colon after it.
    fn key(&mut self) -> Option<Cow<'a, str>> {
        let key = self.string()?;
        self.eat(b':')?;
        Some(key)
    }

    /// Whether the next key is spelled exactly `key` (a key read before,
    /// which has no escapes); if so, it and its colon are consumed.
    fn exact_key(&mut self, key: &str) -> Option<bool> {
        self.skip_space();
        let bytes = self.bytes();
        let end = self.at + 1 + key.len();
        let matches = bytes.get(self.at) == Some(&b'"')
            && bytes
                .get(self.at + 1..end)
                .is_some_and(|spelled| same_short(spelled, key.as_bytes()))
            && bytes.get(end) == Some(&b'"');
        if matches {
            self.at = end + 1;
            self.eat(b':')?;
        }
        Some(matches)
    }

    /// A string, borrowed from the body when it has no escapes.
    fn string(&mut self) -> Option<Cow<'a, str>> {
        self.eat(b'"')?;
        self.string_rest()
    }

    /// A string whose opening quote was just passed.
    fn string_rest(&mut self) -> Option<Cow<'a, str>> {
        let start = self.at;
        let stop = self.skip_to_stop()?;
        if stop == b'"' {
            let text = &self.text[start..self.at];
            self.at += 1;
            return Some(Cow::Borrowed(text));
        }
        let mut owned = String::with_capacity(self.at - start + 16);
        owned.push_str(&self.text[start..self.at]);
        loop {
            match self.bytes()[self.at] {
                b'"' => {
                    self.at += 1;
                    return Some(Cow::Owned(owned));
                }
                b'\\' => {
                    self.at += 1;
                    owned.push(self.escape()?);
                }
                _ => return None,
            }
            let from = self.at;
            self.skip_to_stop()?;
            owned.push_str(&self.text[from..self.at]);
        }
    }

    /// Moves to the next `"`, `\` or control character (which JSON does not
    /// allow in a string) and returns it, sixteen bytes at a time (on
    /// x86_64), then eight.
    fn skip_to_stop(&mut self) -> Option<u8> {
        let bytes = self.bytes();
        #[cfg(target_arch = "x86_64")]
        while let Some(block) = bytes.get(self.at..self.at + crate::output::json::BLOCK) {
            let stops = crate::output::json::escaped_in_block(block);
            if stops != 0 {
                self.at += stops.trailing_zeros() as usize;
                return Some(bytes[self.at]);
            }
            self.at += crate::output::json::BLOCK;
        }
        while let Some(chunk) = bytes.get(self.at..self.at + 8) {
            let mut word = [0u8; 8];
            word.copy_from_slice(chunk);
            let stops = crate::output::json::escaped_bytes(u64::from_le_bytes(word));
            if stops != 0 {
                self.at += stops.trailing_zeros() as usize / 8;
                return Some(bytes[self.at]);
            }
            self.at += 8;
        }
        while let Some(&byte) = bytes.get(self.at) {
            if byte == b'"' || byte == b'\\' || byte < 0x20 {
                return Some(byte);
            }
            self.at += 1;
        }
        None
    }

    /// The character an escape after `\` stands for. An escaped surrogate
    /// (half of a character beyond the BMP, or a lone one, which
    /// serde_json rejects) is the general parser's.
    fn escape(&mut self) -> Option<char> {
        let byte = *self.bytes().get(self.at)?;
        self.at += 1;
        Some(match byte {
            b'"' => '"',
            b'\\' => '\\',
            b'/' => '/',
            b'b' => '\u{8}',
            b'f' => '\u{c}',
            b'n' => '\n',
            b'r' => '\r',
            b't' => '\t',
            b'u' => {
                let hex = self.text.get(self.at..self.at + 4)?;
                if !hex.bytes().all(|b| b.is_ascii_hexdigit()) {
                    return None;
                }
                self.at += 4;
                char::from_u32(u32::from_str_radix(hex, 16).ok()?)?
            }
            _ => return None,
        })
    }

    /// A number, as the exact text serde_json's `arbitrary_precision` keeps:
    /// the body's, except that an exponent is written `e` with its sign.
    fn number(&mut self) -> Option<Cow<'a, str>> {
        self.skip_space();
        let bytes = self.bytes();
        let start = self.at;
        let digits = |at: &mut usize| {
            let from = *at;
            while bytes.get(*at).is_some_and(u8::is_ascii_digit) {
                *at += 1;
            }
            *at > from
        };
        let mut at = start;
        if bytes.get(at) == Some(&b'-') {
            at += 1;
        }
        match bytes.get(at) {
            Some(b'0') => at += 1,
            Some(b'1'..=b'9') => {
                digits(&mut at);
            }
            _ => return None,
        }
        if bytes.get(at) == Some(&b'.') {
            at += 1;
            if !digits(&mut at) {
                return None;
            }
        }
        let mantissa = &self.text[start..at];
        let text = if let Some(b'e' | b'E') = bytes.get(at) {
            at += 1;
            let sign = match bytes.get(at) {
                Some(&sign @ (b'+' | b'-')) => {
                    at += 1;
                    sign as char
                }
                _ => '+',
            };
            let from = at;
            if !digits(&mut at) {
                return None;
            }
            Cow::Owned(format!("{mantissa}e{sign}{}", &self.text[from..at]))
        } else {
            Cow::Borrowed(mantissa)
        };
        // A digit right after `0` ("01") is not JSON.
        if bytes.get(at).is_some_and(u8::is_ascii_digit) {
            return None;
        }
        self.at = at;
        Some(text)
    }

    fn literal(&mut self, word: &str) -> Option<()> {
        self.skip_space();
        let rest = self.text.get(self.at..)?;
        rest.starts_with(word).then(|| self.at += word.len())
    }

    /// A value inside a lead, as serde_json hands it to `Known`.
    fn value(&mut self) -> Option<Known<'a>> {
        Some(match self.peek()? {
            b'"' => {
                self.at += 1;
                Known::Text(self.string_rest()?)
            }
            b'-' | b'0'..=b'9' => Known::Number(self.number()?),
            b'n' => {
                self.literal("null")?;
                Known::Null
            }
            b't' => {
                self.literal("true")?;
                Known::Bool(true)
            }
            b'f' => {
                self.literal("false")?;
                Known::Bool(false)
            }
            b'[' | b'{' => {
                // Rare in a lead: serde_json builds the value, exactly as
                // the general parser's tree holds it.
                let start = self.at;
                self.skip_value(3)?;
                Known::Nested(Box::new(
                    serde_json::from_str(&self.text[start..self.at]).ok()?,
                ))
            }
            _ => return None,
        })
    }

    /// Checks and passes over one value of any kind, `depth` containers in.
    fn skip_value(&mut self, depth: usize) -> Option<()> {
        match self.peek()? {
            b'"' => {
                self.string()?;
            }
            b'-' | b'0'..=b'9' => {
                self.number()?;
            }
            b'n' => self.literal("null")?,
            b't' => self.literal("true")?,
            b'f' => self.literal("false")?,
            b'[' if depth < DEEPEST => {
                if self.open(b'[', b']')? {
                    loop {
                        self.skip_value(depth + 1)?;
                        if !self.more(b']')? {
                            break;
                        }
                    }
                }
            }
            b'{' if depth < DEEPEST => {
                if self.open(b'{', b'}')? {
                    loop {
                        self.key()?;
                        self.skip_value(depth + 1)?;
                        if !self.more(b'}')? {
                            break;
                        }
                    }
                }
            }
            _ => return None,
        }
        Some(())
    }
}

/// A mapped field's value: text borrowed from the body when it can be (the
/// common case, one allocation for the model string), anything else as a
/// value for the general rules.
enum Known<'de> {
    Text(Cow<'de, str>),
    /// A number, as the text `arbitrary_precision` keeps (`Scanner::number`,
    /// borrowed unless it has an exponent): an id, the usual number, is
    /// kept as text, with no `Value` built and formatted back.
    Number(Cow<'de, str>),
    Null,
    Bool(bool),
    /// An array or object, boxed: `Known` stays the size of a `Cow`, and
    /// a lead's five are moved about on every lead (a `Value` in place made
    /// each one 72 bytes).
    Nested(Box<Value>),
}

impl Known<'_> {
    /// The model string, by the same rules as `clean_string` on a value
    /// that carries data: trimmed, empty is `None`. Text borrowed from the
    /// body is copied straight into the model's string.
    fn into_model(self) -> Option<Text> {
        match self {
            Known::Text(Cow::Borrowed(text)) => {
                let text = trim_text(text);
                (!text.is_empty()).then(|| Text::new(text))
            }
            Known::Text(owned) => {
                (!trim_text(&owned).is_empty()).then(|| Text::from(trimmed_string(owned)))
            }
            Known::Number(text) => Some(Text::new(&text)),
            other => Some(other.into_value())
                .filter(carries_data)
                .and_then(|v| clean_string(Some(&v)))
                .map(Text::from),
        }
    }

    /// The value for `fields`, by the rules of `Picker::rest`: kept only
    /// when it carries data, a string trimmed.
    fn into_field(self) -> Option<Value> {
        match self {
            Known::Text(text) => {
                (!trim_text(&text).is_empty()).then(|| Value::String(trimmed_string(text)))
            }
            Known::Number(text) => Some(number_value(&text)),
            other => Some(other.into_value()).filter(carries_data),
        }
    }

    /// The value read as a creation time, as `Stamp::of` reads it.
    fn stamp(&self) -> Stamp {
        match self {
            Known::Text(text) => Stamp::of_text(text),
            Known::Number(text) => Stamp::of(Some(&number_value(text))),
            Known::Null => Stamp::of(Some(&Value::Null)),
            Known::Bool(b) => Stamp::of(Some(&Value::Bool(*b))),
            Known::Nested(value) => Stamp::of(Some(value)),
        }
    }

    /// The value serde_json builds for what was read.
    fn into_value(self) -> Value {
        match self {
            Known::Text(text) => Value::String(text.into_owned()),
            Known::Number(text) => number_value(&text),
            Known::Null => Value::Null,
            Known::Bool(b) => Value::Bool(b),
            Known::Nested(value) => *value,
        }
    }
}

/// The value serde_json builds for a number's exact text; the text came
/// from its own number scanner, so it always parses.
fn number_value(text: &str) -> Value {
    text.parse::<serde_json::Number>()
        .map_or_else(|_| Value::String(text.to_owned()), Value::Number)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::vendors::chatzuri::parse_leads;

    #[test]
    fn same_short_agrees_with_slice_equality_at_every_length() {
        let base: Vec<u8> = (0u8..40).map(|n| b'a' + n % 26).collect();
        for len in 0..=base.len() {
            let a = &base[..len];
            assert!(same_short(a, a), "{len}");
            for at in 0..len {
                let mut b = a.to_vec();
                b[at] ^= 0x20;
                assert!(!same_short(a, &b), "{len} differing at {at}");
            }
            if len > 0 {
                assert!(!same_short(a, &base[..len - 1]), "{len} and one shorter");
            }
        }
    }

    fn ctx() -> MapContext {
        MapContext {
            vendor: crate::model::Vendor::Chatzuri,
            agent_id: "agent-7".to_owned(),
            keep_raw: false,
        }
    }

    /// The general parser, forced: `keep_raw` skips the fast path; the raw
    /// copy is then dropped for the comparison.
    fn general(body: &[u8]) -> Page<Lead> {
        general_for(body, &ctx())
    }

    fn general_for(body: &[u8], ctx: &MapContext) -> Page<Lead> {
        general_or_none_for(body, ctx).expect("the general parser takes it")
    }

    /// The general parser's reading of `body`, `None` where it rejects it.
    fn general_or_none(body: &[u8]) -> Option<Page<Lead>> {
        general_or_none_for(body, &ctx())
    }

    fn general_or_none_for(body: &[u8], ctx: &MapContext) -> Option<Page<Lead>> {
        let ctx = MapContext {
            keep_raw: true,
            ..ctx.clone()
        };
        let mut page = parse_leads(body, &ctx).ok()?;
        for lead in &mut page.records {
            lead.raw = None;
        }
        Some(page)
    }

    #[test]
    fn agrees_with_the_general_parser_on_every_fixture_it_takes() {
        let chatbase = MapContext {
            vendor: crate::model::Vendor::Chatbase,
            ..ctx()
        };
        for (dir, ctx, at_least) in [("chatzuri", ctx(), 4), ("chatbase", chatbase, 1)] {
            let dir = format!("{}/fixtures/{dir}", env!("CARGO_MANIFEST_DIR"));
            let mut taken = 0;
            for entry in std::fs::read_dir(&dir).unwrap() {
                let path = entry.unwrap().path();
                let name = path.file_name().unwrap().to_string_lossy().into_owned();
                if !name.starts_with("leads") || !name.ends_with(".json") {
                    continue;
                }
                let body = std::fs::read(&path).unwrap();
                if let Some(fast) = parse(&body, &ctx) {
                    assert_eq!(fast, general_for(&body, &ctx), "{name}");
                    taken += 1;
                }
            }
            assert!(
                taken >= at_least,
                "the fast path took only {taken} fixtures of {dir}"
            );
        }
    }

    /// Chatbase's pages went through the general parser after the fast
    /// path had skipped their whole list: both passes' cost for each page.
    #[test]
    fn chatbase_collected_customers_page_takes_the_fast_path() {
        for body in [
            &br#"{"collectedCustomers": [{"id": "lead_1", "name": " A ", "account_id": "acc"}]}"#[..],
            br#"{"collectedCustomers": [{"id": 1}], "data": [{"id": 2}]}"#,
            br#"{"data": [{"id": 2}], "collectedCustomers": [{"id": 1}], "total": 1}"#,
        ] {
            let fast = parse(body, &ctx()).expect("taken");
            assert_eq!(fast, general(body), "{}", String::from_utf8_lossy(body));
        }
        let data_wins = parse(
            br#"{"collectedCustomers": [{"id": 1}], "data": [{"id": 2}]}"#,
            &ctx(),
        );
        assert_eq!(data_wins.unwrap().records[0].id, "2");
        // `data` that is not a list leaves the choice to the general parser.
        let body = br#"{"data": null, "collectedCustomers": [{"id": 1}]}"#;
        assert!(parse(body, &ctx()).is_none());
        assert_eq!(general(body).records[0].id, "1");
    }

    #[test]
    fn agrees_on_awkward_values() {
        let body = br#"{"data": [
            {"id": 12, "created_at": "2025-01-15T10:30:00.250+02:00", "name": "  Zo\u00eb \"Z\" ,x ", "email": "", "phone": null,
             "chatbot_id": "c1", "chatbot_owner_user_id": "  u1 ", "score": 3, "tags": [], "meta": {"a": 1}, "empty": ""},
            {"created_at": "not a time", "name": "No Id", "email": "a@b.c", "phone": "+1 415 555 0100"},
            {"id": "lead_9", "created_at": 1736937000, "name": ["odd"], "email": {"x": 1}},
            {"id": 123456789012345678901234567890, "created_at": -5, "score": 1.50, "n": -7, "big": 18446744073709551616},
            {"id": -0, "created_at": 1736937000.25, "name": 7, "nested": {"$k": 1, "$k": 2}},
            {}
        ], "total": 6}"#;
        let fast = parse(body, &ctx()).expect("documented shape");
        assert_eq!(fast, general(body));
        assert_eq!(fast.records.len(), 6);
        assert_eq!(fast.records[0].name.as_deref(), Some("Zoë \"Z\" ,x"));
        assert_eq!(fast.records[0].id, "12");
        assert!(fast.records[1].id.starts_with("cz_"));
        assert_eq!(fast.records[3].id, "123456789012345678901234567890");
        assert_eq!(fast.records[4].id, "-0");
    }

    #[test]
    fn other_shapes_go_to_the_general_parser() {
        for body in [
            &br#"[{"id": 1}]"#[..],
            br#"{"collectedCustomers": {"data": [{"id": 1}]}}"#,
            br#"{"CollectedCustomers": [{"id": 1}]}"#,
            br#"{"collectedCustomers": [{"id": 1}], "collectedCustomers": []}"#,
            br#"{"Data": [{"id": 1}]}"#,
            br#"{"data": [{"ID": 1, "id": 2}]}"#,
            br#"{"data": [{"id": 1, "id": 2}]}"#,
            br#"{"data": [{"id": 1, "x": 1, "x": 2}]}"#,
            br#"{"data": [1]}"#,
            br#"{"data": null}"#,
            br#"{"data": [{"id": 1}]} trailing"#,
            b"<html>",
        ] {
            assert!(
                parse(body, &ctx()).is_none(),
                "{}",
                String::from_utf8_lossy(body)
            );
        }
    }

    /// Escapes, numbers in every JSON form, literals, nested values and
    /// whitespace between every token: the scanner reads them itself, as
    /// serde_json does.
    #[test]
    fn escapes_numbers_and_nested_values_agree_with_the_general_parser() {
        let body = br#" { "meta" : { "next" : [ 1 , -2.5e3 , "x\"y" , { } , [ ] , null , true , false ] } ,
            "data" : [
              { "id" : "a\"b\\c\/d\b\f\n\r\t\u00e9\u0041\u4e2d" , "name" : " Zo\u00EB " , "email" : "e@x.io" ,
                "phone" : 0 , "created_at" : "2025-01-15T10:30:00Z" , "score" : -0 , "ratio" : 1.50 ,
                "big" : 1E5 , "small" : 2e-3 , "plus" : 3E+2 , "n" : -7 , "huge" : 123456789012345678901234567890 ,
                "obj" : { "a" : [ 1 , { "b" : null } ] , "$k" : "v" } , "list" : [ "x" ] , "tok" : { "$serde_json::private::Number" : "5" } , "t" : true , "f" : false , "z" : null ,
                "ctl" : "tab\there" , "u0" : "\u0000" , "empty" : "" , "blank" : "   " } ,
              { } , {"id":7}
            ] , "total" : 3 }
        "#;
        let fast = parse(body, &ctx()).expect("the documented shape");
        assert_eq!(Some(&fast), general_or_none(body).as_ref());
        let first = &fast.records[0];
        assert_eq!(first.id, "a\"b\\c/d\u{8}\u{c}\n\r\té\u{41}中");
        assert_eq!(first.name.as_deref(), Some("Zoë"));
        assert_eq!(first.fields.get("big"), Some(&number_value("1e+5")));
        assert_eq!(fast.records[2].id, "7");
    }

    /// What serde_json rejects the scanner rejects too, so the general
    /// parser reports the body, and an escaped surrogate is left to it.
    #[test]
    fn invalid_json_never_takes_the_fast_path() {
        for body in [
            &b"{\"data\": [{\"id\": \"a\x01b\"}]}"[..],
            br#"{"data": [{"id": "a\xb"}]}"#,
            br#"{"data": [{"id": "\u12"}]}"#,
            br#"{"data": [{"id": "\u12G4"}]}"#,
            br#"{"data": [{"id": "\ud800"}]}"#,
            br#"{"data": [{"id": 01}]}"#,
            br#"{"data": [{"id": 1.}]}"#,
            br#"{"data": [{"id": -}]}"#,
            br#"{"data": [{"id": 1e}]}"#,
            br#"{"data": [{"id": 1e+}]}"#,
            br#"{"data": [{"id": +1}]}"#,
            br#"{"data": [{"id": .5}]}"#,
            br#"{"data": [{"id": 1,}]}"#,
            br#"{"data": [{"id": 1},]}"#,
            br#"{"data": [{"id": 1}],}"#,
            br#"{"data": [{"id" 1}]}"#,
            br#"{"data": [{"id": "1}]}"#,
            br#"{"data": [{"id": nul}]}"#,
            br#"{"data": [{"id": True}]}"#,
            br#"{"data": [{"id": 1} {"id": 2}]}"#,
            br#"{"data": [{"id": [1 2]}]}"#,
            br#"{"data": [{"x": {"a" 1}}]}"#,
            br#"{"data": [{"id": 1}], "meta": [1,]}"#,
            br#"{"data": [{"id": 1}], "meta": {"a": 01}}"#,
            br#"{"data": [{"id": 1}], "meta": "\q"}"#,
            br#"{"data": [{"id": 1}]"#,
            b"{\"data\": [{\"id\": 1}]}\x00",
            b"{\"data\": [{\"id\": 1}]}\x0c",
            br#"{"data": [{"id": 1}]}}"#,
            b"",
        ] {
            let shown = String::from_utf8_lossy(body);
            assert!(parse(body, &ctx()).is_none(), "{shown}");
        }
        // Far deeper than any vendor nests, and past serde_json's limit.
        let deep = format!(
            r#"{{"meta": {}1{}, "data": []}}"#,
            "[".repeat(200),
            "]".repeat(200)
        );
        assert!(parse(deep.as_bytes(), &ctx()).is_none());
        assert!(general_or_none(deep.as_bytes()).is_none());
    }

    /// A string's end, escape or control character at every position of
    /// the scan's blocks and words, in names of up to 40 bytes: the fast
    /// path reads what the general parser reads, or leaves the page to it.
    #[test]
    fn every_stop_at_every_position_of_a_string_reads_as_the_general_parser_reads() {
        for len in 0..=40 {
            for at in 0..=len {
                for stop in [&br#"\""#[..], br"\\", br"\n", br"\u00e9", b"\x01", b""] {
                    let mut name = vec![b'a'; len];
                    name.splice(at..at, stop.iter().copied());
                    let mut body = br#"{"data":[{"id":1,"name":""#.to_vec();
                    body.extend_from_slice(&name);
                    body.extend_from_slice(br#"","email":"e@x.co"}]}"#);
                    let shown = String::from_utf8_lossy(&body).into_owned();
                    match parse(&body, &ctx()) {
                        Some(fast) => assert_eq!(Some(fast), general_or_none(&body), "{shown}"),
                        None => assert!(stop == b"\x01", "left to the general parser: {shown}"),
                    }
                }
            }
        }
    }

    /// Every single-byte change, deletion and insertion in a page: wherever
    /// the fast path takes the result, the general parser reads the same.
    #[test]
    fn no_changed_byte_makes_the_two_parsers_disagree() {
        let body: &[u8] = br#"{"data":[{"id":10001,"created_at":"2025-01-01T00:11:41Z","x":"u\"v","chatbot_id":"demo","phone":"","email":"j@ex.co","name":"Jos\u00e9 ","n":[1,{"a":-2.5e3}]},{"id":"b","t":true,"f":null}],"total":2}"#;
        let changes = [
            b'"', b'\\', b',', b':', b'{', b'}', b'[', b']', b' ', b'0', b'1', b'e', b'-', b'.',
            b'u', b'n', 0x01, b'a',
        ];
        let mut taken = 0;
        let mut check = |changed: Vec<u8>| {
            if let Some(fast) = parse(&changed, &ctx()) {
                taken += 1;
                assert_eq!(
                    Some(fast),
                    general_or_none(&changed),
                    "{}",
                    String::from_utf8_lossy(&changed)
                );
            }
        };
        for at in 0..body.len() {
            for &byte in &changes {
                let mut changed = body.to_vec();
                changed[at] = byte;
                check(changed.clone());
                changed[at] = body[at];
                changed.insert(at, byte);
                check(changed);
            }
            let mut changed = body.to_vec();
            changed.remove(at);
            check(changed);
        }
        assert!(
            taken > 1000,
            "the fast path took only {taken} changed pages"
        );
    }
}
