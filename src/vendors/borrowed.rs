//! Reading records from borrowed JSON (`RawValue` slices of the body) by
//! the rules of `serde_json::Value` (Robofy's typed parse path).

use super::*;

// ---------------------------------------------------------------------------
// Reading records from borrowed JSON (`RawValue` slices of the body) by the
// same rules as from a `serde_json::Value`: strings are borrowed and copied
// only into the model, and only the rare value that is neither a string nor
// null is built as a `Value` (which also normalizes numbers exactly as a
// whole-body parse does, `arbitrary_precision` included).

use std::borrow::Cow;

use serde_json::value::RawValue;
use serde_json::{Map, Value};

/// The key under which serde_json (`arbitrary_precision`) hands a number to
/// a visitor's `visit_map`: a "map" whose first key is this is a number.
pub(crate) const NUMBER_TOKEN: &str = "$serde_json::private::Number";

/// The text of a raw JSON string, borrowed when it has no escapes; `None`
/// when the value is not a string.
pub(crate) fn raw_str(raw: &RawValue) -> Option<Cow<'_, str>> {
    let text = raw.get();
    let inner = text.strip_prefix('"')?.strip_suffix('"')?;
    if !inner.contains('\\') {
        return Some(Cow::Borrowed(inner));
    }
    serde_json::from_str::<String>(text).ok().map(Cow::Owned)
}

/// The value serde_json would have built for `raw`.
pub(crate) fn raw_value(raw: &RawValue) -> Result<Value, serde_json::Error> {
    serde_json::from_str(raw.get())
}

/// `carries_data` of the value `raw` holds, without building it.
pub(crate) fn raw_carries_data(raw: &RawValue) -> bool {
    let text = raw.get();
    match text.as_bytes().first() {
        Some(b'n') | None => false,
        Some(b'"') => raw_str(raw).is_some_and(|s| !trim_text(&s).is_empty()),
        // Only JSON whitespace can stand between the brackets of an empty one.
        Some(b'[' | b'{') => !text[1..text.len() - 1].trim().is_empty(),
        Some(_) => true,
    }
}

/// `clean_string` of the value `raw` holds: a string trimmed (empty is
/// `None`), null `None`, anything else its compact JSON.
pub(crate) fn raw_clean_string(raw: &RawValue) -> Result<Option<String>, serde_json::Error> {
    raw_clean_str(raw).map(|text| text.map(Cow::into_owned))
}

/// `raw_clean_string`, borrowed from the body where the text is there as is.
pub(crate) fn raw_clean_str(raw: &RawValue) -> Result<Option<Cow<'_, str>>, serde_json::Error> {
    if let Some(text) = raw_str(raw) {
        let trimmed = match text {
            Cow::Borrowed(text) => Cow::Borrowed(trim_text(text)),
            Cow::Owned(text) if trim_text(&text).len() == text.len() => Cow::Owned(text),
            Cow::Owned(text) => Cow::Owned(trim_text(&text).to_owned()),
        };
        return Ok((!trimmed.is_empty()).then_some(trimmed));
    }
    if raw.get() == "null" {
        return Ok(None);
    }
    Ok(clean_string(Some(&raw_value(raw)?)).map(Cow::Owned))
}

/// `trimmed` of the value `raw` holds: a value for `fields`.
pub(crate) fn raw_trimmed(raw: &RawValue) -> Result<Value, serde_json::Error> {
    match raw_str(raw) {
        Some(text) => Ok(Value::String(trim_text(&text).to_owned())),
        None => raw_value(raw),
    }
}

/// A JSON object's members as raw slices, in document order, a repeated
/// name keeping its first place and its last value (what a
/// `serde_json::Value` object holds), with `Picker`'s rules on top: names
/// matched ignoring ASCII case (the exact spelling first), and what was not
/// taken goes to `fields`.
#[derive(Debug, Default)]
pub(crate) struct RawPicker<'a> {
    members: Vec<(Cow<'a, str>, &'a RawValue)>,
    used: Vec<usize>,
}

impl<'a> RawPicker<'a> {
    /// Adds a member as a `Value` object's `insert` would.
    pub(crate) fn insert(&mut self, key: Cow<'a, str>, raw: &'a RawValue) {
        match self.members.iter_mut().find(|(k, _)| *k == key) {
            Some(member) => member.1 = raw,
            None => self.members.push((key, raw)),
        }
    }

    /// The member spelled exactly `name`.
    pub(crate) fn get(&self, name: &str) -> Option<&'a RawValue> {
        self.members
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, raw)| *raw)
    }

    fn find(&self, name: &str) -> Option<usize> {
        let exact = self.members.iter().position(|(k, _)| k == name);
        exact.or_else(|| {
            self.members
                .iter()
                .position(|(k, _)| k.eq_ignore_ascii_case(name))
        })
    }

    /// `Picker::take`: the first of `names` whose value carries data; keys
    /// found empty count as mapped too.
    pub(crate) fn take(&mut self, names: &[&str]) -> Option<&'a RawValue> {
        for name in names {
            if let Some(i) = self.find(name)
                && !self.used.contains(&i)
            {
                self.used.push(i);
                let raw = self.members[i].1;
                if raw_carries_data(raw) {
                    return Some(raw);
                }
            }
        }
        None
    }

    /// `take`, cleaned into a model string.
    pub(crate) fn string(&mut self, names: &[&str]) -> Result<Option<String>, serde_json::Error> {
        self.take(names).map_or(Ok(None), raw_clean_string)
    }

    /// `Picker::rest`, into `fields`: the members not taken that carry
    /// data, top-level strings trimmed.
    pub(crate) fn rest_into(
        &self,
        fields: &mut crate::model::Fields,
    ) -> Result<(), serde_json::Error> {
        for (i, (key, raw)) in self.members.iter().enumerate() {
            if !self.used.contains(&i) && raw_carries_data(raw) {
                fields.insert(key.clone().into_owned(), raw_trimmed(raw)?);
            }
        }
        Ok(())
    }

    /// The whole object as a `Value` (for `--raw`).
    pub(crate) fn to_value(&self) -> Result<Value, serde_json::Error> {
        let mut map = Map::new();
        for (key, raw) in &self.members {
            map.insert(key.clone().into_owned(), raw_value(raw)?);
        }
        Ok(Value::Object(map))
    }
}

impl Stamp {
    /// `of` for a raw JSON value: a string is read without building a
    /// `Value`.
    pub(crate) fn of_raw(raw: Option<&RawValue>) -> Result<Stamp, serde_json::Error> {
        let Some(raw) = raw.filter(|r| raw_carries_data(r)) else {
            return Ok(Stamp::Absent);
        };
        match raw_str(raw) {
            Some(text) => Ok(match crate::time::parse_vendor_timestamp(&text) {
                Some(t) => Stamp::At(t),
                None => Stamp::Unreadable(trim_text(&text).to_owned()),
            }),
            None => Ok(Stamp::of(Some(&raw_value(raw)?))),
        }
    }
}
