//! How numbers and times are written. Everything is formatted from the API's UTC values the
//! same way on the server and in the browser, so hydration finds the same text (no local time
//! zones, no "5 minutes ago").

/// `2025-03-01T14:05:06.123Z` → `2025-03-01 14:05 UTC`; other text unchanged.
pub fn date_time(rfc3339: &str) -> String {
    match split_rfc3339(rfc3339) {
        Some((date, hm)) => format!("{date} {hm} UTC"),
        None => rfc3339.to_string(),
    }
}

/// `2025-03-01T14:00:00Z` → `14:00`; other text unchanged.
pub fn hour(rfc3339: &str) -> String {
    match split_rfc3339(rfc3339) {
        Some((_, hm)) => hm.to_string(),
        None => rfc3339.to_string(),
    }
}

/// `2025-03-01` → `Mar 1`; other text unchanged.
pub fn short_day(day: &str) -> String {
    const MONTHS: [&str; 12] = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];
    let mut parts = day.get(..10).unwrap_or(day).split('-');
    let (Some(_), Some(m), Some(d)) = (parts.next(), parts.next(), parts.next()) else {
        return day.to_string();
    };
    match (m.parse::<usize>(), d.parse::<u32>()) {
        (Ok(m), Ok(d)) if (1..=12).contains(&m) => format!("{} {d}", MONTHS[m - 1]),
        _ => day.to_string(),
    }
}

fn split_rfc3339(text: &str) -> Option<(&str, &str)> {
    let (date, time) = text.split_once('T')?;
    let hm = time.get(..5)?;
    let valid = date.len() == 10
        && hm.as_bytes().get(2) == Some(&b':')
        && hm
            .bytes()
            .enumerate()
            .all(|(i, b)| i == 2 || b.is_ascii_digit());
    valid.then_some((date, hm))
}

/// A rate from 0 to 1 as a whole percentage: `0.425` → `43%`.
pub fn percent(rate: f64) -> String {
    if !rate.is_finite() {
        return "0%".into();
    }
    format!("{}%", (rate.clamp(0.0, 1.0) * 100.0).round() as i64)
}

/// A count with thousands separators: `12345` → `12,345`.
pub fn count(n: i64) -> String {
    let digits = n.unsigned_abs().to_string();
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    if n < 0 { format!("-{out}") } else { out }
}

/// `n` and the noun, singular or plural: `1 app`, `3 apps`.
pub fn plural(n: i64, singular: &str, plural: &str) -> String {
    format!("{} {}", count(n), if n == 1 { singular } else { plural })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_are_written_in_utc_to_the_minute() {
        assert_eq!(
            date_time("2025-03-01T14:05:06.123Z"),
            "2025-03-01 14:05 UTC"
        );
        assert_eq!(
            date_time("2025-03-01T14:05:06+00:00"),
            "2025-03-01 14:05 UTC"
        );
        assert_eq!(date_time("garbage"), "garbage");
        assert_eq!(date_time("2025-03-01Tab:cd"), "2025-03-01Tab:cd");
        assert_eq!(hour("2025-03-01T09:00:00Z"), "09:00");
    }

    #[test]
    fn days_are_short_month_names() {
        assert_eq!(short_day("2025-03-01"), "Mar 1");
        assert_eq!(short_day("2025-12-31"), "Dec 31");
        assert_eq!(short_day("2025-13-01"), "2025-13-01");
        assert_eq!(short_day("soon"), "soon");
    }

    #[test]
    fn rates_and_counts_are_rounded_and_grouped() {
        assert_eq!(percent(0.425), "43%");
        assert_eq!(percent(1.0), "100%");
        assert_eq!(percent(f64::NAN), "0%");
        assert_eq!(percent(2.0), "100%");
        assert_eq!(count(0), "0");
        assert_eq!(count(999), "999");
        assert_eq!(count(1000), "1,000");
        assert_eq!(count(1234567), "1,234,567");
        assert_eq!(count(-4200), "-4,200");
        assert_eq!(plural(1, "app", "apps"), "1 app");
        assert_eq!(plural(2, "app", "apps"), "2 apps");
    }
}
