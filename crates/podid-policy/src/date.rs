//! Dates in condition values and request context: W3C ISO 8601 profiles or epoch seconds.

/// Milliseconds since the epoch for `text`, which is either epoch seconds (`1714557600`,
/// `1714557600.5`) or an ISO 8601 date in one of the W3C profiles: `YYYY`, `YYYY-MM`, `YYYY-MM-DD`,
/// `YYYY-MM-DDThh:mmTZD`, `YYYY-MM-DDThh:mm:ssTZD`, `YYYY-MM-DDThh:mm:ss.sTZD`, where `TZD` is
/// `Z`, `+hh:mm` or `-hh:mm` (a missing `TZD` means UTC). Digits alone are epoch seconds, even
/// when there are four of them.
pub fn parse_millis(text: &str) -> Option<i64> {
    let text = text.trim();
    if !text.is_empty()
        && text
            .bytes()
            .all(|b| b.is_ascii_digit() || b == b'.' || b == b'-')
        && let Some(m) = epoch(text)
    {
        return Some(m);
    }
    iso8601(text)
}

fn epoch(text: &str) -> Option<i64> {
    // An ISO date such as `2020-01-01` also consists of digits and dashes; epoch seconds have at
    // most a leading minus.
    if text.get(1..).is_some_and(|rest| rest.contains('-')) {
        return None;
    }
    let seconds: f64 = text.parse().ok()?;
    let millis = (seconds * 1000.0).round();
    (millis.is_finite() && millis.abs() < 1e17).then_some(millis as i64)
}

fn iso8601(text: &str) -> Option<i64> {
    let b = text.as_bytes();
    let num = |from: usize, len: usize| -> Option<i64> {
        let s = text.get(from..from + len)?;
        s.bytes()
            .all(|c| c.is_ascii_digit())
            .then(|| s.parse().ok())?
    };
    let year = num(0, 4)?;
    let (mut month, mut day) = (1, 1);
    let mut i = 4;
    if b.get(i) == Some(&b'-') {
        month = num(5, 2)?;
        i = 7;
        if b.get(i) == Some(&b'-') {
            day = num(8, 2)?;
            i = 10;
        }
    }
    if !(1..=12).contains(&month) || day < 1 || day > days_in_month(year, month) {
        return None;
    }
    let mut millis_of_day = 0i64;
    if matches!(b.get(i), Some(b'T' | b't')) {
        let hour = num(i + 1, 2)?;
        if b.get(i + 3) != Some(&b':') {
            return None;
        }
        let minute = num(i + 4, 2)?;
        i += 6;
        let mut second = 0;
        let mut fraction_millis = 0;
        if b.get(i) == Some(&b':') {
            second = num(i + 1, 2)?;
            i += 3;
            if b.get(i) == Some(&b'.') {
                i += 1;
                let start = i;
                while b.get(i).is_some_and(u8::is_ascii_digit) {
                    i += 1;
                }
                let digits = text.get(start..i)?;
                if digits.is_empty() {
                    return None;
                }
                let padded: String = digits.chars().chain("000".chars()).take(3).collect();
                fraction_millis = padded.parse().ok()?;
            }
        }
        if hour > 23 || minute > 59 || second > 60 {
            return None;
        }
        millis_of_day = ((hour * 60 + minute) * 60 + second) * 1000 + fraction_millis;
        match b.get(i) {
            None => {}
            Some(b'Z' | b'z') => i += 1,
            Some(sign @ (b'+' | b'-')) => {
                let oh = num(i + 1, 2)?;
                let om = if b.get(i + 3) == Some(&b':') {
                    let m = num(i + 4, 2)?;
                    i += 6;
                    m
                } else {
                    let m = num(i + 3, 2)?;
                    i += 5;
                    m
                };
                let offset = (oh * 60 + om) * 60_000;
                millis_of_day -= if *sign == b'+' { offset } else { -offset };
            }
            Some(_) => return None,
        }
    }
    if i != b.len() {
        return None;
    }
    Some(podid_types::days_from_civil(year, month, day) * 86_400_000 + millis_of_day)
}

fn days_in_month(year: i64, month: i64) -> i64 {
    match month {
        2 if (year % 4 == 0 && year % 100 != 0) || year % 400 == 0 => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_every_w3c_profile_and_epoch_seconds() {
        let noon = 1_714_564_800_000; // 2024-05-01T12:00:00Z
        assert_eq!(parse_millis("2024-05-01T12:00:00Z"), Some(noon));
        assert_eq!(parse_millis("2024-05-01T12:00Z"), Some(noon));
        assert_eq!(parse_millis("2024-05-01T12:00:00.250Z"), Some(noon + 250));
        assert_eq!(parse_millis("2024-05-01T14:00:00+02:00"), Some(noon));
        assert_eq!(parse_millis("2024-05-01T07:00:00-0500"), Some(noon));
        assert_eq!(parse_millis("2024-05-01T12:00:00"), Some(noon));
        assert_eq!(parse_millis("2024-05-01"), Some(noon - 12 * 3_600_000));
        assert_eq!(parse_millis("2024-05"), Some(noon - 12 * 3_600_000));
        assert_eq!(parse_millis("1970-01"), Some(0));
        // Digits alone are epoch seconds, even when they could be a year.
        assert_eq!(parse_millis("1970"), Some(1_970_000));
        assert_eq!(parse_millis("1714564800"), Some(noon));
        assert_eq!(parse_millis("1714564800.5"), Some(noon + 500));
    }

    #[test]
    fn rejects_what_is_not_a_date() {
        for bad in [
            "",
            "yesterday",
            "2024-13-01",
            "2024-02-30",
            "2024-05-01T25:00Z",
            "2024-05-01X",
            "2024-5-1",
            "1e400",
        ] {
            assert_eq!(parse_millis(bad), None, "{bad}");
        }
    }
}
