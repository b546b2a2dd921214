//! The district's local time: scorecard months, the daily indicators' day and hazard deadlines
//! begin at local midnight in `[central] time_zone` (an IANA zone, read from chrono-tz's copy
//! of the tz database), so a zone with daylight saving time moves them as the wall clock does.
//! The pages show times in the same zone.

use chrono::{DateTime, NaiveDate, TimeZone};
use chrono_tz::Tz;

use super::config::CentralConfig;

/// The zone named `name`, when the tz database has it.
pub fn parse(name: &str) -> Option<Tz> {
    name.parse().ok()
}

impl CentralConfig {
    /// `[central] time_zone` as a zone. `seguard check` refuses a name the tz database lacks,
    /// so the default (Asia/Shanghai) stands only for a config built without validation.
    pub fn zone(&self) -> Tz {
        parse(&self.time_zone).unwrap_or(chrono_tz::Asia::Shanghai)
    }
}

/// Today in `zone`: the date a regulator there calls today (an inspection is overdue from the
/// local day after its date, not from 08:00 in Shanghai).
pub fn today(zone: Tz) -> NaiveDate {
    local_date(super::now_ms(), zone)
}

/// The local date of `now_ms` in `zone`.
pub fn local_date(now_ms: i64, zone: Tz) -> NaiveDate {
    DateTime::from_timestamp_millis(now_ms)
        .unwrap_or_default()
        .with_timezone(&zone)
        .date_naive()
}

/// The instant (UTC milliseconds) at which `day` begins in `zone`: its local midnight (the
/// earlier one when the clock goes back over it), or the first local minute after a midnight
/// that a clock change skips.
pub fn day_start_ms(day: NaiveDate, zone: Tz) -> i64 {
    let midnight = day.and_hms_opt(0, 0, 0).expect("midnight exists");
    (0..=24 * 60)
        .find_map(|m| {
            zone.from_local_datetime(&(midnight + chrono::Duration::minutes(m)))
                .earliest()
        })
        .map(|t| t.timestamp_millis())
        .unwrap_or_else(|| midnight.and_utc().timestamp_millis())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::central::store::rfc3339;

    #[test]
    fn days_begin_at_local_midnight_across_clock_changes() {
        let d = |s: &str| s.parse::<NaiveDate>().unwrap();
        let shanghai = chrono_tz::Asia::Shanghai;
        assert_eq!(
            rfc3339(day_start_ms(d("2026-11-01"), shanghai)),
            "2026-10-31T16:00:00.000Z"
        );
        // Los Angeles: still summer time at midnight on 1 November 2026 (it ends at 02:00).
        let la = chrono_tz::America::Los_Angeles;
        assert_eq!(
            rfc3339(day_start_ms(d("2026-11-01"), la)),
            "2026-11-01T07:00:00.000Z"
        );
        assert_eq!(
            rfc3339(day_start_ms(d("2026-12-01"), la)),
            "2026-12-01T08:00:00.000Z"
        );
        // Santiago skips midnight when summer time begins (6 September 2026): the day
        // begins at 01:00.
        let santiago = chrono_tz::America::Santiago;
        assert_eq!(
            rfc3339(day_start_ms(d("2026-09-06"), santiago)),
            "2026-09-06T04:00:00.000Z"
        );
        // 23:30 on 30 November in Los Angeles is 1 December in UTC and in Shanghai.
        let late = DateTime::parse_from_rfc3339("2026-11-30T23:30:00-08:00")
            .unwrap()
            .timestamp_millis();
        assert_eq!(local_date(late, la), d("2026-11-30"));
        assert_eq!(local_date(late, shanghai), d("2026-12-01"));
        assert_eq!(parse("Asia/Atlantis"), None);
    }
}
