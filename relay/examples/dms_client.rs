//! An example DMS client for the RabbitMQ integration (docs/integration.md): publishes one
//! document to an agency's outbox queue and prints the receipts and transport events that come
//! back on its receipts queue.
//!
//! ```text
//! cargo run -p lienthong-relay --example dms_client -- \
//!     --url amqp://guest:guest@127.0.0.1:5672/%2f --agency 000.21.31.H53 \
//!     --to 000.07.05.H49 --subject "Đề nghị phối hợp" --file congvan.pdf
//! ```

use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context;
use clap::Parser;
use lapin::options::{
    BasicAckOptions, BasicConsumeOptions, BasicPublishOptions, ConfirmSelectOptions,
};
use lapin::types::FieldTable;
use lapin::BasicProperties;
use lienthong_proto::v1::{
    receipt_frame, AttachmentManifest, DocumentCode, Envelope, Organization, PromulgationInfo,
    ReceiptFrame, SubmitAttachment, SubmitRequest,
};
use prost::Message;
use tokio_stream::StreamExt;

/// Publish a document through RabbitMQ and follow its receipts.
#[derive(Debug, Parser)]
struct Args {
    /// Broker URL (`amqp://` or `amqps://`).
    #[arg(long, default_value = "amqp://guest:guest@127.0.0.1:5672/%2f")]
    url: String,
    /// With an amqps:// URL: the PEM file of the CA that issued the broker's certificate
    /// (default: the system's trust roots).
    #[arg(long)]
    ca: Option<PathBuf>,
    /// Sending agency (its relay consumes lienthong.<agency>.outbox).
    #[arg(long)]
    agency: String,
    /// Recipient agency.
    #[arg(long)]
    to: String,
    /// Subject (trích yếu).
    #[arg(long)]
    subject: String,
    /// Document number.
    #[arg(long, default_value = "1")]
    number: String,
    /// A file to attach inline (up to the 8 MiB message limit).
    #[arg(long)]
    file: Option<PathBuf>,
    /// Seconds to keep printing receipts.
    #[arg(long, default_value_t = 30)]
    follow: u64,
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let conn = lienthong_relay::amqp::broker::connect(&args.url, args.ca.as_deref())
        .await
        .with_context(|| format!("connecting to {}", args.url))?;
    let ch = conn.create_channel().await?;
    ch.confirm_select(ConfirmSelectOptions::default()).await?;

    let today = lienthong_common::envelope::format_date(
        lienthong_common::envelope::today_in_vietnam(lienthong_common::now_utc()),
    );
    let id = uuid::Uuid::new_v4().to_string();
    let mut attachments = Vec::new();
    if let Some(path) = &args.file {
        let data = std::fs::read(path).with_context(|| format!("reading {}", path.display()))?;
        let name = path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        attachments.push(SubmitAttachment {
            manifest: Some(AttachmentManifest {
                name,
                content_type: "application/octet-stream".into(),
                ..Default::default()
            }),
            data,
        });
    }
    let req = SubmitRequest {
        envelope: Some(Envelope {
            id: id.clone(),
            from: Some(Organization {
                code: args.agency.clone(),
                name: args.agency.clone(),
                ..Default::default()
            }),
            to: vec![Organization {
                code: args.to.clone(),
                name: args.to.clone(),
                ..Default::default()
            }],
            code: Some(DocumentCode {
                number: args.number.clone(),
                notation: "DMS".into(),
            }),
            promulgation: Some(PromulgationInfo {
                place: String::new(),
                date: today,
            }),
            subject: args.subject.clone(),
            ..Default::default()
        }),
        attachments,
    };
    let outbox = format!("lienthong.{}.outbox", args.agency);
    let confirm = ch
        .basic_publish(
            "".into(),
            outbox.as_str().into(),
            BasicPublishOptions::default(),
            &req.encode_to_vec(),
            BasicProperties::default()
                .with_content_type("application/x-protobuf".into())
                .with_delivery_mode(2),
        )
        .await?
        .await?;
    anyhow::ensure!(
        confirm.is_ack(),
        "the broker did not confirm the publish to {outbox}"
    );
    println!("published envelope {id} to {outbox}");

    let receipts = format!("lienthong.{}.receipts", args.agency);
    let mut consumer = ch
        .basic_consume(
            receipts.as_str().into(),
            "dms-example".into(),
            BasicConsumeOptions::default(),
            FieldTable::default(),
        )
        .await?;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(args.follow);
    while let Ok(Some(d)) = tokio::time::timeout_at(deadline, consumer.next()).await {
        let d = d?;
        d.ack(BasicAckOptions::default()).await?;
        match ReceiptFrame::decode(d.data.as_slice())
            .ok()
            .and_then(|f| f.item)
        {
            Some(receipt_frame::Item::Status(s)) => println!(
                "status {:02} from {} about {}: {}",
                s.status,
                s.from.map(|f| f.code).unwrap_or_default(),
                s.response_for.map(|r| r.envelope_id).unwrap_or_default(),
                s.description
            ),
            Some(receipt_frame::Item::Transport(t)) => {
                println!(
                    "transport state {} at {} for {} {}",
                    t.state, t.node, t.recipient, t.reason
                )
            }
            // Summaries, attestations and node details travel between relays only; a receipts
            // queue never carries one.
            Some(
                receipt_frame::Item::Summary(_)
                | receipt_frame::Item::Attestation(_)
                | receipt_frame::Item::Detail(_),
            )
            | None => {
                println!("unreadable message on {receipts}")
            }
        }
    }
    Ok(())
}
