//! The one validation path under arbitrary input: a document whose text fields, id and
//! attachment name are drawn from a mix of ordinary text, Vietnamese letters, control
//! characters, separators and XML-hostile characters is either refused with a named field, or
//! accepted, and then its edXML export is well-formed and imports back to the same fields.
//!
//! `PROPTEST_CASES` sets the number of cases (2000 by default here); the counts are printed.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use lienthong_common::envelope::{document_id_for, validate_envelope};
use lienthong_common::proto::v1::{
    AttachmentManifest, DocumentCode, Envelope, Organization, PromulgationInfo, SignerInfo,
};
use lienthong_edxml::{self as edxml, Imported};
use proptest::prelude::*;
use time::macros::date;

/// Fields a refusal may name: every message starts with one of these.
const FIELDS: &[&str] = &[
    "id",
    "from.name",
    "from.contact",
    "to.name",
    "code.number",
    "code.notation",
    "promulgation.place",
    "subject",
    "content",
    "signer",
    "document_id",
    "attachments.name",
    "attachments.description",
];

fn piece() -> impl Strategy<Value = String> {
    prop_oneof![
        40 => "[a-zA-Z0-9 ]{1,6}",
        30 => "[àáạảãâầấậẩẫăằắặẳẵèéẹẻẽêềếệểễđĐƯươỜ]{1,4}",
        1 => Just("\0".to_owned()),
        1 => Just("\u{1b}".to_owned()),
        1 => Just("\u{7}".to_owned()),
        1 => Just("\u{b}\u{c}".to_owned()),
        1 => Just("\t".to_owned()),
        1 => Just("\n".to_owned()),
        1 => Just("\r\n".to_owned()),
        1 => Just("\u{85}".to_owned()),
        1 => Just("\u{fffe}".to_owned()),
        1 => Just("\u{202e}".to_owned()),
        1 => Just("../".to_owned()),
        1 => Just("\\".to_owned()),
        1 => Just("<&>\"'".to_owned()),
        1 => Just(":".to_owned()),
        1 => Just("-_.".to_owned()),
    ]
}

fn text(max_pieces: usize) -> impl Strategy<Value = String> {
    prop::collection::vec(piece(), 1..max_pieces).prop_map(|v| v.concat())
}

fn envelope(
    id: String,
    name: String,
    notation: String,
    subject: String,
    signer: String,
    file: String,
) -> (Envelope, Vec<(AttachmentManifest, Vec<u8>)>) {
    let data = b"%PDF-1.7 noi dung".to_vec();
    let manifest = AttachmentManifest {
        name: file,
        content_type: "application/pdf".into(),
        size: data.len() as u64,
        sha256: ring::digest::digest(&ring::digest::SHA256, &data)
            .as_ref()
            .to_vec(),
        ..Default::default()
    };
    let mut env = Envelope {
        id,
        from: Some(Organization {
            code: "000.21.31.H53".into(),
            name,
            ..Default::default()
        }),
        to: vec![Organization {
            code: "000.00.00.G14".into(),
            name: "Bộ Nội vụ".into(),
            ..Default::default()
        }],
        code: Some(DocumentCode {
            number: "15".into(),
            notation,
        }),
        promulgation: Some(PromulgationInfo {
            place: "Bến Cầu".into(),
            date: "2026-11-20".into(),
        }),
        subject,
        signer: Some(SignerInfo {
            full_name: signer,
            ..Default::default()
        }),
        attachments: vec![manifest.clone()],
        ..Default::default()
    };
    env.document_id = document_id_for(&env);
    (env, vec![(manifest, data)])
}

/// What edXML keeps of a text: surrounding white space is not significant in a package, and
/// XML reads every line end as a line feed.
fn as_edxml_keeps(s: &str) -> String {
    s.replace("\r\n", "\n")
        .replace('\r', "\n")
        .trim()
        .to_owned()
}

#[test]
fn refused_with_a_field_or_exported_and_imported_back() {
    let cases = std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|c| c.parse().ok())
        .unwrap_or(2000);
    let mut runner = proptest::test_runner::TestRunner::new(ProptestConfig {
        cases,
        ..ProptestConfig::default()
    });
    let accepted = std::cell::Cell::new(0u32);
    let refused = std::cell::Cell::new(0u32);
    let inputs = (
        prop_oneof![
            3 => Just("8f2c0c1e-6a0b-4b8e-9d0e-000000000001".to_owned()),
            1 => text(4)
        ],
        text(6),
        text(4),
        text(8),
        text(4),
        prop_oneof![1 => Just("a.pdf".to_owned()), 1 => text(4)],
    );
    let result = runner.run(&inputs, |(id, name, notation, subject, signer, file)| {
        let (env, attachments) = envelope(id, name, notation, subject, signer, file);
        match validate_envelope(&env, date!(2026 - 11 - 27)) {
            Err(e) => {
                refused.set(refused.get() + 1);
                let msg = e.to_string();
                prop_assert!(
                    FIELDS.iter().any(|f| msg.starts_with(f)),
                    "refusal names no field: {msg}"
                );
            }
            Ok(()) => {
                accepted.set(accepted.get() + 1);
                let written = edxml::export_document(&env, &attachments);
                prop_assert!(
                    written.chars().all(lienthong_edxml::xml_char),
                    "export holds a character XML 1.0 forbids"
                );
                let back = match edxml::import(written.as_bytes()) {
                    Ok(Imported::Document(d)) => d,
                    Ok(Imported::Status(_)) => panic!("a document came back as a status"),
                    Err(e) => panic!("export of an accepted document refused: {e}\n{written}"),
                };
                let (got, files) = back.into_parts();
                let want_name = env
                    .from
                    .as_ref()
                    .map(|f| f.name.as_str())
                    .unwrap_or_default();
                let got_name = got
                    .from
                    .as_ref()
                    .map(|f| f.name.as_str())
                    .unwrap_or_default();
                prop_assert_eq!(as_edxml_keeps(got_name), as_edxml_keeps(want_name));
                prop_assert_eq!(as_edxml_keeps(&got.subject), as_edxml_keeps(&env.subject));
                prop_assert_eq!(
                    got.code.as_ref().map(|c| as_edxml_keeps(&c.notation)),
                    env.code.as_ref().map(|c| as_edxml_keeps(&c.notation))
                );
                prop_assert_eq!(
                    got.signer.as_ref().map(|s| as_edxml_keeps(&s.full_name)),
                    env.signer.as_ref().map(|s| as_edxml_keeps(&s.full_name))
                );
                prop_assert_eq!(files.len(), 1);
                prop_assert_eq!(&files[0].0.name, &env.attachments[0].name);
                prop_assert_eq!(&files[0].1, &attachments[0].1);
            }
        }
        Ok(())
    });
    println!(
        "intake property: {cases} cases, {} accepted and imported back, {} refused with a field",
        accepted.get(),
        refused.get()
    );
    if let Err(e) = result {
        panic!("{e}");
    }
    assert!(
        accepted.get() > 0 && refused.get() > 0,
        "both paths exercised"
    );
}
