//! Check-digit algorithms used by utilities' customer account numbers.
//! The last character of the account number is the check digit.

use serde::{Deserialize, Serialize};

/// The check digit an account number ends with.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum CheckDigit {
    /// Luhn (ISO/IEC 7812-1): doubling every second digit from the right.
    Luhn,
    /// Weighted modulus 11 with weights 2,3,4,5,6,7 repeating from the
    /// right; remainder 0 gives check digit 0, remainder 1 is invalid
    /// (such numbers are never issued), otherwise 11 - remainder.
    Mod11,
}

impl CheckDigit {
    pub fn name(&self) -> &'static str {
        match self {
            CheckDigit::Luhn => "luhn",
            CheckDigit::Mod11 => "mod11",
        }
    }

    pub fn from_name(name: &str) -> Option<CheckDigit> {
        match name {
            "luhn" => Some(CheckDigit::Luhn),
            "mod11" => Some(CheckDigit::Mod11),
            _ => None,
        }
    }

    /// True when `number` (all ASCII digits, check digit last) is valid.
    pub fn verify(&self, number: &str) -> bool {
        let Some((body, check)) = split_check(number) else {
            return false;
        };
        self.compute(body) == Some(check)
    }

    /// The check digit for `body` (ASCII digits), or None when `body` is not
    /// all digits or (mod11) has no valid check digit.
    pub fn compute(&self, body: &str) -> Option<u8> {
        if body.is_empty() || !body.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        let digits = body.bytes().rev().map(|b| u32::from(b - b'0'));
        match self {
            CheckDigit::Luhn => {
                let sum: u32 = digits
                    .enumerate()
                    .map(|(i, d)| {
                        if i % 2 == 0 {
                            let x = d * 2;
                            if x > 9 {
                                x - 9
                            } else {
                                x
                            }
                        } else {
                            d
                        }
                    })
                    .sum();
                Some(((10 - sum % 10) % 10) as u8)
            }
            CheckDigit::Mod11 => {
                let sum: u32 = digits
                    .enumerate()
                    .map(|(i, d)| d * (2 + (i as u32 % 6)))
                    .sum();
                match sum % 11 {
                    0 => Some(0),
                    1 => None,
                    r => Some((11 - r) as u8),
                }
            }
        }
    }
}

fn split_check(number: &str) -> Option<(&str, u8)> {
    let last = *number.as_bytes().last()?;
    if !last.is_ascii_digit() || number.len() < 2 {
        return None;
    }
    Some((&number[..number.len() - 1], last - b'0'))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn luhn_known_values() {
        assert!(CheckDigit::Luhn.verify("79927398713"));
        assert!(!CheckDigit::Luhn.verify("79927398710"));
        assert!(CheckDigit::Luhn.verify("4111111111111111"));
        assert_eq!(CheckDigit::Luhn.compute("7992739871"), Some(3));
    }

    #[test]
    fn mod11_known_values() {
        // Weights 2,3,4,5,6,7,2,3,4 from the right over 030640615:
        // 10+3+24+0+24+42+0+9+0 = 112; 112 mod 11 = 2; 11 - 2 = 9.
        assert_eq!(CheckDigit::Mod11.compute("030640615"), Some(9));
        assert!(CheckDigit::Mod11.verify("0306406159"));
        assert!(!CheckDigit::Mod11.verify("0306406152"));
        // Remainder 1 has no check digit: 6*2 + ... chosen so sum mod 11 = 1.
        // "1": 1*2 = 2 -> r 2; "5": 10 -> r 10 -> 1; "6": 12 -> r 1 -> none.
        assert_eq!(CheckDigit::Mod11.compute("6"), None);
        assert_eq!(CheckDigit::Mod11.compute("5"), Some(1));
    }

    #[test]
    fn refuses_non_digits_and_short_numbers() {
        assert!(!CheckDigit::Luhn.verify("7"));
        assert!(!CheckDigit::Luhn.verify("12a4"));
        assert!(!CheckDigit::Mod11.verify(""));
    }

    #[test]
    fn a_single_digit_error_is_caught() {
        let good = "1234567897";
        assert!(CheckDigit::Luhn.verify(good));
        for i in 0..good.len() - 1 {
            let mut b = good.as_bytes().to_vec();
            b[i] = if b[i] == b'9' { b'0' } else { b[i] + 1 };
            assert!(!CheckDigit::Luhn.verify(std::str::from_utf8(&b).unwrap()));
        }
    }
}
