//! Randomness for identifiers, secrets and jitter, from the operating system's CSPRNG via `ring`
//! (already the TLS provider, so no extra dependency).

use ring::rand::{SecureRandom, SystemRandom};

fn fill(buffer: &mut [u8]) {
    // SystemRandom only fails when the OS has no entropy source at all, which no test can survive.
    SystemRandom::new().fill(buffer).expect("the operating system's random number generator is unavailable");
}

/// A random version-4 GUID in Graph's lowercase form.
pub(crate) fn guid() -> String {
    let mut b = [0u8; 16];
    fill(&mut b);
    b[6] = (b[6] & 0x0f) | 0x40;
    b[8] = (b[8] & 0x3f) | 0x80;
    format!(
        "{:02x}{:02x}{:02x}{:02x}-{:02x}{:02x}-{:02x}{:02x}-{:02x}{:02x}-{:02x}{:02x}{:02x}{:02x}{:02x}{:02x}",
        b[0], b[1], b[2], b[3], b[4], b[5], b[6], b[7], b[8], b[9], b[10], b[11], b[12], b[13], b[14], b[15]
    )
}

/// `len` characters drawn uniformly from `alphabet` (rejection sampling, no modulo bias).
pub(crate) fn string_from(alphabet: &[u8], len: usize) -> String {
    assert!(!alphabet.is_empty() && alphabet.len() <= 256);
    let limit = 256 - (256 % alphabet.len());
    let mut out = String::with_capacity(len);
    let mut buffer = [0u8; 64];
    while out.len() < len {
        fill(&mut buffer);
        for &byte in &buffer {
            if (byte as usize) < limit && out.len() < len {
                out.push(alphabet[byte as usize % alphabet.len()] as char);
            }
        }
    }
    out
}

pub(crate) const ALPHANUMERIC: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
pub(crate) const BASE64URL: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

/// A uniformly distributed value in `[0, bound)`; `bound == 0` gives 0.
pub(crate) fn below(bound: u64) -> u64 {
    if bound == 0 {
        return 0;
    }
    let mut b = [0u8; 8];
    fill(&mut b);
    // The modulo bias is negligible for the small bounds used here (jitter in milliseconds).
    u64::from_le_bytes(b) % bound
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn guids_are_version_4_and_distinct() {
        let a = guid();
        let b = guid();
        assert_ne!(a, b);
        assert_eq!(a.len(), 36);
        assert_eq!(&a[14..15], "4");
        assert!(matches!(&a[19..20], "8" | "9" | "a" | "b"));
    }

    #[test]
    fn strings_use_only_the_alphabet() {
        let s = string_from(b"ab", 100);
        assert_eq!(s.len(), 100);
        assert!(s.chars().all(|c| c == 'a' || c == 'b'));
    }
}
