//! Go's `time.ParseDuration` and go-units' `RAMInBytes`, the two value syntaxes Dockerfile
//! flags borrow from Go (`HEALTHCHECK --interval=1m30s`, `RUN --mount=type=tmpfs,size=64m`).
//! Error texts are Go's, because users see them in build errors.

/// Why a duration or size did not parse.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ValueError {
    #[error("time: invalid duration {}", crate::goquote::quote(.0))]
    InvalidDuration(String),
    #[error("time: missing unit in duration {}", crate::goquote::quote(.0))]
    MissingUnit(String),
    #[error("time: unknown unit {} in duration {}", crate::goquote::quote(.unit), crate::goquote::quote(.input))]
    UnknownUnit { unit: String, input: String },
    #[error("invalid size: '{0}'")]
    InvalidSize(String),
}

/// Parses a Go duration (`300ms`, `-1.5h`, `2h45m`, `0`) into signed nanoseconds.
pub fn parse_go_duration(input: &str) -> Result<i64, ValueError> {
    let invalid = || ValueError::InvalidDuration(input.to_owned());
    let mut s = input;
    let mut neg = false;
    if let Some(c) = s.chars().next() {
        if c == '-' || c == '+' {
            neg = c == '-';
            s = &s[1..];
        }
    }
    if s == "0" {
        return Ok(0);
    }
    if s.is_empty() {
        return Err(invalid());
    }
    let mut total: u128 = 0;
    while !s.is_empty() {
        // Integer part.
        let int_len = s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len());
        let int_part = &s[..int_len];
        s = &s[int_len..];
        let mut frac_part = "";
        if let Some(rest) = s.strip_prefix('.') {
            let frac_len = rest
                .find(|c: char| !c.is_ascii_digit())
                .unwrap_or(rest.len());
            frac_part = &rest[..frac_len];
            s = &rest[frac_len..];
            if int_part.is_empty() && frac_part.is_empty() {
                return Err(invalid());
            }
        } else if int_part.is_empty() {
            return Err(invalid());
        }
        let unit_len = s
            .find(|c: char| c == '.' || c.is_ascii_digit())
            .unwrap_or(s.len());
        let unit = &s[..unit_len];
        s = &s[unit_len..];
        if unit.is_empty() {
            return Err(ValueError::MissingUnit(input.to_owned()));
        }
        let scale: u128 = match unit {
            "ns" => 1,
            "us" | "\u{b5}s" | "\u{3bc}s" => 1_000,
            "ms" => 1_000_000,
            "s" => 1_000_000_000,
            "m" => 60 * 1_000_000_000,
            "h" => 3600 * 1_000_000_000,
            _ => {
                return Err(ValueError::UnknownUnit {
                    unit: unit.to_owned(),
                    input: input.to_owned(),
                })
            }
        };
        let int: u128 = if int_part.is_empty() {
            0
        } else {
            int_part.parse().map_err(|_| invalid())?
        };
        let mut value = int.checked_mul(scale).ok_or_else(invalid)?;
        if !frac_part.is_empty() {
            // Go accumulates the fraction with limited precision; digits beyond what can
            // change the nanosecond result are ignored.
            let mut frac: u128 = 0;
            let mut div: u128 = 1;
            for d in frac_part.bytes().take(30) {
                frac = frac * 10 + u128::from(d - b'0');
                div *= 10;
            }
            value += frac * scale / div;
        }
        total = total.checked_add(value).ok_or_else(invalid)?;
        if total > i64::MAX as u128 + u128::from(neg) {
            return Err(invalid());
        }
    }
    let total = total as i128;
    Ok(if neg { -total } else { total } as i64)
}

/// Parses a human size in binary units (`64m`, `1.5GiB`, `512`) like go-units' `RAMInBytes`.
pub fn parse_ram_in_bytes(input: &str) -> Result<i64, ValueError> {
    let bad = || ValueError::InvalidSize(input.to_owned());
    let num_len = input
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(input.len());
    let (num, mut suffix) = input.split_at(num_len);
    if num.is_empty() || num.starts_with('.') || num.ends_with('.') || num.contains("..") {
        return Err(bad());
    }
    let value: f64 = num.parse().map_err(|_| bad())?;
    suffix = suffix.strip_prefix(' ').unwrap_or(suffix);
    let lower = suffix.to_ascii_lowercase();
    let mut rest = lower.as_str();
    let mut mult: f64 = 1.0;
    if let Some(c) = rest.chars().next() {
        let m = match c {
            'k' => Some(1024f64),
            'm' => Some(1024f64.powi(2)),
            'g' => Some(1024f64.powi(3)),
            't' => Some(1024f64.powi(4)),
            'p' => Some(1024f64.powi(5)),
            _ => None,
        };
        if let Some(m) = m {
            mult = m;
            rest = &rest[1..];
        }
    }
    rest = rest.strip_prefix('i').unwrap_or(rest);
    rest = rest.strip_prefix('b').unwrap_or(rest);
    if !rest.is_empty() {
        return Err(bad());
    }
    Ok((value * mult) as i64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_like_go() {
        assert_eq!(parse_go_duration("0"), Ok(0));
        assert_eq!(parse_go_duration("5s"), Ok(5_000_000_000));
        assert_eq!(parse_go_duration("1m30s"), Ok(90_000_000_000));
        assert_eq!(parse_go_duration("1.5h"), Ok(5_400_000_000_000));
        assert_eq!(parse_go_duration("-300ms"), Ok(-300_000_000));
        assert_eq!(parse_go_duration(".5s"), Ok(500_000_000));
        assert_eq!(parse_go_duration("10µs"), Ok(10_000));
        assert_eq!(parse_go_duration("1h2m3s4ms5us6ns"), Ok(3_723_004_005_006));
        assert_eq!(
            parse_go_duration("5").unwrap_err().to_string(),
            "time: missing unit in duration \"5\""
        );
        assert_eq!(
            parse_go_duration("5d").unwrap_err().to_string(),
            "time: unknown unit \"d\" in duration \"5d\""
        );
        assert!(parse_go_duration("").is_err());
        assert!(parse_go_duration("s").is_err());
        assert!(parse_go_duration(".s").is_err());
        assert!(parse_go_duration("9999999999h").is_err());
    }

    #[test]
    fn sizes_like_go_units() {
        assert_eq!(parse_ram_in_bytes("512"), Ok(512));
        assert_eq!(parse_ram_in_bytes("64m"), Ok(64 << 20));
        assert_eq!(parse_ram_in_bytes("1GiB"), Ok(1 << 30));
        assert_eq!(parse_ram_in_bytes("2 kb"), Ok(2048));
        assert!(parse_ram_in_bytes("abc").is_err());
        assert!(parse_ram_in_bytes("12x").is_err());
    }
}
