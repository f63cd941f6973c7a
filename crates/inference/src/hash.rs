//! How a token becomes a sparse-vector index: MurmurHash3 (x86, 32-bit, seed 0) of the token's UTF-8 bytes,
//! read as a signed `i32`, absolute value. So indices lie in `0..=2^31` (`i32::MIN` maps to `2^31`).

/// MurmurHash3 x86 32-bit (Austin Appleby's published algorithm).
pub fn murmur3_32(data: &[u8], seed: u32) -> u32 {
    const C1: u32 = 0xcc9e_2d51;
    const C2: u32 = 0x1b87_3593;

    let mut h = seed;
    let mut blocks = data.chunks_exact(4);
    for block in &mut blocks {
        let k = u32::from_le_bytes([block[0], block[1], block[2], block[3]]);
        h ^= mix_k(k, C1, C2);
        h = h.rotate_left(13).wrapping_mul(5).wrapping_add(0xe654_6b64);
    }
    let tail = blocks.remainder();
    if !tail.is_empty() {
        let mut k = 0u32;
        for (i, byte) in tail.iter().enumerate() {
            k |= u32::from(*byte) << (8 * i);
        }
        h ^= mix_k(k, C1, C2);
    }
    // The length enters modulo 2^32, as the algorithm defines it.
    h ^= data.len() as u32;
    fmix32(h)
}

fn mix_k(k: u32, c1: u32, c2: u32) -> u32 {
    k.wrapping_mul(c1).rotate_left(15).wrapping_mul(c2)
}

fn fmix32(mut h: u32) -> u32 {
    h ^= h >> 16;
    h = h.wrapping_mul(0x85eb_ca6b);
    h ^= h >> 13;
    h = h.wrapping_mul(0xc2b2_ae35);
    h ^= h >> 16;
    h
}

/// The sparse index of a (fully processed) token.
pub fn token_index(token: &str) -> u32 {
    (murmur3_32(token.as_bytes(), 0) as i32).unsigned_abs()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn murmur3_known_vectors() {
        // Published test vectors of MurmurHash3_x86_32.
        assert_eq!(murmur3_32(b"", 0), 0);
        assert_eq!(murmur3_32(b"", 1), 0x514e_28b7);
        assert_eq!(murmur3_32(b"", 0xffff_ffff), 0x81f1_6f39);
        assert_eq!(murmur3_32(b"\x00\x00\x00\x00", 0), 0x2362_f9de);
        assert_eq!(murmur3_32(b"aaaa", 0x9747_b28c), 0x5a97_808a);
        assert_eq!(murmur3_32(b"abc", 0), 0xb3dd_93fa);
        assert_eq!(murmur3_32(b"Hello, world!", 0x9747_b28c), 0x2488_4cba);
        assert_eq!(murmur3_32(b"The quick brown fox jumps over the lazy dog", 0x9747_b28c), 0x2fa8_26cd);
    }

    #[test]
    fn token_index_is_abs_of_signed_hash() {
        // Values read from Qdrant's BM25 output.
        assert_eq!(token_index("hello"), 613_153_351);
        // murmur3("world") = 4220927227, i.e. -74040069 as i32.
        assert_eq!(murmur3_32(b"world", 0), 4_220_927_227);
        assert_eq!(token_index("world"), 74_040_069);
        assert_eq!(token_index("run"), 243_905_464);
        assert_eq!(token_index("ran"), 567_658_162);
    }
}
