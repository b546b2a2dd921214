//! MQTT ingest: subscribes to the mapped topics on the site broker and turns each message into
//! readings (`mapping.rs`).
//!
//! Follows what rumqttc needs to lose nothing: a fixed client id with a persistent session,
//! subscribing again whenever the broker has no session for us, an event loop that is polled
//! after every error (that is how it reconnects) with our own backoff and jitter, and manual
//! acknowledgements.
//!
//! **Invariant:** a QoS1 message is acknowledged to the broker only after the pipeline has put
//! its readings in the outbox (the pipeline hands the publish back on `acks`), or after it was
//! rejected and counted. A message in flight when the gateway dies is delivered again.

pub mod config;
pub mod mapping;
pub mod profile;

use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use rumqttc::{AsyncClient, Event, Packet, Publish, QoS};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use crate::backoff::Backoff;
use crate::broker::Broker;
use crate::ingest::Batch;
use crate::ingest::Clock;
use crate::metrics::Metrics;

pub use mapping::{Mapper, Rejection};

pub struct MqttIngest {
    pub broker: Broker,
    pub mapper: Mapper,
    pub metrics: Arc<Metrics>,
    pub connected: Arc<AtomicBool>,
    /// The arrival time, stamped on readings whose message carries none.
    pub clock: Clock,
}

impl MqttIngest {
    /// Runs until `stop_intake` fires, then keeps the connection up until the pipeline has
    /// handed back every acknowledgement (it closes `acks`), and disconnects.
    pub async fn run(
        self,
        pipeline: mpsc::Sender<Batch>,
        mut acks: mpsc::UnboundedReceiver<Publish>,
        stop_intake: CancellationToken,
    ) {
        let mut options = crate::broker::mqtt_options(&self.broker);
        options.set_manual_acks(true);
        let (client, mut event_loop) = AsyncClient::new(options, 4096);
        let filters = self.mapper.filters();
        let mut backoff = Backoff::new(self.broker.reconnect_min, self.broker.reconnect_max);
        // Acks the client's request queue had no room for; sent after the next poll.
        let mut deferred: VecDeque<Publish> = VecDeque::new();
        let mut pipeline = Some(pipeline);
        let mut acks_open = true;

        loop {
            while let Some(p) = deferred.pop_front() {
                if client.try_ack(&p).is_err() {
                    deferred.push_front(p);
                    break;
                }
            }
            if pipeline.is_none() && !acks_open && deferred.is_empty() {
                break;
            }
            tokio::select! {
                biased;
                ack = acks.recv(), if acks_open => match ack {
                    Some(p) => deferred.push_back(p),
                    None => acks_open = false,
                },
                _ = stop_intake.cancelled(), if pipeline.is_some() => {
                    // Closing the pipeline lets it drain; it then closes `acks`.
                    pipeline = None;
                }
                event = event_loop.poll() => match event {
                    Ok(Event::Incoming(Packet::ConnAck(ack))) => {
                        self.connected.store(true, Ordering::Relaxed);
                        self.metrics.broker_connected("site", true);
                        backoff.reset();
                        tracing::info!(host = %self.broker.host, port = self.broker.port, session_present = ack.session_present, "connected to site broker");
                        if !ack.session_present {
                            for filter in &filters {
                                if let Err(e) = client.try_subscribe(filter, QoS::AtLeastOnce) {
                                    tracing::error!(filter, error = %e, "cannot subscribe");
                                }
                            }
                        }
                    }
                    Ok(Event::Incoming(Packet::Publish(publish))) => {
                        let Some(tx) = &pipeline else {
                            // Stopping: leave it unacknowledged so the broker delivers it again.
                            continue;
                        };
                        match self.mapper.map(&publish.topic, &publish.payload, (self.clock)()) {
                            Ok(mapped) => {
                                for metric in &mapped.cleaned {
                                    self.metrics.reading_adjusted("text_cleaned", &publish.topic, metric);
                                }
                                for (metric, code) in &mapped.unknown_codes {
                                    let detail = format!("{metric}: code {code} is not in its code table");
                                    self.metrics.reading_adjusted("unknown_code", &publish.topic, &detail);
                                }
                                let readings = mapped.readings;
                                self.metrics.readings_received("mqtt", readings.len());
                                // The acknowledgement needs only the packet id: let the payload
                                // (and the read buffer it shares) go now, not once the outbox
                                // holds the readings.
                                let mut publish = publish;
                                drop(std::mem::take(&mut publish.payload));
                                drop(std::mem::take(&mut publish.topic));
                                let batch = Batch { readings, ack: Some(publish) };
                                if tx.send(batch).await.is_err() {
                                    break;
                                }
                            }
                            Err(rejection) => {
                                self.metrics.message_rejected(rejection.reason(), &publish.topic, &rejection);
                                deferred.push_back(publish);
                            }
                        }
                    }
                    Ok(_) => {}
                    Err(e) => {
                        self.connected.store(false, Ordering::Relaxed);
                        self.metrics.broker_connected("site", false);
                        let delay = backoff.next_delay();
                        if !crate::tls::log_refusal("site broker", &self.broker.host, self.broker.port, &e) {
                            tracing::warn!(host = %self.broker.host, port = self.broker.port, error = %e, retry_in_ms = delay.as_millis() as u64, "site broker connection lost");
                        }
                        tokio::select! {
                            _ = tokio::time::sleep(delay) => {}
                            _ = stop_intake.cancelled() => {}
                        }
                    }
                },
            }
        }
        // Let the last acknowledgements reach the broker before saying goodbye.
        let _ = client.try_disconnect();
        let _ = tokio::time::timeout(Duration::from_secs(2), async {
            while let Ok(event) = event_loop.poll().await {
                if matches!(event, Event::Outgoing(rumqttc::Outgoing::Disconnect)) {
                    break;
                }
            }
        })
        .await;
        self.connected.store(false, Ordering::Relaxed);
        self.metrics.broker_connected("site", false);
    }
}
