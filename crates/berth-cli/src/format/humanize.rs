//! docker/go-units' human-readable sizes and durations, and the size parsers used by flags
//! (`RAMInBytes` for `-m`/`--shm-size`, binary units; `FromHumanSize`, decimal units).

/// A size string that could not be parsed.
#[derive(Debug, thiserror::Error, PartialEq)]
pub enum UnitsError {
    #[error("invalid size: '{0}'")]
    InvalidSize(String),
    #[error("invalid suffix: '{0}'")]
    InvalidSuffix(String),
    /// Carries Go's own `time.ParseDuration` message.
    #[error("{0}")]
    InvalidDuration(String),
}

const DECIMAL: [&str; 9] = ["B", "kB", "MB", "GB", "TB", "PB", "EB", "ZB", "YB"];
const BINARY: [&str; 9] = ["B", "KiB", "MiB", "GiB", "TiB", "PiB", "EiB", "ZiB", "YiB"];

/// `units.HumanDuration`: "Less than a second", "About a minute", "3 hours", ...
pub fn human_duration(secs: f64) -> String {
    let seconds = secs as i64;
    if seconds < 1 {
        return "Less than a second".into();
    }
    if seconds == 1 {
        return "1 second".into();
    }
    if seconds < 60 {
        return format!("{seconds} seconds");
    }
    let minutes = (secs / 60.0) as i64;
    if minutes == 1 {
        return "About a minute".into();
    }
    if minutes < 60 {
        return format!("{minutes} minutes");
    }
    let hours = (secs / 3600.0 + 0.5) as i64;
    if hours == 1 {
        return "About an hour".into();
    }
    if hours < 48 {
        return format!("{hours} hours");
    }
    if hours < 24 * 7 * 2 {
        return format!("{} days", hours / 24);
    }
    if hours < 24 * 30 * 2 {
        return format!("{} weeks", hours / 24 / 7);
    }
    if hours < 24 * 365 * 2 {
        return format!("{} months", hours / 24 / 30);
    }
    format!("{} years", (secs / 3600.0) as i64 / 24 / 365)
}

/// Go's `%.{prec}g`: `prec` significant digits, trailing zeros removed, `e` form when the
/// exponent is below -4 or at least `prec`.
pub fn go_g(v: f64, prec: usize) -> String {
    let prec = prec.max(1);
    if v == 0.0 {
        return "0".into();
    }
    // Round to `prec` significant digits first: rounding may bump the exponent (999.5 -> 1e3).
    let e = format!("{:.*e}", prec - 1, v);
    let (mant, exp) = e.split_once('e').expect("{:e} output has an exponent");
    let exp: i32 = exp.parse().expect("{:e} exponent is an integer");
    if exp < -4 || exp >= prec as i32 {
        let m = trim_zeros(mant);
        let sign = if exp < 0 { '-' } else { '+' };
        return format!("{m}e{sign}{:02}", exp.abs());
    }
    let decimals = (prec as i32 - 1 - exp).max(0) as usize;
    trim_zeros(&format!("{:.*}", decimals, v))
}

fn trim_zeros(s: &str) -> String {
    if s.contains('.') {
        s.trim_end_matches('0').trim_end_matches('.').to_string()
    } else {
        s.to_string()
    }
}

fn size_and_unit(mut size: f64, base: f64, units: &[&'static str; 9]) -> (f64, &'static str) {
    let mut i = 0;
    while size >= base && i < units.len() - 1 {
        size /= base;
        i += 1;
    }
    (size, units[i])
}

/// `units.HumanSizeWithPrecision`: decimal units ("4.26MB" with precision 3).
pub fn human_size_prec(size: f64, prec: usize) -> String {
    let (s, u) = size_and_unit(size, 1000.0, &DECIMAL);
    format!("{}{u}", go_g(s, prec))
}

/// `units.HumanSize`: precision 4.
pub fn human_size(size: f64) -> String {
    human_size_prec(size, 4)
}

/// `units.BytesSize`: binary units, precision 4 ("1.5GiB").
pub fn bytes_size(size: f64) -> String {
    let (s, u) = size_and_unit(size, 1024.0, &BINARY);
    format!("{}{u}", go_g(s, 4))
}

fn parse_size(s: &str, binary: bool) -> Result<i64, UnitsError> {
    let bad = || UnitsError::InvalidSize(s.to_string());
    let t = s.trim();
    let num_end = t
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(t.len());
    let (num, rest) = t.split_at(num_end);
    if num.is_empty() {
        return Err(bad());
    }
    let n: f64 = num.parse().map_err(|_| bad())?;
    let rest = rest.strip_prefix(' ').unwrap_or(rest);
    let mut chars = rest.chars();
    let unit = chars.next();
    let suffix: String = chars.collect();
    let base: f64 = if binary { 1024.0 } else { 1000.0 };
    let bad_suffix = || UnitsError::InvalidSuffix(rest.to_string());
    let pow = match unit.map(|c| c.to_ascii_lowercase()) {
        None => 0,
        Some('b') if suffix.is_empty() => 0,
        Some('k') => 1,
        Some('m') => 2,
        Some('g') => 3,
        Some('t') => 4,
        Some('p') => 5,
        _ => return Err(bad_suffix()),
    };
    if unit.is_some_and(|c| c.eq_ignore_ascii_case(&'b')) {
        return Ok(n as i64);
    }
    let ok_suffix = matches!(suffix.to_ascii_lowercase().as_str(), "" | "b" | "i" | "ib");
    if !ok_suffix {
        return Err(bad_suffix());
    }
    Ok((n * base.powi(pow)) as i64)
}

/// `units.RAMInBytes`: "512m" = 536870912, binary multipliers, optional `b`/`ib`.
pub fn ram_in_bytes(s: &str) -> Result<i64, UnitsError> {
    parse_size(s, true)
}

/// `units.FromHumanSize`: decimal multipliers ("1kb" = 1000).
pub fn from_human_size(s: &str) -> Result<i64, UnitsError> {
    parse_size(s, false)
}

/// Go's `time.ParseDuration` ("1m30s", "500ms", "1.5h"), in nanoseconds.
pub fn parse_go_duration(s: &str) -> Result<i64, UnitsError> {
    let bad = || UnitsError::InvalidDuration(format!("time: invalid duration {s:?}"));
    let (neg, mut rest) = match s.strip_prefix('-') {
        Some(r) => (true, r),
        None => (false, s.strip_prefix('+').unwrap_or(s)),
    };
    if rest == "0" {
        return Ok(0);
    }
    if rest.is_empty() {
        return Err(bad());
    }
    let mut total = 0f64;
    while !rest.is_empty() {
        let end = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .ok_or_else(|| {
                UnitsError::InvalidDuration(format!("time: missing unit in duration {s:?}"))
            })?;
        let n: f64 = rest[..end].parse().map_err(|_| bad())?;
        rest = &rest[end..];
        let uend = rest
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(rest.len());
        let mult = match &rest[..uend] {
            "ns" => 1.0,
            "us" | "µs" | "μs" => 1e3,
            "ms" => 1e6,
            "s" => 1e9,
            "m" => 60e9,
            "h" => 3600e9,
            u => {
                return Err(UnitsError::InvalidDuration(format!(
                    "time: unknown unit {u:?} in duration {s:?}"
                )))
            }
        };
        total += n * mult;
        rest = &rest[uend..];
    }
    Ok(if neg { -(total as i64) } else { total as i64 })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        assert_eq!(human_duration(0.5), "Less than a second");
        assert_eq!(human_duration(1.0), "1 second");
        assert_eq!(human_duration(3.0), "3 seconds");
        assert_eq!(human_duration(60.0), "About a minute");
        assert_eq!(human_duration(125.0), "2 minutes");
        assert_eq!(human_duration(3600.0), "About an hour");
        assert_eq!(human_duration(5.0 * 3600.0), "5 hours");
        assert_eq!(human_duration(3.0 * 86400.0), "3 days");
        assert_eq!(human_duration(20.0 * 86400.0), "2 weeks");
        assert_eq!(human_duration(90.0 * 86400.0), "3 months");
        assert_eq!(human_duration(800.0 * 86400.0), "2 years");
    }

    #[test]
    fn sizes() {
        assert_eq!(human_size_prec(4_261_000.0, 3), "4.26MB");
        assert_eq!(human_size_prec(1_000.0, 3), "1kB");
        assert_eq!(human_size_prec(0.0, 3), "0B");
        assert_eq!(human_size_prec(999.0, 3), "999B");
        assert_eq!(human_size_prec(1_234_567_890.0, 3), "1.23GB");
        assert_eq!(human_size(1_234_567.0), "1.235MB");
        assert_eq!(bytes_size(1536.0), "1.5KiB");
        assert_eq!(bytes_size(512.0 * 1024.0 * 1024.0), "512MiB");
        assert_eq!(go_g(999.5, 3), "1e+03");
        assert_eq!(go_g(0.00001234, 3), "1.23e-05");
    }

    #[test]
    fn parse_sizes() {
        assert_eq!(ram_in_bytes("512m"), Ok(536_870_912));
        assert_eq!(ram_in_bytes("1g"), Ok(1_073_741_824));
        assert_eq!(ram_in_bytes("64MiB"), Ok(67_108_864));
        assert_eq!(ram_in_bytes("1.5k"), Ok(1536));
        assert_eq!(ram_in_bytes("100"), Ok(100));
        assert_eq!(ram_in_bytes("100b"), Ok(100));
        assert!(ram_in_bytes("12x").is_err());
        assert!(ram_in_bytes("m").is_err());
        assert_eq!(from_human_size("1kb"), Ok(1000));
    }

    #[test]
    fn go_durations() {
        assert_eq!(parse_go_duration("30s"), Ok(30_000_000_000));
        assert_eq!(parse_go_duration("1m30s"), Ok(90_000_000_000));
        assert_eq!(parse_go_duration("500ms"), Ok(500_000_000));
        assert_eq!(parse_go_duration("1.5h"), Ok(5_400_000_000_000));
        assert_eq!(parse_go_duration("0"), Ok(0));
        assert!(parse_go_duration("10").is_err());
        assert!(parse_go_duration("5x").is_err());
    }
}
