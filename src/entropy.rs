//! Randomness enters the core only through [`Entropy`]. The default source is a ChaCha12
//! CSPRNG seeded once from the operating system, so minting an ID never costs a syscall.

/// A source of random bytes.
pub trait Entropy: Send {
    fn fill(&mut self, buf: &mut [u8]);
}

/// A ChaCha12 stream: seeded from a fixed value for tests, or from the OS for real use.
///
/// The same stream as `rand_chacha::ChaCha12Rng` (key = seed, 64-bit block counter from 0,
/// stream 0; each 4 bytes asked for, and a shorter tail, take the next output word), in a
/// plain one-block form: a fraction of the size in the wasm build, where the crate's
/// four-block vector code is inlined whole. The tests check it against `rand_chacha`.
pub struct SeededEntropy {
    key: [u32; 8],
    counter: u64,
    block: [u32; 16],
    index: usize,
}

impl SeededEntropy {
    fn with_key(seed: [u8; 32]) -> Self {
        let mut key = [0u32; 8];
        for (k, b) in key.iter_mut().zip(seed.chunks_exact(4)) {
            *k = u32::from_le_bytes([b[0], b[1], b[2], b[3]]);
        }
        Self {
            key,
            counter: 0,
            block: [0; 16],
            index: 16,
        }
    }

    /// Deterministic: the same seed gives the same IDs. For tests and test vectors.
    pub fn from_seed(seed: u64) -> Self {
        // rand_core's `seed_from_u64`: PCG32 words, little-endian.
        let mut state = seed;
        let mut bytes = [0u8; 32];
        for chunk in bytes.chunks_exact_mut(4) {
            state = state
                .wrapping_mul(6_364_136_223_846_793_005)
                .wrapping_add(11_634_580_027_462_260_723);
            let xorshifted = (((state >> 18) ^ state) >> 27) as u32;
            let x = xorshifted.rotate_right((state >> 59) as u32);
            chunk.copy_from_slice(&x.to_le_bytes());
        }
        Self::with_key(bytes)
    }

    /// Seeded once from the operating system's generator.
    #[cfg(feature = "std")]
    pub fn from_os() -> Result<Self, crate::error::IdError> {
        let mut seed = [0u8; 32];
        getrandom::fill(&mut seed).map_err(|e| crate::error::IdError::Seed(e.to_string()))?;
        Ok(Self::with_key(seed))
    }

    /// The next 64-byte ChaCha12 block.
    fn refill(&mut self) {
        let mut input = [0u32; 16];
        input[..4].copy_from_slice(&[0x6170_7865, 0x3320_646e, 0x7962_2d32, 0x6b20_6574]);
        input[4..12].copy_from_slice(&self.key);
        input[12] = self.counter as u32;
        input[13] = (self.counter >> 32) as u32;
        let mut x = input;
        for _ in 0..6 {
            for [a, b, c, d] in [
                [0, 4, 8, 12],
                [1, 5, 9, 13],
                [2, 6, 10, 14],
                [3, 7, 11, 15],
                [0, 5, 10, 15],
                [1, 6, 11, 12],
                [2, 7, 8, 13],
                [3, 4, 9, 14],
            ] {
                x[a] = x[a].wrapping_add(x[b]);
                x[d] = (x[d] ^ x[a]).rotate_left(16);
                x[c] = x[c].wrapping_add(x[d]);
                x[b] = (x[b] ^ x[c]).rotate_left(12);
                x[a] = x[a].wrapping_add(x[b]);
                x[d] = (x[d] ^ x[a]).rotate_left(8);
                x[c] = x[c].wrapping_add(x[d]);
                x[b] = (x[b] ^ x[c]).rotate_left(7);
            }
        }
        for (o, (v, i)) in self.block.iter_mut().zip(x.iter().zip(input.iter())) {
            *o = v.wrapping_add(*i);
        }
        self.counter = self.counter.wrapping_add(1);
        self.index = 0;
    }
}

impl std::fmt::Debug for SeededEntropy {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SeededEntropy(..)")
    }
}

impl Entropy for SeededEntropy {
    fn fill(&mut self, buf: &mut [u8]) {
        for chunk in buf.chunks_mut(4) {
            if self.index >= 16 {
                self.refill();
            }
            let word = self.block[self.index].to_le_bytes();
            chunk.copy_from_slice(&word[..chunk.len()]);
            self.index += 1;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand_chacha::ChaCha12Rng;
    use rand_core::{RngCore, SeedableRng};

    #[test]
    fn same_stream_as_rand_chacha() {
        for seed in [0u64, 1, 7, 42, u64::MAX, 0x1234_5678_9abc_def0] {
            let mut ours = SeededEntropy::from_seed(seed);
            let mut theirs = ChaCha12Rng::seed_from_u64(seed);
            let mut key = [0u8; 32];
            theirs.clone().fill_bytes(&mut key);
            let mut ours_key = SeededEntropy::with_key(key);
            let mut theirs_key = ChaCha12Rng::from_seed(key);
            for n in (0..300).chain([1, 3, 5, 1000, 4097, 2, 7, 33, 63, 65, 255, 257]) {
                let len = (n * 7 + (seed % 301) as usize) % 301;
                let (mut a, mut b) = (vec![0u8; len], vec![0u8; len]);
                ours.fill(&mut a);
                theirs.fill_bytes(&mut b);
                assert_eq!(a, b, "seed {seed}, {len} bytes");
                ours_key.fill(&mut a);
                theirs_key.fill_bytes(&mut b);
                assert_eq!(a, b, "key of seed {seed}, {len} bytes");
            }
        }
    }

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
