//! Signed PDFs for the tests: a CA hierarchy from the `openssl` command line and pyHanko
//! (pinned, in the venv deploy/test.sh installs) as the signer.

use std::path::{Path, PathBuf};
use std::process::Command;

use super::openssl;

/// Where deploy/test.sh installs pyHanko; `LT_PYHANKO_PYTHON` names another interpreter.
pub(crate) const PYHANKO_PYTHON: &str = "/opt/lienthong-test/venv/bin/python";

/// Signs IN into OUT in an incremental update: `sign.py IN OUT FIELD KEY CERT CHAIN [TSA_KEY
/// TSA_CERT]`. The time-stamper is pyHanko's in-process test TSA.
pub(crate) const SIGN_PY: &str = r#"
import sys
from pyhanko.keys import load_cert_from_pemder, load_private_key_from_pemder
from pyhanko.pdf_utils.incremental_writer import IncrementalPdfFileWriter
from pyhanko.sign import signers
from pyhanko.sign.timestamps.dummy_client import DummyTimeStamper

src, dst, field, key, cert, chain = sys.argv[1:7]
signer = signers.SimpleSigner.load(key, cert, ca_chain_files=(chain,))
stamper = None
if len(sys.argv) > 8:
    stamper = DummyTimeStamper(
        tsa_cert=load_cert_from_pemder(sys.argv[8]),
        tsa_key=load_private_key_from_pemder(sys.argv[7], passphrase=None),
    )
with open(src, "rb") as inf:
    writer = IncrementalPdfFileWriter(inf)
    meta = signers.PdfSignatureMetadata(field_name=field)
    with open(dst, "wb") as outf:
        signers.sign_pdf(writer, meta, signer=signer, timestamper=stamper, output=outf)
"#;

pub(crate) fn ci() -> bool {
    std::env::var("CI").is_ok_and(|v| v.eq_ignore_ascii_case("true") || v == "1")
}

pub(crate) fn pyhanko_python() -> PathBuf {
    std::env::var_os("LT_PYHANKO_PYTHON")
        .map_or_else(|| PathBuf::from(PYHANKO_PYTHON), PathBuf::from)
}

/// Why the tools are not there, if they are not.
pub(crate) fn missing_tools() -> Option<String> {
    let python = pyhanko_python();
    let pyhanko = Command::new(&python)
        .args(["-c", "import pyhanko.sign"])
        .output()
        .is_ok_and(|o| o.status.success());
    if !pyhanko {
        return Some(format!("no pyHanko at {}", python.display()));
    }
    let pdfsig = Command::new("pdfsig").arg("-v").output().is_ok();
    if !pdfsig {
        return Some("no pdfsig (Debian package poppler-utils)".into());
    }
    None
}

/// `name.pem` / `name.key` issued by `issuer` with the extensions `ext`; `key` is an `openssl
/// req -newkey` argument.
pub(crate) fn issue(dir: &Path, name: &str, subject: &str, issuer: &str, ext: &str, key: &[&str]) {
    let mut args = vec!["req", "-new", "-nodes", "-utf8", "-newkey"];
    args.extend_from_slice(key);
    let (keyout, csr, pem, extfile) = (
        format!("{name}.key"),
        format!("{name}.csr"),
        format!("{name}.pem"),
        format!("{name}.ext"),
    );
    args.extend_from_slice(&["-keyout", &keyout, "-out", &csr, "-subj", subject]);
    openssl(dir, &args);
    std::fs::write(dir.join(&extfile), ext).unwrap();
    let (ca, ca_key) = (format!("{issuer}.pem"), format!("{issuer}.key"));
    openssl(
        dir,
        &[
            "x509",
            "-req",
            "-sha256",
            "-in",
            &csr,
            "-CA",
            &ca,
            "-CAkey",
            &ca_key,
            "-CAcreateserial",
            "-days",
            "365",
            "-out",
            &pem,
            "-extfile",
            &extfile,
        ],
    );
}

/// A root (ECDSA P-256), an issuing CA (RSA) under it, two signers (ECDSA and RSA) and a TSA.
pub(crate) fn pki(dir: &Path) {
    super::openssl_self_signed(
        dir,
        "root",
        "3650",
        "/CN=Test Root CA/O=Ban Co yeu Chinh phu/C=VN",
        &[
            "-addext",
            "basicConstraints=critical,CA:TRUE",
            "-addext",
            "keyUsage=critical,keyCertSign,cRLSign",
        ],
    );
    let ca_ext =
        "basicConstraints=critical,CA:TRUE,pathlen:0\nkeyUsage=critical,keyCertSign,cRLSign\n";
    let signer_ext = "keyUsage=critical,digitalSignature,nonRepudiation\n";
    let ec = ["ec", "-pkeyopt", "ec_paramgen_curve:P-256"];
    issue(
        dir,
        "inter",
        "/CN=Test Issuing CA/O=Ban Co yeu Chinh phu/C=VN",
        "root",
        ca_ext,
        &["rsa:2048"],
    );
    issue(
        dir,
        "leader",
        "/CN=Nguyễn Văn An/O=UBND tỉnh Tây Ninh/C=VN",
        "inter",
        signer_ext,
        &ec,
    );
    issue(
        dir,
        "clerk",
        "/CN=Trần Thị Bình/O=UBND tỉnh Tây Ninh/C=VN",
        "inter",
        signer_ext,
        &["rsa:2048"],
    );
    issue(
        dir,
        "tsa",
        "/CN=Test TSA/O=Ban Co yeu Chinh phu/C=VN",
        "inter",
        "keyUsage=critical,digitalSignature\nextendedKeyUsage=critical,timeStamping\n",
        // pyHanko's test TSA signs with RSA only.
        &["rsa:2048"],
    );
    let anchors = [
        std::fs::read(dir.join("root.pem")).unwrap(),
        std::fs::read(dir.join("inter.pem")).unwrap(),
    ]
    .concat();
    std::fs::write(dir.join("anchors.pem"), anchors).unwrap();
    super::openssl_self_signed(dir, "stranger", "30", "/CN=Some Other Root/C=VN", &[]);
}

/// A one-page PDF with a classic cross-reference table.
pub(crate) fn unsigned_pdf() -> Vec<u8> {
    let content = "BT /F1 24 Tf 72 720 Td (Cong van so 123) Tj ET";
    let objects = [
        "<< /Type /Catalog /Pages 2 0 R >>".to_string(),
        "<< /Type /Pages /Kids [3 0 R] /Count 1 >>".to_string(),
        "<< /Type /Page /Parent 2 0 R /MediaBox [0 0 595 842] /Contents 4 0 R /Resources << /Font << /F1 5 0 R >> >> >>".to_string(),
        format!("<< /Length {} >>\nstream\n{content}\nendstream", content.len()),
        "<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>".to_string(),
    ];
    let mut pdf = b"%PDF-1.7\n%\xe2\xe3\xcf\xd3\n".to_vec();
    let mut offsets = Vec::new();
    for (i, body) in objects.iter().enumerate() {
        offsets.push(pdf.len());
        pdf.extend_from_slice(format!("{} 0 obj\n{body}\nendobj\n", i + 1).as_bytes());
    }
    let xref = pdf.len();
    let mut table = format!("xref\n0 {}\n0000000000 65535 f \n", objects.len() + 1);
    for o in offsets {
        table.push_str(&format!("{o:010} 00000 n \n"));
    }
    table.push_str(&format!(
        "trailer\n<< /Size {} /Root 1 0 R >>\nstartxref\n{xref}\n%%EOF\n",
        objects.len() + 1
    ));
    pdf.extend_from_slice(table.as_bytes());
    pdf
}

/// Signs `input` into `output` (in `dir`, where [`SIGN_PY`] is written as `sign.py`) as the
/// certificate `who` of [`pki`], with an embedded time-stamp when `tsa`.
pub(crate) fn sign(dir: &Path, input: &str, output: &str, field: &str, who: &str, tsa: bool) {
    let mut cmd = Command::new(pyhanko_python());
    cmd.current_dir(dir).args([
        "sign.py",
        input,
        output,
        field,
        &format!("{who}.key"),
        &format!("{who}.pem"),
        "inter.pem",
    ]);
    if tsa {
        cmd.args(["tsa.key", "tsa.pem"]);
    }
    let out = cmd.output().unwrap();
    assert!(
        out.status.success(),
        "pyHanko: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}
