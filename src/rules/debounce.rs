//! A condition with an on-delay and an off-delay: the building block of the rules whose
//! condition is a bool (expressions, the autoclave interlock).

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::model::Transition;

#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
enum State {
    Normal,
    Raising { since: DateTime<Utc> },
    Active,
    Clearing { since: DateTime<Utc> },
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Debounce {
    #[serde(with = "super::checkpoint::millis")]
    on_delay: chrono::Duration,
    #[serde(with = "super::checkpoint::millis")]
    off_delay: chrono::Duration,
    state: State,
}

pub fn to_chrono(d: std::time::Duration) -> chrono::Duration {
    chrono::Duration::from_std(d).unwrap_or(chrono::Duration::MAX)
}

impl Debounce {
    pub fn new(on_delay: std::time::Duration, off_delay: std::time::Duration) -> Self {
        Debounce {
            on_delay: to_chrono(on_delay),
            off_delay: to_chrono(off_delay),
            state: State::Normal,
        }
    }

    /// The condition is `holds` from `time` on. Returns the transition it causes, with the
    /// instant it takes effect (a delay that ran out before `time` takes effect first).
    pub fn update(
        &mut self,
        holds: bool,
        time: DateTime<Utc>,
        out: &mut Vec<(Transition, DateTime<Utc>)>,
    ) {
        self.expire(time, out);
        self.state = match (self.state, holds) {
            (State::Normal, true) if self.on_delay.is_zero() => {
                out.push((Transition::Raise, time));
                State::Active
            }
            (State::Normal, true) => State::Raising { since: time },
            (State::Raising { .. }, false) => State::Normal,
            (State::Active, false) if self.off_delay.is_zero() => {
                out.push((Transition::Clear, time));
                State::Normal
            }
            (State::Active, false) => State::Clearing { since: time },
            (State::Clearing { .. }, true) => State::Active,
            (state, _) => state,
        };
    }

    /// Completes a delay that has run out by `now`, at the exact instant it ended.
    pub fn expire(&mut self, now: DateTime<Utc>, out: &mut Vec<(Transition, DateTime<Utc>)>) {
        match self.state {
            State::Raising { since } if now - since >= self.on_delay => {
                out.push((Transition::Raise, since + self.on_delay));
                self.state = State::Active;
            }
            State::Clearing { since } if now - since >= self.off_delay => {
                out.push((Transition::Clear, since + self.off_delay));
                self.state = State::Normal;
            }
            _ => {}
        }
    }
}
