//! Byte sizes for people: parsing `256K`, `1M`, `262144`, and printing `1.50 GiB`.

/// Parses a size: a number with an optional binary suffix K, M or G (also `KiB`, `k`...).
pub fn parse_size(s: &str) -> Result<u64, String> {
    let t = s.trim();
    let digits_end = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
    let (num, suffix) = t.split_at(digits_end);
    let n: u64 = num
        .parse()
        .map_err(|_| format!("{s:?} is not a size (examples: 262144, 256K, 1M)"))?;
    let shift = match suffix.to_ascii_lowercase().as_str() {
        "" | "b" => 0,
        "k" | "kb" | "kib" => 10,
        "m" | "mb" | "mib" => 20,
        "g" | "gb" | "gib" => 30,
        _ => {
            return Err(format!(
                "{s:?}: unknown size suffix {suffix:?} (use K, M or G)"
            ));
        }
    };
    n.checked_mul(1 << shift)
        .ok_or_else(|| format!("{s:?} is too large"))
}

/// Parses a piece size: a power of two from 16 KiB to 64 MiB.
pub fn parse_piece_size(s: &str) -> Result<u32, String> {
    let n = parse_size(s)?;
    if !n.is_power_of_two() || !(16 << 10..=64 << 20).contains(&n) {
        return Err(format!(
            "piece size {n} must be a power of two from 16K to 64M"
        ));
    }
    u32::try_from(n).map_err(|_| format!("piece size {n} is too large"))
}

/// `1023 B`, `1.00 KiB`, `1.50 GiB`...
pub fn human(bytes: u64) -> String {
    const UNITS: [&str; 6] = ["KiB", "MiB", "GiB", "TiB", "PiB", "EiB"];
    if bytes < 1024 {
        return format!("{bytes} B");
    }
    let mut v = bytes as f64 / 1024.0;
    let mut unit = 0;
    while v >= 1024.0 && unit + 1 < UNITS.len() {
        v /= 1024.0;
        unit += 1;
    }
    format!("{v:.2} {}", UNITS[unit])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_sizes() {
        assert_eq!(parse_size("262144"), Ok(262_144));
        assert_eq!(parse_size("256K"), Ok(262_144));
        assert_eq!(parse_size("256k"), Ok(262_144));
        assert_eq!(parse_size("256KiB"), Ok(262_144));
        assert_eq!(parse_size("1M"), Ok(1 << 20));
        assert_eq!(parse_size("2G"), Ok(2 << 30));
        assert!(parse_size("").is_err());
        assert!(parse_size("K").is_err());
        assert!(parse_size("1T").is_err());
        assert!(parse_size("-1").is_err());
        assert!(parse_size("99999999999999999999G").is_err());
    }

    #[test]
    fn piece_sizes_are_powers_of_two_in_range() {
        assert_eq!(parse_piece_size("16K"), Ok(16_384));
        assert_eq!(parse_piece_size("64M"), Ok(64 << 20));
        assert!(parse_piece_size("8K").is_err());
        assert!(parse_piece_size("128M").is_err());
        assert!(parse_piece_size("48K").is_err());
    }

    #[test]
    fn human_sizes() {
        assert_eq!(human(0), "0 B");
        assert_eq!(human(1023), "1023 B");
        assert_eq!(human(1024), "1.00 KiB");
        assert_eq!(human(1536 << 20), "1.50 GiB");
        assert_eq!(human(u64::MAX), "16.00 EiB");
    }
}
