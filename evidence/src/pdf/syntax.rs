//! Just enough of the PDF syntax to find signatures: indirect objects in the file body (never
//! inside streams), their dictionaries with the byte span of every string, and where each
//! revision (incremental update) ends.
//!
//! Why not a PDF crate: a signature is checked against byte offsets (`/ByteRange` and the exact
//! place of the `/Contents` string), which the maintained readers (lopdf) parse away; lopdf
//! also brings its own parser stack, encryption and font crates, for none of which we have a
//! use. Signature dictionaries are always plain objects in the file body (their `/Contents`
//! could not be pointed at inside a compressed object stream), so reading the body object by
//! object, as a repairing reader does, finds them without trusting the cross-reference tables.
//! Everything here works on foreign bytes: positions are checked, nesting is bounded, nothing
//! panics.

use std::ops::Range;

/// Deepest nesting of arrays and dictionaries followed.
pub(crate) const MAX_NESTING: usize = 32;

/// A PDF object as far as signatures need it.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Object {
    Null,
    Bool(bool),
    Int(i64),
    Real,
    /// A name, `#xx` escapes decoded, without its slash.
    Name(Vec<u8>),
    /// A literal or hexadecimal string, decoded, with the span of its encoded form (delimiters
    /// included) in the file.
    Str {
        bytes: Vec<u8>,
        span: Range<usize>,
    },
    Array(Vec<Object>),
    Dict(Dict),
    Ref(u32, u16),
}

/// A dictionary, in the order written (a repeated key: the first one counts).
#[derive(Debug, Clone, Default, PartialEq)]
pub(crate) struct Dict(Vec<(Vec<u8>, Object)>);

impl Dict {
    pub(crate) fn get(&self, key: &str) -> Option<&Object> {
        self.0
            .iter()
            .find(|(k, _)| k.as_slice() == key.as_bytes())
            .map(|(_, v)| v)
    }

    pub(crate) fn name(&self, key: &str) -> Option<&[u8]> {
        match self.get(key) {
            Some(Object::Name(n)) => Some(n),
            _ => None,
        }
    }

    pub(crate) fn string(&self, key: &str) -> Option<&[u8]> {
        match self.get(key) {
            Some(Object::Str { bytes, .. }) => Some(bytes),
            _ => None,
        }
    }
}

/// An indirect object of the file body: `num gen obj ... endobj`.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct IndirectObject {
    pub(crate) num: u32,
    pub(crate) gen: u16,
    /// Where `num` starts.
    pub(crate) start: usize,
    pub(crate) value: Object,
}

/// Whether the bytes start like a PDF: `%PDF-` within the first KiB (readers accept a little
/// garbage before it).
pub(crate) fn looks_like_pdf(buf: &[u8]) -> bool {
    let head = &buf[..buf.len().min(1024)];
    head.windows(5).any(|w| w == b"%PDF-")
}

/// Every indirect object of the body, in file order; stream data is skipped (up to its
/// `endstream`), objects that do not parse are passed over.
pub(crate) fn indirect_objects(buf: &[u8]) -> Vec<IndirectObject> {
    let mut out = Vec::new();
    let mut pos = 0;
    while let Some(found) = find(buf, b"obj", pos) {
        let after = found + 3;
        let Some((num, gen, start)) = header_before(buf, found) else {
            pos = after;
            continue;
        };
        if buf
            .get(after)
            .is_some_and(|&c| !is_delimiter(c) && !is_white(c))
        {
            pos = after;
            continue;
        }
        let mut parser = Parser::new(buf, after);
        match parser.object(0) {
            Ok(value) => {
                parser.skip_white();
                pos = if parser.at_keyword(b"stream") {
                    find(buf, b"endstream", parser.pos).map_or(buf.len(), |e| e + 9)
                } else {
                    parser.pos
                };
                out.push(IndirectObject {
                    num,
                    gen,
                    start,
                    value,
                });
            }
            Err(()) => pos = after,
        }
    }
    out
}

/// The end of every revision: just after each `%%EOF` and the end-of-line that follows it.
pub(crate) fn revision_ends(buf: &[u8]) -> Vec<usize> {
    let mut ends = Vec::new();
    let mut pos = 0;
    while let Some(found) = find(buf, b"%%EOF", pos) {
        let mut end = found + 5;
        if buf.get(end) == Some(&b'\r') {
            end += 1;
        }
        if buf.get(end) == Some(&b'\n') {
            end += 1;
        }
        ends.push(end);
        pos = end;
    }
    ends
}

/// `num gen` just before the `obj` at `obj_at`, with where `num` starts.
fn header_before(buf: &[u8], obj_at: usize) -> Option<(u32, u16, usize)> {
    let mut i = obj_at;
    let skip_white = |i: &mut usize| {
        while *i > 0 && is_white(buf[*i - 1]) {
            *i -= 1;
        }
    };
    let digits = |i: &mut usize| -> Option<Range<usize>> {
        let end = *i;
        while *i > 0 && buf[*i - 1].is_ascii_digit() {
            *i -= 1;
        }
        (*i < end && end - *i <= 10).then_some(*i..end)
    };
    let white_end = i;
    skip_white(&mut i);
    if i == white_end {
        return None;
    }
    let gen = digits(&mut i)?;
    let white_end = i;
    skip_white(&mut i);
    if i == white_end {
        return None;
    }
    let num = digits(&mut i)?;
    if i > 0 && !is_white(buf[i - 1]) && !is_delimiter(buf[i - 1]) {
        return None;
    }
    let num: u32 = std::str::from_utf8(&buf[num]).ok()?.parse().ok()?;
    let gen: u16 = std::str::from_utf8(&buf[gen]).ok()?.parse().ok()?;
    Some((num, gen, i))
}

pub(crate) fn find(buf: &[u8], needle: &[u8], from: usize) -> Option<usize> {
    buf.get(from..)?
        .windows(needle.len())
        .position(|w| w == needle)
        .map(|p| p + from)
}

fn is_white(c: u8) -> bool {
    matches!(c, b' ' | b'\t' | b'\r' | b'\n' | b'\x0c' | b'\0')
}

fn is_delimiter(c: u8) -> bool {
    matches!(
        c,
        b'(' | b')' | b'<' | b'>' | b'[' | b']' | b'{' | b'}' | b'/' | b'%'
    )
}

/// A cursor over the file that reads one object at a time.
pub(crate) struct Parser<'a> {
    buf: &'a [u8],
    pub(crate) pos: usize,
}

impl<'a> Parser<'a> {
    pub(crate) fn new(buf: &'a [u8], pos: usize) -> Self {
        Parser { buf, pos }
    }

    fn peek(&self) -> Option<u8> {
        self.buf.get(self.pos).copied()
    }

    /// Skips white space and comments.
    pub(crate) fn skip_white(&mut self) {
        while let Some(c) = self.peek() {
            if is_white(c) {
                self.pos += 1;
            } else if c == b'%' {
                while let Some(c) = self.peek() {
                    if c == b'\r' || c == b'\n' {
                        break;
                    }
                    self.pos += 1;
                }
            } else {
                break;
            }
        }
    }

    fn at_keyword(&self, word: &[u8]) -> bool {
        self.buf
            .get(self.pos..)
            .is_some_and(|rest| rest.starts_with(word))
    }

    /// One object; `Err(())` when the bytes are not PDF syntax (the caller moves on).
    pub(crate) fn object(&mut self, depth: usize) -> Result<Object, ()> {
        if depth > MAX_NESTING {
            return Err(());
        }
        self.skip_white();
        let c = self.peek().ok_or(())?;
        match c {
            b'/' => {
                self.pos += 1;
                Ok(Object::Name(self.name()))
            }
            b'(' => self.literal_string(),
            b'<' if self.buf.get(self.pos + 1) == Some(&b'<') => {
                self.pos += 2;
                self.dict(depth).map(Object::Dict)
            }
            b'<' => self.hex_string(),
            b'[' => {
                self.pos += 1;
                let mut items = Vec::new();
                loop {
                    self.skip_white();
                    match self.peek() {
                        Some(b']') => {
                            self.pos += 1;
                            return Ok(Object::Array(items));
                        }
                        Some(_) => items.push(self.object(depth + 1)?),
                        None => return Err(()),
                    }
                }
            }
            b'+' | b'-' | b'.' | b'0'..=b'9' => self.number_or_ref(),
            _ => {
                let word = self.regular_run();
                match word {
                    b"true" => Ok(Object::Bool(true)),
                    b"false" => Ok(Object::Bool(false)),
                    b"null" => Ok(Object::Null),
                    _ => Err(()),
                }
            }
        }
    }

    fn dict(&mut self, depth: usize) -> Result<Dict, ()> {
        let mut entries = Vec::new();
        loop {
            self.skip_white();
            match self.peek() {
                Some(b'>') if self.buf.get(self.pos + 1) == Some(&b'>') => {
                    self.pos += 2;
                    return Ok(Dict(entries));
                }
                Some(b'/') => {
                    self.pos += 1;
                    let key = self.name();
                    let value = self.object(depth + 1)?;
                    entries.push((key, value));
                }
                _ => return Err(()),
            }
        }
    }

    fn regular_run(&mut self) -> &'a [u8] {
        let start = self.pos;
        while let Some(c) = self.peek() {
            if is_white(c) || is_delimiter(c) {
                break;
            }
            self.pos += 1;
        }
        &self.buf[start..self.pos]
    }

    fn name(&mut self) -> Vec<u8> {
        let raw = self.regular_run();
        let mut out = Vec::with_capacity(raw.len());
        let mut i = 0;
        while i < raw.len() {
            if raw[i] == b'#' {
                if let Some(v) = raw.get(i + 1..i + 3).and_then(hex_byte) {
                    out.push(v);
                    i += 3;
                    continue;
                }
            }
            out.push(raw[i]);
            i += 1;
        }
        out
    }

    fn number_or_ref(&mut self) -> Result<Object, ()> {
        let first = self.regular_run();
        let text = std::str::from_utf8(first).map_err(|_| ())?;
        let Ok(n) = text.parse::<i64>() else {
            return text.parse::<f64>().map(|_| Object::Real).map_err(|_| ());
        };
        // `num gen R`: look ahead without consuming unless all three are there.
        let save = self.pos;
        self.skip_white();
        let gen_run = self.regular_run();
        if let Ok(gen) = std::str::from_utf8(gen_run).unwrap_or("").parse::<u16>() {
            if !gen_run.is_empty() && gen_run.iter().all(u8::is_ascii_digit) {
                self.skip_white();
                if self.peek() == Some(b'R')
                    && self
                        .buf
                        .get(self.pos + 1)
                        .is_none_or(|&c| is_white(c) || is_delimiter(c))
                {
                    self.pos += 1;
                    if let Ok(num) = u32::try_from(n) {
                        return Ok(Object::Ref(num, gen));
                    }
                    return Err(());
                }
            }
        }
        self.pos = save;
        Ok(Object::Int(n))
    }

    fn literal_string(&mut self) -> Result<Object, ()> {
        let start = self.pos;
        self.pos += 1;
        let mut out = Vec::new();
        let mut depth = 1usize;
        loop {
            let c = self.peek().ok_or(())?;
            self.pos += 1;
            match c {
                b'(' => {
                    depth += 1;
                    out.push(c);
                }
                b')' => {
                    depth -= 1;
                    if depth == 0 {
                        return Ok(Object::Str {
                            bytes: out,
                            span: start..self.pos,
                        });
                    }
                    out.push(c);
                }
                b'\\' => {
                    let e = self.peek().ok_or(())?;
                    self.pos += 1;
                    match e {
                        b'n' => out.push(b'\n'),
                        b'r' => out.push(b'\r'),
                        b't' => out.push(b'\t'),
                        b'b' => out.push(8),
                        b'f' => out.push(12),
                        b'0'..=b'7' => {
                            let mut v = u32::from(e - b'0');
                            for _ in 0..2 {
                                match self.peek() {
                                    Some(d @ b'0'..=b'7') => {
                                        v = v * 8 + u32::from(d - b'0');
                                        self.pos += 1;
                                    }
                                    _ => break,
                                }
                            }
                            out.push((v & 0xff) as u8);
                        }
                        b'\r' => {
                            if self.peek() == Some(b'\n') {
                                self.pos += 1;
                            }
                        }
                        b'\n' => {}
                        other => out.push(other),
                    }
                }
                _ => out.push(c),
            }
        }
    }

    fn hex_string(&mut self) -> Result<Object, ()> {
        let start = self.pos;
        self.pos += 1;
        let end = find(self.buf, b">", self.pos).ok_or(())?;
        let mut digits = Vec::with_capacity(end - self.pos);
        for &c in &self.buf[self.pos..end] {
            if is_white(c) {
                continue;
            }
            if !c.is_ascii_hexdigit() {
                return Err(());
            }
            digits.push(c);
        }
        if digits.len() % 2 == 1 {
            digits.push(b'0');
        }
        let bytes = digits.chunks(2).filter_map(hex_byte).collect();
        self.pos = end + 1;
        Ok(Object::Str {
            bytes,
            span: start..self.pos,
        })
    }
}

fn hex_byte(pair: &[u8]) -> Option<u8> {
    let s = std::str::from_utf8(pair).ok()?;
    u8::from_str_radix(s, 16).ok()
}

/// A text string (`/T`, `/Name`, `/Reason`): UTF-16BE with its byte order mark, UTF-8 with its
/// mark, else PDFDocEncoding (read as Latin-1, which it matches for the usual characters).
pub(crate) fn text_string(bytes: &[u8]) -> String {
    if let Some(rest) = bytes.strip_prefix(&[0xfe, 0xff]) {
        let units: Vec<u16> = rest
            .chunks(2)
            .map(|c| u16::from_be_bytes([c[0], c.get(1).copied().unwrap_or(0)]))
            .collect();
        return String::from_utf16_lossy(&units);
    }
    if let Some(rest) = bytes.strip_prefix(&[0xef, 0xbb, 0xbf]) {
        return String::from_utf8_lossy(rest).into_owned();
    }
    bytes.iter().map(|&b| char::from(b)).collect()
}

/// A PDF date (`D:YYYYMMDDHHmmSSOHH'mm'`, everything after the year optional) as Unix seconds.
pub(crate) fn pdf_date(bytes: &[u8]) -> Option<i64> {
    let s = std::str::from_utf8(bytes).ok()?;
    let s = s.strip_prefix("D:").unwrap_or(s);
    let digits = |from: usize, len: usize, default: u32| -> Option<u32> {
        match s.get(from..from + len) {
            Some(d) if d.bytes().all(|b| b.is_ascii_digit()) => d.parse().ok(),
            Some(_) => None,
            None if s.len() <= from => Some(default),
            None => None,
        }
    };
    let year = i32::try_from(digits(0, 4, u32::MAX)?).ok()?;
    let month = time::Month::try_from(u8::try_from(digits(4, 2, 1)?).ok()?).ok()?;
    let day = u8::try_from(digits(6, 2, 1)?).ok()?;
    let hour = u8::try_from(digits(8, 2, 0)?).ok()?;
    let minute = u8::try_from(digits(10, 2, 0)?).ok()?;
    let second = u8::try_from(digits(12, 2, 0)?).ok()?;
    let date = time::Date::from_calendar_date(year, month, day).ok()?;
    let at = date.with_hms(hour, minute, second).ok()?.assume_utc();
    let mut offset = 0i64;
    if let Some(sign) = s.get(14..15) {
        let oh = i64::from(digits(15, 2, 0)?);
        let om = s
            .get(18..20)
            .and_then(|m| m.parse::<i64>().ok())
            .unwrap_or(0);
        offset = match sign {
            "+" => oh * 3600 + om * 60,
            "-" => -(oh * 3600 + om * 60),
            _ => 0,
        };
    }
    Some(at.unix_timestamp() - offset)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn parse(s: &[u8]) -> Object {
        Parser::new(s, 0).object(0).unwrap()
    }

    #[test]
    fn reads_dictionaries_with_string_spans() {
        let src = b"<< /Type /Sig /Contents <0a0B 0c> /ByteRange [0 10 20 5] /M (D:2025\\051) /P 3 0 R >>";
        let Object::Dict(d) = parse(src) else {
            panic!("not a dict")
        };
        assert_eq!(d.name("Type"), Some(&b"Sig"[..]));
        match d.get("Contents") {
            Some(Object::Str { bytes, span }) => {
                assert_eq!(bytes, &[0x0a, 0x0b, 0x0c]);
                assert_eq!(&src[span.clone()], b"<0a0B 0c>");
            }
            other => panic!("{other:?}"),
        }
        assert_eq!(
            d.get("ByteRange"),
            Some(&Object::Array(vec![
                Object::Int(0),
                Object::Int(10),
                Object::Int(20),
                Object::Int(5)
            ]))
        );
        assert_eq!(d.string("M"), Some(&b"D:2025)"[..]));
        assert_eq!(d.get("P"), Some(&Object::Ref(3, 0)));
    }

    #[test]
    fn literal_strings_nest_and_escape() {
        let Object::Str { bytes, .. } = parse(b"(a(b)c\\n\\101\\\nd)") else {
            panic!()
        };
        assert_eq!(bytes, b"a(b)c\nAd");
    }

    #[test]
    fn names_decode_hex_escapes() {
        assert_eq!(parse(b"/A#20B"), Object::Name(b"A B".to_vec()));
    }

    #[test]
    fn broken_syntax_is_an_error_not_a_panic() {
        for bad in [
            &b"<< /A"[..],
            b"(unterminated",
            b"<0g>",
            b"[1 2",
            b"<< 1 2 >>",
            b"",
            b"9999999999999999999999 0 R",
        ] {
            let _ = Parser::new(bad, 0).object(0);
        }
        let deep = [b'['; 100];
        assert!(Parser::new(&deep, 0).object(0).is_err());
        assert!(Parser::new(b"<< /A", 0).object(0).is_err());
    }

    #[test]
    fn finds_objects_and_skips_streams() {
        let src = b"%PDF-1.7\n1 0 obj\n<< /Length 20 >>\nstream\n2 0 obj << /Fake 1 >>\nendstream\nendobj\n12 0 obj<</A 1>>endobj\nxref\n%%EOF\n";
        let objs = indirect_objects(src);
        assert_eq!(objs.len(), 2);
        assert_eq!((objs[0].num, objs[1].num), (1, 12));
        assert_eq!(&src[objs[1].start..objs[1].start + 2], b"12");
        assert_eq!(revision_ends(src), vec![src.len()]);
    }

    #[test]
    fn text_strings() {
        assert_eq!(text_string(b"\xfe\xff\x00A\x1e\xa1"), "Aạ");
        assert_eq!(text_string(b"Signature1"), "Signature1");
    }

    #[test]
    fn pdf_dates() {
        assert_eq!(pdf_date(b"D:20250301083000Z"), Some(1_740_817_800));
        assert_eq!(pdf_date(b"D:20250301153000+07'00'"), Some(1_740_817_800));
        assert_eq!(pdf_date(b"D:2025"), Some(1_735_689_600));
        assert_eq!(pdf_date(b"D:20251"), None);
        assert_eq!(pdf_date(b"junk"), None);
    }

    #[test]
    fn pdf_detection() {
        assert!(looks_like_pdf(b"%PDF-1.4\n"));
        assert!(looks_like_pdf(b"\xef\xbb\xbf%PDF-2.0"));
        assert!(!looks_like_pdf(b"PK\x03\x04"));
    }
}
