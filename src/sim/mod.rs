//! `seguard sim`: simulated equipment for demos, tests and benchmarks. Elevators publish their
//! status over MQTT; scenarios (trapped between floors, alarm button, inspection, silence) are
//! played from the fleet file or injected over HTTP; a district power cut (`[[power_cut]]`)
//! cuts many elevators within seconds. Deterministic under a seed.

pub mod config;
pub mod elevator;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::post;
use axum::{Json, Router};
use rand::rngs::StdRng;
use rand::SeedableRng;
use rumqttc::{AsyncClient, MqttOptions, QoS};
use tokio_util::sync::CancellationToken;

pub use config::{FleetConfig, PowerCut, Scenario};
pub use elevator::{Elevator, Situation};

struct Fleet {
    elevators: Vec<(Elevator, f64)>,
    rng: StdRng,
    /// Releases due: (seconds since start, equipment).
    releases: Vec<(f64, String)>,
    elapsed_s: f64,
}

impl Fleet {
    fn new(config: &FleetConfig) -> Fleet {
        let mut rng = StdRng::seed_from_u64(config.seed);
        let mut elevators = Vec::new();
        for group in &config.elevators {
            for n in 1..=group.count {
                let start = rand::Rng::random_range(&mut rng, 1..=group.floors.max(1));
                let lift = Elevator::new(
                    format!("{}{n}", group.id_prefix),
                    group.basements,
                    group.floors,
                    group.rated_speed_m_s,
                    start,
                );
                elevators.push((lift, group.call_rate_per_s));
            }
        }
        Fleet {
            elevators,
            rng,
            releases: Vec::new(),
            elapsed_s: 0.0,
        }
    }

    fn apply(&mut self, scenario: &Scenario) -> bool {
        let Some((lift, _)) = self
            .elevators
            .iter_mut()
            .find(|(l, _)| l.id == scenario.equipment)
        else {
            return false;
        };
        tracing::info!(equipment = %scenario.equipment, situation = ?scenario.situation, "scenario");
        lift.inject(scenario.situation);
        if let Some(d) = scenario.duration_s {
            self.releases
                .push((self.elapsed_s + d, scenario.equipment.clone()));
        }
        true
    }

    fn step(&mut self, dt_s: f64) {
        self.elapsed_s += dt_s;
        let now = self.elapsed_s;
        let due: Vec<String> = self
            .releases
            .iter()
            .filter(|(t, _)| *t <= now)
            .map(|(_, id)| id.clone())
            .collect();
        self.releases.retain(|(t, _)| *t > now);
        for (lift, call_rate) in &mut self.elevators {
            if due.contains(&lift.id) {
                tracing::info!(equipment = %lift.id, "scenario ends");
                lift.release();
            }
            lift.step(dt_s, *call_rate, &mut self.rng);
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum SimError {
    #[error("cannot listen on {addr}: {source}")]
    Listen {
        addr: String,
        source: std::io::Error,
    },
}

/// Runs the fleet until `stop` fires.
pub async fn run(config: FleetConfig, stop: CancellationToken) -> Result<(), SimError> {
    let fleet = Arc::new(Mutex::new(Fleet::new(&config)));
    let mut options = MqttOptions::new(&config.mqtt.client_id, &config.mqtt.host, config.mqtt.port);
    options.set_keep_alive(Duration::from_secs(30));
    let (client, mut event_loop) = AsyncClient::new(options, 10_000);
    let driver_stop = stop.clone();
    tokio::spawn(async move {
        loop {
            tokio::select! {
                event = event_loop.poll() => if let Err(e) = event {
                    tracing::warn!(error = %e, "sim broker connection failed; retrying");
                    tokio::time::sleep(Duration::from_secs(1)).await;
                },
                _ = driver_stop.cancelled() => break,
            }
        }
    });

    if let Some(addr) = &config.http_listen {
        let listener = tokio::net::TcpListener::bind(addr)
            .await
            .map_err(|source| SimError::Listen {
                addr: addr.clone(),
                source,
            })?;
        tracing::info!(addr = %listener.local_addr().map_err(|source| SimError::Listen { addr: addr.clone(), source })?, "scenario API: POST /api/v1/scenarios");
        let router = Router::new()
            .route("/api/v1/scenarios", post(inject))
            .with_state(fleet.clone());
        let http_stop = stop.clone();
        tokio::spawn(async move {
            let _ = axum::serve(listener, router)
                .with_graceful_shutdown(async move { http_stop.cancelled().await })
                .await;
        });
    }

    let dt = Duration::from_millis(config.publish_interval_ms.max(10));
    let mut tick = tokio::time::interval(dt);
    let mut scenarios = config.scenarios().into_iter().peekable();
    let started = tokio::time::Instant::now();
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            _ = stop.cancelled() => break,
        }
        let ts = chrono::Utc::now().timestamp_millis();
        let messages: Vec<(String, Vec<u8>)> = {
            let mut fleet = fleet.lock().expect("fleet lock");
            while let Some(s) = scenarios.next_if(|s| started.elapsed() >= s.at()) {
                fleet.apply(&s);
            }
            fleet.step(dt.as_secs_f64());
            fleet
                .elevators
                .iter_mut()
                .filter_map(|(lift, _)| {
                    let status = lift.status(ts)?;
                    let topic = config
                        .elevator_topic
                        .replace("{site}", &config.site)
                        .replace("{equipment}", &lift.id);
                    Some((
                        topic,
                        serde_json::to_vec(&status).expect("status serializes"),
                    ))
                })
                .collect()
        };
        for (topic, payload) in messages {
            if client
                .try_publish(topic, QoS::AtLeastOnce, false, payload)
                .is_err()
            {
                tracing::warn!("sim publish queue full; a status report was skipped");
            }
        }
    }
    let _ = client.try_disconnect();
    Ok(())
}

async fn inject(
    State(fleet): State<Arc<Mutex<Fleet>>>,
    Json(scenario): Json<Scenario>,
) -> (StatusCode, Json<serde_json::Value>) {
    let applied = fleet.lock().expect("fleet lock").apply(&scenario);
    if applied {
        (
            StatusCode::ACCEPTED,
            Json(serde_json::json!({ "injected": scenario })),
        )
    } else {
        (
            StatusCode::NOT_FOUND,
            Json(
                serde_json::json!({ "error": format!("no simulated equipment `{}`", scenario.equipment) }),
            ),
        )
    }
}
