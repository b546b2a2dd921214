//! Delivery of dispatch notifications (webhook, MQTT, e-mail over SMTP). The messages are rows
//! written with the dispatch step that caused them; any instance claims due rows with a lease,
//! sends them, and marks them sent, so delivery is at least once and survives a crash.
//! Rows of one regional situation (`flood.rs`) due together for one target go out as one
//! message listing them; every message carries the ids of its rows as idempotency keys.

use std::sync::Arc;
use std::time::Duration;

use lettre::message::header::ContentType;
use lettre::transport::smtp::authentication::Credentials;
use lettre::{AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor};
use rumqttc::{AsyncClient, QoS};
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

use super::config::CentralConfig;
use super::dispatch::retry_delay;
use super::flood;
use super::store::{Notification, Store};
use super::{now_ms, CentralMetrics};

pub async fn run(
    config: Arc<CentralConfig>,
    store: Store,
    mqtt: Option<AsyncClient>,
    metrics: Arc<CentralMetrics>,
    wake: Arc<Notify>,
    stop: CancellationToken,
) {
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .build()
        .expect("building the HTTP client");
    let smtp = config.smtp.as_ref().map(|s| {
        let mut builder = AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(&s.host)
            .port(s.port)
            .timeout(Some(Duration::from_secs(10)));
        if let Some(user) = &s.username {
            builder = builder.credentials(Credentials::new(
                user.clone(),
                s.password
                    .as_ref()
                    .map(|p| secrecy::ExposeSecret::expose_secret(p).to_owned())
                    .unwrap_or_default(),
            ));
        }
        builder.build()
    });
    let lease_ms = config.dispatch.lease.as_millis() as i64;
    loop {
        let claimed = match store
            .claim_notifications(&config.instance, now_ms(), lease_ms, CLAIM_AT_ONCE)
            .await
        {
            Ok(c) => c,
            Err(e) => {
                tracing::warn!(error = %e, "cannot claim notifications; retrying");
                Vec::new()
            }
        };
        let busy = !claimed.is_empty();
        for group in by_message(claimed) {
            let message = Outgoing::of(&group);
            let result = send(&config, &http, smtp.as_ref(), mqtt.as_ref(), &message).await;
            let first = &group[0];
            let mut saved = Ok(());
            match result {
                Ok(()) => {
                    metrics.notification_sent(&first.channel);
                    tracing::info!(dispatch = %first.dispatch_id, dispatches = group.len(), channel = %first.channel, target = %first.target, "notification sent");
                    for n in &group {
                        saved =
                            saved.and(store.notification_sent(&n.id, &n.payload, now_ms()).await);
                    }
                }
                Err(e) => {
                    metrics.notification_failed(&first.channel, &e);
                    for n in &group {
                        let next = now_ms() + retry_delay(n.attempts).as_millis() as i64;
                        saved = saved.and(store.notification_failed(&n.id, next, &e).await);
                    }
                }
            };
            if let Err(e) = saved {
                tracing::warn!(error = %e, "cannot record notification outcome; it will be sent again");
            }
        }
        if busy {
            continue;
        }
        tokio::select! {
            _ = wake.notified() => {}
            _ = tokio::time::sleep(config.dispatch.poll_interval) => {}
            _ = stop.cancelled() => return,
        }
    }
}

/// How many due rows one instance claims at once: a situation's batch for a unit fits in one.
const CLAIM_AT_ONCE: i64 = 1000;

/// Groups claimed rows into messages: the rows of one situation for one channel and target
/// become one message (in the order claimed, oldest due first); every other row is its own.
fn by_message(claimed: Vec<Notification>) -> Vec<Vec<Notification>> {
    let mut groups: Vec<Vec<Notification>> = Vec::new();
    for n in claimed {
        let joins = n.situation_id.is_some().then(|| {
            groups.iter().position(|g| {
                g[0].situation_id == n.situation_id
                    && g[0].channel == n.channel
                    && g[0].target == n.target
            })
        });
        match joins.flatten() {
            Some(i) => groups[i].push(n),
            None => groups.push(vec![n]),
        }
    }
    groups
}

/// One message on the wire, with the key a receiver drops a repeat by.
struct Outgoing {
    channel: String,
    target: String,
    subject: String,
    payload: String,
    idempotency_key: String,
}

impl Outgoing {
    fn of(group: &[Notification]) -> Outgoing {
        let first = &group[0];
        let json = first.channel != "email";
        let (subject, payload, idempotency_key) = match (&first.situation_id, group.len()) {
            (Some(situation), n) if n > 1 => {
                let items: Vec<flood::Item<'_>> = group
                    .iter()
                    .map(|n| flood::Item {
                        notification_id: &n.id,
                        subject: &n.subject,
                        payload: &n.payload,
                    })
                    .collect();
                let (subject, payload) = flood::batch(&first.channel, situation, &items);
                let ids: Vec<&str> = group.iter().map(|n| n.id.as_str()).collect();
                (subject, payload, flood::idempotency_key(&ids))
            }
            _ if json => (
                first.subject.clone(),
                flood::single_json(&first.id, &first.payload),
                first.id.clone(),
            ),
            _ => (
                first.subject.clone(),
                first.payload.clone(),
                first.id.clone(),
            ),
        };
        Outgoing {
            channel: first.channel.clone(),
            target: first.target.clone(),
            subject,
            payload,
            idempotency_key,
        }
    }
}

async fn send(
    config: &CentralConfig,
    http: &reqwest::Client,
    smtp: Option<&AsyncSmtpTransport<Tokio1Executor>>,
    mqtt: Option<&AsyncClient>,
    n: &Outgoing,
) -> Result<(), String> {
    match n.channel.as_str() {
        "webhook" => {
            let response = http
                .post(&n.target)
                .header("content-type", "application/json")
                .header("idempotency-key", &n.idempotency_key)
                .body(n.payload.clone())
                .send()
                .await
                .map_err(|e| e.to_string())?;
            if response.status().is_success() {
                Ok(())
            } else {
                Err(format!("webhook answered {}", response.status()))
            }
        }
        "mqtt" => {
            let client = mqtt.ok_or("no [mqtt] broker configured")?;
            client
                .publish(
                    &n.target,
                    QoS::AtLeastOnce,
                    false,
                    n.payload.clone().into_bytes(),
                )
                .await
                .map_err(|e| e.to_string())
        }
        "email" => {
            let (Some(transport), Some(settings)) = (smtp, config.smtp.as_ref()) else {
                return Err("no [smtp] server configured".into());
            };
            let message = Message::builder()
                .from(settings.from.parse().map_err(|e| format!("from: {e}"))?)
                .to(n
                    .target
                    .parse()
                    .map_err(|e| format!("to `{}`: {e}", n.target))?)
                .subject(&n.subject)
                // The same rows give the same Message-ID: a repeat is recognisable.
                .message_id(Some(format!("<{}@seguard>", n.idempotency_key)))
                .header(ContentType::TEXT_PLAIN)
                .body(n.payload.clone())
                .map_err(|e| e.to_string())?;
            transport
                .send(message)
                .await
                .map(|_| ())
                .map_err(|e| e.to_string())
        }
        other => Err(format!("unknown channel {other}")),
    }
}
