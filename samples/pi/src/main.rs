//! `pi`: a command pod that does real work and exits. Prints pi to N decimal
//! places (`pi 5` prints `3.14159`) and exits 0. N is the first argument, else
//! env `DIGITS`, else 100. A count that is not a whole number fails with a
//! message on stderr, so a failing command is easy to make too (WASI 0.2's
//! `exit` carries only success or failure, which hosts report as exit code 1).
//!
//! The digits are exact: Machin's formula, pi = 16 atan(1/5) - 4 atan(1/239),
//! summed in fixed point over base-10^9 limbs, with guard digits that are
//! computed and then dropped. No dependencies; about 0.3 N^2 limb operations.

use std::process::ExitCode;

const DEFAULT_DIGITS: usize = 100;

fn main() -> ExitCode {
    let requested = std::env::args()
        .nth(1)
        .or_else(|| std::env::var("DIGITS").ok());
    let digits = match requested.as_deref().map(str::parse::<usize>) {
        None => DEFAULT_DIGITS,
        Some(Ok(digits)) => digits,
        Some(Err(_)) => {
            eprintln!(
                "pi: digit count must be a whole number, not {:?}\nusage: pi [DIGITS]   (or env DIGITS; default {DEFAULT_DIGITS})",
                requested.unwrap_or_default()
            );
            return ExitCode::FAILURE;
        }
    };
    println!("{}", pi::digits(digits));
    ExitCode::SUCCESS
}

mod pi {
    const BASE: u64 = 1_000_000_000;
    const LIMB_DIGITS: usize = 9;
    /// Extra limbs (18 digits) that absorb the truncation error of every division.
    const GUARD_LIMBS: usize = 2;

    /// Pi to `decimals` places after the point: `digits(2)` is `"3.14"`.
    pub fn digits(decimals: usize) -> String {
        let fraction_limbs = decimals.div_ceil(LIMB_DIGITS) + GUARD_LIMBS;
        let mut pi = Fixed::zero(fraction_limbs);
        pi.add(&arctan_inverse(5, fraction_limbs).times(16));
        pi.sub(&arctan_inverse(239, fraction_limbs).times(4));

        let mut text = pi.0[0].to_string();
        if decimals > 0 {
            text.push('.');
            let fraction: String = pi.0[1..].iter().map(|limb| format!("{limb:09}")).collect();
            text.push_str(&fraction[..decimals]);
        }
        text
    }

    /// atan(1/x) = sum over k of (-1)^k / ((2k+1) x^(2k+1)), until the terms vanish.
    fn arctan_inverse(x: u64, fraction_limbs: usize) -> Fixed {
        let mut power = Fixed::one(fraction_limbs);
        power.divide(x);
        let mut sum = power.clone();
        let x_squared = x * x;
        for k in 1u64.. {
            power.divide(x_squared);
            if power.is_zero() {
                break;
            }
            let mut term = power.clone();
            term.divide(2 * k + 1);
            if k % 2 == 1 {
                sum.sub(&term);
            } else {
                sum.add(&term);
            }
        }
        sum
    }

    /// A non-negative fixed-point number: limb 0 is the integer part, the rest
    /// are base-10^9 fraction digits, most significant first.
    #[derive(Clone)]
    struct Fixed(Vec<u64>);

    impl Fixed {
        fn zero(fraction_limbs: usize) -> Self {
            Fixed(vec![0; fraction_limbs + 1])
        }

        fn one(fraction_limbs: usize) -> Self {
            let mut one = Self::zero(fraction_limbs);
            one.0[0] = 1;
            one
        }

        fn is_zero(&self) -> bool {
            self.0.iter().all(|&limb| limb == 0)
        }

        /// Divides by `divisor`, truncating.
        fn divide(&mut self, divisor: u64) {
            let mut remainder = 0u64;
            for limb in &mut self.0 {
                let value = remainder * BASE + *limb;
                *limb = value / divisor;
                remainder = value % divisor;
            }
        }

        fn times(mut self, factor: u64) -> Self {
            let mut carry = 0u64;
            for limb in self.0.iter_mut().rev() {
                let value = *limb * factor + carry;
                *limb = value % BASE;
                carry = value / BASE;
            }
            self.0[0] += carry * BASE;
            self
        }

        fn add(&mut self, other: &Fixed) {
            let mut carry = 0u64;
            for (limb, &add) in self.0.iter_mut().zip(&other.0).rev() {
                let value = *limb + add + carry;
                *limb = value % BASE;
                carry = value / BASE;
            }
            self.0[0] += carry * BASE;
        }

        /// Subtracts a smaller number.
        fn sub(&mut self, other: &Fixed) {
            let mut borrow = 0u64;
            for (limb, &sub) in self.0.iter_mut().zip(&other.0).rev() {
                let take = sub + borrow;
                if *limb >= take {
                    *limb -= take;
                    borrow = 0;
                } else {
                    *limb = *limb + BASE - take;
                    borrow = 1;
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::pi;

    const PI_100: &str = "3.\
        1415926535897932384626433832795028841971693993751058209749445923078164062862089986280348253421170679";

    #[test]
    fn first_hundred_digits() {
        assert_eq!(pi::digits(100), PI_100);
    }

    #[test]
    fn shorter_counts_are_prefixes() {
        assert_eq!(pi::digits(0), "3");
        assert_eq!(pi::digits(1), "3.1");
        assert_eq!(pi::digits(5), "3.14159");
        for n in [8, 9, 10, 17, 18, 19, 50, 99] {
            assert_eq!(pi::digits(n), PI_100[..n + 2], "{n} digits");
        }
    }

    /// Six nines from decimal place 762 (the Feynman point): a carry or
    /// truncation mistake would show here.
    #[test]
    fn feynman_point() {
        let digits = pi::digits(800);
        assert_eq!(&digits[2 + 761..2 + 767], "999999");
        assert_eq!(&digits[2 + 760..2 + 768], "49999998");
    }
}
