//! One JSON object read as it arrives, with the elements of one of its
//! array members handed over one at a time: what lets a vendor that does
//! not page (NeoAgent's windows) be parsed in memory bounded by its largest
//! record instead of its body.
//!
//! The scan here only finds where values begin and end (strings, escapes,
//! nesting); every value is then read by serde: each element by the
//! vendor's mapper, every other member here (so a body that is not JSON is
//! refused as it would be by a parse of the whole).

use serde::de::IgnoredAny;

/// Why a body is not the object that was expected.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ScanError {
    /// Not JSON at all, or cut short.
    NotJson(String),
    /// JSON, but not an object.
    NotObject,
}

/// A member of the object, in document order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Member {
    pub name: String,
    pub value: MemberValue,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MemberValue {
    /// The array whose elements were handed over.
    Streamed,
    /// The value's JSON text, kept because its name is wanted.
    Kept(Vec<u8>),
    /// A value nobody asked for (checked, not kept).
    Skipped,
}

/// Where the scan is in the object.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum At {
    Start,
    /// After `{` (`first`) or after a member's `,`.
    BeforeKey {
        first: bool,
    },
    Key,
    Colon,
    BeforeValue,
    Value,
    AfterValue,
    BeforeElement {
        first: bool,
    },
    Element,
    AfterElement,
    End,
}

/// How far a value that began at `start` has been scanned.
#[derive(Debug, Clone, Copy, Default)]
struct Span {
    start: usize,
    depth: u32,
    in_string: bool,
    escaped: bool,
    /// 0: composite (`{` or `[`), b'"': a string, else a scalar.
    kind: u8,
}

/// Feeds an object's bytes in any pieces; the elements of the first array
/// member named `list` (ignoring ASCII case) go to the caller, every
/// member named in `keep` is kept.
pub struct ObjectStream {
    list: &'static str,
    keep: &'static [&'static str],
    buf: Vec<u8>,
    pos: usize,
    at: At,
    span: Span,
    key: String,
    members: Vec<Member>,
    streaming: bool,
    elements: usize,
    bom_checked: bool,
}

const BOM: &[u8] = b"\xEF\xBB\xBF";

fn is_space(b: u8) -> bool {
    matches!(b, b' ' | b'\t' | b'\n' | b'\r')
}

fn not_json(what: &str) -> ScanError {
    ScanError::NotJson(what.to_owned())
}

impl ObjectStream {
    pub fn new(list: &'static str, keep: &'static [&'static str]) -> ObjectStream {
        ObjectStream {
            list,
            keep,
            buf: Vec::new(),
            pos: 0,
            at: At::Start,
            span: Span::default(),
            key: String::new(),
            members: Vec::new(),
            streaming: false,
            elements: 0,
            bom_checked: false,
        }
    }

    /// The members seen, in order.
    pub fn members(&self) -> &[Member] {
        &self.members
    }

    /// How many elements were handed over.
    pub fn elements(&self) -> usize {
        self.elements
    }

    /// The next part of the body; each element it completes goes to
    /// `element` with its index.
    pub fn feed<E>(
        &mut self,
        chunk: &[u8],
        element: &mut impl FnMut(&[u8], usize) -> Result<(), E>,
    ) -> Result<(), Fed<E>> {
        self.buf.extend_from_slice(chunk);
        self.scan(false, element)?;
        self.compact();
        Ok(())
    }

    /// The body ended: it must have been one whole object.
    pub fn finish<E>(
        &mut self,
        element: &mut impl FnMut(&[u8], usize) -> Result<(), E>,
    ) -> Result<(), Fed<E>> {
        self.scan(true, element)?;
        if self.at != At::End {
            let what = if self.at == At::Start {
                "an empty body"
            } else {
                "EOF while parsing an object"
            };
            return Err(Fed::Scan(not_json(what)));
        }
        Ok(())
    }

    /// Drops the bytes no value still needs.
    fn compact(&mut self) {
        let needed = match self.at {
            At::Key | At::Value | At::Element => self.span.start,
            _ => self.pos,
        };
        if needed > 0 {
            self.buf.drain(..needed);
            self.pos -= needed;
            self.span.start -= needed.min(self.span.start);
        }
    }

    fn begin_span(&mut self, kind: u8) {
        self.span = Span {
            start: self.pos,
            depth: 0,
            in_string: false,
            escaped: false,
            kind,
        };
    }

    /// Scans the span begun at `self.span.start` on from `self.pos`: its
    /// end (exclusive) once the bytes so far hold all of it.
    fn scan_span(&mut self, at_end: bool) -> Option<usize> {
        let buf = &self.buf;
        let span = &mut self.span;
        let mut i = self.pos;
        if span.kind != 0 && span.kind != b'"' {
            while i < buf.len() {
                if matches!(buf[i], b',' | b'}' | b']') || is_space(buf[i]) {
                    self.pos = i;
                    return Some(i);
                }
                i += 1;
            }
            self.pos = i;
            return at_end.then_some(i);
        }
        while i < buf.len() {
            if span.in_string {
                if span.escaped {
                    span.escaped = false;
                    i += 1;
                    continue;
                }
                // Most of a record is string bytes: jump to the next quote
                // or backslash instead of looking at each byte.
                let Some(skip) = memchr::memchr2(b'"', b'\\', &buf[i..]) else {
                    i = buf.len();
                    break;
                };
                i += skip + 1;
                if buf[i - 1] == b'\\' {
                    span.escaped = true;
                } else {
                    span.in_string = false;
                    if span.kind == b'"' {
                        self.pos = i;
                        return Some(i);
                    }
                }
                continue;
            }
            let b = buf[i];
            i += 1;
            match b {
                b'"' => span.in_string = true,
                b'{' | b'[' => span.depth += 1,
                b'}' | b']' => {
                    span.depth = span.depth.saturating_sub(1);
                    if span.depth == 0 {
                        self.pos = i;
                        return Some(i);
                    }
                }
                _ => {}
            }
        }
        self.pos = i;
        None
    }

    /// The next byte that is not white space, if the bytes so far have one.
    fn skip_space(&mut self) -> Option<u8> {
        while self.pos < self.buf.len() {
            let b = self.buf[self.pos];
            if !is_space(b) {
                return Some(b);
            }
            self.pos += 1;
        }
        None
    }

    fn scan<E>(
        &mut self,
        at_end: bool,
        element: &mut impl FnMut(&[u8], usize) -> Result<(), E>,
    ) -> Result<(), Fed<E>> {
        loop {
            match self.at {
                At::Start => {
                    if !self.bom_checked {
                        // A byte-order mark, once, at the very start (some
                        // vendors' servers send one).
                        let head = &self.buf[self.pos..];
                        if head.len() < BOM.len() && BOM.starts_with(head) && !at_end {
                            return Ok(());
                        }
                        if head.starts_with(BOM) {
                            self.pos += BOM.len();
                        }
                        self.bom_checked = true;
                    }
                    let Some(b) = self.skip_space() else {
                        return Ok(());
                    };
                    if b != b'{' {
                        let json_start =
                            matches!(b, b'[' | b'"' | b'-' | b'0'..=b'9' | b't' | b'f' | b'n');
                        return Err(Fed::Scan(if json_start {
                            ScanError::NotObject
                        } else {
                            not_json("expected value at line 1")
                        }));
                    }
                    self.pos += 1;
                    self.at = At::BeforeKey { first: true };
                }
                At::BeforeKey { first } => {
                    let Some(b) = self.skip_space() else {
                        return Ok(());
                    };
                    match b {
                        b'"' => {
                            self.begin_span(b'"');
                            self.pos += 1;
                            self.span.in_string = true;
                            self.at = At::Key;
                        }
                        b'}' if first => {
                            self.pos += 1;
                            self.at = At::End;
                        }
                        _ => return Err(Fed::Scan(not_json("expected a member name"))),
                    }
                }
                At::Key => {
                    let Some(end) = self.scan_span(at_end) else {
                        return Ok(());
                    };
                    let text = &self.buf[self.span.start..end];
                    self.key = serde_json::from_slice::<String>(text)
                        .map_err(|e| Fed::Scan(ScanError::NotJson(e.to_string())))?;
                    self.at = At::Colon;
                }
                At::Colon => {
                    let Some(b) = self.skip_space() else {
                        return Ok(());
                    };
                    if b != b':' {
                        return Err(Fed::Scan(not_json("expected `:` after a member name")));
                    }
                    self.pos += 1;
                    self.at = At::BeforeValue;
                }
                At::BeforeValue => {
                    let Some(b) = self.skip_space() else {
                        return Ok(());
                    };
                    if b == b'[' && !self.streaming && self.key.eq_ignore_ascii_case(self.list) {
                        self.streaming = true;
                        self.members.push(Member {
                            name: std::mem::take(&mut self.key),
                            value: MemberValue::Streamed,
                        });
                        self.pos += 1;
                        self.at = At::BeforeElement { first: true };
                        continue;
                    }
                    let kind = if matches!(b, b'{' | b'[') { 0 } else { b };
                    self.begin_span(kind);
                    if kind == b'"' {
                        self.pos += 1;
                        self.span.in_string = true;
                    }
                    self.at = At::Value;
                }
                At::Value => {
                    let Some(end) = self.scan_span(at_end) else {
                        return Ok(());
                    };
                    let text = &self.buf[self.span.start..end];
                    serde_json::from_slice::<IgnoredAny>(text)
                        .map_err(|e| Fed::Scan(ScanError::NotJson(e.to_string())))?;
                    let name = std::mem::take(&mut self.key);
                    let wanted = name.eq_ignore_ascii_case(self.list)
                        || self.keep.iter().any(|k| name.eq_ignore_ascii_case(k));
                    let value = if wanted {
                        MemberValue::Kept(text.to_vec())
                    } else {
                        MemberValue::Skipped
                    };
                    self.members.push(Member { name, value });
                    self.at = At::AfterValue;
                }
                At::AfterValue => {
                    let Some(b) = self.skip_space() else {
                        return Ok(());
                    };
                    self.pos += 1;
                    self.at = match b {
                        b',' => At::BeforeKey { first: false },
                        b'}' => At::End,
                        _ => return Err(Fed::Scan(not_json("expected `,` or `}` after a value"))),
                    };
                }
                At::BeforeElement { first } => {
                    let Some(b) = self.skip_space() else {
                        return Ok(());
                    };
                    if b == b']' && first {
                        self.pos += 1;
                        self.at = At::AfterValue;
                        continue;
                    }
                    if matches!(b, b',' | b']' | b'}' | b':') {
                        return Err(Fed::Scan(not_json("expected an array element")));
                    }
                    let kind = if matches!(b, b'{' | b'[') { 0 } else { b };
                    self.begin_span(kind);
                    if kind == b'"' {
                        self.pos += 1;
                        self.span.in_string = true;
                    }
                    self.at = At::Element;
                }
                At::Element => {
                    let Some(end) = self.scan_span(at_end) else {
                        return Ok(());
                    };
                    let index = self.elements;
                    self.elements += 1;
                    element(&self.buf[self.span.start..end], index).map_err(Fed::Element)?;
                    self.at = At::AfterElement;
                }
                At::AfterElement => {
                    let Some(b) = self.skip_space() else {
                        return Ok(());
                    };
                    self.pos += 1;
                    self.at = match b {
                        b',' => At::BeforeElement { first: false },
                        b']' => At::AfterValue,
                        _ => {
                            return Err(Fed::Scan(not_json(
                                "expected `,` or `]` after an array element",
                            )));
                        }
                    };
                }
                At::End => {
                    if let Some(b) = self.skip_space() {
                        let _ = b;
                        return Err(Fed::Scan(not_json("trailing characters after the object")));
                    }
                    return Ok(());
                }
            }
        }
    }
}

/// What stopped a feed: the body, or the caller's handling of an element.
#[derive(Debug, PartialEq)]
pub enum Fed<E> {
    Scan(ScanError),
    Element(E),
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Feeds `body` in pieces of `piece` bytes; the elements' text and the
    /// members.
    fn read(body: &[u8], piece: usize) -> Result<(Vec<String>, Vec<Member>), ScanError> {
        let mut stream = ObjectStream::new("Data", &["Success", "Code"]);
        let mut elements = Vec::new();
        let mut take = |text: &[u8], index: usize| -> Result<(), ()> {
            assert_eq!(index, elements.len());
            elements.push(String::from_utf8(text.to_vec()).unwrap());
            Ok(())
        };
        let unwrap = |r: Result<(), Fed<()>>| {
            r.map_err(|e| match e {
                Fed::Scan(e) => e,
                Fed::Element(()) => unreachable!(),
            })
        };
        for chunk in body.chunks(piece.max(1)) {
            unwrap(stream.feed(chunk, &mut take))?;
        }
        unwrap(stream.finish(&mut take))?;
        Ok((elements, stream.members().to_vec()))
    }

    #[test]
    fn elements_and_members_are_the_same_in_pieces_of_every_size() {
        let body = br#" {"Version": "1.0", "Data" : [ {"a":"x,]}\"y"}, [1,{"b":[]}], "s\\", 12.5e3,true ,null],
            "Success":true,"Code":200, "Other": {"Data": [9]} } "#;
        let whole = read(body, body.len()).unwrap();
        assert_eq!(
            whole.0,
            [
                r#"{"a":"x,]}\"y"}"#,
                r#"[1,{"b":[]}]"#,
                r#""s\\""#,
                "12.5e3",
                "true",
                "null"
            ]
        );
        let names: Vec<&str> = whole.1.iter().map(|m| m.name.as_str()).collect();
        assert_eq!(names, ["Version", "Data", "Success", "Code", "Other"]);
        assert_eq!(whole.1[1].value, MemberValue::Streamed);
        assert_eq!(whole.1[2].value, MemberValue::Kept(b"true".to_vec()));
        assert_eq!(whole.1[4].value, MemberValue::Skipped);
        for piece in 1..body.len() {
            assert_eq!(read(body, piece).unwrap(), whole, "pieces of {piece}");
        }
    }

    #[test]
    fn only_the_first_array_of_the_name_is_streamed_and_a_later_one_is_kept() {
        let body = br#"{"data":null,"Data":[1,2],"DATA":[3]}"#;
        let (elements, members) = read(body, 3).unwrap();
        assert_eq!(elements, ["1", "2"]);
        assert_eq!(members[0].value, MemberValue::Kept(b"null".to_vec()));
        assert_eq!(members[1].value, MemberValue::Streamed);
        assert_eq!(members[2].value, MemberValue::Kept(b"[3]".to_vec()));
    }

    #[test]
    fn a_bom_at_the_start_is_dropped_and_an_empty_object_has_no_members() {
        assert_eq!(read(b"\xEF\xBB\xBF{}", 1).unwrap(), (vec![], vec![]));
        assert_eq!(read(b"{\"Data\":[]}", 1).unwrap().0, Vec::<String>::new());
    }

    #[test]
    fn bodies_that_are_not_one_object_are_refused() {
        for body in [&b"[]"[..], b"\"x\"", b"12", b"null"] {
            assert_eq!(read(body, 2), Err(ScanError::NotObject), "{body:?}");
        }
        let not_json: [&[u8]; 14] = [
            b"",
            b"   ",
            b"<html>502</html>",
            b"{",
            br#"{"Data":[{"Type":"Lead""#,
            br#"{"Data":[1,]}"#,
            br#"{"Data":[,1]}"#,
            br#"{"Data":[1 2]}"#,
            br#"{"Version":tru}"#,
            br#"{"a":1,}"#,
            br#"{"a" 1}"#,
            br#"{"a":1} x"#,
            br#"{"a":"\q"}"#,
            br#"{1:2}"#,
        ];
        for body in not_json {
            for piece in [1, 3, 1000] {
                assert!(
                    matches!(read(body, piece), Err(ScanError::NotJson(_))),
                    "{}: {:?}",
                    String::from_utf8_lossy(body),
                    read(body, piece)
                );
            }
        }
    }

    #[test]
    fn an_element_the_caller_refuses_stops_the_feed() {
        let mut stream = ObjectStream::new("Data", &[]);
        let mut refuse = |_: &[u8], index: usize| if index == 1 { Err(index) } else { Ok(()) };
        assert_eq!(
            stream.feed(br#"{"Data":[1,2,3]}"#, &mut refuse),
            Err(Fed::Element(1))
        );
    }

    #[test]
    fn memory_holds_the_current_element_not_the_body() {
        let mut stream = ObjectStream::new("Data", &[]);
        let mut count = 0;
        let mut take = |_: &[u8], _: usize| -> Result<(), ()> {
            count += 1;
            Ok(())
        };
        stream.feed(b"{\"Data\":[", &mut take).unwrap();
        let record = br#"{"Name":"Ada","Email":"ada@example.com"},"#;
        for _ in 0..10_000 {
            stream.feed(record, &mut take).unwrap();
            assert!(stream.buf.len() <= 2 * record.len(), "{}", stream.buf.len());
        }
        stream.feed(b"1]}", &mut take).unwrap();
        stream.finish(&mut take).unwrap();
        assert_eq!(count, 10_001);
    }
}
