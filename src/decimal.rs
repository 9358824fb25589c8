//! Numbers as decimal text without core's float formatting (`{:.2}` and `{}` on `f64`).
//!
//! Why: core's float formatting (Grisu and Dragon with their tables) is about 16 KB of
//! the WebAssembly package, which has a size budget, and the report only ever prints a
//! few fixed-point numbers. The output is the same text as `format!("{x:.N}")`, byte for
//! byte (checked against it by the tests below, ties included).

/// Appends `x` with exactly `decimals` digits after the point, as `format!("{x:.N}")`
/// does: the double's exact binary value rounded half to even.
/// At most 18 decimals.
pub(crate) fn push_fixed(out: &mut String, x: f64, decimals: u32) {
    let decimals = decimals.min(18);
    if x.is_nan() {
        out.push_str("NaN");
        return;
    }
    if x.is_sign_negative() {
        out.push('-');
    }
    if x.is_infinite() {
        out.push_str("inf");
        return;
    }
    let bits = x.abs().to_bits();
    let biased = ((bits >> 52) & 0x7ff) as i32;
    let fraction = bits & ((1u64 << 52) - 1);
    // x = mantissa * 2^exponent, exactly.
    let (mantissa, exponent) = if biased == 0 {
        (fraction, -1074)
    } else {
        (fraction | (1u64 << 52), biased - 1075)
    };
    let scale = 10u128.pow(decimals);
    let digits = if exponent >= 0 {
        // A whole number: the digits of mantissa * 2^exponent, then zeros.
        let mut d = whole_digits(mantissa, exponent as u32);
        d.extend(std::iter::repeat(b'0').take(decimals as usize));
        d
    } else {
        let shift = exponent.unsigned_abs();
        // mantissa * 10^decimals < 2^53 * 10^18 < 2^113: fits. Past 127 bits of shift the
        // value is below 2^-74 and rounds to zero at any precision used here.
        let scaled = mantissa as u128 * scale;
        let rounded = if shift >= 128 {
            0
        } else {
            let q = scaled >> shift;
            let r = scaled & ((1u128 << shift) - 1);
            let half = 1u128 << (shift - 1);
            if r > half || (r == half && q & 1 == 1) {
                q + 1
            } else {
                q
            }
        };
        let mut d = rounded.to_string().into_bytes();
        if d.len() <= decimals as usize {
            let pad = decimals as usize + 1 - d.len();
            d.splice(0..0, std::iter::repeat(b'0').take(pad));
        }
        d
    };
    let point = digits.len() - decimals as usize;
    // The digits are ASCII.
    out.extend(digits[..point].iter().map(|&b| b as char));
    if decimals > 0 {
        out.push('.');
        out.extend(digits[point..].iter().map(|&b| b as char));
    }
}

/// The decimal digits of `mantissa * 2^exponent` (most significant first).
fn whole_digits(mantissa: u64, exponent: u32) -> Vec<u8> {
    if exponent <= 64 {
        return ((mantissa as u128) << exponent).to_string().into_bytes();
    }
    // Beyond u128: double a little-endian decimal digit vector (at most 309 digits).
    let mut le: Vec<u8> = mantissa
        .to_string()
        .bytes()
        .rev()
        .map(|b| b - b'0')
        .collect();
    for _ in 0..exponent {
        let mut carry = 0;
        for d in le.iter_mut() {
            let v = *d * 2 + carry;
            *d = v % 10;
            carry = v / 10;
        }
        if carry > 0 {
            le.push(carry);
        }
    }
    le.iter().rev().map(|d| d + b'0').collect()
}

/// `x` as the shortest text that reads back as the same double (`1.5`, `100.0`,
/// `1e300`), for error messages; `NaN`, `inf` and `-inf` for the rest.
pub(crate) fn float_text(x: f64) -> String {
    match serde_json::Number::from_f64(x) {
        Some(n) => n.to_string(),
        None if x.is_nan() => "NaN".to_owned(),
        None if x > 0.0 => "inf".to_owned(),
        None => "-inf".to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn fixed(x: f64, decimals: u32) -> String {
        let mut s = String::new();
        push_fixed(&mut s, x, decimals);
        s
    }

    fn same_as_core(x: f64) {
        for decimals in 0..=4 {
            assert_eq!(
                fixed(x, decimals),
                format!("{x:.*}", decimals as usize),
                "{x:e} with {decimals} decimals"
            );
        }
    }

    #[test]
    fn matches_core_on_ties_edges_and_specials() {
        for x in [
            0.0,
            -0.0,
            0.5,
            1.5,
            2.5,
            0.125,
            0.375,
            1.125,
            0.25,
            0.05,
            0.15,
            1.005,
            1.015,
            66.66666666666667,
            99.95,
            99.99999,
            100.0,
            12.5,
            1e-300,
            5e-324,
            1e15,
            1.8e16,
            9007199254740993.0,
            1e22,
            1.7976931348623157e308,
            f64::MIN_POSITIVE,
            -2.71875,
            f64::NAN,
            f64::INFINITY,
            f64::NEG_INFINITY,
        ] {
            same_as_core(x);
        }
        assert_eq!(fixed(1.125, 2), "1.12");
        assert_eq!(fixed(200.0 / 3.0, 1), "66.7");
    }

    #[test]
    fn report_durations_match_core_for_every_millisecond_up_to_20_s() {
        for ms in 0..20_000u64 {
            let x = ms as f64 / 1000.0;
            assert_eq!(fixed(x, 2), format!("{x:.2}"), "{ms} ms");
        }
    }

    #[test]
    fn float_text_is_shortest_round_trip() {
        assert_eq!(float_text(1.5), "1.5");
        assert_eq!(float_text(100.0), "100.0");
        assert_eq!(float_text(-0.25), "-0.25");
        assert_eq!(float_text(f64::NAN), "NaN");
        assert_eq!(float_text(f64::INFINITY), "inf");
        assert_eq!(float_text(f64::NEG_INFINITY), "-inf");
        assert_eq!(float_text(1e300).parse::<f64>(), Ok(1e300));
    }

    proptest! {
        #[test]
        fn matches_core_on_any_double(bits in any::<u64>()) {
            same_as_core(f64::from_bits(bits));
        }

        #[test]
        fn matches_core_on_scores(total in 1u64..1_000_000, bad in 0u64..1_000_000) {
            let x = (total - bad.min(total)) as f64 / total as f64 * 100.0;
            prop_assert_eq!(fixed(x, 1), format!("{x:.1}"));
        }
    }
}
