//! Delivery of dispatch notifications (webhook, MQTT, e-mail over SMTP). The messages are rows
//! written with the dispatch step that caused them; any instance claims due rows with a lease,
//! sends them, and marks them sent, so delivery is at least once and survives a crash.

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
            .claim_notifications(&config.instance, now_ms(), lease_ms, 20)
            .await
        {
            Ok(c) => c,
            Err(e) => {
                tracing::warn!(error = %e, "cannot claim notifications; retrying");
                Vec::new()
            }
        };
        let busy = !claimed.is_empty();
        for n in claimed {
            let result = send(&config, &http, smtp.as_ref(), mqtt.as_ref(), &n).await;
            let saved = match result {
                Ok(()) => {
                    metrics.notification_sent(&n.channel);
                    tracing::info!(dispatch = %n.dispatch_id, channel = %n.channel, target = %n.target, "notification sent");
                    store.notification_sent(&n.id, &n.payload, now_ms()).await
                }
                Err(e) => {
                    metrics.notification_failed(&n.channel, &e);
                    let next = now_ms() + retry_delay(n.attempts).as_millis() as i64;
                    store.notification_failed(&n.id, next, &e).await
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

async fn send(
    config: &CentralConfig,
    http: &reqwest::Client,
    smtp: Option<&AsyncSmtpTransport<Tokio1Executor>>,
    mqtt: Option<&AsyncClient>,
    n: &Notification,
) -> Result<(), String> {
    match n.channel.as_str() {
        "webhook" => {
            let response = http
                .post(&n.target)
                .header("content-type", "application/json")
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
