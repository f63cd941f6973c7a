//! ASCII folding: each character with an ASCII equivalent is replaced by it ("é" -> "e", "æ" -> "ae",
//! "⑴" -> "(1)", "«" -> "\""); other characters stay. The table (`data/ascii_folding.tsv`) was measured from Qdrant's
//! engine for every code point that can sit inside a token (all but whitespace).

use std::collections::HashMap;
use std::sync::LazyLock;

const TABLE: &str = include_str!("data/ascii_folding.tsv");

static FOLDING: LazyLock<HashMap<char, &'static str>> = LazyLock::new(|| {
    TABLE
        .lines()
        .filter(|line| !line.starts_with('#') && !line.is_empty())
        .filter_map(|line| {
            let (code, folded) = line.split_once('\t')?;
            let c = char::from_u32(u32::from_str_radix(code, 16).ok()?)?;
            Some((c, folded))
        })
        .collect()
});

/// `token` with every foldable character replaced; borrows when nothing changes (the common case).
pub fn fold(token: &str) -> std::borrow::Cow<'_, str> {
    if token.is_ascii() || !token.chars().any(|c| FOLDING.contains_key(&c)) {
        return std::borrow::Cow::Borrowed(token);
    }
    let mut out = String::with_capacity(token.len());
    for c in token.chars() {
        match FOLDING.get(&c) {
            Some(folded) => out.push_str(folded),
            None => out.push(c),
        }
    }
    std::borrow::Cow::Owned(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table_is_complete_and_ascii() {
        assert_eq!(FOLDING.len(), 1241);
        assert!(FOLDING.values().all(|v| v.is_ascii()));
    }

    #[test]
    fn folds_accents_ligatures_and_enclosed_forms() {
        assert_eq!(fold("café"), "cafe");
        assert_eq!(fold("ÀÉÎõü"), "AEIou");
        assert_eq!(fold("Œuvre Æsir straße"), "OEuvre AEsir strasse");
        assert_eq!(fold("ﬃ ⑴ ⒈ «，—»"), "ffi (1) 1. \",-\"");
        assert_eq!(fold("ascii stays"), "ascii stays");
        // Not foldable: kept.
        assert_eq!(fold("東京 привет"), "東京 привет");
    }
}
