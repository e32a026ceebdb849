//! The trust gate: every item that arrives from a neighbour (envelope, receipt, summary,
//! attestation) and every connecting child is checked here, and nowhere else, before the node
//! acts on it. Signatures and certificate chains are checked by `lienthong_common::signing` and
//! `lienthong_common::trust`, the one chain policy for TLS peers and signed items.

use std::collections::BTreeSet;

use lienthong_common::agency::AgencyCode;
use lienthong_common::envelope;
use lienthong_common::signing::Verified;
use lienthong_common::trust::{CertError, Usage};
use lienthong_proto::v1::{receipt_frame, Envelope, ReceiptFrame, RefusalCode};
use rustls_pki_types::{CertificateDer, UnixTime};
use tracing::warn;

use crate::node::{Node, NodeError, Refusal};
use crate::security_events::EventClass;
use crate::upward::{
    MAX_DETAIL_TEXT_BYTES, MAX_EVENTS_PER_ATTESTATION, MAX_REQUIREMENTS_PER_DETAIL,
};

/// Proof that an item from a neighbour passed the gate: only this module makes one. The node
/// acts on a receipt from a neighbour only in this form, until it is stored.
#[derive(Debug)]
pub struct Checked<T>(T);

impl<T> Checked<T> {
    /// The checked item.
    pub fn into_inner(self) -> T {
        self.0
    }
}

impl<T> std::ops::Deref for Checked<T> {
    type Target = T;
    fn deref(&self) -> &T {
        &self.0
    }
}

fn checked(item: receipt_frame::Item) -> Checked<ReceiptFrame> {
    Checked(ReceiptFrame { item: Some(item) })
}

/// An item id: present and not longer than envelope ids may be.
fn check_id(id: &str, what: &str) -> Result<(), Refusal> {
    if id.is_empty() || id.len() > envelope::MAX_ID_LEN {
        return Err(Refusal::new(RefusalCode::RefusalInvalid, what));
    }
    Ok(())
}

/// Summaries and attestations travel upward only: refused from a parent.
fn upward_only(from_child: bool, what: &str) -> Result<(), Refusal> {
    if from_child {
        Ok(())
    } else {
        Err(Refusal::new(RefusalCode::RefusalInvalid, what))
    }
}

/// Why a connecting child is not admitted. Recorded as a security event by the gate; the link
/// adapter maps it to its protocol's error once.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PeerRefusal {
    /// The TLS session carries no client certificate.
    #[error("no client certificate")]
    NoCertificate,
    /// The certificate names no usable agency.
    #[error("{0}")]
    BadCertificate(CertError),
    /// The certificate names an agency that is not a child of this node.
    #[error("{child} is not a child of {node}")]
    NotAChild {
        /// The agency the certificate names.
        child: AgencyCode,
        /// This node.
        node: AgencyCode,
    },
    /// The link's Hello claims another agency than the certificate.
    #[error("certificate names {child} but Hello claims {claimed}")]
    AgencyMismatch {
        /// The agency the certificate names.
        child: AgencyCode,
        /// The agency the Hello claims.
        claimed: String,
    },
}

/// How far ahead of this node's clock a summary or attestation may say it was generated: a
/// child whose clock runs ahead would otherwise pin its figures as the newest for good.
pub const MAX_CLOCK_AHEAD_MS: i64 = 10 * 60 * 1000;

fn check_generated(generated_unix_ms: i64, now: i64) -> Result<(), Refusal> {
    if generated_unix_ms > now + MAX_CLOCK_AHEAD_MS {
        return Err(Refusal::new(
            RefusalCode::RefusalInvalid,
            format!(
                "generated {} s in the future by this node's clock (more than {} s): check the sender's clock",
                (generated_unix_ms - now) / 1000,
                MAX_CLOCK_AHEAD_MS / 1000
            ),
        ));
    }
    Ok(())
}

impl Node {
    /// Whether an envelope from child `peer` for `recipients` is one this node sent down
    /// earlier and the child now sends back because those recipients moved away from it (a
    /// newer claim for each came through another child): it passed this node, is known here,
    /// and every recipient moved away from `peer`.
    pub fn is_return(&self, peer: &AgencyCode, env: &Envelope, recipients: &[AgencyCode]) -> bool {
        !recipients.is_empty()
            && env.trace.iter().any(|t| t.agency == self.agency().as_str())
            && self.with_routes(|r| recipients.iter().all(|a| r.moved_away_from(peer, a)))
            && self.store.knows_envelope(&env.id).unwrap_or(false)
    }

    /// Checks an envelope that arrived from neighbour `peer` (a child if `from_child`):
    /// structure, signature, certificate, sender inside the child's subtree.
    pub fn check_incoming(
        &self,
        env: Envelope,
        peer: &AgencyCode,
        from_child: bool,
    ) -> Result<Verified<Envelope>, Refusal> {
        self.check_incoming_as(env, peer, from_child, false)
    }

    /// The same; for a `returned` envelope ([`Node::is_return`]) the sender need not lie in
    /// the child's subtree and the envelope may have passed this node before.
    pub fn check_incoming_as(
        &self,
        env: Envelope,
        peer: &AgencyCode,
        from_child: bool,
        returned: bool,
    ) -> Result<Verified<Envelope>, Refusal> {
        envelope::validate_envelope(&env, envelope::today_in_vietnam(self.clock.now_utc()))?;
        let sender = AgencyCode::parse(
            &env.from
                .as_ref()
                .map(|f| f.code.clone())
                .unwrap_or_default(),
        )
        .map_err(|e| Refusal::new(RefusalCode::RefusalInvalid, format!("from.code: {e}")))?;
        if from_child && !returned {
            self.speaks_within(peer, &sender, || {
                format!("sender {sender} is outside the subtree of {peer}, which sent it")
            })?;
        }
        if !returned && env.trace.iter().any(|t| t.agency == self.agency().as_str()) {
            return Err(Refusal::new(
                RefusalCode::RefusalInvalid,
                format!(
                    "routing loop: the envelope already passed {}",
                    self.agency()
                ),
            ));
        }
        let verified = self.verifier.verify_envelope(env, UnixTime::now())?;
        crate::stamp::check(self, &verified)?;
        Ok(verified)
    }

    /// Checks a receipt frame that arrived from `peer`: signature for status receipts, and for
    /// a child, the reporter inside its subtree.
    pub fn check_incoming_receipt(
        &self,
        frame: ReceiptFrame,
        peer: &AgencyCode,
        from_child: bool,
    ) -> Result<Checked<ReceiptFrame>, Refusal> {
        match frame.item {
            Some(receipt_frame::Item::Status(r)) => {
                envelope::validate_receipt(&r)?;
                let reporter =
                    AgencyCode::parse(r.from.as_ref().map(|f| f.code.as_str()).unwrap_or_default())
                        .map_err(|e| {
                            Refusal::new(RefusalCode::RefusalInvalid, format!("from.code: {e}"))
                        })?;
                if from_child {
                    self.speaks_within(peer, &reporter, || {
                        format!("receipt from {reporter} is outside the subtree of {peer}")
                    })?;
                }
                let v = self.verifier.verify_receipt(r, UnixTime::now())?;
                Ok(checked(receipt_frame::Item::Status(v.into_inner())))
            }
            Some(receipt_frame::Item::Transport(t)) => {
                let node = AgencyCode::parse(&t.node).map_err(|e| {
                    Refusal::new(
                        RefusalCode::RefusalInvalid,
                        format!("transport event node: {e}"),
                    )
                })?;
                check_id(&t.id, "transport event id")?;
                if from_child {
                    self.speaks_within(peer, &node, || {
                        format!("transport event from {node} is outside the subtree of {peer}")
                    })?;
                }
                Ok(checked(receipt_frame::Item::Transport(t)))
            }
            Some(receipt_frame::Item::Summary(sum)) => {
                upward_only(
                    from_child,
                    "daily summaries travel upward only, not from a parent",
                )?;
                let (agency, day) = sum
                    .summary
                    .as_ref()
                    .map(|d| (d.agency.clone(), d.day.clone()))
                    .unwrap_or_default();
                let agency = AgencyCode::parse(&agency).map_err(|e| {
                    Refusal::new(RefusalCode::RefusalInvalid, format!("summary agency: {e}"))
                })?;
                envelope::parse_date("summary day", &day)?;
                check_generated(sum.generated_unix_ms, self.clock.now_unix_ms())?;
                check_id(&sum.id, "summary id")?;
                self.speaks_within(peer, &agency, || {
                    format!("summary of {agency} is outside the subtree of {peer}")
                })?;
                let v = self.verifier.verify_item(sum, UnixTime::now())?;
                Ok(checked(receipt_frame::Item::Summary(v.into_inner())))
            }
            Some(receipt_frame::Item::Attestation(a)) => {
                upward_only(
                    from_child,
                    "attestations travel upward only, not from a parent",
                )?;
                let reporter = AgencyCode::parse(&a.node).map_err(|e| {
                    Refusal::new(
                        RefusalCode::RefusalInvalid,
                        format!("attestation node: {e}"),
                    )
                })?;
                check_id(&a.id, "attestation id")?;
                check_generated(a.generated_unix_ms, self.clock.now_unix_ms())?;
                if a.events.len() > MAX_EVENTS_PER_ATTESTATION {
                    return Err(Refusal::new(
                        RefusalCode::RefusalTooLarge,
                        format!(
                            "attestation carries {} events (at most {})",
                            a.events.len(),
                            MAX_EVENTS_PER_ATTESTATION
                        ),
                    ));
                }
                self.speaks_within(peer, &reporter, || {
                    format!("attestation of {reporter} is outside the subtree of {peer}")
                })?;
                let v = self.verifier.verify_item(a, UnixTime::now())?;
                Ok(checked(receipt_frame::Item::Attestation(v.into_inner())))
            }
            Some(receipt_frame::Item::Detail(d)) => {
                upward_only(
                    from_child,
                    "node details travel upward only, not from a parent",
                )?;
                let reporter = AgencyCode::parse(&d.node).map_err(|e| {
                    Refusal::new(
                        RefusalCode::RefusalInvalid,
                        format!("node detail node: {e}"),
                    )
                })?;
                check_id(&d.id, "node detail id")?;
                check_generated(d.generated_unix_ms, self.clock.now_unix_ms())?;
                let text: usize = d.name.len()
                    + d.requirements
                        .iter()
                        .map(|r| {
                            r.id.len()
                                + r.requirement.len()
                                + r.requirement_vi.len()
                                + r.evidence.len()
                        })
                        .sum::<usize>();
                if d.requirements.len() > MAX_REQUIREMENTS_PER_DETAIL
                    || text > MAX_DETAIL_TEXT_BYTES
                {
                    return Err(Refusal::new(
                        RefusalCode::RefusalTooLarge,
                        format!(
                            "node detail carries {} requirements and {text} bytes of text \
                             (at most {MAX_REQUIREMENTS_PER_DETAIL} and {MAX_DETAIL_TEXT_BYTES})",
                            d.requirements.len()
                        ),
                    ));
                }
                self.speaks_within(peer, &reporter, || {
                    format!("node detail of {reporter} is outside the subtree of {peer}")
                })?;
                let v = self.verifier.verify_item(d, UnixTime::now())?;
                Ok(checked(receipt_frame::Item::Detail(v.into_inner())))
            }
            None => Err(Refusal::new(
                RefusalCode::RefusalMalformed,
                "empty receipt frame",
            )),
        }
    }

    /// Stores a receipt frame from a neighbour, as the trust gate passed it, and queues it
    /// toward its destination (or keeps it, if the destination is served here). Idempotent by
    /// receipt id.
    pub fn route_incoming_receipt(&self, frame: Checked<ReceiptFrame>) -> Result<(), NodeError> {
        self.route_receipt(frame.into_inner())
    }

    /// Admits a child connecting from `remote` with the TLS chain `certs` (already checked by
    /// the TLS layer with the trust store's chain policy): the agency its certificate names
    /// must be a child of this node. Refusals are logged and recorded as security events.
    pub fn admit_child(
        &self,
        certs: Option<&[CertificateDer<'_>]>,
        remote: &str,
    ) -> Result<AgencyCode, PeerRefusal> {
        let certs = certs.ok_or(PeerRefusal::NoCertificate)?;
        // The TLS layer checked the chain when the connection was made; a connection outlives
        // a new CRL, so every link opened on it is checked again against the CRL in force.
        let child = self
            .verifier
            .trust()
            .verify_chain(certs, Usage::TlsClient, UnixTime::now())
            .map(|c| c.agency)
            .map_err(|e| {
            warn!(remote = %remote, cause = %e, "link refused: certificate not trusted (now) or names no usable agency");
            self.security_event(EventClass::BadCertificate, remote, "", &e.to_string());
            PeerRefusal::BadCertificate(e)
        })?;
        if !self.accepts_child(&child) {
            warn!(remote = %remote, peer = %child, "link refused: not a child of this node");
            self.security_event(
                EventClass::NotAChild,
                remote,
                child.as_str(),
                "certificate names an agency that is not a child of this node",
            );
            return Err(PeerRefusal::NotAChild {
                child,
                node: self.agency().clone(),
            });
        }
        Ok(child)
    }

    /// Checks again, after a new CRL came into force, the TLS chain a linked child presented:
    /// a certificate that is no longer trusted (revoked, expired) is logged and recorded as a
    /// security event, and the caller closes the link.
    pub fn still_trusted(
        &self,
        child: &AgencyCode,
        chain: &[CertificateDer<'_>],
    ) -> Result<(), PeerRefusal> {
        self.peer_still_trusted(child, chain, Usage::TlsClient, "child")
    }

    /// The same for the chain the parent presented when this node linked to it.
    pub fn parent_still_trusted(
        &self,
        parent: &AgencyCode,
        chain: &[CertificateDer<'_>],
    ) -> Result<(), PeerRefusal> {
        self.peer_still_trusted(parent, chain, Usage::TlsServer, "parent")
    }

    fn peer_still_trusted(
        &self,
        peer: &AgencyCode,
        chain: &[CertificateDer<'_>],
        usage: Usage,
        role: &str,
    ) -> Result<(), PeerRefusal> {
        self.verifier
            .trust()
            .verify_chain(chain, usage, UnixTime::now())
            .map(|_| ())
            .map_err(|e| {
                warn!(peer = %peer, cause = %e, "link closed: the {role}'s certificate is no longer trusted");
                self.security_event(
                    EventClass::BadCertificate,
                    peer.as_str(),
                    peer.as_str(),
                    &format!("linked {role}'s certificate no longer trusted: {e}"),
                );
                PeerRefusal::BadCertificate(e)
            })
    }

    /// Checks that an admitted child's Hello claims the agency of its certificate.
    pub fn check_hello(
        &self,
        child: &AgencyCode,
        remote: &str,
        claimed: &str,
    ) -> Result<(), PeerRefusal> {
        if claimed == child.as_str() {
            return Ok(());
        }
        warn!(remote = %remote, peer = %child, claimed = %claimed, "link refused: Hello names another agency than the certificate");
        self.security_event(
            EventClass::AgencyMismatch,
            remote,
            child.as_str(),
            &format!("Hello claims {claimed}"),
        );
        Err(PeerRefusal::AgencyMismatch {
            child: child.clone(),
            claimed: claimed.to_owned(),
        })
    }

    /// What of a child's announcement it may serve: codes inside its subtree, and itself.
    /// The others are logged, recorded as security events and ignored.
    pub fn check_announcement(
        &self,
        child: &AgencyCode,
        serves: &[String],
    ) -> BTreeSet<AgencyCode> {
        let mut set = BTreeSet::new();
        for code in serves {
            match AgencyCode::parse(code) {
                Ok(c) if self.child_may_serve(child, &c) => {
                    set.insert(c);
                }
                _ => {
                    warn!(peer = %child, code = %code, "child announced an agency outside its subtree; ignored");
                    self.security_event(
                        EventClass::AnnounceOutsideSubtree,
                        child.as_str(),
                        code,
                        "announced an agency outside its subtree",
                    );
                }
            }
        }
        set.insert(child.clone());
        set
    }

    /// The one check that a child speaks only for its own subtree: `who` (a sender, a
    /// reporter, an agency summarised) must lie inside the subtree of the child `peer`;
    /// `what` says which item claimed otherwise.
    fn speaks_within(
        &self,
        peer: &AgencyCode,
        who: &AgencyCode,
        what: impl FnOnce() -> String,
    ) -> Result<(), Refusal> {
        if self.with_routes(|r| r.child_may_originate(peer, who)) {
            Ok(())
        } else {
            Err(Refusal::new(RefusalCode::RefusalSpoofedSender, what()))
        }
    }

    /// Checks the certificate agency of a connecting child.
    pub fn accepts_child(&self, child: &AgencyCode) -> bool {
        self.with_routes(|r| r.accepts_child(child))
    }

    /// Whether a child may announce `code`.
    pub fn child_may_serve(&self, child: &AgencyCode, code: &AgencyCode) -> bool {
        self.with_routes(|r| r.child_may_serve(child, code))
    }

    /// A certificate error as a refusal reason.
    pub fn cert_refusal(e: &CertError) -> Refusal {
        Refusal::new(RefusalCode::RefusalBadCertificate, e.to_string())
    }
}
