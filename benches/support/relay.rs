//! mosquitto's relay alone, the baseline every throughput bench stands beside: one rumqttc
//! subscriber at QoS1 with a persistent session, counting what arrives.

use std::time::Duration;

use rumqttc::{AsyncClient, Event, MqttOptions, Packet, QoS};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

/// Subscribes to `filter` on the broker at `port` and returns once the broker acknowledged the
/// subscription, with a task that ends when `n` messages have arrived.
pub async fn subscriber(port: u16, filter: &str, n: u64) -> JoinHandle<()> {
    let mut options = MqttOptions::new("bench-relay-subscriber", "127.0.0.1", port);
    options
        .set_keep_alive(Duration::from_secs(60))
        .set_clean_session(false);
    let (client, mut event_loop) = AsyncClient::new(options, 10_000);
    client.subscribe(filter, QoS::AtLeastOnce).await.unwrap();
    let (ready_tx, mut ready) = mpsc::channel(1);
    let task = tokio::spawn(async move {
        // Keeps the client, and with it the request channel, alive while the loop runs.
        let _client = client;
        let mut received = 0;
        while received < n {
            match event_loop.poll().await {
                Ok(Event::Incoming(Packet::SubAck(_))) => {
                    let _ = ready_tx.send(()).await;
                }
                Ok(Event::Incoming(Packet::Publish(_))) => received += 1,
                Ok(_) => {}
                Err(e) => panic!("subscriber failed: {e}"),
            }
        }
    });
    ready.recv().await;
    task
}
