//! What central knows of each gateway: its retained `status` (online, offline) and its
//! `registry`, merged into the equipment table so the map shows equipment that never raised
//! an alarm.

use super::{ms, upsert_equipment, Store, StoreError};
use crate::model::{GatewayRegistry, GatewayStatus};

impl Store {
    /// Merges a gateway's registry (its retained `registry` message) into the equipment table,
    /// so the map shows equipment that never raised an alarm.
    pub async fn merge_registry(
        &self,
        registry: &GatewayRegistry,
        now: i64,
    ) -> Result<(), StoreError> {
        let mut tx = self.pool.begin().await?;
        for eq in &registry.equipment {
            upsert_equipment(
                &mut tx,
                &registry.gateway,
                &registry.site.id,
                eq,
                now,
                self.exchange,
            )
            .await?;
        }
        tx.commit().await?;
        Ok(())
    }

    pub async fn set_gateway_status(
        &self,
        status: &GatewayStatus,
        now: i64,
    ) -> Result<(), StoreError> {
        let state = match status.state {
            crate::model::GatewayState::Online => "online",
            crate::model::GatewayState::Offline => "offline",
        };
        sqlx::query(
            "INSERT INTO gateways (id, site, state, since_ms, updated_ms) VALUES ($1, $2, $3, $4, $5)
             ON CONFLICT (id) DO UPDATE SET site = excluded.site, state = excluded.state,
                since_ms = excluded.since_ms, updated_ms = excluded.updated_ms",
        )
        .bind(&status.gateway)
        .bind(&status.site)
        .bind(state)
        .bind(status.since.map(ms))
        .bind(now)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    pub async fn gateway_state(&self, id: &str) -> Result<Option<String>, StoreError> {
        Ok(
            sqlx::query_scalar("SELECT state FROM gateways WHERE id = $1")
                .bind(id)
                .fetch_optional(&self.pool)
                .await?,
        )
    }
}
