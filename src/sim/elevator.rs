//! A simulated elevator: a small deterministic state machine that moves between floors, cycles
//! its doors, carries passengers, and can be put into the situations the rules must recognise.
//! It reports the GB/T 24476 real-time status items the example site config maps.

use rand::rngs::StdRng;
use rand::Rng;
use serde::Serialize;

/// What a scenario can do to an elevator.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Deserialize, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Situation {
    /// The car stops between floors with a passenger and the doors locked (非平层关人).
    TrappedBetweenFloors,
    /// The car stops at a landing and the doors do not open, with a passenger (平层关人).
    TrappedAtLanding,
    /// A passenger presses the alarm button (event 90) while the car stands.
    AlarmButton,
    /// Maintenance staff switch the car to inspection mode.
    Inspection,
    /// The terminal stops reporting.
    Silent,
    /// Mains power is lost: the car stops where it is and reports `power = "cut"` (event 41);
    /// whoever was in a car at an open landing steps out, so the car is empty.
    PowerCut,
    /// Mains power is lost with passengers inside: the car stops where it is, between floors
    /// when it was moving, and the doors stay locked.
    PowerCutWithPassengers,
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum Motion {
    /// Standing at `floor` with doors closed.
    Parked,
    /// Standing at `floor` with doors open for `left_s` more seconds.
    DoorsOpen { left_s: f64 },
    /// Travelling; `position` is in floors (fractional between landings).
    Running { to: i32 },
    /// Stopped by a situation until it is released.
    Held,
}

/// One status report, as the terminal publishes it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Status {
    pub ts: i64,
    pub car_status: &'static str,
    pub direction: &'static str,
    pub door_zone: bool,
    pub floor: String,
    pub door_closed_locked: bool,
    pub occupied: bool,
    pub service_mode: &'static str,
    pub speed: f64,
    pub fault_code: u32,
    /// mains or cut.
    pub power: &'static str,
}

#[derive(Debug, Clone)]
pub struct Elevator {
    pub id: String,
    lowest: i32,
    highest: i32,
    rated_speed: f64,
    position: f64,
    motion: Motion,
    occupied: bool,
    situation: Option<Situation>,
    /// Event code to report once (90 alarm button, 40 back to normal).
    pending_event: Option<u32>,
    power_cut: bool,
}

/// Storey height used to turn speed into floors per second.
const STOREY_M: f64 = 3.0;
const DOOR_OPEN_S: f64 = 4.0;

/// Floors below ground are named B1, B2...; there is no floor 0.
pub fn floor_name(floor: i32) -> String {
    if floor <= 0 {
        format!("B{}", 1 - floor)
    } else {
        floor.to_string()
    }
}

impl Elevator {
    pub fn new(
        id: impl Into<String>,
        basements: i32,
        floors: i32,
        rated_speed: f64,
        start_floor: i32,
    ) -> Self {
        Elevator {
            id: id.into(),
            lowest: 1 - basements,
            highest: floors,
            rated_speed,
            position: f64::from(start_floor),
            motion: Motion::Parked,
            occupied: false,
            situation: None,
            pending_event: None,
            power_cut: false,
        }
    }

    pub fn situation(&self) -> Option<Situation> {
        self.situation
    }

    fn floor(&self) -> i32 {
        self.position.round() as i32
    }

    fn at_landing(&self) -> bool {
        (self.position - self.position.round()).abs() < 0.05
    }

    /// Puts the elevator into a situation; it lasts until [`Elevator::release`].
    pub fn inject(&mut self, situation: Situation) {
        match situation {
            Situation::TrappedBetweenFloors => {
                self.occupied = true;
                // Stop a third of the way past the current landing (toward the middle floors).
                let step = if self.floor() < self.highest {
                    0.35
                } else {
                    -0.35
                };
                self.position = f64::from(self.floor()) + step;
                self.motion = Motion::Held;
            }
            Situation::TrappedAtLanding => {
                self.occupied = true;
                self.position = f64::from(self.floor());
                self.motion = Motion::Held;
            }
            Situation::AlarmButton => {
                self.occupied = true;
                self.position = f64::from(self.floor());
                self.motion = Motion::Held;
                self.pending_event = Some(90);
            }
            Situation::PowerCut | Situation::PowerCutWithPassengers => {
                let moving = matches!(self.motion, Motion::Running { .. });
                if situation == Situation::PowerCutWithPassengers {
                    self.occupied = true;
                } else if !moving {
                    self.occupied = false;
                }
                if !moving {
                    self.position = f64::from(self.floor());
                }
                self.motion = Motion::Held;
                self.power_cut = true;
                self.pending_event = Some(41);
            }
            Situation::Inspection | Situation::Silent => {}
        }
        self.situation = Some(situation);
    }

    /// Ends the situation: a trapped car levels, opens its doors and lets the passengers out.
    pub fn release(&mut self) {
        self.power_cut = false;
        if self.situation.take().is_some() && self.motion == Motion::Held {
            self.position = self.position.round();
            self.motion = Motion::DoorsOpen {
                left_s: DOOR_OPEN_S,
            };
            self.occupied = false;
            self.pending_event = Some(40);
        }
    }

    /// Advances the model by `dt_s` seconds. Calls come at random with probability `call_rate`
    /// per second, drawn from `rng` so the fleet is deterministic under a seed.
    pub fn step(&mut self, dt_s: f64, call_rate: f64, rng: &mut StdRng) {
        if self.situation == Some(Situation::Inspection) {
            return;
        }
        match self.motion {
            Motion::Held => {}
            Motion::Parked => {
                if rng.random_bool((call_rate * dt_s).clamp(0.0, 1.0)) {
                    let mut to = rng.random_range(self.lowest..=self.highest);
                    if to == self.floor() {
                        to = if to == self.highest {
                            self.lowest
                        } else {
                            self.highest
                        };
                    }
                    self.occupied = true;
                    self.motion = Motion::Running { to };
                }
            }
            Motion::Running { to } => {
                let floors_per_s = self.rated_speed / STOREY_M;
                let distance = f64::from(to) - self.position;
                let travel = floors_per_s * dt_s;
                if distance.abs() <= travel {
                    self.position = f64::from(to);
                    self.motion = Motion::DoorsOpen {
                        left_s: DOOR_OPEN_S,
                    };
                } else {
                    self.position += travel * distance.signum();
                }
            }
            Motion::DoorsOpen { left_s } => {
                if left_s <= dt_s {
                    self.motion = Motion::Parked;
                    self.occupied = rng.random_bool(0.2);
                } else {
                    self.motion = Motion::DoorsOpen {
                        left_s: left_s - dt_s,
                    };
                }
            }
        }
    }

    /// The status report at `ts` (ms since the epoch), or `None` while silent.
    pub fn status(&mut self, ts: i64) -> Option<Status> {
        if self.situation == Some(Situation::Silent) {
            return None;
        }
        let (car_status, direction, speed) = match self.motion {
            Motion::Running { to } if f64::from(to) > self.position => {
                ("running", "up", self.rated_speed)
            }
            Motion::Running { .. } => ("running", "down", self.rated_speed),
            _ => ("stopped", "none", 0.0),
        };
        let door_closed_locked = !matches!(self.motion, Motion::DoorsOpen { .. });
        let fault_code = match (self.pending_event.take(), self.situation) {
            (Some(event), _) => event,
            (None, Some(Situation::TrappedBetweenFloors)) => 4,
            _ => 0,
        };
        Some(Status {
            ts,
            car_status,
            direction,
            door_zone: self.at_landing(),
            floor: floor_name(self.position.floor() as i32),
            door_closed_locked,
            occupied: self.occupied,
            service_mode: if self.situation == Some(Situation::Inspection) {
                "inspection"
            } else {
                "normal"
            },
            speed,
            fault_code,
            power: if self.power_cut { "cut" } else { "mains" },
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    #[test]
    fn floors_below_ground_are_named_b() {
        assert_eq!(
            [floor_name(-1), floor_name(0), floor_name(1), floor_name(12)],
            ["B2", "B1", "1", "12"]
        );
    }

    #[test]
    fn the_same_seed_gives_the_same_ride() {
        let run = |seed| {
            let mut rng = StdRng::seed_from_u64(seed);
            let mut lift = Elevator::new("l", 2, 20, 2.5, 1);
            (0..300)
                .map(|t| {
                    lift.step(1.0, 0.2, &mut rng);
                    lift.status(t).unwrap()
                })
                .collect::<Vec<_>>()
        };
        assert_eq!(run(7), run(7));
        assert_ne!(run(7), run(8));
        let statuses = run(7);
        assert!(statuses.iter().any(|s| s.car_status == "running"));
        assert!(statuses.iter().any(|s| !s.door_closed_locked));
    }

    #[test]
    fn trapped_between_floors_reports_what_the_rule_needs_until_released() {
        let mut rng = StdRng::seed_from_u64(1);
        let mut lift = Elevator::new("l", 0, 10, 1.0, 3);
        lift.inject(Situation::TrappedBetweenFloors);
        for _ in 0..100 {
            lift.step(1.0, 1.0, &mut rng);
        }
        let s = lift.status(0).unwrap();
        assert_eq!(
            (
                s.car_status,
                s.door_zone,
                s.door_closed_locked,
                s.occupied,
                s.service_mode,
                s.speed,
                s.fault_code
            ),
            ("stopped", false, true, true, "normal", 0.0, 4)
        );
        assert_eq!(s.floor, "3");
        lift.release();
        let s = lift.status(1).unwrap();
        assert_eq!(
            (s.door_zone, s.door_closed_locked, s.occupied, s.fault_code),
            (true, false, false, 40)
        );
    }

    #[test]
    fn the_alarm_button_is_reported_once_and_silence_reports_nothing() {
        let mut lift = Elevator::new("l", 0, 10, 1.0, 3);
        lift.inject(Situation::AlarmButton);
        assert_eq!(lift.status(0).unwrap().fault_code, 90);
        assert_eq!(lift.status(1).unwrap().fault_code, 0);
        lift.inject(Situation::Silent);
        assert!(lift.status(2).is_none());
    }

    #[test]
    fn a_power_cut_stops_the_car_where_it_is_and_traps_only_the_occupied() {
        let mut rng = StdRng::seed_from_u64(3);
        // A moving car stops between floors with its passengers.
        let mut moving = Elevator::new("m", 0, 30, 1.0, 1);
        moving.motion = Motion::Running { to: 30 };
        moving.occupied = true;
        moving.step(1.0, 0.0, &mut rng);
        moving.inject(Situation::PowerCutWithPassengers);
        assert_eq!(moving.status(0).unwrap().fault_code, 41);
        for _ in 0..50 {
            moving.step(1.0, 1.0, &mut rng);
        }
        let s = moving.status(1).unwrap();
        assert_eq!(
            (
                s.power,
                s.car_status,
                s.door_zone,
                s.door_closed_locked,
                s.occupied,
                s.fault_code
            ),
            ("cut", "stopped", false, true, true, 0)
        );
        // A parked car is left empty at its landing and takes no calls while the power is off.
        let mut parked = Elevator::new("p", 0, 10, 1.0, 4);
        parked.inject(Situation::PowerCut);
        parked.status(0);
        for _ in 0..50 {
            parked.step(1.0, 1.0, &mut rng);
        }
        let s = parked.status(1).unwrap();
        assert_eq!(
            (
                s.power,
                s.car_status,
                s.door_zone,
                s.occupied,
                s.floor.as_str()
            ),
            ("cut", "stopped", true, false, "4")
        );
        // Power back: the car levels, opens and empties.
        moving.release();
        let s = moving.status(2).unwrap();
        assert_eq!(
            (
                s.power,
                s.door_zone,
                s.door_closed_locked,
                s.occupied,
                s.fault_code
            ),
            ("mains", true, false, false, 40)
        );
    }
}
