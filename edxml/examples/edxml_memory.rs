//! Peak memory of importing one large edXML package, for docs/edxml.md.
//!
//! ```text
//! cargo run --release -p lienthong-edxml --example edxml_memory [-- [--wrap] [ATTACHMENT_MIB]]
//! ```
//!
//! Builds a document package in memory with one attachment of pseudo-random bytes (by default the
//! largest whose package still fits in `MAX_EDXML_BYTES`; a 256 MiB attachment does not, its
//! base64 alone is 341 MiB), imports it, checks the decoded bytes' SHA-256 and prints the resident
//! set before the import and its peak (`VmHWM` in /proc/self/status, Linux only). The base64 is one
//! line, as in the public samples, or with `--wrap` MIME-style lines of 76 characters ending in
//! CRLF. The package is generated straight into its final buffer (exact capacity, no copy of the
//! raw attachment kept), so the resident set before the import is about the package alone. Then it
//! drops the package, resets the peak (`/proc/self/clear_refs`) and measures `export` the same way.
#![allow(missing_docs)]

use std::process::ExitCode;
use std::time::Instant;

use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use lienthong_edxml::{self as edxml, Imported, EDXML_NS, MAX_EDXML_BYTES};

const MIB: f64 = 1024.0 * 1024.0;
/// Raw bytes per generated block: a multiple of 57, so wrapped lines never straddle blocks.
const BLOCK: usize = 57 * 1024;
/// Raw bytes per wrapped base64 line (76 characters).
const LINE_RAW: usize = 57;

fn main() -> ExitCode {
    match run() {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("edxml_memory: {e}");
            ExitCode::FAILURE
        }
    }
}

fn run() -> Result<(), String> {
    let mut wrap = false;
    let mut mib: Option<f64> = None;
    for arg in std::env::args().skip(1) {
        match arg.as_str() {
            "--wrap" => wrap = true,
            n => {
                mib = Some(
                    n.parse::<f64>()
                        .map_err(|_| format!("{n:?} is neither --wrap nor a size in MiB"))?,
                )
            }
        }
    }
    let (head, tail) = package_frame();
    let overhead = head.len() + tail.len();
    let size = match mib {
        Some(m) => (m * MIB) as usize,
        None => largest_fitting(MAX_EDXML_BYTES.saturating_sub(overhead), wrap),
    };
    let package_len = overhead + encoded_len(size, wrap);
    if package_len > MAX_EDXML_BYTES {
        return Err(format!(
            "a {:.1} MiB attachment makes a {:.1} MiB package: over MAX_EDXML_BYTES ({:.0} MiB)",
            size as f64 / MIB,
            package_len as f64 / MIB,
            MAX_EDXML_BYTES as f64 / MIB
        ));
    }

    let started = Instant::now();
    let (package, expected_sha) = build(&head, &tail, size, wrap);
    let built = started.elapsed();
    let before = status()?;

    let started = Instant::now();
    let imported = edxml::import(&package).map_err(|e| format!("import failed: {e}"))?;
    let took = started.elapsed();
    let after = status()?;

    let Imported::Document(doc) = &imported else {
        return Err("imported as a status package".into());
    };
    let [(manifest, bytes)] = doc.attachments.as_slice() else {
        return Err(format!("{} attachments, expected 1", doc.attachments.len()));
    };
    let sha = ring::digest::digest(&ring::digest::SHA256, bytes);
    if sha.as_ref() != expected_sha.as_slice() || manifest.sha256 != expected_sha {
        return Err("decoded attachment's SHA-256 differs".into());
    }
    if bytes.len() != size {
        return Err(format!("decoded {} bytes, expected {size}", bytes.len()));
    }

    let package_mib = package.len() as f64 / MIB;
    let decoded_mib = size as f64 / MIB;
    let added = after.hwm_kib.saturating_sub(before.rss_kib) as f64 / 1024.0;
    println!(
        "package: {} bytes ({package_mib:.1} MiB), base64 {}",
        package.len(),
        if wrap {
            "in 76-character CRLF lines"
        } else {
            "on one line"
        }
    );
    println!("attachment: {size} bytes ({decoded_mib:.1} MiB) decoded, SHA-256 ok");
    println!(
        "generated in {:.2} s; resident before import: {:.1} MiB (peak so far {:.1} MiB)",
        built.as_secs_f64(),
        before.rss_kib as f64 / 1024.0,
        before.hwm_kib as f64 / 1024.0
    );
    println!(
        "import: {:.2} s; peak resident (VmHWM): {:.1} MiB",
        took.as_secs_f64(),
        after.hwm_kib as f64 / 1024.0
    );
    println!(
        "import added at its peak: {added:.1} MiB = {:.2} x decoded size \
         (ideal: 1.00, the decoded bytes alone)",
        added / decoded_mib
    );
    println!(
        "peak / (package + decoded): {:.2}",
        after.hwm_kib as f64 / 1024.0 / (package_mib + decoded_mib)
    );

    // Writing it back: the package is dropped first, and the peak reset where the kernel allows.
    drop(package);
    if std::fs::write("/proc/self/clear_refs", "5").is_err() {
        println!("export: not measured (cannot reset VmHWM through /proc/self/clear_refs)");
        return Ok(());
    }
    let before = status()?;
    let started = Instant::now();
    let written = edxml::export(&imported);
    let took = started.elapsed();
    let after = status()?;
    let added = after.hwm_kib.saturating_sub(before.rss_kib) as f64 / 1024.0;
    println!(
        "export: {:.2} s, {:.1} MiB written; resident before {:.1} MiB, peak {:.1} MiB, \
         added {added:.1} MiB = {:.2} x the package written (ideal: 1.00)",
        took.as_secs_f64(),
        written.len() as f64 / MIB,
        before.rss_kib as f64 / 1024.0,
        after.hwm_kib as f64 / 1024.0,
        added / (written.len() as f64 / MIB)
    );
    Ok(())
}

/// The package around the attachment's base64 text.
fn package_frame() -> (String, String) {
    let head = format!(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n\
         <edXML:edXML xmlns:edXML=\"{EDXML_NS}\">\n\
         <edXML:edXMLEnvelope>\n<edXML:edXMLHeader>\n<edXML:MessageHeader>\n\
         <edXML:From><edXML:OrganId>000.00.00.G22</edXML:OrganId></edXML:From>\n\
         <edXML:To><edXML:OrganId>000.00.00.H41</edXML:OrganId></edXML:To>\n\
         <edXML:DocumentId>000.00.00.G22,2026/01/05,1/VPCP</edXML:DocumentId>\n\
         <edXML:Subject>Large attachment</edXML:Subject>\n\
         </edXML:MessageHeader>\n</edXML:edXMLHeader>\n\
         <edXML:edXMLBody><edXML:edXMLManifest version=\"1.0\"><edXML:Reference>\
         <edXML:ContentId>cid:1</edXML:ContentId>\
         <edXML:ContentType>application/octet-stream</edXML:ContentType>\
         <edXML:AttachmentName>large.bin</edXML:AttachmentName>\
         </edXML:Reference></edXML:edXMLManifest></edXML:edXMLBody>\n\
         </edXML:edXMLEnvelope>\n\
         <edXML:AttachmentEncoded><edXML:Attachment>\
         <edXML:ContentId>cid:1</edXML:ContentId>\
         <edXML:ContentTransferEncoded>\n"
    );
    let tail = "\n</edXML:ContentTransferEncoded></edXML:Attachment></edXML:AttachmentEncoded>\n\
                </edXML:edXML>\n"
        .to_owned();
    (head, tail)
}

fn encoded_len(raw: usize, wrap: bool) -> usize {
    let chars = raw.div_ceil(3) * 4;
    if wrap {
        chars + raw.div_ceil(LINE_RAW) * 2
    } else {
        chars
    }
}

/// The largest attachment whose base64 text fits in `room` bytes.
fn largest_fitting(room: usize, wrap: bool) -> usize {
    let per_unit = if wrap { (LINE_RAW, 78) } else { (3, 4) };
    let mut raw = room / per_unit.1 * per_unit.0;
    while encoded_len(raw, wrap) > room {
        raw -= 1;
    }
    raw
}

/// The package bytes and the attachment's SHA-256, the attachment never held whole.
fn build(head: &str, tail: &str, size: usize, wrap: bool) -> (Vec<u8>, Vec<u8>) {
    let mut out = Vec::with_capacity(head.len() + encoded_len(size, wrap) + tail.len());
    out.extend_from_slice(head.as_bytes());
    let mut sha = ring::digest::Context::new(&ring::digest::SHA256);
    let mut state = 0x9E37_79B9_7F4A_7C15_u64;
    let mut block = vec![0u8; BLOCK];
    let mut encoded = String::with_capacity(BLOCK / 3 * 4);
    let mut left = size;
    while left > 0 {
        let n = left.min(BLOCK);
        for b in block[..n].iter_mut() {
            // xorshift64: reproducible, incompressible enough for the purpose.
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            *b = (state >> 24) as u8;
        }
        sha.update(&block[..n]);
        if wrap {
            for line in block[..n].chunks(LINE_RAW) {
                encoded.clear();
                STANDARD.encode_string(line, &mut encoded);
                out.extend_from_slice(encoded.as_bytes());
                out.extend_from_slice(b"\r\n");
            }
        } else {
            encoded.clear();
            STANDARD.encode_string(&block[..n], &mut encoded);
            out.extend_from_slice(encoded.as_bytes());
        }
        left -= n;
    }
    out.extend_from_slice(tail.as_bytes());
    (out, sha.finish().as_ref().to_vec())
}

struct Status {
    rss_kib: u64,
    hwm_kib: u64,
}

fn status() -> Result<Status, String> {
    let text = std::fs::read_to_string("/proc/self/status")
        .map_err(|e| format!("/proc/self/status: {e} (Linux only)"))?;
    let field = |name: &str| -> Result<u64, String> {
        text.lines()
            .find_map(|l| l.strip_prefix(name))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
            .ok_or_else(|| format!("/proc/self/status has no {name}"))
    };
    Ok(Status {
        rss_kib: field("VmRSS:")?,
        hwm_kib: field("VmHWM:")?,
    })
}
