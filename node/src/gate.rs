//! The trust gate: every item that arrives from a neighbour (envelope, receipt, summary,
//! attestation) and every connecting child is checked here, and nowhere else, before the node
//! acts on it. Signatures and certificate chains are checked by `lienthong_common::signing` and
//! `lienthong_common::trust`, the one chain policy for TLS peers and signed items.

use lienthong_common::agency::AgencyCode;
use lienthong_common::envelope;
use lienthong_common::now_unix_ms;
use lienthong_common::signing::Verified;
use lienthong_common::trust::CertError;
use lienthong_proto::v1::{receipt_frame, Envelope, ReceiptFrame, RefusalCode};
use rustls_pki_types::UnixTime;

use crate::node::{Node, Refusal};
use crate::upward::MAX_EVENTS_PER_ATTESTATION;

/// How far ahead of this node's clock a summary or attestation may say it was generated: a
/// child whose clock runs ahead would otherwise pin its figures as the newest for good.
pub const MAX_CLOCK_AHEAD_MS: i64 = 10 * 60 * 1000;

fn check_generated(generated_unix_ms: i64) -> Result<(), Refusal> {
    let now = now_unix_ms();
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
    /// Checks an envelope that arrived from neighbour `peer` (a child if `from_child`):
    /// structure, signature, certificate, sender inside the child's subtree.
    pub fn check_incoming(
        &self,
        env: Envelope,
        peer: &AgencyCode,
        from_child: bool,
    ) -> Result<Verified<Envelope>, Refusal> {
        envelope::validate_envelope(
            &env,
            envelope::today_in_vietnam(lienthong_common::now_utc()),
        )?;
        let sender = AgencyCode::parse(
            &env.from
                .as_ref()
                .map(|f| f.code.clone())
                .unwrap_or_default(),
        )
        .map_err(|e| Refusal::new(RefusalCode::RefusalInvalid, format!("from.code: {e}")))?;
        if from_child && !self.with_routes(|r| r.child_may_originate(peer, &sender)) {
            return Err(Refusal::new(
                RefusalCode::RefusalSpoofedSender,
                format!("sender {sender} is outside the subtree of {peer}, which sent it"),
            ));
        }
        if env.trace.iter().any(|t| t.agency == self.agency().as_str()) {
            return Err(Refusal::new(
                RefusalCode::RefusalInvalid,
                format!(
                    "routing loop: the envelope already passed {}",
                    self.agency()
                ),
            ));
        }
        Ok(self.verifier.verify_envelope(env, UnixTime::now())?)
    }

    /// Checks a receipt frame that arrived from `peer`: signature for status receipts, and for
    /// a child, the reporter inside its subtree.
    pub fn check_incoming_receipt(
        &self,
        frame: ReceiptFrame,
        peer: &AgencyCode,
        from_child: bool,
    ) -> Result<ReceiptFrame, Refusal> {
        match frame.item {
            Some(receipt_frame::Item::Status(r)) => {
                envelope::validate_receipt(&r)?;
                let reporter =
                    AgencyCode::parse(r.from.as_ref().map(|f| f.code.as_str()).unwrap_or_default())
                        .map_err(|e| {
                            Refusal::new(RefusalCode::RefusalInvalid, format!("from.code: {e}"))
                        })?;
                if from_child && !self.with_routes(|t| t.child_may_originate(peer, &reporter)) {
                    return Err(Refusal::new(
                        RefusalCode::RefusalSpoofedSender,
                        format!("receipt from {reporter} is outside the subtree of {peer}"),
                    ));
                }
                let v = self.verifier.verify_receipt(r, UnixTime::now())?;
                Ok(ReceiptFrame {
                    item: Some(receipt_frame::Item::Status(v.into_inner())),
                })
            }
            Some(receipt_frame::Item::Transport(t)) => {
                let node = AgencyCode::parse(&t.node).map_err(|e| {
                    Refusal::new(
                        RefusalCode::RefusalInvalid,
                        format!("transport event node: {e}"),
                    )
                })?;
                if t.id.is_empty() || t.id.len() > envelope::MAX_ID_LEN {
                    return Err(Refusal::new(
                        RefusalCode::RefusalInvalid,
                        "transport event id",
                    ));
                }
                if from_child && !self.with_routes(|r| r.child_may_originate(peer, &node)) {
                    return Err(Refusal::new(
                        RefusalCode::RefusalSpoofedSender,
                        format!("transport event from {node} is outside the subtree of {peer}"),
                    ));
                }
                Ok(ReceiptFrame {
                    item: Some(receipt_frame::Item::Transport(t)),
                })
            }
            Some(receipt_frame::Item::Summary(sum)) => {
                if !from_child {
                    return Err(Refusal::new(
                        RefusalCode::RefusalInvalid,
                        "daily summaries travel upward only, not from a parent",
                    ));
                }
                let (agency, day) = sum
                    .summary
                    .as_ref()
                    .map(|d| (d.agency.clone(), d.day.clone()))
                    .unwrap_or_default();
                let agency = AgencyCode::parse(&agency).map_err(|e| {
                    Refusal::new(RefusalCode::RefusalInvalid, format!("summary agency: {e}"))
                })?;
                envelope::parse_date("summary day", &day)?;
                check_generated(sum.generated_unix_ms)?;
                if sum.id.is_empty() || sum.id.len() > envelope::MAX_ID_LEN {
                    return Err(Refusal::new(RefusalCode::RefusalInvalid, "summary id"));
                }
                if !self.with_routes(|t| t.child_may_originate(peer, &agency)) {
                    return Err(Refusal::new(
                        RefusalCode::RefusalSpoofedSender,
                        format!("summary of {agency} is outside the subtree of {peer}"),
                    ));
                }
                let v = self.verifier.verify_item(sum, UnixTime::now())?;
                Ok(ReceiptFrame {
                    item: Some(receipt_frame::Item::Summary(v.into_inner())),
                })
            }
            Some(receipt_frame::Item::Attestation(a)) => {
                if !from_child {
                    return Err(Refusal::new(
                        RefusalCode::RefusalInvalid,
                        "attestations travel upward only, not from a parent",
                    ));
                }
                let reporter = AgencyCode::parse(&a.node).map_err(|e| {
                    Refusal::new(
                        RefusalCode::RefusalInvalid,
                        format!("attestation node: {e}"),
                    )
                })?;
                if a.id.is_empty() || a.id.len() > envelope::MAX_ID_LEN {
                    return Err(Refusal::new(RefusalCode::RefusalInvalid, "attestation id"));
                }
                check_generated(a.generated_unix_ms)?;
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
                if !self.with_routes(|t| t.child_may_originate(peer, &reporter)) {
                    return Err(Refusal::new(
                        RefusalCode::RefusalSpoofedSender,
                        format!("attestation of {reporter} is outside the subtree of {peer}"),
                    ));
                }
                let v = self.verifier.verify_item(a, UnixTime::now())?;
                Ok(ReceiptFrame {
                    item: Some(receipt_frame::Item::Attestation(v.into_inner())),
                })
            }
            None => Err(Refusal::new(
                RefusalCode::RefusalMalformed,
                "empty receipt frame",
            )),
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
