//! Kubernetes resource quantities (`k8s.io/apimachinery/pkg/api/resource`): parsing
//! (`100m`, `1Gi`, `1e3`, `.5`), exact comparison, and the canonical form upstream writes
//! back (`0.5` -> `500m`, `1024Mi` -> `1Gi`, `1000` -> `1k`). Values are held in nano units,
//! the finest precision upstream keeps (smaller non-zero values round up to `1n`).

use std::cmp::Ordering;

/// The message upstream gives for a malformed quantity.
pub const FORMAT_ERROR: &str =
    "quantities must match the regular expression '^([+-]?[0-9.]+)([eEinumkKMGTP]*[-+]?[0-9]*)$'";
const SUFFIX_ERROR: &str = "unable to parse quantity's suffix";

/// How a quantity is written back, chosen by the suffix it was written with.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    DecimalSi,
    BinarySi,
    DecimalExponent,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Quantity {
    /// The value times 10^9.
    pub nanos: i128,
    pub format: Format,
}

const NANO: i128 = 1_000_000_000;

impl Quantity {
    pub fn parse(input: &str) -> Result<Self, &'static str> {
        let s = input.trim();
        if s.is_empty() {
            return Err("quantities must match the regular expression '^([+-]?[0-9.]+)([eEinumkKMGTP]*[-+]?[0-9]*)$'");
        }
        let (negative, rest) = match s.as_bytes()[0] {
            b'-' => (true, &s[1..]),
            b'+' => (false, &s[1..]),
            _ => (false, s),
        };
        let num_len = rest
            .bytes()
            .take_while(|c| c.is_ascii_digit() || *c == b'.')
            .count();
        let (number, suffix) = rest.split_at(num_len);
        if number.bytes().filter(|c| *c == b'.').count() > 1
            || !number.bytes().any(|c| c.is_ascii_digit())
        {
            return Err(FORMAT_ERROR);
        }
        // The whole string must match upstream's pattern before the suffix is interpreted.
        let suffix_ok_chars = {
            let letters = suffix
                .bytes()
                .take_while(|c| b"eEinumkKMGTP".contains(c))
                .count();
            let tail = &suffix[letters..];
            let tail = tail.strip_prefix(['+', '-']).unwrap_or(tail);
            tail.bytes().all(|c| c.is_ascii_digit())
        };
        if !suffix_ok_chars {
            return Err(FORMAT_ERROR);
        }
        let (int_part, frac_part) = number.split_once('.').unwrap_or((number, ""));
        // Digits as a big decimal: mantissa * 10^-frac_len.
        let mut mantissa: i128 = 0;
        let mut scale: i32 = 0;
        for c in int_part.bytes().chain(frac_part.bytes()) {
            if mantissa > i128::MAX / 100 {
                // Beyond any representable resource amount: keep the magnitude.
                scale -= 1;
                continue;
            }
            mantissa = mantissa * 10 + i128::from(c - b'0');
        }
        scale -= frac_part.len() as i32;
        let (base10_exp, binary_exp, format) = interpret_suffix(suffix)?;
        // value = mantissa * 10^(scale + base10_exp) * 2^binary_exp; in nanos add 9.
        let mut value = mantissa;
        for _ in 0..binary_exp {
            value = value.saturating_mul(2);
        }
        let exp10 = scale + base10_exp + 9;
        let nanos = if exp10 >= 0 {
            let mut v = value;
            for _ in 0..exp10 {
                v = v.saturating_mul(10);
            }
            v
        } else {
            // Round up (away from zero) what is finer than a nano, as upstream does.
            let mut divisor: i128 = 1;
            let mut overflow = false;
            for _ in 0..(-exp10) {
                match divisor.checked_mul(10) {
                    Some(d) => divisor = d,
                    None => {
                        overflow = true;
                        break;
                    }
                }
            }
            if overflow {
                i128::from(value != 0)
            } else {
                let q = value / divisor;
                if value % divisor != 0 {
                    q + 1
                } else {
                    q
                }
            }
        };
        Ok(Self {
            nanos: if negative { -nanos } else { nanos },
            format,
        })
    }

    /// A quantity from a JSON value (a string, or a bare number as YAML clients send).
    pub fn from_json(v: &serde_json::Value) -> Result<Self, &'static str> {
        match v {
            serde_json::Value::String(s) => Self::parse(s),
            serde_json::Value::Number(n) => Self::parse(&n.to_string()),
            _ => Err(FORMAT_ERROR),
        }
    }

    pub fn is_zero(&self) -> bool {
        self.nanos == 0
    }

    /// Zero in upstream's `DecimalSI` format (`resource.Quantity{Format: DecimalSI}`).
    pub fn zero() -> Self {
        Self {
            nanos: 0,
            format: Format::DecimalSi,
        }
    }

    /// A whole number in `DecimalSI` (upstream's `NewQuantity(n, DecimalSI)`).
    pub fn from_int(n: i64) -> Self {
        Self {
            nanos: i128::from(n) * NANO,
            format: Format::DecimalSi,
        }
    }

    /// The value in whole units, rounded up (upstream's `Value`).
    pub fn value(&self) -> i128 {
        let v = self.nanos / NANO;
        if self.nanos % NANO > 0 {
            v + 1
        } else {
            v
        }
    }

    /// `RoundUp(-3)`: to whole milli units, away from zero.
    pub fn round_up_milli(self) -> Self {
        const MILLI: i128 = 1_000_000;
        let r = self.nanos % MILLI;
        let nanos = if r == 0 {
            self.nanos
        } else if self.nanos > 0 {
            self.nanos - r + MILLI
        } else {
            self.nanos - r - MILLI
        };
        Self { nanos, ..self }
    }

    /// The value in milli units (rounded up), as upstream's `MilliValue`.
    pub fn milli_value(&self) -> i128 {
        let m = self.nanos / 1_000_000;
        if self.nanos % 1_000_000 > 0 {
            m + 1
        } else {
            m
        }
    }

    /// The canonical string (upstream's `Quantity.String()`).
    pub fn canonical(&self) -> String {
        if self.nanos == 0 {
            return "0".into();
        }
        let sign = if self.nanos < 0 { "-" } else { "" };
        let abs = self.nanos.unsigned_abs();
        let mut format = self.format;
        if format == Format::BinarySi {
            let abs_i = self.nanos.abs();
            // Small or fractional binary amounts are shown in decimal to avoid rounding.
            if abs_i < 1024 * NANO || abs_i % NANO != 0 {
                format = Format::DecimalSi;
            }
        }
        if format == Format::BinarySi {
            let mut v = abs / NANO as u128;
            let mut k = 0;
            while v.is_multiple_of(1024) && k < 6 {
                v /= 1024;
                k += 1;
            }
            let suffix = ["", "Ki", "Mi", "Gi", "Ti", "Pi", "Ei"][k];
            return format!("{sign}{v}{suffix}");
        }
        // Strip factors of ten, then move the exponent down to a multiple of three.
        let mut m = abs;
        let mut e: i32 = -9;
        while m.is_multiple_of(10) {
            m /= 10;
            e += 1;
        }
        let r = e.rem_euclid(3);
        for _ in 0..r {
            m *= 10;
        }
        e -= r;
        let suffix = match format {
            Format::DecimalExponent => {
                if e == 0 {
                    String::new()
                } else {
                    format!("e{e}")
                }
            }
            _ => match e {
                -9 => "n".into(),
                -6 => "u".into(),
                -3 => "m".into(),
                0 => String::new(),
                3 => "k".into(),
                6 => "M".into(),
                9 => "G".into(),
                12 => "T".into(),
                15 => "P".into(),
                18 => "E".into(),
                e => format!("e{e}"),
            },
        };
        format!("{sign}{m}{suffix}")
    }
}

/// `a + b` as upstream's `Quantity.Add`: a zero takes the other's format.
impl std::ops::Add for Quantity {
    type Output = Self;

    fn add(self, other: Self) -> Self {
        Self {
            nanos: self.nanos.saturating_add(other.nanos),
            format: if self.is_zero() {
                other.format
            } else {
                self.format
            },
        }
    }
}

/// `a - b` as upstream's `Quantity.Sub`.
impl std::ops::Sub for Quantity {
    type Output = Self;

    fn sub(self, other: Self) -> Self {
        Self {
            nanos: self.nanos.saturating_sub(other.nanos),
            format: if self.is_zero() {
                other.format
            } else {
                self.format
            },
        }
    }
}

impl PartialOrd for Quantity {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.nanos.cmp(&other.nanos))
    }
}

/// (power of ten, power of two, format) of a suffix.
fn interpret_suffix(suffix: &str) -> Result<(i32, u32, Format), &'static str> {
    let dec = |e| Ok((e, 0, Format::DecimalSi));
    let bin = |p| Ok((0, p, Format::BinarySi));
    match suffix {
        "" => dec(0),
        "n" => dec(-9),
        "u" => dec(-6),
        "m" => dec(-3),
        "k" => dec(3),
        "M" => dec(6),
        "G" => dec(9),
        "T" => dec(12),
        "P" => dec(15),
        "E" => dec(18),
        "Ki" => bin(10),
        "Mi" => bin(20),
        "Gi" => bin(30),
        "Ti" => bin(40),
        "Pi" => bin(50),
        "Ei" => bin(60),
        s if s.len() > 1 && (s.starts_with('e') || s.starts_with('E')) => {
            let exp: i32 = s[1..].parse().map_err(|_| SUFFIX_ERROR)?;
            Ok((exp, 0, Format::DecimalExponent))
        }
        _ => Err(SUFFIX_ERROR),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn canon(s: &str) -> String {
        Quantity::parse(s).unwrap().canonical()
    }

    #[test]
    fn parses_and_canonicalizes_as_upstream() {
        for (input, want) in [
            ("100m", "100m"),
            ("0.1", "100m"),
            (".5", "500m"),
            ("1", "1"),
            ("1000", "1k"),
            ("1500", "1500"),
            ("1e3", "1e3"),
            ("1E3", "1e3"),
            ("1Gi", "1Gi"),
            ("1024Mi", "1Gi"),
            ("1.5Gi", "1536Mi"),
            ("0.5Ki", "512"),
            ("1536", "1536"),
            ("128974848", "128974848"),
            ("129M", "129M"),
            ("123Mi", "123Mi"),
            ("0", "0"),
            ("-1", "-1"),
            ("0.0000000001", "1n"),
            ("1E", "1E"),
        ] {
            assert_eq!(canon(input), want, "{input}");
        }
        for bad in ["", "abc", "1.2.3", "1x", "1Kb", "--1", "."] {
            assert!(Quantity::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn compares_by_value() {
        let a = Quantity::parse("1Gi").unwrap();
        let b = Quantity::parse("1073741824").unwrap();
        assert_eq!(a.nanos, b.nanos);
        assert!(Quantity::parse("500m").unwrap() < Quantity::parse("1").unwrap());
        assert_eq!(
            Quantity::parse("0.0001")
                .unwrap()
                .round_up_milli()
                .canonical(),
            "1m"
        );
        assert_eq!(Quantity::parse("1.5").unwrap().milli_value(), 1500);
    }
}
