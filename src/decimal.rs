//! Numbers to and from decimal text without core's float formatting and parsing.
//!
//! Why: core's float formatting (Grisu and Dragon with their tables) is about 16 KB of
//! the WebAssembly package and its parsing (Eisel-Lemire with a table of powers of five)
//! about 18 KB, against a size budget of 300 KB, while the report only prints a few
//! fixed-point numbers and reads a few doubles. Both directions here give the same
//! results as core (`format!("{x:.N}")`, `str::parse::<f64>`), checked by the tests
//! below on ties, edges and random inputs; they are small, and slower only on rare long
//! or extreme inputs.

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
        d.extend(std::iter::repeat_n(b'0', decimals as usize));
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
        let mut d = decimal_digits(rounded);
        if d.len() <= decimals as usize {
            let mut padded = vec![b'0'; decimals as usize + 1 - d.len()];
            padded.extend_from_slice(&d);
            d = padded;
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

/// The decimal digits of `v` (most significant first), without u128's `Display`. Past
/// u64, divided by 10 as four 32-bit limbs in 64-bit steps: u128 division would link
/// compiler-rt's `__udivti3`, about 1 KB of the size-limited WebAssembly build.
fn decimal_digits(v: u128) -> Vec<u8> {
    if let Ok(small) = u64::try_from(v) {
        return itoa::Buffer::new().format(small).as_bytes().to_vec();
    }
    let mut limbs = [
        (v >> 96) as u32,
        (v >> 64) as u32,
        (v >> 32) as u32,
        v as u32,
    ];
    let mut d = Vec::with_capacity(40);
    loop {
        let mut rem = 0u64;
        for limb in limbs.iter_mut() {
            let cur = (rem << 32) | u64::from(*limb);
            *limb = (cur / 10) as u32;
            rem = cur % 10;
        }
        d.push(b'0' + rem as u8);
        if limbs == [0; 4] {
            break;
        }
    }
    d.reverse();
    d
}

/// The decimal digits of `mantissa * 2^exponent` (most significant first).
fn whole_digits(mantissa: u64, exponent: u32) -> Vec<u8> {
    if exponent <= 64 {
        return decimal_digits((mantissa as u128) << exponent);
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

/// The double nearest to a JSON number's text (grammar already checked), ties to even,
/// as `str::parse::<f64>` reads it; `None` when it is beyond the largest double.
pub(crate) fn parse_f64(text: &str) -> Option<f64> {
    let (negative, body) = match text.strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, text),
    };
    let (mantissa, exponent) = match body.find(['e', 'E']) {
        Some(i) => (&body[..i], &body[i + 1..]),
        None => (body, ""),
    };
    // The written exponent, saturated far beyond any double's range.
    let mut exp10: i64 = 0;
    let (exp_negative, exp_digits) = match exponent.as_bytes().first() {
        Some(b'-') => (true, &exponent[1..]),
        Some(b'+') => (false, &exponent[1..]),
        _ => (false, exponent),
    };
    for b in exp_digits.bytes() {
        exp10 = (exp10 * 10 + i64::from(b - b'0')).min(1 << 40);
    }
    if exp_negative {
        exp10 = -exp10;
    }
    // Significant digits: leading zeros skipped, at most MAX_DIGITS kept (enough to
    // decide any rounding), the rest only noted as non-zero or not.
    const MAX_DIGITS: usize = 800;
    let mut digits: Vec<u8> = Vec::new();
    let mut truncated_nonzero = false;
    let (int_part, frac_part) = match mantissa.find('.') {
        Some(i) => (&mantissa[..i], &mantissa[i + 1..]),
        None => (mantissa, ""),
    };
    exp10 -= frac_part.len() as i64;
    for b in int_part.bytes().chain(frac_part.bytes()) {
        let d = b - b'0';
        if digits.is_empty() && d == 0 {
            continue;
        }
        if digits.len() < MAX_DIGITS {
            digits.push(d);
        } else {
            truncated_nonzero |= d != 0;
            exp10 += 1;
        }
    }
    while digits.last() == Some(&0) {
        digits.pop();
        exp10 += 1;
    }
    let sign = |x: f64| if negative { -x } else { x };
    let n = digits.len() as i64;
    if n == 0 {
        return Some(sign(0.0));
    }
    // value = D x 10^exp10 with D of n digits, so 10^(n-1+exp10) <= value < 10^(n+exp10).
    if n + exp10 > 310 {
        return None;
    }
    if n + exp10 < -324 {
        return Some(sign(0.0));
    }
    if n <= 15 && (-22..=22).contains(&exp10) && !truncated_nonzero {
        // Both D (< 2^53) and 10^|exp10| are exact doubles: one correctly rounded step.
        let d = digits.iter().fold(0u64, |a, &x| a * 10 + u64::from(x)) as f64;
        let p = POW10[exp10.unsigned_abs() as usize];
        return Some(sign(if exp10 < 0 { d / p } else { d * p }));
    }
    let d = Big::from_digits(&digits);
    let bits = if exp10 >= 0 {
        let mut value = d;
        for _ in 0..exp10 {
            value.mul_small(10);
        }
        round_to_double(&value, 0, truncated_nonzero)
    } else {
        // q = floor(D x 2^s / 10^k), scaled so that q has 56 or 57 bits.
        let mut divisor = Big::from_digits(&[1]);
        for _ in 0..(-exp10) {
            divisor.mul_small(10);
        }
        let s = 56 - (d.bits() as i64 - divisor.bits() as i64);
        let mut remainder = d;
        let mut divisor_scaled = divisor;
        if s >= 0 {
            remainder.shl(s as u32);
        } else {
            divisor_scaled.shl((-s) as u32);
        }
        let mut q = 0u64;
        for bit in (0..58).rev() {
            let mut shifted = divisor_scaled.clone();
            shifted.shl(bit);
            if remainder.cmp(&shifted) != std::cmp::Ordering::Less {
                remainder.sub(&shifted);
                q |= 1 << bit;
            }
        }
        let sticky = truncated_nonzero || !remainder.is_zero();
        round_to_double(&Big::from_u64(q), s, sticky)
    }?;
    Some(sign(f64::from_bits(bits)))
}

/// Exact doubles 10^0 to 10^22.
const POW10: [f64; 23] = [
    1e0, 1e1, 1e2, 1e3, 1e4, 1e5, 1e6, 1e7, 1e8, 1e9, 1e10, 1e11, 1e12, 1e13, 1e14, 1e15, 1e16,
    1e17, 1e18, 1e19, 1e20, 1e21, 1e22,
];

/// The bits of the double nearest to `q x 2^-s` (plus a little more when `sticky`),
/// ties to even; `None` past the largest double.
fn round_to_double(q: &Big, s: i64, sticky: bool) -> Option<u64> {
    let len = q.bits() as i64;
    if len == 0 {
        return Some(0);
    }
    // Drop the bits below a 53-bit mantissa, or below 2^-1074 for subnormals.
    let drop = (len - 53).max(s - 1074);
    if drop <= 0 {
        // Exact: shift up to a 53-bit mantissa, or as far as subnormals go.
        let shift = (53 - len).min(1074 - s);
        return bits_of(q.low_u64() << shift, -s - shift);
    }
    let m = q.shr_u64(drop as u64);
    let half = q.bit((drop - 1) as u64);
    let below_half = sticky || q.any_below((drop - 1) as u64);
    let m = if half && (below_half || m & 1 == 1) {
        m + 1
    } else {
        m
    };
    bits_of(m, drop - s)
}

/// The bits of `m x 2^t`, where `m < 2^53 + 1` and either `m >= 2^52` or `t == -1074`.
fn bits_of(m: u64, t: i64) -> Option<u64> {
    if m == 0 {
        return Some(0);
    }
    let bits = m.checked_add(((t + 1074) as u64) << 52)?;
    (bits < 0x7ff0_0000_0000_0000).then_some(bits)
}

/// A non-negative big integer, 32-bit limbs, least significant first.
#[derive(Clone)]
struct Big(Vec<u32>);

impl Big {
    fn from_u64(v: u64) -> Self {
        let mut b = Big(vec![v as u32, (v >> 32) as u32]);
        b.trim();
        b
    }

    fn from_digits(digits: &[u8]) -> Self {
        let mut b = Big(Vec::new());
        for &d in digits {
            b.mul_small(10);
            b.add_small(u32::from(d));
        }
        b
    }

    fn trim(&mut self) {
        while self.0.last() == Some(&0) {
            self.0.pop();
        }
    }

    fn is_zero(&self) -> bool {
        self.0.is_empty()
    }

    fn bits(&self) -> u64 {
        match self.0.last() {
            None => 0,
            Some(top) => 32 * (self.0.len() as u64 - 1) + u64::from(32 - top.leading_zeros()),
        }
    }

    fn mul_small(&mut self, k: u32) {
        let mut carry = 0u64;
        for limb in self.0.iter_mut() {
            let v = u64::from(*limb) * u64::from(k) + carry;
            *limb = v as u32;
            carry = v >> 32;
        }
        if carry > 0 {
            self.0.push(carry as u32);
        }
    }

    fn add_small(&mut self, k: u32) {
        let mut carry = u64::from(k);
        for limb in self.0.iter_mut() {
            if carry == 0 {
                return;
            }
            let v = u64::from(*limb) + carry;
            *limb = v as u32;
            carry = v >> 32;
        }
        if carry > 0 {
            self.0.push(carry as u32);
        }
    }

    fn shl(&mut self, n: u32) {
        let (words, bits) = ((n / 32) as usize, n % 32);
        if bits > 0 {
            let mut carry = 0u32;
            for limb in self.0.iter_mut() {
                let v = (*limb << bits) | carry;
                carry = *limb >> (32 - bits);
                *limb = v;
            }
            if carry > 0 {
                self.0.push(carry);
            }
        }
        if words > 0 && !self.0.is_empty() {
            let mut shifted = vec![0; words];
            shifted.extend_from_slice(&self.0);
            self.0 = shifted;
        }
    }

    /// `self -= other`, for `other <= self`.
    fn sub(&mut self, other: &Big) {
        let mut borrow = 0i64;
        for (i, limb) in self.0.iter_mut().enumerate() {
            let o = i64::from(other.0.get(i).copied().unwrap_or(0));
            let mut v = i64::from(*limb) - o - borrow;
            borrow = 0;
            if v < 0 {
                v += 1 << 32;
                borrow = 1;
            }
            *limb = v as u32;
        }
        self.trim();
    }

    fn cmp(&self, other: &Big) -> std::cmp::Ordering {
        self.0
            .len()
            .cmp(&other.0.len())
            .then_with(|| self.0.iter().rev().cmp(other.0.iter().rev()))
    }

    fn bit(&self, i: u64) -> bool {
        let word = (i / 32) as usize;
        self.0.get(word).is_some_and(|w| w >> (i % 32) & 1 == 1)
    }

    /// Whether any bit below bit `i` is set.
    fn any_below(&self, i: u64) -> bool {
        let word = (i / 32) as usize;
        self.0.iter().take(word).any(|&w| w != 0)
            || self
                .0
                .get(word)
                .is_some_and(|&w| w & ((1u32 << (i % 32)) - 1) != 0)
    }

    fn low_u64(&self) -> u64 {
        u64::from(self.0.first().copied().unwrap_or(0))
            | u64::from(self.0.get(1).copied().unwrap_or(0)) << 32
    }

    /// `self >> n` as a u64 (the caller knows it fits).
    fn shr_u64(&self, n: u64) -> u64 {
        (0..64).fold(0u64, |acc, b| acc | u64::from(self.bit(n + b)) << b)
    }
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

    fn parses_as_core(text: &str) {
        let core = text.parse::<f64>().ok().filter(|x| x.is_finite());
        let ours = parse_f64(text);
        assert_eq!(
            ours.map(f64::to_bits),
            core.map(f64::to_bits),
            "{text}: ours {ours:?}, core {core:?}"
        );
    }

    #[test]
    fn parse_matches_core_on_ties_and_edges() {
        for text in [
            "0",
            "-0",
            "0.0",
            "1",
            "-1",
            "0.1",
            "1.5",
            "123.456",
            "1e22",
            "1e23",
            "9007199254740992",
            "9007199254740993",
            "9007199254740993.0000000000000000001",
            "9007199254740995",
            "2.2250738585072011e-308",
            "2.2250738585072014e-308",
            "4.9406564584124654e-324",
            "2.4703282292062327e-324",
            "2.4703282292062328e-324",
            "1e-324",
            "1e-400",
            "5e-324",
            "1.7976931348623157e308",
            "1.7976931348623158e308",
            "1.7976931348623159e308",
            "1e308",
            "1e309",
            "0.30000000000000004",
            "100.0",
            "66.66666666666667",
            "1.234",
            "123456789012345678901234567890",
            "0.000000000000000000000000000001",
            "3.141592653589793238462643383279502884197169399375105820974944592307816406286",
            "1e-7",
            "1E+2",
            "7.2057594037927933e16",
            "1448997445238699",
            "8.98846567431158e307",
        ] {
            parses_as_core(text);
        }
        // A long input whose digits past the 800th decide nothing but a tie.
        let tie = format!("9007199254740993{}", "0".repeat(900));
        parses_as_core(&format!("{tie}e-900"));
        parses_as_core(&format!("{tie}1e-901"));
    }

    #[test]
    fn decimal_digits_are_u128_display() {
        for v in [
            0u128,
            9,
            10,
            4_294_967_295,
            4_294_967_296,
            u64::MAX as u128,
            1 << 100,
            u128::MAX,
        ] {
            assert_eq!(decimal_digits(v), v.to_string().into_bytes(), "{v}");
        }
    }

    proptest! {
        #[test]
        fn decimal_digits_of_any_u128(v in any::<u128>()) {
            prop_assert_eq!(decimal_digits(v), v.to_string().into_bytes());
        }

        #[test]
        fn parse_matches_core_on_any_double_written_out(bits in any::<u64>(), digits in 1usize..25) {
            let x = f64::from_bits(bits);
            prop_assume!(x.is_finite());
            parses_as_core(&format!("{x:e}"));
            parses_as_core(&format!("{x:.*e}", digits));
            parses_as_core(&format!("{x:?}"));
        }

        #[test]
        fn parse_matches_core_on_random_digits(
            text in "-?(0|[1-9][0-9]{0,40})(\\.[0-9]{1,40})?([eE][+-]?[0-9]{1,3})?"
        ) {
            parses_as_core(&text);
        }

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
