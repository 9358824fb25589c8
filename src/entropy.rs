//! Randomness enters the core only through [`Entropy`]. The default source is a ChaCha12
//! CSPRNG seeded once from the operating system, so minting an ID never costs a syscall.

#[cfg(any(test, target_arch = "wasm32"))]
use rand_core::block::BlockRng;
use rand_core::block::BlockRngCore;
use rand_core::{RngCore, SeedableRng};

/// A source of random bytes. An [`IdGenerator`](crate::IdGenerator) calls it with its
/// lock held, and threads waiting for that lock yield rather than sleep: a source should
/// answer from memory, not block.
pub trait Entropy: Send {
    /// Fills all of `buf` with the next random bytes of the stream.
    fn fill(&mut self, buf: &mut [u8]);

    /// The next eight bytes of the stream, little-endian: what `fill` of eight bytes
    /// gives. A source may answer it without the byte-copying path of `fill`.
    fn next_u64(&mut self) -> u64 {
        let mut b = [0u8; 8];
        self.fill(&mut b);
        u64::from_le_bytes(b)
    }
}

/// A secret 64-bit value for keying hash tables that hold client-chosen ids, different
/// on every call: std's per-process SipHash keys (read once per thread by std itself, no
/// system call here), stepped by std on every `RandomState`.
pub(crate) fn process_secret() -> u64 {
    use std::hash::BuildHasher;
    std::collections::hash_map::RandomState::new().hash_one(0u64)
}

/// A ChaCha12 stream: seeded from a fixed value for tests, or from the OS for real use.
/// The same stream on every target (the tests compare the two implementations).
pub struct SeededEntropy(Stream);

/// Natively, `rand_chacha`: it computes four blocks at once with SIMD, about a quarter of
/// the instructions per byte of [`ChaCha12Core`] (an ID draws 8 bytes).
#[cfg(not(target_arch = "wasm32"))]
type Stream = rand_chacha::ChaCha12Rng;
/// In WebAssembly, [`ChaCha12Core`]: the smaller code.
#[cfg(target_arch = "wasm32")]
type Stream = BlockRng<ChaCha12Core>;

/// ChaCha's block function with 12 rounds, a 64-bit block counter and stream 0, one
/// 64-byte block at a time: the WebAssembly build's stream. Written here rather than taken
/// from `rand_chacha` because that crate's four-blocks-at-once code is about 5 KB of the
/// WebAssembly package, which has a size budget; natively `rand_chacha` is both the
/// stream and this code's test oracle.
#[derive(Clone)]
#[cfg_attr(not(target_arch = "wasm32"), allow(dead_code))]
pub struct ChaCha12Core {
    key: [u32; 8],
    counter: u64,
}

impl BlockRngCore for ChaCha12Core {
    type Item = u32;
    type Results = [u32; 16];

    fn generate(&mut self, out: &mut [u32; 16]) {
        let mut state = [0u32; 16];
        // "expand 32-byte k", the key, the block counter, stream 0.
        state[..4].copy_from_slice(&[0x6170_7865, 0x3320_646e, 0x7962_2d32, 0x6b20_6574]);
        state[4..12].copy_from_slice(&self.key);
        state[12] = self.counter as u32;
        state[13] = (self.counter >> 32) as u32;
        let mut x = state;
        for _ in 0..6 {
            quarter_round(&mut x, 0, 4, 8, 12);
            quarter_round(&mut x, 1, 5, 9, 13);
            quarter_round(&mut x, 2, 6, 10, 14);
            quarter_round(&mut x, 3, 7, 11, 15);
            quarter_round(&mut x, 0, 5, 10, 15);
            quarter_round(&mut x, 1, 6, 11, 12);
            quarter_round(&mut x, 2, 7, 8, 13);
            quarter_round(&mut x, 3, 4, 9, 14);
        }
        for (o, (a, b)) in out.iter_mut().zip(x.iter().zip(state.iter())) {
            *o = a.wrapping_add(*b);
        }
        self.counter = self.counter.wrapping_add(1);
    }
}

#[inline(always)]
fn quarter_round(x: &mut [u32; 16], a: usize, b: usize, c: usize, d: usize) {
    x[a] = x[a].wrapping_add(x[b]);
    x[d] = (x[d] ^ x[a]).rotate_left(16);
    x[c] = x[c].wrapping_add(x[d]);
    x[b] = (x[b] ^ x[c]).rotate_left(12);
    x[a] = x[a].wrapping_add(x[b]);
    x[d] = (x[d] ^ x[a]).rotate_left(8);
    x[c] = x[c].wrapping_add(x[d]);
    x[b] = (x[b] ^ x[c]).rotate_left(7);
}

impl SeedableRng for ChaCha12Core {
    type Seed = [u8; 32];

    fn from_seed(seed: [u8; 32]) -> Self {
        let mut key = [0u32; 8];
        for (k, c) in key.iter_mut().zip(seed.chunks_exact(4)) {
            *k = u32::from_le_bytes([c[0], c[1], c[2], c[3]]);
        }
        Self { key, counter: 0 }
    }
}

impl SeededEntropy {
    /// Deterministic: the same seed gives the same IDs. For tests and test vectors.
    pub fn from_seed(seed: u64) -> Self {
        Self(Stream::seed_from_u64(seed))
    }

    /// Seeded once from the operating system's generator.
    #[cfg(feature = "std")]
    pub fn from_os() -> Result<Self, crate::error::IdError> {
        let mut seed = [0u8; 32];
        getrandom::fill(&mut seed).map_err(|e| crate::error::IdError::Seed(e.to_string()))?;
        Ok(Self(Stream::from_seed(seed)))
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
    use proptest::prelude::*;
    // Named, so they win over the other rand_core version proptest's prelude brings.
    use rand_core::{RngCore, SeedableRng};

    #[derive(Debug, Clone)]
    enum Draw {
        Fill(usize),
        U64,
        U32,
    }

    proptest! {
        /// Any mix of reads gives what `rand_chacha::ChaCha12Rng` gives: the same stream,
        /// and the same handling of partly used words.
        #[test]
        fn the_stream_is_rand_chachas(
            seed in any::<u64>(),
            draws in prop::collection::vec(
                prop_oneof![(0usize..200).prop_map(Draw::Fill), Just(Draw::U64), Just(Draw::U32)],
                0..200,
            ),
        ) {
            let mut ours = BlockRng::new(ChaCha12Core::seed_from_u64(seed));
            let mut oracle = rand_chacha::ChaCha12Rng::seed_from_u64(seed);
            for d in draws {
                match d {
                    Draw::Fill(n) => {
                        let (mut a, mut b) = (vec![0u8; n], vec![0u8; n]);
                        ours.fill_bytes(&mut a);
                        oracle.fill_bytes(&mut b);
                        prop_assert_eq!(a, b);
                    }
                    Draw::U64 => prop_assert_eq!(ours.next_u64(), oracle.next_u64()),
                    Draw::U32 => prop_assert_eq!(ours.next_u32(), oracle.next_u32()),
                }
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
