//! Exact parsing of DynamoDB numbers (`N`).
//!
//! A number is kept as `mantissa × 10^exp` with up to 38 significant digits,
//! which is what DynamoDB stores. Nothing here goes through `f64`.

/// A parsed `N` value: `(-1)^neg × mantissa × 10^exp`, normalised so the
/// mantissa has no trailing zeros (zero is `0 × 10^0`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Number {
    pub neg: bool,
    pub mantissa: u128,
    pub digits: u32,
    pub exp: i32,
    /// More than 38 significant digits: only exact text can hold it.
    pub too_long: bool,
}

pub const MAX_DIGITS: u32 = 38;

impl Number {
    /// Parse DynamoDB number text. `None` when it is not a number.
    #[inline]
    pub fn parse(s: &[u8]) -> Option<Number> {
        Self::parse_plain(s).or_else(|| Self::parse_any(s))
    }

    /// The common spelling, `-?[0-9]+(\.[0-9]+)?` with at most 19 digits, in
    /// one pass with `u64` arithmetic; `None` for anything else (which
    /// [`parse_any`](Self::parse_any) reads, or rejects). Same result as
    /// `parse_any` wherever it answers (a test holds them to that).
    #[inline]
    fn parse_plain(s: &[u8]) -> Option<Number> {
        let (neg, body) = match s.first()? {
            b'-' => (true, &s[1..]),
            _ => (false, s),
        };
        if body.is_empty() || body.len() > 20 {
            return None;
        }
        let mut m: u64 = 0;
        let mut point = None;
        for (i, &c) in body.iter().enumerate() {
            let d = c.wrapping_sub(b'0');
            if d < 10 {
                m = m.wrapping_mul(10).wrapping_add(u64::from(d)); // 20 digits wrap: refused below
            } else if c == b'.' && point.is_none() && i > 0 && i + 1 < body.len() {
                point = Some(i);
            } else {
                return None;
            }
        }
        let ndigits = body.len() - usize::from(point.is_some());
        if ndigits > 19 {
            return None;
        }
        if m == 0 {
            return Some(Number { neg: false, mantissa: 0, digits: 0, exp: 0, too_long: false });
        }
        let mut exp = point.map_or(0, |p| -((body.len() - p - 1) as i32));
        while m.is_multiple_of(10) {
            m /= 10;
            exp += 1;
        }
        Some(Number { neg, mantissa: u128::from(m), digits: m.ilog10() + 1, exp, too_long: false })
    }

    /// Any number text DynamoDB accepts (signs, exponents, leading zeros, up to
    /// 38 significant digits; longer ones are marked `too_long`).
    fn parse_any(s: &[u8]) -> Option<Number> {
        let mut i = 0;
        let neg = match s.first() {
            Some(b'-') => {
                i = 1;
                true
            }
            Some(b'+') => {
                i = 1;
                false
            }
            _ => false,
        };
        let mut mantissa: u128 = 0;
        let mut digits = 0u32;
        let mut pending_zeros = 0u32; // zeros after the last non-zero digit
        let mut exp: i64 = 0;
        let mut too_long = false;
        let mut seen_digit = false;
        let mut seen_dot = false;
        while i < s.len() {
            let b = s[i];
            match b {
                b'0'..=b'9' => {
                    seen_digit = true;
                    if seen_dot {
                        exp -= 1;
                    }
                    if b == b'0' {
                        if digits > 0 {
                            pending_zeros += 1;
                        }
                    } else {
                        if digits + pending_zeros + 1 > MAX_DIGITS {
                            too_long = true;
                        } else if digits + pending_zeros < 19 {
                            // Fits u64: the common case, and cheaper than u128 arithmetic.
                            let mut m = mantissa as u64;
                            for _ in 0..pending_zeros {
                                m *= 10;
                            }
                            mantissa = u128::from(m * 10 + u64::from(b - b'0'));
                        } else {
                            for _ in 0..pending_zeros {
                                mantissa *= 10;
                            }
                            mantissa = mantissa * 10 + u128::from(b - b'0');
                        }
                        digits += pending_zeros + 1;
                        pending_zeros = 0;
                    }
                }
                b'.' if !seen_dot => seen_dot = true,
                b'e' | b'E' => break,
                _ => return None,
            }
            i += 1;
        }
        if !seen_digit {
            return None;
        }
        // Trailing zeros of the mantissa go into the exponent.
        exp += i64::from(pending_zeros);
        if i < s.len() {
            i += 1; // e
            let (eneg, start) = match s.get(i) {
                Some(b'-') => (true, i + 1),
                Some(b'+') => (false, i + 1),
                _ => (false, i),
            };
            if start >= s.len() || s.len() - start > 6 {
                return None;
            }
            let mut e: i64 = 0;
            for &b in &s[start..] {
                if !b.is_ascii_digit() {
                    return None;
                }
                e = e * 10 + i64::from(b - b'0');
            }
            exp += if eneg { -e } else { e };
        }
        if digits == 0 {
            return Some(Number { neg: false, mantissa: 0, digits: 0, exp: 0, too_long: false });
        }
        if too_long {
            // The mantissa is meaningless; keep digits and exponent for typing.
            mantissa = 0;
        }
        let exp = i32::try_from(exp).ok()?;
        Some(Number { neg, mantissa, digits, exp, too_long })
    }

    /// Digits after the decimal point needed to hold it exactly.
    pub fn scale(&self) -> u32 {
        if self.exp < 0 { self.exp.unsigned_abs() } else { 0 }
    }

    /// Digits before the decimal point.
    pub fn int_digits(&self) -> u32 {
        (self.digits as i64 + self.exp as i64).max(0) as u32
    }

    pub fn to_i64(&self) -> Option<i64> {
        if self.too_long || self.exp < 0 {
            return None;
        }
        if self.mantissa == 0 {
            return Some(0);
        }
        if self.int_digits() > 19 {
            return None;
        }
        let v = self.mantissa.checked_mul(10u128.checked_pow(self.exp as u32)?)?;
        if self.neg {
            if v <= i64::MAX as u128 + 1 { Some((v as i128).wrapping_neg() as i64) } else { None }
        } else {
            i64::try_from(v).ok()
        }
    }

    /// The nearest `f64`, when Clinger's fast path gives it: a mantissa of at
    /// most 53 bits and a power of ten up to 10^22 are both exact doubles, so
    /// one correctly rounded multiplication or division is the correctly
    /// rounded value (what `str::parse` would return). `None` otherwise
    /// (also for zero, whose sign only the text keeps): parse the text.
    #[inline]
    pub fn to_f64_fast(&self) -> Option<f64> {
        const POW10: [f64; 23] = [
            1e0, 1e1, 1e2, 1e3, 1e4, 1e5, 1e6, 1e7, 1e8, 1e9, 1e10, 1e11, 1e12, 1e13, 1e14, 1e15, 1e16, 1e17, 1e18,
            1e19, 1e20, 1e21, 1e22,
        ];
        if self.too_long || self.mantissa == 0 || self.mantissa >= 1 << 53 {
            return None;
        }
        let m = self.mantissa as f64;
        let p = *POW10.get(self.exp.unsigned_abs() as usize)?;
        let v = if self.exp >= 0 { m * p } else { m / p };
        Some(if self.neg { -v } else { v })
    }

    /// The value as an `i128` at `scale`, when it fits `precision` digits
    /// (Decimal128(precision, scale); `precision` at most 38).
    pub fn to_decimal(&self, precision: u32, scale: u32) -> Option<i128> {
        if self.too_long || self.scale() > scale || self.int_digits() + scale > precision.min(MAX_DIGITS) {
            return None;
        }
        if self.mantissa == 0 {
            return Some(0);
        }
        let shift = (self.exp + scale as i32) as u32;
        let v = self.mantissa.checked_mul(10u128.checked_pow(shift)?)?;
        let v = i128::try_from(v).ok()?;
        Some(if self.neg { -v } else { v })
    }
}

/// What inference records of a number (see [`Number::scale`], [`Number::int_digits`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Digits {
    /// Fraction digits after dropping trailing zeros.
    pub scale: u32,
    /// Digits before the point, leading zeros not counted.
    pub int_digits: u32,
}

/// The fast path of decimal columns: plain text (`-?[0-9]+(\.[0-9]+)?`, no
/// leading zeros, at most 18 digits, at most `scale` fraction digits, fitting
/// `precision` digits at `scale`) read straight into its value at `scale`, with
/// its [`Digits`]. `None` for anything else, which takes the general path
/// ([`Number::parse`]).
#[inline]
pub fn plain_decimal(text: &[u8], precision: u32, scale: u32) -> Option<(i128, Digits)> {
    let (neg, rest) = match text.first()? {
        b'-' => (true, &text[1..]),
        _ => (false, text),
    };
    let mut int: u64 = 0;
    let mut i = 0;
    while i < rest.len() && i < 19 && rest[i].is_ascii_digit() {
        int = int * 10 + u64::from(rest[i] - b'0');
        i += 1;
    }
    let int_len = i;
    if int_len == 0 || (rest[0] == b'0' && int_len > 1) {
        return None;
    }
    let (mut frac, mut frac_len) = (0u64, 0usize);
    if i < rest.len() {
        if rest[i] != b'.' {
            return None;
        }
        i += 1;
        let start = i;
        while i < rest.len() && i - start < 19 && rest[i].is_ascii_digit() {
            frac = frac * 10 + u64::from(rest[i] - b'0');
            i += 1;
        }
        frac_len = i - start;
        if frac_len == 0 || i != rest.len() {
            return None;
        }
    }
    let int_digits = if int == 0 { 0 } else { int_len as u32 };
    if int_len + frac_len > 18 || frac_len as u32 > scale || int_digits + scale > precision.min(MAX_DIGITS) {
        return None;
    }
    let mut norm_scale = if frac == 0 { 0 } else { frac_len as u32 };
    let mut f = frac;
    while f != 0 && f % 10 == 0 {
        f /= 10;
        norm_scale -= 1;
    }
    let magnitude = i128::from(int) * 10i128.pow(scale) + i128::from(frac) * 10i128.pow(scale - frac_len as u32);
    Some((if neg { -magnitude } else { magnitude }, Digits { scale: norm_scale, int_digits }))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn n(s: &str) -> Number {
        Number::parse(s.as_bytes()).unwrap()
    }

    #[test]
    fn the_plain_spelling_reads_as_any_spelling_does() {
        let mut texts: Vec<String> = [
            "0",
            "-0",
            "0.0",
            "-0.000",
            "007",
            "00.50",
            "1.",
            ".5",
            "-.5",
            "1.2.3",
            "1e5",
            "+1",
            "-",
            "",
            ".",
            "1-",
            "9999999999999999999",
            "99999999999999999999",
            "1234567890.123456789",
            "0.0000000000000000001",
            "100",
            "-1500.2500",
            "10000000000000000000",
            "12345678901234567890",
        ]
        .map(String::from)
        .to_vec();
        let mut rng = crate::generate::Rng::new(0x2545_F491_4F6C_DD1D);
        for _ in 0..20_000 {
            let x = rng.next_u64();
            let len = (x % 22) as usize;
            let text: String =
                (0..len).map(|i| b"0000123456789.-"[((x >> (i * 3 % 60)) as usize + i) % 15] as char).collect();
            texts.push(text);
            let m = (x >> 8) % 10u64.pow((x % 19) as u32 + 1);
            texts.push(format!("{m}.{:0w$}", (x >> 30) % 1000, w = (x % 4) as usize));
        }
        let mut plain = 0;
        for t in &texts {
            let want = Number::parse_any(t.as_bytes());
            if let Some(got) = Number::parse_plain(t.as_bytes()) {
                plain += 1;
                let want = want.unwrap_or_else(|| panic!("`{t}` read as plain, but it is not a number"));
                assert_eq!(
                    (got.neg, got.mantissa, got.digits, got.exp, got.too_long),
                    (want.neg, want.mantissa, want.digits, want.exp, want.too_long),
                    "`{t}`"
                );
            }
        }
        assert!(plain > texts.len() / 3, "plain {plain} of {}", texts.len());
    }

    #[test]
    fn the_fast_double_is_the_parsed_double() {
        // Both sides of every limit of the fast path, against Rust's correctly rounded parse.
        let mut texts: Vec<String> = [
            "1",
            "-1",
            "0.1",
            "46.75534",
            "-109.964106",
            "9007199254740991",
            "9007199254740992",
            "9007199254740993",
            "1e22",
            "1e23",
            "1e-22",
            "1e-23",
            "123456789012345678",
            "0.3",
            "-0.000001",
            "1.7976931348623157e308",
            "5e-324",
            "100",
            "1.50",
            "12345678901234567890123456789012345678",
        ]
        .map(String::from)
        .to_vec();
        let mut rng = crate::generate::Rng::new(0x9E37_79B9_7F4A_7C15);
        for _ in 0..20_000 {
            let x = rng.next_u64();
            let digits = (x % 20) as usize + 1;
            let m = (x >> 8) % 10u64.pow(digits.min(19) as u32);
            let e = ((x >> 40) % 60) as i32 - 30;
            let sign = if x & 1 == 1 { "-" } else { "" };
            texts.push(format!("{sign}{m}e{e}"));
            let s = m.to_string();
            let (int, frac) = s.split_at((x >> 50) as usize % s.len());
            texts.push(format!("{sign}{}.{frac}", if int.is_empty() { "0" } else { int }));
        }
        let mut fast = 0;
        for t in &texts {
            let num = Number::parse(t.as_bytes()).unwrap_or_else(|| panic!("{t} is a number"));
            let want: f64 = t.parse().unwrap();
            if let Some(v) = num.to_f64_fast() {
                fast += 1;
                assert_eq!(v.to_bits(), want.to_bits(), "{t}");
            }
        }
        assert!(fast > texts.len() / 4, "the fast path was taken {fast} times of {}", texts.len());
        assert_eq!(n("0").to_f64_fast(), None);
        assert_eq!(n("9007199254740993").to_f64_fast(), None);
        assert_eq!(n("1e23").to_f64_fast(), None);
    }

    #[test]
    fn integers_and_decimals() {
        assert_eq!(n("0").to_i64(), Some(0));
        assert_eq!(n("-0.0").to_i64(), Some(0));
        assert_eq!(n("42").to_i64(), Some(42));
        assert_eq!(n("1.5E1").to_i64(), Some(15));
        assert_eq!(n("9223372036854775807").to_i64(), Some(i64::MAX));
        assert_eq!(n("-9223372036854775808").to_i64(), Some(i64::MIN));
        assert_eq!(n("9223372036854775808").to_i64(), None);
        assert_eq!(n("99.99").to_i64(), None);
        assert_eq!(n("99.99").to_decimal(38, 2), Some(9999));
        assert_eq!(n("99.99").to_decimal(38, 3), Some(99990));
        assert_eq!(n("99.99").to_decimal(38, 1), None);
        assert_eq!(n("-0.005").to_decimal(38, 3), Some(-5));
        // Precision counts the digits at the column's scale.
        assert_eq!(n("99.99").to_decimal(4, 2), Some(9999));
        assert_eq!(n("99.99").to_decimal(4, 3), None);
        assert_eq!(n("0.001").to_decimal(3, 3), Some(1));
        assert_eq!(n("1234567890123456.78").to_decimal(18, 2), Some(123456789012345678));
        assert_eq!(n("12345678901234567.8").to_decimal(18, 2), None);
        assert_eq!(n("1200").exp, 2);
    }

    #[test]
    fn limits() {
        let big = n("1E+125");
        assert_eq!((big.int_digits(), big.to_i64(), big.to_decimal(38, 0)), (126, None, None));
        let tiny = n("-1E-130");
        assert_eq!((tiny.scale(), tiny.to_decimal(38, 38)), (130, None));
        let d38 = n("12345678901234567890123456789012345678");
        assert_eq!(d38.to_decimal(38, 0), Some(12345678901234567890123456789012345678));
        assert!(n("123456789012345678901234567890123456789").too_long);
        for bad in ["", "-", ".", "1.2.3", "1e", "abc", "1e+", "0x10", "1 "] {
            assert!(Number::parse(bad.as_bytes()).is_none(), "{bad}");
        }
    }
}

/// Plain spellings longer than this are written in `E` notation.
pub const PLAIN_MAX_CHARS: usize = 40;

/// Write number text in the one spelling DynamoDB's JSON export uses: no sign
/// for zero, no leading or trailing zeros, plain digits (`600`, `0.0015`)
/// unless that would take more than [`PLAIN_MAX_CHARS`] characters, then one
/// digit before the point and an exponent (`1E+125`, `9.99E-130`). Accepts
/// `[+-]digits[.digits][(e|E|d|D)[+-]digits]` (Ion's `d` exponent too, and
/// `103.` or `.5`); `false` (nothing written) for anything else. Exact: it
/// moves digits, it never computes with them.
pub fn write_canonical(text: &[u8], out: &mut Vec<u8>) -> bool {
    let (neg, rest) = match text.first() {
        Some(b'-') => (true, &text[1..]),
        Some(b'+') => (false, &text[1..]),
        _ => (false, text),
    };
    let mantissa_len = rest.iter().position(|b| matches!(b, b'e' | b'E' | b'd' | b'D')).unwrap_or(rest.len());
    let (mantissa, exponent) = rest.split_at(mantissa_len);
    let mut exp: i64 = 0;
    if !exponent.is_empty() {
        let e = &exponent[1..];
        let (eneg, digits) = match e.first() {
            Some(b'-') => (true, &e[1..]),
            Some(b'+') => (false, &e[1..]),
            _ => (false, e),
        };
        if digits.is_empty() || digits.len() > 9 || !digits.iter().all(u8::is_ascii_digit) {
            return false;
        }
        let v: i64 = digits.iter().fold(0, |a, &b| a * 10 + i64::from(b - b'0'));
        exp = if eneg { -v } else { v };
    }
    let point = mantissa.iter().position(|&b| b == b'.');
    let (int, frac) = match point {
        Some(p) => (&mantissa[..p], &mantissa[p + 1..]),
        None => (mantissa, &mantissa[..0]),
    };
    if int.len() + frac.len() == 0 || !int.iter().chain(frac).all(u8::is_ascii_digit) {
        return false;
    }
    exp -= frac.len() as i64;
    // The significant digits: `int` and `frac` read as one run, zeros trimmed
    // (no allocation: this runs for most numbers of an ION export).
    let total = int.len() + frac.len();
    let at = |i: usize| if i < int.len() { int[i] } else { frac[i - int.len()] };
    let lead = (0..total).take_while(|&i| at(i) == b'0').count();
    if lead == total {
        out.push(b'0');
        return true;
    }
    let trail = (0..total).rev().take_while(|&i| at(i) == b'0').count();
    exp += trail as i64;
    let digits = lead..total - trail;
    let n = digits.len() as i64;
    let push_digits = |out: &mut Vec<u8>, r: std::ops::Range<usize>| out.extend(r.map(at));
    if neg {
        out.push(b'-');
    }
    let plain_len = if exp >= 0 {
        n + exp
    } else if n + exp > 0 {
        n + 1
    } else {
        2 - exp
    };
    if plain_len <= PLAIN_MAX_CHARS as i64 {
        if exp >= 0 {
            push_digits(out, digits);
            out.resize(out.len() + exp as usize, b'0');
        } else if n + exp > 0 {
            let point = digits.start + (n + exp) as usize;
            push_digits(out, digits.start..point);
            out.push(b'.');
            push_digits(out, point..digits.end);
        } else {
            out.extend_from_slice(b"0.");
            out.resize(out.len() + (-exp - n) as usize, b'0');
            push_digits(out, digits);
        }
    } else {
        out.push(at(digits.start));
        if n > 1 {
            out.push(b'.');
            push_digits(out, digits.start + 1..digits.end);
        }
        let adjusted = exp + n - 1;
        out.push(b'E');
        out.push(if adjusted >= 0 { b'+' } else { b'-' });
        out.extend_from_slice(adjusted.unsigned_abs().to_string().as_bytes());
    }
    true
}

#[cfg(test)]
mod canonical_tests {
    use super::*;

    fn canon(s: &str) -> Option<String> {
        let mut out = Vec::new();
        write_canonical(s.as_bytes(), &mut out).then(|| String::from_utf8(out).unwrap())
    }

    #[test]
    fn one_spelling_per_number() {
        for (i, o) in [
            ("103.", "103"),
            ("6d2", "600"),
            ("2d3", "2000"),
            ("1.5d-3", "0.0015"),
            ("15D-4", "0.0015"),
            ("0.0015", "0.0015"),
            ("-0d0", "0"),
            ("-0.0", "0"),
            ("0", "0"),
            ("007.50", "7.5"),
            ("99.99", "99.99"),
            ("-99.990", "-99.99"),
            ("1E+125", "1E+125"),
            ("1d125", "1E+125"),
            ("-1E-130", "-1E-130"),
            ("9.9999999999999999999999999999999999999E+125", "9.9999999999999999999999999999999999999E+125"),
            ("12345678901234567890123456789012345678", "12345678901234567890123456789012345678"),
            ("0.00000000000000000000000000000000000001", "0.00000000000000000000000000000000000001"),
            ("1d-38", "0.00000000000000000000000000000000000001"),
            ("1d-39", "1E-39"),
            ("1d39", "1000000000000000000000000000000000000000"),
            ("1d40", "1E+40"),
            ("1702062202420", "1702062202420"),
            ("1.70206220242E+12", "1702062202420"),
            ("3937d1", "39370"),
            (".5", "0.5"),
            ("+5", "5"),
        ] {
            assert_eq!(canon(i).as_deref(), Some(o), "{i}");
            // The canonical spelling is a fixed point, and the same number.
            assert_eq!(canon(o).as_deref(), Some(o), "{o}");
            let (a, b) =
                (Number::parse(o.as_bytes()).unwrap(), Number::parse(i.replace(['d', 'D'], "E").as_bytes()).unwrap());
            assert_eq!(a, b, "{i}");
        }
        for bad in ["", "-", ".", "1.2.3", "1e", "abc", "1d", "0x10", "1 ", "1_000", "1e1234567890"] {
            assert_eq!(canon(bad), None, "{bad}");
        }
    }
}

/// Write DynamoDB number text as a JSON number: as is when it already is
/// valid JSON (the usual case), else in canonical `MeE` form.
pub fn write_json_number(text: &[u8], out: &mut Vec<u8>) {
    if is_json_number(text) {
        out.extend_from_slice(text);
        return;
    }
    match Number::parse(text) {
        Some(n) if !n.too_long => {
            if n.neg {
                out.push(b'-');
            }
            out.extend_from_slice(n.mantissa.to_string().as_bytes());
            if n.exp != 0 {
                out.extend_from_slice(format!("E{}", n.exp).as_bytes());
            }
        }
        _ => {
            out.push(b'"');
            out.extend_from_slice(text);
            out.push(b'"');
        }
    }
}

fn is_json_number(t: &[u8]) -> bool {
    let mut i = usize::from(t.first() == Some(&b'-'));
    let int_start = i;
    while i < t.len() && t[i].is_ascii_digit() {
        i += 1;
    }
    let int_len = i - int_start;
    if int_len == 0 || (int_len > 1 && t[int_start] == b'0') {
        return false;
    }
    if i < t.len() && t[i] == b'.' {
        i += 1;
        let s = i;
        while i < t.len() && t[i].is_ascii_digit() {
            i += 1;
        }
        if i == s {
            return false;
        }
    }
    if i < t.len() && (t[i] == b'e' || t[i] == b'E') {
        i += 1;
        if i < t.len() && (t[i] == b'+' || t[i] == b'-') {
            i += 1;
        }
        let s = i;
        while i < t.len() && t[i].is_ascii_digit() {
            i += 1;
        }
        if i == s {
            return false;
        }
    }
    i == t.len()
}

#[cfg(test)]
mod json_tests {
    use super::write_json_number;

    #[test]
    fn json_numbers() {
        for (i, o) in [("1E+125", "1E+125"), ("-0.0", "-0.0"), ("+5", "5"), (".5", "5E-1"), ("5.", "5"), ("007", "7")] {
            let mut out = Vec::new();
            write_json_number(i.as_bytes(), &mut out);
            assert_eq!(String::from_utf8(out).unwrap(), o, "{i}");
        }
    }
}

#[cfg(test)]
mod plain_decimal_tests {
    use super::*;

    #[test]
    fn plain_decimals_read_like_numbers() {
        let texts = [
            "0",
            "-0",
            "5",
            "-5",
            "5.0",
            "5.10",
            "0.05",
            "-0.050",
            "123.45",
            "796.56",
            "-97.588091",
            "34.532498",
            "100",
            "1000.000",
            "999999999999999999",
            "12345678901234567.8",
            "0.000001",
            "7",
            "007",
            "1.",
            ".5",
            "1e3",
            "+1",
            "1.5E3",
            "-",
            "",
            "1.2.3",
            "12345678901234567890",
        ];
        for t in texts {
            for (precision, scale) in [0u32, 1, 2, 6, 20, 37, 38]
                .into_iter()
                .flat_map(|s| [4u32, 9, 18, 38].into_iter().filter(move |&p| p >= s).map(move |p| (p, s)))
            {
                let slow = Number::parse(t.as_bytes()).and_then(|n| n.to_decimal(precision, scale).map(|v| (v, n)));
                // The general path decides what the fast one declines.
                if let Some((v, d)) = plain_decimal(t.as_bytes(), precision, scale) {
                    let (sv, n) =
                        slow.unwrap_or_else(|| panic!("{t} at ({precision},{scale}): the fast path accepted it"));
                    assert_eq!(v, sv, "{t} at {scale}");
                    assert_eq!(d, Digits { scale: n.scale(), int_digits: n.int_digits() }, "{t}");
                    assert_eq!(d.scale == 0, n.to_i64().is_some(), "{t}");
                }
            }
        }
        assert!(plain_decimal(b"796.56", 18, 2).is_some());
        assert!(plain_decimal(b"-97.588091", 18, 6).is_some());
        assert!(plain_decimal(b"796.56", 4, 2).is_none());
    }
}
