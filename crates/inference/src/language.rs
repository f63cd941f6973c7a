//! Languages: the ones with stopword lists (`Language`) and the ones with a Snowball stemmer
//! (`SnowballLanguage`), with the names and aliases Qdrant's JSON accepts.

/// A language with a predefined stopword list. Also the value of the `language` option, which picks the
/// default stopwords and the default stemmer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Language {
    Arabic,
    Azerbaijani,
    Basque,
    Bengali,
    Catalan,
    Chinese,
    Danish,
    Dutch,
    English,
    Finnish,
    French,
    German,
    Greek,
    Hebrew,
    Hinglish,
    Hungarian,
    Indonesian,
    Italian,
    Japanese,
    Kazakh,
    Nepali,
    Norwegian,
    Portuguese,
    Romanian,
    Russian,
    Slovene,
    Spanish,
    Swedish,
    Tajik,
    Turkish,
}

/// (language, JSON name, JSON alias). Names are case-sensitive, as in Qdrant.
const LANGUAGES: &[(Language, &str, &str)] = &[
    (Language::Arabic, "arabic", "ar"),
    (Language::Azerbaijani, "azerbaijani", "az"),
    (Language::Basque, "basque", "eu"),
    (Language::Bengali, "bengali", "bn"),
    (Language::Catalan, "catalan", "ca"),
    (Language::Chinese, "chinese", "zh"),
    (Language::Danish, "danish", "da"),
    (Language::Dutch, "dutch", "nl"),
    (Language::English, "english", "en"),
    (Language::Finnish, "finnish", "fi"),
    (Language::French, "french", "fr"),
    (Language::German, "german", "de"),
    (Language::Greek, "greek", "el"),
    (Language::Hebrew, "hebrew", "he"),
    (Language::Hinglish, "hinglish", "hi-en"),
    (Language::Hungarian, "hungarian", "hu"),
    (Language::Indonesian, "indonesian", "id"),
    (Language::Italian, "italian", "it"),
    (Language::Japanese, "japanese", "jp"),
    (Language::Kazakh, "kazakh", "kk"),
    (Language::Nepali, "nepali", "ne"),
    (Language::Norwegian, "norwegian", "no"),
    (Language::Portuguese, "portuguese", "pt"),
    (Language::Romanian, "romanian", "ro"),
    (Language::Russian, "russian", "ru"),
    (Language::Slovene, "slovene", "sl"),
    (Language::Spanish, "spanish", "es"),
    (Language::Swedish, "swedish", "sv"),
    (Language::Tajik, "tajik", "tg"),
    (Language::Turkish, "turkish", "tr"),
];

impl Language {
    /// Parse a JSON name (`"english"`) or alias (`"en"`).
    pub fn parse(name: &str) -> Option<Self> {
        LANGUAGES.iter().find(|(_, n, alias)| *n == name || *alias == name).map(|(l, _, _)| *l)
    }

    /// The JSON name.
    pub fn name(self) -> &'static str {
        LANGUAGES.iter().find(|(l, _, _)| *l == self).map_or("", |(_, n, _)| n)
    }

    /// The Snowball stemmer this language implies when `stemmer` is not given; `None` for languages
    /// without one (their words are kept as they are).
    pub fn default_stemmer(self) -> Option<SnowballLanguage> {
        use SnowballLanguage as S;
        Some(match self {
            Language::Arabic => S::Arabic,
            Language::Danish => S::Danish,
            Language::Dutch => S::Dutch,
            Language::English => S::English,
            Language::Finnish => S::Finnish,
            Language::French => S::French,
            Language::German => S::German,
            Language::Greek => S::Greek,
            Language::Hungarian => S::Hungarian,
            Language::Italian => S::Italian,
            Language::Norwegian => S::Norwegian,
            Language::Portuguese => S::Portuguese,
            Language::Romanian => S::Romanian,
            Language::Russian => S::Russian,
            Language::Spanish => S::Spanish,
            Language::Swedish => S::Swedish,
            Language::Turkish => S::Turkish,
            Language::Azerbaijani
            | Language::Basque
            | Language::Bengali
            | Language::Catalan
            | Language::Chinese
            | Language::Hebrew
            | Language::Hinglish
            | Language::Indonesian
            | Language::Japanese
            | Language::Kazakh
            | Language::Nepali
            | Language::Slovene
            | Language::Tajik => return None,
        })
    }
}

/// A language with a Snowball stemmer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum SnowballLanguage {
    Arabic,
    Armenian,
    Danish,
    Dutch,
    English,
    Finnish,
    French,
    German,
    Greek,
    Hungarian,
    Italian,
    Norwegian,
    Portuguese,
    Romanian,
    Russian,
    Spanish,
    Swedish,
    Tamil,
    Turkish,
}

/// (language, JSON name, alias, name older Qdrant versions wrote).
const SNOWBALL: &[(SnowballLanguage, &str, &str, &str)] = &[
    (SnowballLanguage::Arabic, "arabic", "ar", "Arabic"),
    (SnowballLanguage::Armenian, "armenian", "hy", "Armenian"),
    (SnowballLanguage::Danish, "danish", "da", "Danish"),
    (SnowballLanguage::Dutch, "dutch", "nl", "Dutch"),
    (SnowballLanguage::English, "english", "en", "English"),
    (SnowballLanguage::Finnish, "finnish", "fi", "Finnish"),
    (SnowballLanguage::French, "french", "fr", "French"),
    (SnowballLanguage::German, "german", "de", "German"),
    (SnowballLanguage::Greek, "greek", "el", "Greek"),
    (SnowballLanguage::Hungarian, "hungarian", "hu", "Hungarian"),
    (SnowballLanguage::Italian, "italian", "it", "Italian"),
    (SnowballLanguage::Norwegian, "norwegian", "no", "Norwegian"),
    (SnowballLanguage::Portuguese, "portuguese", "pt", "Portuguese"),
    (SnowballLanguage::Romanian, "romanian", "ro", "Romanian"),
    (SnowballLanguage::Russian, "russian", "ru", "Russian"),
    (SnowballLanguage::Spanish, "spanish", "es", "Spanish"),
    (SnowballLanguage::Swedish, "swedish", "sv", "Swedish"),
    (SnowballLanguage::Tamil, "tamil", "ta", "Tamil"),
    (SnowballLanguage::Turkish, "turkish", "tr", "Turkish"),
];

impl SnowballLanguage {
    /// Parse a JSON name (`"english"`), alias (`"en"`) or the capitalised name (`"English"`) older Qdrant
    /// versions used.
    pub fn parse(name: &str) -> Option<Self> {
        SNOWBALL.iter().find(|(_, n, alias, old)| *n == name || *alias == name || *old == name).map(|(l, ..)| *l)
    }

    /// The JSON name.
    pub fn name(self) -> &'static str {
        SNOWBALL.iter().find(|(l, ..)| *l == self).map_or("", |(_, n, ..)| n)
    }

    pub(crate) fn algorithm(self) -> qdrant_rust_stemmers::Algorithm {
        use qdrant_rust_stemmers::Algorithm as A;
        match self {
            SnowballLanguage::Arabic => A::Arabic,
            SnowballLanguage::Armenian => A::Armenian,
            SnowballLanguage::Danish => A::Danish,
            SnowballLanguage::Dutch => A::Dutch,
            SnowballLanguage::English => A::English,
            SnowballLanguage::Finnish => A::Finnish,
            SnowballLanguage::French => A::French,
            SnowballLanguage::German => A::German,
            SnowballLanguage::Greek => A::Greek,
            SnowballLanguage::Hungarian => A::Hungarian,
            SnowballLanguage::Italian => A::Italian,
            SnowballLanguage::Norwegian => A::Norwegian,
            SnowballLanguage::Portuguese => A::Portuguese,
            SnowballLanguage::Romanian => A::Romanian,
            SnowballLanguage::Russian => A::Russian,
            SnowballLanguage::Spanish => A::Spanish,
            SnowballLanguage::Swedish => A::Swedish,
            SnowballLanguage::Tamil => A::Tamil,
            SnowballLanguage::Turkish => A::Turkish,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_and_aliases_round_trip() {
        for (lang, name, alias) in LANGUAGES {
            assert_eq!(Language::parse(name), Some(*lang));
            assert_eq!(Language::parse(alias), Some(*lang));
            assert_eq!(lang.name(), *name);
        }
        for (lang, name, alias, old) in SNOWBALL {
            assert_eq!(SnowballLanguage::parse(name), Some(*lang));
            assert_eq!(SnowballLanguage::parse(alias), Some(*lang));
            assert_eq!(SnowballLanguage::parse(old), Some(*lang));
            assert_eq!(lang.name(), *name);
        }
    }

    #[test]
    fn language_names_are_case_sensitive_like_qdrant() {
        assert_eq!(Language::parse("French"), None);
        assert_eq!(Language::parse("ja"), None);
        assert_eq!(Language::parse("jp"), Some(Language::Japanese));
        assert_eq!(Language::parse("hi-en"), Some(Language::Hinglish));
        assert_eq!(Language::parse("slovenian"), None);
    }

    #[test]
    fn default_stemmers() {
        assert_eq!(Language::English.default_stemmer(), Some(SnowballLanguage::English));
        assert_eq!(Language::Greek.default_stemmer(), Some(SnowballLanguage::Greek));
        assert_eq!(Language::Japanese.default_stemmer(), None);
        assert_eq!(Language::Catalan.default_stemmer(), None);
    }
}
