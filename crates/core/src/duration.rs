//! Go-style durations (`1h`, `30m`, `1h30m`, `1.5h`, `500ms`), because Kratos configs write
//! `lifespan: 24h` and must load unchanged.

use std::time::Duration;

/// Parses a Go duration string. Returns a human-readable reason on failure.
pub fn parse(input: &str) -> Result<Duration, String> {
    let s = input.trim();
    if s.is_empty() {
        return Err("empty duration".into());
    }
    if s == "0" {
        return Ok(Duration::ZERO);
    }
    let mut total = 0f64;
    let mut rest = s;
    while !rest.is_empty() {
        let num_len = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .ok_or_else(|| format!("`{input}` is missing a unit (use ns, us, ms, s, m or h)"))?;
        if num_len == 0 {
            return Err(format!("`{input}` is not a duration like `1h30m`"));
        }
        let value: f64 = rest[..num_len]
            .parse()
            .map_err(|_| format!("`{input}` has an invalid number"))?;
        rest = &rest[num_len..];
        let unit_len = rest
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(rest.len());
        let factor = match &rest[..unit_len] {
            "ns" => 1e-9,
            "us" | "µs" => 1e-6,
            "ms" => 1e-3,
            "s" => 1.0,
            "m" => 60.0,
            "h" => 3600.0,
            other => {
                return Err(format!(
                    "`{input}` has unknown unit `{other}` (use ns, us, ms, s, m or h)"
                ));
            }
        };
        total += value * factor;
        rest = &rest[unit_len..];
    }
    Ok(Duration::from_secs_f64(total))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_go_durations() {
        assert_eq!(parse("24h").unwrap(), Duration::from_secs(86400));
        assert_eq!(parse("1h30m").unwrap(), Duration::from_secs(5400));
        assert_eq!(parse("1.5h").unwrap(), Duration::from_secs(5400));
        assert_eq!(parse("500ms").unwrap(), Duration::from_millis(500));
        assert_eq!(parse("0").unwrap(), Duration::ZERO);
    }

    #[test]
    fn rejects_garbage() {
        assert!(parse("").is_err());
        assert!(parse("10").unwrap_err().contains("unit"));
        assert!(parse("10d").unwrap_err().contains("unknown unit `d`"));
        assert!(parse("h").is_err());
    }
}
