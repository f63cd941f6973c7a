//! Stopword lists: NLTK's (through the `stop-words` crate) for every language Qdrant offers, with the
//! differences Qdrant's engine shows: its English list is NLTK's older one (without the 19 contractions
//! NLTK added later, such as "i'm" and "we've"), Catalan also holds "d", and Japanese has its own list
//! (`data/japanese_stopwords.txt`). A stopword matches a whole token only, so list entries with spaces or
//! apostrophes ("don't", "des de") never match anything.

use std::collections::HashSet;

use crate::config::StopwordsSet;
use crate::language::Language;

const JAPANESE: &str = include_str!("data/japanese_stopwords.txt");

/// Entries of NLTK's current English list that Qdrant's (older) list lacks: they are not stopwords there.
const ENGLISH_NOT_IN_QDRANT: &[&str] = &[
    "he'd", "he'll", "he's", "i'd", "i'll", "i'm", "it'd", "it'll", "i've", "she'd", "she'll", "they'd", "they'll",
    "they're", "they've", "we'd", "we'll", "we're", "we've",
];

/// The predefined list of a language.
pub fn language_stopwords(language: Language) -> Vec<&'static str> {
    let code = match language {
        Language::Japanese => {
            return JAPANESE.lines().filter(|l| !l.is_empty() && !l.starts_with('#')).collect();
        }
        Language::Arabic => "ar",
        Language::Azerbaijani => "az",
        Language::Basque => "eu",
        Language::Bengali => "bn",
        Language::Catalan => "ca",
        Language::Chinese => "zh",
        Language::Danish => "da",
        Language::Dutch => "nl",
        Language::English => "en",
        Language::Finnish => "fi",
        Language::French => "fr",
        Language::German => "de",
        Language::Greek => "el",
        Language::Hebrew => "he",
        Language::Hinglish => "hinglish",
        Language::Hungarian => "hu",
        Language::Indonesian => "id",
        Language::Italian => "it",
        Language::Kazakh => "kk",
        Language::Nepali => "ne",
        Language::Norwegian => "no",
        Language::Portuguese => "pt",
        Language::Romanian => "ro",
        Language::Russian => "ru",
        Language::Slovene => "sl",
        Language::Spanish => "es",
        Language::Swedish => "sv",
        Language::Tajik => "tg",
        Language::Turkish => "tr",
    };
    let mut words = stop_words::lookup(code).map(<[&str]>::to_vec).unwrap_or_default();
    match language {
        Language::English => words.retain(|w| !ENGLISH_NOT_IN_QDRANT.contains(w)),
        Language::Catalan => words.push("d"),
        _ => {}
    }
    words
}

/// The resolved set a model filters with. Custom words are lowercased when tokens are (so "Foo" removes
/// "foo"); the predefined lists are used as they are (all lowercase, never folded).
pub fn resolve(set: &StopwordsSet, lowercase: bool) -> HashSet<String> {
    let mut words: HashSet<String> =
        set.languages.iter().flat_map(|l| language_stopwords(*l)).map(str::to_string).collect();
    for word in &set.custom {
        words.insert(if lowercase { word.to_lowercase() } else { word.clone() });
    }
    words
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use super::*;

    #[test]
    fn every_language_has_a_list() {
        for name in ["arabic", "english", "japanese", "slovene", "hinglish", "tajik", "catalan", "chinese"] {
            let language = Language::parse(name).expect("known language");
            assert!(!language_stopwords(language).is_empty(), "{name}");
        }
        // Counts of distinct entries, as in Qdrant's lists.
        let distinct = |l| language_stopwords(l).into_iter().collect::<HashSet<_>>().len();
        assert_eq!(distinct(Language::English), 179);
        assert!(!language_stopwords(Language::English).contains(&"i'm"));
        assert!(language_stopwords(Language::English).contains(&"don't"));
        assert_eq!(distinct(Language::Japanese), 149);
        assert!(language_stopwords(Language::Catalan).contains(&"d"));
    }

    #[test]
    fn custom_words_follow_lowercasing() {
        let set =
            StopwordsSet { languages: BTreeSet::from([Language::English]), custom: BTreeSet::from(["Foo".into()]) };
        let lower = resolve(&set, true);
        assert!(lower.contains("foo") && lower.contains("the") && !lower.contains("Foo"));
        let exact = resolve(&set, false);
        assert!(exact.contains("Foo") && !exact.contains("foo"));
    }
}
