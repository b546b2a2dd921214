//! The `[[equipment]]` table: kind, position, maintenance unit, nameplate, and the pressure
//! ladder a vessel's nameplate must keep (operating below the alarm, below the valve's set
//! pressure, below the design pressure).

use std::ops::Range;

use toml::Spanned;

use super::raw::*;
use super::*;
use crate::diag::Check;
use crate::model::{Crs, EquipmentKind, GeoPoint, MaintenanceUnit, Nameplate};

impl Check {
    pub(super) fn equipment(&mut self, raw: &Spanned<RawEquipment>) -> Option<Equipment> {
        let e = raw.get_ref();
        let kind = EquipmentKind::from(e.kind);
        self.check_id(&e.id, "equipment id");
        let id = e.id.get_ref();
        if e.registration_code.get_ref().trim().is_empty() {
            self.push(
                Problem::new(
                    e.registration_code.span(),
                    format!("equipment `{id}` has an empty registration_code"),
                )
                .hint("the registration code (注册代码) is on the use certificate"),
            );
        }
        if let Some(code) = &e.rescue_code {
            let c = code.get_ref();
            if !(c.len() == 5 || c.len() == 6) || !c.chars().all(|ch| ch.is_ascii_digit()) {
                self.push(
                    Problem::new(
                        code.span(),
                        format!("rescue_code `{c}` is not 5 or 6 digits"),
                    )
                    .hint("write the 96333 code as a quoted string, for example \"01234\""),
                );
            }
            if kind != EquipmentKind::Elevator && kind != EquipmentKind::Escalator {
                self.push(Problem::new(
                    code.span(),
                    "rescue_code applies to elevators and escalators only",
                ));
            }
        }
        let location = e.location.as_ref().map(|loc| {
            let l = loc.get_ref();
            if !(-90.0..=90.0).contains(&l.lat) || !(-180.0..=180.0).contains(&l.lon) {
                self.push(
                    Problem::new(
                        loc.span(),
                        format!("location {}, {} is outside the globe", l.lat, l.lon),
                    )
                    .hint("lat is -90..90 and lon is -180..180, in WGS-84 degrees"),
                );
            }
            GeoPoint {
                lat: l.lat,
                lon: l.lon,
                crs: Crs::Wgs84,
            }
        });
        let next_inspection = e.next_inspection.as_ref().and_then(|d| self.date(d));
        let in_service = e.in_service.as_ref().and_then(|d| self.date(d));
        let nameplate = match &e.nameplate {
            Some(n) => self.nameplate(n, kind, id),
            None => Nameplate::default(),
        };
        Some(Equipment {
            id: id.clone(),
            kind,
            name: e.name.clone().unwrap_or_else(|| id.clone()),
            registration_code: e.registration_code.get_ref().clone(),
            use_certificate: e.use_certificate.clone(),
            rescue_code: e.rescue_code.as_ref().map(|c| c.get_ref().clone()),
            using_unit: e.using_unit.clone(),
            using_unit_phone: e.using_unit_phone.clone(),
            maintenance_unit: e.maintenance_unit.as_ref().map(|m| MaintenanceUnit {
                name: m.name.clone(),
                phone: m.phone.clone(),
            }),
            building_phone: e.building_phone.clone(),
            address: e.address.clone(),
            location,
            nameplate,
            next_inspection,
            insured: e.insured,
            in_service,
        })
    }

    fn nameplate(
        &mut self,
        raw: &Spanned<RawNameplate>,
        kind: EquipmentKind,
        id: &str,
    ) -> Nameplate {
        let n = raw.get_ref();
        let span = raw.span();
        let lift = [
            ("rated_speed_m_s", n.rated_speed_m_s.is_some()),
            ("rated_load_kg", n.rated_load_kg.is_some()),
            ("floors", n.floors.is_some()),
        ];
        let vessel = [
            ("working_pressure_mpa", n.working_pressure_mpa.is_some()),
            ("set_pressure_mpa", n.set_pressure_mpa.is_some()),
            ("design_pressure_mpa", n.design_pressure_mpa.is_some()),
        ];
        let is_lift = matches!(kind, EquipmentKind::Elevator | EquipmentKind::Escalator);
        let applies = |field: &str| -> bool {
            match field {
                "rated_speed_m_s" | "rated_load_kg" | "floors" => is_lift,
                "working_pressure_mpa" | "set_pressure_mpa" | "design_pressure_mpa" => {
                    kind.is_pressure_vessel() || kind == EquipmentKind::GasCylinder
                }
                _ => true,
            }
        };
        for (field, present) in lift.iter().chain(vessel.iter()) {
            if *present && !applies(field) {
                self.push(Problem::new(
                    span.clone(),
                    format!("nameplate field `{field}` does not apply to {kind} `{id}`"),
                ));
            }
        }
        if n.safe_residual_mpa.is_some() && kind != EquipmentKind::Autoclave {
            self.push(Problem::new(
                span.clone(),
                format!("nameplate field `safe_residual_mpa` applies to autoclaves only, not to {kind} `{id}`"),
            ));
        }
        if kind.is_pressure_vessel() {
            self.pressure_ladder(n, span, id);
        }
        Nameplate {
            rated_speed_m_s: n.rated_speed_m_s,
            rated_load_kg: n.rated_load_kg,
            floors: n.floors,
            working_pressure_mpa: n.working_pressure_mpa,
            set_pressure_mpa: n.set_pressure_mpa,
            design_pressure_mpa: n.design_pressure_mpa,
            safe_residual_mpa: n.safe_residual_mpa,
            medium: n.medium.clone(),
            volume_l: n.volume_l,
        }
    }

    /// Working pressure <= safety-valve set pressure <= design pressure.
    fn pressure_ladder(&mut self, n: &RawNameplate, span: Range<usize>, id: &str) {
        let (Some(work), Some(set), Some(design)) = (
            n.working_pressure_mpa,
            n.set_pressure_mpa,
            n.design_pressure_mpa,
        ) else {
            self.push(
                Problem::new(span, format!("pressure vessel `{id}` needs working, set and design pressure"))
                    .hint("add working_pressure_mpa, set_pressure_mpa and design_pressure_mpa from the nameplate"),
            );
            return;
        };
        if set > design {
            self.push(
                Problem::new(span.clone(), format!(
                    "safety-valve set pressure {set} MPa of `{id}` is above its design pressure {design} MPa"
                ))
                .hint("the valve must open at or below design pressure; check the nameplate"),
            );
        }
        if work > set {
            self.push(
                Problem::new(span, format!(
                    "working pressure {work} MPa of `{id}` is above its safety-valve set pressure {set} MPa"
                ))
                .hint("set pressure is commonly 1.05 to 1.10 times working pressure"),
            );
        }
    }
}
