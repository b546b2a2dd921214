//! Elevator fault codes: one canonical fault enum, with the two numberings terminals use
//! mapped onto it, and the events of the GB/T 24476 model that are not faults.

use serde::{Deserialize, Serialize};

use super::config::FaultNumbering;
use crate::model::Severity;

/// Every fault seguard knows, whatever numbering the terminal uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum ElevatorFault {
    SafetyCircuit,
    DoorCloseFault,
    DoorOpenFault,
    StoppedOutsideUnlockingZone,
    UnintendedMovement,
    RunTimeLimiter,
    FloorPositionLost,
    RerunPrevention,
    TopOvertravel,
    BottomOvertravel,
    Overspeed,
    DoorOpenWhileRunning,
    PowerCut,
    LowBattery,
    EscalatorSafetyCircuit,
    EscalatorOverspeed,
    NonCommandedReversal,
    MissingStep,
    RestartPrevention,
}

impl ElevatorFault {
    /// The alarm name after the rule id, for example `lift.top_overtravel`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::SafetyCircuit => "safety_circuit",
            Self::DoorCloseFault => "door_close_fault",
            Self::DoorOpenFault => "door_open_fault",
            Self::StoppedOutsideUnlockingZone => "stopped_outside_unlocking_zone",
            Self::UnintendedMovement => "unintended_movement",
            Self::RunTimeLimiter => "run_time_limiter",
            Self::FloorPositionLost => "floor_position_lost",
            Self::RerunPrevention => "rerun_prevention",
            Self::TopOvertravel => "top_overtravel",
            Self::BottomOvertravel => "bottom_overtravel",
            Self::Overspeed => "overspeed",
            Self::DoorOpenWhileRunning => "door_open_while_running",
            Self::PowerCut => "power_cut",
            Self::LowBattery => "low_battery",
            Self::EscalatorSafetyCircuit => "escalator_safety_circuit",
            Self::EscalatorOverspeed => "escalator_overspeed",
            Self::NonCommandedReversal => "non_commanded_reversal",
            Self::MissingStep => "missing_step",
            Self::RestartPrevention => "restart_prevention",
        }
    }

    pub fn severity(self) -> Severity {
        match self {
            Self::UnintendedMovement
            | Self::TopOvertravel
            | Self::BottomOvertravel
            | Self::Overspeed
            | Self::DoorOpenWhileRunning
            | Self::SafetyCircuit
            | Self::EscalatorOverspeed
            | Self::NonCommandedReversal
            | Self::MissingStep => Severity::Critical,
            Self::StoppedOutsideUnlockingZone
            | Self::RunTimeLimiter
            | Self::PowerCut
            | Self::EscalatorSafetyCircuit => Severity::High,
            Self::DoorCloseFault
            | Self::DoorOpenFault
            | Self::FloorPositionLost
            | Self::RerunPrevention
            | Self::RestartPrevention => Severity::Medium,
            Self::LowBattery => Severity::Low,
        }
    }

    pub(super) fn describe(self) -> &'static str {
        match self {
            Self::SafetyCircuit => "safety circuit open while running",
            Self::DoorCloseFault => "door-close fault",
            Self::DoorOpenFault => "door-open fault",
            Self::StoppedOutsideUnlockingZone => {
                "car stopped outside the unlocking zone (非平层停梯)"
            }
            Self::UnintendedMovement => "unintended car movement (开门走车)",
            Self::RunTimeLimiter => "motor run-time limiter tripped",
            Self::FloorPositionLost => "floor position lost",
            Self::RerunPrevention => "re-run prevention active",
            Self::TopOvertravel => "top overtravel (冲顶)",
            Self::BottomOvertravel => "bottom overtravel (蹲底)",
            Self::Overspeed => "overspeed",
            Self::DoorOpenWhileRunning => "door open while running",
            Self::PowerCut => "main power cut",
            Self::LowBattery => "low battery",
            Self::EscalatorSafetyCircuit => "escalator safety circuit open",
            Self::EscalatorOverspeed => "escalator overspeed",
            Self::NonCommandedReversal => "escalator non-commanded reversal",
            Self::MissingStep => "escalator missing step",
            Self::RestartPrevention => "escalator restart prevention",
        }
    }
}

/// Events of the GB/T 24476 model that are not faults.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ElevatorEvent {
    BackToNormal,
    MainPowerOff,
    /// The terminal changes the service mode (42-47).
    ServiceMode(&'static str),
    AlarmButton,
    /// The terminal decided on its own that a passenger is trapped (93, or 38656 type 11).
    Trapped,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Code {
    Fault(ElevatorFault),
    Event(ElevatorEvent),
}

/// Maps a reported code to the canonical enum. Code 0 means "no fault" in both numberings.
pub fn decode(numbering: FaultNumbering, code: i64) -> Option<Code> {
    use Code::{Event, Fault};
    use ElevatorEvent as E;
    use ElevatorFault as F;
    Some(match (numbering, code) {
        (_, 0) => Event(E::BackToNormal),
        (FaultNumbering::Gbt24476, c) => match c {
            1 => Fault(F::SafetyCircuit),
            2 => Fault(F::DoorCloseFault),
            3 => Fault(F::DoorOpenFault),
            4 => Fault(F::StoppedOutsideUnlockingZone),
            5 => Fault(F::UnintendedMovement),
            6 => Fault(F::RunTimeLimiter),
            7 => Fault(F::FloorPositionLost),
            8 => Fault(F::RerunPrevention),
            40 => Event(E::BackToNormal),
            41 => Event(E::MainPowerOff),
            42 => Event(E::ServiceMode("out_of_service")),
            43 => Event(E::ServiceMode("inspection")),
            44 => Event(E::ServiceMode("fire_return")),
            45 => Event(E::ServiceMode("firefighter")),
            46 => Event(E::ServiceMode("emergency_power")),
            47 => Event(E::ServiceMode("earthquake")),
            90 => Event(E::AlarmButton),
            91 => Fault(F::BottomOvertravel),
            92 => Fault(F::TopOvertravel),
            93 => Event(E::Trapped),
            _ => return None,
        },
        (FaultNumbering::Gbt38656, c) => match c {
            1 => Fault(F::SafetyCircuit),
            2 => Fault(F::DoorCloseFault),
            3 => Fault(F::DoorOpenFault),
            4 => Fault(F::StoppedOutsideUnlockingZone),
            5 => Fault(F::UnintendedMovement),
            6 => Fault(F::RunTimeLimiter),
            7 => Fault(F::FloorPositionLost),
            8 => Fault(F::RerunPrevention),
            9 => Fault(F::TopOvertravel),
            10 => Fault(F::BottomOvertravel),
            11 => Event(E::Trapped),
            61 => Fault(F::EscalatorSafetyCircuit),
            62 => Fault(F::EscalatorOverspeed),
            63 => Fault(F::NonCommandedReversal),
            64 => Fault(F::MissingStep),
            65 => Fault(F::RestartPrevention),
            _ => return None,
        },
    })
}
