//! Finding a lead page's next token without parsing its rows, so the next
//! request can leave while the page is still being mapped. The scan walks
//! the body's bytes once: strings are skipped to their closing quote and
//! containers by depth, and only the keys on the way to the two token
//! places (`data.report.next_page_token`, else `data.next_page_token`) are
//! read, a repeated key's last value winning as in `parse_leads`. What it
//! does not fully understand it reports as unknown rather than guessing.

use serde_json::value::RawValue;

use crate::vendors::raw_clean_string;

/// The token of the lead page `body`, as `parse_leads` will find it: `None`
/// when the scan cannot tell (wait for the parse), `Some(None)` when the
/// page is the last, `Some(Some(token))` otherwise.
///
/// The scan does not validate the body: for a body `parse_leads` rejects
/// (not JSON, an error envelope, no rows), its answer means nothing, and
/// the page fails anyway. For every body `parse_leads` accepts, an answer
/// other than `None` equals the page's `next_token`.
pub fn next_page_token(body: &[u8]) -> Option<Option<String>> {
    let body = body.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(body);
    let mut scan = Scan { body, at: 0 };
    let (mut report_token, mut data_token) = (None, None);
    scan.object(|scan, key| {
        if key != "data" {
            return scan.skip_value();
        }
        // A later `data` replaces an earlier one entirely.
        (report_token, data_token) = (None, None);
        if scan.peek()? != b'{' {
            return scan.skip_value();
        }
        scan.object(|scan, key| match key.as_ref() {
            "next_page_token" => {
                data_token = Some(scan.value()?);
                Some(())
            }
            "report" => {
                report_token = None;
                if scan.peek()? != b'{' {
                    return scan.skip_value();
                }
                scan.object(|scan, key| {
                    if key == "next_page_token" {
                        report_token = Some(scan.value()?);
                        Some(())
                    } else {
                        scan.skip_value()
                    }
                })
            }
            _ => scan.skip_value(),
        })
    })?;
    scan.whitespace();
    if scan.at != body.len() {
        return None;
    }
    for token in [report_token, data_token].into_iter().flatten() {
        if let Some(token) = clean(token)? {
            return Some(Some(token));
        }
    }
    Some(None)
}

/// `clean_string` of a token's JSON text; `None` if it is not JSON.
fn clean(text: &[u8]) -> Option<Option<String>> {
    let text = std::str::from_utf8(text).ok()?;
    let raw: &RawValue = serde_json::from_str(text).ok()?;
    raw_clean_string(raw).ok()
}

struct Scan<'a> {
    body: &'a [u8],
    at: usize,
}

impl<'a> Scan<'a> {
    fn whitespace(&mut self) {
        while let Some(b' ' | b'\t' | b'\n' | b'\r') = self.body.get(self.at) {
            self.at += 1;
        }
    }

    /// The next byte that is not whitespace, not consumed.
    fn peek(&mut self) -> Option<u8> {
        self.whitespace();
        self.body.get(self.at).copied()
    }

    fn expect(&mut self, byte: u8) -> Option<()> {
        (self.peek()? == byte).then(|| self.at += 1)
    }

    /// Skips a string whose opening quote is at `at`; returns its JSON text.
    fn string(&mut self) -> Option<&'a [u8]> {
        let start = self.at;
        self.at = string_end(self.body, start + 1)? + 1;
        Some(&self.body[start..self.at])
    }

    /// An object at `at`: `member(scan, key)` for each member, with the
    /// scan at its value; the member must consume the value.
    fn object(
        &mut self,
        mut member: impl FnMut(&mut Self, std::borrow::Cow<'a, str>) -> Option<()>,
    ) -> Option<()> {
        self.expect(b'{')?;
        if self.peek()? == b'}' {
            self.at += 1;
            return Some(());
        }
        loop {
            if self.peek()? != b'"' {
                return None;
            }
            let key = self.string()?;
            let key = match std::str::from_utf8(&key[1..key.len() - 1]).ok()? {
                plain if !plain.contains('\\') => std::borrow::Cow::Borrowed(plain),
                _ => std::borrow::Cow::Owned(serde_json::from_slice::<String>(key).ok()?),
            };
            self.expect(b':')?;
            self.whitespace();
            member(self, key)?;
            match self.peek()? {
                b',' => self.at += 1,
                b'}' => {
                    self.at += 1;
                    return Some(());
                }
                _ => return None,
            }
        }
    }

    /// Skips one value; returns its JSON text.
    fn value(&mut self) -> Option<&'a [u8]> {
        let start = self.at;
        self.skip_value()?;
        Some(&self.body[start..self.at])
    }

    fn skip_value(&mut self) -> Option<()> {
        match self.peek()? {
            b'"' => self.string().map(drop),
            b'{' | b'[' => {
                self.at = container_end(self.body, self.at)?;
                Some(())
            }
            _ => {
                // A number or a literal: up to the next delimiter.
                let start = self.at;
                while let Some(&b) = self.body.get(self.at) {
                    if matches!(b, b',' | b'}' | b']' | b' ' | b'\t' | b'\n' | b'\r') {
                        break;
                    }
                    self.at += 1;
                }
                (self.at > start).then_some(())
            }
        }
    }
}

/// The index of the closing quote of the string whose content starts at
/// `at`. Strings are most of a page's bytes and most are short: eight
/// bytes at a time, with no call per string.
fn string_end(body: &[u8], mut at: usize) -> Option<usize> {
    const ONES: u64 = 0x0101_0101_0101_0101;
    const HIGHS: u64 = 0x8080_8080_8080_8080;
    let zero_bytes = |w: u64| w.wrapping_sub(ONES) & !w & HIGHS;
    loop {
        while let Some(chunk) = body.get(at..at + 8) {
            let word = u64::from_le_bytes(chunk.try_into().expect("eight bytes"));
            // The lowest flagged byte is exact (only bytes above a match can
            // be flagged falsely), and it is the first quote or backslash.
            let found = zero_bytes(word ^ (ONES * u64::from(b'"')))
                | zero_bytes(word ^ (ONES * u64::from(b'\\')));
            if found != 0 {
                at += (found.trailing_zeros() / 8) as usize;
                break;
            }
            at += 8;
        }
        at += body
            .get(at..)?
            .iter()
            .position(|&b| b == b'"' || b == b'\\')?;
        match body[at] {
            b'"' => return Some(at),
            _ => at += 2,
        }
    }
}

/// The index just past the container that opens at `at`.
fn container_end(body: &[u8], mut at: usize) -> Option<usize> {
    let mut depth = 0usize;
    loop {
        match *body.get(at)? {
            b'"' => at = string_end(body, at + 1)?,
            b'{' | b'[' => depth += 1,
            b'}' | b']' => {
                depth -= 1;
                if depth == 0 {
                    return Some(at + 1);
                }
            }
            _ => {}
        }
        at += 1;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn string_end_finds_the_closing_quote_at_every_offset_and_length() {
        for prefix in 0..10 {
            for len in 0..20 {
                for escape_at in (0..len).map(Some).chain([None]) {
                    let mut content: Vec<u8> = (0..len).map(|i| b'a' + (i % 26) as u8).collect();
                    if let Some(at) = escape_at {
                        content.splice(at..at, *br#"\""#);
                    }
                    let mut body = vec![b' '; prefix];
                    body.push(b'"');
                    body.extend_from_slice(&content);
                    body.extend_from_slice(br#"","x"]"#);
                    let expected = prefix + 1 + content.len();
                    assert_eq!(
                        string_end(&body, prefix + 1),
                        Some(expected),
                        "{}",
                        String::from_utf8_lossy(&body)
                    );
                }
            }
        }
        assert_eq!(container_end(br#"["\\"]"#, 0), Some(6));
        assert_eq!(string_end(br#""abc"#, 1), None);
        assert_eq!(string_end(br#""abc\"#, 1), None);
        assert_eq!(container_end(br#"{"a":["}",{"b":"]"}]} tail"#, 0), Some(21));
    }
}
