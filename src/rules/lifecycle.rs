//! The ISA-18.2 alarm lifecycle between the rules and the incident stream.
//!
//! Rules decide when a condition begins and ends (their raise and clear). This layer decides
//! what is announced, and keeps the operator's side: acknowledgement, shelving, suppression by
//! design, out of service, latching, chattering and flood.
//!
//! States: normal; active-unacknowledged; active-acknowledged; returned-unacknowledged; and the
//! overlays shelved, suppressed by design and out of service, under which an alarm is still
//! evaluated but not announced. Lifting an overlay re-evaluates: a condition still present is
//! announced then.
//!
//! **Invariant:** on the stream, every `raise` of one alarm (equipment, rule) is followed by
//! exactly one `clear` before the next `raise`. A clear is sent even while the alarm is shelved
//! or suppressed, so that an announced incident is always closed; a raise that was never
//! announced has no clear.
//!
//! Chattering: `chatter_count` raises within `chatter_window` mark an alarm chattering; it is
//! then announced at most once per `chatter_announce_interval`. A raise held back this way is
//! announced when the interval ends if its condition is still present.
//!
//! Flood: more than `flood_count` announced raises within `flood_window`; it ends when fewer
//! than `flood_end_count` remain in the window.
//!
//! Size: about 770 lines, one state machine per alarm with the operator actions on it; split,
//! the transitions would stand apart from the states they change.

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::config::LifecycleSettings;
use super::debounce::to_chrono;
use super::ActiveAlarm;
use crate::model::{AlarmEvent, AlarmStats, Severity, Transition, Value};

/// The ISA-18.2 state of one alarm.
/// Who acts on which alarm, when and why: what every operator action carries.
#[derive(Debug, Clone, Copy)]
pub struct Operator<'a> {
    pub equipment: &'a str,
    pub rule: &'a str,
    pub user: &'a str,
    pub comment: Option<&'a str>,
    pub now: DateTime<Utc>,
}

impl<'a> Operator<'a> {
    pub fn new(
        equipment: &'a str,
        rule: &'a str,
        user: &'a str,
        comment: Option<&'a str>,
        now: DateTime<Utc>,
    ) -> Self {
        Operator {
            equipment,
            rule,
            user,
            comment,
            now,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum AlarmState {
    Normal,
    ActiveUnacknowledged,
    ActiveAcknowledged,
    ReturnedUnacknowledged,
    Shelved,
    SuppressedByDesign,
    OutOfService,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LifecycleError {
    #[error("no alarm `{rule}` on `{equipment}`")]
    UnknownAlarm { equipment: String, rule: String },
    #[error("alarm `{rule}` on `{equipment}` has nothing to acknowledge")]
    NothingToAcknowledge { equipment: String, rule: String },
    #[error("alarm `{rule}` on `{equipment}` is not shelved")]
    NotShelved { equipment: String, rule: String },
    #[error("a shelf of {asked_s} s is longer than the {max_s} s allowed")]
    ShelfTooLong { asked_s: u64, max_s: u64 },
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct Record {
    severity: Severity,
    /// The rule's condition, as its last raise or clear said.
    condition: bool,
    /// The last raise the rule produced: value, limit, message and details to announce.
    last_raise: Option<AlarmEvent>,
    /// A raise is out on the stream without its clear.
    open: bool,
    unacknowledged: bool,
    acknowledged_by: Option<(String, DateTime<Utc>)>,
    latched: bool,
    shelved_until: Option<DateTime<Utc>>,
    out_of_service: bool,
    raises: VecDeque<DateTime<Utc>>,
    chattering: bool,
    last_announced: Option<DateTime<Utc>>,
    /// Raises held back by the chatter limit since the last announcement.
    held: u32,
}

pub struct Lifecycle {
    gateway: String,
    settings: LifecycleSettings,
    chatter_window: chrono::Duration,
    chatter_interval: chrono::Duration,
    flood_window: chrono::Duration,
    records: BTreeMap<(String, String), Record>,
    /// (equipment, rule id): alarms `{rule id}.*` of that equipment are suppressed by design.
    suppressed: BTreeSet<(String, String)>,
    /// Alarm names that are raised and cleared at one instant (refused fills): they are
    /// records, not conditions, so the chatter limit never holds them back.
    momentary: BTreeSet<String>,
    announced: VecDeque<DateTime<Utc>>,
    flood: bool,
}

/// What a checkpoint keeps of the lifecycle (`checkpoint.rs`): every record and the flood
/// window; the settings come from the config.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub(super) struct SavedLifecycle {
    records: Vec<((String, String), Record)>,
    suppressed: BTreeSet<(String, String)>,
    announced: VecDeque<DateTime<Utc>>,
    flood: bool,
}

pub(super) fn group_of(rule: &str) -> &str {
    rule.split('.').next().unwrap_or(rule)
}

impl Lifecycle {
    pub fn new(gateway: &str, settings: LifecycleSettings, momentary: BTreeSet<String>) -> Self {
        Lifecycle {
            gateway: gateway.to_owned(),
            chatter_window: to_chrono(settings.chatter_window),
            chatter_interval: to_chrono(settings.chatter_announce_interval),
            flood_window: to_chrono(settings.flood_window),
            settings,
            records: BTreeMap::new(),
            suppressed: BTreeSet::new(),
            momentary,
            announced: VecDeque::new(),
            flood: false,
        }
    }

    /// Takes over the alarms of `old`, the lifecycle before a config reload. `gone` says, for
    /// an (equipment, rule id), why its alarms end, or `None` when they carry on. An ended
    /// alarm that is open on the stream is closed with a clear that gives the reason, so
    /// central never keeps an incident that no rule will close.
    pub fn carry_over(
        &mut self,
        old: Lifecycle,
        gone: impl Fn(&str, &str) -> Option<&'static str>,
        now: DateTime<Utc>,
        out: &mut Vec<AlarmEvent>,
    ) {
        for (key, mut record) in old.records {
            let Some(reason) = gone(&key.0, group_of(&key.1)) else {
                record.latched = self.is_latched(&key.1);
                self.records.insert(key, record);
                continue;
            };
            if record.open {
                out.push(AlarmEvent::new(
                    &self.gateway,
                    &key.0,
                    &key.1,
                    record.severity,
                    Transition::Clear,
                    now,
                    None,
                    None,
                    format!("{}: {} cleared: {reason}", key.0, key.1),
                ));
            }
        }
        self.suppressed = old
            .suppressed
            .into_iter()
            .filter(|(equipment, rule)| gone(equipment, rule).is_none())
            .collect();
        self.announced = old.announced;
        self.flood = old.flood;
    }

    /// The state a checkpoint keeps.
    pub(super) fn save(&self) -> SavedLifecycle {
        SavedLifecycle {
            records: self
                .records
                .iter()
                .map(|(k, r)| (k.clone(), r.clone()))
                .collect(),
            suppressed: self.suppressed.clone(),
            announced: self.announced.clone(),
            flood: self.flood,
        }
    }

    /// A lifecycle with this one's settings and the `saved` state, for [`Lifecycle::carry_over`].
    pub(super) fn with_saved(&self, saved: SavedLifecycle) -> Lifecycle {
        Lifecycle {
            gateway: self.gateway.clone(),
            settings: self.settings.clone(),
            chatter_window: self.chatter_window,
            chatter_interval: self.chatter_interval,
            flood_window: self.flood_window,
            records: saved.records.into_iter().collect(),
            suppressed: saved.suppressed,
            momentary: self.momentary.clone(),
            announced: saved.announced,
            flood: saved.flood,
        }
    }

    fn is_latched(&self, rule: &str) -> bool {
        self.settings.latched.iter().any(|l| {
            rule == l
                || rule
                    .strip_prefix(l.as_str())
                    .is_some_and(|rest| rest.starts_with('.'))
        })
    }

    fn blocked(&self, key: &(String, String), record: &Record) -> bool {
        record.shelved_until.is_some()
            || record.out_of_service
            || self
                .suppressed
                .contains(&(key.0.clone(), group_of(&key.1).to_owned()))
    }

    /// Takes a raise or clear from a rule and passes on what the lifecycle lets through.
    pub fn on_condition(&mut self, event: AlarmEvent, out: &mut Vec<AlarmEvent>) {
        let key = (event.equipment.clone(), event.rule.clone());
        let latched = self.is_latched(&event.rule);
        let momentary = self.momentary.contains(&event.rule);
        let record = self.records.entry(key.clone()).or_insert_with(|| Record {
            severity: event.severity,
            condition: false,
            last_raise: None,
            open: false,
            unacknowledged: false,
            acknowledged_by: None,
            latched,
            shelved_until: None,
            out_of_service: false,
            raises: VecDeque::new(),
            chattering: false,
            last_announced: None,
            held: 0,
        });
        let t = event.time;
        match event.transition {
            Transition::Raise => {
                record.condition = true;
                record.severity = event.severity;
                record.last_raise = Some(event.clone());
                record.unacknowledged = true;
                record.acknowledged_by = None;
                if !momentary {
                    record.raises.push_back(t);
                    while record
                        .raises
                        .front()
                        .is_some_and(|r| *r <= t - self.chatter_window)
                    {
                        record.raises.pop_front();
                    }
                    record.chattering = record.raises.len() >= self.settings.chatter_count;
                }
                if record.open {
                    // A latched alarm came back before its reset: still the same incident.
                    return;
                }
                let record = record.clone();
                if self.blocked(&key, &record) {
                    return;
                }
                if record.chattering
                    && record
                        .last_announced
                        .is_some_and(|last| t - last < self.chatter_interval)
                {
                    if let Some(r) = self.records.get_mut(&key) {
                        r.held += 1;
                    }
                    return;
                }
                self.announce(&key, event, out);
            }
            Transition::Clear => {
                record.condition = false;
                if !record.open {
                    // Never announced: nothing to close and nothing to acknowledge.
                    record.unacknowledged = false;
                    return;
                }
                if record.latched && record.unacknowledged {
                    return;
                }
                record.open = false;
                out.push(event);
            }
            _ => out.push(event),
        }
    }

    fn announce(
        &mut self,
        key: &(String, String),
        mut event: AlarmEvent,
        out: &mut Vec<AlarmEvent>,
    ) {
        let t = event.time;
        let Some(record) = self.records.get_mut(key) else {
            return;
        };
        if record.chattering || record.held > 0 {
            let mut details = event.details.clone();
            details.insert("chattering".into(), Value::Bool(record.chattering));
            if record.held > 0 {
                details.insert("held_back".into(), Value::Number(f64::from(record.held)));
            }
            event = event.with_details(details);
        }
        record.open = true;
        record.unacknowledged = true;
        record.last_announced = Some(t);
        record.held = 0;
        self.announced.push_back(t);
        self.update_flood(t);
        out.push(event);
    }

    fn update_flood(&mut self, now: DateTime<Utc>) {
        while self
            .announced
            .front()
            .is_some_and(|a| *a <= now - self.flood_window)
        {
            self.announced.pop_front();
        }
        let n = self.announced.len();
        if !self.flood && n > self.settings.flood_count {
            self.flood = true;
            tracing::warn!(alarms = n, "alarm flood began");
        } else if self.flood && n < self.settings.flood_end_count {
            self.flood = false;
            tracing::info!(alarms = n, "alarm flood ended");
        }
    }

    /// Announces a condition that is present but was not announced (after an overlay lifted).
    fn reevaluate(
        &mut self,
        key: &(String, String),
        now: DateTime<Utc>,
        out: &mut Vec<AlarmEvent>,
    ) {
        let Some(record) = self.records.get(key) else {
            return;
        };
        if !record.condition || record.open || self.blocked(key, record) {
            return;
        }
        let Some(raise) = record.last_raise.clone() else {
            return;
        };
        let mut event = AlarmEvent::new(
            &self.gateway,
            &key.0,
            &key.1,
            raise.severity,
            Transition::Raise,
            now,
            raise.value,
            raise.limit,
            raise.message.clone(),
        );
        let mut details = raise.details.clone();
        details.insert(
            "condition_since".into(),
            Value::Text(raise.time.to_rfc3339()),
        );
        event = event.with_details(details);
        self.announce(key, event, out);
    }

    fn lifecycle_event(
        &self,
        key: &(String, String),
        transition: Transition,
        time: DateTime<Utc>,
        message: String,
    ) -> AlarmEvent {
        let severity = self.records.get(key).map_or(Severity::Low, |r| r.severity);
        AlarmEvent::new(
            &self.gateway,
            &key.0,
            &key.1,
            severity,
            transition,
            time,
            None,
            None,
            message,
        )
    }

    fn key(&self, equipment: &str, rule: &str) -> Result<(String, String), LifecycleError> {
        let key = (equipment.to_owned(), rule.to_owned());
        if self.records.contains_key(&key) {
            Ok(key)
        } else {
            Err(LifecycleError::UnknownAlarm {
                equipment: equipment.to_owned(),
                rule: rule.to_owned(),
            })
        }
    }

    pub fn acknowledge(
        &mut self,
        by: Operator,
        out: &mut Vec<AlarmEvent>,
    ) -> Result<(), LifecycleError> {
        let Operator {
            equipment,
            rule,
            user,
            comment,
            now,
        } = by;
        let key = self.key(equipment, rule)?;
        let record = self.records.get_mut(&key).expect("checked above");
        if !record.unacknowledged {
            return Err(LifecycleError::NothingToAcknowledge {
                equipment: equipment.to_owned(),
                rule: rule.to_owned(),
            });
        }
        record.unacknowledged = false;
        record.acknowledged_by = Some((user.to_owned(), now));
        let reset_latch = record.open && !record.condition;
        if reset_latch {
            record.open = false;
        }
        let ack = self
            .lifecycle_event(
                &key,
                Transition::Acknowledge,
                now,
                format!("{equipment}: {rule} acknowledged by {user}"),
            )
            .by(user, comment);
        out.push(ack);
        if reset_latch {
            out.push(
                self.lifecycle_event(
                    &key,
                    Transition::Clear,
                    now,
                    format!("{equipment}: latched {rule} reset by {user}"),
                )
                .by(user, comment),
            );
        }
        Ok(())
    }

    pub fn shelve(
        &mut self,
        by: Operator,
        duration: Duration,
        out: &mut Vec<AlarmEvent>,
    ) -> Result<DateTime<Utc>, LifecycleError> {
        let Operator {
            equipment,
            rule,
            user,
            comment,
            now,
        } = by;
        if duration > self.settings.shelve_max || duration.is_zero() {
            return Err(LifecycleError::ShelfTooLong {
                asked_s: duration.as_secs(),
                max_s: self.settings.shelve_max.as_secs(),
            });
        }
        let key = self.key(equipment, rule)?;
        let until = now + to_chrono(duration);
        self.records
            .get_mut(&key)
            .expect("checked above")
            .shelved_until = Some(until);
        let details =
            BTreeMap::from([("shelved_until".to_owned(), Value::Text(until.to_rfc3339()))]);
        out.push(
            self.lifecycle_event(
                &key,
                Transition::Shelve,
                now,
                format!(
                    "{equipment}: {rule} shelved by {user} until {}",
                    until.to_rfc3339()
                ),
            )
            .with_details(details)
            .by(user, comment),
        );
        Ok(until)
    }

    pub fn unshelve(
        &mut self,
        by: Operator,
        out: &mut Vec<AlarmEvent>,
    ) -> Result<(), LifecycleError> {
        let Operator {
            equipment,
            rule,
            user,
            comment,
            now,
        } = by;
        let key = self.key(equipment, rule)?;
        let record = self.records.get_mut(&key).expect("checked above");
        if record.shelved_until.take().is_none() {
            return Err(LifecycleError::NotShelved {
                equipment: equipment.to_owned(),
                rule: rule.to_owned(),
            });
        }
        out.push(
            self.lifecycle_event(
                &key,
                Transition::Unshelve,
                now,
                format!("{equipment}: {rule} unshelved by {user}"),
            )
            .by(user, comment),
        );
        self.reevaluate(&key, now, out);
        Ok(())
    }

    pub fn set_out_of_service(
        &mut self,
        by: Operator,
        out_of_service: bool,
        out: &mut Vec<AlarmEvent>,
    ) -> Result<(), LifecycleError> {
        let Operator {
            equipment,
            rule,
            user,
            comment,
            now,
        } = by;
        let key = self.key(equipment, rule)?;
        let record = self.records.get_mut(&key).expect("checked above");
        if record.out_of_service == out_of_service {
            return Ok(());
        }
        record.out_of_service = out_of_service;
        let (transition, what) = if out_of_service {
            (Transition::OutOfService, "taken out of service")
        } else {
            (Transition::InService, "returned to service")
        };
        out.push(
            self.lifecycle_event(
                &key,
                transition,
                now,
                format!("{equipment}: {rule} {what} by {user}"),
            )
            .by(user, comment),
        );
        if !out_of_service {
            self.reevaluate(&key, now, out);
        }
        Ok(())
    }

    /// Suppression by design of every alarm `{group}.*` of one equipment. Alarms that are
    /// active or open get a suppress or unsuppress event; lifting it re-evaluates them.
    pub fn set_suppressed(
        &mut self,
        equipment: &str,
        group: &str,
        on: bool,
        reason: &str,
        time: DateTime<Utc>,
        out: &mut Vec<AlarmEvent>,
    ) {
        let entry = (equipment.to_owned(), group.to_owned());
        let changed = if on {
            self.suppressed.insert(entry)
        } else {
            self.suppressed.remove(&entry)
        };
        if !changed {
            return;
        }
        let keys: Vec<(String, String)> = self
            .records
            .range((equipment.to_owned(), String::new())..)
            .take_while(|(k, _)| k.0 == equipment)
            .filter(|(k, r)| group_of(&k.1) == group && (r.condition || r.open))
            .map(|(k, _)| k.clone())
            .collect();
        for key in keys {
            let (transition, what) = if on {
                (Transition::Suppress, "suppressed by design")
            } else {
                (Transition::Unsuppress, "no longer suppressed")
            };
            let details = BTreeMap::from([("reason".to_owned(), Value::Text(reason.to_owned()))]);
            let event = self
                .lifecycle_event(
                    &key,
                    transition,
                    time,
                    format!("{}: {} {what}: {reason}", key.0, key.1),
                )
                .with_details(details);
            out.push(event);
            if !on {
                self.reevaluate(&key, time, out);
            }
        }
    }

    /// Ends shelves whose time ran out and announces held-back chattering alarms, each at the
    /// exact instant it became due.
    pub fn tick(&mut self, now: DateTime<Utc>, out: &mut Vec<AlarmEvent>) {
        let horizon = now - self.chatter_window;
        for r in self.records.values_mut() {
            while r.raises.front().is_some_and(|t| *t <= horizon) {
                r.raises.pop_front();
            }
            r.chattering = r.raises.len() >= self.settings.chatter_count;
        }
        let mut due: Vec<(DateTime<Utc>, (String, String), bool)> = Vec::new();
        for (key, r) in &self.records {
            if let Some(until) = r.shelved_until.filter(|u| *u <= now) {
                due.push((until, key.clone(), true));
            } else if r.held > 0 && r.condition && !r.open {
                if let Some(at) = r.last_announced.map(|l| l + self.chatter_interval) {
                    if at <= now {
                        due.push((at, key.clone(), false));
                    }
                }
            }
        }
        due.sort();
        for (at, key, shelf) in due {
            if shelf {
                if let Some(r) = self.records.get_mut(&key) {
                    r.shelved_until = None;
                }
                out.push(self.lifecycle_event(
                    &key,
                    Transition::Unshelve,
                    at,
                    format!("{}: {} shelf ran out", key.0, key.1),
                ));
            }
            self.reevaluate(&key, at, out);
        }
        self.update_flood(now);
    }

    pub fn state(&self, equipment: &str, rule: &str) -> Option<AlarmState> {
        let key = (equipment.to_owned(), rule.to_owned());
        self.records.get(&key).map(|r| self.state_of(&key, r))
    }

    fn state_of(&self, key: &(String, String), r: &Record) -> AlarmState {
        if r.out_of_service {
            AlarmState::OutOfService
        } else if r.shelved_until.is_some() {
            AlarmState::Shelved
        } else if self
            .suppressed
            .contains(&(key.0.clone(), group_of(&key.1).to_owned()))
            && (r.condition || r.open)
        {
            AlarmState::SuppressedByDesign
        } else if r.condition || r.open {
            if r.unacknowledged {
                AlarmState::ActiveUnacknowledged
            } else {
                AlarmState::ActiveAcknowledged
            }
        } else if r.unacknowledged {
            AlarmState::ReturnedUnacknowledged
        } else {
            AlarmState::Normal
        }
    }

    /// Every alarm that is not normal.
    pub fn active(&self) -> Vec<ActiveAlarm> {
        self.records
            .iter()
            .filter_map(|(key, r)| {
                let state = self.state_of(key, r);
                if state == AlarmState::Normal {
                    return None;
                }
                let raise = r.last_raise.as_ref();
                Some(ActiveAlarm {
                    equipment: key.0.clone(),
                    rule: key.1.clone(),
                    severity: r.severity,
                    since: raise.map_or(DateTime::<Utc>::MIN_UTC, |e| e.time),
                    value: raise.and_then(|e| e.value),
                    limit: raise.and_then(|e| e.limit),
                    message: raise.map(|e| e.message.clone()).unwrap_or_default(),
                    state,
                    condition: r.condition,
                    acknowledged_by: r.acknowledged_by.as_ref().map(|a| a.0.clone()),
                    acknowledged_at: r.acknowledged_by.as_ref().map(|a| a.1),
                    shelved_until: r.shelved_until,
                    chattering: r.chattering,
                    details: raise.map(|e| e.details.clone()).unwrap_or_default(),
                })
            })
            .collect()
    }

    /// Whether an alarm is open on the incident stream (raised and not yet cleared).
    pub fn is_open(&self, equipment: &str, rule: &str) -> bool {
        self.records
            .get(&(equipment.to_owned(), rule.to_owned()))
            .is_some_and(|r| r.open)
    }

    pub fn stats(&self) -> AlarmStats {
        let mut stats = AlarmStats {
            announced_in_window: self.announced.len(),
            flood: self.flood,
            ..AlarmStats::default()
        };
        for (key, r) in &self.records {
            stats.chattering += usize::from(r.chattering);
            stats.unacknowledged += usize::from(r.unacknowledged);
            stats.active += usize::from(r.condition);
            match self.state_of(key, r) {
                AlarmState::Shelved => stats.shelved += 1,
                AlarmState::SuppressedByDesign => stats.suppressed += 1,
                AlarmState::OutOfService => stats.out_of_service += 1,
                _ => {}
            }
        }
        stats
    }
}
