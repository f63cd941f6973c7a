//! Splitting text into raw tokens, before any normalisation (folding, lowercasing, stopwords, stemming).

use std::borrow::Cow;

/// `word`: maximal runs of `char::is_alphanumeric` characters. Apostrophes, hyphens, underscores, combining
/// marks and every other non-alphanumeric character separate words.
pub fn words(text: &str) -> impl Iterator<Item = &str> {
    text.split(|c: char| !c.is_alphanumeric()).filter(|t| !t.is_empty())
}

/// `whitespace`: maximal runs of characters that are not `char::is_whitespace`.
pub fn whitespace(text: &str) -> impl Iterator<Item = &str> {
    text.split(char::is_whitespace).filter(|t| !t.is_empty())
}

/// `code`: identifiers are maximal runs of alphanumerics and `_`. An identifier that starts with an ASCII
/// digit is a number literal and stays one token, without its underscores (`1_000` -> `1000`, `3dModel`).
/// Any other splits at `_` into segments and each segment at camelCase boundaries into parts; every part is
/// a token. With `joined` (Qdrant does it when it lowercases), a segment of several parts also yields its
/// whole text (`fooBar`), and an identifier of several segments their concatenation without underscores
/// (`foo_bar` -> `foobar`).
pub fn code(text: &str, joined: bool) -> Vec<Cow<'_, str>> {
    let mut out = Vec::new();
    let identifiers = text.split(|c: char| !(c.is_alphanumeric() || c == '_')).filter(|t| !t.is_empty());
    for identifier in identifiers {
        let segments: Vec<&str> = identifier.split('_').filter(|s| !s.is_empty()).collect();
        if identifier.starts_with(|c: char| c.is_ascii_digit()) {
            out.push(if segments.len() == 1 { Cow::Borrowed(segments[0]) } else { Cow::Owned(segments.concat()) });
            continue;
        }
        for segment in &segments {
            let parts = camel_parts(segment);
            let several = parts.len() > 1;
            out.extend(parts.into_iter().map(Cow::Borrowed));
            if joined && several {
                out.push(Cow::Borrowed(*segment));
            }
        }
        if joined && segments.len() > 1 {
            out.push(Cow::Owned(segments.concat()));
        }
    }
    out
}

/// Split a segment (alphanumerics only) at camelCase boundaries: before an uppercase character
/// (`char::is_uppercase`, so `Ⅻ` counts) that follows any non-uppercase character (`fooBar`, `utf8Decode`,
/// `東B`), or that ends a run of uppercase ones and is followed by a non-uppercase letter (`HTTPServer` ->
/// `HTTP`, `Server`). Digits and uncased letters stay with what precedes them.
pub fn camel_parts(segment: &str) -> Vec<&str> {
    let chars: Vec<(usize, char)> = segment.char_indices().collect();
    let mut parts = Vec::new();
    let mut start = 0;
    for i in 1..chars.len() {
        let (offset, c) = chars[i];
        let prev = chars[i - 1].1;
        let next = chars.get(i + 1).map(|(_, c)| *c);
        let boundary =
            c.is_uppercase() && (!prev.is_uppercase() || next.is_some_and(|n| n.is_alphabetic() && !n.is_uppercase()));
        if boundary {
            parts.push(&segment[start..offset]);
            start = offset;
        }
    }
    parts.push(&segment[start..]);
    parts
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn words_split_on_everything_not_alphanumeric() {
        let text = "Hello, World! It's e-mail foo_bar 3.14 abc123 U.S.A. café naïve e\u{301}";
        let tokens: Vec<&str> = words(text).collect();
        assert_eq!(
            tokens,
            [
                "Hello", "World", "It", "s", "e", "mail", "foo", "bar", "3", "14", "abc123", "U", "S", "A", "café",
                "naïve", "e"
            ]
        );
        assert_eq!(words("").count(), 0);
        assert_eq!(words(" ,.; ").count(), 0);
        // CJK runs are one word; Devanagari vowel signs are alphabetic, the virama is not.
        assert_eq!(words("東京都に住んでいます").collect::<Vec<_>>(), ["東京都に住んでいます"]);
        assert_eq!(words("हिन्दी").collect::<Vec<_>>(), ["हिन", "दी"]);
    }

    #[test]
    fn whitespace_keeps_punctuation() {
        let tokens: Vec<&str> = whitespace("a,\u{a0}b\tc\u{2003}d\u{200b}e\nf\u{3000}g").collect();
        assert_eq!(tokens, ["a,", "b", "c", "d\u{200b}e", "f", "g"]);
    }

    #[test]
    fn camel_case_boundaries() {
        assert_eq!(camel_parts("fooBar"), ["foo", "Bar"]);
        assert_eq!(camel_parts("HTTPServer"), ["HTTP", "Server"]);
        assert_eq!(camel_parts("XMLHttpRequest"), ["XML", "Http", "Request"]);
        assert_eq!(camel_parts("ABCdef"), ["AB", "Cdef"]);
        assert_eq!(camel_parts("abcDEF"), ["abc", "DEF"]);
        assert_eq!(camel_parts("utf8Decode"), ["utf8", "Decode"]);
        assert_eq!(camel_parts("a1B2"), ["a1", "B2"]);
        assert_eq!(camel_parts("API2Go"), ["API2", "Go"]);
        assert_eq!(camel_parts("x2y"), ["x2y"]);
        assert_eq!(camel_parts("FOOBAR"), ["FOOBAR"]);
        assert_eq!(camel_parts("naïveString"), ["naïve", "String"]);
        assert_eq!(camel_parts("ΟδόςΑθήνα"), ["Οδός", "Αθήνα"]);
        // Uncased letters (CJK, titlecase digraphs, modifier letters) and Roman numerals (uppercase).
        assert_eq!(camel_parts("a東B"), ["a東", "B"]);
        assert_eq!(camel_parts("BB東"), ["B", "B東"]);
        assert_eq!(camel_parts("aⅫB"), ["a", "ⅫB"]);
        assert_eq!(camel_parts("ⅫB1"), ["ⅫB1"]);
        assert_eq!(camel_parts("BB²"), ["BB²"]);
    }

    #[test]
    fn code_identifiers_parts_and_joined_forms() {
        let joined = |t| code(t, true).into_iter().map(Cow::into_owned).collect::<Vec<_>>();
        let parts = |t| code(t, false).into_iter().map(Cow::into_owned).collect::<Vec<_>>();
        assert_eq!(joined("fooBar_bazQux"), ["foo", "Bar", "fooBar", "baz", "Qux", "bazQux", "fooBarbazQux"]);
        assert_eq!(parts("fooBar_bazQux"), ["foo", "Bar", "baz", "Qux"]);
        assert_eq!(joined("a_b_c"), ["a", "b", "c", "abc"]);
        assert_eq!(joined("__init__ x_"), ["init", "x"]);
        assert_eq!(joined("foo.barBaz a::b foo-bar"), ["foo", "bar", "Baz", "barBaz", "a", "b", "foo", "bar"]);
        // Number literals: one token without underscores, whatever their case.
        assert_eq!(
            joined("1_000 3dModel 1aB_cD x.1aB _1aB"),
            ["1000", "3dModel", "1aBcD", "x", "1aB", "1a", "B", "1aB"]
        );
        assert_eq!(joined("3.14 v1.2"), ["3", "14", "v1", "2"]);
    }
}
