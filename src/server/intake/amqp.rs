//! AMQP intake: the seed's path. Diamond's Cloudify handler publishes one JSON message per
//! metric to the topic exchange `cloudify-monitoring` with the deployment id as routing key:
//! `{"deployment_id", "node_id" (the node instance id), "node_name", "host", "service",
//! "metric" (the value), "time"}`. windlass declares the exchange (durable, as Cloudify
//! does) if it is absent, binds a private queue to every routing key and consumes without
//! acknowledgements (a metric is worth nothing late). The metric's name is `service`, with a
//! leading `DEPLOYMENT.NODE_NAME.NODE_INSTANCE.` removed when present.
//!
//! Plain `amqp://` only: `amqps://` is refused at start with a clear error.

use std::sync::Arc;

use futures_lite::StreamExt;
use lapin::options::{
    BasicConsumeOptions, ExchangeDeclareOptions, QueueBindOptions, QueueDeclareOptions,
};
use lapin::types::FieldTable;
use lapin::{Connection, ConnectionProperties, ExchangeKind};
use serde_json::Value as Json;
use tokio::sync::watch;

use super::Counters;
use crate::policy::{Sample, Timestamp};
use crate::server::runtime::Handle;

/// The exchange Cloudify's monitoring publishes to.
pub const EXCHANGE: &str = "cloudify-monitoring";

/// Connect, declare, bind and start consuming; returns once the consumer is in place, so a
/// bad URL or a refused connection fails `windlass serve` at start.
pub async fn start(
    url: &str,
    runtime: Handle,
    counters: Arc<Counters>,
    mut shutdown: watch::Receiver<bool>,
) -> Result<(), String> {
    if url.starts_with("amqps://") {
        return Err(
            "amqps:// (TLS) is not supported by this version; use amqp:// on a trusted network"
                .into(),
        );
    }
    let connection = Connection::connect(url, ConnectionProperties::default())
        .await
        .map_err(|e| format!("cannot connect to {}: {e}", redact(url)))?;
    let channel = connection
        .create_channel()
        .await
        .map_err(|e| format!("cannot open a channel: {e}"))?;
    channel
        .exchange_declare(
            EXCHANGE.into(),
            ExchangeKind::Topic,
            ExchangeDeclareOptions {
                durable: true,
                ..ExchangeDeclareOptions::default()
            },
            FieldTable::default(),
        )
        .await
        .map_err(|e| format!("cannot declare the exchange {EXCHANGE}: {e}"))?;
    let queue = channel
        .queue_declare(
            "".into(),
            QueueDeclareOptions {
                exclusive: true,
                auto_delete: true,
                ..QueueDeclareOptions::default()
            },
            FieldTable::default(),
        )
        .await
        .map_err(|e| format!("cannot declare a queue: {e}"))?;
    channel
        .queue_bind(
            queue.name().clone(),
            EXCHANGE.into(),
            "#".into(),
            QueueBindOptions::default(),
            FieldTable::default(),
        )
        .await
        .map_err(|e| format!("cannot bind to {EXCHANGE}: {e}"))?;
    let mut consumer = channel
        .basic_consume(
            queue.name().clone(),
            "windlass".into(),
            BasicConsumeOptions {
                no_ack: true,
                ..BasicConsumeOptions::default()
            },
            FieldTable::default(),
        )
        .await
        .map_err(|e| format!("cannot consume: {e}"))?;
    tokio::spawn(async move {
        // The connection lives as long as the consumer.
        let _connection = connection;
        loop {
            let delivery = tokio::select! {
                d = consumer.next() => d,
                _ = crate::server::until_set(&mut shutdown) => return,
            };
            let Some(delivery) = delivery else {
                crate::server::note("amqp intake: the broker closed the consumer");
                return;
            };
            let delivery = match delivery {
                Ok(d) => d,
                Err(e) => {
                    crate::server::note(&format!("amqp intake: {e}"));
                    return;
                }
            };
            let routing_key = delivery.routing_key.as_str().to_string();
            match message(&delivery.data, &routing_key) {
                Ok(sample) => {
                    counters.amqp.accept(1);
                    if !runtime.submit(vec![sample]).await {
                        return;
                    }
                }
                Err(why) => counters.amqp.malformed(why),
            }
        }
    });
    Ok(())
}

/// The URL without its password, for messages.
fn redact(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(scheme), Some(at)) if at > scheme => {
            let userinfo = &url[scheme + 3..at];
            let user = userinfo.split(':').next().unwrap_or("");
            format!("{}{user}:***{}", &url[..scheme + 3], &url[at..])
        }
        _ => url.to_string(),
    }
}

/// One Cloudify-handler message as a sample, or why not.
fn message(data: &[u8], routing_key: &str) -> Result<Sample, String> {
    let m: Json =
        serde_json::from_slice(data).map_err(|e| format!("a message that is not JSON: {e}"))?;
    let text = |k: &str| m.get(k).and_then(Json::as_str).filter(|s| !s.is_empty());
    let deployment = text("deployment_id")
        .or((!routing_key.is_empty()).then_some(routing_key))
        .ok_or("a message without `deployment_id`")?;
    let instance = text("node_id")
        .or_else(|| text("host"))
        .ok_or("a message without `node_id` (the node instance)")?;
    let service = text("service").ok_or("a message without `service`")?;
    let value = match m.get("metric") {
        Some(Json::Number(n)) => n.as_f64(),
        Some(Json::String(s)) => s.trim().parse().ok(),
        _ => None,
    }
    .filter(|v: &f64| v.is_finite())
    .ok_or("`metric` (the value) is not a number")?;
    let at = match m.get("time") {
        None | Some(Json::Null) => crate::server::runtime::now(),
        Some(t) => Timestamp(
            t.as_f64()
                .or_else(|| t.as_str().and_then(|s| s.parse().ok()))
                .filter(|t| t.is_finite())
                .ok_or("`time` is not a number of seconds")?,
        ),
    };
    let mut name = service;
    if let Some(node_name) = text("node_name") {
        let prefix = format!("{deployment}.{node_name}.{instance}.");
        name = service.strip_prefix(&prefix).unwrap_or(service);
    }
    Ok(Sample {
        deployment: deployment.to_string(),
        node_instance: instance.to_string(),
        name: name.to_string(),
        value,
        at,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_cloudify_handler_message_is_a_sample() {
        let m = br#"{"deployment_id": "d1", "node_id": "nodejs_abc123", "node_name": "nodejs", "host": "vm", "service": "d1.nodejs.nodejs_abc123.connections", "metric": 12.5, "time": 1764000000}"#;
        let s = message(m, "d1").unwrap();
        assert_eq!(
            (
                s.deployment.as_str(),
                s.node_instance.as_str(),
                s.name.as_str(),
                s.value
            ),
            ("d1", "nodejs_abc123", "connections", 12.5)
        );
        assert_eq!(s.at, Timestamp(1764000000.0));
        // Without the prefix the service is the name; the value may be a string.
        let m = br#"{"deployment_id": "d1", "node_id": "n_1", "service": "cpu.total", "metric": "3", "time": 5}"#;
        assert_eq!(message(m, "d1").unwrap().name, "cpu.total");
    }

    #[test]
    fn bad_messages_say_why() {
        assert!(message(b"nope", "d").unwrap_err().contains("not JSON"));
        assert!(
            message(
                br#"{"deployment_id": "d", "service": "s", "metric": 1}"#,
                "d"
            )
            .unwrap_err()
            .contains("node_id")
        );
        assert!(
            message(
                br#"{"deployment_id": "d", "node_id": "i", "service": "s", "metric": "x"}"#,
                "d"
            )
            .unwrap_err()
            .contains("metric")
        );
    }

    #[test]
    fn passwords_stay_out_of_messages() {
        assert_eq!(
            redact("amqp://guest:secret@127.0.0.1:5672/%2f"),
            "amqp://guest:***@127.0.0.1:5672/%2f"
        );
        assert_eq!(redact("amqp://127.0.0.1"), "amqp://127.0.0.1");
    }
}
