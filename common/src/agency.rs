//! Agency codes (mã định danh) and the administrative hierarchy they imply.
//!
//! The 13-character form `VVV.ZZ.YY.MXX` is parsed strictly: `MXX` is the level-1 body (a letter
//! and two digits), `YY`, `ZZ` and `VVV` the units below it, and a group of zeros means "the unit
//! itself at the level above". Zeroing the lowest non-zero group gives the administrative parent.
//! Anything else of at most [`MAX_AGENCY_CODE_LEN`] characters (enterprise and individual codes
//! since the 2022 amendment) is accepted as an opaque identifier with no derivable parent.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// Longest agency code accepted in any form.
pub const MAX_AGENCY_CODE_LEN: usize = 35;
/// Length of the structured form `VVV.ZZ.YY.MXX`.
pub const STRUCTURED_CODE_LEN: usize = 13;

/// Why a string is not an agency code.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum AgencyCodeError {
    /// Empty string.
    #[error("agency code is empty")]
    Empty,
    /// Longer than [`MAX_AGENCY_CODE_LEN`].
    #[error("agency code is {len} characters long; at most {MAX_AGENCY_CODE_LEN} are allowed")]
    TooLong {
        /// Length found.
        len: usize,
    },
    /// A character outside `A-Z a-z 0-9 . - _`.
    #[error("agency code contains {found:?}; only letters, digits, '.', '-' and '_' are allowed")]
    BadCharacter {
        /// The offending character.
        found: char,
    },
    /// Looks like the 13-character form but one group is wrong.
    #[error("agency code {code:?}: group {group} must be {expected}")]
    BadGroup {
        /// The whole code.
        code: String,
        /// Which group (`VVV`, `ZZ`, `YY` or `MXX`).
        group: &'static str,
        /// What the group must look like.
        expected: &'static str,
    },
}

/// The kind of level-1 body a structured code belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Level1Kind {
    /// `G`: a central body (ministry, government agency).
    Central,
    /// `H`: a provincial People's Committee.
    ProvincialCommittee,
    /// `K`: a provincial People's Council.
    ProvincialCouncil,
    /// Any other letter.
    Other(char),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
struct Structured {
    vvv: u16,
    zz: u8,
    yy: u8,
    letter: u8,
    number: u8,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
enum Form {
    Structured(Structured),
    Opaque,
}

/// A validated agency code. Compare, hash and display it by its text.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct AgencyCode {
    text: String,
    form: Form,
}

impl AgencyCode {
    /// Parses `s` (see the module doc for the accepted forms).
    pub fn parse(s: &str) -> Result<Self, AgencyCodeError> {
        if s.is_empty() {
            return Err(AgencyCodeError::Empty);
        }
        let len = s.chars().count();
        if len > MAX_AGENCY_CODE_LEN {
            return Err(AgencyCodeError::TooLong { len });
        }
        if let Some(found) = s
            .chars()
            .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_')))
        {
            return Err(AgencyCodeError::BadCharacter { found });
        }
        if looks_structured(s) {
            let st = parse_structured(s)?;
            return Ok(Self {
                text: s.to_owned(),
                form: Form::Structured(st),
            });
        }
        Ok(Self {
            text: s.to_owned(),
            form: Form::Opaque,
        })
    }

    /// The code as text.
    pub fn as_str(&self) -> &str {
        &self.text
    }

    /// True for the strict 13-character form.
    pub fn is_structured(&self) -> bool {
        matches!(self.form, Form::Structured(_))
    }

    /// The level-1 kind, for structured codes.
    pub fn level1_kind(&self) -> Option<Level1Kind> {
        match &self.form {
            Form::Structured(s) => Some(match s.letter {
                b'G' => Level1Kind::Central,
                b'H' => Level1Kind::ProvincialCommittee,
                b'K' => Level1Kind::ProvincialCouncil,
                other => Level1Kind::Other(char::from(other)),
            }),
            Form::Opaque => None,
        }
    }

    /// Depth in the hierarchy: 1 for a level-1 body (`000.00.00.MXX`), up to 4; `None` if opaque.
    pub fn level(&self) -> Option<u8> {
        match &self.form {
            Form::Structured(s) => Some(if s.vvv != 0 {
                4
            } else if s.zz != 0 {
                3
            } else if s.yy != 0 {
                2
            } else {
                1
            }),
            Form::Opaque => None,
        }
    }

    /// The administrative parent: the code with its lowest non-zero group zeroed. `None` for a
    /// level-1 body (its parent is the interchange root, which is configuration) and for opaque
    /// codes.
    pub fn administrative_parent(&self) -> Option<AgencyCode> {
        let Form::Structured(s) = &self.form else {
            return None;
        };
        let mut p = *s;
        if p.vvv != 0 {
            p.vvv = 0;
        } else if p.zz != 0 {
            p.zz = 0;
        } else if p.yy != 0 {
            p.yy = 0;
        } else {
            return None;
        }
        Some(Self::from_structured(p))
    }

    /// True when `self` equals `ancestor` or lies below it in the code hierarchy.
    pub fn is_within(&self, ancestor: &AgencyCode) -> bool {
        let mut cur = Some(self.clone());
        while let Some(c) = cur {
            if &c == ancestor {
                return true;
            }
            cur = c.administrative_parent();
        }
        false
    }

    /// The chain of administrative ancestors, nearest first (excluding `self`).
    pub fn ancestors(&self) -> Vec<AgencyCode> {
        let mut out = Vec::new();
        let mut cur = self.administrative_parent();
        while let Some(c) = cur {
            cur = c.administrative_parent();
            out.push(c);
        }
        out
    }

    fn from_structured(s: Structured) -> Self {
        let text = format!(
            "{:03}.{:02}.{:02}.{}{:02}",
            s.vvv,
            s.zz,
            s.yy,
            char::from(s.letter),
            s.number
        );
        Self {
            text,
            form: Form::Structured(s),
        }
    }
}

fn looks_structured(s: &str) -> bool {
    let b = s.as_bytes();
    b.len() == STRUCTURED_CODE_LEN && b[3] == b'.' && b[6] == b'.' && b[9] == b'.'
}

fn digits(
    code: &str,
    part: &str,
    group: &'static str,
    expected: &'static str,
) -> Result<u16, AgencyCodeError> {
    if part.bytes().all(|c| c.is_ascii_digit()) {
        part.parse::<u16>().map_err(|_| AgencyCodeError::BadGroup {
            code: code.to_owned(),
            group,
            expected,
        })
    } else {
        Err(AgencyCodeError::BadGroup {
            code: code.to_owned(),
            group,
            expected,
        })
    }
}

fn parse_structured(s: &str) -> Result<Structured, AgencyCodeError> {
    let vvv = digits(s, &s[0..3], "VVV", "three digits")?;
    let zz = digits(s, &s[4..6], "ZZ", "two digits")?;
    let yy = digits(s, &s[7..9], "YY", "two digits")?;
    let m = s.as_bytes()[10];
    let bad_m = || AgencyCodeError::BadGroup {
        code: s.to_owned(),
        group: "MXX",
        expected: "an uppercase letter and two digits",
    };
    if !m.is_ascii_uppercase() {
        return Err(bad_m());
    }
    let number =
        digits(s, &s[11..13], "MXX", "an uppercase letter and two digits").map_err(|_| bad_m())?;
    Ok(Structured {
        vvv,
        zz: u8::try_from(zz).map_err(|_| bad_m())?,
        yy: u8::try_from(yy).map_err(|_| bad_m())?,
        letter: m,
        number: u8::try_from(number).map_err(|_| bad_m())?,
    })
}

impl fmt::Display for AgencyCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

impl fmt::Debug for AgencyCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "AgencyCode({})", self.text)
    }
}

impl FromStr for AgencyCode {
    type Err = AgencyCodeError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::parse(s)
    }
}

impl Ord for AgencyCode {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        self.text.cmp(&other.text)
    }
}

impl PartialOrd for AgencyCode {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

impl Serialize for AgencyCode {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.text)
    }
}

impl<'de> Deserialize<'de> for AgencyCode {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        Self::parse(&s).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use proptest::prelude::*;

    fn code(s: &str) -> AgencyCode {
        AgencyCode::parse(s).unwrap()
    }

    #[test]
    fn parents_follow_the_hierarchy() {
        let commune = code("000.21.31.H53");
        assert_eq!(commune.level(), Some(3));
        let district = commune.administrative_parent().unwrap();
        assert_eq!(district.as_str(), "000.00.31.H53");
        let province = district.administrative_parent().unwrap();
        assert_eq!(province.as_str(), "000.00.00.H53");
        assert_eq!(province.administrative_parent(), None);
        assert_eq!(
            province.level1_kind(),
            Some(Level1Kind::ProvincialCommittee)
        );
        assert_eq!(
            code("000.00.00.G22").level1_kind(),
            Some(Level1Kind::Central)
        );
        assert_eq!(
            code("000.00.00.K01").level1_kind(),
            Some(Level1Kind::ProvincialCouncil)
        );
        assert_eq!(
            code("000.00.00.Q01").level1_kind(),
            Some(Level1Kind::Other('Q'))
        );
        assert_eq!(commune.ancestors(), vec![district, province]);
    }

    #[test]
    fn subtree_membership() {
        assert!(code("000.21.31.H53").is_within(&code("000.00.00.H53")));
        assert!(code("000.21.31.H53").is_within(&code("000.00.31.H53")));
        assert!(!code("000.21.31.H53").is_within(&code("000.00.32.H53")));
        assert!(!code("000.21.31.H53").is_within(&code("000.00.00.H49")));
        assert!(code("000.00.00.H53").is_within(&code("000.00.00.H53")));
        assert!(!code("000.00.00.H53").is_within(&code("000.00.31.H53")));
    }

    #[test]
    fn strict_structured_form() {
        for bad in [
            "000.00.00.h53",
            "0a0.00.00.H53",
            "000.0x.00.H53",
            "000.00.00.HH3",
            "000.00.00.553",
        ] {
            assert!(
                matches!(
                    AgencyCode::parse(bad),
                    Err(AgencyCodeError::BadGroup { .. })
                ),
                "{bad} accepted"
            );
        }
        assert_eq!(AgencyCode::parse(""), Err(AgencyCodeError::Empty));
        assert!(matches!(
            AgencyCode::parse("a b"),
            Err(AgencyCodeError::BadCharacter { found: ' ' })
        ));
        assert!(matches!(
            AgencyCode::parse(&"x".repeat(36)),
            Err(AgencyCodeError::TooLong { len: 36 })
        ));
    }

    #[test]
    fn opaque_codes() {
        let c = code("0312345678-DN.HCM");
        assert!(!c.is_structured());
        assert_eq!(c.administrative_parent(), None);
        assert_eq!(c.level(), None);
        assert!(c.is_within(&c));
        assert!(!c.is_within(&code("000.00.00.G22")));
    }

    fn structured() -> impl Strategy<Value = String> {
        (
            0u16..1000,
            0u8..100,
            0u8..100,
            prop::char::range('A', 'Z'),
            0u8..100,
        )
            .prop_map(|(v, z, y, l, n)| format!("{v:03}.{z:02}.{y:02}.{l}{n:02}"))
    }

    proptest! {
        #[test]
        fn structured_round_trips(s in structured()) {
            let c = AgencyCode::parse(&s).unwrap();
            prop_assert!(c.is_structured());
            prop_assert_eq!(c.to_string(), s);
        }

        #[test]
        fn parent_chain_is_short_and_contains(s in structured()) {
            let c = AgencyCode::parse(&s).unwrap();
            let anc = c.ancestors();
            prop_assert!(anc.len() <= 3);
            let mut level = c.level().unwrap();
            for a in &anc {
                prop_assert!(c.is_within(a));
                prop_assert!(!a.is_within(&c) || a == &c);
                // A zero group skips a level ("001.00.00.A00" sits directly under its body).
                prop_assert!(a.level().unwrap() < level);
                level = a.level().unwrap();
            }
            prop_assert!(anc.last().map(|a| a.level() == Some(1)).unwrap_or(c.level() == Some(1)));
        }

        #[test]
        fn siblings_are_not_within_each_other(s in structured(), t in structured()) {
            let a = AgencyCode::parse(&s).unwrap();
            let b = AgencyCode::parse(&t).unwrap();
            if a.is_within(&b) && b.is_within(&a) {
                prop_assert_eq!(a, b);
            }
        }

        #[test]
        fn arbitrary_strings_never_panic(s in ".{0,40}") {
            let _ = AgencyCode::parse(&s);
        }
    }
}
