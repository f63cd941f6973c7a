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
            Distance::Euclid => -(threshold * threshold),
            Distance::Manhattan => -threshold,
        }
    }

    /// Whether users see larger scores as better (false for the two distances).
    pub fn higher_is_better(&self) -> bool {
        matches!(self, Distance::Cosine | Distance::Dot)
    }
}

/// Dot product. Four independent accumulators let the compiler vectorise the loop.
#[inline]
pub fn dot(a: &[f32], b: &[f32]) -> f32 {
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

/// Squared Euclidean distance.
#[inline]
pub fn l2_squared(a: &[f32], b: &[f32]) -> f32 {
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

/// Manhattan (L1) distance.
#[inline]
pub fn l1(a: &[f32], b: &[f32]) -> f32 {
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
}
