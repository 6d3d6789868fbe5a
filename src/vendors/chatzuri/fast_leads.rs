//! The fast path for the documented lead page, `{"data": [{...}, ...]}`
//! (Chatbase's, `{"collectedCustomers": [...]}`, is read the same way):
//! each lead is read straight from the body into the model's pieces, with
//! no tree of the whole page (building and dropping that tree was about a
//! third of the client's CPU per lead). It covers exactly the documented
//! shape with the documented key spellings; anything else — another
//! envelope, a key in another case, a repeated key, a lead that is not an
//! object — returns `None`, and the general parser, which is the reference
//! for every mapping rule, handles the page (the tests check both agree).

use std::borrow::Cow;
use std::fmt;

use serde::de::{self, DeserializeSeed, IgnoredAny, MapAccess, SeqAccess, Visitor};
use serde::{Deserialize, Deserializer};
use serde_json::{Map, Value};

use super::assemble_lead;
use crate::model::{Fields, Lead, carries_data, clean_string, trim_text, trimmed_string};
use crate::vendors::{MapContext, NUMBER_TOKEN, Page, Stamp};

/// The envelope's lead lists, in the general parser's order.
const LISTS: [&str; 2] = ["data", "collectedCustomers"];

const KNOWN: [&str; 5] = ["id", "created_at", "name", "email", "phone"];

pub(super) fn parse(body: &[u8], ctx: &MapContext) -> Option<Page<Lead>> {
    let body = body.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(body);
    // One UTF-8 check of the whole body is cheaper than serde_json's check
    // of every string in it.
    let body = std::str::from_utf8(body).ok()?;
    let mut deserializer = serde_json::Deserializer::from_str(body);
    let records = deserializer.deserialize_map(EnvelopeVisitor { ctx }).ok()?;
    deserializer.end().ok()?;
    let returned = records.len();
    Some(Page {
        records,
        returned,
        next_token: None,
        total: None,
    })
}

/// A key, borrowed from the body when it has no escapes.
struct Key<'de>(Cow<'de, str>);

impl<'de> de::Deserialize<'de> for Key<'de> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct KeyVisitor;
        impl<'de> Visitor<'de> for KeyVisitor {
            type Value = Key<'de>;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a key")
            }
            fn visit_borrowed_str<E: de::Error>(self, v: &'de str) -> Result<Key<'de>, E> {
                Ok(Key(Cow::Borrowed(v)))
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Key<'de>, E> {
                Ok(Key(Cow::Owned(v.to_owned())))
            }
        }
        deserializer.deserialize_str(KeyVisitor)
    }
}

fn fall_back<E: de::Error>() -> E {
    E::custom("not the documented shape; use the general parser")
}

struct EnvelopeVisitor<'c> {
    ctx: &'c MapContext,
}

impl<'de> Visitor<'de> for EnvelopeVisitor<'_> {
    type Value = Vec<Lead>;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("an object with `data`")
    }

    /// `data` wins over `collectedCustomers`, as in the general parser's
    /// `lead_list`; either that is not an array of objects, is repeated or
    /// is spelled in another case leaves the fast path.
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Vec<Lead>, A::Error> {
        let mut lists: [Option<Vec<Lead>>; 2] = [None, None];
        while let Some(key) = map.next_key::<Key<'de>>()? {
            if let Some(slot) = LISTS.iter().position(|k| *k == key.0) {
                if lists[slot].is_some() {
                    return Err(fall_back());
                }
                lists[slot] = Some(map.next_value_seed(LeadsSeed { ctx: self.ctx })?);
            } else if LISTS.iter().any(|k| k.eq_ignore_ascii_case(&key.0)) {
                return Err(fall_back());
            } else {
                map.next_value::<IgnoredAny>()?;
            }
        }
        let [data, customers] = lists;
        data.or(customers).ok_or_else(fall_back)
    }
}

struct LeadsSeed<'c> {
    ctx: &'c MapContext,
}

impl<'de> DeserializeSeed<'de> for LeadsSeed<'_> {
    type Value = Vec<Lead>;

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<Vec<Lead>, D::Error> {
        deserializer.deserialize_seq(self)
    }
}

impl<'de> Visitor<'de> for LeadsSeed<'_> {
    type Value = Vec<Lead>;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("an array of leads")
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Vec<Lead>, A::Error> {
        let mut leads = Vec::with_capacity(seq.size_hint().unwrap_or(100));
        while let Some(lead) = seq.next_element_seed(LeadSeed { ctx: self.ctx })? {
            leads.push(lead);
        }
        Ok(leads)
    }
}

struct LeadSeed<'c> {
    ctx: &'c MapContext,
}

impl<'de> DeserializeSeed<'de> for LeadSeed<'_> {
    type Value = Lead;

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<Lead, D::Error> {
        deserializer.deserialize_map(self)
    }
}

impl<'de> Visitor<'de> for LeadSeed<'_> {
    type Value = Lead;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a lead object")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Lead, A::Error> {
        let mut known: [Option<Known<'de>>; 5] = Default::default();
        let mut fields = Fields::new();
        while let Some(key) = map.next_key::<Key<'de>>()? {
            if let Some(slot) = KNOWN.iter().position(|k| *k == key.0) {
                if known[slot].is_some() {
                    return Err(fall_back());
                }
                known[slot] = Some(map.next_value()?);
            } else if KNOWN.iter().any(|k| k.eq_ignore_ascii_case(&key.0)) {
                return Err(fall_back());
            } else {
                let value: Known<'de> = map.next_value()?;
                if fields.contains_key(key.0.as_ref()) {
                    return Err(fall_back());
                }
                if let Some(value) = value.into_field() {
                    fields.push_new(key.0.into_owned(), value);
                }
            }
        }
        let [id, created_at, name, email, phone] = known;
        let created = created_at.as_ref().map_or(Stamp::Absent, Known::stamp);
        Ok(assemble_lead(
            id.and_then(Known::into_model),
            created,
            || created_at.and_then(Known::into_model),
            [name, email, phone].map(|text| text.and_then(Known::into_model)),
            fields,
            self.ctx,
        ))
    }
}

/// A mapped field's value: text borrowed from the body when it can be (the
/// common case, one allocation for the model string), anything else as a
/// value for the general rules.
enum Known<'de> {
    Text(Cow<'de, str>),
    /// A number, as its exact text (an integer in range comes as one,
    /// anything else as text under `arbitrary_precision`): an id, the
    /// usual number, is kept as text, with no `Value` built and formatted
    /// back.
    Number(String),
    Other(Value),
}

impl Known<'_> {
    /// The model string, by the same rules as `clean_string` on a value
    /// that carries data: trimmed, empty is `None`.
    fn into_model(self) -> Option<String> {
        match self {
            Known::Text(text) => (!trim_text(&text).is_empty()).then(|| trimmed_string(text)),
            Known::Number(text) => Some(text),
            Known::Other(value) => Some(value)
                .filter(carries_data)
                .and_then(|v| clean_string(Some(&v))),
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
            Known::Other(value) => carries_data(&value).then_some(value),
        }
    }

    /// The value read as a creation time, as `Stamp::of` reads it.
    fn stamp(&self) -> Stamp {
        match self {
            Known::Text(text) => Stamp::of_text(text),
            Known::Number(text) => Stamp::of(Some(&number_value(text))),
            Known::Other(value) => Stamp::of(Some(value)),
        }
    }
}

impl<'de> de::Deserialize<'de> for Known<'de> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct KnownVisitor;
        impl<'de> Visitor<'de> for KnownVisitor {
            type Value = Known<'de>;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a value")
            }
            fn visit_borrowed_str<E: de::Error>(self, v: &'de str) -> Result<Known<'de>, E> {
                Ok(Known::Text(Cow::Borrowed(v)))
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Known<'de>, E> {
                Ok(Known::Text(Cow::Owned(v.to_owned())))
            }
            fn visit_string<E: de::Error>(self, v: String) -> Result<Known<'de>, E> {
                Ok(Known::Text(Cow::Owned(v)))
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<Known<'de>, E> {
                Ok(Known::Number(itoa::Buffer::new().format(v).to_owned()))
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<Known<'de>, E> {
                Ok(Known::Number(itoa::Buffer::new().format(v).to_owned()))
            }
            fn visit_f64<E: de::Error>(self, v: f64) -> Result<Known<'de>, E> {
                Ok(Known::Other(Value::from(v)))
            }
            fn visit_bool<E: de::Error>(self, v: bool) -> Result<Known<'de>, E> {
                Ok(Known::Other(Value::Bool(v)))
            }
            fn visit_unit<E: de::Error>(self) -> Result<Known<'de>, E> {
                Ok(Known::Other(Value::Null))
            }
            fn visit_none<E: de::Error>(self) -> Result<Known<'de>, E> {
                Ok(Known::Other(Value::Null))
            }
            fn visit_seq<A: SeqAccess<'de>>(self, seq: A) -> Result<Known<'de>, A::Error> {
                let value = Value::deserialize(de::value::SeqAccessDeserializer::new(seq))?;
                Ok(Known::Other(value))
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Known<'de>, A::Error> {
                let Some(Key(first)) = map.next_key::<Key<'de>>()? else {
                    return Ok(Known::Other(Value::Object(Map::new())));
                };
                if first == NUMBER_TOKEN {
                    return Ok(Known::Number(map.next_value()?));
                }
                // An object: built as `Value`'s own visitor builds it (a
                // repeated key keeps its place and takes the last value).
                let mut object = Map::new();
                object.insert(first.into_owned(), map.next_value()?);
                while let Some((key, value)) = map.next_entry::<String, Value>()? {
                    object.insert(key, value);
                }
                Ok(Known::Other(Value::Object(object)))
            }
        }
        deserializer.deserialize_any(KnownVisitor)
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
        let ctx = MapContext {
            keep_raw: true,
            ..ctx.clone()
        };
        let mut page = parse_leads(body, &ctx).unwrap();
        for lead in &mut page.records {
            lead.raw = None;
        }
        page
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
}
