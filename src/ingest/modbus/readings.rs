//! What one read becomes: a reading per point, good with its decoded value, or bad with the
//! reason (the failure, or the value that does not decode), each failure counted; and the
//! `device_online` reading.

use chrono::{DateTime, Utc};

use super::config::{ModbusDevice, Point};
use super::decode::{decode, label, DataType};
use super::link::{Failure, Payload};
use super::observe::{FailReason, PollObserver};
use super::plan::ReadRequest;
use crate::model::{Quality, Reading, Source, Value};

/// The readings of one request's points: their values, or bad readings that say why; the
/// failure (or each value that does not decode) is counted.
pub(super) fn push_readings(
    observer: &dyn PollObserver,
    device: &ModbusDevice,
    points: &[Point],
    request: &ReadRequest,
    result: &Result<Payload, Failure>,
    time: DateTime<Utc>,
    readings: &mut Vec<Reading>,
) {
    match result {
        Ok(payload) => {
            for &i in &request.points {
                let point = &points[i];
                let reading = match value_of(point, request, payload) {
                    Ok(value) => good(device, point, value, time),
                    Err(e) => {
                        observer.failed(&device.name, FailReason::Decode, &e);
                        bad(device, point, format!("decode: {e}"), time)
                    }
                };
                readings.push(reading);
            }
        }
        Err(failure) => {
            observer.failed(&device.name, failure.reason(), failure);
            for &i in &request.points {
                readings.push(bad(device, &points[i], failure.to_string(), time));
            }
        }
    }
}

fn value_of(
    point: &Point,
    request: &ReadRequest,
    payload: &Payload,
) -> Result<Value, super::decode::DecodeError> {
    let offset = usize::from(point.address - request.start);
    let n = usize::from(point.data_type.register_count());
    match payload {
        Payload::Bits(bits) => bits.get(offset).map(|b| Value::Bool(*b)).ok_or(
            super::decode::DecodeError::WrongLength {
                expected: offset + 1,
                got: bits.len(),
            },
        ),
        Payload::Words(words) => {
            let slice = words.get(offset..offset + n).unwrap_or(&[]);
            debug_assert!(point.data_type != DataType::Text(0));
            decode(slice, point.data_type, point.order, point.scaling)
        }
    }
    .and_then(|value| label(value, &point.labels))
}

fn good(device: &ModbusDevice, point: &Point, value: Value, time: DateTime<Utc>) -> Reading {
    Reading {
        equipment: device.equipment.clone(),
        metric: point.metric.clone(),
        value,
        unit: point.unit.clone(),
        time,
        quality: Quality::Good,
        source: Source::Modbus,
    }
}

pub(super) fn bad(
    device: &ModbusDevice,
    point: &Point,
    reason: String,
    time: DateTime<Utc>,
) -> Reading {
    Reading {
        equipment: device.equipment.clone(),
        metric: point.metric.clone(),
        value: Value::Text(reason),
        unit: point.unit.clone(),
        time,
        quality: Quality::Bad,
        source: Source::Modbus,
    }
}

pub(super) fn online_reading(device: &ModbusDevice, online: bool, time: DateTime<Utc>) -> Reading {
    Reading {
        equipment: device.equipment.clone(),
        metric: device.online_metric.clone(),
        value: Value::Bool(online),
        unit: None,
        time,
        quality: Quality::Good,
        source: Source::Modbus,
    }
}
