//! One definition of valid input: what an identifier, a text field and a file name may hold.
//!
//! Every intake (HTTP JSON and edXML, AMQP in all its formats, the gateway CLI, and the link from
//! a child) reaches these rules through [`crate::envelope::validate_envelope`] and
//! [`crate::envelope::validate_receipt`], so a relay refuses from a child exactly what its own
//! API would refuse. The rules exist because what is accepted is later written into store keys
//! (where a NUL cuts a key), into edXML (where XML 1.0 forbids most control characters) and onto
//! the disks of document-management software (where a file name with a path in it is a path).
//!
//! - **Identifiers** (envelope, receipt and status ids): ASCII letters, digits and `-` `_` `.`
//!   `:`, 1 to [`MAX_IDENTIFIER_CHARS`] characters. Agency codes have their own, stricter, parser
//!   ([`crate::agency::AgencyCode::parse`]).
//! - **Text**: valid UTF-8 (guaranteed by the type), no C0 control character but tab (and line
//!   feed and carriage return in fields that may span lines), no DEL, no C1 control character
//!   (U+0080–U+009F), none of XML's non-characters U+FFFE and U+FFFF.
//! - **File names** (attachment names): a base name: text on one line, no `/` or `\`, not `.` or
//!   `..`, none of `<>:"|?*`, no bidirectional-override characters (they disguise an extension),
//!   no leading or trailing space, no trailing dot, not a reserved device name (`CON`, `NUL`,
//!   `COM1`, … with or without an extension), at most [`MAX_FILE_NAME_CHARS`] characters.

/// Longest identifier (envelope id, receipt id, a DMS's status id), characters.
pub const MAX_IDENTIFIER_CHARS: usize = 64;
/// Longest attachment file name, characters (what common file systems take).
pub const MAX_FILE_NAME_CHARS: usize = 255;

/// Why a field's value is refused. Every variant names the field, and the character or the
/// limit concerned.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum InputError {
    /// A required field is empty.
    #[error("{field} is required")]
    Missing {
        /// The field.
        field: &'static str,
    },
    /// More characters than the field allows.
    #[error("{field} is {len} characters; at most {max} are allowed")]
    TooLong {
        /// The field.
        field: &'static str,
        /// Its length in characters.
        len: usize,
        /// The limit.
        max: usize,
    },
    /// A character the field may not hold.
    #[error("{field}: character {} at position {position} is not allowed: {why}", describe(*.found))]
    BadCharacter {
        /// The field.
        field: &'static str,
        /// The character found.
        found: char,
        /// Its position in the value, counting characters from 1.
        position: usize,
        /// The rule it breaks.
        why: &'static str,
    },
    /// A file name that is not a plain base name.
    #[error("{field}: {value:?} is not a plain file name: {why}")]
    BadFileName {
        /// The field.
        field: &'static str,
        /// The name found (only its first 80 characters, for the message).
        value: String,
        /// The rule it breaks.
        why: &'static str,
    },
}

/// Whether a text field may span lines.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Lines {
    /// One line: tab is the only control character allowed.
    One,
    /// Several lines: tab, line feed and carriage return are allowed.
    Many,
}

/// `U+0000 (NUL)` for control characters, `U+00E9 'é'` for others.
fn describe(c: char) -> String {
    const C0: [&str; 32] = [
        "NUL", "SOH", "STX", "ETX", "EOT", "ENQ", "ACK", "BEL", "BS", "HT", "LF", "VT", "FF", "CR",
        "SO", "SI", "DLE", "DC1", "DC2", "DC3", "DC4", "NAK", "SYN", "ETB", "CAN", "EM", "SUB",
        "ESC", "FS", "GS", "RS", "US",
    ];
    let code = u32::from(c);
    match usize::try_from(code).ok().and_then(|i| C0.get(i)) {
        Some(name) => format!("U+{code:04X} ({name})"),
        None if code == 0x7f => "U+007F (DEL)".to_owned(),
        None if c.is_control() => format!("U+{code:04X} (C1 control)"),
        None => format!("U+{code:04X} {c:?}"),
    }
}

/// Why `c` may not appear in a text field, if it may not.
fn text_rule(c: char, lines: Lines) -> Option<&'static str> {
    match c {
        '\t' => None,
        '\n' | '\r' if lines == Lines::Many => None,
        '\n' | '\r' => Some("this field is one line"),
        '\u{0}'..='\u{1f}' | '\u{7f}' => Some("control characters are refused"),
        '\u{80}'..='\u{9f}' => Some("C1 control characters are refused"),
        '\u{fffe}' | '\u{ffff}' => Some("XML 1.0 forbids this character"),
        _ => None,
    }
}

/// Checks a free-text field: its characters and its length (`max` characters). Empty is fine;
/// use [`required_text`] where it is not.
pub fn text(field: &'static str, value: &str, lines: Lines, max: usize) -> Result<(), InputError> {
    let mut len = 0usize;
    for (i, c) in value.chars().enumerate() {
        len = i + 1;
        if let Some(why) = text_rule(c, lines) {
            return Err(InputError::BadCharacter {
                field,
                found: c,
                position: i + 1,
                why,
            });
        }
    }
    if len > max {
        return Err(InputError::TooLong { field, len, max });
    }
    Ok(())
}

/// [`text`], and not empty or only white space.
pub fn required_text(
    field: &'static str,
    value: &str,
    lines: Lines,
    max: usize,
) -> Result<(), InputError> {
    if value.trim().is_empty() {
        return Err(InputError::Missing { field });
    }
    text(field, value, lines, max)
}

/// Checks an identifier: 1 to [`MAX_IDENTIFIER_CHARS`] of ASCII letters, digits, `-_.:`.
pub fn identifier(field: &'static str, value: &str) -> Result<(), InputError> {
    if value.is_empty() {
        return Err(InputError::Missing { field });
    }
    for (i, c) in value.chars().enumerate() {
        if !(c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.' | ':')) {
            return Err(InputError::BadCharacter {
                field,
                found: c,
                position: i + 1,
                why: "an identifier holds only ASCII letters, digits and - _ . :",
            });
        }
    }
    // Only ASCII got this far: bytes are characters.
    if value.len() > MAX_IDENTIFIER_CHARS {
        return Err(InputError::TooLong {
            field,
            len: value.len(),
            max: MAX_IDENTIFIER_CHARS,
        });
    }
    Ok(())
}

/// Device names Windows reserves in every folder, with or without an extension.
const RESERVED_NAMES: &[&str] = &[
    "CON", "PRN", "AUX", "NUL", "COM1", "COM2", "COM3", "COM4", "COM5", "COM6", "COM7", "COM8",
    "COM9", "LPT1", "LPT2", "LPT3", "LPT4", "LPT5", "LPT6", "LPT7", "LPT8", "LPT9",
];

/// Checks an attachment's file name: a plain base name that is safe to create in any folder
/// on Linux and Windows (see the module documentation).
pub fn file_name(field: &'static str, value: &str) -> Result<(), InputError> {
    if value.is_empty() {
        return Err(InputError::Missing { field });
    }
    let bad = |why| InputError::BadFileName {
        field,
        value: value.chars().take(80).collect(),
        why,
    };
    for (i, c) in value.chars().enumerate() {
        let why = match c {
            '/' | '\\' => Some("it holds a folder separator"),
            '<' | '>' | ':' | '"' | '|' | '?' | '*' => {
                Some("file names may not hold < > : \" | ? *")
            }
            '\t' => Some("control characters are refused"),
            '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}' | '\u{200e}' | '\u{200f}' => {
                Some("bidirectional-text controls would disguise the name")
            }
            _ => text_rule(c, Lines::One),
        };
        if let Some(why) = why {
            return Err(InputError::BadCharacter {
                field,
                found: c,
                position: i + 1,
                why,
            });
        }
    }
    if value == "." || value == ".." {
        return Err(bad("it names a folder"));
    }
    if value.starts_with(' ') || value.ends_with(' ') {
        return Err(bad("it starts or ends with a space"));
    }
    if value.ends_with('.') {
        return Err(bad("it ends with a dot"));
    }
    let stem = value.split('.').next().unwrap_or(value);
    if RESERVED_NAMES
        .iter()
        .any(|r| r.eq_ignore_ascii_case(stem.trim_end()))
    {
        return Err(bad("it is a reserved device name"));
    }
    let len = value.chars().count();
    if len > MAX_FILE_NAME_CHARS {
        return Err(InputError::TooLong {
            field,
            len,
            max: MAX_FILE_NAME_CHARS,
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn identifiers() {
        identifier("id", "8f2c0c1e-6a0b-4b8e-9d0e-000000000001").unwrap();
        identifier("id", "dms:2026.11_7").unwrap();
        for bad in ["a\0b", "\0a", "a\0", "a b", "a/b", "é", "a\u{1b}"] {
            let e = identifier("id", bad).unwrap_err();
            assert!(
                matches!(e, InputError::BadCharacter { field: "id", .. }),
                "{bad:?}: {e}"
            );
        }
        assert_eq!(
            identifier("id", "").unwrap_err(),
            InputError::Missing { field: "id" }
        );
        let e = identifier("id", &"a".repeat(65)).unwrap_err();
        assert_eq!(e.to_string(), "id is 65 characters; at most 64 are allowed");
        let e = identifier("id", "ab\0").unwrap_err();
        assert!(e.to_string().contains("U+0000 (NUL) at position 3"), "{e}");
    }

    #[test]
    fn text_fields() {
        text("subject", "V/v báo cáo\ttình hình", Lines::One, 500).unwrap();
        text("subject", "dòng 1\r\ndòng 2", Lines::Many, 500).unwrap();
        for (c, name) in [
            ('\0', "NUL"),
            ('\u{1b}', "ESC"),
            ('\u{7}', "BEL"),
            ('\u{b}', "VT"),
            ('\u{c}', "FF"),
            ('\u{7f}', "DEL"),
            ('\u{85}', "C1 control"),
        ] {
            let v = format!("ab{c}");
            let e = text("subject", &v, Lines::Many, 500).unwrap_err();
            assert!(e.to_string().starts_with("subject: character U+"), "{e}");
            assert!(e.to_string().contains(name), "{e}");
        }
        assert!(text("from.name", "a\nb", Lines::One, 500).is_err());
        assert!(text("x", "\u{fffe}", Lines::Many, 5).is_err());
        let e = text("subject", &"đ".repeat(501), Lines::Many, 500).unwrap_err();
        assert_eq!(
            e.to_string(),
            "subject is 501 characters; at most 500 are allowed"
        );
        assert!(required_text("subject", "  ", Lines::One, 5).is_err());
    }

    #[test]
    fn file_names() {
        for ok in [
            "a.pdf",
            "Quyết định 12.docx",
            ".hidden",
            "a..b.pdf",
            "CONTRACT.pdf",
        ] {
            file_name("attachments.name", ok).unwrap();
        }
        for bad in [
            "../../etc/passwd",
            "..\\..\\windows\\win.ini",
            "/etc/shadow",
            "..",
            ".",
            "a\0.pdf",
            "CON",
            "nul.txt",
            "com1.pdf",
            "a.pdf.",
            " a.pdf",
            "a:stream",
            "invoice\u{202e}fdp.exe",
            "a\tb",
        ] {
            let e = file_name("attachments.name", bad).unwrap_err();
            assert!(
                e.to_string().starts_with("attachments.name"),
                "{bad:?}: {e}"
            );
        }
        assert!(file_name("n", &"a".repeat(256)).is_err());
        file_name("n", &"a".repeat(255)).unwrap();
    }
}
