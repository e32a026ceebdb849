//! The operator console at `/console` on the API listener: server-rendered HTML (maud) with
//! charts drawn on the node as SVG (plotters), one small script of ours that refreshes parts of
//! a page in place, nothing fetched from elsewhere (a Content-Security-Policy says so to the
//! browser), Vietnamese first with English as a switch.
//!
//! Log-in: an `[[api_client]]` token with the `operate` scope (may act: a backup now) or the
//! `monitor` scope (read-only), given once in a form; the browser then holds a session cookie
//! (HttpOnly, SameSite=Strict, Secure over HTTPS) that names a session, alive for
//! [`SESSION_TTL`] after its last use. A form log-in is also kept in the store, by the SHA-256
//! of its cookie (never the cookie itself), so a restart of the node logs no one out; the
//! client must still be configured with its token and scope when the session is taken up
//! again. Over `[listen] api_tls`, a client certificate that names such a client
//! (`certificate_cn`) logs in by itself, with no form. A node without API clients (its API on
//! loopback only) has an open console,
//! as its API is open. Every refusal is logged and recorded as an `api_auth` security event.
//!
//! Pages: the network below this node (`/console`), its traffic (`/console/traffic`), the
//! security events (`/console/security`),
//! a document's track by its id (`/console/documents`), the registers (`/console/register`).

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::extract::{Query, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use axum::{Form, Router};
use lienthong_common::agency::AgencyCode;
use lienthong_common::config::{ApiClientConfig, ApiScope};
use maud::{html, Markup, DOCTYPE};
use serde::{Deserialize, Serialize};
use tracing::{info, warn};

use crate::monitor::NodeStatus;
use crate::node::Node;
use crate::security_events::EventClass;

mod charts;
mod downloads;
mod node_page;
mod pdf;
mod report;
mod security;
mod traffic;

/// How long a console session lasts without being used.
pub const SESSION_TTL: Duration = Duration::from_secs(8 * 3600);
const COOKIE: &str = "lt_console";
/// The store's metadata names of form log-ins: this, then the SHA-256 of the cookie, in hex.
const STORED_SESSION: &str = "console-session/";
/// A stored session's last use is written again once it is older than this (so a restart may
/// end a session this much before its time).
const STORED_TOUCH: Duration = Duration::from_secs(300);
const LANG_COOKIE: &str = "lt_lang";
const STYLE: &str = include_str!("console.css");
const SCRIPT: &str = include_str!("console.js");
/// Nothing but the node itself: no outside script, style, image or frame.
const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'";

/// The console's state: the node and the sessions.
#[derive(Clone)]
struct Console {
    node: Arc<Node>,
    sessions: Arc<Mutex<HashMap<String, Session>>>,
}

#[derive(Clone)]
struct Session {
    client: Option<Arc<ApiClientConfig>>,
    last_used: Instant,
    /// The client certificate's common name, for a session started by one.
    certificate: Option<String>,
    /// For a session kept in the store: when its last use was written there.
    stored: Option<Instant>,
}

/// A form log-in as the store keeps it.
#[derive(Serialize, Deserialize)]
struct StoredSession {
    client: String,
    /// The SHA-256 of the token the client logged in with (hex), as the configuration gives it:
    /// a token changed since then ends the session.
    token_sha256: String,
    last_used_unix_ms: i64,
}

impl StoredSession {
    /// How long the session has not been used, at `now_unix_ms`.
    fn idle(&self, now_unix_ms: i64) -> Duration {
        Duration::from_millis(now_unix_ms.saturating_sub(self.last_used_unix_ms).max(0) as u64)
    }
}

impl Session {
    /// A session of `client` starting now (by its client certificate's common name, if any).
    fn of(client: &ApiClientConfig, certificate: Option<&str>) -> Self {
        Self {
            client: Some(Arc::new(client.clone())),
            last_used: Instant::now(),
            certificate: certificate.map(str::to_owned),
            stored: None,
        }
    }

    fn name(&self) -> &str {
        self.client.as_ref().map_or("", |c| c.name.as_str())
    }

    fn may_operate(&self) -> bool {
        self.client
            .as_ref()
            .is_none_or(|c| c.scopes.contains(&ApiScope::Operate))
    }
}

/// The console's routes, to be nested at `/console`.
pub fn router(node: Arc<Node>) -> Router {
    let router = Router::new()
        .route("/", get(network))
        .route("/security", get(security::security))
        .route("/node/{code}", get(node_page::node_page))
        .route("/documents", get(documents))
        .route("/register", get(register_page))
        .route("/register.csv", get(register_csv))
        .route("/register.html", get(register_print))
        .route("/login", get(login_page).post(login))
        .route("/logout", post(logout))
        .route("/backup", post(backup))
        .route("/traffic", get(traffic::traffic))
        .route("/report", get(report::report))
        .route(
            "/documents/{id}/envelope.json",
            get(downloads::envelope_json),
        )
        .route("/documents/{id}/package.edxml", get(downloads::package))
        .route(
            "/documents/{id}/attachments/{sha256}",
            get(downloads::attachment),
        )
        .route("/style.css", get(style))
        .route("/console.js", get(script));
    let console = Console {
        node,
        sessions: Arc::default(),
    };
    router
        .layer(axum::middleware::from_fn_with_state(
            console.clone(),
            by_certificate,
        ))
        .with_state(console)
}

/// The session of a browser (or script) identified by the client certificate `cn`: the live
/// one the certificate already has, so that one that keeps no cookie does not pile up
/// sessions, or a new one (none without a random source).
fn certificate_session(c: &Console, client: &ApiClientConfig, cn: &str) -> Option<String> {
    let mut sessions = lock(&c.sessions);
    let now = Instant::now();
    sessions.retain(|_, s| now.duration_since(s.last_used) < SESSION_TTL);
    if let Some((id, _)) = sessions
        .iter()
        .find(|(_, s)| s.certificate.as_deref() == Some(cn))
    {
        return Some(id.clone());
    }
    let id = new_session_id();
    if id.is_empty() {
        return None;
    }
    info!(client = %client.name, certificate = %cn, "console log-in by client certificate");
    sessions.insert(id.clone(), Session::of(client, Some(cn)));
    Some(id)
}

/// Log-in by client certificate: a request with no live session, over a TLS connection whose
/// client certificate names an `[[api_client]]` (`certificate_cn`) with the `operate` or
/// `monitor` scope, gets a session for that client at once (its cookie set on the answer), as a
/// token given in the form would. A certificate client with neither scope is refused (logged,
/// an `api_auth` event) and sees the log-in form.
async fn by_certificate(
    State(c): State<Console>,
    mut req: axum::extract::Request,
    next: axum::middleware::Next,
) -> Response {
    if c.node.config.api_clients.is_empty() || c.session(req.headers()).is_some() {
        return next.run(req).await;
    }
    let cn = req
        .extensions()
        .get::<crate::api_server::Connection>()
        .and_then(|x| x.certificate_cn.clone());
    let Some(cn) = cn else {
        return next.run(req).await;
    };
    let Some(client) = c
        .node
        .config
        .api_clients
        .iter()
        .find(|cl| cl.certificate_cn.as_deref() == Some(cn.as_str()))
    else {
        return next.run(req).await;
    };
    if !may_use_console(client) {
        c.refuse(
            &client.name,
            format!(
                "console: API client {} (client certificate {cn}) has neither the operate nor the monitor scope",
                client.name
            ),
        );
        return next.run(req).await;
    }
    let id = certificate_session(&c, client, &cn);
    let Some(id) = id else {
        return next.run(req).await;
    };
    let Ok(request_cookie) = header::HeaderValue::from_str(&format!("{COOKIE}={id}")) else {
        return next.run(req).await;
    };
    // The new session's cookie first: a stale one the browser still sends comes after it.
    let others: Vec<header::HeaderValue> = req
        .headers()
        .get_all(header::COOKIE)
        .iter()
        .cloned()
        .collect();
    req.headers_mut().remove(header::COOKIE);
    req.headers_mut().insert(header::COOKIE, request_cookie);
    for v in others {
        req.headers_mut().append(header::COOKIE, v);
    }
    let mut resp = next.run(req).await;
    c.set_session_cookie(&mut resp, &id);
    resp
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

// ---- language ----------------------------------------------------------------------------

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Lang {
    Vi,
    En,
}

fn cookie<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|kv| kv.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v)
}

fn lang_of(headers: &HeaderMap, asked: Option<&str>) -> Lang {
    match asked.or_else(|| cookie(headers, LANG_COOKIE)) {
        Some("en") => Lang::En,
        _ => Lang::Vi,
    }
}

/// The text of `key` in `lang`: Vietnamese first.
fn t(lang: Lang, key: &str) -> &'static str {
    let (vi, en) = match key {
        "title" => ("Bảng điều khiển liên thông", "Interchange console"),
        "network" => ("Mạng lưới", "Network"),
        "security" => ("An toàn thông tin", "Security"),
        "login" => ("Đăng nhập", "Log in"),
        "logout" => ("Đăng xuất", "Log out"),
        "token" => ("Mã truy cập (token)", "Access token"),
        "bad_token" => (
            "Mã truy cập không đúng hoặc không có quyền xem bảng điều khiển.",
            "The token is not known, or may not use the console.",
        ),
        "need_login" => ("Cần đăng nhập.", "Please log in."),
        "node" => ("Nút", "Node"),
        "name" => ("Tên", "Name"),
        "state" => ("Trạng thái", "State"),
        "link" => ("Kết nối", "Link"),
        "up" => ("đang kết nối", "up"),
        "down" => ("mất kết nối", "down"),
        "last_seen" => ("Báo cáo gần nhất", "Last attestation"),
        "version" => ("Phiên bản", "Version"),
        "backlog" => ("Hàng đợi", "Backlog"),
        "cert" => ("Chứng thư (ngày)", "Certificate (days)"),
        "ca" => ("CA (ngày)", "CA (days)"),
        "crl" => ("CRL (ngày)", "CRL (days)"),
        "level" => ("Cấp độ tự đánh giá", "Self-assessed level"),
        "events24" => ("Sự kiện 24 giờ", "Events, 24 h"),
        "search" => ("Tìm theo mã hoặc tên", "Search by code or name"),
        "find" => ("Tìm", "Find"),
        "ok" => ("bình thường", "ok"),
        "warning" => ("cảnh báo", "warning"),
        "failing" => ("lỗi", "failing"),
        "time" => ("Thời gian", "Time"),
        "class" => ("Loại", "Class"),
        "peer" => ("Bên kia", "Peer"),
        "agency" => ("Cơ quan", "Agency"),
        "reason" => ("Lý do", "Reason"),
        "all" => ("tất cả", "all"),
        "filter" => ("Lọc", "Filter"),
        "backup" => ("Sao lưu ngay", "Back up now"),
        "backup_done" => ("Đã sao lưu", "Backup written"),
        "forbidden" => (
            "Tài khoản này chỉ được xem, không được thao tác.",
            "This client may look but not act.",
        ),
        "no_events" => ("Không có sự kiện.", "No events."),
        "seconds_ago" => ("giây trước", "s ago"),
        "never" => ("chưa có", "never"),
        "this_node" => ("nút này", "this node"),
        "documents" => ("Văn bản", "Documents"),
        "audit" => ("Nhật ký kiểm toán", "Audit log"),
        "audit_ok" => ("Chuỗi băm nguyên vẹn", "Hash chain intact"),
        "audit_broken" => ("CHUỖI BĂM BỊ PHÁ VỠ", "HASH CHAIN BROKEN"),
        "expiring" => (
            "Chứng thư, CA, CRL sắp hết hạn (ngày cảnh báo)",
            "Certificates, CAs, CRLs expiring (warning days)",
        ),
        "none_expiring" => ("Không có.", "None."),
        "events" => ("Sự kiện", "Events"),
        "unmet" => ("chưa đạt", "not met"),
        "print" => ("Bản in sổ", "Printable book"),
        "envelope" => ("Mã gói tin", "Envelope id"),
        "register" => ("Sổ văn bản", "Registers"),
        "doc_search" => ("Mã văn bản hoặc mã gói tin", "Document id or envelope id"),
        "not_found" => (
            "Không tìm thấy văn bản này trên nút.",
            "No such document on this node.",
        ),
        "subject" => ("Trích yếu", "Subject"),
        "from" => ("Nơi gửi", "From"),
        "due" => ("Hạn xử lý", "Due"),
        "recipient" => ("Nơi nhận", "Recipient"),
        "status" => ("Trạng thái xử lý", "Status"),
        "hops" => ("Các chặng", "Hops"),
        "history" => ("Diễn biến", "History"),
        "incoming" => ("Sổ văn bản đến", "Incoming register"),
        "outgoing" => ("Sổ văn bản đi", "Outgoing register"),
        "number" => ("Số", "No."),
        "date" => ("Ngày", "Date"),
        "code" => ("Số, ký hiệu", "Number, notation"),
        "year" => ("Năm", "Year"),
        "show" => ("Xem", "Show"),
        "overdue" => ("quá hạn", "overdue"),
        "traffic" => ("Lưu lượng", "Traffic"),
        "hours" => ("giờ", "hours"),
        "refresh_note" => (
            "Biểu đồ tự cập nhật, không cần tải lại trang, mỗi",
            "The charts update themselves, without reloading the page, every",
        ),
        "docs_in" => ("Văn bản đến theo kết nối", "Documents in, per link"),
        "docs_out" => ("Văn bản đi theo kết nối", "Documents out, per link"),
        "per_minute" => ("mỗi phút", "per minute"),
        "queue_depth" => ("Hàng đợi theo kết nối", "Queue depth, per link"),
        "items" => ("mục", "items"),
        "ack_latency" => ("Thời gian chờ xác nhận chặng (ms)", "Hop-ack latency (ms)"),
        "refusals" => ("Từ chối theo lý do", "Refusals by reason"),
        "links" => ("Các kết nối", "Links"),
        "no_traffic" => ("Chưa có lưu lượng.", "No traffic yet."),
        "total_in" => ("Đến", "In"),
        "total_out" => ("Đi", "Out"),
        "depth_now" => ("Đang chờ", "Queued now"),
        "depth_max" => ("Chờ nhiều nhất", "Most queued"),
        "acks" => ("Xác nhận chặng", "Hop acks"),
        "none_refused" => ("Không có từ chối.", "Nothing refused."),
        "count" => ("Số lượng", "Count"),
        "local" => ("cơ quan tại nút", "local agencies"),
        "own_assessment" => (
            "Tự đánh giá của nút này theo cấp độ",
            "This node's own assessment",
        ),
        "no_level" => (
            "Chưa đặt cấp độ ([security] level = 0).",
            "No level set ([security] level = 0).",
        ),
        "level_word" => ("Cấp độ", "Level"),
        "met" => ("đạt", "met"),
        "requirement" => ("Yêu cầu", "Requirement"),
        "evidence" => ("Bằng chứng", "Evidence"),
        "below_unmet" => (
            "Các nút bên dưới chưa đạt yêu cầu (theo báo cáo gần nhất)",
            "Nodes below with requirements not met (latest attestation)",
        ),
        "none" => ("Không có.", "None."),
        "download" => ("Tải về", "Download"),
        "envelope_json" => ("gói tin (JSON)", "envelope (JSON)"),
        "package_edxml" => ("gói edXML", "edXML package"),
        "no_download" => (
            "Tài khoản này không được đọc nội dung văn bản (cần quyền inbox).",
            "This client may not read documents' contents (it needs the inbox scope).",
        ),
        "report" => ("Báo cáo thống kê", "Statistics report"),
        "subtree" => ("gồm cả các đơn vị trực thuộc", "with the agencies below"),
        "and_below" => ("và các đơn vị trực thuộc", "and the agencies below"),
        "agencies" => ("cơ quan", "agencies"),
        "sent" => ("Văn bản đã gửi", "Documents sent"),
        "received" => ("Văn bản đã nhận", "Documents received"),
        "with_paper" => (
            "Kèm bản giấy (gửi / nhận)",
            "With a paper copy (sent / received)",
        ),
        "amendments" => (
            "Thu hồi, cập nhật, thay thế (gửi / nhận)",
            "Revoking, updating, replacing (sent / received)",
        ),
        "to_01" => (
            "Thời gian đến khi nhận được (01): trung vị / p90",
            "Time to arrived (01): median / p90",
        ),
        "to_03" => (
            "Thời gian đến khi tiếp nhận (03): trung vị / p90",
            "Time to accepted (03): median / p90",
        ),
        "to_06" => (
            "Thời gian đến khi hoàn thành (06): trung vị / p90",
            "Time to done (06): median / p90",
        ),
        "timeliness" => (
            "Xử lý đúng hạn, trễ hạn, quá hạn",
            "Handled on time, late, overdue",
        ),
        "on_time" => ("đúng hạn", "on time"),
        "late" => ("trễ hạn", "late"),
        "documents_n" => ("văn bản", "documents"),
        "rejections" => ("Từ chối theo lý do (02)", "Rejections by reason (02)"),
        "by_status" => ("Theo trạng thái mới nhất", "By latest status"),
        "top" => (
            "Gửi đến nhiều nhất, nhận nhiều nhất",
            "Top senders, top recipients",
        ),
        "pdf_signatures" => (
            "Chữ ký số trong tệp PDF đính kèm",
            "Signatures in PDF attachments",
        ),
        "pdf_checked" => ("Kiểm tra khi nhận lúc", "Checked on delivery at"),
        "pdf_attachment" => ("Tệp đính kèm", "Attachment"),
        "pdf_field" => ("Trường chữ ký", "Signature field"),
        "pdf_verdict" => ("Kết quả", "Verdict"),
        "pdf_signer" => ("Người ký", "Signer"),
        "pdf_signed_at" => ("Thời điểm ký", "Signed at"),
        "pdf_valid" => ("hợp lệ", "valid"),
        "pdf_invalid" => ("KHÔNG hợp lệ", "INVALID"),
        "pdf_unknown_signer" => (
            "người ký không thuộc CA tin cậy",
            "signer outside the trusted CAs",
        ),
        "pdf_changed" => ("tệp bị thay đổi sau khi ký", "changed after signing"),
        "pdf_time_stamp" => ("dấu thời gian", "time-stamp"),
        "pdf_not_checked" => ("không kiểm tra được", "not checked"),
        "pdf_unsigned" => ("không có chữ ký số", "no signature"),
        "no_node" => (
            "Không có báo cáo nào của nút này tại đây.",
            "No report of this node is held here.",
        ),
        "no_detail" => (
            "Nút này chưa gửi bản chi tiết (phiên bản cũ hơn, hoặc chưa đến kỳ báo cáo): chỉ biết mã các yêu cầu chưa đạt.",
            "This node has sent no detail (an older version, or not reported yet): only the ids of the requirements not met are known.",
        ),
        "detail_made" => ("Bản chi tiết lập lúc", "Detail made at"),
        "since" => ("từ", "since"),
        "parent_up" => (
            "kết nối lên cấp trên gần nhất",
            "link to its parent last up",
        ),
        "oldest" => ("cũ nhất", "oldest"),
        "minutes_ago" => ("phút trước", "min ago"),
        _ => ("?", "?"),
    };
    match lang {
        Lang::Vi => vi,
        Lang::En => en,
    }
}

// ---- sessions ----------------------------------------------------------------------------

impl Console {
    /// The session of a request: the cookie's, or an open one when the API has no clients.
    fn session(&self, headers: &HeaderMap) -> Option<Session> {
        if self.node.config.api_clients.is_empty() {
            return Some(Session {
                client: None,
                last_used: Instant::now(),
                certificate: None,
                stored: None,
            });
        }
        let id = cookie(headers, COOKIE)?;
        let mut sessions = lock(&self.sessions);
        let now = Instant::now();
        sessions.retain(|_, s| now.duration_since(s.last_used) < SESSION_TTL);
        if !sessions.contains_key(id) {
            let s = self.stored_session(id)?;
            sessions.insert(id.to_owned(), s);
        }
        let s = sessions.get_mut(id)?;
        s.last_used = now;
        if s.stored
            .is_some_and(|w| now.duration_since(w) >= STORED_TOUCH)
        {
            s.stored = Some(now);
            self.store_session(id, s.name());
        }
        Some(s.clone())
    }

    /// Keeps the form log-in `id` of `client` in the store, used now.
    fn store_session(&self, id: &str, client: &str) {
        let record = StoredSession {
            client: client.to_owned(),
            token_sha256: self
                .node
                .config
                .api_clients
                .iter()
                .find(|cl| cl.name == client)
                .and_then(|cl| cl.token_sha256)
                .map(hex::encode)
                .unwrap_or_default(),
            last_used_unix_ms: self.node.clock.now_unix_ms(),
        };
        let written = serde_json::to_vec(&record)
            .map_err(|e| e.to_string())
            .and_then(|v| {
                self.node
                    .store
                    .put_meta(&stored_session_name(id), &v)
                    .map_err(|e| e.to_string())
            });
        if let Err(e) = written {
            warn!(client = %client, cause = %e, "cannot keep the console session in the store; it lasts until the node stops");
        }
    }

    /// The form log-in `id` as the store keeps it, taken up again after a restart: only while
    /// it is alive and its client is still configured with the operate or monitor scope.
    fn stored_session(&self, id: &str) -> Option<Session> {
        let name = stored_session_name(id);
        let bytes = match self.node.store.get_meta(&name) {
            Ok(b) => b?,
            Err(e) => {
                warn!(cause = %e, "cannot read the stored console sessions");
                return None;
            }
        };
        let idle = |r: &StoredSession| r.idle(self.node.clock.now_unix_ms());
        let record = serde_json::from_slice::<StoredSession>(&bytes).ok();
        let client = record.as_ref().and_then(|r| {
            self.node.config.api_clients.iter().find(|cl| {
                cl.name == r.client
                    && cl.token_sha256.map(hex::encode).as_deref() == Some(r.token_sha256.as_str())
                    && may_use_console(cl)
            })
        });
        match (record, client) {
            (Some(r), Some(client)) if idle(&r) < SESSION_TTL => {
                info!(client = %client.name, "console session taken up again from the store");
                let mut s = Session::of(client, None);
                s.last_used = Instant::now().checked_sub(idle(&r)).unwrap_or(s.last_used);
                s.stored = Some(Instant::now());
                Some(s)
            }
            (record, _) => {
                let why = match record {
                    None => "unreadable".to_owned(),
                    Some(r) if idle(&r) >= SESSION_TTL => "expired".to_owned(),
                    Some(r) => format!(
                        "API client {} is no longer configured with that token and the operate or monitor scope",
                        r.client
                    ),
                };
                info!(cause = %why, "stored console session dropped");
                self.forget_stored_session(&name);
                None
            }
        }
    }

    fn forget_stored_session(&self, name: &str) {
        if let Err(e) = self.node.store.delete_meta(name) {
            warn!(cause = %e, "cannot remove a stored console session");
        }
    }

    /// Removes the stored form log-ins that are no longer alive.
    fn prune_stored_sessions(&self) {
        let names = match self.node.store.meta_names(STORED_SESSION) {
            Ok(n) => n,
            Err(e) => {
                warn!(cause = %e, "cannot read the stored console sessions");
                return;
            }
        };
        let now = self.node.clock.now_unix_ms();
        for hash in names {
            let name = format!("{STORED_SESSION}{hash}");
            let alive = self
                .node
                .store
                .get_meta(&name)
                .ok()
                .flatten()
                .and_then(|b| serde_json::from_slice::<StoredSession>(&b).ok())
                .is_some_and(|r| r.idle(now) < SESSION_TTL);
            if !alive {
                self.forget_stored_session(&name);
            }
        }
    }

    fn refuse(&self, who: &str, reason: String) {
        warn!(client = %who, cause = %reason, "console refused");
        self.node
            .security_event(EventClass::ApiAuth, who, "", &reason);
    }

    fn secure(&self) -> &'static str {
        if self.node.config.api_tls.is_some() {
            "; Secure"
        } else {
            ""
        }
    }

    /// Gives the browser the cookie of session `id`.
    fn set_session_cookie(&self, resp: &mut Response, id: &str) {
        if let Ok(v) = format!(
            "{COOKIE}={id}; Path=/console; HttpOnly; SameSite=Strict{}",
            self.secure()
        )
        .parse()
        {
            resp.headers_mut().append(header::SET_COOKIE, v);
        }
    }
}

/// Whether `client` may log in to the console: with the operate or the monitor scope.
fn may_use_console(client: &ApiClientConfig) -> bool {
    client.scopes.contains(&ApiScope::Operate) || client.scopes.contains(&ApiScope::Monitor)
}

/// The store's name of the form log-in whose cookie is `id`.
fn stored_session_name(id: &str) -> String {
    let digest = ring::digest::digest(&ring::digest::SHA256, id.as_bytes());
    format!("{STORED_SESSION}{}", hex::encode(digest.as_ref()))
}

fn new_session_id() -> String {
    use ring::rand::SecureRandom;
    let mut b = [0u8; 32];
    // An id from the system's random source; without one, no session (the log-in fails).
    if ring::rand::SystemRandom::new().fill(&mut b).is_err() {
        return String::new();
    }
    hex::encode(b)
}

// ---- layout ------------------------------------------------------------------------------

fn page(c: &Console, lang: Lang, session: Option<&Session>, body: Markup) -> Markup {
    let node = &c.node;
    html! {
        (DOCTYPE)
        html lang=(if lang == Lang::Vi { "vi" } else { "en" }) {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                title { (t(lang, "title")) " · " (node.agency()) }
                link rel="stylesheet" href="/console/style.css";
            }
            body {
                header {
                    strong { (t(lang, "title")) }
                    span.node { (node.config.name) " (" (node.agency()) ")" }
                    @if let Some(s) = session {
                        nav {
                            a href="/console" { (t(lang, "network")) }
                            a href="/console/traffic" { (t(lang, "traffic")) }
                            a href="/console/security" { (t(lang, "security")) }
                            a href="/console/documents" { (t(lang, "documents")) }
                            a href="/console/register" { (t(lang, "register")) }
                            a href="/console/report" { (t(lang, "report")) }
                        }
                        @if !s.name().is_empty() {
                            form.inline method="post" action="/console/logout" {
                                span.who { (s.name()) }
                                button type="submit" { (t(lang, "logout")) }
                            }
                        }
                    }
                    span.lang {
                        a href="?lang=vi" { "Tiếng Việt" } " · " a href="?lang=en" { "English" }
                    }
                }
                main { (body) }
            }
        }
    }
}

/// A response for `markup`, setting the language cookie when it was asked for.
fn respond(status: StatusCode, lang_asked: Option<&str>, markup: Markup) -> Response {
    let mut resp = (
        status,
        [(header::CONTENT_TYPE, "text/html; charset=utf-8")],
        markup.into_string(),
    )
        .into_response();
    if let Ok(v) = CSP.parse() {
        resp.headers_mut()
            .insert(header::CONTENT_SECURITY_POLICY, v);
    }
    if let Some(l @ ("vi" | "en")) = lang_asked {
        if let Ok(v) = format!("{LANG_COOKIE}={l}; Path=/console; SameSite=Strict").parse() {
            resp.headers_mut().append(header::SET_COOKIE, v);
        }
    }
    resp
}

async fn style() -> Response {
    ([(header::CONTENT_TYPE, "text/css; charset=utf-8")], STYLE).into_response()
}

async fn script() -> Response {
    (
        [(header::CONTENT_TYPE, "text/javascript; charset=utf-8")],
        SCRIPT,
    )
        .into_response()
}

// ---- log-in ------------------------------------------------------------------------------

#[derive(Debug, Deserialize)]
struct LangQuery {
    lang: Option<String>,
}

async fn login_page(
    State(c): State<Console>,
    headers: HeaderMap,
    Query(q): Query<LangQuery>,
) -> Response {
    let lang = lang_of(&headers, q.lang.as_deref());
    respond(
        StatusCode::OK,
        q.lang.as_deref(),
        login_form(&c, lang, None),
    )
}

fn login_form(c: &Console, lang: Lang, error: Option<&str>) -> Markup {
    page(
        c,
        lang,
        None,
        html! {
            h1 { (t(lang, "login")) }
            @if let Some(e) = error { p.error { (e) } }
            form.login method="post" action="/console/login" {
                label for="token" { (t(lang, "token")) }
                input #token type="password" name="token" autocomplete="off" required;
                button #login type="submit" { (t(lang, "login")) }
            }
        },
    )
}

#[derive(Deserialize)]
struct LoginForm {
    token: String,
}

async fn login(State(c): State<Console>, headers: HeaderMap, Form(f): Form<LoginForm>) -> Response {
    let lang = lang_of(&headers, None);
    let digest = ring::digest::digest(&ring::digest::SHA256, f.token.trim().as_bytes());
    let client = c.node.config.api_clients.iter().find(|cl| {
        cl.token_sha256
            .is_some_and(|h| h.as_slice() == digest.as_ref())
    });
    let allowed = client.filter(|cl| may_use_console(cl));
    let Some(client) = allowed else {
        let who = client.map_or("", |cl| cl.name.as_str());
        c.refuse(
            who,
            match client {
                Some(cl) => format!(
                    "console log-in: API client {} has neither the operate nor the monitor scope",
                    cl.name
                ),
                None => "console log-in: the token is not known to this node".to_owned(),
            },
        );
        return respond(
            StatusCode::UNAUTHORIZED,
            None,
            login_form(&c, lang, Some(t(lang, "bad_token"))),
        );
    };
    let id = new_session_id();
    if id.is_empty() {
        return respond(
            StatusCode::INTERNAL_SERVER_ERROR,
            None,
            login_form(&c, lang, Some("random source unavailable")),
        );
    }
    info!(client = %client.name, "console log-in");
    let mut session = Session::of(client, None);
    session.stored = Some(Instant::now());
    lock(&c.sessions).insert(id.clone(), session);
    c.prune_stored_sessions();
    c.store_session(&id, &client.name);
    if let Err(e) = c.node.store.commit().await {
        warn!(cause = %e, "cannot make the console session durable");
    }
    let mut resp = Redirect::to("/console").into_response();
    c.set_session_cookie(&mut resp, &id);
    resp
}

async fn logout(State(c): State<Console>, headers: HeaderMap) -> Response {
    if let Some(id) = cookie(&headers, COOKIE) {
        lock(&c.sessions).remove(id);
        c.forget_stored_session(&stored_session_name(id));
    }
    let mut resp = Redirect::to("/console/login").into_response();
    if let Ok(v) = format!("{COOKIE}=; Path=/console; Max-Age=0").parse() {
        resp.headers_mut().append(header::SET_COOKIE, v);
    }
    resp
}

/// The session, or the log-in page to answer with.
fn require(c: &Console, headers: &HeaderMap, lang: Lang) -> Result<Session, Box<Response>> {
    c.session(headers).ok_or_else(|| {
        Box::new(respond(
            StatusCode::UNAUTHORIZED,
            None,
            login_form(c, lang, Some(t(lang, "need_login"))),
        ))
    })
}

// ---- network -----------------------------------------------------------------------------

#[derive(Debug, Deserialize)]
struct NetworkQuery {
    lang: Option<String>,
    q: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Health {
    Ok,
    Warning,
    Failing,
}

impl Health {
    fn class(self) -> &'static str {
        match self {
            Health::Ok => "ok",
            Health::Warning => "warning",
            Health::Failing => "failing",
        }
    }
    fn icon(self) -> &'static str {
        match self {
            Health::Ok => "●",
            Health::Warning => "▲",
            Health::Failing => "✖",
        }
    }
}

/// One row of the tree.
struct Row {
    status: NodeStatus,
    /// For this node's own children: whether their link is up now.
    link_up: Option<bool>,
    /// Since when the link has been so (unix ms).
    link_since: i64,
    events_24h: u64,
    health: Health,
}

/// How long ago `at` was, in whole minutes, as text.
fn minutes_ago(lang: Lang, now: i64, at: i64) -> String {
    format!("{} {}", (now - at).max(0) / 60_000, t(lang, "minutes_ago"))
}

/// A requirement's text in `lang`: the Vietnamese one when there is one.
/// One requirement of a self-assessment, as a row of [`requirements_table`].
struct Requirement<'a> {
    id: &'a str,
    met: bool,
    en: &'a str,
    vi: &'a str,
    evidence: &'a str,
}

/// A self-assessment requirement by requirement (the node page's, and this node's own on the
/// security page), with the table's element id `id`.
fn requirements_table<'a>(
    lang: Lang,
    id: &str,
    rows: impl Iterator<Item = Requirement<'a>>,
) -> Markup {
    html! {
        table id=(id) {
            thead { tr { th { "id" } th { (t(lang, "requirement")) } th { (t(lang, "state")) } th { (t(lang, "evidence")) } } }
            tbody {
                @for r in rows {
                    tr data-requirement=(r.id) class=(if r.met { "" } else { "warning" }) {
                        td { code { (r.id) } }
                        td { (requirement_text(lang, r.en, r.vi)) }
                        @if r.met { td.ok { "● " (t(lang, "met")) } } @else { td.warning { "▲ " (t(lang, "unmet")) } }
                        td { (r.evidence) }
                    }
                }
            }
        }
    }
}

fn requirement_text<'a>(lang: Lang, en: &'a str, vi: &'a str) -> &'a str {
    match lang {
        Lang::Vi if !vi.is_empty() => vi,
        _ => en,
    }
}

fn health_of(
    node: &Node,
    s: &NodeStatus,
    link_up: Option<bool>,
    events_24h: u64,
    now: i64,
) -> Health {
    let stale_ms = i64::try_from(node.config.security.report_interval.as_millis())
        .unwrap_or(i64::MAX)
        .saturating_mul(3);
    let margin = i64::from(node.config.security.expiry_warning_days);
    let expired =
        s.certificate_days_left < 0 || s.ca_days_left < 0 || s.crl_days_left.is_some_and(|d| d < 0);
    if link_up == Some(false)
        || expired
        || (s.last_seen_unix_ms > 0 && now - s.last_seen_unix_ms > stale_ms)
    {
        return Health::Failing;
    }
    let short = s.certificate_days_left < margin || s.ca_days_left < margin;
    let unmet = s.assessment_total > 0 && s.assessment_met < s.assessment_total;
    if short || unmet || events_24h > 0 {
        Health::Warning
    } else {
        Health::Ok
    }
}

async fn network(
    State(c): State<Console>,
    headers: HeaderMap,
    Query(q): Query<NetworkQuery>,
) -> Response {
    let lang = lang_of(&headers, q.lang.as_deref());
    let session = match require(&c, &headers, lang) {
        Ok(s) => s,
        Err(r) => return *r,
    };
    let node = c.node.clone();
    let data = tokio::task::spawn_blocking(move || {
        let report = crate::monitor::report_list(&node)?;
        let since = lienthong_common::now_unix_ms() - 24 * 3600 * 1000;
        let events = crate::monitor::subtree_events(&node.books(), node.agency(), since)?;
        Ok::<_, crate::monitor::MonitorError>((report, events))
    })
    .await;
    let (report, events) = match data {
        Ok(Ok(d)) => d,
        Ok(Err(e)) => return error_page(&c, lang, &session, e.to_string()),
        Err(e) => return error_page(&c, lang, &session, e.to_string()),
    };
    let mut per_node: HashMap<&str, u64> = HashMap::new();
    for e in &events {
        *per_node.entry(e.node.as_str()).or_default() += 1;
    }
    let now = lienthong_common::now_unix_ms();
    let children_up: HashMap<String, bool> = c
        .node
        .routes()
        .announcements()
        .keys()
        .map(|child| (child.to_string(), crate::api::link_up(&c.node, child)))
        .collect();
    let needle =
        q.q.as_deref()
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(str::to_lowercase);
    let rows: Vec<Row> = report
        .into_iter()
        .filter(|s| {
            needle.as_ref().is_none_or(|n| {
                s.node.to_lowercase().contains(n.as_str())
                    || s.name.to_lowercase().contains(n.as_str())
            })
        })
        .map(|s| {
            let link_up = children_up.get(&s.node).copied();
            let link_since = c.node.metrics.link_since(&s.node);
            let events_24h = per_node.get(s.node.as_str()).copied().unwrap_or(0);
            let health = health_of(&c.node, &s, link_up, events_24h, now);
            Row {
                status: s,
                link_up,
                link_since,
                events_24h,
                health,
            }
        })
        .collect();
    let body = network_body(&c, lang, &rows, q.q.as_deref().unwrap_or(""), now, &session);
    respond(
        StatusCode::OK,
        q.lang.as_deref(),
        page(&c, lang, Some(&session), body),
    )
}

/// The rows grouped under their level-1 body (ministry or province), so a root with thousands of
/// nodes shows one line per province until it is opened.
fn groups(own: &AgencyCode, rows: &[Row]) -> BTreeMap<String, Vec<usize>> {
    let mut g: BTreeMap<String, Vec<usize>> = BTreeMap::new();
    for (i, r) in rows.iter().enumerate() {
        let key = AgencyCode::parse(&r.status.node)
            .ok()
            .map(|code| {
                let mut top = code.clone();
                while let Some(p) = top.administrative_parent() {
                    if &p == own {
                        break;
                    }
                    top = p;
                }
                top.to_string()
            })
            .unwrap_or_else(|| r.status.node.clone());
        g.entry(key).or_default().push(i);
    }
    g
}

fn network_body(
    c: &Console,
    lang: Lang,
    rows: &[Row],
    q: &str,
    now: i64,
    session: &Session,
) -> Markup {
    let own = c.node.agency();
    let grouped = groups(own, rows);
    html! {
        h1 { (t(lang, "network")) }
        form.search method="get" action="/console" {
            input #q type="search" name="q" value=(q) placeholder=(t(lang, "search"));
            button type="submit" { (t(lang, "find")) }
        }
        @if session.may_operate() {
            form.inline method="post" action="/console/backup" {
                button #backup type="submit" { (t(lang, "backup")) }
            }
        }
        @for (group, members) in &grouped {
            @let worst = members.iter().map(|i| rows[*i].health).max().unwrap_or(Health::Ok);
            // A group opens when it is small or searched for, or when something in it fails.
            details.group open[members.len() <= 50 || !q.is_empty() || worst == Health::Failing] {
                summary.(worst.class()) { (worst.icon()) " " (group) " — " (members.len()) }
                table.nodes {
                    thead { tr {
                        th { (t(lang, "state")) } th { (t(lang, "node")) } th { (t(lang, "link")) }
                        th { (t(lang, "last_seen")) } th { (t(lang, "version")) } th { (t(lang, "backlog")) }
                        th { (t(lang, "cert")) } th { (t(lang, "ca")) } th { (t(lang, "crl")) }
                        th { (t(lang, "level")) } th { (t(lang, "events24")) }
                    } }
                    tbody {
                        @for i in members { (row(lang, &rows[*i], own, now)) }
                    }
                }
            }
        }
    }
}

fn row(lang: Lang, r: &Row, own: &AgencyCode, now: i64) -> Markup {
    let s = &r.status;
    let backlog: u64 = s.queue_depths.values().sum();
    let link = match r.link_up {
        Some(true) => t(lang, "up"),
        Some(false) => t(lang, "down"),
        None if s.node == own.as_str() => t(lang, "this_node"),
        None => "",
    };
    let oldest = s.oldest_queued_unix_ms.values().min().copied();
    html! {
        tr.(r.health.class()) data-node=(s.node) {
            td.(r.health.class()) title=(t(lang, r.health.class())) { (r.health.icon()) " " (t(lang, r.health.class())) }
            td.name {
                a href={ "/console/node/" (s.node) } {
                    @if !s.name.is_empty() && s.name != s.node { (s.name) br; }
                    code { (s.node) }
                }
            }
            td.link {
                (link)
                @if r.link_up.is_some() { br; small.since { (t(lang, "since")) " " (time_text(r.link_since)) } }
                @else if s.node != own.as_str() && s.parent_last_up_unix_ms > 0 {
                    small.since { (t(lang, "parent_up")) " " (time_text(s.parent_last_up_unix_ms)) }
                }
            }
            td { @if s.last_seen_unix_ms > 0 { ((now - s.last_seen_unix_ms) / 1000) " " (t(lang, "seconds_ago")) } @else { (t(lang, "never")) } }
            td { (s.version) }
            td.num {
                (backlog)
                @if let Some(at) = oldest { br; small.oldest { (t(lang, "oldest")) " " (minutes_ago(lang, now, at)) } }
            }
            td.num { (s.certificate_days_left) }
            td.num { (s.ca_days_left) }
            td.num { @if let Some(d) = s.crl_days_left { (d) } @else { "—" } }
            td.level {
                @if s.assessment_total > 0 { "L" (s.assessed_level) " " (s.assessment_met) "/" (s.assessment_total) } @else { "—" }
                // The requirements not met, by id (docs/security-levels.md).
                @if !s.assessment_not_met.is_empty() {
                    br; small.unmet { (t(lang, "unmet")) ": " (s.assessment_not_met.join(", ")) }
                }
            }
            td.num { (r.events_24h) }
        }
    }
}

fn error_page(c: &Console, lang: Lang, session: &Session, e: String) -> Response {
    respond(
        StatusCode::INTERNAL_SERVER_ERROR,
        None,
        page(c, lang, Some(session), html! { p.error { (e) } }),
    )
}

/// Vietnam time (UTC+7), to the second, as the CLI prints it.
fn time_text(unix_ms: i64) -> String {
    crate::books_cmd::time_text(unix_ms)
}

// ---- actions -----------------------------------------------------------------------------

async fn backup(State(c): State<Console>, headers: HeaderMap) -> Response {
    let lang = lang_of(&headers, None);
    let session = match require(&c, &headers, lang) {
        Ok(s) => s,
        Err(r) => return *r,
    };
    if !session.may_operate() {
        c.refuse(
            session.name(),
            format!(
                "console backup: API client {} lacks the scope \"operate\"",
                session.name()
            ),
        );
        return respond(
            StatusCode::FORBIDDEN,
            None,
            page(
                &c,
                lang,
                Some(&session),
                html! { p.error #forbidden { (t(lang, "forbidden")) } },
            ),
        );
    }
    let outcome = crate::upkeep::api_backup(State(c.node.clone()), axum::body::Bytes::new()).await;
    let body = match outcome {
        Ok(axum::Json(o)) => html! {
            p.done #backup-done { (t(lang, "backup_done")) ": " code { (o.written.file.display()) } }
        },
        Err(e) => html! { p.error { (format!("{e:?}")) } },
    };
    respond(StatusCode::OK, None, page(&c, lang, Some(&session), body))
}

// ---- documents ---------------------------------------------------------------------------

#[derive(Debug, Deserialize)]
struct DocumentsQuery {
    lang: Option<String>,
    id: Option<String>,
}

/// A status code with its name in the page's language.
fn status_name(lang: Lang, code: i32) -> String {
    let (vi, en) = lienthong_common::envelope::status_names(code);
    format!("{code:02} {}", if lang == Lang::Vi { vi } else { en })
}

async fn documents(
    State(c): State<Console>,
    headers: HeaderMap,
    Query(q): Query<DocumentsQuery>,
) -> Response {
    let lang = lang_of(&headers, q.lang.as_deref());
    let session = match require(&c, &headers, lang) {
        Ok(s) => s,
        Err(r) => return *r,
    };
    let id = q.id.as_deref().map(str::trim).unwrap_or("").to_owned();
    let view = if id.is_empty() {
        None
    } else {
        let node = c.node.clone();
        let wanted = id.clone();
        let found = tokio::task::spawn_blocking(move || {
            let env = crate::register::find_envelope(&node.store, &node.local_agencies(), &wanted)
                .map_err(|e| e.to_string())?;
            match env {
                None => Ok(None),
                Some(env) => {
                    let attachments = crate::api::document_of(&node, &env)
                        .map(|e| e.attachments)
                        .unwrap_or_default();
                    crate::api::track_view(&node.store, &env, &node.clock)
                        .map(|v| Some((v, attachments)))
                        .map_err(|e| format!("{e:?}"))
                }
            }
        })
        .await;
        match found {
            Ok(Ok(v)) => Some(v),
            Ok(Err(e)) => return error_page(&c, lang, &session, e),
            Err(e) => return error_page(&c, lang, &session, e.to_string()),
        }
    };
    let body = html! {
        h1 { (t(lang, "documents")) }
        form.search method="get" action="/console/documents" {
            input #doc-id type="search" name="id" value=(id) size="48" placeholder=(t(lang, "doc_search"));
            button #doc-find type="submit" { (t(lang, "find")) }
        }
        @match (&view, id.is_empty()) {
            (_, true) => {}
            (None, false) => { p.error #not-found { (t(lang, "not_found")) } }
            (Some(None), false) => { p.error #not-found { (t(lang, "not_found")) } }
            (Some(Some((v, attachments))), false) => {
                table.doc {
                    tr { th { (t(lang, "code")) } td #doc-found { (v.document_id) } }
                    tr { th { (t(lang, "envelope")) } td { code { (v.envelope_id) } } }
                    tr { th { (t(lang, "subject")) } td { (v.subject) } }
                    tr { th { (t(lang, "from")) } td { (v.from) } }
                    tr { th { (t(lang, "due")) } td { (v.due_date) } }
                    @if session.may_read_documents() {
                        tr { th { (t(lang, "download")) } td #downloads {
                            a #download-json href=(format!("/console/documents/{}/envelope.json", v.envelope_id)) { (t(lang, "envelope_json")) }
                            " · "
                            a #download-edxml href=(format!("/console/documents/{}/package.edxml", v.envelope_id)) { (t(lang, "package_edxml")) }
                            @for a in attachments {
                                " · "
                                a.attachment href=(format!("/console/documents/{}/attachments/{}", v.envelope_id, hex::encode(&a.sha256))) {
                                    (a.name) " (" (a.size) " B)"
                                }
                            }
                        } }
                    } @else {
                        tr { th { (t(lang, "download")) } td #no-downloads { (t(lang, "no_download")) } }
                    }
                }
                @if let Some(report) = &v.pdf_signatures {
                    (pdf::signatures(lang, report))
                }
                h2 { (t(lang, "recipient")) }
                @for r in &v.recipients {
                    section.recipient {
                        h3 { code { (r.recipient) } " — " (status_name(lang, r.status))
                            @if r.overdue { " " span.overdue { (t(lang, "overdue")) } } }
                        ol.timeline {
                            @for hop in &r.trace {
                                li { (t(lang, "hops")) ": " code { (hop.agency) } " "
                                    (time_text(hop.received_unix_ms))
                                    @if hop.forwarded_unix_ms > 0 { " → " (time_text(hop.forwarded_unix_ms)) } }
                            }
                            @for (status, at) in &r.history {
                                li.status { (time_text(*at)) " " (status_name(lang, *status)) }
                            }
                        }
                    }
                }
            }
        }
    };
    respond(
        StatusCode::OK,
        q.lang.as_deref(),
        page(&c, lang, Some(&session), body),
    )
}

// ---- registers ---------------------------------------------------------------------------

#[derive(Debug, Deserialize)]
struct RegisterQuery {
    lang: Option<String>,
    agency: Option<String>,
    year: Option<i32>,
    direction: Option<String>,
}

/// The book a register query asks for: an agency this node serves (default its own), a
/// direction (default incoming) and a year (default this one).
struct BookChoice {
    agencies: Vec<AgencyCode>,
    agency: AgencyCode,
    direction: crate::register::Direction,
    year: i32,
    name: String,
}

fn book_choice(c: &Console, q: &RegisterQuery) -> BookChoice {
    let agencies = c.node.local_agencies();
    let agency = q
        .agency
        .as_deref()
        .and_then(|a| agencies.iter().find(|x| x.as_str() == a))
        .unwrap_or(c.node.agency())
        .clone();
    let direction = match q.direction.as_deref() {
        Some("out") => crate::register::Direction::Out,
        _ => crate::register::Direction::In,
    };
    let year = q
        .year
        .unwrap_or_else(|| crate::books_api::today(&c.node.clock).0);
    let name = c.node.agency_name(&agency).unwrap_or_default();
    BookChoice {
        agencies,
        agency,
        direction,
        year,
        name,
    }
}

async fn read_book(c: &Console, b: &BookChoice) -> Result<crate::register::Register, String> {
    let node = c.node.clone();
    let (a, n, direction, year) = (b.agency.clone(), b.name.clone(), b.direction, b.year);
    tokio::task::spawn_blocking(move || {
        crate::register::read(&node.store, direction, a.as_str(), &n, year, None, None)
    })
    .await
    .map_err(|e| e.to_string())?
    .map_err(|e| e.to_string())
}

/// The book as CSV (`attachment`) or as the printable official page, as `lt-relay register`
/// writes them.
async fn register_download(
    c: Console,
    headers: HeaderMap,
    q: RegisterQuery,
    format: crate::books_cmd::Format,
) -> Response {
    let lang = lang_of(&headers, q.lang.as_deref());
    let session = match require(&c, &headers, lang) {
        Ok(s) => s,
        Err(r) => return *r,
    };
    let choice = book_choice(&c, &q);
    let rendered = read_book(&c, &choice).await.and_then(|book| {
        crate::books_cmd::render_register(&book, format).map_err(|e| e.to_string())
    });
    let text = match rendered {
        Ok(t) => t,
        Err(e) => return error_page(&c, lang, &session, e),
    };
    let dir = if choice.direction == crate::register::Direction::Out {
        "out"
    } else {
        "in"
    };
    match format {
        crate::books_cmd::Format::Csv => (
            [
                (header::CONTENT_TYPE, "text/csv; charset=utf-8".to_owned()),
                (
                    header::CONTENT_DISPOSITION,
                    format!(
                        "attachment; filename=\"register-{}-{dir}-{}.csv\"",
                        choice.agency, choice.year
                    ),
                ),
            ],
            text,
        )
            .into_response(),
        _ => ([(header::CONTENT_TYPE, "text/html; charset=utf-8")], text).into_response(),
    }
}

async fn register_csv(
    State(c): State<Console>,
    headers: HeaderMap,
    Query(q): Query<RegisterQuery>,
) -> Response {
    register_download(c, headers, q, crate::books_cmd::Format::Csv).await
}

async fn register_print(
    State(c): State<Console>,
    headers: HeaderMap,
    Query(q): Query<RegisterQuery>,
) -> Response {
    register_download(c, headers, q, crate::books_cmd::Format::Html).await
}

async fn register_page(
    State(c): State<Console>,
    headers: HeaderMap,
    Query(q): Query<RegisterQuery>,
) -> Response {
    let lang = lang_of(&headers, q.lang.as_deref());
    let session = match require(&c, &headers, lang) {
        Ok(s) => s,
        Err(r) => return *r,
    };
    let choice = book_choice(&c, &q);
    let book = match read_book(&c, &choice).await {
        Ok(b) => b,
        Err(e) => return error_page(&c, lang, &session, e),
    };
    let BookChoice {
        agencies,
        agency,
        direction,
        year,
        name,
    } = choice;
    let out = direction == crate::register::Direction::Out;
    let query = format!(
        "agency={agency}&direction={}&year={year}",
        if out { "out" } else { "in" }
    );
    let body = html! {
        h1 { (t(lang, if out { "outgoing" } else { "incoming" })) " — " (name) " (" (agency) "), " (year) }
        form.search method="get" action="/console/register" {
            select name="agency" {
                @for a in &agencies { option value=(a) selected[*a == agency] { (a) } }
            }
            select name="direction" {
                option value="in" selected[!out] { (t(lang, "incoming")) }
                option value="out" selected[out] { (t(lang, "outgoing")) }
            }
            input type="number" name="year" value=(year);
            button type="submit" { (t(lang, "show")) }
        }
        p.downloads {
            a #register-csv href={ "/console/register.csv?" (query) } { "CSV" } " · "
            a #register-print href={ "/console/register.html?" (query) } { (t(lang, "print")) }
        }
        table.register {
            thead { tr {
                th { (t(lang, "number")) } th { (t(lang, "date")) } th { (t(lang, "code")) }
                th { (t(lang, "subject")) } th { (if out { t(lang, "recipient") } else { t(lang, "from") }) }
            } }
            tbody {
                @for r in &book.rows {
                    tr data-envelope=(r.entry.envelope_id) {
                        td.num { (r.entry.number) }
                        td { (r.entry.date) }
                        td { a href={ "/console/documents?id=" (r.entry.envelope_id) } { (r.entry.code) } }
                        td { (r.entry.subject) }
                        td { @if out { (r.entry.recipients.join(", ")) } @else { (r.entry.from_name) " (" (r.entry.from) ")" } }
                    }
                }
            }
        }
    };
    respond(
        StatusCode::OK,
        q.lang.as_deref(),
        page(&c, lang, Some(&session), body),
    )
}
