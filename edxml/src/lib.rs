//! edXML (QCVN 102:2016) packages ↔ the project's model.
//!
//! [`import`] reads a document package into an [`Envelope`] plus decoded attachments, or a status
//! package into a [`StatusReceipt`]. Reading is tolerant of the differences found in real packages
//! (prefixes, element order, date forms; see docs/edxml.md) and refuses hostile input: no DTD, no
//! entities beyond the five predefined ones, and the limits [`MAX_EDXML_BYTES`], [`MAX_DEPTH`],
//! [`MAX_ELEMENTS`], [`MAX_TEXT_BYTES`] and [`MAX_ATTRIBUTE_BYTES`] are checked while reading.
//! Every error names the element and the line.
//!
//! Large packages: an attachment's base64 text is never copied out of the input; it is decoded
//! from there, in pieces, straight into one buffer of the decoded size, so importing holds the
//! package and the decoded attachments and nothing proportional on top (docs/edxml.md has the
//! figures; `examples/edxml_memory.rs` measures them).
//!
//! [`export_document`] and [`export_status`] write the strict form: every element in the edXML
//! namespace under the `edXML:` prefix. Elements the model has no field for are kept on import
//! (`unmapped`) and written back by [`export`], so that a round trip does not lose them.

use std::borrow::Cow;
use std::ops::ControlFlow;

use base64::engine::general_purpose::{GeneralPurpose, GeneralPurposeConfig};
use base64::engine::DecodePaddingMode;
use base64::Engine as _;
use lienthong_proto::v1::{
    AttachmentManifest, Business, BusinessDocType, DocumentCode, DocumentType, EdxmlExtras,
    EdxmlField, Envelope, Organization, OtherInfo, Priority, PromulgationInfo, ReceiptResponseFor,
    ReplacementInfo, ResponseFor, SignerInfo, StaffInfo, StatusCode, StatusReceipt, SteeringType,
    TraceEntry,
};
use quick_xml::events::{BytesRef, Event};
use quick_xml::{Reader, XmlVersion};
use serde::{Deserialize, Serialize};
use time::{Date, Month, OffsetDateTime, PrimitiveDateTime, Time, UtcOffset};

/// The edXML namespace of QCVN 102:2016.
pub const EDXML_NS: &str = "http://www.mic.gov.vn/TBT/QCVN_102_2016";
/// Media type of an edXML package on the local interfaces.
pub const EDXML_CONTENT_TYPE: &str = "application/edxml+xml";
/// Largest package accepted, attachments included.
pub const MAX_EDXML_BYTES: usize = 256 * 1024 * 1024;
/// Deepest element nesting accepted (real packages nest about 8 deep).
pub const MAX_DEPTH: usize = 32;
/// Most elements in one package.
pub const MAX_ELEMENTS: usize = 100_000;
/// Largest text content of one element, except `ContentTransferEncoded` (attachment bytes), which
/// is bounded by [`MAX_EDXML_BYTES`] only.
pub const MAX_TEXT_BYTES: usize = 64 * 1024;
/// Largest attribute value.
pub const MAX_ATTRIBUTE_BYTES: usize = 4 * 1024;

/// The local name of the element whose text may be as large as the package. Its text is never
/// copied out of the input while reading: see [`Text::InInput`].
const ATTACHMENT_TEXT: &str = "ContentTransferEncoded";
/// Whitespace-free base64 characters decoded at a time: attachments are decoded from the input
/// in pieces of this size straight into their one output buffer.
const BASE64_CHUNK: usize = 64 * 1024;
/// Vietnam's civil time: edXML timestamps carry no offset and are read and written in it.
const VN_OFFSET_SECONDS: i32 = 7 * 3600;

/// Why a package was refused. Every variant but [`EdxmlError::TooLarge`] names the element (as
/// written, with its prefix) and the 1-based line where it starts.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum EdxmlError {
    /// The package is larger than [`MAX_EDXML_BYTES`].
    #[error("package is {size} bytes; the limit is {max}")]
    TooLarge {
        /// Its size.
        size: usize,
        /// The limit.
        max: usize,
    },
    /// The bytes are not well-formed XML.
    #[error("line {line}, element <{element}>: not well-formed XML: {reason}")]
    Malformed {
        /// The element open where the problem was found.
        element: String,
        /// Line.
        line: usize,
        /// The parser's explanation.
        reason: String,
    },
    /// A construct refused on principle (DTD, entity, undeclared prefix).
    #[error("line {line}, element <{element}>: refused: {reason}")]
    Refused {
        /// The element or construct.
        element: String,
        /// Line.
        line: usize,
        /// Why.
        reason: String,
    },
    /// A size limit was exceeded.
    #[error("line {line}, element <{element}>: {what} exceeds the limit of {max}")]
    Limit {
        /// The element.
        element: String,
        /// Line.
        line: usize,
        /// Which limit.
        what: &'static str,
        /// The limit.
        max: usize,
    },
    /// A required element is absent.
    #[error("line {line}, element <{element}>: required element {missing} is missing")]
    Missing {
        /// The element that should contain it.
        element: String,
        /// Line of that element.
        line: usize,
        /// The missing element's local name.
        missing: &'static str,
    },
    /// An element's value is not acceptable.
    #[error("line {line}, element <{element}>: {value:?} {reason}")]
    BadValue {
        /// The element.
        element: String,
        /// Line.
        line: usize,
        /// The value (shortened if long).
        value: String,
        /// What is wrong.
        reason: String,
    },
}

impl EdxmlError {
    /// The element concerned, if the error names one.
    pub fn element(&self) -> Option<&str> {
        match self {
            Self::TooLarge { .. } => None,
            Self::Malformed { element, .. }
            | Self::Refused { element, .. }
            | Self::Limit { element, .. }
            | Self::Missing { element, .. }
            | Self::BadValue { element, .. } => Some(element),
        }
    }

    /// The 1-based line concerned, if the error names one.
    pub fn line(&self) -> Option<usize> {
        match self {
            Self::TooLarge { .. } => None,
            Self::Malformed { line, .. }
            | Self::Refused { line, .. }
            | Self::Limit { line, .. }
            | Self::Missing { line, .. }
            | Self::BadValue { line, .. } => Some(*line),
        }
    }
}

/// Attachments with their bytes, in manifest order.
pub type Attachments = Vec<(AttachmentManifest, Vec<u8>)>;

/// An imported document package.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct ImportedDocument {
    /// The envelope; `id` is empty (edXML has no envelope id: the caller assigns one), and
    /// `attachments` lists the manifests of [`ImportedDocument::attachments`].
    pub envelope: Envelope,
    /// Each attachment's manifest (size and SHA-256 computed from the decoded bytes) and bytes.
    #[serde(with = "attachments_json")]
    pub attachments: Vec<(AttachmentManifest, Vec<u8>)>,
    /// Elements the model has no field for: (path of local names from the package root, with
    /// `[n]` for the n-th sibling of the same name from the second on, trimmed text).
    pub unmapped: Vec<(String, String)>,
    /// The package's own `Signature` element, verbatim.
    pub original_signature: Option<String>,
}

/// An imported status package.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct ImportedStatus {
    /// The receipt; `id` is empty (edXML has none: the caller assigns one).
    pub receipt: StatusReceipt,
    /// Elements the model has no field for, as in [`ImportedDocument::unmapped`].
    pub unmapped: Vec<(String, String)>,
    /// The package's own `Signature` element, verbatim.
    pub original_signature: Option<String>,
}

/// What a package turned out to be.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
#[allow(clippy::large_enum_variant)]
pub enum Imported {
    /// A document package (gói tin văn bản).
    Document(ImportedDocument),
    /// A status package (gói tin trạng thái).
    Status(ImportedStatus),
}

// ---------------------------------------------------------------------------------------------
// Reading: quick-xml events into a small bounded tree.

#[derive(Debug)]
struct Node {
    /// Local name (prefix removed).
    name: String,
    /// Name as written.
    qname: String,
    line: usize,
    /// Byte range of the whole element in the input.
    start: usize,
    end: usize,
    text: Text,
    children: Vec<Node>,
}

/// An element's own text content (that of its children excluded).
#[derive(Debug)]
enum Text {
    /// Copied while reading: every element but `ContentTransferEncoded`, bounded by
    /// [`MAX_TEXT_BYTES`].
    Owned(String),
    /// Left in the input, of which it is `len` bytes (references unresolved, line ends not
    /// normalized): `ContentTransferEncoded`, whose base64 text may be as large as the package.
    /// It is read again from the element's byte range where it is needed: decoded straight into
    /// the attachment's buffer ([`decode_attachment`]), or copied out by [`Ctx::text`] in the rare
    /// case of an element kept as unmapped.
    InInput { len: usize },
}

impl Node {
    /// The trimmed text of an ordinary element. Empty for a `ContentTransferEncoded` element,
    /// whose text stays in the input: read it with [`Ctx::text`] or [`decode_attachment`].
    fn value(&self) -> &str {
        match &self.text {
            Text::Owned(s) => s.trim(),
            Text::InInput { .. } => "",
        }
    }

    fn child(&self, name: &str) -> Option<&Node> {
        self.children.iter().find(|c| c.name == name)
    }

    /// Children with their path segment: the local name, plus `[n]` from the second sibling of
    /// the same name on.
    fn segments(&self) -> Vec<(String, &Node)> {
        let mut out = Vec::with_capacity(self.children.len());
        for (i, c) in self.children.iter().enumerate() {
            let n = self.children[..i]
                .iter()
                .filter(|s| s.name == c.name)
                .count();
            let seg = if n == 0 {
                c.name.clone()
            } else {
                format!("{}[{}]", c.name, n + 1)
            };
            out.push((seg, c));
        }
        out
    }

    fn bad(&self, value: &str, reason: impl Into<String>) -> EdxmlError {
        let mut value = value.to_owned();
        if value.len() > 80 {
            let mut cut = 80;
            while !value.is_char_boundary(cut) {
                cut -= 1;
            }
            value.truncate(cut);
            value.push('…');
        }
        EdxmlError::BadValue {
            element: self.qname.clone(),
            line: self.line,
            value,
            reason: reason.into(),
        }
    }

    fn missing(&self, missing: &'static str) -> EdxmlError {
        EdxmlError::Missing {
            element: self.qname.clone(),
            line: self.line,
            missing,
        }
    }
}

/// Line numbers from byte offsets, counted incrementally (offsets only grow).
struct Lines<'a> {
    bytes: &'a [u8],
    offset: usize,
    line: usize,
}

impl Lines<'_> {
    fn at(&mut self, offset: usize) -> usize {
        let offset = offset.min(self.bytes.len());
        if offset < self.offset {
            self.offset = 0;
            self.line = 1;
        }
        self.line += self.bytes[self.offset..offset]
            .iter()
            .filter(|b| **b == b'\n')
            .count();
        self.offset = offset;
        self.line
    }
}

fn parse(input: &str) -> Result<Node, EdxmlError> {
    let mut lines = Lines {
        bytes: input.as_bytes(),
        offset: 0,
        line: 1,
    };
    let mut reader = Reader::from_str(input);
    let mut stack: Vec<Node> = Vec::new();
    let mut scopes: Vec<Vec<String>> = Vec::new();
    let mut root: Option<Node> = None;
    let mut elements = 0usize;
    loop {
        let pos = usize::try_from(reader.buffer_position()).unwrap_or(usize::MAX);
        let event = match reader.read_event() {
            Ok(e) => e,
            Err(e) => {
                let at = usize::try_from(reader.error_position()).unwrap_or(usize::MAX);
                let reason = match stack.last() {
                    Some(open) => format!("{e} (<{}> opened on line {})", open.qname, open.line),
                    None => e.to_string(),
                };
                return Err(EdxmlError::Malformed {
                    element: open_name(&stack),
                    line: lines.at(at),
                    reason,
                });
            }
        };
        match event {
            Event::Start(ref e) | Event::Empty(ref e) => {
                let empty = matches!(event, Event::Empty(_));
                let qname = e.name().into_inner().to_owned();
                let line = lines.at(pos);
                if root.is_some() && stack.is_empty() {
                    return Err(EdxmlError::Malformed {
                        element: qname,
                        line,
                        reason: "a second root element".into(),
                    });
                }
                elements += 1;
                if elements > MAX_ELEMENTS {
                    return Err(EdxmlError::Limit {
                        element: qname,
                        line,
                        what: "the number of elements",
                        max: MAX_ELEMENTS,
                    });
                }
                if stack.len() + 1 > MAX_DEPTH {
                    return Err(EdxmlError::Limit {
                        element: qname,
                        line,
                        what: "the nesting depth",
                        max: MAX_DEPTH,
                    });
                }
                let mut declared = Vec::new();
                let mut prefixed_attrs = Vec::new();
                for attr in e.attributes() {
                    let attr = attr.map_err(|err| EdxmlError::Malformed {
                        element: qname.clone(),
                        line,
                        reason: err.to_string(),
                    })?;
                    if attr.value.len() > MAX_ATTRIBUTE_BYTES {
                        return Err(EdxmlError::Limit {
                            element: qname.clone(),
                            line,
                            what: "an attribute value",
                            max: MAX_ATTRIBUTE_BYTES,
                        });
                    }
                    attr.normalized_value(XmlVersion::Implicit1_0)
                        .map_err(|err| EdxmlError::Refused {
                            element: qname.clone(),
                            line,
                            reason: format!("attribute value: {err} (no entity processing)"),
                        })?;
                    let key = attr.key.into_inner();
                    if let Some(p) = key.strip_prefix("xmlns:") {
                        declared.push(p.to_owned());
                    } else if let Some((p, _)) = key.split_once(':') {
                        prefixed_attrs.push(p.to_owned());
                    }
                }
                scopes.push(declared);
                let element_prefix = qname.split_once(':').map(|(p, _)| p.to_owned());
                for p in element_prefix.iter().chain(prefixed_attrs.iter()) {
                    if p != "xml" && !scopes.iter().any(|s| s.iter().any(|d| d == p)) {
                        return Err(EdxmlError::Refused {
                            element: qname.clone(),
                            line,
                            reason: format!("namespace prefix {p:?} is not declared"),
                        });
                    }
                }
                let (prefix, local) = match qname.split_once(':') {
                    Some((p, l)) => (Some(p), l),
                    None => (None, qname.as_str()),
                };
                if !prefix.is_none_or(valid_name) || !valid_name(local) {
                    return Err(EdxmlError::Malformed {
                        element: qname.clone(),
                        line,
                        reason: "not an XML element name".into(),
                    });
                }
                let name = local.to_owned();
                let text = if name == ATTACHMENT_TEXT {
                    Text::InInput { len: 0 }
                } else {
                    Text::Owned(String::new())
                };
                let node = Node {
                    name,
                    qname,
                    line,
                    start: pos,
                    end: pos,
                    text,
                    children: Vec::new(),
                };
                stack.push(node);
                if empty {
                    let end = usize::try_from(reader.buffer_position()).unwrap_or(usize::MAX);
                    close(&mut stack, &mut scopes, &mut root, end);
                }
            }
            Event::End(_) => {
                let end = usize::try_from(reader.buffer_position()).unwrap_or(usize::MAX);
                close(&mut stack, &mut scopes, &mut root, end);
            }
            Event::Text(t) => {
                // Attachment text is only measured here, so it is not normalized (which copies
                // it when it has CR line ends) either.
                if in_input(&stack) {
                    append_text(&mut stack, &t, &mut lines, pos)?;
                } else {
                    append_text(&mut stack, &t.xml10_content(), &mut lines, pos)?;
                }
            }
            Event::CData(c) => {
                append_text(&mut stack, &c, &mut lines, pos)?;
            }
            Event::GeneralRef(r) => {
                let resolved = resolve_reference(r).map_err(|problem| match problem {
                    RefProblem::BadCharacter => EdxmlError::Malformed {
                        element: open_name(&stack),
                        line: lines.at(pos),
                        reason: "invalid character reference".into(),
                    },
                    RefProblem::Entity(other) => EdxmlError::Refused {
                        element: open_name(&stack),
                        line: lines.at(pos),
                        reason: format!(
                            "entity &{other}; is not one of the five predefined \
                             entities (no DTD or entity processing)"
                        ),
                    },
                })?;
                append_text(&mut stack, &resolved, &mut lines, pos)?;
            }
            Event::DocType(_) => {
                return Err(EdxmlError::Refused {
                    element: "!DOCTYPE".into(),
                    line: lines.at(pos),
                    reason: "a document type declaration (DTD, entities) is not accepted".into(),
                });
            }
            Event::Comment(_) | Event::PI(_) | Event::Decl(_) => {}
            Event::Eof => {
                if let Some(open) = stack.last() {
                    return Err(EdxmlError::Malformed {
                        element: open.qname.clone(),
                        line: open.line,
                        reason: "the element is not closed before the end of the file".into(),
                    });
                }
                return root.ok_or_else(|| EdxmlError::Malformed {
                    element: "(document)".into(),
                    line: lines.at(input.len()),
                    reason: "no root element".into(),
                });
            }
        }
    }
}

/// Why a reference in text was not resolved.
enum RefProblem {
    /// A character reference to no character.
    BadCharacter,
    /// A named entity other than the five predefined ones.
    Entity(String),
}

/// A character reference or one of the five predefined entities; nothing else (no DTD).
fn resolve_reference(r: BytesRef<'_>) -> Result<Cow<'static, str>, RefProblem> {
    if r.is_char_ref() {
        return match r.resolve_char_ref() {
            Ok(Some(c)) => Ok(Cow::Owned(c.to_string())),
            _ => Err(RefProblem::BadCharacter),
        };
    }
    match &*r.into_inner() {
        "amp" => Ok(Cow::Borrowed("&")),
        "lt" => Ok(Cow::Borrowed("<")),
        "gt" => Ok(Cow::Borrowed(">")),
        "quot" => Ok(Cow::Borrowed("\"")),
        "apos" => Ok(Cow::Borrowed("'")),
        other => Err(RefProblem::Entity(other.to_owned())),
    }
}

/// Whether the innermost open element keeps its text in the input.
fn in_input(stack: &[Node]) -> bool {
    stack
        .last()
        .is_some_and(|n| matches!(n.text, Text::InInput { .. }))
}

fn open_name(stack: &[Node]) -> String {
    stack
        .last()
        .map(|n| n.qname.clone())
        .unwrap_or_else(|| "(document)".into())
}

fn close(
    stack: &mut Vec<Node>,
    scopes: &mut Vec<Vec<String>>,
    root: &mut Option<Node>,
    end: usize,
) {
    scopes.pop();
    if let Some(mut node) = stack.pop() {
        node.end = end;
        match stack.last_mut() {
            Some(parent) => parent.children.push(node),
            None => *root = Some(node),
        }
    }
}

fn append_text(
    stack: &mut [Node],
    content: &str,
    lines: &mut Lines<'_>,
    pos: usize,
) -> Result<(), EdxmlError> {
    match stack.last_mut() {
        Some(node) => {
            let (held, max) = match &node.text {
                Text::Owned(s) => (s.len(), MAX_TEXT_BYTES),
                Text::InInput { len } => (*len, MAX_EDXML_BYTES),
            };
            if held.saturating_add(content.len()) > max {
                return Err(EdxmlError::Limit {
                    element: node.qname.clone(),
                    line: node.line,
                    what: "the text content",
                    max,
                });
            }
            match &mut node.text {
                Text::Owned(s) => s.push_str(content),
                Text::InInput { len } => *len += content.len(),
            }
            Ok(())
        }
        None if content.trim().is_empty() => Ok(()),
        None => Err(EdxmlError::Malformed {
            element: "(document)".into(),
            line: lines.at(pos),
            reason: "text outside the root element".into(),
        }),
    }
}

// ---------------------------------------------------------------------------------------------
// Mapping the tree onto the model.

struct Ctx<'a> {
    input: &'a str,
    unmapped: Vec<(String, String)>,
    signature: Option<String>,
    /// Namespace prefixes declared on `edXMLHeader` and its ancestors (`prefix`, raw value), the
    /// innermost last: what a verbatim `Signature` may rely on.
    header_scope: Vec<(String, String)>,
    /// The first failure to read an element's text again from the input, reported by [`import`]
    /// once the mapping is done (so that [`Ctx::keep`] needs no `Result`). It cannot happen for
    /// bytes that [`parse`] accepted; it is kept as an error rather than a panic all the same.
    failed: Option<EdxmlError>,
}

impl Ctx<'_> {
    /// The trimmed text of any element, as [`Node::value`] gives it for ordinary ones; a
    /// `ContentTransferEncoded` element's is copied out of the input (line ends normalized).
    fn text(&mut self, node: &Node) -> String {
        if let Text::Owned(s) = &node.text {
            return s.trim().to_owned();
        }
        let mut out = String::new();
        let read = text_pieces(self.input, node, true, |piece| {
            out.push_str(piece);
            ControlFlow::Continue(())
        });
        if let Err(e) = read {
            self.failed.get_or_insert(e);
        }
        let trimmed = out.trim();
        if trimmed.len() == out.len() {
            out
        } else {
            trimmed.to_owned()
        }
    }

    /// Keeps an element the model has no field for: every leaf below it, with its path.
    fn keep(&mut self, path: &str, node: &Node) {
        if node.children.is_empty() {
            let text = self.text(node);
            self.unmapped.push((path.to_owned(), text));
        } else {
            for (seg, child) in node.segments() {
                self.keep(&format!("{path}/{seg}"), child);
            }
        }
    }

    /// The text of a field, keeping any child elements it unexpectedly has.
    fn leaf(&mut self, path: &str, node: &Node) -> String {
        for (seg, child) in node.segments() {
            self.keep(&format!("{path}/{seg}"), child);
        }
        node.value().to_owned()
    }
}

/// Reads an edXML package. See the module documentation and docs/edxml.md.
pub fn import(bytes: &[u8]) -> Result<Imported, EdxmlError> {
    if bytes.len() > MAX_EDXML_BYTES {
        return Err(EdxmlError::TooLarge {
            size: bytes.len(),
            max: MAX_EDXML_BYTES,
        });
    }
    let input = std::str::from_utf8(bytes).map_err(|e| {
        let mut lines = Lines {
            bytes,
            offset: 0,
            line: 1,
        };
        EdxmlError::Malformed {
            element: "(document)".into(),
            line: lines.at(e.valid_up_to()),
            reason: "the package is not UTF-8".into(),
        }
    })?;
    let root = parse(input)?;
    let mut ctx = Ctx {
        input,
        unmapped: Vec::new(),
        signature: None,
        header_scope: Vec::new(),
        failed: None,
    };

    // The root is either a wrapper <edXML> holding the envelope and AttachmentEncoded, or the
    // envelope itself. Paths are always written as if the wrapper were there.
    let (envelope, wrapper) = match root.name.as_str() {
        "edXMLEnvelope" => (&root, None),
        "edXML" => (
            root.child("edXMLEnvelope")
                .ok_or_else(|| root.missing("edXMLEnvelope"))?,
            Some(&root),
        ),
        _ => {
            return Err(root.bad(
                &root.qname,
                "is not an edXML package: the root must be edXML or edXMLEnvelope",
            ))
        }
    };
    let header = envelope
        .child("edXMLHeader")
        .ok_or_else(|| envelope.missing("edXMLHeader"))?;
    ctx.header_scope = wrapper
        .into_iter()
        .chain([envelope, header])
        .flat_map(|n| declarations(input.get(n.start..n.end).unwrap_or_default()))
        .collect();
    let mh = header
        .child("MessageHeader")
        .ok_or_else(|| header.missing("MessageHeader"))?;
    let is_status = mh.child("StatusCode").is_some()
        || mh
            .child("Status")
            .is_some_and(|s| s.child("StatusCode").is_some());

    if let Some(w) = wrapper {
        for (seg, child) in w.segments() {
            if child.name != "edXMLEnvelope" && (child.name != "AttachmentEncoded" || is_status) {
                ctx.keep(&seg, child);
            }
        }
    }
    for (seg, child) in envelope.segments() {
        match child.name.as_str() {
            "edXMLHeader" if seg == "edXMLHeader" => {}
            "edXMLBody" | "AttachmentEncoded" if !is_status => {}
            _ => ctx.keep(&format!("edXMLEnvelope/{seg}"), child),
        }
    }

    if is_status {
        let receipt = import_status(header, mh, &mut ctx)?;
        if let Some(e) = ctx.failed {
            return Err(e);
        }
        Ok(Imported::Status(ImportedStatus {
            receipt,
            unmapped: ctx.unmapped,
            original_signature: ctx.signature,
        }))
    } else {
        let (envelope_out, attachments) = import_document(envelope, wrapper, header, &mut ctx)?;
        if let Some(e) = ctx.failed {
            return Err(e);
        }
        Ok(Imported::Document(ImportedDocument {
            envelope: envelope_out,
            attachments,
            unmapped: ctx.unmapped,
            original_signature: ctx.signature,
        }))
    }
}

const HEADER: &str = "edXMLEnvelope/edXMLHeader";
const MH: &str = "edXMLEnvelope/edXMLHeader/MessageHeader";
const TRACE: &str = "edXMLEnvelope/edXMLHeader/TraceHeaderList";
const BUSINESS: &str = "edXMLEnvelope/edXMLHeader/TraceHeaderList/Bussiness";

/// The prefix declarations (`xmlns:p`) on the start tag that `element` begins with, raw values.
fn declarations(element: &str) -> Vec<(String, String)> {
    let mut reader = Reader::from_str(element);
    loop {
        match reader.read_event() {
            Ok(Event::Start(e) | Event::Empty(e)) => {
                return e
                    .attributes()
                    .flatten()
                    .filter_map(|a| {
                        let p = a.key.into_inner().strip_prefix("xmlns:")?;
                        Some((p.to_owned(), a.value.into_owned()))
                    })
                    .collect();
            }
            Ok(Event::Eof) | Err(_) => return Vec::new(),
            Ok(_) => {}
        }
    }
}

/// A verbatim element (the package's `Signature`) made to stand on its own: the declarations of
/// `scope` for the prefixes it uses without declaring them on its start tag are added there, so
/// that it stays namespace-well-formed wherever it is written back (e.g. `ds:` declared on the
/// package root). What it does not use is not added; an unprefixed element keeps its text as is
/// (see docs/edxml.md on the default namespace).
fn self_contained(text: &str, qname: &str, scope: &[(String, String)]) -> String {
    let own = declarations(text);
    let mut used: Vec<String> = Vec::new();
    let mut reader = Reader::from_str(text);
    loop {
        match reader.read_event() {
            Ok(Event::Start(e) | Event::Empty(e)) => {
                let name = e.name().into_inner();
                let attrs = e.attributes().flatten().map(|a| a.key.into_inner());
                for n in std::iter::once(name).chain(attrs) {
                    if let Some((p, _)) = n.split_once(':') {
                        if p != "xmlns" && p != "xml" && !used.iter().any(|u| u == p) {
                            used.push(p.to_owned());
                        }
                    }
                }
            }
            Ok(Event::Eof) | Err(_) => break,
            Ok(_) => {}
        }
    }
    let mut added = String::new();
    for p in used {
        if own.iter().any(|(o, _)| *o == p) {
            continue;
        }
        if let Some((_, value)) = scope.iter().rev().find(|(s, _)| *s == p) {
            // The raw value holds at most one kind of quote: the other one delimits it.
            let q = if value.contains('"') { '\'' } else { '"' };
            added.push_str(&format!(" xmlns:{p}={q}{value}{q}"));
        }
    }
    match text.strip_prefix('<').and_then(|t| t.strip_prefix(qname)) {
        Some(rest) if !added.is_empty() => format!("<{qname}{added}{rest}"),
        _ => text.to_owned(),
    }
}

/// Header children other than MessageHeader: trace list, business, signature.
fn import_header_rest(
    header: &Node,
    ctx: &mut Ctx<'_>,
    mut on_business: impl FnMut(&Node, &mut Ctx<'_>) -> Result<(), EdxmlError>,
    mut on_trace: impl FnMut(&Node, &mut Ctx<'_>) -> Result<(), EdxmlError>,
) -> Result<(), EdxmlError> {
    for (seg, child) in header.segments() {
        let path = format!("{HEADER}/{seg}");
        match child.name.as_str() {
            "MessageHeader" if seg == "MessageHeader" => {}
            "Signature" if ctx.signature.is_none() => {
                let text = ctx.input.get(child.start..child.end).unwrap_or_default();
                ctx.signature = Some(self_contained(text, &child.qname, &ctx.header_scope));
            }
            "TraceHeaderList" if seg == "TraceHeaderList" => {
                for (tseg, t) in child.segments() {
                    match t.name.as_str() {
                        "TraceHeader" => on_trace(t, ctx)?,
                        "Bussiness" | "Business" => on_business(t, ctx)?,
                        _ => ctx.keep(&format!("{TRACE}/{tseg}"), t),
                    }
                }
            }
            "Bussiness" | "Business" => on_business(child, ctx)?,
            _ => ctx.keep(&path, child),
        }
    }
    Ok(())
}

fn import_document(
    envelope: &Node,
    wrapper: Option<&Node>,
    header: &Node,
    ctx: &mut Ctx<'_>,
) -> Result<(Envelope, Attachments), EdxmlError> {
    let mh = header
        .child("MessageHeader")
        .ok_or_else(|| header.missing("MessageHeader"))?;
    let mut env = Envelope::default();
    let mut business: Option<Business> = None;
    let mut to_index = 0usize;
    let mut rf_index = 0usize;
    for (seg, c) in mh.segments() {
        let path = format!("{MH}/{seg}");
        match (seg.as_str(), c.name.as_str()) {
            (_, "To") => {
                to_index += 1;
                let p = indexed(MH, "To", to_index);
                env.to.push(organization(c, &p, ctx));
            }
            (_, "ResponseFor") => {
                rf_index += 1;
                let p = indexed(MH, "ResponseFor", rf_index);
                env.response_for.push(response_for(c, &p, ctx)?);
            }
            ("From", _) => env.from = Some(organization(c, &path, ctx)),
            ("DocumentId", _) => env.document_id = ctx.leaf(&path, c),
            ("Code", _) => {
                let mut code = DocumentCode::default();
                for (s, f) in c.segments() {
                    let p = format!("{path}/{s}");
                    match s.as_str() {
                        "CodeNumber" => code.number = ctx.leaf(&p, f),
                        "CodeNotation" => code.notation = ctx.leaf(&p, f),
                        _ => ctx.keep(&p, f),
                    }
                }
                env.code = Some(code);
            }
            ("PromulgationInfo", _) => {
                let mut info = PromulgationInfo::default();
                for (s, f) in c.segments() {
                    let p = format!("{path}/{s}");
                    match s.as_str() {
                        "Place" => info.place = ctx.leaf(&p, f),
                        "PromulgationDate" => info.date = date(f)?,
                        _ => ctx.keep(&p, f),
                    }
                }
                env.promulgation = Some(info);
            }
            ("DocumentType", _) => {
                let mut t = DocumentType::default();
                for (s, f) in c.segments() {
                    let p = format!("{path}/{s}");
                    match s.as_str() {
                        "Type" => t.r#type = number(f, u32::MAX)?,
                        "TypeDetail" => t.type_detail = number(f, u32::MAX)?,
                        "TypeName" => t.type_name = ctx.leaf(&p, f),
                        _ => ctx.keep(&p, f),
                    }
                }
                env.document_type = Some(t);
            }
            ("Subject", _) => env.subject = ctx.leaf(&path, c),
            ("Content", _) => env.content = ctx.leaf(&path, c),
            ("SignerInfo", _) => {
                let mut s_info = SignerInfo::default();
                for (s, f) in c.segments() {
                    let p = format!("{path}/{s}");
                    match s.as_str() {
                        "Competence" => s_info.competence = ctx.leaf(&p, f),
                        "Position" => s_info.position = ctx.leaf(&p, f),
                        "FullName" => s_info.full_name = ctx.leaf(&p, f),
                        _ => ctx.keep(&p, f),
                    }
                }
                env.signer = Some(s_info);
            }
            ("DueDate", _) => env.due_date = date(c)?,
            ("ToPlaces", _) => {
                for (s, f) in c.segments() {
                    if f.name == "Place" {
                        env.to_places.push(ctx.leaf(&format!("{path}/{s}"), f));
                    } else {
                        ctx.keep(&format!("{path}/{s}"), f);
                    }
                }
            }
            ("OtherInfo", _) => {
                let mut o = OtherInfo::default();
                for (s, f) in c.segments() {
                    let p = format!("{path}/{s}");
                    match s.as_str() {
                        "Priority" => {
                            let v = number(f, 4)?;
                            o.priority = Priority::try_from(v as i32)
                                .map(|p| p as i32)
                                .map_err(|_| f.bad(f.value(), "is not a priority 0-4"))?;
                        }
                        "SphereOfPromulgation" => o.sphere_of_promulgation = ctx.leaf(&p, f),
                        "PageAmount" => o.page_amount = number(f, u32::MAX)?,
                        "PromulgationAmount" => o.promulgation_amount = number(f, u32::MAX)?,
                        "Appendixes" => {
                            for (a, af) in f.segments() {
                                if af.name == "Appendix" {
                                    o.appendixes.push(ctx.leaf(&format!("{p}/{a}"), af));
                                } else {
                                    ctx.keep(&format!("{p}/{a}"), af);
                                }
                            }
                        }
                        _ => ctx.keep(&p, f),
                    }
                }
                env.other_info = Some(o);
            }
            ("SteeringType", _) => {
                let v = number(c, 2)?;
                env.steering_type = SteeringType::try_from(v as i32)
                    .map(|s| s as i32)
                    .map_err(|_| c.bad(c.value(), "is not a steering type 0-2"))?;
            }
            ("Bussiness" | "Business", _) => business = Some(import_business(c, ctx)?),
            _ => ctx.keep(&path, c),
        }
    }
    import_header_rest(
        header,
        ctx,
        |b, ctx| {
            business = Some(import_business(b, ctx)?);
            Ok(())
        },
        |t, _ctx| {
            let mut e = TraceEntry::default();
            for f in &t.children {
                match f.name.as_str() {
                    "OrganId" => e.agency = f.value().to_owned(),
                    "Timestamp" => e.received_unix_ms = timestamp(f)?,
                    _ => {}
                }
            }
            env.trace.push(e);
            Ok(())
        },
    )?;
    env.business = business;

    let attachments = import_attachments(envelope, wrapper, ctx)?;
    env.attachments = attachments.iter().map(|(m, _)| m.clone()).collect();
    Ok((env, attachments))
}

fn indexed(parent: &str, name: &str, index: usize) -> String {
    if index <= 1 {
        format!("{parent}/{name}")
    } else {
        format!("{parent}/{name}[{index}]")
    }
}

fn organization(node: &Node, path: &str, ctx: &mut Ctx<'_>) -> Organization {
    let mut o = Organization::default();
    for (s, f) in node.segments() {
        let p = format!("{path}/{s}");
        match s.as_str() {
            "OrganId" => o.code = ctx.leaf(&p, f),
            "OrganName" => o.name = ctx.leaf(&p, f),
            "OrganAdd" => o.address = ctx.leaf(&p, f),
            "Email" => o.email = ctx.leaf(&p, f),
            "Telephone" => o.phone = ctx.leaf(&p, f),
            "Fax" => o.fax = ctx.leaf(&p, f),
            "Website" => o.website = ctx.leaf(&p, f),
            _ => ctx.keep(&p, f),
        }
    }
    o
}

fn response_for(node: &Node, path: &str, ctx: &mut Ctx<'_>) -> Result<ResponseFor, EdxmlError> {
    let mut r = ResponseFor::default();
    for (s, f) in node.segments() {
        let p = format!("{path}/{s}");
        match s.as_str() {
            "OrganId" => r.organ_id = ctx.leaf(&p, f),
            "Code" => r.code = ctx.leaf(&p, f),
            "PromulgationDate" => r.promulgation_date = date(f)?,
            "DocumentId" => r.document_id = ctx.leaf(&p, f),
            _ => ctx.keep(&p, f),
        }
    }
    Ok(r)
}

fn staff(node: &Node, path: &str, ctx: &mut Ctx<'_>) -> StaffInfo {
    let mut st = StaffInfo::default();
    for (s, f) in node.segments() {
        let p = format!("{path}/{s}");
        match s.as_str() {
            "Department" => st.department = ctx.leaf(&p, f),
            "Staff" => st.staff = ctx.leaf(&p, f),
            "Mobile" => st.mobile = ctx.leaf(&p, f),
            "Email" => st.email = ctx.leaf(&p, f),
            _ => ctx.keep(&p, f),
        }
    }
    st
}

/// `Bussiness` (the spelling of real packages) or `Business`, wherever found; unmapped children
/// are kept under the canonical path inside TraceHeaderList.
fn import_business(node: &Node, ctx: &mut Ctx<'_>) -> Result<Business, EdxmlError> {
    let mut b = Business::default();
    for (s, f) in node.segments() {
        let p = format!("{BUSINESS}/{s}");
        match s.as_str() {
            "DocumentId" => b.target_document_id = ctx.leaf(&p, f),
            "BussinessDocType" | "BusinessDocType" => {
                let v = number(f, 3)?;
                b.doc_type = BusinessDocType::try_from(v as i32)
                    .map(|t| t as i32)
                    .map_err(|_| f.bad(f.value(), "is not a business type 0-3"))?;
            }
            "BussinessDocReason" | "BusinessDocReason" => b.reason = ctx.leaf(&p, f),
            "Paper" => {
                b.paper = match f.value() {
                    "" | "0" | "false" => false,
                    "1" | "true" => true,
                    v => return Err(f.bad(v, "is not 0 or 1")),
                }
            }
            "StaffInfo" => b.staff = Some(staff(f, &p, ctx)),
            "ReplacementInfoList" => {
                for (rs, r) in f.segments() {
                    if r.name != "ReplacementInfo" {
                        ctx.keep(&format!("{p}/{rs}"), r);
                        continue;
                    }
                    let mut info = ReplacementInfo::default();
                    for (is, i) in r.segments() {
                        let ip = format!("{p}/{rs}/{is}");
                        match is.as_str() {
                            "DocumentId" => info.document_id = ctx.leaf(&ip, i),
                            "OrganIdList" => {
                                for (os, o) in i.segments() {
                                    if o.name == "OrganId" {
                                        info.organ_ids.push(ctx.leaf(&format!("{ip}/{os}"), o));
                                    } else {
                                        ctx.keep(&format!("{ip}/{os}"), o);
                                    }
                                }
                            }
                            _ => ctx.keep(&ip, i),
                        }
                    }
                    b.replacements.push(info);
                }
            }
            _ => ctx.keep(&p, f),
        }
    }
    Ok(b)
}

fn import_status(header: &Node, mh: &Node, ctx: &mut Ctx<'_>) -> Result<StatusReceipt, EdxmlError> {
    let mut r = StatusReceipt::default();
    let mut status_node: Option<&Node> = None;
    // Status fields directly under MessageHeader or inside a Status element; unmapped children of
    // either are kept as if directly under MessageHeader.
    let mut fields: Vec<(String, &Node)> = Vec::new();
    for (seg, c) in mh.segments() {
        if c.name == "Status" && c.children.iter().any(|x| x.name == "StatusCode") {
            fields.extend(c.segments());
        } else {
            fields.push((seg, c));
        }
    }
    for (seg, c) in fields {
        let path = format!("{MH}/{seg}");
        match seg.as_str() {
            "From" => r.from = Some(organization(c, &path, ctx)),
            "ResponseFor" => {
                let mut rf = ReceiptResponseFor::default();
                for (s, f) in c.segments() {
                    let p = format!("{path}/{s}");
                    match s.as_str() {
                        "OrganId" => rf.organ_id = ctx.leaf(&p, f),
                        "Code" => rf.code = ctx.leaf(&p, f),
                        "DocumentId" => rf.document_id = ctx.leaf(&p, f),
                        "PromulgationDate" => {
                            // No field in the receipt: checked as a date, kept as written.
                            date(f)?;
                            let v = ctx.leaf(&p, f);
                            ctx.unmapped.push((p, v));
                        }
                        _ => ctx.keep(&p, f),
                    }
                }
                r.response_for = Some(rf);
            }
            "StaffInfo" => r.staff = Some(staff(c, &path, ctx)),
            "StatusCode" => {
                let v = number(c, 99)?;
                r.status = match StatusCode::try_from(v as i32) {
                    Ok(StatusCode::StatusUnspecified) | Err(_) => {
                        return Err(c.bad(c.value(), "is not a status code (01-06, 13, 15, 16)"))
                    }
                    Ok(s) => s as i32,
                };
                status_node = Some(c);
            }
            "Description" => r.description = ctx.leaf(&path, c),
            "Timestamp" => r.timestamp_unix_ms = timestamp(c)?,
            _ => ctx.keep(&path, c),
        }
    }
    if status_node.is_none() {
        return Err(mh.missing("StatusCode"));
    }
    let mut traces = 0usize;
    import_header_rest(
        header,
        ctx,
        |b, ctx| {
            ctx.keep(BUSINESS, b);
            Ok(())
        },
        |t, ctx| {
            traces += 1;
            ctx.keep(&indexed(TRACE, "TraceHeader", traces), t);
            Ok(())
        },
    )?;
    // Derived routing fields (docs/edxml.md): the receipt goes to ResponseFor/OrganId; the
    // recipient concerned is the reporter, except for 13 (sent by the document's sender).
    let organ = r
        .response_for
        .as_ref()
        .map(|x| x.organ_id.clone())
        .unwrap_or_default();
    r.to = organ.clone();
    r.recipient = if r.status == StatusCode::StatusRecallRequested as i32 {
        organ
    } else {
        r.from.as_ref().map(|f| f.code.clone()).unwrap_or_default()
    };
    Ok(r)
}

/// Manifest references matched to encoded attachments by ContentId.
fn import_attachments(
    envelope: &Node,
    wrapper: Option<&Node>,
    ctx: &mut Ctx<'_>,
) -> Result<Attachments, EdxmlError> {
    struct Encoded<'n> {
        node: &'n Node,
        cid: String,
        manifest: AttachmentManifest,
        data: Option<&'n Node>,
        used: bool,
    }
    let mut encoded: Vec<Encoded<'_>> = Vec::new();
    let containers = wrapper
        .into_iter()
        .flat_map(|w| w.children.iter())
        .chain(envelope.children.iter())
        .chain(
            envelope
                .child("edXMLBody")
                .into_iter()
                .flat_map(|b| b.children.iter()),
        )
        .filter(|c| c.name == "AttachmentEncoded");
    let mut att_index = 0usize;
    for container in containers {
        for (s, a) in container.segments() {
            if a.name != "Attachment" {
                ctx.keep(&format!("AttachmentEncoded/{s}"), a);
                continue;
            }
            att_index += 1;
            let path = indexed("AttachmentEncoded", "Attachment", att_index);
            let mut e = Encoded {
                node: a,
                cid: String::new(),
                manifest: AttachmentManifest::default(),
                data: None,
                used: false,
            };
            for (fs, f) in a.segments() {
                let p = format!("{path}/{fs}");
                match fs.as_str() {
                    "ContentId" => e.cid = normalize_cid(f.value()),
                    "AttachmentName" => e.manifest.name = ctx.leaf(&p, f),
                    "Description" => e.manifest.description = ctx.leaf(&p, f),
                    "ContentType" => e.manifest.content_type = ctx.leaf(&p, f),
                    ATTACHMENT_TEXT => e.data = Some(f),
                    _ => ctx.keep(&p, f),
                }
            }
            encoded.push(e);
        }
    }

    let mut out = Vec::new();
    if let Some(body) = envelope.child("edXMLBody") {
        for (bs, b) in body.segments() {
            let bpath = format!("edXMLEnvelope/edXMLBody/{bs}");
            if b.name == "AttachmentEncoded" {
                continue;
            }
            if bs != "edXMLManifest" {
                ctx.keep(&bpath, b);
                continue;
            }
            let mut ref_index = 0usize;
            for (rs, r) in b.segments() {
                if r.name != "Reference" {
                    ctx.keep(&format!("{bpath}/{rs}"), r);
                    continue;
                }
                ref_index += 1;
                let rpath = indexed(&bpath, "Reference", ref_index);
                let mut m = AttachmentManifest::default();
                let mut cid = String::new();
                let mut cid_node = r;
                for (fs, f) in r.segments() {
                    let p = format!("{rpath}/{fs}");
                    match fs.as_str() {
                        "ContentId" => {
                            cid = normalize_cid(f.value());
                            cid_node = f;
                        }
                        "AttachmentName" => m.name = ctx.leaf(&p, f),
                        "Description" => m.description = ctx.leaf(&p, f),
                        "ContentType" => m.content_type = ctx.leaf(&p, f),
                        _ => ctx.keep(&p, f),
                    }
                }
                let found = encoded
                    .iter_mut()
                    .find(|e| !e.used && !cid.is_empty() && e.cid == cid)
                    .ok_or_else(|| {
                        cid_node.bad(
                            &cid,
                            "has no AttachmentEncoded/Attachment with this ContentId",
                        )
                    })?;
                found.used = true;
                // The manifest is authoritative; the attachment's own labels fill its gaps.
                if m.name.is_empty() {
                    m.name = found.manifest.name.clone();
                }
                if m.content_type.is_empty() {
                    m.content_type = found.manifest.content_type.clone();
                }
                if m.description.is_empty() {
                    m.description = found.manifest.description.clone();
                }
                let bytes = decode_attachment(ctx.input, found.node, found.data)?;
                out.push(finish_manifest(m, bytes));
            }
        }
    }
    for e in encoded.iter().filter(|e| !e.used) {
        let bytes = decode_attachment(ctx.input, e.node, e.data)?;
        out.push(finish_manifest(e.manifest.clone(), bytes));
    }
    Ok(out)
}

fn normalize_cid(v: &str) -> String {
    let v = v.trim();
    let v = v.strip_prefix("cid:").unwrap_or(v);
    v.trim_start_matches('<').trim_end_matches('>').to_owned()
}

fn finish_manifest(mut m: AttachmentManifest, bytes: Vec<u8>) -> (AttachmentManifest, Vec<u8>) {
    m.size = bytes.len() as u64;
    m.sha256 = ring::digest::digest(&ring::digest::SHA256, &bytes)
        .as_ref()
        .to_vec();
    (m, bytes)
}

const BASE64: GeneralPurpose = GeneralPurpose::new(
    &base64::alphabet::STANDARD,
    GeneralPurposeConfig::new()
        .with_encode_padding(true)
        .with_decode_padding_mode(DecodePaddingMode::Indifferent),
);

/// Decodes an attachment's base64 text from the input straight into one buffer of the decoded
/// size: no copy of the text is made (whitespace is skipped while feeding [`Base64Pieces`]), so
/// the package and the decoded bytes are all that is held. Errors are those of decoding the
/// whole text with its whitespace removed, at the same offsets.
fn decode_attachment(
    input: &str,
    attachment: &Node,
    data: Option<&Node>,
) -> Result<Vec<u8>, EdxmlError> {
    let data = data.ok_or_else(|| attachment.missing(ATTACHMENT_TEXT))?;
    // First pass: the length and last character, to size the buffer and to report a bad
    // trailing character first, as a whole-text decoder does.
    let mut symbols = 0usize;
    let mut last = None;
    text_pieces(input, data, false, |piece| {
        let piece = piece.as_bytes();
        symbols += piece.len() - whitespace(piece);
        if let Some(b) = piece.iter().rev().find(|b| !b.is_ascii_whitespace()) {
            last = Some(*b);
        }
        ControlFlow::Continue(())
    })?;
    let not_base64 = |e: base64::DecodeError| -> EdxmlError {
        match text_prefix(input, data) {
            Ok(prefix) => data.bad(&prefix, format!("is not base64: {e}")),
            Err(read) => read,
        }
    };
    let mut decoder = Base64Pieces::new(symbols, last, BASE64_CHUNK).map_err(not_base64)?;
    let mut failed = None;
    text_pieces(input, data, false, |piece| {
        match decoder.push(piece.as_bytes()) {
            Ok(()) => ControlFlow::Continue(()),
            Err(e) => {
                failed = Some(e);
                ControlFlow::Break(())
            }
        }
    })?;
    if let Some(e) = failed {
        return Err(not_base64(e));
    }
    decoder.finish().map_err(not_base64)
}

/// Feeds `f` the element's own text, piece by piece, as read again from its byte range in the
/// input: text (line ends normalized if `normalize`), CDATA and resolved references, in order;
/// the text of child elements is skipped. Stops early when `f` breaks.
fn text_pieces(
    input: &str,
    node: &Node,
    normalize: bool,
    mut f: impl FnMut(&str) -> ControlFlow<()>,
) -> Result<(), EdxmlError> {
    let again = |reason: String| EdxmlError::Malformed {
        element: node.qname.clone(),
        line: node.line,
        reason: format!("reading the text again: {reason}"),
    };
    let text = match &node.text {
        Text::Owned(s) => {
            // A single piece: whether `f` would stop after it changes nothing.
            let _ = f(s);
            return Ok(());
        }
        Text::InInput { .. } => input
            .get(node.start..node.end)
            .ok_or_else(|| again("the element's byte range is outside the input".into()))?,
    };
    let mut reader = Reader::from_str(text);
    let mut depth = 0usize;
    loop {
        let event = reader.read_event().map_err(|e| again(e.to_string()))?;
        let flow = match event {
            Event::Start(_) => {
                depth += 1;
                ControlFlow::Continue(())
            }
            Event::End(_) => {
                depth = depth.saturating_sub(1);
                if depth == 0 {
                    return Ok(());
                }
                ControlFlow::Continue(())
            }
            Event::Text(t) if depth == 1 => {
                if normalize {
                    f(&t.xml10_content())
                } else {
                    f(&t)
                }
            }
            Event::CData(c) if depth == 1 => f(&c),
            Event::GeneralRef(r) if depth == 1 => match resolve_reference(r) {
                Ok(resolved) => f(&resolved),
                Err(_) => return Err(again("an unresolvable reference".into())),
            },
            Event::Eof => return Ok(()),
            _ => ControlFlow::Continue(()),
        };
        if flow.is_break() {
            return Ok(());
        }
    }
}

/// The start of a large element's trimmed text, long enough for [`Node::bad`] to shorten it
/// exactly as it would the whole text.
fn text_prefix(input: &str, node: &Node) -> Result<String, EdxmlError> {
    const ENOUGH: usize = 256;
    let mut out = String::new();
    let mut complete = true;
    text_pieces(input, node, true, |piece| {
        let piece = if out.is_empty() {
            piece.trim_start()
        } else {
            piece
        };
        out.push_str(piece);
        if out.len() > ENOUGH {
            complete = false;
            ControlFlow::Break(())
        } else {
            ControlFlow::Continue(())
        }
    })?;
    if complete {
        let end = out.trim_end().len();
        out.truncate(end);
    }
    Ok(out)
}

/// A base64 decoder fed in pieces (whitespace skipped) that writes into one buffer, sized once
/// from the symbol count, and reports the errors that decoding the whole text with its
/// whitespace removed would, at the same offsets. Symbols are gathered into chunks of a multiple
/// of 4; every chunk but the last must be padding-free alphabet (whole quads), the last is decoded
/// with the padding and trailing-bit rules of [`BASE64`].
struct Base64Pieces {
    chunk: Vec<u8>,
    chunk_len: usize,
    /// Offset of `chunk[0]` among all the symbols.
    base: usize,
    out: Vec<u8>,
}

impl Base64Pieces {
    /// `symbols` and `last` describe the whole text to come (whitespace excluded); `chunk_len` is
    /// rounded up to a multiple of 4.
    fn new(
        symbols: usize,
        last: Option<u8>,
        chunk_len: usize,
    ) -> Result<Self, base64::DecodeError> {
        // A whole-text decoder looks at a lone trailing symbol before anything else.
        if let Some(b) = last {
            if symbols % 4 == 1 && b != b'=' && !is_base64_symbol(b) {
                return Err(base64::DecodeError::InvalidByte(symbols - 1, b));
            }
        }
        let chunk_len = chunk_len.max(4).div_ceil(4) * 4;
        Ok(Self {
            chunk: Vec::with_capacity(chunk_len.min(symbols)),
            chunk_len,
            base: 0,
            out: Vec::with_capacity(symbols.div_ceil(4).saturating_mul(3)),
        })
    }

    fn push(&mut self, mut piece: &[u8]) -> Result<(), base64::DecodeError> {
        while !piece.is_empty() {
            let room = self.chunk_len - self.chunk.len();
            if room == 0 {
                // A full chunk is decoded only once more symbols follow: the last one may hold
                // the padding.
                if piece.iter().any(|b| !b.is_ascii_whitespace()) {
                    self.decode_inner_chunk()?;
                    continue;
                }
                return Ok(());
            }
            let (window, rest) = piece.split_at(piece.len().min(room));
            piece = rest;
            // Copied whole, then compacted in place if it had whitespace: both are fast on
            // long runs of symbols, the usual case.
            let start = self.chunk.len();
            self.chunk.extend_from_slice(window);
            if whitespace(window) > 0 {
                let mut kept = start;
                for i in start..self.chunk.len() {
                    let b = self.chunk[i];
                    if !b.is_ascii_whitespace() {
                        self.chunk[kept] = b;
                        kept += 1;
                    }
                }
                self.chunk.truncate(kept);
            }
        }
        Ok(())
    }

    /// A chunk followed by more symbols: whole quads, no padding. Without `=`, the engine
    /// reports the first byte outside the alphabet, as it would in the whole text.
    fn decode_inner_chunk(&mut self) -> Result<(), base64::DecodeError> {
        if self.chunk.contains(&b'=') {
            if let Some(i) = self.chunk.iter().position(|b| !is_base64_symbol(*b)) {
                return Err(base64::DecodeError::InvalidByte(
                    self.base + i,
                    self.chunk[i],
                ));
            }
        }
        BASE64
            .decode_vec(&self.chunk, &mut self.out)
            .map_err(|e| shift(e, self.base))?;
        self.base += self.chunk.len();
        self.chunk.clear();
        Ok(())
    }

    fn finish(mut self) -> Result<Vec<u8>, base64::DecodeError> {
        BASE64
            .decode_vec(&self.chunk, &mut self.out)
            .map_err(|e| shift(e, self.base))?;
        Ok(self.out)
    }
}

/// How many bytes are ASCII whitespace (a count the compiler vectorizes).
fn whitespace(bytes: &[u8]) -> usize {
    bytes.iter().filter(|b| b.is_ascii_whitespace()).count()
}

fn is_base64_symbol(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b'+' || b == b'/'
}

/// A chunk's error in the offsets of the whole text.
fn shift(e: base64::DecodeError, base: usize) -> base64::DecodeError {
    use base64::DecodeError as D;
    match e {
        D::InvalidByte(at, b) => D::InvalidByte(base + at, b),
        D::InvalidLength(n) => D::InvalidLength(base + n),
        D::InvalidLastSymbol {
            offset,
            symbol,
            symbol_value,
        } => D::InvalidLastSymbol {
            offset: base + offset,
            symbol,
            symbol_value,
        },
        other => other,
    }
}

/// A whole number in `0..=max`; empty is 0.
fn number(node: &Node, max: u32) -> Result<u32, EdxmlError> {
    let v = node.value();
    if v.is_empty() {
        return Ok(0);
    }
    match v.parse::<u32>() {
        Ok(n) if n <= max => Ok(n),
        _ => Err(node.bad(v, format!("is not a whole number from 0 to {max}"))),
    }
}

/// A date in `yyyy/MM/dd`, `dd/MM/yyyy` or `yyyy-MM-dd`, stored as `YYYY-MM-DD`; empty stays
/// empty; an impossible date is refused.
fn date(node: &Node) -> Result<String, EdxmlError> {
    let v = node.value();
    if v.is_empty() {
        return Ok(String::new());
    }
    let d = parse_date_text(v).map_err(|reason| node.bad(v, reason))?;
    d.format(DATE_FORMAT)
        .map_err(|e| node.bad(v, format!("cannot be written as a date: {e}")))
}

fn parse_date_text(v: &str) -> Result<Date, String> {
    let parts: Vec<&str> = v.split(['/', '-']).collect();
    let shape = "is not a date (yyyy/MM/dd, dd/MM/yyyy or yyyy-MM-dd)";
    if parts.len() != 3 || parts.iter().any(|p| p.is_empty() || p.len() > 4) {
        return Err(shape.into());
    }
    let (y, m, d) = if parts[0].len() == 4 {
        (parts[0], parts[1], parts[2])
    } else if parts[2].len() == 4 {
        (parts[2], parts[1], parts[0])
    } else {
        return Err(shape.into());
    };
    let num = |s: &str| -> Result<u32, String> {
        if s.bytes().all(|b| b.is_ascii_digit()) {
            s.parse::<u32>().map_err(|_| shape.to_owned())
        } else {
            Err(shape.to_owned())
        }
    };
    let (y, m, d) = (num(y)?, num(m)?, num(d)?);
    let month = u8::try_from(m)
        .ok()
        .and_then(|m| Month::try_from(m).ok())
        .ok_or_else(|| "is not a date: no such month".to_owned())?;
    let year = i32::try_from(y).map_err(|_| shape.to_owned())?;
    let day = u8::try_from(d).map_err(|_| shape.to_owned())?;
    Date::from_calendar_date(year, month, day).map_err(|_| "is not a date: no such day".into())
}

/// `yyyy/MM/dd HH:mm:ss` (or `yyyy-MM-ddTHH:mm:ss`, or a date alone) in Vietnam's time, as Unix
/// milliseconds; empty is 0.
fn timestamp(node: &Node) -> Result<i64, EdxmlError> {
    let v = node.value();
    if v.is_empty() {
        return Ok(0);
    }
    let (d, t) = match v.split_once([' ', 'T']) {
        Some((d, t)) => (d, Some(t.trim())),
        None => (v, None),
    };
    let date = parse_date_text(d).map_err(|reason| node.bad(v, reason))?;
    let time = match t {
        None => Time::MIDNIGHT,
        Some(t) => {
            let parts: Vec<&str> = t.split(':').collect();
            let n = |i: usize| -> Option<u8> { parts.get(i).and_then(|p| p.parse::<u8>().ok()) };
            let ok = parts.len() == 2 || parts.len() == 3;
            let (h, m, s) = (n(0), n(1), if parts.len() == 3 { n(2) } else { Some(0) });
            match (ok, h, m, s) {
                (true, Some(h), Some(m), Some(s)) => {
                    Time::from_hms(h, m, s).map_err(|_| node.bad(v, "is not a time of day"))?
                }
                _ => return Err(node.bad(v, "is not a timestamp (yyyy/MM/dd HH:mm:ss)")),
            }
        }
    };
    let offset = UtcOffset::from_whole_seconds(VN_OFFSET_SECONDS)
        .map_err(|_| node.bad(v, "internal: bad offset"))?;
    let at = PrimitiveDateTime::new(date, time).assume_offset(offset);
    Ok(at.unix_timestamp() * 1000)
}

fn format_timestamp(ms: i64) -> String {
    if ms == 0 {
        return String::new();
    }
    let Ok(offset) = UtcOffset::from_whole_seconds(VN_OFFSET_SECONDS) else {
        return String::new();
    };
    let Ok(t) = OffsetDateTime::from_unix_timestamp(ms.div_euclid(1000)) else {
        return String::new();
    };
    let t = t.to_offset(offset);
    format!(
        "{:04}/{:02}/{:02} {:02}:{:02}:{:02}",
        t.year(),
        u8::from(t.month()),
        t.day(),
        t.hour(),
        t.minute(),
        t.second()
    )
}

/// The model's date form, `YYYY-MM-DD`.
const DATE_FORMAT: &[time::format_description::FormatItem<'static>] =
    time::macros::format_description!("[year]-[month]-[day]");

/// `YYYY-MM-DD` written as edXML's `yyyy/MM/dd`; anything else as given.
fn format_date(d: &str) -> String {
    match Date::parse(d, DATE_FORMAT) {
        Ok(_) => d.replace('-', "/"),
        Err(_) => d.to_owned(),
    }
}

// ---------------------------------------------------------------------------------------------
// Writing the strict form.

/// Whether XML 1.0 allows `c` in character data (the writer replaces the others).
pub fn xml_char(c: char) -> bool {
    matches!(c, '\t' | '\n' | '\r')
        || matches!(c, '\u{20}'..='\u{d7ff}' | '\u{e000}'..='\u{fffd}' | '\u{10000}'..)
}

/// `value` escaped for character data. A character XML 1.0 forbids (validation refuses them at
/// every intake, so only a value stored before that rule existed can hold one) is written as
/// U+FFFD: the package stays well-formed whatever the store holds.
fn xml_text(value: &str) -> std::borrow::Cow<'_, str> {
    if value.chars().all(xml_char) {
        return quick_xml::escape::escape(value);
    }
    let clean: String = value
        .chars()
        .map(|c| if xml_char(c) { c } else { '\u{fffd}' })
        .collect();
    std::borrow::Cow::Owned(quick_xml::escape::escape(clean.as_str()).into_owned())
}

struct Writer<'a> {
    out: String,
    /// Path of the open elements (segments, possibly indexed).
    path: Vec<String>,
    /// For the root and each open element, the names of the children written so far: a leaf's
    /// own path segment (`Appendix[2]`) is found from them.
    written: Vec<Vec<String>>,
    extras: Vec<(&'a str, &'a str, bool)>,
}

impl<'a> Writer<'a> {
    fn new(unmapped: &'a [(String, String)]) -> Self {
        let mut out = String::new();
        out.push_str("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n");
        Writer {
            out,
            path: Vec::new(),
            written: vec![Vec::new()],
            extras: unmapped
                .iter()
                .map(|(p, v)| (p.as_str(), v.as_str(), false))
                .collect(),
        }
    }

    /// Everything is inside the root element, written by hand, hence the extra level.
    fn indent(&mut self) {
        for _ in 0..=self.path.len() {
            self.out.push_str("  ");
        }
    }

    fn open_with(&mut self, seg: &str, attrs: &str) {
        self.indent();
        let name = element_name(seg);
        self.out.push_str("<edXML:");
        self.out.push_str(name);
        self.out.push_str(attrs);
        self.out.push_str(">\n");
        self.push(seg);
    }

    /// Enters a child element written under `seg`.
    fn push(&mut self, seg: &str) {
        if let Some(siblings) = self.written.last_mut() {
            siblings.push(element_name(seg).to_owned());
        }
        self.path.push(seg.to_owned());
        self.written.push(Vec::new());
    }

    /// Leaves the current element, returning its segment.
    fn pop(&mut self) -> String {
        self.written.pop();
        self.path.pop().unwrap_or_default()
    }

    fn open(&mut self, seg: &str) {
        self.open_with(seg, "");
    }

    /// Writes the remaining unmapped entries under the current element, then closes it.
    fn close(&mut self) {
        let prefix = self.path.join("/");
        let mut rest: Vec<(Vec<&'a str>, &'a str)> = Vec::new();
        for (p, v, used) in self.extras.iter_mut() {
            if *used {
                continue;
            }
            let tail = if prefix.is_empty() {
                Some(*p)
            } else {
                p.strip_prefix(prefix.as_str())
                    .and_then(|t| t.strip_prefix('/'))
            };
            if let Some(tail) = tail {
                *used = true;
                rest.push((tail.split('/').collect(), *v));
            }
        }
        self.tree(&rest);
        let seg = self.pop();
        self.indent();
        self.out.push_str("</edXML:");
        self.out.push_str(element_name(&seg));
        self.out.push_str(">\n");
    }

    /// Writes unmapped entries (relative paths) as nested elements, in first-seen order.
    fn tree(&mut self, entries: &[(Vec<&'a str>, &'a str)]) {
        let mut done: Vec<&str> = Vec::new();
        for (segs, _) in entries {
            let Some(first) = segs.first().copied() else {
                continue;
            };
            if done.contains(&first) {
                continue;
            }
            done.push(first);
            if !valid_name(element_name(first)) {
                continue;
            }
            let group: Vec<(Vec<&'a str>, &'a str)> = entries
                .iter()
                .filter(|(s, _)| s.first() == Some(&first))
                .map(|(s, v)| (s[1..].to_vec(), *v))
                .collect();
            let leaf = group.iter().find(|(s, _)| s.is_empty()).map(|(_, v)| *v);
            let deeper: Vec<(Vec<&'a str>, &'a str)> =
                group.into_iter().filter(|(s, _)| !s.is_empty()).collect();
            if deeper.is_empty() {
                self.leaf(element_name(first), leaf.unwrap_or_default());
            } else {
                self.indent();
                self.out.push_str("<edXML:");
                self.out.push_str(element_name(first));
                self.out.push_str(">\n");
                self.push(first);
                self.tree(&deeper);
                self.pop();
                self.indent();
                self.out.push_str("</edXML:");
                self.out.push_str(element_name(first));
                self.out.push_str(">\n");
            }
        }
    }

    fn leaf(&mut self, name: &str, value: &str) {
        // Elements kept below this one (the package had text and elements in it) are written
        // inside it: after it, they would make a second element of the same name.
        let index = self
            .written
            .last()
            .map_or(0, |w| w.iter().filter(|n| n.as_str() == name).count());
        let seg = seg(name, index);
        let prefix = if self.path.is_empty() {
            format!("{seg}/")
        } else {
            format!("{}/{seg}/", self.path.join("/"))
        };
        let mut inner: Vec<(Vec<&'a str>, &'a str)> = Vec::new();
        for (p, v, used) in self.extras.iter_mut() {
            if let Some(tail) = p.strip_prefix(prefix.as_str()).filter(|_| !*used) {
                *used = true;
                inner.push((tail.split('/').collect(), *v));
            }
        }
        if !inner.is_empty() {
            self.indent();
            self.out.push_str("<edXML:");
            self.out.push_str(name);
            self.out.push('>');
            self.out.push_str(&xml_text(value));
            self.out.push('\n');
            self.push(&seg);
            self.tree(&inner);
            self.pop();
            self.indent();
            self.out.push_str("</edXML:");
            self.out.push_str(name);
            self.out.push_str(">\n");
            return;
        }
        if let Some(siblings) = self.written.last_mut() {
            siblings.push(name.to_owned());
        }
        self.indent();
        if value.is_empty() {
            self.out.push_str("<edXML:");
            self.out.push_str(name);
            self.out.push_str("/>\n");
        } else {
            self.out.push_str("<edXML:");
            self.out.push_str(name);
            self.out.push('>');
            self.out.push_str(&xml_text(value));
            self.out.push_str("</edXML:");
            self.out.push_str(name);
            self.out.push_str(">\n");
        }
    }

    /// Writes bytes as base64 text, encoded straight into the output (no copy of the text).
    fn base64_leaf(&mut self, name: &str, bytes: &[u8]) {
        if let Some(siblings) = self.written.last_mut() {
            siblings.push(name.to_owned());
        }
        self.indent();
        self.out.push_str("<edXML:");
        self.out.push_str(name);
        self.out.push('>');
        BASE64.encode_string(bytes, &mut self.out);
        self.out.push_str("</edXML:");
        self.out.push_str(name);
        self.out.push_str(">\n");
    }

    /// Writes the unmapped value kept for `name` under the current element, if any, in place.
    fn extra(&mut self, name: &str) {
        let path = format!("{}/{name}", self.path.join("/"));
        let found = self
            .extras
            .iter_mut()
            .find(|(p, _, used)| !*used && *p == path)
            .map(|e| {
                e.2 = true;
                e.1
            });
        if let Some(v) = found {
            self.leaf(name, v);
        }
    }

    fn verbatim(&mut self, text: &str) {
        self.indent();
        self.out.push_str(text.trim());
        self.out.push('\n');
    }
}

fn element_name(seg: &str) -> &str {
    seg.split_once('[').map(|(n, _)| n).unwrap_or(seg)
}

/// An XML name without a colon (an NCName: the `Name` production of XML 1.0, fifth edition, less
/// `:`). The importer refuses elements whose prefix or local name is not one, so every path
/// segment it keeps can be written back; only hand-edited JSON can hold others.
fn valid_name(name: &str) -> bool {
    fn start(c: char) -> bool {
        matches!(c,
            'A'..='Z' | '_' | 'a'..='z' | '\u{C0}'..='\u{D6}' | '\u{D8}'..='\u{F6}'
            | '\u{F8}'..='\u{2FF}' | '\u{370}'..='\u{37D}' | '\u{37F}'..='\u{1FFF}'
            | '\u{200C}'..='\u{200D}' | '\u{2070}'..='\u{218F}' | '\u{2C00}'..='\u{2FEF}'
            | '\u{3001}'..='\u{D7FF}' | '\u{F900}'..='\u{FDCF}' | '\u{FDF0}'..='\u{FFFD}'
            | '\u{10000}'..='\u{EFFFF}')
    }
    let mut chars = name.chars();
    chars.next().is_some_and(start)
        && chars.all(|c| {
            start(c)
                || matches!(c, '-' | '.' | '0'..='9' | '\u{B7}' | '\u{300}'..='\u{36F}'
                    | '\u{203F}'..='\u{2040}')
        })
}

fn write_organization(w: &mut Writer<'_>, seg: &str, o: &Organization) {
    w.open(seg);
    w.leaf("OrganId", &o.code);
    w.extra("OrganizationInCharge");
    w.leaf("OrganName", &o.name);
    w.leaf("OrganAdd", &o.address);
    w.leaf("Email", &o.email);
    w.leaf("Telephone", &o.phone);
    w.leaf("Fax", &o.fax);
    w.leaf("Website", &o.website);
    w.close();
}

fn write_staff(w: &mut Writer<'_>, s: &StaffInfo) {
    w.open("StaffInfo");
    w.leaf("Department", &s.department);
    w.leaf("Staff", &s.staff);
    w.leaf("Mobile", &s.mobile);
    w.leaf("Email", &s.email);
    w.close();
}

fn seg(name: &str, index: usize) -> String {
    if index == 0 {
        name.to_owned()
    } else {
        format!("{name}[{}]", index + 1)
    }
}

fn open_envelope(w: &mut Writer<'_>) {
    w.out.push_str("<edXML:edXML xmlns:edXML=\"");
    w.out.push_str(EDXML_NS);
    w.out.push_str("\">\n");
    w.open("edXMLEnvelope");
    w.open("edXMLHeader");
}

fn write_header_tail(w: &mut Writer<'_>, signature: Option<&str>) {
    if let Some(sig) = signature {
        w.verbatim(sig);
    }
    w.close(); // edXMLHeader
}

fn finish(mut w: Writer<'_>) -> String {
    // Remaining unmapped entries relative to the root, then the root's end tag.
    let mut rest: Vec<(Vec<&str>, &str)> = Vec::new();
    let extras = std::mem::take(&mut w.extras);
    for (p, v, used) in &extras {
        if !*used {
            rest.push((p.split('/').collect(), v));
        }
    }
    w.tree(&rest);
    w.out.push_str("</edXML:edXML>\n");
    w.out
}

/// Writes a document package in the strict form. `env.attachments` is not consulted: the
/// manifests written are those of `attachments`. The elements and the original `Signature`
/// kept in `env.edxml` (from an imported package) are written back.
pub fn export_document(env: &Envelope, attachments: &[(AttachmentManifest, Vec<u8>)]) -> String {
    let (unmapped, signature) = extras_of(env.edxml.as_ref());
    write_document(env, attachments, &unmapped, signature)
}

/// Writes a status package in the strict form, with what `r.edxml` kept.
pub fn export_status(r: &StatusReceipt) -> String {
    let (unmapped, signature) = extras_of(r.edxml.as_ref());
    write_status(r, &unmapped, signature)
}

fn extras_of(x: Option<&EdxmlExtras>) -> (Vec<(String, String)>, Option<&str>) {
    match x {
        None => (Vec::new(), None),
        Some(x) => (
            x.unmapped
                .iter()
                .map(|f| (f.path.clone(), f.value.clone()))
                .collect(),
            Some(x.original_signature.as_str()).filter(|s| !s.is_empty()),
        ),
    }
}

fn extras(unmapped: &[(String, String)], signature: Option<&str>) -> Option<EdxmlExtras> {
    if unmapped.is_empty() && signature.is_none() {
        return None;
    }
    Some(EdxmlExtras {
        unmapped: unmapped
            .iter()
            .map(|(path, value)| EdxmlField {
                path: path.clone(),
                value: value.clone(),
            })
            .collect(),
        original_signature: signature.unwrap_or_default().to_owned(),
    })
}

impl ImportedDocument {
    /// The envelope to send, with what the model has no field for kept in `edxml`, and the
    /// attachments. The envelope's `attachments` are the manifests of the returned ones.
    pub fn into_parts(self) -> (Envelope, Attachments) {
        let mut env = self.envelope;
        env.edxml = extras(&self.unmapped, self.original_signature.as_deref());
        env.attachments = self.attachments.iter().map(|(m, _)| m.clone()).collect();
        (env, self.attachments)
    }
}

impl ImportedStatus {
    /// The receipt, with what the model has no field for kept in `edxml`.
    pub fn into_receipt(self) -> StatusReceipt {
        let mut r = self.receipt;
        r.edxml = extras(&self.unmapped, self.original_signature.as_deref());
        r
    }
}

/// Writes an imported package back, unmapped elements and original signature included.
pub fn export(imported: &Imported) -> String {
    match imported {
        Imported::Document(d) => write_document(
            &d.envelope,
            &d.attachments,
            &d.unmapped,
            d.original_signature.as_deref(),
        ),
        Imported::Status(s) => {
            write_status(&s.receipt, &s.unmapped, s.original_signature.as_deref())
        }
    }
}

fn write_document(
    env: &Envelope,
    attachments: &[(AttachmentManifest, Vec<u8>)],
    unmapped: &[(String, String)],
    signature: Option<&str>,
) -> String {
    let mut w = Writer::new(unmapped);
    // The base64 text dominates: room for it up front, so the package is not moved while it
    // grows.
    let encoded: usize = attachments
        .iter()
        .map(|(_, b)| b.len().div_ceil(3).saturating_mul(4))
        .fold(0, usize::saturating_add);
    let kept: usize = unmapped.iter().map(|(p, v)| p.len() + v.len()).sum();
    w.out
        .reserve(encoded.saturating_add(kept).saturating_add(16 * 1024));
    open_envelope(&mut w);
    w.open("MessageHeader");
    if let Some(f) = &env.from {
        write_organization(&mut w, "From", f);
    }
    for (i, t) in env.to.iter().enumerate() {
        write_organization(&mut w, &seg("To", i), t);
    }
    w.leaf("DocumentId", &env.document_id);
    if let Some(c) = &env.code {
        w.open("Code");
        w.leaf("CodeNumber", &c.number);
        w.leaf("CodeNotation", &c.notation);
        w.close();
    }
    if let Some(p) = &env.promulgation {
        w.open("PromulgationInfo");
        w.leaf("Place", &p.place);
        w.leaf("PromulgationDate", &format_date(&p.date));
        w.close();
    }
    if let Some(t) = &env.document_type {
        w.open("DocumentType");
        w.leaf("Type", &t.r#type.to_string());
        w.leaf("TypeDetail", &t.type_detail.to_string());
        w.leaf("TypeName", &t.type_name);
        w.close();
    }
    w.leaf("Subject", &env.subject);
    w.leaf("Content", &env.content);
    if let Some(s) = &env.signer {
        w.open("SignerInfo");
        w.leaf("Competence", &s.competence);
        w.leaf("Position", &s.position);
        w.leaf("FullName", &s.full_name);
        w.close();
    }
    w.leaf("DueDate", &format_date(&env.due_date));
    if let Some(o) = &env.other_info {
        w.open("OtherInfo");
        w.leaf("Priority", &o.priority.to_string());
        w.leaf("SphereOfPromulgation", &o.sphere_of_promulgation);
        w.extra("TyperNotation");
        w.leaf("PromulgationAmount", &o.promulgation_amount.to_string());
        w.leaf("PageAmount", &o.page_amount.to_string());
        w.extra("Direction");
        if !o.appendixes.is_empty() {
            w.open("Appendixes");
            for a in &o.appendixes {
                w.leaf("Appendix", a);
            }
            w.close();
        }
        w.close();
    }
    for (i, r) in env.response_for.iter().enumerate() {
        w.open(&seg("ResponseFor", i));
        w.leaf("OrganId", &r.organ_id);
        w.leaf("Code", &r.code);
        w.leaf("PromulgationDate", &format_date(&r.promulgation_date));
        w.leaf("DocumentId", &r.document_id);
        w.close();
    }
    w.leaf("SteeringType", &env.steering_type.to_string());
    if !env.to_places.is_empty() {
        w.open("ToPlaces");
        for p in &env.to_places {
            w.leaf("Place", p);
        }
        w.close();
    }
    w.close(); // MessageHeader

    w.open("TraceHeaderList");
    for (i, t) in env.trace.iter().enumerate() {
        w.open(&seg("TraceHeader", i));
        w.leaf("OrganId", &t.agency);
        w.leaf("Timestamp", &format_timestamp(t.received_unix_ms));
        w.close();
    }
    if let Some(b) = &env.business {
        w.open("Bussiness");
        if !b.target_document_id.is_empty() {
            w.leaf("DocumentId", &b.target_document_id);
        }
        w.leaf("BussinessDocType", &b.doc_type.to_string());
        w.leaf("BussinessDocReason", &b.reason);
        w.leaf("Paper", if b.paper { "1" } else { "0" });
        if let Some(s) = &b.staff {
            write_staff(&mut w, s);
        }
        if !b.replacements.is_empty() {
            w.open("ReplacementInfoList");
            for (i, r) in b.replacements.iter().enumerate() {
                w.open(&seg("ReplacementInfo", i));
                w.leaf("DocumentId", &r.document_id);
                w.open("OrganIdList");
                for o in &r.organ_ids {
                    w.leaf("OrganId", o);
                }
                w.close();
                w.close();
            }
            w.close();
        }
        w.close();
    }
    w.close(); // TraceHeaderList
    write_header_tail(&mut w, signature);

    if !attachments.is_empty() {
        w.open("edXMLBody");
        w.open_with("edXMLManifest", " version=\"1.0\"");
        for (i, (m, _)) in attachments.iter().enumerate() {
            w.open(&seg("Reference", i));
            w.leaf("ContentId", &format!("cid:{}", i + 1));
            w.leaf("ContentType", &m.content_type);
            w.leaf("Description", &m.description);
            w.leaf("AttachmentName", &m.name);
            w.close();
        }
        w.close();
        w.close();
    }
    w.close(); // edXMLEnvelope

    if !attachments.is_empty() {
        w.open("AttachmentEncoded");
        for (i, (m, bytes)) in attachments.iter().enumerate() {
            w.open(&seg("Attachment", i));
            w.leaf("ContentId", &format!("cid:{}", i + 1));
            w.leaf("AttachmentName", &m.name);
            w.leaf("Description", &m.description);
            w.leaf("ContentType", &m.content_type);
            w.base64_leaf(ATTACHMENT_TEXT, bytes);
            w.close();
        }
        w.close();
    }
    finish(w)
}

fn write_status(
    r: &StatusReceipt,
    unmapped: &[(String, String)],
    signature: Option<&str>,
) -> String {
    let mut w = Writer::new(unmapped);
    open_envelope(&mut w);
    w.open("MessageHeader");
    if let Some(f) = &r.from {
        write_organization(&mut w, "From", f);
    }
    if let Some(rf) = &r.response_for {
        w.open("ResponseFor");
        w.leaf("OrganId", &rf.organ_id);
        w.leaf("Code", &rf.code);
        w.extra("PromulgationDate");
        w.leaf("DocumentId", &rf.document_id);
        w.close();
    }
    if let Some(s) = &r.staff {
        write_staff(&mut w, s);
    }
    w.leaf("StatusCode", &format!("{:02}", r.status));
    w.leaf("Description", &r.description);
    w.leaf("Timestamp", &format_timestamp(r.timestamp_unix_ms));
    w.close(); // MessageHeader
    write_header_tail(&mut w, signature);
    w.close(); // edXMLEnvelope
    finish(w)
}

/// JSON form of the attachments: manifest plus base64 bytes.
mod attachments_json {
    use super::{AttachmentManifest, BASE64};
    use base64::Engine as _;
    use serde::{Deserialize, Deserializer, Serialize, Serializer};

    #[derive(Serialize, Deserialize)]
    struct Item {
        manifest: AttachmentManifest,
        data_base64: String,
    }

    pub(super) fn serialize<S: Serializer>(
        v: &[(AttachmentManifest, Vec<u8>)],
        s: S,
    ) -> Result<S::Ok, S::Error> {
        let items: Vec<Item> = v
            .iter()
            .map(|(m, b)| Item {
                manifest: m.clone(),
                data_base64: BASE64.encode(b),
            })
            .collect();
        items.serialize(s)
    }

    pub(super) fn deserialize<'de, D: Deserializer<'de>>(
        d: D,
    ) -> Result<Vec<(AttachmentManifest, Vec<u8>)>, D::Error> {
        let items = Vec::<Item>::deserialize(d)?;
        items
            .into_iter()
            .map(|i| {
                BASE64
                    .decode(i.data_base64.as_bytes())
                    .map(|b| (i.manifest, b))
                    .map_err(serde::de::Error::custom)
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use proptest::prelude::*;

    /// Decodes `pieces` as [`decode_attachment`] does, with chunks of `chunk_len` symbols.
    fn in_pieces(pieces: &[Vec<u8>], chunk_len: usize) -> Result<Vec<u8>, base64::DecodeError> {
        let symbols: Vec<u8> = pieces
            .iter()
            .flatten()
            .copied()
            .filter(|b| !b.is_ascii_whitespace())
            .collect();
        let mut d = Base64Pieces::new(symbols.len(), symbols.last().copied(), chunk_len)?;
        for p in pieces {
            d.push(p)?;
        }
        d.finish()
    }

    /// What the importer did before decoding in pieces: strip whitespace, decode at once.
    fn whole(pieces: &[Vec<u8>]) -> Result<Vec<u8>, base64::DecodeError> {
        let compact: Vec<u8> = pieces
            .iter()
            .flatten()
            .copied()
            .filter(|b| !b.is_ascii_whitespace())
            .collect();
        BASE64.decode(compact)
    }

    /// Base64-ish text: mostly symbols, some whitespace, padding and foreign bytes.
    fn noisy() -> impl Strategy<Value = Vec<Vec<u8>>> {
        let byte = prop_oneof![
            20 => prop::sample::select(
                b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/".to_vec()
            ),
            3 => prop::sample::select(b" \t\r\n\x0c".to_vec()),
            1 => Just(b'='),
            1 => prop::sample::select(b"!-_.*\x00\x7f\xc3".to_vec()),
        ];
        prop::collection::vec(prop::collection::vec(byte, 0..40), 0..8)
    }

    /// Valid base64 of `data`, padding optional, cut into pieces with whitespace between.
    fn valid() -> impl Strategy<Value = (Vec<u8>, Vec<Vec<u8>>)> {
        (
            prop::collection::vec(any::<u8>(), 0..300),
            any::<bool>(),
            prop::collection::vec(
                (
                    1usize..50,
                    prop::sample::select(vec!["", " ", "\r\n", "\n\t"]),
                ),
                1..10,
            ),
        )
            .prop_map(|(data, pad, cuts)| {
                let mut text = BASE64.encode(&data);
                if !pad {
                    text = text.trim_end_matches('=').to_owned();
                }
                let mut pieces = Vec::new();
                let mut rest = text.as_str();
                for (n, ws) in cuts.iter().cycle().take(64) {
                    if rest.is_empty() {
                        break;
                    }
                    let (a, b) = rest.split_at((*n).min(rest.len()));
                    pieces.push(format!("{a}{ws}").into_bytes());
                    rest = b;
                }
                if !rest.is_empty() {
                    pieces.push(rest.as_bytes().to_vec());
                }
                (data, pieces)
            })
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(2000))]

        #[test]
        fn pieces_decode_like_the_whole_text(pieces in noisy(), chunk in 1usize..24) {
            prop_assert_eq!(in_pieces(&pieces, chunk), whole(&pieces));
        }

        #[test]
        fn valid_text_in_any_pieces_decodes((data, pieces) in valid(), chunk in 1usize..64) {
            prop_assert_eq!(in_pieces(&pieces, chunk).unwrap(), data);
        }
    }

    #[test]
    fn padding_inside_is_refused_at_its_offset_across_chunks() {
        // "QQ==" is complete on its own: a decoder that decoded each chunk separately would
        // accept it followed by more quads.
        let pieces = vec![b"QQ==".to_vec(), b"QUJD".to_vec()];
        let err = in_pieces(&pieces, 4).unwrap_err();
        assert_eq!(err, base64::DecodeError::InvalidByte(2, b'='));
        assert_eq!(Err(err), whole(&pieces));
    }

    #[test]
    fn the_buffer_is_sized_once() {
        let data: Vec<u8> = (0..100_000u32).map(|i| (i * 7 % 251) as u8).collect();
        let text = BASE64.encode(&data);
        let lines: Vec<Vec<u8>> = text
            .as_bytes()
            .chunks(76)
            .map(|l| [l, b"\r\n"].concat())
            .collect();
        let symbols = text.len();
        let mut d = Base64Pieces::new(symbols, text.bytes().last(), 1024).unwrap();
        let capacity = d.out.capacity();
        for l in &lines {
            d.push(l).unwrap();
        }
        let out = d.finish().unwrap();
        assert_eq!(out, data);
        assert_eq!(out.capacity(), capacity, "no reallocation while decoding");
        assert!(capacity - out.len() < 3);
    }
}
