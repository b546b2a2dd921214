//! `[[rescue_unit]]`: whom a dispatch can call, and how. The backups they name are checked
//! against the other units by the composer (`mod.rs`).

use serde::Deserialize;
use toml::Spanned;

use crate::diag::{Check, Problem};

#[derive(Debug, Clone)]
pub struct RescueUnit {
    pub name: String,
    pub phone: String,
    pub webhook: Option<String>,
    pub email: Option<String>,
    pub mqtt_topic: Option<String>,
    /// Overrides `dispatch.backup_unit` for incidents of this unit.
    pub backup: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawRescueUnit {
    pub(super) name: Spanned<String>,
    phone: String,
    webhook: Option<Spanned<String>>,
    email: Option<String>,
    mqtt_topic: Option<String>,
    pub(super) backup: Option<Spanned<String>>,
}

impl Check {
    pub(crate) fn rescue_unit(&mut self, u: RawRescueUnit) -> RescueUnit {
        if let Some(w) = &u.webhook {
            if url::Url::parse(w.get_ref()).is_err() {
                self.push(Problem::new(
                    w.span(),
                    format!("webhook `{}` is not a URL", w.get_ref()),
                ));
            }
        }
        RescueUnit {
            name: u.name.into_inner(),
            phone: u.phone,
            webhook: u.webhook.map(Spanned::into_inner),
            email: u.email,
            mqtt_topic: u.mqtt_topic,
            backup: u.backup.map(Spanned::into_inner),
        }
    }
}
