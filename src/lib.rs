//! seguard: an edge telemetry gateway and alarm service for special equipment (elevators,
//! pressure vessels, gas cylinders). See ARCHITECTURE.md for the code map.

pub mod api;
pub mod auth;
pub mod backoff;
pub mod broker;
pub mod central;
pub mod config;
pub mod demo;
pub mod diag;
pub mod gateway;
pub mod http_error;
pub mod http_limits;
pub mod ingest;
pub mod log_limit;
pub mod metrics;
pub mod model;
pub mod outbox;
pub mod rules;
pub mod shutdown;
pub mod signing;
pub mod sim;
pub mod tls;
pub mod uplink;
