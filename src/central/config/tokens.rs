//! `[[token]]`: the role tokens of the HTTP API and the pages, stored as SHA-256 only.

use serde::Deserialize;
use toml::Spanned;

use crate::diag::{Check, Problem};

/// Who a token belongs to; decides what its holder may see and do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    /// Sees everything, acknowledges alarms.
    Regulator,
    /// Sees and updates only the dispatches sent to its unit.
    RescueTeam,
    /// Sees only the equipment of its using unit.
    EquipmentUnit,
    /// Posts incidents for one gateway.
    Gateway,
    /// An inspection agency: posts inspection reports and verifies the corrections of the
    /// hazards it found (`central/hazards.rs`).
    InspectionAgency,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Regulator => "regulator",
            Role::RescueTeam => "rescue_team",
            Role::EquipmentUnit => "equipment_unit",
            Role::Gateway => "gateway",
            Role::InspectionAgency => "inspection_agency",
        }
    }
}

#[derive(Debug, Clone)]
pub struct TokenEntry {
    pub role: Role,
    /// Who the token is: recorded with every acknowledgement and dispatch step.
    pub name: String,
    /// The rescue unit (rescue_team), using unit (equipment_unit) or agency
    /// (inspection_agency) the token is scoped to.
    pub unit: Option<String>,
    pub sha256: String,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawToken {
    role: Role,
    name: String,
    unit: Option<String>,
    sha256: Spanned<String>,
}

impl Check {
    /// One `[[token]]`; `t` spans the whole entry, where a missing key is reported.
    pub(crate) fn central_token(&mut self, t: Spanned<RawToken>) -> TokenEntry {
        let span = t.span();
        let t = t.into_inner();
        if !crate::auth::is_sha256_hex(t.sha256.get_ref()) {
            self.push(
                Problem::new(t.sha256.span(), "sha256 must be 64 hex digits")
                    .hint("store only the hash: printf %s TOKEN | sha256sum"),
            );
        }
        let needs_unit = matches!(
            t.role,
            Role::RescueTeam | Role::EquipmentUnit | Role::InspectionAgency
        );
        if needs_unit && t.unit.is_none() {
            self.push(
                Problem::new(
                    span.clone(),
                    format!("a {} token needs `unit`", t.role.as_str()),
                )
                .hint("name the rescue unit or using unit the token is scoped to"),
            );
        }
        if t.role == Role::Gateway {
            self.push(
                Problem::new(span, "gateway tokens belong in [[gateway]] entries")
                    .hint("write [[gateway]] id = \"gw1\" token_sha256 = \"...\""),
            );
        }
        TokenEntry {
            role: t.role,
            name: t.name,
            unit: t.unit,
            sha256: t.sha256.into_inner().to_ascii_lowercase(),
        }
    }
}
