//! Dates for test data that the real clock never overtakes: the stores expire a job at its end
//! date, so a job written with a fixed year would start failing its tests once that year has
//! passed.
//!
//! Tests write `let y = future_year();` and `format!("{y}-01-15 10:00:00")`: the year is
//! always ahead of the clock and laid out like 2030 (the year the test data were first
//! written for), so month days keep their weekdays and schedules their runs.

use chrono::{Datelike, NaiveDate, Utc, Weekday};

/// The first year at least two years after the current one that has 2030's calendar (not a
/// leap year, 1 January a Tuesday): 2030 itself until 2028, then 2041, and so on.
pub fn future_year() -> i32 {
    let now = Utc::now().year();
    (now + 2..)
        .find(|&y| has_calendar_of_2030(y))
        .expect("a year with 2030's calendar comes within 28 years")
}

fn has_calendar_of_2030(y: i32) -> bool {
    let leap = NaiveDate::from_ymd_opt(y, 2, 29).is_some();
    let jan1 = NaiveDate::from_ymd_opt(y, 1, 1).map(|d| d.weekday());
    !leap && jan1 == Some(Weekday::Tue)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn future_year_is_ahead_and_shaped_like_2030() {
        let y = future_year();
        assert!(y >= Utc::now().year() + 2);
        assert!(has_calendar_of_2030(y));
        assert!(has_calendar_of_2030(2030) && has_calendar_of_2030(2041));
        assert!(!has_calendar_of_2030(2028) && !has_calendar_of_2030(2031));
    }
}
