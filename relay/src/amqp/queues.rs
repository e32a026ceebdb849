//! The queues of an agency: their names, the arguments the node declares them with, and the
//! declaration itself, which tolerates intake queues declared by an older node (without the
//! dead-letter arguments) so that an upgrade does not stop the integration.

use lapin::options::QueueDeclareOptions;
use lapin::types::{AMQPValue, FieldTable, LongString, ShortString};
use lapin::{Channel, Connection};
use lienthong_common::agency::AgencyCode;
use tracing::warn;

/// Every queue kind the node declares for an agency, in declaration order: `dead` before the
/// intake queues that dead-letter into it.
pub const KINDS: [&str; 5] = ["dead", "inbox", "receipts", "outbox", "status"];

/// How many times a quorum outbox or status queue hands the same message out before the
/// broker moves it to the agency's dead-letter queue instead of delivering it again.
///
/// The node never returns a message on purpose (a store failure holds it, see
/// `docs/integration.md`, section 5): a delivery is counted again only when the broker takes a
/// message back from a consumer that went away (a node restart or crash, a lost connection,
/// the broker's consumer timeout). Fifty such returns mean a message that keeps a node from
/// getting anywhere; it is set aside where the DMS sees it rather than dropped (RabbitMQ 4
/// drops after 20 returns unless a queue has a dead-letter target).
pub const DELIVERY_LIMIT: i32 = 50;

/// The queue `kind` of `agency`: `lienthong.<agency>.<kind>`.
pub fn queue_name(agency: &AgencyCode, kind: &str) -> String {
    format!("lienthong.{agency}.{kind}")
}

/// Whether the node consumes `kind` (and so declares it with a dead-letter target).
fn is_intake(kind: &str) -> bool {
    matches!(kind, "outbox" | "status")
}

fn text(s: &str) -> AMQPValue {
    AMQPValue::LongString(LongString::from(s))
}

/// The arguments before dead-lettering was added: only the queue type.
fn type_only(quorum: bool) -> FieldTable {
    let mut args = FieldTable::default();
    args.insert(
        ShortString::from("x-queue-type"),
        text(if quorum { "quorum" } else { "classic" }),
    );
    args
}

/// The arguments the node declares queue `kind` of `agency` with (docs/integration.md,
/// "Declaration"). A DMS that declares the queues itself must use exactly these.
///
/// Outbox and status dead-letter into `lienthong.<agency>.dead` through the default exchange.
/// On quorum queues they also carry [`DELIVERY_LIMIT`], at-least-once dead-lettering (the
/// broker keeps a message until the dead-letter queue has confirmed it) and
/// `x-overflow = reject-publish`, which at-least-once dead-lettering requires and which, should a
/// length limit ever be set by policy, refuses new publishes instead of dropping old messages.
/// Classic queues know no delivery limit: there a message is handed out again indefinitely.
pub fn queue_arguments(agency: &AgencyCode, kind: &str, quorum: bool) -> FieldTable {
    let mut args = type_only(quorum);
    if is_intake(kind) {
        args.insert(ShortString::from("x-dead-letter-exchange"), text(""));
        args.insert(
            ShortString::from("x-dead-letter-routing-key"),
            text(&queue_name(agency, "dead")),
        );
        if quorum {
            args.insert(
                ShortString::from("x-delivery-limit"),
                AMQPValue::LongInt(DELIVERY_LIMIT),
            );
            args.insert(
                ShortString::from("x-dead-letter-strategy"),
                text("at-least-once"),
            );
            args.insert(ShortString::from("x-overflow"), text("reject-publish"));
        }
    }
    args
}

/// A queue the broker would not let the node declare.
#[derive(Debug, thiserror::Error)]
#[error("declaring queue {queue}: {source}")]
pub struct DeclareError {
    /// The queue.
    pub queue: String,
    /// What the broker or the connection said.
    #[source]
    pub source: lapin::Error,
}

fn precondition_failed(e: &lapin::Error) -> bool {
    matches!(e.kind(), lapin::ErrorKind::ProtocolError(p) if p.get_id() == 406)
}

async fn declare(ch: &Channel, queue: &str, args: FieldTable) -> Result<(), lapin::Error> {
    ch.queue_declare(
        queue.into(),
        QueueDeclareOptions {
            durable: true,
            ..Default::default()
        },
        args,
    )
    .await
    .map(|_| ())
}

/// Declares every queue of `agencies` on a channel of its own (a refused declaration closes
/// the channel). Returns the intake queues found declared by an older node, without the
/// dead-letter arguments: those are used as they are, with a warning, since their arguments
/// cannot change while they exist (docs/integration.md, "Upgrading").
pub async fn declare_all(
    conn: &Connection,
    agencies: &[AgencyCode],
    quorum: bool,
) -> Result<Vec<String>, DeclareError> {
    let on = |queue: &str| {
        let queue = queue.to_owned();
        move |source| DeclareError { queue, source }
    };
    let mut ch = conn.create_channel().await.map_err(on("(channel)"))?;
    let mut legacy = Vec::new();
    for agency in agencies {
        for kind in KINDS {
            let queue = queue_name(agency, kind);
            let first = match declare(&ch, &queue, queue_arguments(agency, kind, quorum)).await {
                Ok(()) => continue,
                Err(e) if is_intake(kind) && precondition_failed(&e) => e,
                Err(e) => return Err(on(&queue)(e)),
            };
            ch = conn.create_channel().await.map_err(on(&queue))?;
            // The same queue as an older node declared it; anything else is a real mismatch
            // (another queue type, arguments set by someone else) and the first refusal says why.
            if declare(&ch, &queue, type_only(quorum)).await.is_err() {
                return Err(on(&queue)(first));
            }
            warn!(
                queue = %queue,
                cause = %first,
                "queue exists without the dead-letter arguments (declared by an older version); using it as it is: see docs/integration.md, Upgrading"
            );
            legacy.push(queue);
        }
    }
    let _ = ch.close(200, "declared".into()).await;
    Ok(legacy)
}
