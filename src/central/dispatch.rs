//! Rescue dispatch policy: what is trapped, the dispatch a trapped raise creates, who is
//! called, who may take a step, when the next escalation check is due, and what the rescue
//! units receive. Pure functions over config, incidents and dispatches: this module imports no
//! store. The store (`store/dispatches.rs`) applies them inside its transactions, and the timer
//! loop (`timers.rs`) polls the store for due checks.
//!
//! A trapped incident creates a dispatch at once to the elevator's maintenance unit (level 0).
//! When the called unit has not responded within `respond_within` of being called, or has not
//! reached the site within `arrive_within`, the dispatch escalates to the next level: the
//! backup unit, then the fire service. Every step is a timestamped row; the timer is a column
//! (`next_check_ms`), so it survives restarts and any instance can run it.

use std::time::Duration;

use chrono::{TimeZone, Utc};
use serde::{Deserialize, Serialize};

use super::config::CentralConfig;
use crate::model::{Incident, MaintenanceUnit};

pub const DISPATCH_SCHEMA: &str = "seguard.dispatch.v1";

/// GB/T 38656 `fault_type` for a trapped passenger.
pub const FAULT_TYPE_TRAPPED: &str = "11";

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    Occurred,
    Responded,
    OnSite,
    Completed,
    FalseAlarm,
}

impl Status {
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Occurred => "occurred",
            Status::Responded => "responded",
            Status::OnSite => "on_site",
            Status::Completed => "completed",
            Status::FalseAlarm => "false_alarm",
        }
    }

    pub fn parse(s: &str) -> Option<Status> {
        [
            Status::Occurred,
            Status::Responded,
            Status::OnSite,
            Status::Completed,
            Status::FalseAlarm,
        ]
        .into_iter()
        .find(|x| x.as_str() == s)
    }

    fn rank(self) -> u8 {
        match self {
            Status::Occurred => 0,
            Status::Responded => 1,
            Status::OnSite => 2,
            Status::Completed | Status::FalseAlarm => 3,
        }
    }

    pub fn is_closed(self) -> bool {
        self.rank() == 3
    }

    /// Steps go forward only (a team may skip one: on site without pressing responded first);
    /// false alarm closes from any open state.
    pub fn can_become(self, next: Status) -> bool {
        !self.is_closed() && next.rank() > self.rank()
    }
}

/// Why a rescue step was refused. A step belongs to the unit called now: a unit that was
/// escalated away, and every unit once the dispatch is closed, can only read it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum StepRefused {
    #[error("the dispatch is {0}: it takes no more steps")]
    Closed(&'static str),
    #[error("the dispatch was handed over to {called}: only the unit called now takes its steps")]
    NotCalled { called: String },
    #[error("a dispatch that is {from} cannot become {to}")]
    OutOfOrder {
        from: &'static str,
        to: &'static str,
    },
    #[error("the dispatch changed meanwhile: reload it and try again")]
    Changed,
}

impl StepRefused {
    /// True when the caller can never take a step on this dispatch again (HTTP 410).
    pub fn is_gone(&self) -> bool {
        matches!(self, StepRefused::Closed(_) | StepRefused::NotCalled { .. })
    }
}

/// Whether `unit` may take steps on a dispatch that is in `status` and calls `called`.
pub fn may_act(status: Status, called: &str, unit: &str) -> Result<(), StepRefused> {
    if status.is_closed() {
        return Err(StepRefused::Closed(status.as_str()));
    }
    if called != unit {
        return Err(StepRefused::NotCalled {
            called: called.to_owned(),
        });
    }
    Ok(())
}

/// Whether `unit` may move a dispatch from `status` (calling `called`) to `next`.
pub fn check_step(
    status: Status,
    called: &str,
    unit: &str,
    next: Status,
) -> Result<(), StepRefused> {
    may_act(status, called, unit)?;
    if !status.can_become(next) {
        return Err(StepRefused::OutOfOrder {
            from: status.as_str(),
            to: next.as_str(),
        });
    }
    Ok(())
}

/// One level of the escalation chain.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Level {
    pub name: String,
    pub phone: String,
}

/// Maintenance unit, then its backup (the unit's own or the default), then the fire service;
/// a unit appears once. Every phone number is central's own (`[[rescue_unit]]`): the one in
/// the gateway's registry is what the gateway claims, and is shown only as the maintenance
/// unit's registry entry.
pub fn chain(config: &CentralConfig, maintenance: Option<&MaintenanceUnit>) -> Vec<Level> {
    let mut levels: Vec<Level> = Vec::new();
    let phone_of = |name: &str| {
        config
            .rescue_unit(name)
            .map(|u| u.phone.clone())
            .unwrap_or_default()
    };
    if let Some(m) = maintenance {
        levels.push(Level {
            name: m.name.clone(),
            phone: phone_of(&m.name),
        });
    }
    let backup = maintenance
        .and_then(|m| config.rescue_unit(&m.name))
        .and_then(|u| u.backup.clone())
        .or_else(|| config.dispatch.backup_unit.clone());
    for name in [backup, config.dispatch.fire_service.clone()]
        .into_iter()
        .flatten()
    {
        if !levels.iter().any(|l| l.name == name) {
            levels.push(Level {
                phone: phone_of(&name),
                name,
            });
        }
    }
    levels
}

/// When the escalation check of a dispatch in `status` is due, if ever.
pub fn next_check(config: &CentralConfig, status: Status, level_started_ms: i64) -> Option<i64> {
    let d = &config.dispatch;
    match status {
        Status::Occurred => Some(level_started_ms + d.respond_within.as_millis() as i64),
        Status::Responded => Some(level_started_ms + d.arrive_within.as_millis() as i64),
        _ => None,
    }
}

pub fn escalation_reason(config: &CentralConfig, status: Status) -> String {
    let d = &config.dispatch;
    match status {
        Status::Occurred => format!("no response within {} s", d.respond_within.as_secs_f64()),
        _ => format!("not on site within {} s", d.arrive_within.as_secs_f64()),
    }
}

/// Whether an incident of `rule` traps someone: its raise creates a dispatch, and its clear
/// is noted on that dispatch.
pub fn is_trapped(config: &CentralConfig, rule: &str) -> bool {
    rule.contains(config.dispatch.trapped_rule_contains.as_str())
}

/// Why the first unit of a new dispatch is called.
pub const REASON_TRAPPED: &str = "trapped passenger reported";

/// A dispatch as decided for a trapped raise, before it is written.
pub struct NewDispatch {
    pub id: String,
    /// `R{yyyymmdd}-{first 8 hex digits of the id}`.
    pub order_no: String,
    /// The escalation chain ([`chain`]).
    pub levels: Vec<Level>,
    /// The unit called first (level 0).
    pub first: Level,
    pub record: Record,
    pub next_check: Option<i64>,
}

/// The dispatch a trapped raise creates at `now`, with the id the store made for it.
pub fn plan(config: &CentralConfig, incident: &Incident, id: String, now: i64) -> NewDispatch {
    let eq = &incident.equipment;
    let levels = chain(config, eq.maintenance_unit.as_ref());
    let first = levels.first().cloned().unwrap_or(Level {
        name: "(no rescue unit configured)".into(),
        phone: String::new(),
    });
    let created = Utc.timestamp_millis_opt(now).single().unwrap_or_default();
    let order_no = format!(
        "R{}-{}",
        created.format("%Y%m%d"),
        &id[..8].to_ascii_uppercase()
    );
    let record = Record {
        fault_type: FAULT_TYPE_TRAPPED.into(),
        fault_name: "trapped passenger".into(),
        rule: incident.event.rule.clone(),
        message: incident.event.message.clone(),
        elevator: ElevatorCodes {
            equipment_id: eq.id.clone(),
            name: eq.name.clone(),
            registration_code: eq.registration_code.clone(),
            use_certificate: eq.use_certificate.clone(),
            rescue_code: eq.rescue_code.clone(),
        },
        address: eq.address.clone(),
        using_unit: eq.using_unit.clone(),
        maintenance_unit: eq.maintenance_unit.clone(),
        site: incident.site.name.clone(),
    };
    NewDispatch {
        next_check: next_check(config, Status::Occurred, now),
        id,
        order_no,
        levels,
        first,
        record,
    }
}

/// The static part of a dispatch record, fixed when it is created.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Record {
    pub fault_type: String,
    pub fault_name: String,
    pub rule: String,
    pub message: String,
    pub elevator: ElevatorCodes,
    pub address: String,
    pub using_unit: String,
    pub maintenance_unit: Option<MaintenanceUnit>,
    pub site: String,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ElevatorCodes {
    pub equipment_id: String,
    pub name: String,
    pub registration_code: String,
    pub use_certificate: Option<String>,
    /// The 96333 rescue identification code, as text.
    pub rescue_code: Option<String>,
}

/// A dispatch as the API shows it and as rescue units receive it.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Dispatch {
    pub id: String,
    pub order_no: String,
    pub incident_id: String,
    pub alarm_id: String,
    pub gateway: String,
    pub fault_type: String,
    pub fault_name: String,
    pub rule: String,
    pub message: String,
    /// When the incident happened (the rule's time), RFC 3339.
    pub time: String,
    pub created: String,
    pub elevator: ElevatorCodes,
    pub address: String,
    pub using_unit: String,
    pub maintenance_unit: Option<MaintenanceUnit>,
    pub status: Status,
    pub level: i64,
    /// The unit called now.
    pub unit: Level,
    pub responded_at: Option<String>,
    pub on_site_at: Option<String>,
    pub closed_at: Option<String>,
    pub next_check: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub steps: Vec<Step>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Step {
    pub at: String,
    pub step: String,
    pub level: i64,
    pub unit: String,
    pub actor: String,
    pub note: String,
}

/// One message to send: channel (`webhook`, `email`, `mqtt`), target, subject and body.
pub struct Outgoing {
    pub channel: &'static str,
    pub target: String,
    pub subject: String,
    pub payload: String,
}

/// What a called unit receives: the dispatch, why it is called, and the link to its page.
pub fn messages_for(
    config: &CentralConfig,
    dispatch: &Dispatch,
    reason: &str,
    rescue_url: &str,
) -> Vec<Outgoing> {
    let mut body = serde_json::to_value(dispatch).expect("dispatch serializes");
    body["schema"] = DISPATCH_SCHEMA.into();
    body["reason"] = reason.into();
    body["rescue_url"] = rescue_url.into();
    let json = body.to_string();
    // Chinese first: the people on the other end read it first (the JSON channels carry
    // the machine-readable record; its keys and codes stay as they are).
    let subject = format!(
        "[{}] 电梯困人 trapped passenger：{}（{}）",
        dispatch.order_no, dispatch.elevator.name, dispatch.address
    );
    let mut out = Vec::new();
    let Some(unit) = config.rescue_unit(&dispatch.unit.name) else {
        return out;
    };
    if let Some(url) = &unit.webhook {
        out.push(Outgoing {
            channel: "webhook",
            target: url.clone(),
            subject: subject.clone(),
            payload: json.clone(),
        });
    }
    if let Some(topic) = &unit.mqtt_topic {
        out.push(Outgoing {
            channel: "mqtt",
            target: topic.clone(),
            subject: subject.clone(),
            payload: json.clone(),
        });
    }
    if let Some(to) = &unit.email {
        let m = &dispatch.maintenance_unit;
        let text = format!(
            "电梯困人救援派单 Trapped passenger: rescue dispatch {order}\n\n\
             原因 Reason：{reason}\n事件 Incident：{incident}\n故障类型 Fault type：{fault}（{fault_name}）\n\
             时间 Time：{time}\n电梯 Elevator：{name}\n注册代码 Registration code：{reg}\n\
             使用登记证 Use certificate：{cert}\n96333 救援码 Rescue code：{code}\n地址 Address：{address}\n\
             使用单位 Using unit：{using}\n维保单位 Maintenance unit：{mu}（{mphone}）\n状态 Status：{status}\n\n\
             报告救援进展 Report progress：{url}\n",
            order = dispatch.order_no,
            incident = dispatch.incident_id,
            fault = dispatch.fault_type,
            fault_name = dispatch.fault_name,
            time = dispatch.time,
            name = dispatch.elevator.name,
            reg = dispatch.elevator.registration_code,
            cert = dispatch.elevator.use_certificate.as_deref().unwrap_or("-"),
            code = dispatch.elevator.rescue_code.as_deref().unwrap_or("-"),
            address = dispatch.address,
            using = dispatch.using_unit,
            mu = m.as_ref().map_or("-", |m| m.name.as_str()),
            mphone = m.as_ref().map_or("-", |m| m.phone.as_str()),
            status = dispatch.status.as_str(),
            url = rescue_url,
        );
        out.push(Outgoing {
            channel: "email",
            target: to.clone(),
            subject,
            payload: text,
        });
    }
    out
}

/// The delay before the next delivery attempt: 1 s doubling to at most 60 s.
pub fn retry_delay(attempts: i64) -> Duration {
    Duration::from_secs(1u64 << attempts.clamp(0, 6) as u64).min(Duration::from_secs(60))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn steps_only_go_forward() {
        use Status::*;
        let cases = [
            (Occurred, Responded, true),
            (Occurred, OnSite, true),
            (Responded, OnSite, true),
            (OnSite, Completed, true),
            (Responded, FalseAlarm, true),
            (OnSite, Responded, false),
            (Completed, FalseAlarm, false),
            (Responded, Responded, false),
        ];
        for (from, to, ok) in cases {
            assert_eq!(from.can_become(to), ok, "{from:?} → {to:?}");
        }
    }

    #[test]
    fn called_units_phones_come_from_central_not_from_the_gateway() {
        let config = crate::central::config::parse(
            r#"
[central]
instance = "t"
[store]
url = "sqlite::memory:"
[dispatch]
backup_unit = "City Elevator Rescue"
fire_service = "Fire and Rescue Service"
[[rescue_unit]]
name = "Shenlong Elevator Service"
phone = "+86-21-5555-0101"
webhook = "http://127.0.0.1:1/a"
[[rescue_unit]]
name = "City Elevator Rescue"
phone = "+86-21-5555-0200"
webhook = "http://127.0.0.1:1/b"
[[rescue_unit]]
name = "Fire and Rescue Service"
phone = "119"
webhook = "http://127.0.0.1:1/c"
"#,
            std::path::Path::new("central.toml"),
        )
        .unwrap();
        let claimed = |name: &str| MaintenanceUnit {
            name: name.into(),
            phone: "+1-555-FORGED".into(),
        };
        let phones = |m: &MaintenanceUnit| -> Vec<(String, String)> {
            chain(&config, Some(m))
                .into_iter()
                .map(|l| (l.name, l.phone))
                .collect()
        };
        let pair = |a: &str, b: &str| (a.to_owned(), b.to_owned());
        assert_eq!(
            phones(&claimed("Shenlong Elevator Service")),
            [
                pair("Shenlong Elevator Service", "+86-21-5555-0101"),
                pair("City Elevator Rescue", "+86-21-5555-0200"),
                pair("Fire and Rescue Service", "119"),
            ]
        );
        // A unit central does not know has no phone on record: nothing the gateway says.
        assert_eq!(
            phones(&claimed("Unknown Lifts")),
            [
                pair("Unknown Lifts", ""),
                pair("City Elevator Rescue", "+86-21-5555-0200"),
                pair("Fire and Rescue Service", "119"),
            ]
        );
    }

    #[test]
    fn only_the_unit_called_now_takes_a_step() {
        use Status::*;
        let gone = |called: &str| {
            Err(StepRefused::NotCalled {
                called: called.to_owned(),
            })
        };
        let cases = [
            (Occurred, "B", "B", Responded, Ok(())),
            (Responded, "B", "B", OnSite, Ok(())),
            // A was escalated away: its responded must not count for B.
            (Occurred, "B", "A", Responded, gone("B")),
            (Responded, "Fire", "B", Completed, gone("Fire")),
            (
                Completed,
                "B",
                "B",
                FalseAlarm,
                Err(StepRefused::Closed("completed")),
            ),
            (
                FalseAlarm,
                "B",
                "A",
                Responded,
                Err(StepRefused::Closed("false_alarm")),
            ),
            (
                OnSite,
                "B",
                "B",
                Responded,
                Err(StepRefused::OutOfOrder {
                    from: "on_site",
                    to: "responded",
                }),
            ),
        ];
        for (status, called, unit, next, expected) in cases {
            let got = check_step(status, called, unit, next);
            assert_eq!(
                got, expected,
                "{unit} on {status:?} calling {called} → {next:?}"
            );
            if let Err(e) = got {
                assert_eq!(e.is_gone(), !matches!(e, StepRefused::OutOfOrder { .. }));
            }
        }
    }
}
