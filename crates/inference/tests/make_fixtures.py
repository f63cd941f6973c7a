#!/usr/bin/env python3
"""Write tests/fixtures/bm25.json: sparse vectors of Qdrant's built-in BM25 for many texts and options,
computed by Qdrant's own engine (PyPI `qdrant-edge-py` 0.9.x).

    python3 -m venv .venv-ref && .venv-ref/bin/pip install qdrant-edge-py
    .venv-ref/bin/python crates/inference/tests/make_fixtures.py            # the committed fixture
    .venv-ref/bin/python crates/inference/tests/make_fixtures.py --fuzz OUT [SEED]  # a large random one,
                                                                             # not committed;
    QD_BM25_FIXTURE=OUT cargo test -p qd-inference --test reference        # checks it

Options are written in the JSON form of a Document's `options`; this script translates them to the
engine's `Bm25Config`. The Rust test (tests/reference.rs) parses the same JSON with `Bm25Config::from_options`.
"""

import json
import random
from importlib.metadata import version
import sys
from pathlib import Path

import qdrant_edge as qe

LANGUAGE_ALIASES = {
    "ar": "arabic", "az": "azerbaijani", "eu": "basque", "bn": "bengali", "ca": "catalan", "zh": "chinese",
    "da": "danish", "nl": "dutch", "en": "english", "fi": "finnish", "fr": "french", "de": "german",
    "el": "greek", "he": "hebrew", "hi-en": "hinglish", "hu": "hungarian", "id": "indonesian",
    "it": "italian", "jp": "japanese", "kk": "kazakh", "ne": "nepali", "no": "norwegian", "pt": "portuguese",
    "ro": "romanian", "ru": "russian", "sl": "slovene", "es": "spanish", "sv": "swedish", "tg": "tajik",
    "tr": "turkish",
}
SNOWBALL_ALIASES = {
    "ar": "arabic", "hy": "armenian", "da": "danish", "nl": "dutch", "en": "english", "fi": "finnish",
    "fr": "french", "de": "german", "el": "greek", "hu": "hungarian", "it": "italian", "no": "norwegian",
    "pt": "portuguese", "ro": "romanian", "ru": "russian", "es": "spanish", "sv": "swedish", "ta": "tamil",
    "tr": "turkish",
}


def language_enum(name):
    return getattr(qe.Language, LANGUAGE_ALIASES.get(name, name).capitalize())


def edge_config(options):
    """The engine's Bm25Config for a JSON `options` object."""
    kw = {}
    for key, value in (options or {}).items():
        if key in ("k", "b", "avg_len", "lowercase", "ascii_folding", "min_token_len", "max_token_len", "language"):
            kw[key] = value
        elif key == "tokenizer":
            kw[key] = getattr(qe.TokenizerType, value.capitalize())
        elif key == "stopwords":
            if isinstance(value, str):
                kw[key] = language_enum(value)
            else:
                kw[key] = qe.StopwordsSet(
                    languages={language_enum(l) for l in value.get("languages", [])},
                    custom=set(value.get("custom", [])),
                )
        elif key == "stemmer":
            if value["type"] == "none":
                kw[key] = qe.DisabledStemmer()
            else:
                lang = SNOWBALL_ALIASES.get(value["language"], value["language"])
                kw[key] = qe.SnowballParams(getattr(qe.SnowballLanguage, lang.capitalize()))
        else:
            raise ValueError(f"unknown option {key}")
    return qe.Bm25Config(**kw)


ENGLISH = [
    "The quick brown fox jumps over the lazy dog.",
    "Qdrant is a vector similarity search engine and vector database.",
    "It provides a production-ready service with a convenient API to store, search, and manage points.",
    "Time travel stories often explore paradoxes: what happens if you meet yourself?",
    "The Time Machine is a science fiction novella by H. G. Wells, published in 1895.",
    "Running, runner, runs and ran are different forms of the same verb.",
    "She sells sea shells by the sea shore; the shells she sells are surely sea shells.",
    "A journey of a thousand miles begins with a single step.",
    "To be, or not to be, that is the question.",
    "Generously, happily, relational, conditional, rational, valenci, hesitanci, digitizer, conformabli.",
    "Connection connections connective connected connecting connect",
    "Caresses ponies ties caress cats feed agreed disabled matting mating meeting milling messing meetings",
    "The universities' national organizations organized an organizational meeting about organizing.",
    "I'm sure you'll agree that we've done what they'd've wanted, haven't we?",
    "Email me at john.doe@example.com or visit https://qdrant.tech/documentation/ for details.",
    "Version 1.12.4 was released on 2024-10-08; it fixed bug #4521 and CVE-2024-12345.",
    "Prices rose 3.5% to $1,234.56 (up from €1.100,00) in Q3 2023.",
    "HTML <div class=\"main\">Hello</div> & JSON {\"key\": [1, 2, 3]} are markup and data formats.",
    "snake_case_identifier camelCaseIdentifier PascalCaseIdentifier SCREAMING_SNAKE_CASE kebab-case-identifier",
    "Don't stop believing; hold on to that feeling.",
    "The the the the the quick quick brown.",
    "buffalo Buffalo buffalo buffalo Buffalo buffalo",
    "ALL CAPS SENTENCE WITH SOME WORDS REPEATED WORDS REPEATED",
    "MiXeD cAsE wOrDs ArE hErE",
    "a",
    "",
    "   ",
    "!!! ??? ... --- ,,,",
    "x y z",
    "Supercalifragilisticexpialidocious antidisestablishmentarianism pneumonoultramicroscopicsilicovolcanoconiosis",
    "The rain in Spain stays mainly in the plain. In Hartford, Hereford, and Hampshire, hurricanes hardly ever happen.",
    "Search engines rank documents by relevance; BM25 weighs term frequency against document length.",
    "Vectors, embeddings, and sparse representations: all are ways of turning text into numbers.",
    "Alice was beginning to get very tired of sitting by her sister on the bank, and of having nothing to do.",
    "It was the best of times, it was the worst of times, it was the age of wisdom, it was the age of foolishness.",
    "Call me Ishmael. Some years ago, never mind how long precisely, having little or no money in my purse.",
    "In a hole in the ground there lived a hobbit. Not a nasty, dirty, wet hole, filled with the ends of worms.",
    "Happy families are all alike; every unhappy family is unhappy in its own way.",
    "words, words, words; more words: even more words! words? words.",
    "tab\tseparated\tvalues and\nnew\nlines and\r\nwindows line endings",
]

UNICODE = [
    "Café crème brûlée à la carte; naïve façade; coöperate; résumé; déjà vu.",
    "«Guillemets» “smart quotes” ‘single’ – en — em dash，fullwidth！ ＂ok＂ ⁽x⁾",
    "Ærøskøbing, Øresund, Åland, Þingvellir, Straße, Œuvre, Ægir.",
    "Crème Brûlée CAFÉ Ñandú ÜBER ÉCOLE",
    "ﬁnance ﬂight ﬀ ﬃ ﬄ ligatures",
    "① ② ⑴ ⑵ ⒈ ⒉ Ⅻ ½ ² ³ enclosed and special numbers",
    "ＦＵＬＬＷＩＤＴＨ ｌｅｔｔｅｒｓ ａｎｄ １２３",
    "ΟΔΟΣ ΑΘΗΝΑΣ and Greek final sigma: ΣΟΦΟΣ λόγος",
    "İstanbul ıstanbul ISTANBUL Türkçe",
    "emoji 🙂 between 🚀 words 👍🏽 and ❤️ hearts",
    "zero\u200bwidth\u200bspace non\u00a0breaking\u00a0space em\u2003space",
    "combining e\u0301 vs precomposed é, a\u0308 vs ä",
    "Привет мир! Это тест.",
    "東京都に住んでいます。",
    "我爱北京天安门",
    "안녕하세요 세계",
    "हिन्दी भाषा बहुत सुंदर है",
    "مرحبا بالعالم",
    "שלום עולם",
    "Ǆ ǅ ǆ Ǉ ǈ ǉ titlecase digraphs",
    "Ⓐⓑⓒ ᴀʙᴄ ₐₑₒ ᵃᵇᶜ",
]

LANGUAGES = {
    "english": "The children were running through the gardens, laughing and shouting happily.",
    "french": "Les enfants couraient dans les jardins en riant et en criant joyeusement. C'était l'été.",
    "german": "Die Kinder liefen lachend und fröhlich schreiend durch die Gärten. Häuser, Bäume, Straßen.",
    "spanish": "Los niños corrían por los jardines, riendo y gritando alegremente. Está lloviendo.",
    "italian": "I bambini correvano nei giardini, ridendo e gridando allegramente. Perché è così?",
    "portuguese": "As crianças corriam pelos jardins, rindo e gritando alegremente. Não é verdade?",
    "dutch": "De kinderen renden door de tuinen, lachend en vrolijk schreeuwend.",
    "swedish": "Barnen sprang genom trädgårdarna, skrattande och glatt skrikande.",
    "norwegian": "Barna løp gjennom hagene, lo og ropte glade.",
    "danish": "Børnene løb gennem haverne, grinende og glade råbende.",
    "finnish": "Lapset juoksivat puutarhojen läpi nauraen ja iloisesti huutaen.",
    "hungarian": "A gyerekek nevetve és vidáman kiabálva futottak át a kerteken.",
    "romanian": "Copiii alergau prin grădini, râzând și strigând veseli.",
    "russian": "Дети бегали по садам, смеясь и весело крича. Красивые города России.",
    "greek": "Τα παιδιά έτρεχαν στους κήπους, γελώντας και φωνάζοντας χαρούμενα.",
    "turkish": "Çocuklar bahçelerde koşuyor, gülüyor ve neşeyle bağırıyorlardı.",
    "arabic": "كان الأطفال يركضون في الحدائق ويضحكون ويصرخون بسعادة.",
    "catalan": "Els nens corrien pels jardins, rient i cridant alegrement. D'acord, l'home.",
    "indonesian": "Anak-anak berlari melalui taman, tertawa dan berteriak dengan gembira.",
    "slovene": "Otroci so tekli skozi vrtove, se smejali in veselo vpili.",
    "japanese": "子供たちは 庭を 走り ながら 笑って います。 これ は その 本 です",
    "chinese": "孩子们 在 花园 里 奔跑 ， 我 的 你 他 是 在",
    "hebrew": "הילדים רצו בגנים, צחקו וצעקו בשמחה.",
    "kazakh": "Балалар бақтарда жүгіріп, күліп, қуана айқайлады.",
    "nepali": "बच्चाहरू बगैंचामा दौडिरहेका थिए र हाँसिरहेका थिए।",
    "bengali": "শিশুরা বাগানে দৌড়াচ্ছিল এবং হাসছিল।",
    "azerbaijani": "Uşaqlar bağlarda qaçır, gülür və sevinclə qışqırırdılar.",
    "basque": "Haurrak lorategietan zehar korrika zebiltzan, barrez eta pozik oihuka.",
    "tajik": "Кӯдакон дар боғҳо давида, механдиданд ва бо шодӣ фарёд мезаданд.",
    "hinglish": "Bachche garden mein daud rahe the aur khushi se chilla rahe the, yaar.",
}

STEM_WORDS = (
    "running runner runs ran generously happily relational conditional rational digitizer hopefulness "
    "organization organizations organizing organized universities university nationalism nationality "
    "caresses ponies ties cats feeding agreed disabled matting mating meetings milling messing "
    "arguing argument argued argues argus swimming swimmers swam dying lying tying skies dyed news "
    "innings outing canning herring earring proceed exceed succeed consign consigned consigning "
    "consignment consist consisted consistency consistent consistently consisting consists"
)

OPTIONS = [
    None,
    {},
    {"k": 1.5, "b": 0.5, "avg_len": 10},
    {"k": 0.9, "b": 1.0, "avg_len": 3.3},
    {"k": 2.0, "b": 0.0, "avg_len": 100},
    {"k": 0, "b": 0.75},
    {"avg_len": 1},
    {"lowercase": False},
    {"ascii_folding": True},
    {"ascii_folding": True, "lowercase": False},
    {"stemmer": {"type": "none"}},
    {"stemmer": {"type": "none"}, "stopwords": {"languages": [], "custom": []}, "ascii_folding": True},
    {"stopwords": {"custom": ["quick", "Brown", "FOX", "shells", "words"]}},
    {"stopwords": {"languages": ["english", "french"], "custom": ["time", "travel"]}},
    {"stopwords": "german", "stemmer": {"type": "snowball", "language": "german"}},
    {"language": "en", "stopwords": {"custom": ["cat"]}},
    {"min_token_len": 3},
    {"max_token_len": 5},
    {"min_token_len": 2, "max_token_len": 6, "ascii_folding": True},
    {"max_token_len": 0},
    {"tokenizer": "whitespace"},
    {"tokenizer": "whitespace", "lowercase": False, "stemmer": {"type": "none"}},
    {"tokenizer": "whitespace", "ascii_folding": True},
    {"tokenizer": "prefix"},
    {"tokenizer": "prefix", "min_token_len": 2, "max_token_len": 5},
    {"tokenizer": "code"},
    {"tokenizer": "code", "lowercase": False},
    {"tokenizer": "code", "stemmer": {"type": "none"}, "stopwords": {"custom": ["get", "set"]}},
    {"stemmer": {"type": "snowball", "language": "hy"}},
    {"stemmer": {"type": "snowball", "language": "tamil"}, "stopwords": {"languages": []}},
]


def embed(options, text):
    model = qe.Bm25(edge_config(options))
    doc = model.embed_document(text)
    query = model.embed_query(text)
    assert list(doc.indices) == sorted(set(doc.indices)), "engine documents come sorted"
    assert all(v == 1.0 for v in query.values), "query weights are 1"
    return {
        "text": text,
        # 9 significant digits identify an f32 exactly.
        "document": [list(doc.indices), [float(f"{v:.9g}") for v in doc.values]],
        "query": sorted(set(query.indices)),
    }


def committed_cases():
    groups = []
    general = ENGLISH + UNICODE + list(LANGUAGES.values()) + [STEM_WORDS]
    for options in OPTIONS:
        texts = general if options is None else ENGLISH[:10] + UNICODE[:6]
        if options and ("stemmer" in options or "tokenizer" in options):
            texts = texts + [STEM_WORDS]
        groups.append({"options": options, "cases": [embed(options, t) for t in texts]})
    for language, text in LANGUAGES.items():
        options = {"language": language}
        groups.append({"options": options, "cases": [embed(options, t) for t in (text, ENGLISH[5])]})
        options = {"language": language, "ascii_folding": True, "min_token_len": 2}
        groups.append({"options": options, "cases": [embed(options, text)]})
    aliases = [a for a, n in LANGUAGE_ALIASES.items() if n not in ("english",)][:8]
    groups.append({"options": {"language": "jp"}, "cases": [embed({"language": "jp"}, LANGUAGES["japanese"])]})
    for alias in aliases:
        options = {"stopwords": alias, "stemmer": {"type": "none"}}
        groups.append({"options": options, "cases": [embed(options, LANGUAGES[LANGUAGE_ALIASES[alias]])]})
    return groups


def fuzz_cases(seed=7, count=4000):
    rng = random.Random(seed)
    alphabet = list("aabcdeEFGHxyzXYZ0123456789_-.' ,;:") + list("éÉüÜßæÆœøåñçİıΣσςΑλδЖжя東京にー한①⑴ﬁǅʰⅫ²٣") + [
        "\u00a0", "\u200b", "\u0301", "\t", "\n", "Ab", "aB", "AB", "ab", "The ", " the ", "ing ", "ies "]
    words = (" ".join(ENGLISH + list(LANGUAGES.values()) + [STEM_WORDS])).split()
    option_pool = OPTIONS + [{"language": lang} for lang in LANGUAGES] + [
        {"stemmer": {"type": "snowball", "language": s}, "stopwords": {"languages": []}}
        for s in SNOWBALL_ALIASES.values()
    ]
    groups = {}
    for _ in range(count):
        options = rng.choice(option_pool)
        if rng.random() < 0.5:
            text = "".join(rng.choice(alphabet) for _ in range(rng.randint(0, 40)))
        else:
            text = " ".join(rng.choice(words) for _ in range(rng.randint(0, 30)))
        if rng.random() < 0.3:
            options = dict(options or {}, tokenizer=rng.choice(["word", "whitespace", "prefix", "code"]))
        if rng.random() < 0.2:
            options = dict(options or {}, ascii_folding=True, lowercase=rng.random() < 0.5)
        if rng.random() < 0.2:
            options = dict(options or {}, min_token_len=rng.randint(0, 3), max_token_len=rng.randint(2, 8))
        key = json.dumps(options, sort_keys=True)
        groups.setdefault(key, {"options": options, "cases": []})["cases"].append(embed(options, text))
    return list(groups.values())


def main():
    if len(sys.argv) in (3, 4) and sys.argv[1] == "--fuzz":
        seed = int(sys.argv[3]) if len(sys.argv) == 4 else 7
        out, groups = Path(sys.argv[2]), fuzz_cases(seed)
    else:
        out, groups = Path(__file__).parent / "fixtures" / "bm25.json", committed_cases()
    fixture = {
        "about": "Sparse vectors of Qdrant's built-in BM25 computed by qdrant-edge-py; written by make_fixtures.py",
        "engine": f"qdrant-edge-py {version('qdrant-edge-py')}",
        "groups": groups,
    }
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(fixture, ensure_ascii=False, separators=(",", ":")) + "\n", encoding="utf-8")
    cases = sum(len(g["cases"]) for g in groups)
    print(f"{out}: {len(groups)} option sets, {cases} texts, {out.stat().st_size} bytes")


if __name__ == "__main__":
    main()
