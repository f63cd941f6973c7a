//! Caps on the sizes a request may ask for. Each guards a resource one request could otherwise
//! exhaust (memory, threads, files, CPU time); a request over a cap is refused with a 400 that
//! names the cap. docs/compatibility.md lists them.

use crate::error::ValidationError;

/// Shards a collection may be created with (`shard_number`), or a shard key may get
/// (`shards_number`): each shard has its own worker threads and database files.
pub const MAX_SHARDS: u32 = 64;
/// Results (`limit`) and skipped results (`offset`) of one query, search or scroll.
pub const MAX_RESULTS: usize = 1_000_000;
/// Requests in one batch (`searches` of the batch endpoints).
pub const MAX_BATCH: usize = 1_024;
/// Prefetches under one query level, and levels of nested prefetches.
pub const MAX_PREFETCHES: usize = 64;
pub const MAX_PREFETCH_DEPTH: usize = 16;
/// Ids in one `has_id` condition.
pub const MAX_HAS_ID: usize = 100_000;
/// Points sampled, and neighbours per point, of a distance matrix (one search per sampled point).
pub const MAX_MATRIX_SAMPLE: usize = 1_000;
/// Bytes of the text of a full-text match (`text`, `text_any`, `phrase`).
pub const MAX_TEXT_QUERY: usize = 4_096;

/// `value` must be at most `max`; `what` names the field.
pub fn at_most(what: &str, value: usize, max: usize) -> Result<(), ValidationError> {
    if value > max {
        return Err(ValidationError::new(format!("{what}: {value} is over the limit of {max}")));
    }
    Ok(())
}

/// A shard count: 1 to [`MAX_SHARDS`].
pub fn shard_count(what: &str, n: u32) -> Result<(), ValidationError> {
    if n == 0 || n > MAX_SHARDS {
        return Err(ValidationError::new(format!("{what}: {n} is out of range, expected 1 to {MAX_SHARDS}")));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn caps_name_the_field_and_the_limit() {
        assert!(at_most("limit", 10, MAX_RESULTS).is_ok());
        let e = at_most("limit", MAX_RESULTS + 1, MAX_RESULTS).expect_err("over");
        assert_eq!(e.message, "limit: 1000001 is over the limit of 1000000");
        assert!(shard_count("shard_number", 1).is_ok());
        assert!(shard_count("shard_number", 0).is_err());
        assert!(shard_count("shard_number", MAX_SHARDS + 1).is_err());
    }
}
