//! Randomness enters the core only through [`Entropy`]. The default source is a ChaCha12
//! CSPRNG seeded once from the operating system, so minting an ID never costs a syscall.

use rand_chacha::ChaCha12Rng;
use rand_core::{RngCore, SeedableRng};

/// A source of random bytes.
pub trait Entropy: Send {
    fn fill(&mut self, buf: &mut [u8]);

    /// The next eight bytes of the stream, little-endian: what `fill` of eight bytes
    /// gives. A source may answer it without the byte-copying path of `fill`.
    fn next_u64(&mut self) -> u64 {
        let mut b = [0u8; 8];
        self.fill(&mut b);
        u64::from_le_bytes(b)
    }
}

/// A ChaCha12 stream: seeded from a fixed value for tests, or from the OS for real use.
pub struct SeededEntropy(ChaCha12Rng);

impl SeededEntropy {
    /// Deterministic: the same seed gives the same IDs. For tests and test vectors.
    pub fn from_seed(seed: u64) -> Self {
        Self(ChaCha12Rng::seed_from_u64(seed))
    }

    /// Seeded once from the operating system's generator.
    #[cfg(feature = "std")]
    pub fn from_os() -> Result<Self, crate::error::IdError> {
        let mut seed = [0u8; 32];
        getrandom::fill(&mut seed).map_err(|e| crate::error::IdError::Seed(e.to_string()))?;
        Ok(Self(ChaCha12Rng::from_seed(seed)))
    }
}

impl std::fmt::Debug for SeededEntropy {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SeededEntropy(..)")
    }
}

impl Entropy for SeededEntropy {
    fn fill(&mut self, buf: &mut [u8]) {
        self.0.fill_bytes(buf);
    }

    fn next_u64(&mut self) -> u64 {
        // ChaCha's block stream hands out the same two words `fill_bytes` would copy.
        self.0.next_u64()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn same_seed_same_bytes() {
        let (mut a, mut b) = (SeededEntropy::from_seed(7), SeededEntropy::from_seed(7));
        let (mut x, mut y) = ([0u8; 16], [0u8; 16]);
        a.fill(&mut x);
        b.fill(&mut y);
        assert_eq!(x, y);
        a.fill(&mut x);
        assert_ne!(x, y);
    }

    #[test]
    fn next_u64_is_the_next_eight_bytes_of_fill() {
        // At every word offset of ChaCha's buffer, including the block boundary.
        for skip in 0..70 {
            let (mut a, mut b) = (SeededEntropy::from_seed(3), SeededEntropy::from_seed(3));
            let mut pad = vec![0u8; skip * 4];
            a.fill(&mut pad);
            b.fill(&mut pad);
            let mut x = [0u8; 8];
            a.fill(&mut x);
            assert_eq!(b.next_u64(), u64::from_le_bytes(x), "skip {skip}");
            let (mut x, mut y) = ([0u8; 4], [0u8; 4]);
            a.fill(&mut x);
            b.fill(&mut y);
            assert_eq!(x, y);
        }
    }

    #[cfg(feature = "std")]
    #[test]
    fn os_seeds_differ() {
        let (mut a, mut b) = (
            SeededEntropy::from_os().unwrap(),
            SeededEntropy::from_os().unwrap(),
        );
        let (mut x, mut y) = ([0u8; 16], [0u8; 16]);
        a.fill(&mut x);
        b.fill(&mut y);
        assert_ne!(x, y);
    }
}
