//! Distance functions.
//!
//! Internally every distance is a *score where larger is better* so that the index and the
//! top-k merge never branch on the metric: Cosine and Dot use the dot product (Cosine vectors
//! are normalised on insert), Euclid uses `-(L2²)` and Manhattan `-L1`. [`Distance::postprocess`]
//! turns an internal score into what Qdrant reports (a distance for Euclid and Manhattan).

use serde::{Deserialize, Serialize};

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Distance {
    Cosine,
    Euclid,
    Dot,
    Manhattan,
}

impl Distance {
    /// Normalise in place where the metric needs it (Cosine); a zero vector stays zero.
    pub fn preprocess(&self, v: &mut [f32]) {
        if *self == Distance::Cosine {
            let norm = dot(v, v).sqrt();
            if norm > f32::EPSILON {
                v.iter_mut().for_each(|x| *x /= norm);
            }
        }
    }

    /// Internal score, larger is better. Both vectors must already be preprocessed.
    #[inline]
    pub fn score(&self, a: &[f32], b: &[f32]) -> f32 {
        match self {
            Distance::Cosine | Distance::Dot => dot(a, b),
            Distance::Euclid => -l2_squared(a, b),
            Distance::Manhattan => -l1(a, b),
        }
    }

    /// Internal score -> the score Qdrant returns to users.
    #[inline]
    pub fn postprocess(&self, score: f32) -> f32 {
        match self {
            Distance::Cosine | Distance::Dot => score,
            Distance::Euclid => (-score).max(0.0).sqrt(),
            Distance::Manhattan => -score,
        }
    }

    /// User-facing threshold -> internal threshold (inverse of [`Distance::postprocess`]).
    pub fn preprocess_threshold(&self, threshold: f32) -> f32 {
        match self {
            Distance::Cosine | Distance::Dot => threshold,
            // No distance is negative: a negative threshold keeps nothing.
            Distance::Euclid if threshold < 0.0 => f32::INFINITY,
            Distance::Euclid => -(threshold * threshold),
            Distance::Manhattan => -threshold,
        }
    }

    /// Whether users see larger scores as better (false for the two distances).
    pub fn higher_is_better(&self) -> bool {
        matches!(self, Distance::Cosine | Distance::Dot)
    }
}

/// Dot product, dispatched once to the fastest kernel this CPU supports.
#[inline]
pub fn dot(a: &[f32], b: &[f32]) -> f32 {
    let k = kernels();
    // SAFETY: `kernels()` only hands out kernels whose CPU features were detected at runtime.
    unsafe { (k.dot)(a, b) }
}

/// Squared Euclidean distance, dispatched like [`dot`].
#[inline]
pub fn l2_squared(a: &[f32], b: &[f32]) -> f32 {
    let k = kernels();
    // SAFETY: see `dot`.
    unsafe { (k.l2)(a, b) }
}

/// Manhattan (L1) distance, dispatched like [`dot`].
#[inline]
pub fn l1(a: &[f32], b: &[f32]) -> f32 {
    let k = kernels();
    // SAFETY: see `dot`.
    unsafe { (k.l1)(a, b) }
}

/// Name of the SIMD kernel family in use ("avx512f", "avx2+fma", "neon" or "scalar").
pub fn simd_level() -> &'static str {
    kernels().name
}

/// The internal score function of one [`Distance`], resolved once so that hot loops (the HNSW
/// graph) pay neither the metric `match` nor the dispatch check per call: one indirect call.
#[derive(Clone, Copy)]
pub struct Scorer {
    f: KernelFn,
}

impl Scorer {
    /// Internal score (larger is better), same value as [`Distance::score`].
    #[inline(always)]
    pub fn score(&self, a: &[f32], b: &[f32]) -> f32 {
        // SAFETY: built only from `kernels()`, whose entries are valid on this CPU.
        unsafe { (self.f)(a, b) }
    }
}

impl std::fmt::Debug for Scorer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Scorer")
    }
}

impl Distance {
    /// Resolved score function for this metric (see [`Scorer`]).
    pub fn scorer(&self) -> Scorer {
        let k = kernels();
        let f = match self {
            Distance::Cosine | Distance::Dot => k.dot,
            Distance::Euclid => k.neg_l2,
            Distance::Manhattan => k.neg_l1,
        };
        Scorer { f }
    }
}

/// A kernel: any two slices (the shorter length is used). `unsafe` only because SIMD variants
/// require their CPU features; the table below never holds one the CPU lacks.
type KernelFn = unsafe fn(&[f32], &[f32]) -> f32;

struct Kernels {
    name: &'static str,
    dot: KernelFn,
    l2: KernelFn,
    l1: KernelFn,
    neg_l2: KernelFn,
    neg_l1: KernelFn,
}

static KERNELS: std::sync::OnceLock<Kernels> = std::sync::OnceLock::new();

#[inline]
fn kernels() -> &'static Kernels {
    KERNELS.get_or_init(detect)
}

fn scalar_kernels() -> Kernels {
    unsafe fn neg_l2(a: &[f32], b: &[f32]) -> f32 {
        -l2_squared_scalar(a, b)
    }
    unsafe fn neg_l1(a: &[f32], b: &[f32]) -> f32 {
        -l1_scalar(a, b)
    }
    unsafe fn d(a: &[f32], b: &[f32]) -> f32 {
        dot_scalar(a, b)
    }
    unsafe fn l2(a: &[f32], b: &[f32]) -> f32 {
        l2_squared_scalar(a, b)
    }
    unsafe fn m(a: &[f32], b: &[f32]) -> f32 {
        l1_scalar(a, b)
    }
    Kernels { name: "scalar", dot: d, l2, l1: m, neg_l2, neg_l1 }
}

/// Environment variable that caps the kernel family (`scalar`, `avx2`; for benchmarks and for
/// comparing results across machines). Unset or unknown: the best the CPU offers.
pub const SIMD_ENV: &str = "QDRANT_SIMD";

fn detect() -> Kernels {
    let cap = std::env::var(SIMD_ENV).unwrap_or_default();
    if cap == "scalar" {
        return scalar_kernels();
    }
    #[cfg(target_arch = "x86_64")]
    {
        if cap != "avx2" && std::is_x86_feature_detected!("avx512f") {
            return Kernels {
                name: "avx512f",
                dot: avx512::dot,
                l2: avx512::l2,
                l1: avx512::l1,
                neg_l2: avx512::neg_l2,
                neg_l1: avx512::neg_l1,
            };
        }
        if std::is_x86_feature_detected!("avx2") && std::is_x86_feature_detected!("fma") {
            return Kernels {
                name: "avx2+fma",
                dot: avx2::dot,
                l2: avx2::l2,
                l1: avx2::l1,
                neg_l2: avx2::neg_l2,
                neg_l1: avx2::neg_l1,
            };
        }
    }
    #[cfg(target_arch = "aarch64")]
    {
        // NEON is part of the aarch64 baseline.
        return Kernels {
            name: "neon",
            dot: neon::dot,
            l2: neon::l2,
            l1: neon::l1,
            neg_l2: neon::neg_l2,
            neg_l1: neon::neg_l1,
        };
    }
    #[allow(unreachable_code)]
    scalar_kernels()
}

/// Scalar dot product (fallback and reference). Eight independent accumulators let the
/// compiler vectorise the loop with the baseline instruction set.
#[inline]
pub fn dot_scalar(a: &[f32], b: &[f32]) -> f32 {
    let n = a.len().min(b.len());
    let (a, b) = (&a[..n], &b[..n]);
    let mut acc = [0.0f32; 8];
    let chunks = n / 8;
    for i in 0..chunks {
        let o = i * 8;
        for j in 0..8 {
            acc[j] += a[o + j] * b[o + j];
        }
    }
    let mut s: f32 = acc.iter().sum();
    for i in chunks * 8..n {
        s += a[i] * b[i];
    }
    s
}

/// Scalar squared Euclidean distance (fallback and reference).
#[inline]
pub fn l2_squared_scalar(a: &[f32], b: &[f32]) -> f32 {
    let n = a.len().min(b.len());
    let (a, b) = (&a[..n], &b[..n]);
    let mut acc = [0.0f32; 8];
    let chunks = n / 8;
    for i in 0..chunks {
        let o = i * 8;
        for j in 0..8 {
            let d = a[o + j] - b[o + j];
            acc[j] += d * d;
        }
    }
    let mut s: f32 = acc.iter().sum();
    for i in chunks * 8..n {
        let d = a[i] - b[i];
        s += d * d;
    }
    s
}

/// Scalar Manhattan (L1) distance (fallback and reference).
#[inline]
pub fn l1_scalar(a: &[f32], b: &[f32]) -> f32 {
    let n = a.len().min(b.len());
    let (a, b) = (&a[..n], &b[..n]);
    let mut acc = [0.0f32; 8];
    let chunks = n / 8;
    for i in 0..chunks {
        let o = i * 8;
        for j in 0..8 {
            acc[j] += (a[o + j] - b[o + j]).abs();
        }
    }
    let mut s: f32 = acc.iter().sum();
    for i in chunks * 8..n {
        s += (a[i] - b[i]).abs();
    }
    s
}

/// AVX2 + FMA kernels: four 8-lane accumulators (32 floats per step) to hide FMA latency,
/// then 8-wide steps, then a scalar tail.
#[cfg(target_arch = "x86_64")]
mod avx2 {
    use std::arch::x86_64::*;

    #[inline]
    #[target_feature(enable = "avx2,fma")]
    unsafe fn hsum(v: __m256) -> f32 {
        let lo = _mm256_castps256_ps128(v);
        let hi = _mm256_extractf128_ps(v, 1);
        let s = _mm_add_ps(lo, hi);
        let sh = _mm_movehdup_ps(s);
        let s = _mm_add_ps(s, sh);
        let sh = _mm_movehl_ps(sh, s);
        _mm_cvtss_f32(_mm_add_ss(s, sh))
    }

    /// Generates one kernel: `|acc, x, y| step` folds one 8-lane block into an accumulator
    /// and `|x, y| tail` handles one leftover element. Expanded inline (no closures) so every
    /// step compiles with the enclosing function's target features.
    macro_rules! kernel {
        ($name:ident, |$acc:ident, $x:ident, $y:ident| $step:expr, |$p:ident, $q:ident| $tail:expr) => {
            #[target_feature(enable = "avx2,fma")]
            pub unsafe fn $name(a: &[f32], b: &[f32]) -> f32 {
                let n = a.len().min(b.len());
                let pa = a.as_ptr();
                let pb = b.as_ptr();
                let mut acc0 = _mm256_setzero_ps();
                let mut acc1 = _mm256_setzero_ps();
                let mut acc2 = _mm256_setzero_ps();
                let mut acc3 = _mm256_setzero_ps();
                let mut i = 0usize;
                // SAFETY (all loads): i + 8 <= n on every load, and n is within both slices.
                while i + 32 <= n {
                    acc0 = {
                        let $acc = acc0;
                        let $x = _mm256_loadu_ps(pa.add(i));
                        let $y = _mm256_loadu_ps(pb.add(i));
                        $step
                    };
                    acc1 = {
                        let $acc = acc1;
                        let $x = _mm256_loadu_ps(pa.add(i + 8));
                        let $y = _mm256_loadu_ps(pb.add(i + 8));
                        $step
                    };
                    acc2 = {
                        let $acc = acc2;
                        let $x = _mm256_loadu_ps(pa.add(i + 16));
                        let $y = _mm256_loadu_ps(pb.add(i + 16));
                        $step
                    };
                    acc3 = {
                        let $acc = acc3;
                        let $x = _mm256_loadu_ps(pa.add(i + 24));
                        let $y = _mm256_loadu_ps(pb.add(i + 24));
                        $step
                    };
                    i += 32;
                }
                while i + 8 <= n {
                    acc0 = {
                        let $acc = acc0;
                        let $x = _mm256_loadu_ps(pa.add(i));
                        let $y = _mm256_loadu_ps(pb.add(i));
                        $step
                    };
                    i += 8;
                }
                let acc = _mm256_add_ps(_mm256_add_ps(acc0, acc1), _mm256_add_ps(acc2, acc3));
                let mut s = hsum(acc);
                while i < n {
                    let $p = *pa.add(i);
                    let $q = *pb.add(i);
                    s += $tail;
                    i += 1;
                }
                s
            }
        };
    }

    kernel!(dot, |acc, x, y| _mm256_fmadd_ps(x, y, acc), |x, y| x * y);
    kernel!(
        l2,
        |acc, x, y| {
            let d = _mm256_sub_ps(x, y);
            _mm256_fmadd_ps(d, d, acc)
        },
        |x, y| (x - y) * (x - y)
    );
    // |d| by clearing the sign bit.
    kernel!(l1, |acc, x, y| _mm256_add_ps(acc, _mm256_andnot_ps(_mm256_set1_ps(-0.0), _mm256_sub_ps(x, y))), |x, y| (x
        - y)
        .abs());

    #[target_feature(enable = "avx2,fma")]
    pub unsafe fn neg_l2(a: &[f32], b: &[f32]) -> f32 {
        -l2(a, b)
    }

    #[target_feature(enable = "avx2,fma")]
    pub unsafe fn neg_l1(a: &[f32], b: &[f32]) -> f32 {
        -l1(a, b)
    }
}

/// AVX-512F kernels: four 16-lane accumulators (64 floats per step), then 16-wide steps, then
/// one masked load for the tail (no scalar loop).
#[cfg(target_arch = "x86_64")]
mod avx512 {
    use std::arch::x86_64::*;

    /// Generates one kernel from `|acc, x, y| step`, which folds one 16-lane block into an
    /// accumulator (zero lanes must add nothing: masked tail lanes load as 0.0).
    macro_rules! kernel {
        ($name:ident, |$acc:ident, $x:ident, $y:ident| $step:expr) => {
            #[target_feature(enable = "avx512f")]
            pub unsafe fn $name(a: &[f32], b: &[f32]) -> f32 {
                let n = a.len().min(b.len());
                let pa = a.as_ptr();
                let pb = b.as_ptr();
                let mut acc0 = _mm512_setzero_ps();
                let mut acc1 = _mm512_setzero_ps();
                let mut acc2 = _mm512_setzero_ps();
                let mut acc3 = _mm512_setzero_ps();
                let mut i = 0usize;
                // SAFETY (all loads): i + 16 <= n on every full load, and n is within both
                // slices; the masked load touches only the `n - i` remaining elements.
                while i + 64 <= n {
                    acc0 = {
                        let $acc = acc0;
                        let $x = _mm512_loadu_ps(pa.add(i));
                        let $y = _mm512_loadu_ps(pb.add(i));
                        $step
                    };
                    acc1 = {
                        let $acc = acc1;
                        let $x = _mm512_loadu_ps(pa.add(i + 16));
                        let $y = _mm512_loadu_ps(pb.add(i + 16));
                        $step
                    };
                    acc2 = {
                        let $acc = acc2;
                        let $x = _mm512_loadu_ps(pa.add(i + 32));
                        let $y = _mm512_loadu_ps(pb.add(i + 32));
                        $step
                    };
                    acc3 = {
                        let $acc = acc3;
                        let $x = _mm512_loadu_ps(pa.add(i + 48));
                        let $y = _mm512_loadu_ps(pb.add(i + 48));
                        $step
                    };
                    i += 64;
                }
                while i + 16 <= n {
                    acc0 = {
                        let $acc = acc0;
                        let $x = _mm512_loadu_ps(pa.add(i));
                        let $y = _mm512_loadu_ps(pb.add(i));
                        $step
                    };
                    i += 16;
                }
                if i < n {
                    let mask: __mmask16 = (1u32 << (n - i)) as u16 - 1;
                    acc1 = {
                        let $acc = acc1;
                        let $x = _mm512_maskz_loadu_ps(mask, pa.add(i));
                        let $y = _mm512_maskz_loadu_ps(mask, pb.add(i));
                        $step
                    };
                }
                _mm512_reduce_add_ps(_mm512_add_ps(_mm512_add_ps(acc0, acc1), _mm512_add_ps(acc2, acc3)))
            }
        };
    }

    kernel!(dot, |acc, x, y| _mm512_fmadd_ps(x, y, acc));
    kernel!(l2, |acc, x, y| {
        let d = _mm512_sub_ps(x, y);
        _mm512_fmadd_ps(d, d, acc)
    });
    kernel!(l1, |acc, x, y| _mm512_add_ps(acc, _mm512_abs_ps(_mm512_sub_ps(x, y))));

    #[target_feature(enable = "avx512f")]
    pub unsafe fn neg_l2(a: &[f32], b: &[f32]) -> f32 {
        -l2(a, b)
    }

    #[target_feature(enable = "avx512f")]
    pub unsafe fn neg_l1(a: &[f32], b: &[f32]) -> f32 {
        -l1(a, b)
    }
}

/// NEON kernels (baseline on aarch64): four 4-lane accumulators, then 4-wide steps, scalar tail.
#[cfg(target_arch = "aarch64")]
mod neon {
    use std::arch::aarch64::*;

    macro_rules! kernel {
        ($name:ident, |$acc:ident, $x:ident, $y:ident| $step:expr, |$p:ident, $q:ident| $tail:expr) => {
            pub unsafe fn $name(a: &[f32], b: &[f32]) -> f32 {
                let n = a.len().min(b.len());
                let pa = a.as_ptr();
                let pb = b.as_ptr();
                let mut acc0 = vdupq_n_f32(0.0);
                let mut acc1 = vdupq_n_f32(0.0);
                let mut acc2 = vdupq_n_f32(0.0);
                let mut acc3 = vdupq_n_f32(0.0);
                let mut i = 0usize;
                while i + 16 <= n {
                    acc0 = {
                        let $acc = acc0;
                        let $x = vld1q_f32(pa.add(i));
                        let $y = vld1q_f32(pb.add(i));
                        $step
                    };
                    acc1 = {
                        let $acc = acc1;
                        let $x = vld1q_f32(pa.add(i + 4));
                        let $y = vld1q_f32(pb.add(i + 4));
                        $step
                    };
                    acc2 = {
                        let $acc = acc2;
                        let $x = vld1q_f32(pa.add(i + 8));
                        let $y = vld1q_f32(pb.add(i + 8));
                        $step
                    };
                    acc3 = {
                        let $acc = acc3;
                        let $x = vld1q_f32(pa.add(i + 12));
                        let $y = vld1q_f32(pb.add(i + 12));
                        $step
                    };
                    i += 16;
                }
                while i + 4 <= n {
                    acc0 = {
                        let $acc = acc0;
                        let $x = vld1q_f32(pa.add(i));
                        let $y = vld1q_f32(pb.add(i));
                        $step
                    };
                    i += 4;
                }
                let acc = vaddq_f32(vaddq_f32(acc0, acc1), vaddq_f32(acc2, acc3));
                let mut s = vaddvq_f32(acc);
                while i < n {
                    let $p = *pa.add(i);
                    let $q = *pb.add(i);
                    s += $tail;
                    i += 1;
                }
                s
            }
        };
    }

    kernel!(dot, |acc, x, y| vfmaq_f32(acc, x, y), |x, y| x * y);
    kernel!(
        l2,
        |acc, x, y| {
            let d = vsubq_f32(x, y);
            vfmaq_f32(acc, d, d)
        },
        |x, y| (x - y) * (x - y)
    );
    kernel!(l1, |acc, x, y| vaddq_f32(acc, vabdq_f32(x, y)), |x, y| (x - y).abs());

    pub unsafe fn neg_l2(a: &[f32], b: &[f32]) -> f32 {
        -l2(a, b)
    }

    pub unsafe fn neg_l1(a: &[f32], b: &[f32]) -> f32 {
        -l1(a, b)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scores_and_postprocess() {
        let a = [1.0, 2.0, 3.0];
        let b = [4.0, 6.0, 3.0];
        assert_eq!(Distance::Dot.score(&a, &b), 25.0);
        assert_eq!(Distance::Euclid.postprocess(Distance::Euclid.score(&a, &b)), 5.0);
        assert_eq!(Distance::Manhattan.postprocess(Distance::Manhattan.score(&a, &b)), 7.0);
        let mut c = vec![3.0, 4.0];
        Distance::Cosine.preprocess(&mut c);
        assert!((c[0] - 0.6).abs() < 1e-6 && (c[1] - 0.8).abs() < 1e-6);
        let t = Distance::Euclid.preprocess_threshold(5.0);
        assert_eq!(Distance::Euclid.postprocess(t), 5.0);
    }

    #[test]
    fn long_vectors_match_naive() {
        let a: Vec<f32> = (0..37).map(|i| i as f32 * 0.5).collect();
        let b: Vec<f32> = (0..37).map(|i| (37 - i) as f32 * 0.25).collect();
        let naive: f32 = a.iter().zip(&b).map(|(x, y)| x * y).sum();
        assert!((dot(&a, &b) - naive).abs() < 1e-3);
    }

    /// Small deterministic generator so the core crate needs no `rand` dependency.
    fn lcg_vec(seed: &mut u64, n: usize) -> Vec<f32> {
        (0..n)
            .map(|_| {
                *seed = seed.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
                ((*seed >> 40) as f32 / (1u64 << 24) as f32) * 2.0 - 1.0
            })
            .collect()
    }

    fn close(got: f32, want: f32, magnitude: f32) -> bool {
        (got - want).abs() <= 1e-4 * magnitude.max(1e-6)
    }

    /// Every kernel family this CPU offers must agree with the scalar reference (relative to the
    /// magnitude of the summed terms, so cancellation in a dot product does not fail the check).
    fn check_family(name: &str, d: KernelFn, l2: KernelFn, m: KernelFn, nl2: KernelFn, nl1: KernelFn) {
        let mut seed = 7u64;
        for len in (0..=70).chain([95, 127, 128, 129, 255, 256, 300, 384, 511, 768, 1023, 1536]) {
            for _ in 0..3 {
                let a = lcg_vec(&mut seed, len);
                let b = lcg_vec(&mut seed, len);
                let mag_dot: f32 = a.iter().zip(&b).map(|(x, y)| (x * y).abs()).sum();
                let want = dot_scalar(&a, &b);
                // SAFETY: the caller only passes kernels supported by this CPU.
                let (gd, gl2, gl1, gn2, gn1) = unsafe { (d(&a, &b), l2(&a, &b), m(&a, &b), nl2(&a, &b), nl1(&a, &b)) };
                assert!(close(gd, want, mag_dot), "{name} dot len {len}: {gd} vs {want}");
                let want = l2_squared_scalar(&a, &b);
                assert!(close(gl2, want, want), "{name} l2 len {len}: {gl2} vs {want}");
                assert!(close(gn2, -want, want), "{name} -l2 len {len}");
                let want = l1_scalar(&a, &b);
                assert!(close(gl1, want, want), "{name} l1 len {len}: {gl1} vs {want}");
                assert!(close(gn1, -want, want), "{name} -l1 len {len}");
            }
        }
        // Mismatched lengths use the shorter one.
        let a = lcg_vec(&mut seed, 40);
        let b = lcg_vec(&mut seed, 33);
        // SAFETY: as above.
        let got = unsafe { d(&a, &b) };
        assert!(close(got, dot_scalar(&a[..33], &b), 40.0));
    }

    #[test]
    fn dispatched_kernels_match_scalar() {
        let k = kernels();
        check_family(k.name, k.dot, k.l2, k.l1, k.neg_l2, k.neg_l1);
        let s = scalar_kernels();
        check_family(s.name, s.dot, s.l2, s.l1, s.neg_l2, s.neg_l1);
    }

    #[cfg(target_arch = "x86_64")]
    #[test]
    fn avx2_kernels_match_scalar() {
        if std::is_x86_feature_detected!("avx2") && std::is_x86_feature_detected!("fma") {
            check_family("avx2", avx2::dot, avx2::l2, avx2::l1, avx2::neg_l2, avx2::neg_l1);
        }
    }

    #[cfg(target_arch = "x86_64")]
    #[test]
    fn avx512_kernels_match_scalar() {
        if std::is_x86_feature_detected!("avx512f") {
            check_family("avx512", avx512::dot, avx512::l2, avx512::l1, avx512::neg_l2, avx512::neg_l1);
        } else {
            eprintln!("no AVX-512 on this CPU: kernels not exercised");
        }
    }

    #[test]
    fn scorer_matches_score() {
        let mut seed = 11u64;
        let a = lcg_vec(&mut seed, 77);
        let b = lcg_vec(&mut seed, 77);
        for d in [Distance::Cosine, Distance::Dot, Distance::Euclid, Distance::Manhattan] {
            let want = d.score(&a, &b);
            assert!(close(d.scorer().score(&a, &b), want, want.abs() + 1.0), "{d:?}");
        }
        assert!(!simd_level().is_empty());
    }
}
